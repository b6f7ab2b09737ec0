//! Release: read what changed in the ERP, judge it with the release gate, and commit
//! the decision — the order's state, its lines, the push it needs (an outbox job),
//! the timeline event, exceptions opened or closed and the advanced watermark — in
//! one store transaction per order.
//!
//! It never calls ShipStation. An order is released once: its first passing snapshot
//! plans the `sync_order` job; later ERP changes (address, lines, hold, cancellation)
//! plan another `sync_order` keyed by the new snapshot, and the push flow brings
//! ShipStation in line with whatever the latest snapshot says. A held order is
//! re-judged whenever the ERP record changes, and on schedule by
//! [`recheck`](crate::flows::recheck) when what held it lives elsewhere (a product's
//! weight), and released without anyone touching it once it passes. A released order
//! the ERP cancels is cancelled in ShipStation and raised as `order_withdrawn` with
//! the ERP's reason; for one ShipStation has already labelled (withdrawn, held, or
//! its lines changed) the exception names at once the labels to undo. A duplicate
//! appearance of an unchanged order changes nothing.

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::order::{ErpOrder, ErpOrderStatus, Product, order_key};
use shipledger_core::release::{self, Verdict};
use shipledger_erp::Cursor;
use shipledger_store::{
    Change, EventKind, NewEvent, NewJob, OrderLineRecord, OrderRecord, OrderState, OrderUpsert, ShipmentFilter, ShipmentKind,
    StoreError, SyncOrder, WatermarkMove,
};

use crate::{Connection, Engine, EngineError};

/// The watermark of the ERP change feed.
pub const WATERMARK: &str = "erp_orders";
/// Orders read from the ERP per request.
const PAGE: u32 = 200;

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub seen: u64,
    pub released: u64,
    pub held: u64,
    pub updates_planned: u64,
    pub cancelled: u64,
    pub unchanged: u64,
}

impl PollReport {
    /// Add another pass's counts to these.
    pub fn add(&mut self, other: &PollReport) {
        self.seen += other.seen;
        self.released += other.released;
        self.held += other.held;
        self.updates_planned += other.updates_planned;
        self.cancelled += other.cancelled;
        self.unchanged += other.unchanged;
    }
}

/// How many times one poll may find the feed's watermark moved by another worker
/// before it gives up for this pass (each time it reads it again and carries on).
const MOVED_RETRIES: u32 = 5;

/// Read every change the ERP has since the watermark and commit a decision for each.
///
/// Each decision moves the watermark from the cursor this poll last read or wrote
/// (compare-and-set). Should another worker have moved it meanwhile (a pass taken
/// over after its lease ran out), that decision is not written at all
/// ([`StoreError::WatermarkMoved`]): the poll reads the watermark again and carries
/// on from there, so every order is decided from a fresh read, once.
pub async fn poll(engine: &Engine, conn: &Connection) -> Result<PollReport, EngineError> {
    let mut report = PollReport::default();
    let mut moved = 0;
    'pages: loop {
        let mut last = engine.store.get_watermark(&conn.name, WATERMARK).await?;
        let cursor = last.as_deref().and_then(Cursor::from_watermark);
        let orders = conn.erp.changed_orders(cursor.as_ref(), PAGE).await?;
        if orders.is_empty() {
            return Ok(report);
        }
        let products = products_of(conn, &orders).await?;
        let count = orders.len();
        for order in &orders {
            let existing = engine.store.get_order(&conn.name, &order.erp_id).await?;
            let labels = live_labels(engine, conn, order, existing.as_ref()).await?;
            let now = engine.clock.now();
            let (mut change, outcome) = judge(conn, order, existing.as_ref(), &products, &labels, Seen::Feed, now);
            change.watermark = change.watermark.and_then(|mark| forward(last.as_deref(), mark));
            let to = change.watermark.as_ref().map(|mark| mark.to.clone());
            match engine.store.commit(change).await {
                Ok(_) => {}
                Err(StoreError::WatermarkMoved { found, .. }) if moved < MOVED_RETRIES => {
                    moved += 1;
                    tracing::info!(
                        connection = %conn.name, watermark = WATERMARK, found = found.as_deref().unwrap_or_default(),
                        "another worker moved the ERP feed's watermark; reading on from it"
                    );
                    continue 'pages;
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(to) = to {
                last = Some(to);
            }
            report.seen += 1;
            report.count(outcome);
        }
        if count < PAGE as usize {
            return Ok(report);
        }
    }
}

/// The feed's watermark move from `last` (what this poll last read or wrote), or
/// none when it would go back in time. The ERP serves orders strictly after the
/// cursor in its own `(updated_at, id)` order, so the next cursor is never behind in
/// time; only within one millisecond does the ERP's order of ids decide (which need
/// not be the order of their text), so time alone is compared.
fn forward(last: Option<&str>, mark: WatermarkMove) -> Option<WatermarkMove> {
    let next = Cursor::from_watermark(&mark.to)?;
    match last.and_then(Cursor::from_watermark) {
        Some(read) if next.updated_at < read.updated_at => None,
        _ => Some(WatermarkMove { from: last.map(str::to_string), ..mark }),
    }
}

impl PollReport {
    pub(crate) fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Released => self.released += 1,
            Outcome::Held => self.held += 1,
            Outcome::UpdatePlanned => self.updates_planned += 1,
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::Unchanged => self.unchanged += 1,
        }
    }
}

