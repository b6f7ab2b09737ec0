//! Pushing: batches, propagation of ERP changes, exactly-once under faults, and a
//! ledger that agrees with ShipStation after lost answers.

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::order::{ErpOrder, ErpOrderStatus};
use shipledger_shipstation::v1::model::OrderStatus;
use shipledger_store::{ExceptionFilter, ExceptionState, JobClaim, JobFilter, JobState, OrderState};

use shipledger_core::clock::{Clock, ManualClock};

use crate::helpers::{Backend, World, paid_order};

/// `createorders` requests the sandbox has answered so far.
async fn createorders_sent(w: &World) -> u64 {
    w.stats().await["requests"]["POST /orders/createorders"].as_u64().unwrap_or(0)
}

/// How far a story's manual clock moves between passes while it waits out retry
/// backoffs and leases: forty steps are more than three minutes, under the five of
/// the recheck interval.
const WAIT_STEP: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

/// Settle until `done` holds, moving the engine's manual clock on between passes so
/// retry backoffs run out (bounded).
async fn settle_until(w: &World, clock: &ManualClock, what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..40 {
        w.settle().await;
        if done().await {
            return;
        }
        clock.advance(WAIT_STEP);
    }
    panic!("{what} did not happen");
}

async fn open_exceptions(w: &World) -> Vec<ExceptionKind> {
    w.store
        .list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn event_kinds(w: &World, erp_id: &str) -> Vec<String> {
    w.store.timeline("acme-uk", "order", erp_id).await.unwrap().into_iter().map(|e| e.kind.to_string()).collect()
}

/// A worker claims the order's push job, gets `createorders` through to ShipStation,
/// and dies before it commits anything: ShipStation has the order, our store does not
/// know, and the job comes back when its lease runs out (the engine's manual clock is
/// moved past it). Returns ShipStation's orderId.
async fn push_and_die(w: &World, clock: &ManualClock, erp_id: &str) -> i64 {
    let conn = &w.engine.connections[0];
    shipledger_engine::flows::release::poll(&w.engine, conn).await.unwrap();
    let jobs = w
        .store
        .claim_jobs(JobClaim {
            kind: shipledger_store::JobKind::SyncOrder,
            connection: Some("acme-uk"),
            now: clock.now(),
            lease: jiff::SignedDuration::from_millis(1),
            limit: 10,
            worker: "doomed",
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let record = w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap();
    let snapshot: ErpOrder = serde_json::from_value(record.snapshot.clone()).unwrap();
    let lines = w.store.order_lines("acme-uk", erp_id).await.unwrap();
    let order = shipledger_engine::flows::push::build_order(conn, &record, &snapshot, &lines, OrderStatus::AwaitingShipment);
    let answer = conn.shipstation.create_orders(&[order]).await.unwrap();
    clock.advance(jiff::SignedDuration::from_millis(5));
    answer.results[0].order_id.unwrap()
}

crate::stories! {
    async fn erp_changes_after_release_reach_the_open_shipstation_order(w: World) {
        w.erp.put(paid_order("SO-10"));
        w.settle().await;
        w.erp.edit("SO-10", |o| o.ship_to.street1 = Some("1 New Street".into()));
        w.settle().await;
        let orders = w.ss_orders("SO-10").await;
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0]["shipTo"]["street1"], json!("1 New Street"));

        w.erp.edit("SO-10", |o| o.status = ErpOrderStatus::OnHold);
        w.settle().await;
        assert_eq!(w.ss_orders("SO-10").await[0]["orderStatus"], json!("on_hold"));
        w.erp.edit("SO-10", |o| o.status = ErpOrderStatus::Open);
        w.settle().await;
        assert_eq!(w.ss_orders("SO-10").await[0]["orderStatus"], json!("awaiting_shipment"));

        w.erp.edit("SO-10", |o| o.status = ErpOrderStatus::Cancelled);
        w.settle().await;
        let orders = w.ss_orders("SO-10").await;
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0]["orderStatus"], json!("cancelled"));
        assert_eq!(w.store.get_order("acme-uk", "SO-10").await.unwrap().unwrap().state, OrderState::Cancelled);
    }

    async fn a_lost_answer_is_retried_under_the_same_order_key_without_a_duplicate(w: World) {
        let clock = w.manual_clock();
        w.put_faults(json!({"rate_500_after": 1.0, "paths": ["/orders/createorders"]})).await;
        for n in 0..30 {
            w.erp.put(paid_order(&format!("L-{n}")));
        }
        // Every createorders saves the orders and then answers 500: the engine cannot know.
        let _ = w.engine.tick().await;
        w.put_faults(json!({})).await;
        for _ in 0..20 {
            w.settle().await;
            if w.store.count_orders_by_state("acme-uk").await.unwrap() == vec![(OrderState::Pushed, 30)] {
                break;
            }
            clock.advance(WAIT_STEP);
        }
        let stats = w.stats().await;
        assert_eq!(stats["orders"], json!(30));
        assert_eq!(stats["duplicate_order_keys"], json!(0));
        assert_eq!(w.store.count_orders_by_state("acme-uk").await.unwrap(), vec![(OrderState::Pushed, 30)]);
    }

    async fn a_lost_answer_is_read_back_at_once_and_the_orders_are_never_sent_again(w: World) {
        let clock = w.manual_clock();
        w.put_faults(json!({"rate_500_after": 1.0, "paths": ["/orders/createorders"]})).await;
        for n in 0..30 {
            w.erp.put(paid_order(&format!("R-{n}")));
        }
        // Every createorders (the client's own retries too) saves the orders, then answers 500.
        let _ = w.engine.tick().await;
        let sent = createorders_sent(&w).await;
        w.put_faults(json!({})).await;
        settle_until(&w, &clock, "every order recorded as pushed", async || {
            w.store.count_orders_by_state("acme-uk").await.unwrap() == vec![(OrderState::Pushed, 30)]
        })
        .await;
        assert_eq!(createorders_sent(&w).await, sent, "what ShipStation already had was read back, not sent again");
        for n in 0..30 {
            let erp_id = format!("R-{n}");
            let record = w.store.get_order("acme-uk", &erp_id).await.unwrap().unwrap();
            let in_shipstation = w.ss_orders(&erp_id).await;
            assert_eq!(in_shipstation.len(), 1);
            assert_eq!(record.ss_order_id, in_shipstation[0]["orderId"].as_i64(), "{erp_id} is recorded with ShipStation's orderId");
            assert!(event_kinds(&w, &erp_id).await.contains(&"pushed".to_string()), "{erp_id} has its pushed event");
        }
        assert!(open_exceptions(&w).await.is_empty());
    }

    async fn an_order_shipstation_saved_and_shipped_before_the_retry_is_recorded_as_pushed_not_failed(w: World) {
        let clock = w.manual_clock();
        w.erp.put(paid_order("SO-40"));
        let order_id = push_and_die(&w, &clock, "SO-40").await;
        // The warehouse labels it before any worker retries: it can no longer be updated.
        w.control(&format!("/orders/{order_id}/labels"), json!({})).await;
        let sent = createorders_sent(&w).await;
        settle_until(&w, &clock, "SO-40 recorded", async || {
            w.store.get_order("acme-uk", "SO-40").await.unwrap().unwrap().ss_order_id.is_some()
        })
        .await;
        w.settle().await;
        let record = w.store.get_order("acme-uk", "SO-40").await.unwrap().unwrap();
        assert_eq!(record.ss_order_id, Some(order_id));
        assert_eq!(record.ss_status.as_deref(), Some("shipped"));
        assert!(event_kinds(&w, "SO-40").await.contains(&"pushed".to_string()));
        assert!(!event_kinds(&w, "SO-40").await.contains(&"sync_failed".to_string()));
        assert_eq!(createorders_sent(&w).await, sent, "nothing was sent to an order ShipStation already had");
        let jobs = w.store.list_jobs(JobFilter { kind: Some(shipledger_store::JobKind::SyncOrder), ..Default::default() }).await.unwrap();
        assert!(jobs.iter().all(|j| j.state == JobState::Done), "{jobs:?}");
        assert!(open_exceptions(&w).await.is_empty(), "{:?}", open_exceptions(&w).await);
        assert_eq!(w.ss_orders("SO-40").await.len(), 1);
    }

    async fn an_order_that_changed_after_its_lost_push_is_sent_again_as_an_update_of_shipstations_order(w: World) {
        let clock = w.manual_clock();
        w.erp.put(paid_order("SO-41"));
        let order_id = push_and_die(&w, &clock, "SO-41").await;
        w.erp.edit("SO-41", |o| o.ship_to.street1 = Some("2 Other Road".into()));
        settle_until(&w, &clock, "SO-41 recorded", async || {
            w.store.get_order("acme-uk", "SO-41").await.unwrap().unwrap().ss_order_id.is_some()
        })
        .await;
        let record = w.store.get_order("acme-uk", "SO-41").await.unwrap().unwrap();
        assert_eq!(record.ss_order_id, Some(order_id));
        assert_eq!(record.pushed_hash.as_deref(), Some(record.snapshot_hash.as_str()));
        let in_shipstation = w.ss_orders("SO-41").await;
        assert_eq!(in_shipstation.len(), 1);
        assert_eq!(in_shipstation[0]["shipTo"]["street1"], json!("2 Other Road"));
        assert!(open_exceptions(&w).await.is_empty());
    }

    async fn a_failed_batch_ends_the_run_and_the_orders_not_yet_sent_go_back_without_spending_an_attempt(w: World) {
        let clock = w.manual_clock();
        for n in 0..300 {
            w.erp.put(paid_order(&format!("F-{n:03}")));
        }
        let conn = &w.engine.connections[0];
        shipledger_engine::flows::release::poll(&w.engine, conn).await.unwrap();
        // ShipStation fails every createorders before doing anything.
        w.put_faults(json!({"rate_500": 1.0, "paths": ["/orders/createorders"]})).await;
        let report = shipledger_engine::flows::push::run(&w.engine, conn).await.unwrap();
        assert_eq!(report.requests, 1, "the first batch failed, so the other two were not sent: {report:?}");
        assert_eq!(report.retried, 300);
        let jobs = w.store.list_jobs(JobFilter { kind: Some(shipledger_store::JobKind::SyncOrder), limit: 1000, ..Default::default() }).await.unwrap();
        assert!(jobs.iter().all(|j| j.state == JobState::Pending), "every job waits to run again");
        let mut attempts: Vec<i64> = jobs.iter().map(|j| j.attempts).collect();
        attempts.sort();
        assert_eq!((attempts.iter().filter(|a| **a == 0).count(), attempts.iter().filter(|a| **a == 1).count()), (200, 100), "only the batch sent spent an attempt");

        w.put_faults(json!({})).await;
        settle_until(&w, &clock, "every order pushed", async || {
            w.store.count_orders_by_state("acme-uk").await.unwrap() == vec![(OrderState::Pushed, 300)]
        })
        .await;
        let stats = w.stats().await;
        assert_eq!((stats["orders"].clone(), stats["duplicate_order_keys"].clone()), (json!(300), json!(0)));
        assert!(open_exceptions(&w).await.is_empty());
    }

    async fn a_change_that_can_no_longer_reach_a_shipped_order_is_a_change_after_shipment(w: World) {
        let clock = w.manual_clock();
        w.erp.put(paid_order("SO-42"));
        let order_id = push_and_die(&w, &clock, "SO-42").await;
        w.control(&format!("/orders/{order_id}/labels"), json!({})).await;
        w.erp.edit("SO-42", |o| o.ship_to.street1 = Some("3 Too Late Lane".into()));
        settle_until(&w, &clock, "SO-42 settled", async || !open_exceptions(&w).await.is_empty()).await;
        assert_eq!(open_exceptions(&w).await, vec![ExceptionKind::ChangeAfterShipment]);
        let record = w.store.get_order("acme-uk", "SO-42").await.unwrap().unwrap();
        assert_eq!(record.ss_order_id, Some(order_id), "the ledger knows where the order is");
        assert!(event_kinds(&w, "SO-42").await.contains(&"pushed".to_string()));
    }
}

