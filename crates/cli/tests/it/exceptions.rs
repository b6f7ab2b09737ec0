//! Exceptions are work people do, from a terminal: ShipStation refuses every order of
//! a push, the pushes are given up as `push_rejected` exceptions (ops); one is
//! acknowledged and assigned, the cause is fixed in ShipStation and it is retried:
//! the job behind it runs again on the next `sync`, the order reaches ShipStation and
//! the exception closes by itself. Another is ignored with a reason. Every step is in
//! the exception's audit log (who, when, before and after) and on the order's
//! timeline; refusals (no note, an ended exception, nothing to retry) say why and
//! exit 1. On SQLite and on PostgreSQL, through the `shipledger` binary.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Faults, Sandbox, SandboxConfig};

use crate::support::{TestConfig, write_config};

const AUTH: (&str, &str) = ("sandbox-key", "sandbox-secret");

/// `shipledger ARGS --config CONFIG` as ana: exit status, stdout, stderr.
fn shipledger(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shipledger"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("T_ERP_KEY", "sandbox-erp-key")
        .env("T_SS_KEY", AUTH.0)
        .env("T_SS_SECRET", AUTH.1)
        .env("USER", "ana")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the shipledger binary runs");
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = shipledger(config, args);
    assert!(ok, "shipledger {args:?} failed: {err}");
    out
}

fn json(config: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(config, args)).unwrap()
}

/// The error of a command that must be refused (exit 1).
fn refused(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = shipledger(config, args);
    assert!(!ok, "shipledger {args:?} should have been refused: {out}");
    err
}