/// How a snapshot came to be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// From the change feed: the watermark moves past it, and an unchanged snapshot
    /// is only noted.
    Feed,
    /// Read again by id on schedule ([`crate::flows::recheck`]): the watermark stays
    /// where the feed left it, and the order is judged again even when its snapshot
    /// did not change (a held order whose product was fixed).
    Recheck,
}

/// The live (not voided) labels ShipStation made for a released order whose new
/// snapshot changes it: what has to be undone if the ERP no longer wants it shipped.
pub(crate) async fn live_labels(
    engine: &Engine,
    conn: &Connection,
    order: &ErpOrder,
    existing: Option<&OrderRecord>,
) -> Result<Vec<String>, EngineError> {
    let Some(record) = existing.filter(|r| r.released_at.is_some() && r.snapshot_hash != snapshot_hash(order)) else {
        return Ok(Vec::new());
    };
    let shipments = engine
        .store
        .list_shipments(ShipmentFilter { connection: Some(conn.name.clone()), erp_id: Some(record.erp_id.clone()), ..Default::default() })
        .await?;
    Ok(shipments
        .iter()
        .filter(|s| !s.voided && s.kind == ShipmentKind::Label)
        .map(|s| match &s.tracking_number {
            Some(t) => format!("{} {t} (ShipStation shipment {})", s.carrier, s.ss_id),
            None => format!("{} label of ShipStation shipment {}", s.carrier, s.ss_id),
        })
        .collect())
}