/// ShipStation's real limit (40 a minute) and shipments polled once, as in production.
async fn a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429(backend: Backend) {
    let Some(db) = crate::helpers::TestDb::new(backend) else { return };
    let mut w = World::with(shipledger_sandbox::SandboxConfig::default(), db).await;
    w.engine.connections[0].policy.shipment_poll_interval = std::time::Duration::from_secs(3600);
    for n in 0..1000 {
        w.erp.put(paid_order(&format!("B-{n:04}")));
    }
    w.settle().await;
    let stats = w.stats().await;
    assert_eq!(stats["orders"], json!(1000));
    let createorders = stats["requests"]["POST /orders/createorders"].as_u64().unwrap();
    assert!(createorders <= 15, "{createorders} createorders requests");
    assert_eq!(stats["rate_limited"], json!(0), "{stats}");
    assert_eq!(stats["duplicate_order_keys"], json!(0));
    let counts = w.store.count_orders_by_state("acme-uk").await.unwrap();
    assert_eq!(counts, vec![(OrderState::Pushed, 1000)]);
}

#[tokio::test]
async fn sqlite_a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429() {
    a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429() {
    a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429(Backend::Postgres).await;
}

/// `v1` requests the sandbox answered, by path, and their sum.
fn v1_requests(stats: &serde_json::Value) -> (u64, std::collections::BTreeMap<String, u64>) {
    let by_path: std::collections::BTreeMap<String, u64> = stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| !path.contains(" /v2"))
        .map(|(path, n)| (path.clone(), n.as_u64().unwrap()))
        .collect();
    (by_path.values().sum(), by_path)
}