async fn exceptions_are_worked_from_the_terminal(store_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Traffic::plan(TrafficConfig { orders: 3, seed: 5, shares: TrafficShares::none(), ..TrafficConfig::default() })
        .apply(&erp.base_url())
        .await
        .unwrap();
    let config = write_config(
        dir.path(),
        &TestConfig {
            store_url: &store_url,
            listen: None,
            connection: "acme",
            env: "T",
            erp: &erp.base_url(),
            ss: &ss.base_url(),
            v2: false,
            webhooks: false,
            policy: "[connections.policy.retry.sync_order]\nmax_attempts = 1\n\n\
                     [connections.policy.exception_sla]\npush_rejected = \"1s\"\n",
        },
    );

    // The store is not set up for these orders: ShipStation refuses every one.
    ss.set_faults(Faults { createorders_fail: 1.0, ..Faults::default() }).unwrap();
    ok(&config, &["sync", "--once"]);
    let rejected = json(&config, &["exceptions", "list", "--kind", "push_rejected", "--format", "json"]);
    let rejected = rejected.as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    for e in rejected {
        assert_eq!((e["owner"].as_str(), e["state"].as_str()), (Some("ops"), Some("open")), "{e}");
        assert!(e["job_id"].is_i64(), "a given-up push names its job: {e}");
    }
    let [first, second, third] = [0, 1, 2].map(|i| rejected[i]["id"].as_i64().unwrap().to_string());
    let order_of = |e: &Value| e["record"].as_str().unwrap().trim_start_matches("order:").to_string();
    let first_order = order_of(&rejected[0]);

    // Its SLA is a second: by now every one of them is overdue.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let overdue = json(&config, &["exceptions", "list", "--overdue", "--format", "json"]);
    assert_eq!(overdue.as_array().unwrap().len(), 3, "{overdue}");
    let table = ok(&config, &["exceptions", "list"]);
    assert!(table.contains("OVERDUE"), "{table}");

    // Ana takes the first, gives it to Ben, and refusals say why.
    ok(&config, &["exceptions", "ack", &first, "--note", "looking at the store setup"]);
    ok(&config, &["exceptions", "assign", &first, "--to", "ben", "--as", "ana@ops"]);
    let bens = json(&config, &["exceptions", "list", "--assignee", "ben", "--format", "json"]);
    assert_eq!(bens.as_array().unwrap().len(), 1);
    assert_eq!(bens[0]["state"], "acknowledged");
    let why = refused(&config, &["exceptions", "ack", &first]);
    assert!(why.contains("acknowledged already"), "{why}");
    let (ok_without_note, _, why) = shipledger(&config, &["exceptions", "resolve", &first, "--note", " "]);
    assert!(!ok_without_note && why.contains("note"), "{why}");
    let why = refused(&config, &["exceptions", "ack", "999999"]);
    assert!(why.contains("no exception 999999"), "{why}");

    // The store is fixed; Ben retries the push behind the first one.
    ss.set_faults(Faults::default()).unwrap();
    let out = ok(&config, &["exceptions", "retry", &first, "--as", "ben", "--note", "store mapped"]);
    assert!(out.contains("runs again now"), "{out}");
    ok(&config, &["sync", "--once"]);
    let shown = json(&config, &["exceptions", "show", &first, "--format", "json"]);
    assert_eq!(shown["state"], "closed", "the push succeeded, so it closed by itself: {shown}");
    let steps: Vec<(String, String)> = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap().to_string(), a["actor"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("opened", "shipledger"), ("acknowledge", "cli:ana"), ("assign", "ana@ops"), ("retry", "ben"), ("closed", "shipledger")];
    assert_eq!(steps, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    let retry = &shown["audit"][3];
    assert_eq!((retry["before"]["job"]["state"].as_str(), retry["after"]["job"]["state"].as_str()), (Some("dead"), Some("pending")));
    assert_eq!(retry["note"], "store mapped");
    // Retrying a closed one is refused.
    let why = refused(&config, &["exceptions", "retry", &first]);
    assert!(why.contains("closed already"), "{why}");

    // The order reached ShipStation, and its timeline tells who did what.
    let story = json(&config, &["timeline", &first_order, "--format", "json"]);
    assert_eq!(story["order"]["state"], "pushed", "{story}");
    let kinds: Vec<&str> = story["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for step in ["exception_acknowledged", "exception_assigned", "exception_retried", "pushed"] {
        assert!(kinds.contains(&step), "{step} missing from {kinds:?}");
    }
    let assigned = story["events"].as_array().unwrap().iter().find(|e| e["kind"] == "exception_assigned").unwrap();
    assert!(assigned["message"].as_str().unwrap().contains("ana@ops assigned exception"), "{assigned}");

    // The second is ignored with a reason (and only with one); the third stays open.
    let why = refused(&config, &["exceptions", "ignore", &second, "--note", ""]);
    assert!(why.contains("note"), "{why}");
    ok(&config, &["exceptions", "ignore", &second, "--note", "a test order; cancelled in the ERP next week"]);
    let live: Vec<String> = json(&config, &["exceptions", "list", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap().to_string())
        .collect();
    assert_eq!(live, vec![third.clone()], "only the third is still live");
    let ignored = json(&config, &["exceptions", "list", "--state", "ignored", "--format", "json"]);
    assert_eq!(ignored[0]["note"], "a test order; cancelled in the ERP next week");
    let human = ok(&config, &["exceptions", "show", &second]);
    assert!(human.contains("audit log:") && human.contains("ignore") && human.contains("cli:ana"), "{human}");

    // The third needs a ShipStation service: Ben edits it in shipledger and retries.
    // The ERP's weights are not shipledger's to edit: refused, and told where.
    let why = refused(&config, &["exceptions", "edit", &third, "--set", "weight=500"]);
    assert!(why.contains("correct it on the product in the ERP"), "{why}");
    let why = refused(&config, &["exceptions", "edit", &third, "--set", "service_code"]);
    assert!(why.contains("FIELD=VALUE"), "{why}");
    let out = ok(&config, &["exceptions", "edit", &third, "--set", "service_code=ups_ground", "--set", "confirmation=signature", "--as", "ben"]);
    assert!(out.contains("runs again now") && out.contains("ups_ground"), "{out}");
    ok(&config, &["sync", "--once"]);
    let shown = json(&config, &["exceptions", "show", &third, "--format", "json"]);
    assert_eq!(shown["state"], "closed", "the edited push went through: {shown}");
    let edit = shown["audit"].as_array().unwrap().iter().find(|a| a["action"] == "edit").expect("the edit is audited");
    assert_eq!((edit["actor"].as_str(), &edit["before"]["overrides"], &edit["after"]["overrides"]), (Some("ben"), &serde_json::json!({}), &serde_json::json!({"confirmation": "signature", "service_code": "ups_ground"})));
    let with_service = ss.read_world(|w| w.orders.values().filter(|o| o.visible() && o.service_code.as_deref() == Some("ups_ground")).count());
    assert_eq!(with_service, 1, "only the edited order carries the service");

    ss.shutdown().await;
    erp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_acknowledge_assign_retry_and_ignore_exceptions_from_the_terminal_each_step_audited_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exceptions_are_worked_from_the_terminal(format!("sqlite://{}", dir.path().join("store.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_acknowledge_assign_retry_and_ignore_exceptions_from_the_terminal_each_step_audited_on_postgres() {
    crate::crash::on_postgres(exceptions_are_worked_from_the_terminal).await;
}
