//! The event log, an order's whole timeline with its shipments, and sync watermarks.

use shipledger_store::{Change, JobFilter, JobKind, NewEvent, OrderState, StoreError, WatermarkMove};

use crate::harness::{ACME, BETA, TestDb, event, job, order, t};
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
    let mut read = None;
    for (at, value) in [(1, "2025-03-01T08:00:00Z"), (2, "2025-03-01T08:30:00Z")] {
        let mut change = Change::new(ACME, t(at));
        change.watermark = Some(WatermarkMove::new("erp_orders", read.clone(), value));
        store.commit(change).await?;
        read = store.get_watermark(ACME, "erp_orders").await?;
    }
    let mut change = Change::new(BETA, t(3));
    change.watermark = Some(WatermarkMove::new("erp_orders", None, "beta-cursor"));
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

/// Two pollers read the feed's watermark at 100; the first moves it to 200 with its
/// order. The second, still working from 100, would put it back to 150: its whole
/// commit fails, its order and job are not written, and the watermark stays at 200.
pub async fn a_watermark_moves_only_from_what_its_writer_read_and_a_stale_writer_writes_nothing(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut first = Change::new(ACME, t(1));
    first.watermark = Some(WatermarkMove::new("ss_shipments_created", None, "100"));
    store.commit(first).await?;

    // Both read 100.
    let read = store.get_watermark(ACME, "ss_shipments_created").await?;
    assert_eq!(read.as_deref(), Some("100"));

    let mut fast = Change::new(ACME, t(2));
    fast.order = Some(order("2001", "SO-2001", OrderState::Released));
    fast.watermark = Some(WatermarkMove::new("ss_shipments_created", read.clone(), "200"));
    store.commit(fast).await?;

    let mut slow = Change::new(ACME, t(3));
    slow.order = Some(order("2002", "SO-2002", OrderState::Released));
    slow.jobs.push(job(JobKind::SyncOrder, "push:2002", t(3)));
    slow.events.push(event("2002", "released"));
    slow.watermark = Some(WatermarkMove::new("ss_shipments_created", read, "150"));
    let moved = store.commit(slow).await;
    match &moved {
        Err(StoreError::WatermarkMoved { name, expected, found }) => {
            assert_eq!(name, "ss_shipments_created");
            assert_eq!(expected.as_deref(), Some("100"));
            assert_eq!(found.as_deref(), Some("200"));
        }
        other => panic!("a stale writer's commit must fail with WatermarkMoved, got {other:?}"),
    }
    assert_eq!(store.get_watermark(ACME, "ss_shipments_created").await?.as_deref(), Some("200"));
    assert!(store.get_order(ACME, "2002").await?.is_none(), "nothing of the stale commit is written");
    assert!(store.timeline(ACME, "order", "2002").await?.is_empty());
    assert!(store.list_jobs(JobFilter::default()).await?.is_empty());
    assert!(store.get_order(ACME, "2001").await?.is_some());

    // A writer that read no watermark cannot overwrite one somebody else wrote first.
    let mut blind = Change::new(ACME, t(4));
    blind.watermark = Some(WatermarkMove::new("ss_shipments_created", None, "300"));
    assert!(matches!(store.commit(blind).await, Err(StoreError::WatermarkMoved { .. })));

    // Read again, it carries on.
    let read = store.get_watermark(ACME, "ss_shipments_created").await?;
    let mut again = Change::new(ACME, t(5));
    again.order = Some(order("2002", "SO-2002", OrderState::Released));
    again.watermark = Some(WatermarkMove::new("ss_shipments_created", read, "250"));
    store.commit(again).await?;
    assert_eq!(store.get_watermark(ACME, "ss_shipments_created").await?.as_deref(), Some("250"));
    Ok(())
}

/// Many writers race to move one watermark from the value they all read: exactly
/// one wins, the others fail whole.
pub async fn of_writers_racing_from_one_watermark_exactly_one_moves_it(db: &TestDb) -> anyhow::Result<()> {
    let other = db.open_another().await?;
    let mut seed = Change::new(ACME, t(0));
    seed.watermark = Some(WatermarkMove::new("erp_orders", None, "0"));
    db.store.commit(seed).await?;
    let mut tasks = Vec::new();
    for i in 1..=16 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let id = format!("{}", 7000 + i);
            let mut change = Change::new(ACME, t(i));
            change.order = Some(order(&id, &format!("SO-{id}"), OrderState::Released));
            change.watermark = Some(WatermarkMove::new("erp_orders", Some("0".into()), format!("{i}")));
            store.commit(change).await
        }));
    }
    let (mut won, mut moved) = (Vec::new(), 0);
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await? {
            Ok(_) => won.push(i + 1),
            Err(StoreError::WatermarkMoved { .. }) => moved += 1,
            Err(other) => return Err(other.into()),
        }
    }
    assert_eq!((won.len(), moved), (1, 15), "exactly one writer moves the watermark");
    let value = db.store.get_watermark(ACME, "erp_orders").await?;
    assert_eq!(value, Some(won[0].to_string()));
    let released = db.store.count_orders_by_state(ACME).await?;
    assert_eq!(released, [(OrderState::Released, 1)], "only the winner's order is written");
    Ok(())
}