/// A backlog of 2,000 released orders at ShipStation's real 40 requests a minute:
/// pushed in bulk and verified in bulk, every order in ShipStation once, at least 80
/// orders per ShipStation request counting the read-backs, and never a 429.
async fn a_backlog_of_two_thousand_orders_is_pushed_and_verified_at_eighty_orders_a_request_without_a_429(backend: Backend) {
    let Some(db) = crate::helpers::TestDb::new(backend) else { return };
    let w = World::with(shipledger_sandbox::SandboxConfig::default(), db).await;
    for n in 0..2000 {
        w.erp.put(paid_order(&format!("K-{n:04}")));
    }
    let conn = &w.engine.connections[0];
    let released = shipledger_engine::flows::release::poll(&w.engine, conn).await.unwrap();
    assert_eq!(released.released, 2000);
    let before = v1_requests(&w.stats().await).0;

    let report = shipledger_engine::flows::push::run(&w.engine, conn).await.unwrap();

    let stats = w.stats().await;
    let (after, by_path) = v1_requests(&stats);
    let requests = after - before;
    eprintln!("push of 2,000 orders: {requests} requests {by_path:?}, report {report:?}");
    assert_eq!(stats["orders"], json!(2000), "every order reached ShipStation");
    assert_eq!(stats["duplicate_order_keys"], json!(0), "none twice");
    assert_eq!(stats["rate_limited"], json!(0), "no 429: {stats}");
    assert_eq!(w.store.count_orders_by_state("acme-uk").await.unwrap(), vec![(OrderState::Pushed, 2000)], "each verified and recorded");
    assert_eq!((report.pushed, report.failed, report.retried), (2000, 0, 0));
    assert!(requests <= 25, "{requests} ShipStation requests for 2,000 orders (createorders and read-backs): {by_path:?}");
}

#[tokio::test]
async fn sqlite_a_backlog_of_two_thousand_orders_is_pushed_and_verified_at_eighty_orders_a_request_without_a_429() {
    a_backlog_of_two_thousand_orders_is_pushed_and_verified_at_eighty_orders_a_request_without_a_429(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_backlog_of_two_thousand_orders_is_pushed_and_verified_at_eighty_orders_a_request_without_a_429() {
    a_backlog_of_two_thousand_orders_is_pushed_and_verified_at_eighty_orders_a_request_without_a_429(Backend::Postgres).await;
}
