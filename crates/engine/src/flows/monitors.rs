//! Timing monitors: conditions that are only wrong once they have lasted too long.
//! Each is an exception that opens when the condition has held past its policy
//! threshold and closes by itself when the condition clears.
//!
//! - `scan_overdue` (ops): a live label with no carrier scan for longer than
//!   `scan_overdue_after`; the exception names the carrier, tracking number and age.
//! - `awaiting_shipment_too_long` (ops): an order pushed to ShipStation that has no
//!   live label after `awaiting_shipment_after`.
//!
//! (`tracking_write_back_failed` is opened and closed by the write-back itself.)

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{
    Change, ExceptionFilter, OrderFilter, OrderState,
    ShipmentFilter, ShipmentKind,
};

use crate::{Connection, Engine, EngineError};

fn age(now: Timestamp, since: Timestamp) -> String {
    let hours = now.duration_since(since).as_secs() / 3600;
    if hours >= 48 { format!("{} days", hours / 24) } else { format!("{hours} hours") }
}

fn threshold(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Open what has become overdue, close what no longer is. Returns how many changed.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<u64, EngineError> {
    let now = engine.clock.now();
    let mut change = Change::new(&conn.name, now);

    // Labels waiting for their first scan.
    let waiting = engine
        .store
        .list_shipments(ShipmentFilter { connection: Some(conn.name.clone()), awaiting_scan: true, ..Default::default() })
        .await?;
    let scan_after = threshold(conn.policy.scan_overdue_after);
    let overdue: Vec<_> = waiting
        .iter()
        .filter(|s| s.erp_id.is_some() && now.duration_since(s.ss_created_at) >= scan_after)
        .collect();
    let overdue_keys: BTreeSet<&str> = overdue.iter().map(|s| s.shipment_key.as_str()).collect();
    let open_scan = open(engine, conn, ExceptionKind::ScanOverdue).await?;
    for s in &overdue {
        if !open_scan.contains(s.shipment_key.as_str()) {
            change.raise(
                ExceptionKind::ScanOverdue,
                "shipment",
                s.shipment_key.clone(),
                json!({
                    "message": format!(
                        "{} label {} for order {} has had no carrier scan for {}; ask the carrier or check the parcel left the warehouse",
                        s.carrier,
                        s.tracking_number.clone().unwrap_or_default(),
                        s.erp_id.clone().unwrap_or_default(),
                        age(now, s.ss_created_at)
                    ),
                    "carrier": s.carrier,
                    "tracking_number": s.tracking_number,
                    "label_created": s.ss_created_at.to_string(),
                }),
            );
        }
    }
    for key in open_scan.iter().filter(|k| !overdue_keys.contains(k.as_str())) {
        change.clear(ExceptionKind::ScanOverdue, "shipment", key.clone());
    }

    // Orders in ShipStation still waiting for a label.
    let pushed = engine
        .store
        .list_orders(OrderFilter { connection: Some(conn.name.clone()), state: Some(OrderState::Pushed), ..Default::default() })
        .await?;
    let label_after = threshold(conn.policy.awaiting_shipment_after);
    let mut late = BTreeSet::new();
    for o in pushed.iter().filter(|o| o.ss_status.as_deref() == Some("awaiting_shipment")) {
        let Some(pushed_at) = o.pushed_at else { continue };
        if now.duration_since(pushed_at) < label_after {
            continue;
        }
        let shipments = engine
            .store
            .list_shipments(ShipmentFilter { connection: Some(conn.name.clone()), erp_id: Some(o.erp_id.clone()), ..Default::default() })
            .await?;
        if shipments.iter().any(|s| (s.kind == ShipmentKind::Label && !s.voided) || s.kind == ShipmentKind::Fulfillment) {
            continue;
        }
        late.insert(o.erp_id.clone());
    }
    let open_late = open(engine, conn, ExceptionKind::AwaitingShipmentTooLong).await?;
    for erp_id in late.iter().filter(|id| !open_late.contains(id.as_str())) {
        let o = pushed.iter().find(|o| &o.erp_id == erp_id).expect("from the list");
        change.raise(
            ExceptionKind::AwaitingShipmentTooLong,
            "order",
            erp_id.clone(),
            json!({
                "message": format!(
                    "order {} has waited in ShipStation (order #{}) for a label for {}",
                    o.number,
                    o.ss_order_id.unwrap_or_default(),
                    age(now, o.pushed_at.unwrap_or(now))
                ),
            }),
        );
    }
    for erp_id in open_late.iter().filter(|id| !late.contains(id.as_str())) {
        change.clear(ExceptionKind::AwaitingShipmentTooLong, "order", erp_id.clone());
    }

    let changed = (change.open_exceptions.len() + change.close_exceptions.len()) as u64;
    if changed > 0 {
        engine.store.commit(change).await?;
    }
    Ok(changed)
}

async fn open(engine: &Engine, conn: &Connection, kind: ExceptionKind) -> Result<BTreeSet<String>, EngineError> {
    Ok(engine
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(conn.name.clone()),
            kind: Some(kind),
            live: true,
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|e| e.record_id)
        .collect())
}