/// The product master entries of every SKU these orders name, by SKU: one ERP read.
pub(crate) async fn products_of(conn: &Connection, orders: &[ErpOrder]) -> Result<HashMap<String, Product>, EngineError> {
    let skus: Vec<String> = orders
        .iter()
        .flat_map(|o| o.lines.iter().filter_map(|l| l.sku.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(conn.erp.products(&skus).await?.into_iter().map(|p| (p.sku.clone(), p)).collect())
}

/// What a decision amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Released,
    Held,
    UpdatePlanned,
    Cancelled,
    Unchanged,
}

/// The shipping-relevant content of a snapshot, hashed: what, if it changes, has to
/// reach ShipStation.
pub fn snapshot_hash(order: &ErpOrder) -> String {
    // Not the customer reference or the status reason: they travel with every push,
    // but a change to them alone is not worth one, and hashing them would make every
    // order stored before they existed look changed (pushed again) after an upgrade.
    let relevant = json!({
        "status": order.status,
        "number": order.number,
        "currency": order.currency,
        "ship_to": order.ship_to,
        "bill_to": order.bill_to,
        "lines": order.lines,
        "payment": [order.payment.state, order.payment.amount],
        "shipping": order.shipping_paid,
        "tax": order.tax_paid,
        "email": order.customer_email,
        "service": order.requested_service,
    });
    let digest = Sha256::digest(relevant.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn held_kinds() -> impl Iterator<Item = ExceptionKind> {
    ExceptionKind::ALL.iter().copied().filter(|k| k.code().starts_with("held_"))
}

fn event(erp_id: &str, kind: EventKind, detail: serde_json::Value) -> NewEvent {
    NewEvent::order(erp_id, kind, detail)
}

fn lines_of(conn: &str, order: &ErpOrder, verdict: &Verdict) -> Vec<OrderLineRecord> {
    let cleared: HashMap<&str, i64> = match verdict {
        Verdict::Release { lines, .. } => {
            lines.iter().map(|l| (l.line_id.as_str(), l.unit_weight.milligrams() as i64)).collect()
        }
        Verdict::Hold { .. } => HashMap::new(),
    };
    order
        .lines
        .iter()
        .map(|l| OrderLineRecord {
            connection: conn.to_string(),
            erp_id: order.erp_id.clone(),
            line_id: l.line_id.clone(),
            sku: l.sku.clone(),
            name: l.name.clone(),
            quantity: i64::from(l.quantity),
            unit_weight_mg: cleared
                .get(l.line_id.as_str())
                .copied()
                .or(l.unit_weight.map(|w| w.milligrams() as i64)),
            unit_price_minor: l.unit_price.minor(),
            currency: l.unit_price.currency().code().to_string(),
            physical: l.physical,
        })
        .collect()
}

/// Decide what one ERP snapshot from the change feed means, as a [`Change`] to
/// commit (an order with no live label in ShipStation).
pub fn decide(
    conn: &Connection,
    order: &ErpOrder,
    existing: Option<&OrderRecord>,
    products: &HashMap<String, Product>,
    now: Timestamp,
) -> (Change, Outcome) {
    judge(conn, order, existing, products, &[], Seen::Feed, now)
}

/// Decide what one ERP snapshot means, as a [`Change`] to commit. `labels` are the
/// order's live ShipStation labels ([`live_labels`]): when the ERP withdraws or
/// changes an order that already has one, the exception that says what to undo is
/// raised at once instead of after the push is refused.
pub fn judge(
    conn: &Connection,
    order: &ErpOrder,
    existing: Option<&OrderRecord>,
    products: &HashMap<String, Product>,
    labels: &[String],
    seen: Seen,
    now: Timestamp,
) -> (Change, Outcome) {
    let hash = snapshot_hash(order);
    let key = order_key(&conn.name, &order.erp_id);
    let mut change = Change::new(&conn.name, now);
    if seen == Seen::Feed {
        // Moved from what the caller read: the poll sets `from` before it commits.
        change.watermark = Some(WatermarkMove::new(
            WATERMARK,
            None,
            Cursor { updated_at: order.updated_at, erp_id: order.erp_id.clone() }.to_watermark(),
        ));
    }
    let snapshot = serde_json::to_value(order).expect("an ERP order serializes");
    let mut upsert = match existing {
        Some(r) => OrderUpsert::from_record(r),
        None => OrderUpsert {
            erp_id: order.erp_id.clone(),
            number: order.number.clone(),
            state: OrderState::Received,
            snapshot: snapshot.clone(),
            snapshot_hash: hash.clone(),
            erp_updated_at: order.updated_at,
            order_key: key.clone(),
            ss_order_id: None,
            ss_status: None,
            payment: None,
            pushed_hash: None,
            released_at: None,
            pushed_at: None,
            lines: None,
        },
    };
    upsert.erp_updated_at = order.updated_at;

    if seen == Seen::Feed
        && let Some(record) = existing
        && record.snapshot_hash == hash
    {
        change.events.push(event(
            &order.erp_id,
            EventKind::ErpSeenUnchanged,
            json!({"message": "the ERP presented the order again with nothing to ship changed; nothing to do"}),
        ));
        change.order = Some(upsert);
        return (change, Outcome::Unchanged);
    }

    upsert.number = order.number.clone();
    upsert.snapshot = snapshot;
    upsert.snapshot_hash = hash.clone();
    let was_released = existing.is_some_and(|r| r.released_at.is_some());
    let sync_job = || {
        NewJob::new(
            SyncOrder { erp_id: order.erp_id.clone(), hash: hash.clone() },
            // The ERP's change time makes the key unique per version: a snapshot that
            // returns to an earlier content (on hold, then open again) is a new change.
            format!("sync:{key}:{hash}:{}", order.updated_at.as_millisecond()),
            now,
        )
    };
    let close_held = |change: &mut Change, keep: &[ExceptionKind]| {
        for kind in held_kinds().filter(|k| !keep.contains(k)) {
            change.clear(kind, "order", order.erp_id.clone());
        }
    };
    let reason = order.status_reason.clone().unwrap_or_else(|| match order.status {
        ErpOrderStatus::Cancelled => "cancelled in the ERP".into(),
        ErpOrderStatus::OnHold => "on hold in the ERP".into(),
        ErpOrderStatus::Open => "changed in the ERP".into(),
    });
    // A label already made cannot be taken back by pushing: say at once what to undo.
    let lines_changed = existing
        .and_then(|r| serde_json::from_value::<ErpOrder>(r.snapshot.clone()).ok())
        .is_some_and(|before| before.lines != order.lines);
    let labelled = was_released && !labels.is_empty();
    let withdrawn = |change: &mut Change| {
        let message = if labelled {
            format!(
                "{reason}, after ShipStation labelled it ({}): void the labels in ShipStation and stop the parcels \
                 (or return them to stock), or reopen the order in the ERP",
                labels.join(", ")
            )
        } else {
            format!("{reason} after it was released; ShipStation's order {key} is being cancelled: make sure the warehouse does not pick it")
        };
        change.raise(
            ExceptionKind::OrderWithdrawn,
            "order",
            order.erp_id.clone(),
            json!({"message": message, "reason": reason, "labels": labels, "order_number": order.number}),
        );
    };
    if labelled && order.status == ErpOrderStatus::Open && lines_changed {
        change.raise(
            ExceptionKind::ChangeAfterShipment,
            "order",
            order.erp_id.clone(),
            json!({
                "message": format!(
                    "the ERP changed the lines after ShipStation labelled the order ({}): void the labels that carry \
                     lines the ERP no longer has, or put those lines back in the ERP",
                    labels.join(", ")
                ),
                "labels": labels,
                "order_number": order.number,
            }),
        );
    }

    let outcome = match order.status {
        ErpOrderStatus::Cancelled => {
            close_held(&mut change, &[]);
            upsert.state = OrderState::Cancelled;
            upsert.lines = Some(lines_of(&conn.name, order, &Verdict::Hold { findings: vec![] }));
            if was_released {
                change.jobs.push(sync_job());
                change.events.push(event(
                    &order.erp_id,
                    EventKind::CancelPlanned,
                    json!({"message": format!("{reason} after release; ShipStation's order will be cancelled"), "reason": reason}),
                ));
                withdrawn(&mut change);
            } else {
                change.events.push(event(
                    &order.erp_id,
                    EventKind::CancelledBeforeRelease,
                    json!({"message": "cancelled in the ERP before it was released; nothing was sent to ShipStation"}),
                ));
            }
            Outcome::Cancelled
        }
        ErpOrderStatus::OnHold if was_released => {
            if labelled {
                withdrawn(&mut change);
            }
            change.jobs.push(sync_job());
            change.events.push(event(
                &order.erp_id,
                EventKind::HoldPlanned,
                json!({"message": format!("{reason}; ShipStation's order will be put on hold"), "reason": reason}),
            ));
            Outcome::UpdatePlanned
        }
        ErpOrderStatus::OnHold => {
            upsert.state = OrderState::Held;
            change.events.push(event(
                &order.erp_id,
                EventKind::HeldInErp,
                json!({"message": "on hold in the ERP; it is released when the ERP releases it"}),
            ));
            Outcome::Held
        }
        ErpOrderStatus::Open => {
            let verdict = release::check(order, |sku| products.get(sku).cloned(), &conn.gate);
            upsert.lines = Some(lines_of(&conn.name, order, &verdict));
            match &verdict {
                Verdict::Hold { findings } => {
                    for f in findings {
                        change.raise(
                            f.kind,
                            "order",
                            order.erp_id.clone(),
                            json!({
                                "message": f.detail,
                                "fields": f.fields,
                                "order_number": order.number,
                            }),
                        );
                    }
                    let kinds: Vec<ExceptionKind> = findings.iter().map(|f| f.kind).collect();
                    close_held(&mut change, &kinds);
                    let detail = json!({
                        "reasons": kinds.iter().map(|k| k.code()).collect::<Vec<_>>(),
                        "findings": findings,
                    });
                    if was_released {
                        change.events.push(event(&order.erp_id, EventKind::ChangeRefusedByGate, detail));
                        Outcome::Held
                    } else {
                        upsert.state = OrderState::Held;
                        change.events.push(event(&order.erp_id, EventKind::Held, detail));
                        Outcome::Held
                    }
                }
                Verdict::Release { lines, .. } => {
                    close_held(&mut change, &[]);
                    change.jobs.push(sync_job());
                    if was_released {
                        change.events.push(event(
                            &order.erp_id,
                            EventKind::UpdatePlanned,
                            json!({"message": "the ERP changed the order after release; ShipStation's order will be updated"}),
                        ));
                        Outcome::UpdatePlanned
                    } else {
                        upsert.state = OrderState::Released;
                        upsert.released_at = Some(now);
                        upsert.payment = Some(serde_json::to_value(&order.payment).expect("evidence serializes"));
                        change.events.push(event(
                            &order.erp_id,
                            EventKind::Released,
                            json!({
                                "message": format!(
                                    "payment captured ({}, {}); every pre-flight check passed",
                                    order.payment.source, order.payment.amount
                                ),
                                "payment": order.payment,
                                "order_key": key,
                                "weights": lines.iter().map(|l| json!({
                                    "line": l.line_id, "grams": l.unit_weight.to_decimal(shipledger_core::WeightUnit::Grams).to_string(),
                                    "source": l.weight_source,
                                })).collect::<Vec<_>>(),
                            }),
                        ));
                        Outcome::Released
                    }
                }
            }
        }
    };
    change.order = Some(upsert);
    (change, outcome)
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
