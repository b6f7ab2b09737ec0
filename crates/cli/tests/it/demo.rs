//! `shipledger demo --until-idle --report`: the whole product, end to end, as a user
//! runs it.

use std::process::Command;

use serde_json::{Value, json};

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

    // Shipments came back: packed on label, completed only after the first scan.
    let f = &r["fulfilment"];
    assert!(f["completed"].as_u64().unwrap() > 50, "{f}");
    assert_eq!(f["completed_before_first_scan"], json!(0), "{f}");
    assert_eq!(f["line_quantity_mismatches"], json!(0), "{f}");
    assert_eq!(f["checks"]["labelled_and_scanned_but_not_completed"], json!([]), "{f}");
    assert_eq!(f["checks"]["completed_with_a_voided_tracking_number"], json!([]), "{f}");
}
