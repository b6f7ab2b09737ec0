//! `shipledger reconcile` from a terminal: three orders pushed by `sync`, then an
//! order typed into ShipStation by hand in our store and one in another store; the
//! run names the hand-made one in our store (ops) and nothing else, as a table, as
//! JSON and as CSV; its exception is live in `exceptions list`; cancelled in
//! ShipStation, the next (incremental) run closes it. On SQLite and PostgreSQL.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Sandbox, SandboxConfig};

use crate::support::{TestConfig, write_config};

fn shipledger(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shipledger"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("T_ERP_KEY", "sandbox-erp-key")
        .env("T_SS_KEY", "sandbox-key")
        .env("T_SS_SECRET", "sandbox-secret")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the shipledger binary runs");
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (code, out, err) = shipledger(config, args);
    assert_eq!(code, Some(0), "shipledger {args:?} failed: {err}");
    out
}

async fn by_hand(ss: &str, number: &str, store: i64) -> i64 {
    let body = json!({
        "orderNumber": number,
        "orderKey": format!("hand-{number}"),
        "orderDate": "2026-11-30T10:00:00.0000000",
        "orderStatus": "awaiting_shipment",
        "billTo": {"name": "Walk In"},
        "shipTo": {"name": "Walk In", "street1": "1 High St", "city": "Bath", "state": "Somerset", "postalCode": "BA1 1AA", "country": "GB"},
        "items": [{"lineItemKey": "h1", "sku": "MUG", "name": "Mug", "quantity": 1, "unitPrice": 5.0}],
        "advancedOptions": {"storeId": store},
    });
    let r: Value = reqwest::Client::new()
        .post(format!("{ss}/orders/createorder"))
        .basic_auth("sandbox-key", Some("sandbox-secret"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["orderId"].as_i64().unwrap_or_else(|| panic!("createorder: {r}"))
}

async fn reconciled_from_the_terminal(store_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap()).await.unwrap();
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
            policy: "reconcile_grace = \"0s\"\n",
        },
    );
    // Our store only: a shared account's other store is not ours to judge.
    let text = std::fs::read_to_string(&config).unwrap().replace("[connections.shipstation]\n", "[connections.shipstation]\nstore_ids = [310001]\n");
    std::fs::write(&config, text).unwrap();

    ok(&config, &["sync", "--once"]);
    let clean = ok(&config, &["reconcile"]);
    assert!(clean.contains("ERP, ledger and ShipStation agree"), "{clean}");

    let hand = by_hand(&ss.base_url(), "HAND-1", 310_001).await;
    by_hand(&ss.base_url(), "MARKET-1", 310_002).await;
    let run: Value = serde_json::from_str(&ok(&config, &["reconcile", "--format", "json"])).unwrap();
    let findings = run[0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{run:#}");
    assert_eq!(
        (findings[0]["kind"].as_str(), findings[0]["owner"].as_str(), findings[0]["record_id"].as_str()),
        (Some("unknown_shipstation_order"), Some("ops"), Some(hand.to_string().as_str()))
    );
    assert_eq!(run[0]["mode"], "incremental", "after a full run, only what changed is read");
    let csv = ok(&config, &["reconcile", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("connection,run,kind,owner") && lines[1].contains("unknown_shipstation_order"), "{csv}");
    let live = ok(&config, &["exceptions", "list", "--kind", "unknown_shipstation_order"]);
    assert!(live.contains(&hand.to_string()), "{live}");

    // Cancelled in ShipStation: the next run closes it.
    ss.edit_world(|w| {
        let o = w.orders.get_mut(&hand).unwrap();
        o.order_status = "cancelled".into();
        o.modify_date = jiff::Timestamp::now();
    });
    let table = ok(&config, &["reconcile"]);
    assert!(table.contains("agree") && table.contains("1 closed"), "{table}");

    let (code, _, err) = shipledger(&config, &["reconcile", "--connection", "nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no such connection"), "{err}");
    let (code, _, err) = shipledger(&config, &["reconcile", "--since", "last week"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--since"), "{err}");

    // A worker killed mid-run left its run `running`, and another worker (a `serve`)
    // holds the connection's reconcile pass: one run at a time, so this one waits.
    let store = shipledger_store::open(&store_url).await.unwrap();
    let now = jiff::Timestamp::now();
    let stale = store.start_reconcile_run("acme", shipledger_store::ReconcileMode::Full, now, now).await.unwrap();
    let take = shipledger_store::ScheduleTake {
        connection: "acme",
        name: "reconcile",
        now,
        lease: jiff::SignedDuration::from_mins(10),
        force: true,
        worker: "serve-elsewhere",
    };
    store.take_schedule(take).await.unwrap().expect("the other worker takes the pass");
    let (code, _, err) = shipledger(&config, &["reconcile"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("in progress on another worker"), "{err}");
    // That worker stops and gives its leases back: the next run marks the stale run failed.
    store.release_leases("serve-elsewhere", jiff::Timestamp::now()).await.unwrap();
    ok(&config, &["reconcile"]);
    let stale = store.get_reconcile_run(stale.id).await.unwrap().unwrap();
    assert_eq!(stale.state, shipledger_store::ReconcileState::Failed);
    assert!(stale.error.as_deref().unwrap_or("").contains("abandoned"), "{stale:?}");

    ss.shutdown().await;
    erp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_from_the_terminal_names_a_hand_made_order_in_our_store_and_closes_it_once_cancelled_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    reconciled_from_the_terminal(format!("sqlite://{}", dir.path().join("store.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_from_the_terminal_names_a_hand_made_order_in_our_store_and_closes_it_once_cancelled_on_postgres() {
    crate::crash::on_postgres(reconciled_from_the_terminal).await;
}
