//! `shipledger costs list|show` shows the cost ledger the engine keeps: an order
//! labelled twice, one label voided, is listed as each charge in its currency with
//! the void's reversals, filterable by order and label day, as a table, JSON or CSV;
//! `costs show` gives one entry in full by id or key; the order's timeline shows the
//! costs recorded and reversed. The engine runs as `shipledger sync --once`, on
//! SQLite and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Sandbox, SandboxConfig};

use crate::support::{post_json, v1_get};

const AUTH: (&str, &str) = ("sandbox-key", "sandbox-secret");

fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shipledger"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("T_ERP_KEY", "sandbox-erp-key")
        .env("T_SS_KEY", AUTH.0)
        .env("T_SS_SECRET", AUTH.1)
        .env("T_SS_V2_KEY", "sandbox-v2-key")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the shipledger binary runs")
}

fn shipledger(config: &Path, args: &[&str]) -> String {
    let out = run(config, args);
    assert!(out.status.success(), "shipledger {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn the_cost_ledger_lists_each_charge_and_each_reversal(store_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let plan = Traffic::plan(TrafficConfig { orders: 3, seed: 7, shares: TrafficShares::none(), ..TrafficConfig::default() });
    plan.apply(&erp.base_url()).await.unwrap();
    let config = dir.path().join("shipledger.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "{store_url}"
[[connections]]
name = "acme"
[connections.erp]
kind = "sandbox"
url = "{erp}"
api_key_env = "T_ERP_KEY"
[connections.shipstation]
base_url = "{ss}"
api_key_env = "T_SS_KEY"
api_secret_env = "T_SS_SECRET"
account_currency = "GBP"
v2_base_url = "{ss}"
v2_api_key_env = "T_SS_V2_KEY"
[connections.policy]
shipment_poll_interval = "1s"
"#,
            erp = erp.base_url(),
            ss = ss.base_url(),
        ),
    )
    .unwrap();
    let sync = || shipledger(&config, &["sync", "--once"]);
    sync();

    let http = reqwest::Client::new();
    let base = ss.base_url();
    let orders = v1_get(&http, &base, "/orders?pageSize=500", AUTH).await;
    let order = orders["orders"].as_array().unwrap().first().expect("an order reached ShipStation").clone();
    let id = order["orderId"].as_i64().unwrap();
    let erp_id = order["advancedOptions"]["customField1"].as_str().unwrap().to_string();

    // Labelled with insurance, voided, labelled again without.
    let first = post_json(&http, &format!("{base}/_sandbox/orders/{id}/labels"), json!({"carrierCode": "royal_mail", "shipmentCost": 3.85, "insuranceCost": 1.2, "currency": "GBP"})).await;
    sync();
    post_json(&http, &format!("{base}/_sandbox/shipments/{}/void", first["shipment"]["shipmentId"]), json!({})).await;
    let second = post_json(&http, &format!("{base}/_sandbox/orders/{id}/labels"), json!({"carrierCode": "royal_mail", "shipmentCost": 4.10, "currency": "GBP"})).await;
    sync();
    sync();

    let listed: Value = serde_json::from_str(&shipledger(&config, &["costs", "list", "--order", &erp_id, "--format", "json"])).unwrap();
    let rows: Vec<(String, String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["entry_key"].as_str().unwrap().into(), e["kind"].as_str().unwrap().into(), e["amount"].as_str().unwrap().into(), e["currency"].as_str().unwrap().into()))
        .collect();
    let (a, b) = (first["shipment"]["shipmentId"].as_i64().unwrap(), second["shipment"]["shipmentId"].as_i64().unwrap());
    let row = |key: String, kind: &str, amount: &str| (key, kind.to_string(), amount.to_string(), "GBP".to_string());
    assert_eq!(
        rows,
        vec![
            row(format!("label:{a}/postage/0"), "label", "3.85"),
            row(format!("label:{a}/insurance/0"), "label", "1.20"),
            row(format!("label:{a}/postage/0/void"), "void_reversal", "-3.85"),
            row(format!("label:{a}/insurance/0/void"), "void_reversal", "-1.20"),
            row(format!("label:{b}/postage/0"), "label", "4.10"),
        ],
        "v1's numbers in the account currency, the void's reversals, the new label: nothing twice after two more polls"
    );
    assert!(listed.as_array().unwrap().iter().all(|e| e["erp_id"] == json!(erp_id) && e["carrier"] == "royal_mail"));

    // The table ends with the net per currency and how many wait for a rate; GBP
    // entries of a GBP ERP convert as they are.
    let table = shipledger(&config, &["costs", "list", "--connection", "acme", "--order", &erp_id]);
    assert!(table.lines().last().unwrap() == "5 entries; net 4.10 GBP; 0 waiting for a rate", "{table}");
    assert!(table.contains("-3.85 GBP") && table.contains("(identity,"), "{table}");

    // CSV: a header and one line per entry.
    let csv = shipledger(&config, &["costs", "list", "--format", "csv", "--order", &erp_id]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,connection,entry_key,kind,charge"), "{csv}");
    assert_eq!(lines.len(), 6);
    assert!(lines[3].contains(&format!("label:{a}/postage/0/void,void_reversal,postage,0,-3.85,GBP")), "{csv}");

    // Label days: today's labels, none tomorrow.
    let made: jiff::Timestamp = listed[4]["label_created_at"].as_str().unwrap().parse().unwrap();
    let today = made.strftime("%Y-%m-%d").to_string();
    let tomorrow = (made + jiff::SignedDuration::from_hours(24)).strftime("%Y-%m-%d").to_string();
    let since: Value = serde_json::from_str(&shipledger(&config, &["costs", "list", "--since", &tomorrow, "--format", "json"])).unwrap();
    assert_eq!(since, json!([]));
    let day: Value = serde_json::from_str(&shipledger(&config, &["costs", "list", "--since", &today, "--until", &today, "--format", "json"])).unwrap();
    assert_eq!(day.as_array().unwrap().len(), 5, "the labels were made within the same UTC day: {day}");

    // One entry in full, by id and by key; the reversal names what it reverses.
    let reversal = &listed[2];
    let shown = shipledger(&config, &["costs", "show", &reversal["id"].to_string()]);
    assert!(shown.contains(&format!("reverses:     entry {} (label:{a}/postage/0)", listed[0]["id"])), "{shown}");
    assert!(shown.contains("amount:       -3.85 GBP"), "{shown}");
    let by_key: Value = serde_json::from_str(&shipledger(&config, &["costs", "show", reversal["entry_key"].as_str().unwrap(), "--format", "json"])).unwrap();
    assert_eq!(&by_key, reversal);

    // The order's timeline tells the costs too.
    let timeline = shipledger(&config, &["timeline", &erp_id]);
    assert_eq!(timeline.lines().filter(|l| l.contains("cost_recorded")).count(), 3, "{timeline}");
    assert_eq!(timeline.lines().filter(|l| l.contains("cost_reversed")).count(), 2, "{timeline}");

    // Bad usage is exit 2; an entry that does not exist is 1.
    assert_eq!(run(&config, &["costs", "list", "--since", "last week"]).status.code(), Some(2));
    assert_eq!(run(&config, &["costs", "list", "--connection", "nobody"]).status.code(), Some(2));
    let missing = run(&config, &["costs", "show", "999999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no cost entry 999999"));
    ss.shutdown().await;
    erp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_labelled_voided_and_labelled_again_lists_its_costs_and_reversals_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_cost_ledger_lists_each_charge_and_each_reversal(format!("sqlite://{}", dir.path().join("store.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_labelled_voided_and_labelled_again_lists_its_costs_and_reversals_on_postgres() {
    crate::crash::on_postgres(the_cost_ledger_lists_each_charge_and_each_reversal).await;
}
