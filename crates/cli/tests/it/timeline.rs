//! `shipledger timeline` tells an order's whole story: an order split in ShipStation,
//! labelled in two parcels, one label voided and made again, both live labels scanned
//! — every step listed in order with its tracking number, the header showing
//! ShipStation's status now, and a held order's reasons in words, never raw JSON. The
//! engine runs as `shipledger sync --once` between the warehouse's steps, on SQLite and
//! on PostgreSQL.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Sandbox, SandboxConfig};

use crate::support::{TestConfig, post_json, v1_get, write_config};

const AUTH: (&str, &str) = ("sandbox-key", "sandbox-secret");

fn shipledger(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shipledger"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("T_ERP_KEY", "sandbox-erp-key")
        .env("T_SS_KEY", AUTH.0)
        .env("T_SS_SECRET", AUTH.1)
        .env("T_SS_V2_KEY", "sandbox-v2-key")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the shipledger binary runs");
    assert!(out.status.success(), "shipledger {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn the_timeline_tells_the_whole_story(store_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let shares = TrafficShares { zero_weight: 0.3, ..TrafficShares::none() };
    let plan = Traffic::plan(TrafficConfig { orders: 10, seed: 21, shares, ..TrafficConfig::default() });
    plan.apply(&erp.base_url()).await.unwrap();
    let config = write_config(
        dir.path(),
        &TestConfig {
            store_url: &store_url,
            listen: None,
            connection: "acme",
            env: "T",
            erp: &erp.base_url(),
            ss: &ss.base_url(),
            v2: true,
            webhooks: false,
            policy: "shipment_poll_interval = \"1s\"",
        },
    );
    let sync = || shipledger(&config, &["sync", "--once"]);
    sync();

    // An order of two or more lines, in ShipStation.
    let http = reqwest::Client::new();
    let base = ss.base_url();
    let orders = v1_get(&http, &base, "/orders?pageSize=500", AUTH).await;
    let order = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["items"].as_array().unwrap().iter().filter(|i| i["adjustment"] != json!(true)).count() >= 2)
        .expect("the plan has a multi-line order")
        .clone();
    let id = order["orderId"].as_i64().unwrap();
    let erp_id = order["advancedOptions"]["customField1"].as_str().unwrap().to_string();
    let second_line = order["items"][1]["lineItemKey"].as_str().unwrap().to_string();

    // The warehouse splits the second line into its own order and labels both parts.
    let child = post_json(&http, &format!("{base}/_sandbox/orders/{id}/split"), json!({"items": [{"lineItemKey": second_line}]})).await;
    let child_id = child["orderId"].as_i64().unwrap();
    let a = post_json(&http, &format!("{base}/_sandbox/orders/{child_id}/labels"), json!({"carrierCode": "ups"})).await;
    let b = post_json(&http, &format!("{base}/_sandbox/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
    sync();
    // The parent's label is voided and made again.
    post_json(&http, &format!("{base}/_sandbox/shipments/{}/void", b["shipment"]["shipmentId"]), json!({})).await;
    let c = post_json(&http, &format!("{base}/_sandbox/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
    sync();
    // The carrier scans both live parcels.
    let [a, b, c] = [&a, &b, &c].map(|l| l["trackingNumber"].as_str().unwrap().to_string());
    for number in [&a, &c] {
        post_json(&http, &format!("{base}/_sandbox/tracking/events"), json!({"trackingNumber": number, "statusCode": "IT"})).await;
    }
    sync();

    let story: Value = serde_json::from_str(&shipledger(&config, &["timeline", &erp_id, "--format", "json"])).unwrap();
    let steps: Vec<(String, String)> = story["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["tracking_number"].as_str().unwrap_or("-").to_string()))
        .collect();
    // Each cost entry is converted to the base currency once, after it is recorded,
    // whenever the converter's pass comes round: a's and c's postage, b's and its
    // reversal.
    let converted = |number: &str| steps.iter().filter(|(k, t)| k == "cost_converted" && t == number).count();
    assert_eq!((converted(&a), converted(&b), converted(&c)), (1, 2, 1), "{steps:?}");
    for number in [&a, &b, &c] {
        let recorded = steps.iter().position(|(k, t)| k == "cost_recorded" && t == number).unwrap();
        let first_converted = steps.iter().position(|(k, t)| k == "cost_converted" && t == number).unwrap();
        assert!(recorded < first_converted, "{number}: {steps:?}");
    }
    let steps: Vec<(String, String)> = steps.into_iter().filter(|(k, _)| k != "cost_converted").collect();
    let expected: Vec<(String, String)> = [
        ("released", "-"),
        ("pushed", "-"),
        ("label_seen", a.as_str()),
        ("cost_recorded", a.as_str()),
        ("label_seen", b.as_str()),
        ("cost_recorded", b.as_str()),
        ("erp_packed", a.as_str()),
        ("erp_packed", b.as_str()),
        ("voided", b.as_str()),
        ("cost_reversed", b.as_str()),
        ("label_seen", c.as_str()),
        ("cost_recorded", c.as_str()),
        ("erp_cancelled", b.as_str()),
        ("erp_packed", c.as_str()),
        ("first_scan", a.as_str()),
        ("first_scan", c.as_str()),
        ("erp_completed", a.as_str()),
        ("erp_completed", c.as_str()),
        ("shipped", "-"),
    ]
    .iter()
    .map(|(k, t)| (k.to_string(), t.to_string()))
    .collect();
    assert_eq!(steps, expected, "{story:#}");
    assert!(story["events"].as_array().unwrap().iter().all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty())));
    let status = story["order"]["shipstation_status"].as_str().unwrap();
    assert!(status.starts_with("shipped") && status.contains(&a) && status.contains(&c) && !status.contains(&b), "{status}");

    let table = shipledger(&config, &["timeline", &erp_id]);
    let header = table.lines().next().unwrap();
    assert!(header.contains(&format!("ShipStation #{id} shipped")), "{table}");
    for number in [&a, &b, &c] {
        assert!(table.lines().skip(1).any(|l| l.contains("label_seen") && l.contains(number.as_str())), "{table}");
    }
    assert!(table.lines().any(|l| l.contains("voided") && l.contains(b.as_str())), "{table}");

    // A held order reads as its reasons.
    let store = shipledger_store::open(&store_url).await.unwrap();
    let held = store
        .list_orders(shipledger_store::OrderFilter { state: Some(shipledger_store::OrderState::Held), limit: 10, ..Default::default() })
        .await
        .unwrap();
    let held = held.first().expect("the plan has an order without weight");
    let table = shipledger(&config, &["timeline", &held.erp_id]);
    // AT is two words, EVENT the third.
    let row = table.lines().find(|l| l.split_whitespace().nth(2) == Some("held")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("weight") && !row.contains('{'), "a hold prints its reasons in words: {table}");
    ss.shutdown().await;
    erp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_voided_relabelled_scanned_order_has_every_step_on_its_timeline_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_timeline_tells_the_whole_story(format!("sqlite://{}", dir.path().join("store.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_voided_relabelled_scanned_order_has_every_step_on_its_timeline_on_postgres() {
    crate::crash::on_postgres(the_timeline_tells_the_whole_story).await;
}
