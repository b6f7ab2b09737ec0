//! The event log, an order's whole timeline with its shipments, and sync watermarks.

use shipledger_store::{Change, NewEvent};

use crate::harness::{ACME, BETA, TestDb, event, t};
use crate::shipments::label;

pub async fn the_timeline_returns_events_in_order(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(10));
    change.events.push(event("1001", "received"));
    change.events.push(event("1001", "held"));
    change.events.push(event("1002", "received"));
    store.commit(change).await?;
    let mut change = Change::new(ACME, t(20));
    change.events.push(event("1001", "released"));
    store.commit(change).await?;
    let mut change = Change::new(BETA, t(15));
    change.events.push(event("1001", "received"));
    store.commit(change).await?;

    let timeline = store.timeline(ACME, "order", "1001").await?;
    let kinds: Vec<_> = timeline.iter().map(|e| (e.kind.as_str(), e.at)).collect();
    assert_eq!(
        kinds,
        [("received", t(10)), ("held", t(10)), ("released", t(20))]
    );
    assert!(
        timeline
            .iter()
            .all(|e| e.connection == ACME && e.record_type == "order")
    );
    assert_eq!(timeline[1].detail, serde_json::json!({"why": "held"}));
    assert!(store.timeline(ACME, "shipment", "1001").await?.is_empty());
    Ok(())
}

fn shipment_event(key: &str, kind: &str) -> NewEvent {
    NewEvent::shipment(key, shipledger_store::EventKind::parse(kind).expect("an event kind"), serde_json::json!({"why": kind}))
}

pub async fn an_orders_timeline_merges_the_events_of_its_shipments_by_time_with_their_tracking_numbers(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(10));
    change.events.push(event("1001", "released"));
    change.events.push(event("1001", "pushed"));
    store.commit(change).await?;
    // Two labels of 1001 (one voided and made again) and one of another order.
    let mut change = Change::new(ACME, t(20));
    change.shipments = vec![label(7, 500, Some("1001"), 20), label(9, 501, Some("1002"), 20)];
    change.events.push(shipment_event("label:7", "label_seen"));
    change.events.push(shipment_event("label:9", "label_seen"));
    store.commit(change).await?;
    let mut change = Change::new(ACME, t(30));
    change.shipments = vec![label(8, 500, Some("1001"), 30)];
    change.events.push(shipment_event("label:7", "voided"));
    change.events.push(shipment_event("label:8", "label_seen"));
    store.commit(change).await?;
    let mut change = Change::new(ACME, t(40));
    change.events.push(event("1001", "shipped"));
    store.commit(change).await?;
    // The same keys on another connection are another story.
    let mut change = Change::new(BETA, t(25));
    change.events.push(event("1001", "released"));
    change.events.push(shipment_event("label:7", "label_seen"));
    store.commit(change).await?;

    let timeline = store.order_timeline(ACME, "1001").await?;
    let rows: Vec<_> = timeline
        .iter()
        .map(|e| (e.event.at, e.event.record_type.as_str(), e.event.kind.as_str(), e.tracking_number.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            (t(10), "order", "released", None),
            (t(10), "order", "pushed", None),
            (t(20), "shipment", "label_seen", Some("RM7GB")),
            (t(30), "shipment", "voided", Some("RM7GB")),
            (t(30), "shipment", "label_seen", Some("RM8GB")),
            (t(40), "order", "shipped", None),
        ]
    );
    assert!(timeline.iter().all(|e| e.event.connection == ACME));
    assert!(store.order_timeline(ACME, "1003").await?.is_empty());
    Ok(())
}

pub async fn watermarks_advance_per_connection(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    assert_eq!(store.get_watermark(ACME, "erp_orders").await?, None);
    for (at, value) in [(1, "2025-03-01T08:00:00Z"), (2, "2025-03-01T08:30:00Z")] {
        let mut change = Change::new(ACME, t(at));
        change.watermark = Some(("erp_orders".into(), value.into()));
        store.commit(change).await?;
    }
    let mut change = Change::new(BETA, t(3));
    change.watermark = Some(("erp_orders".into(), "beta-cursor".into()));
    store.commit(change).await?;

    assert_eq!(
        store.get_watermark(ACME, "erp_orders").await?.as_deref(),
        Some("2025-03-01T08:30:00Z")
    );
    assert_eq!(
        store.get_watermark(BETA, "erp_orders").await?.as_deref(),
        Some("beta-cursor")
    );
    assert_eq!(store.get_watermark(ACME, "ss_shipments").await?, None);
    Ok(())
}
