//! The reconciler proves the ERP, our ledger and ShipStation agree, and names every
//! record that does not: each kind of drift seeded on purpose is found with its kind
//! and owner and nothing else is; fixing it closes its exception; an incremental run
//! after the full one finds what drifted since; an unposted cost and an order waiting
//! days for its label are named too; and the reconciler runs by itself on schedule.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::order::ErpOrderStatus;
use shipledger_engine::flows::reconcile::{self, Quiet, ReconcileOptions};
use shipledger_engine::lanes::{Lane, Step};
use shipledger_erp::{FulfilmentRecord, FulfilmentState, Package};
use shipledger_store::{ExceptionFilter, ReconcileMode};

use crate::helpers::{World, paid_order};

const OUR_STORE: i64 = 310_001;
const OTHER_STORE: i64 = 310_002;

async fn pushed(w: &World, erp_id: &str) -> i64 {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    w.store
        .get_order("acme-uk", erp_id)
        .await
        .unwrap()
        .unwrap()
        .ss_order_id
        .expect("pushed")
}

async fn label(w: &World, ss_order_id: i64) -> (i64, String) {
    let l = w
        .control(
            &format!("/orders/{ss_order_id}/labels"),
            // 5.00 USD: less than the 4.95 GBP the order charged for shipping, so
            // no order here loses money on its label.
            json!({"carrierCode": "ups", "shipmentCost": 5.00}),
        )
        .await;
    (
        l["shipment"]["shipmentId"].as_i64().unwrap(),
        l["trackingNumber"].as_str().unwrap().to_string(),
    )
}

async fn scan(w: &World, tracking: &str, code: &str) {
    w.control(
        "/tracking/events",
        json!({"trackingNumber": tracking, "statusCode": code}),
    )
    .await;
}

