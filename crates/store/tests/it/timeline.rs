//! The event log and sync watermarks.

use shipledger_store::Change;

use crate::harness::{ACME, BETA, TestDb, event, t};

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
