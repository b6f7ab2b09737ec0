//! `shipledger demo --until-idle --report`: the whole product, end to end, as a user
//! runs it; and a demo stopped with Ctrl-C part-way, which drains its engine and
//! still reports.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipledger_store::{JobFilter, JobState, OrderState};

use crate::support::{Process, wait_until};

#[test]
fn the_demo_releases_the_good_orders_once_and_holds_each_bad_one_with_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_shipledger"))
        .args(["demo", "--orders", "150", "--seed", "3", "--until-idle", "--spread", "5", "--timeout", "600", "--report"])
        .arg(&report)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("the shipledger binary runs");
    assert!(out.status.success(), "demo failed:\n{}", String::from_utf8_lossy(&out.stderr));
    // The logs are in the run's directory, said first, and never on the display.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log_path = dir.path().join("shipledger.log");
    assert_eq!(stderr.lines().next(), Some(format!("shipledger demo: logs go to {}", log_path.display()).as_str()), "{stderr}");
    let log = std::fs::read_to_string(&log_path).expect("the demo wrote its log file");
    assert!(log.contains("sandbox shipstation listening"), "the sandboxes' start is logged:\n{log}");
    assert!(!stderr.contains(" INFO ") && !stderr.contains("sandbox shipstation listening"), "no log line on stderr:\n{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["idle"], json!(true));
    assert_eq!(r["orders"]["generated"], json!(150));
    let released = r["orders"]["released"].as_u64().unwrap();
    assert!(released > 100, "{r}");
    assert_eq!(r["shipstation"]["orders"].as_u64(), Some(released), "one ShipStation order per released ERP order");
    assert_eq!(r["shipstation"]["duplicate_order_keys"], json!(0));
    assert_eq!(r["shipstation"]["duplicate_order_numbers"], json!(0));
    assert_eq!(r["shipstation"]["rate_limited"], json!(0));
    for reason in ["unpaid", "missing_weight", "unknown_sku", "incomplete_address"] {
        assert!(r["orders"]["held"][reason].as_u64().unwrap_or(0) > 0, "no {reason} held: {r}");
        assert_eq!(
            r["orders"]["held"][reason], r["exceptions"]["open"][format!("held_{reason}")],
            "each held order has its open exception"
        );
    }
    assert_eq!(r["orders"]["outcome_mismatches"], json!([]));
    assert_eq!(r["checks"]["released_orders_not_exactly_once_in_shipstation"], json!([]));
    assert_eq!(r["checks"]["unreleased_orders_in_shipstation"], json!([]));
    assert_eq!(r["checks"]["held_orders_without_an_open_exception"], json!([]));
    let createorders = r["shipstation"]["requests"]["createorders"].as_u64().unwrap();
    assert!(createorders >= 2 && createorders < released, "orders were batched: {createorders}");
    // The warehouse split orders into a next parcel or voided labels and made them
    // again: more labels than orders.
    assert!(r["shipstation"]["shipments"].as_u64().unwrap() > released, "{r}");

    // Shipments came back: packed on label, completed only after the first scan.
    let f = &r["fulfilment"];
    assert!(f["completed"].as_u64().unwrap() > 50, "{f}");
    assert_eq!(f["completed_before_first_scan"], json!(0), "{f}");
    assert_eq!(f["line_quantity_mismatches"], json!(0), "{f}");
    assert_eq!(f["checks"]["labelled_and_scanned_but_not_completed"], json!([]), "{f}");
    assert_eq!(f["checks"]["completed_with_a_voided_tracking_number"], json!([]), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_part_way_drains_the_engine_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let log = dir.path().join("shipledger.log");
    // Without --until-idle the demo runs until Ctrl-C.
    let mut demo = Process(
        Command::new(env!("CARGO_BIN_EXE_shipledger"))
            .args(["demo", "--orders", "200", "--seed", "5", "--report"])
            .arg(&report)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the shipledger binary runs"),
    );
    let store_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let mut store = None;
    wait_until("the demo to push orders", Duration::from_secs(120), &log, async || {
        if store.is_none() && dir.path().join("demo.db").exists() {
            store = shipledger_store::open(&store_url).await.ok();
        }
        let Some(s) = &store else { return false };
        let counts = s.count_orders_by_state("demo").await.unwrap_or_default();
        counts.iter().any(|(state, n)| *state == OrderState::Pushed && *n > 0)
    })
    .await;
    let store = store.unwrap();

    // Ctrl-C while the engine works.
    assert_eq!(unsafe { libc::kill(demo.0.id() as libc::pid_t, libc::SIGINT) }, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the demo did not stop within 30 s of Ctrl-C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the demo exits 0 on Ctrl-C: {status}");

    // The report says it was interrupted, and counts what there was.
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("the report is written")).unwrap();
    assert_eq!(r["idle"], json!(false), "{r}");
    assert!(r["shipstation"]["orders"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["checks"]["unreleased_orders_in_shipstation"], json!([]), "{r}");
    // The engine drained: no job and no recurring pass is left leased to it.
    let running = store
        .list_jobs(JobFilter { connection: Some("demo".into()), kind: None, state: Some(JobState::Running), limit: 0 })
        .await
        .unwrap();
    assert!(running.is_empty(), "{} job(s) still leased after Ctrl-C", running.len());
    let leased: Vec<String> =
        store.list_schedules(Some("demo")).await.unwrap().into_iter().filter(|s| s.lease_token.is_some()).map(|s| s.name).collect();
    assert!(leased.is_empty(), "passes still leased after Ctrl-C: {leased:?}");
}