/// An order typed into ShipStation by hand (or sent by another integration).
async fn by_hand(w: &World, number: &str, key: &str, store: i64) -> i64 {
    let body = json!({
        "orderNumber": number,
        "orderKey": key,
        "orderDate": "2026-11-30T10:00:00.0000000",
        "orderStatus": "awaiting_shipment",
        "billTo": {"name": "Walk In"},
        "shipTo": {"name": "Walk In", "street1": "1 High St", "city": "Bath", "state": "Somerset", "postalCode": "BA1 1AA", "country": "GB"},
        "items": [{"lineItemKey": format!("{key}-1"), "sku": "MUG", "name": "Mug", "quantity": 1, "unitPrice": 5.0}],
        "advancedOptions": {"storeId": store},
    });
    let r: Value = w
        .http
        .post(format!("{}/orders/createorder", w.sandbox.base_url()))
        .basic_auth("sandbox-key", Some("sandbox-secret"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["orderId"]
        .as_i64()
        .unwrap_or_else(|| panic!("createorder: {r}"))
}

fn findings(report: &reconcile::ReconcileReport) -> BTreeMap<(ExceptionKind, String), Owner> {
    report
        .findings
        .iter()
        .map(|f| ((f.kind, f.record_id.clone()), f.kind.owner()))
        .collect()
}

async fn live(w: &World, kind: ExceptionKind, record: &str) -> bool {
    !w.store
        .list_exceptions(ExceptionFilter {
            connection: Some("acme-uk".into()),
            kind: Some(kind),
            record_id: Some(record.into()),
            live: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
}

crate::stories! {
    async fn the_reconciler_names_every_seeded_drift_with_its_owner_and_nothing_else_and_fixing_it_closes_it(w: World) {
        // A long story: its future lives on the heap, not the test thread's stack.
        Box::pin(seeded_drift_story(w)).await;
    }

    async fn the_reconciler_runs_by_itself_in_its_own_lane_daily_and_reads_everything_again_weekly(w: World) {
        Box::pin(scheduled_story(w)).await;
    }

    async fn an_unposted_cost_and_an_order_waiting_days_for_a_label_are_named_for_finance_and_ops(w: World) {
        Box::pin(costs_and_waiting_story(w)).await;
    }

    async fn an_order_marked_shipped_elsewhere_agrees_through_its_fulfillment(w: World) {
        // The marketplace ships SO-50 itself: ShipStation has a fulfillment, no label;
        // shipledger writes the ERP's fulfilment from it.
        let id = pushed(&w, "SO-50").await;
        let r = w
            .http
            .post(format!("{}/orders/markasshipped", w.sandbox.base_url()))
            .basic_auth("sandbox-key", Some("sandbox-secret"))
            .json(&json!({"orderId": id, "carrierCode": "usps", "trackingNumber": "9400150", "shipDate": "2026-12-01"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-50").len(), 1, "the fulfillment was written back");
        let mut w = w;
        w.engine.connections[0].policy.reconcile_grace = std::time::Duration::ZERO;
        let report = Box::pin(reconcile::run(&w.engine, &w.engine.connections[0], &ReconcileOptions::default(), &Quiet)).await.unwrap();
        assert!(report.stats.shipstation_labels_read >= 1, "the fulfillment was read: {:?}", report.stats);
        let about: Vec<_> = report.findings.iter().filter(|f| f.record_id == "SO-50").collect();
        assert!(about.is_empty(), "the ERP's fulfilment is the fulfillment's parcel: {about:?}");
    }

    async fn with_reconcile_interval_none_the_reconciler_runs_only_when_asked(w: World) {
        let mut w = w;
        let clock = w.manual_clock();
        w.engine.connections[0].policy.reconcile_interval = None;
        let hand = by_hand(&w, "HAND-7", "hand-7", OUR_STORE).await;
        let conn = &w.engine.connections[0];
        // Nothing is due, now or a month from now: the lane sleeps its cap and reads again.
        assert_eq!(w.engine.try_execute_one(conn, Lane::Reconcile).await.unwrap(), Step::Idle { next_due: None });
        clock.advance(SignedDuration::from_hours(24 * 30));
        assert_eq!(w.engine.try_execute_one(conn, Lane::Reconcile).await.unwrap(), Step::Idle { next_due: None });
        assert!(runs(&w).await.is_empty(), "no run was asked for");
        // Asked for, it runs (and finds the hand-made order).
        let report = Box::pin(reconcile::run(&w.engine, conn, &ReconcileOptions::default(), &Quiet)).await.unwrap();
        assert!(findings(&report).contains_key(&(ExceptionKind::UnknownShipStationOrder, hand.to_string())), "{:?}", report.findings);
    }
}

async fn seeded_drift_story(mut w: World) {
    w.engine.connections[0].store_ids = vec![OUR_STORE];
    // Everything below has settled before the reconciler looks: no flow is still
    // carrying a change across, so no grace is needed.
    w.engine.connections[0].policy.reconcile_grace = std::time::Duration::ZERO;
    w.engine.connections[0].policy.invoice_grace = std::time::Duration::ZERO;
    let (hand, hand_label, late) = Box::pin(seed_drift(&w)).await;
    let full = Box::pin(full_run(&w, hand, hand_label)).await;
    Box::pin(fix_and_run_again(&w, hand, late, &full)).await;
}

/// Every kind of drift, seeded on purpose. Returns the hand-made order, its label and SO-9's ShipStation id.
async fn seed_drift(w: &World) -> (i64, i64, i64) {
    Box::pin(seed_shipped(w)).await;
    let (hand, hand_label, late) = Box::pin(seed_open(w)).await;
    Box::pin(seed_unseen(w)).await;
    (hand, hand_label, late)
}

/// Orders that shipped, and how each went wrong.
async fn seed_shipped(w: &World) {
    // In agreement: shipped, written back, completed, invoiced.
    let ok = pushed(w, "SO-1").await;
    let (_, t1) = label(w, ok).await;
    w.settle().await;
    scan(w, &t1, "IT").await;
    w.settle().await;

    // A lost write-back: the ERP no longer has the fulfilment of a live label.
    let lost = pushed(w, "SO-3").await;
    label(w, lost).await;
    w.settle().await;

    // A void after ERP completion.
    let voided = pushed(w, "SO-4").await;
    let (void_id, t4) = label(w, voided).await;
    w.settle().await;
    scan(w, &t4, "IT").await;
    w.settle().await;
    w.control(&format!("/shipments/{void_id}/void"), json!({}))
        .await;
    w.settle().await;

    // A carrier exception on a parcel.
    let ex = pushed(w, "SO-6").await;
    let (_, t6) = label(w, ex).await;
    w.settle().await;
    scan(w, &t6, "EX").await;
    w.settle().await;

    // Shipped but never invoiced.
    let uninvoiced = pushed(w, "SO-7").await;
    let (_, t7) = label(w, uninvoiced).await;
    w.settle().await;
    scan(w, &t7, "IT").await;
    w.erp
        .invoiced
        .lock()
        .unwrap()
        .insert("SO-7".into(), BTreeMap::new());
    w.settle().await;

}

/// Orders still open in ShipStation, and orders typed in there by hand.
async fn seed_open(w: &World) -> (i64, i64, i64) {
    // Invoiced, then cancelled before anything shipped.
    pushed(w, "SO-11").await;
    w.erp
        .invoiced
        .lock()
        .unwrap()
        .insert("SO-11".into(), BTreeMap::from([("SO-11-1".to_string(), 2)]));
    w.erp
        .edit("SO-11", |o| o.status = ErpOrderStatus::Cancelled);
    w.settle().await;

    // Past its ship-by date with no label.
    let late = pushed(w, "SO-9").await;
    let yesterday = Timestamp::now() - SignedDuration::from_hours(20);
    w.sandbox
        .edit_world(|world| world.orders.get_mut(&late).unwrap().ship_by_date = Some(yesterday));

    // Fulfilled in the ERP with no label behind it.
    pushed(w, "SO-10").await;

    // A duplicate of one of ours, and orders typed in by hand: one with a label in
    // our store, one in another store (not ours to judge).
    pushed(w, "SO-5").await;
    by_hand(w, "SO-5", "copy-of-so-5", OUR_STORE).await;
    let hand = by_hand(w, "HAND-1", "hand-1", OUR_STORE).await;
    let (hand_label, _) = label(w, hand).await;
    by_hand(w, "MARKET-1", "market-1", OTHER_STORE).await;

    // A status mismatch: to be cancelled in the ERP where nobody tells ShipStation.
    pushed(w, "SO-8").await;
    w.settle().await;

    (hand, hand_label, late)
}

async fn seed_unseen(w: &World) {
    // Drift the engine is not there to see (it does not run again before the
    // reconciler): the ERP loses SO-3's fulfilment, gains one for SO-10, cancels SO-8
    // behind the change feed; a paid order is dropped before shipledger read it.
    w.erp
        .fulfilments
        .lock()
        .unwrap()
        .retain(|d| d.erp_order_id != "SO-3");
    w.erp.fulfilments.lock().unwrap().push(FulfilmentRecord {
        id: "HANDFUL-1".into(),
        key: "by-hand".into(),
        erp_order_id: "SO-10".into(),
        state: FulfilmentState::Completed,
        lines: vec![("SO-10-1".into(), 2), ("SO-10-2".into(), 1)],
        packages: vec![Package {
            carrier: "dhl".into(),
            service: None,
            tracking_number: "JJD000HAND".into(),
            ship_date: None,
            cost: None,
        }],
        updated_at: Timestamp::now(),
    });
    w.erp.invoiced.lock().unwrap().insert(
        "SO-10".into(),
        BTreeMap::from([("SO-10-1".to_string(), 2), ("SO-10-2".to_string(), 1)]),
    );
    w.erp
        .edit_quietly("SO-8", |o| o.status = ErpOrderStatus::Cancelled);
    let mut dropped = paid_order("SO-2");
    dropped.updated_at = w.erp.orders.lock().unwrap()[0].updated_at;
    w.erp.orders.lock().unwrap().push(dropped);

    }

/// The full run names each seeded drift with its owner, and nothing else.
async fn full_run(w: &World, hand: i64, hand_label: i64) -> reconcile::ReconcileReport {
    let engine = &w.engine;
    let since = Timestamp::from_second(1_789_000_000).unwrap();
    let full = reconcile::run(
        engine,
        &engine.connections[0],
        &ReconcileOptions {
            since: Some(since),
            full: true,
        },
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(full.run.mode, ReconcileMode::Full);
    let expected: BTreeMap<(ExceptionKind, String), Owner> = [
        (
            ExceptionKind::PaidNotInShipStation,
            "SO-2".to_string(),
            Owner::Ops,
        ),
        (
            ExceptionKind::ShippedNotFulfilled,
            "SO-3".into(),
            Owner::Ops,
        ),
        (
            ExceptionKind::VoidedAfterFulfilled,
            "SO-4".into(),
            Owner::Ops,
        ),
        (
            ExceptionKind::DuplicateShipStationOrder,
            "SO-5".into(),
            Owner::Ops,
        ),
        (
            ExceptionKind::CarrierException,
            w.store
                .list_shipments(shipledger_store::ShipmentFilter {
                    erp_id: Some("SO-6".into()),
                    ..Default::default()
                })
                .await
                .unwrap()[0]
                .shipment_key
                .clone(),
            Owner::Ops,
        ),
        (
            ExceptionKind::ShippedNotInvoiced,
            "SO-7".into(),
            Owner::Finance,
        ),
        (ExceptionKind::StatusMismatch, "SO-8".into(), Owner::Ops),
        (ExceptionKind::PastShipByDate, "SO-9".into(), Owner::Ops),
        (
            ExceptionKind::FulfilledWithoutLabel,
            "SO-10".into(),
            Owner::Ops,
        ),
        (
            ExceptionKind::InvoicedNotShipped,
            "SO-11".into(),
            Owner::Finance,
        ),
        (
            ExceptionKind::UnknownShipStationOrder,
            hand.to_string(),
            Owner::Ops,
        ),
        (
            ExceptionKind::OrphanShipment,
            format!("label:{hand_label}"),
            Owner::Ops,
        ),
    ]
    .into_iter()
    .map(|(k, r, o)| ((k, r), o))
    .collect();
    assert_eq!(findings(&full), expected, "{:#?}", full.findings);
    for (kind, record) in expected.keys() {
        assert!(
            live(w, *kind, record).await,
            "{kind} on {record} is a live exception"
        );
    }
    let stored = w
        .store
        .list_reconcile_findings(shipledger_store::ReconcileFindingFilter {
            run_id: Some(full.run.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), expected.len());

    full
}

/// Fixed drift closes; drift introduced since is found by an incremental run.
async fn fix_and_run_again(w: &World, hand: i64, late: i64, full: &reconcile::ReconcileReport) {
    let engine = &w.engine;
    // Fixed: the write-back recorded again, SO-7 invoiced, the hand-made order
    // cancelled in ShipStation. Their exceptions close at the next run; the rest stay.
    w.erp.invoiced.lock().unwrap().insert(
        "SO-7".into(),
        BTreeMap::from([("SO-7-1".to_string(), 2), ("SO-7-2".to_string(), 1)]),
    );
    w.erp.edit("SO-7", |_| {});
    let so3_label = w
        .store
        .list_shipments(shipledger_store::ShipmentFilter {
            erp_id: Some("SO-3".into()),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .clone();
    w.erp.fulfilments.lock().unwrap().push(FulfilmentRecord {
        id: "REDONE-3".into(),
        key: "redone".into(),
        erp_order_id: "SO-3".into(),
        state: FulfilmentState::Packed,
        lines: vec![("SO-3-1".into(), 2), ("SO-3-2".into(), 1)],
        packages: vec![Package {
            carrier: "ups".into(),
            service: None,
            tracking_number: so3_label.tracking_number.clone().unwrap(),
            ship_date: None,
            cost: None,
        }],
        updated_at: Timestamp::now(),
    });
    w.erp.edit("SO-3", |_| {});
    w.sandbox.edit_world(|world| {
        let o = world.orders.get_mut(&hand).unwrap();
        o.order_status = "cancelled".into();
        o.modify_date = Timestamp::now();
    });

    // New drift since the full run: a label printed by hand for SO-9 whose
    // write-back never comes, and another hand-made order.
    let hand2 = by_hand(w, "HAND-2", "hand-2", OUR_STORE).await;
    label(w, late).await;

    let incremental = reconcile::run(
        engine,
        &engine.connections[0],
        &ReconcileOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(incremental.run.mode, ReconcileMode::Incremental);
    let found = findings(&incremental);
    assert!(
        found.contains_key(&(ExceptionKind::UnknownShipStationOrder, hand2.to_string())),
        "{found:#?}"
    );
    assert!(
        found.contains_key(&(ExceptionKind::ShippedNotFulfilled, "SO-9".to_string())),
        "{found:#?}"
    );
    assert!(
        !found.contains_key(&(ExceptionKind::PastShipByDate, "SO-9".to_string())),
        "SO-9 has its label now"
    );
    for gone in [
        (ExceptionKind::ShippedNotFulfilled, "SO-3".to_string()),
        (ExceptionKind::ShippedNotInvoiced, "SO-7".into()),
        (ExceptionKind::UnknownShipStationOrder, hand.to_string()),
    ] {
        assert!(!found.contains_key(&gone), "{gone:?} was fixed");
        assert!(!live(w, gone.0, &gone.1).await, "{gone:?} closed");
    }
    for kept in [
        (ExceptionKind::VoidedAfterFulfilled, "SO-4"),
        (ExceptionKind::StatusMismatch, "SO-8"),
        (ExceptionKind::InvoicedNotShipped, "SO-11"),
    ] {
        assert!(
            found.contains_key(&(kept.0, kept.1.to_string())),
            "{kept:?} still holds: {found:#?}"
        );
    }
    assert!(
        incremental.stats.shipstation_requests <= full.stats.shipstation_requests,
        "the incremental run reads what changed: {} requests against the full run's {}",
        incremental.stats.shipstation_requests,
        full.stats.shipstation_requests
    );
}

async fn runs(w: &World) -> Vec<shipledger_store::ReconcileRun> {
    w.store
        .list_reconcile_runs(shipledger_store::ReconcileRunFilter { connection: Some("acme-uk".into()), ..Default::default() })
        .await
        .unwrap()
}


async fn scheduled_story(mut w: World) {
    let clock = w.manual_clock();
    w.engine.connections[0].policy.reconcile_grace = std::time::Duration::ZERO;
    // Daily, full weekly: the defaults.
    let defaults = shipledger_engine::config::Policy::default();
    assert_eq!(defaults.reconcile_interval, Some(std::time::Duration::from_secs(86_400)));
    assert_eq!(defaults.reconcile_full_interval, Some(std::time::Duration::from_secs(7 * 86_400)));
    w.engine.connections[0].policy.reconcile_interval = defaults.reconcile_interval;
    w.engine.connections[0].policy.reconcile_full_interval = defaults.reconcile_full_interval;
    let hand_1 = by_hand(&w, "HAND-1", "hand-1", OUR_STORE).await;
    let conn = &w.engine.connections[0];

    // Never run: due at once, and the first run reads everything.
    let Step::Worked(_) = w.engine.try_execute_one(conn, Lane::Reconcile).await.unwrap() else { panic!("a first run is due at once") };
    let first = runs(&w).await;
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].mode, first[0].state), (ReconcileMode::Full, shipledger_store::ReconcileState::Done));
    assert!(live(&w, ExceptionKind::UnknownShipStationOrder, &hand_1.to_string()).await, "the run opened the hand-made order's exception");

    // Not due again for a day; the lane says when.
    let day = SignedDuration::from_hours(24);
    match w.engine.try_execute_one(conn, Lane::Reconcile).await.unwrap() {
        Step::Idle { next_due: Some(due) } => assert_eq!(due, first[0].started_at + day),
        other => panic!("the reconciler ran again within the day: {other:?}"),
    }

    // A day later: an incremental run, which sees what changed since (another order by hand).
    let hand_2 = by_hand(&w, "HAND-2", "hand-2", OUR_STORE).await;
    clock.advance(day + SignedDuration::from_secs(1));
    let Step::Worked(_) = w.engine.try_execute_one(conn, Lane::Reconcile).await.unwrap() else { panic!("due after a day") };
    let second = runs(&w).await;
    assert_eq!(second.len(), 2);
    assert_eq!((second[0].mode, second[0].state), (ReconcileMode::Incremental, shipledger_store::ReconcileState::Done));
    assert!(live(&w, ExceptionKind::UnknownShipStationOrder, &hand_2.to_string()).await, "the incremental run found the new order");

    // Six more days: a full run again (it finds what no change feed shows).
    for _ in 0..6 {
        clock.advance(day);
        let Step::Worked(_) = w.engine.try_execute_one(conn, Lane::Reconcile).await.unwrap() else { panic!("due each day") };
    }
    let all = runs(&w).await;
    let modes: Vec<ReconcileMode> = all.iter().rev().map(|r| r.mode).collect();
    assert_eq!(
        modes,
        [ReconcileMode::Full, ReconcileMode::Incremental, ReconcileMode::Incremental, ReconcileMode::Incremental, ReconcileMode::Incremental, ReconcileMode::Incremental, ReconcileMode::Incremental, ReconcileMode::Full],
        "a full run once the last full one is a week old"
    );
    // The pass is kept in the store like every other (`shipledger schedules` shows it).
    let schedules = w.engine.schedules(conn).await.unwrap();
    let pass = schedules.iter().find(|s| s.name == "reconcile").expect("the reconcile pass is kept in the store");
    assert_eq!((pass.runs, pass.last_error.as_deref()), (8, None), "{pass:?}");
}

async fn costs_and_waiting_story(mut w: World) {
    let clock = w.manual_clock();
    w.engine.connections[0].policy.company_timezone = Some(jiff::tz::TimeZone::UTC);
    w.engine.connections[0].policy.reconcile_grace = std::time::Duration::ZERO;
    // SO-40 is labelled today (its postage a cost entry in today's window); SO-41
    // waits in ShipStation for a label.
    let shipped = pushed(&w, "SO-40").await;
    pushed(&w, "SO-41").await;
    label(&w, shipped).await;
    w.settle().await;
    let entries = w
        .store
        .list_cost_entries(shipledger_store::CostEntryFilter { connection: Some("acme-uk".into()), ..Default::default() })
        .await
        .unwrap();
    assert!(!entries.is_empty(), "the label's postage is an entry");
    // The connection posts its costs to these accounts (nothing has planned a journal:
    // this fake ERP keeps no periods, so the journals flow never runs here).
    w.engine.connections[0].accounts = Some(shipledger_sandbox::erp::model::chart_accounts());
    let before = Box::pin(reconcile::run(&w.engine, &w.engine.connections[0], &ReconcileOptions::default(), &Quiet)).await.unwrap();
    assert!(
        !before.findings.iter().any(|f| matches!(f.kind, ExceptionKind::CostEntryUnposted | ExceptionKind::AwaitingShipmentTooLong)),
        "today's window is still open and SO-41 was pushed minutes ago: {:?}",
        before.findings
    );

    // Three days on, nothing has posted the day's journal nor labelled SO-41.
    clock.advance(SignedDuration::from_hours(72));
    let report = Box::pin(reconcile::run(&w.engine, &w.engine.connections[0], &ReconcileOptions { since: None, full: true }, &Quiet)).await.unwrap();
    let found = findings(&report);
    for e in &entries {
        assert_eq!(found.get(&(ExceptionKind::CostEntryUnposted, e.entry_key.clone())), Some(&Owner::Finance), "{found:?}");
    }
    assert_eq!(found.get(&(ExceptionKind::AwaitingShipmentTooLong, "SO-41".to_string())), Some(&Owner::Ops), "{found:?}");
    // SO-40 is packed, awaiting its first scan: not yet shipped, so not yet owed an invoice.
    assert_eq!(found.len(), entries.len() + 1, "nothing else: {found:?}");
    assert!(live(&w, ExceptionKind::CostEntryUnposted, &entries[0].entry_key).await, "finance's exception is open");
}
