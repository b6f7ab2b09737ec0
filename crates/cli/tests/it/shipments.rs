//! Shipments come back through `shipledger serve`: by webhooks (delivered twice each,
//! and nothing is written twice; polling stays on for voids, which v1 never
//! announces), or by polling alone when every webhook is dropped — the same end state
//! in the ERP either way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use shipledger_sandbox::erp::model::FulfilmentStatus;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig, SandboxErpHandle};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

use crate::support::{Process, TestConfig, post_json, v1_get, wait_until, write_config};

const ORDERS: usize = 6;
const AUTH: (&str, &str) = ("sandbox-key", "sandbox-secret");

/// Start both sandboxes and `serve`; returns them, and `serve`'s log, once every order
/// is in ShipStation.
async fn start(webhooks: bool, poll: &str, dir: &Path) -> (SandboxHandle, SandboxErpHandle, Process, PathBuf) {
    let ss = Sandbox::start(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let plan = Traffic::plan(TrafficConfig { orders: ORDERS, seed: 21, shares: TrafficShares::none(), ..TrafficConfig::default() });
    plan.apply(&erp.base_url()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_config(
        dir,
        &TestConfig {
            store_url: &format!("sqlite://{}", dir.join("s.db").display()),
            listen: Some(&format!("127.0.0.1:{port}")),
            connection: "acme",
            env: "W",
            erp: &erp.base_url(),
            ss: &ss.base_url(),
            v2: true,
            webhooks: true,
            policy: &format!("poll_interval = \"1s\"\nshipment_poll_interval = \"{poll}\""),
        },
    );
    let log = dir.join("serve.log");
    let serve = Process(
        Command::new(env!("CARGO_BIN_EXE_shipledger"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("W_ERP_KEY", "sandbox-erp-key")
            .env("W_SS_KEY", "sandbox-key")
            .env("W_SS_SECRET", "sandbox-secret")
            .env("W_SS_V2_KEY", "sandbox-v2-key")
            .env("W_HOOK_TOKEN", "hook-token-123")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    if webhooks {
        for event in ["SHIP_NOTIFY", "FULFILLMENT_SHIPPED"] {
            let r = http
                .post(format!("{}/webhooks/subscribe", ss.base_url()))
                .basic_auth(AUTH.0, Some(AUTH.1))
                .json(&json!({"target_url": format!("{base}/webhooks/shipstation/acme/hook-token-123"), "event": event}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        let r = http
            .post(format!("{}/v2/environment/webhooks", ss.base_url()))
            .header("API-Key", "sandbox-v2-key")
            .json(&json!({"url": format!("{base}/webhooks/shipstation-v2/acme"), "event": "track"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    wait_until("every order in ShipStation", Duration::from_secs(60), &log, async || ss.stats()["orders"] == json!(ORDERS)).await;
    (ss, erp, serve, log)
}

/// Label every order (the first two in two parcels, one voided and re-made), scan
/// every live label, and wait for the ERP to show them all completed.
async fn ship_everything(ss: &SandboxHandle, erp: &SandboxErpHandle, log: &Path) {
    let http = reqwest::Client::new();
    let orders = v1_get(&http, &ss.base_url(), "/orders?pageSize=500", AUTH).await;
    let control = format!("{}/_sandbox", ss.base_url());
    let mut live = Vec::new();
    for (n, order) in orders["orders"].as_array().unwrap().iter().enumerate() {
        let id = order["orderId"].as_i64().unwrap();
        let items = order["items"].as_array().unwrap();
        if n < 2 && items.len() > 1 {
            let first = post_json(&http, &format!("{control}/orders/{id}/labels"), json!({"items": [{"lineItemKey": items[0]["lineItemKey"]}]})).await;
            live.push(first["trackingNumber"].as_str().unwrap().to_string());
        }
        let label = post_json(&http, &format!("{control}/orders/{id}/labels"), json!({})).await;
        if n == 2 {
            let shipment = label["shipment"]["shipmentId"].as_i64().unwrap();
            // Let the packed write happen, then void and re-label.
            tokio::time::sleep(Duration::from_secs(3)).await;
            post_json(&http, &format!("{control}/shipments/{shipment}/void"), json!({})).await;
            let again = post_json(&http, &format!("{control}/orders/{id}/labels"), json!({})).await;
            live.push(again["trackingNumber"].as_str().unwrap().to_string());
        } else {
            live.push(label["trackingNumber"].as_str().unwrap().to_string());
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for number in &live {
        post_json(&http, &format!("{control}/tracking/events"), json!({"trackingNumber": number, "statusCode": "NY", "statusDetailCode": "ELEC_ADVICE_RECD_BY_CARRIER"})).await;
        post_json(&http, &format!("{control}/tracking/events"), json!({"trackingNumber": number, "statusCode": "IT"})).await;
    }
    let expected = live.clone();
    wait_until("every live label completed in the ERP", Duration::from_secs(90), log, async || {
        let world = erp.snapshot();
        let completed: Vec<&str> = world
            .fulfilments
            .values()
            .filter(|f| f.state == FulfilmentStatus::Completed)
            .flat_map(|f| f.packages.iter().map(|p| p.tracking_number.as_str()))
            .collect();
        expected.iter().all(|n| completed.contains(&n.as_str()))
    })
    .await;
    let world = erp.snapshot();
    let completed: Vec<String> = world
        .fulfilments
        .values()
        .filter(|f| f.state == FulfilmentStatus::Completed)
        .flat_map(|f| f.packages.iter().map(|p| p.tracking_number.clone()))
        .collect();
    let mut a = completed.clone();
    a.sort();
    let mut b = live.clone();
    b.sort();
    assert_eq!(a, b, "exactly the live tracking numbers are completed; the voided one is not");
    assert!(
        world.fulfilments.values().all(|f| f.completed_at.is_none() || f.packed_at.is_some()),
        "every completed fulfilment was packed first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_delivered_twice_bring_shipments_back_once() {
    let dir = tempfile::tempdir().unwrap();
    // Polling stays on as the fallback: v1 has no void webhook, only the void window.
    let (ss, erp, _serve, log) = start(true, "3s", dir.path()).await;
    let http = reqwest::Client::new();
    let r = http.put(format!("{}/_sandbox/faults", ss.base_url())).json(&json!({"webhook_duplicate": 1.0})).send().await.unwrap();
    assert!(r.status().is_success());
    ship_everything(&ss, &erp, &log).await;
    let stats = ss.stats();
    assert!(stats["webhooks"]["duplicated"].as_u64().unwrap() > 0, "{stats}");
    // Nothing written twice: one fulfilment document per label, each written once per
    // phase (packed then completed, or packed then cancelled for the voided label; a
    // label scanned before its packed write goes straight to completed), and no write
    // the ERP refused. The re-made label comes by webhook before the old one's void
    // (polled: v1 announces none); its write waits for that reversal, it is not sent
    // to be refused for lines still on the old label's fulfilment.
    let stats = erp.stats();
    let writes = stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("POST") && k.contains("fulfilments"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum::<u64>();
    let docs = erp.snapshot().fulfilments.len() as u64;
    assert_eq!(stats["refusals"], json!({}), "the ERP refused writes: {stats}");
    assert!(writes <= docs * 2, "{writes} fulfilment writes for {docs} documents: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_webhook_dropped_polling_alone_reaches_the_same_end() {
    let dir = tempfile::tempdir().unwrap();
    let (ss, erp, _serve, log) = start(true, "1s", dir.path()).await;
    let http = reqwest::Client::new();
    let r = http.put(format!("{}/_sandbox/faults", ss.base_url())).json(&json!({"webhook_drop": 1.0})).send().await.unwrap();
    assert!(r.status().is_success());
    ship_everything(&ss, &erp, &log).await;
    assert_eq!(ss.stats()["webhooks"]["delivered"], json!(0));
}
