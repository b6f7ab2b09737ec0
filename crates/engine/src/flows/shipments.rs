//! Shipments: what ShipStation shipped comes back to the right ERP lines, once, in
//! two phases.
//!
//! - **Ingest** ([`poll`], in three parts: [`poll_labels`], [`poll_voids`],
//!   [`poll_fulfillments`]): labels by their create and void date windows and orders
//!   marked shipped elsewhere (`/fulfillments`), each window overlapping the last by
//!   a few minutes; the schedule runs all three, a burst of webhook hints the part it
//!   needs; every ShipStation shipment becomes one record per ERP order it
//!   carries, however often it is seen. A record is resolved to its ERP order by
//!   `orderKey` (a split child by its parent's); a label for merged orders is shared
//!   out among the absorbed orders by `mergedIds` and the line ids; its items mapped to ERP lines by `lineItemKey`
//!   ([`shipledger_core::shipment::map_lines`]); what does not add up (more than
//!   ordered, a line the order lacks, a shipment for an order never pushed) is an
//!   owned exception. Watermarks advance in the same commit as what they cover.
//! - **Scans** ([`scans`]): live labels without a carrier scan are asked about on
//!   ShipStation v2; the first physical acceptance (never `NY`/`UN` or an
//!   electronic-only notice) is recorded with its time.
//! - **Inbox** ([`inbox`]): the webhook receivers' jobs, each kind run by its
//!   handler: [`ingest_v1_webhook`](crate::flows::ingest_v1_webhook) answers a burst
//!   of v1 hints with one [`poll_labels`] or [`poll_fulfillments`] (only from the
//!   configured ShipStation API, never from a hint's URL);
//!   [`ingest_v2_track`](crate::flows::ingest_v2_track) records a track event's scan
//!   (`record_tracking`).
//! - **Write-back planning**: a new label plans the ERP fulfilment *packed* (carrier,
//!   service, tracking, ship date); its first scan plans *completed* (`fulfil_on =
//!   "label"` completes at once); a void plans the reversal. Each is a
//!   `write_fulfilment` job keyed by shipment and phase (`job`), run by
//!   [`write_fulfilment`](crate::flows::write_fulfilment).

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::money::{Money, Rounding};
use shipledger_core::shipment::{OrderedLine, ShipmentView, ShippedItem, map_lines};
use shipledger_shipstation::v1::model as ss;
use shipledger_shipstation::v1::query::{FulfillmentFilter, ShipmentFilter, ShipmentSortBy, SortDir};
use shipledger_store::{
    Change, EventKind, JobKind, NewEvent, NewJob, Phase, ShipmentFilter as StoredShipments, ShipmentKind, ShipmentLine,
    ShipmentRecord, ShipmentState, ShipmentUpsert, SyncOrder, WriteFulfilment,
};

use crate::config::FulfilOn;
use crate::flows::label_shares::{self, Share};
use crate::{Connection, Engine, EngineError};

/// Watermarks: the latest ShipStation time each window has covered (epoch ms).
pub const WM_CREATED: &str = "ss_shipments_created";
pub const WM_VOIDED: &str = "ss_shipments_voided";
pub const WM_FULFILLMENTS: &str = "ss_fulfillments_created";
/// How far each poll reaches back before its watermark.
const OVERLAP: SignedDuration = SignedDuration::from_mins(10);
/// Labels asked about per scan pass.
const SCANS_PER_PASS: u32 = 40;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShipmentReport {
    pub seen: u64,
    pub new: u64,
    pub voided: u64,
    pub scanned: u64,
    pub written: u64,
    pub failed: u64,
}

impl ShipmentReport {
    /// Add another pass's counts to these.
    pub fn add(&mut self, other: &ShipmentReport) {
        self.seen += other.seen;
        self.new += other.new;
        self.voided += other.voided;
        self.scanned += other.scanned;
        self.written += other.written;
        self.failed += other.failed;
    }
}

fn ms(ts: Timestamp) -> String {
    ts.as_millisecond().to_string()
}

async fn watermark(engine: &Engine, conn: &Connection, name: &str) -> Result<Option<Timestamp>, EngineError> {
    Ok(engine
        .store
        .get_watermark(&conn.name, name)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|ms| Timestamp::from_millisecond(ms).ok()))
}

/// What a poll has found so far, across its parts: the counts, and the ShipStation
/// orders already resolved to an ERP order (a split child's parent), so each is asked
/// about once.
#[derive(Debug, Default)]
pub struct Polled {
    pub report: ShipmentReport,
    parents: HashMap<i64, Option<String>>,
}

/// Read new labels, voids and fulfillments from ShipStation and record them: the
/// schedule's poll, [`poll_labels`], [`poll_voids`] and [`poll_fulfillments`] in turn.
pub async fn poll(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut polled = Polled::default();
    poll_labels(engine, conn, &mut polled).await?;
    poll_voids(engine, conn, &mut polled).await?;
    poll_fulfillments(engine, conn, &mut polled).await?;
    Ok(polled.report)
}

/// Labels created since the watermark (less the overlap), oldest first, each ingested
/// in its own commit, which advances the watermark: what a `SHIP_NOTIFY` or
/// `ITEM_SHIP_NOTIFY` hint can have changed. A label voided by then is ingested with
/// its void.
pub async fn poll_labels(engine: &Engine, conn: &Connection, polled: &mut Polled) -> Result<(), EngineError> {
    let since = watermark(engine, conn, WM_CREATED).await?;
    let labels = conn
        .shipstation
        .all_shipments(&ShipmentFilter {
            create_date_start: since.map(|t| t - OVERLAP),
            include_shipment_items: true,
            sort_by: Some(ShipmentSortBy::CreateDate),
            sort_dir: Some(SortDir::Asc),
            page_size: Some(500),
            ..Default::default()
        })
        .await?;
    for label in &labels {
        ingest_label(engine, conn, label, WM_CREATED, label.create_date, &mut polled.parents, &mut polled.report).await?;
    }
    Ok(())
}

/// Labels voided since the void watermark (less the overlap): v1 announces no void,
/// so only the schedule's poll finds them.
pub async fn poll_voids(engine: &Engine, conn: &Connection, polled: &mut Polled) -> Result<(), EngineError> {
    let since = watermark(engine, conn, WM_VOIDED).await?;
    let voids = conn
        .shipstation
        .all_shipments(&ShipmentFilter {
            void_date_start: Some(since.map(|t| t - OVERLAP).unwrap_or(Timestamp::UNIX_EPOCH)),
            include_shipment_items: true,
            page_size: Some(500),
            ..Default::default()
        })
        .await?;
    for label in voids.iter().filter(|s| s.voided) {
        ingest_label(engine, conn, label, WM_VOIDED, label.void_date, &mut polled.parents, &mut polled.report).await?;
    }
    Ok(())
}

/// Orders marked shipped outside ShipStation since the watermark (less the overlap):
/// what a `FULFILLMENT_SHIPPED` hint can have changed.
pub async fn poll_fulfillments(engine: &Engine, conn: &Connection, polled: &mut Polled) -> Result<(), EngineError> {
    let since = watermark(engine, conn, WM_FULFILLMENTS).await?;
    let marked = conn
        .shipstation
        .all_fulfillments(&FulfillmentFilter {
            create_date_start: since.map(|t| t - OVERLAP),
            page_size: Some(500),
            ..Default::default()
        })
        .await?;
    for f in &marked {
        ingest_fulfillment(engine, conn, f, &mut polled.parents, &mut polled.report).await?;
    }
    Ok(())
}

/// The ERP order behind a ShipStation order: by its `orderKey`, or — for a split
/// child, whose key ShipStation generated — by its parent's.
async fn resolve(
    engine: &Engine,
    conn: &Connection,
    order_key: Option<&str>,
    ss_order_id: i64,
    parents: &mut HashMap<i64, Option<String>>,
) -> Result<Option<String>, EngineError> {
    if let Some(key) = order_key
        && let Some(order) = engine.store.get_order_by_key(&conn.name, key).await?
    {
        return Ok(Some(order.erp_id));
    }
    if let Some(found) = parents.get(&ss_order_id) {
        return Ok(found.clone());
    }
    let found = match conn.shipstation.get_order(ss_order_id).await {
        Ok(order) => {
            let own = match order.order_key.as_deref() {
                Some(k) => engine.store.get_order_by_key(&conn.name, k).await?.map(|o| o.erp_id),
                None => None,
            };
            match (own, order.advanced_options.as_ref().and_then(|a| a.parent_id)) {
                (Some(found), _) => Some(found),
                (None, Some(parent)) => match conn.shipstation.get_order(parent).await {
                    Ok(p) => match p.order_key {
                        Some(k) => engine.store.get_order_by_key(&conn.name, &k).await?.map(|o| o.erp_id),
                        None => None,
                    },
                    Err(shipledger_shipstation::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                },
                (None, None) => None,
            }
        }
        Err(shipledger_shipstation::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    parents.insert(ss_order_id, found.clone());
    Ok(found)
}

pub(crate) fn lines_of(items: &[ss::OrderItem]) -> Vec<ShipmentLine> {
    items
        .iter()
        .filter(|i| !i.adjustment)
        .map(|i| ShipmentLine { line_item_key: i.line_item_key.clone(), sku: i.sku.clone(), quantity: i.quantity })
        .collect()
}

/// Split a label's items among the ERP orders they belong to. Only when an item names
/// a line the resolved order lacks is ShipStation asked about the order: a merged
/// order lists what it absorbed in `mergedIds`, and those orders (404 in ShipStation
/// now) are found by the `orderId` recorded when they were pushed. Items no order
/// claims stay with the survivor, where they are reported as unknown lines.
async fn shares(
    engine: &Engine,
    conn: &Connection,
    label: &ss::Shipment,
    erp_id: Option<String>,
) -> Result<Vec<Share>, EngineError> {
    let key = format!("label:{}", label.shipment_id);
    let lines = lines_of(label.shipment_items.as_deref().unwrap_or_default());
    let own: Vec<String> = match &erp_id {
        Some(id) => engine.store.order_lines(&conn.name, id).await?.into_iter().map(|l| l.line_id).collect(),
        None => Vec::new(),
    };
    let foreign = |l: &ShipmentLine| l.line_item_key.as_ref().is_some_and(|k| !own.contains(k));
    let single = |lines| vec![Share { key: key.clone(), erp_id: erp_id.clone(), lines, primary: true }];
    if !lines.iter().any(foreign) {
        return Ok(single(lines));
    }
    let Some(ss_order_id) = label.order_id else { return Ok(single(lines)) };
    let merged_ids = match conn.shipstation.get_order(ss_order_id).await {
        Ok(order) => order.advanced_options.map(|a| a.merged_ids).unwrap_or_default(),
        Err(shipledger_shipstation::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    // Line id -> the absorbed ERP order that has it.
    let mut owner: HashMap<String, String> = HashMap::new();
    for merged in merged_ids {
        let found = engine
            .store
            .list_orders(shipledger_store::OrderFilter {
                connection: Some(conn.name.clone()),
                ss_order_id: Some(merged),
                ..Default::default()
            })
            .await?;
        for order in found {
            for line in engine.store.order_lines(&conn.name, &order.erp_id).await? {
                owner.entry(line.line_id).or_insert_with(|| order.erp_id.clone());
            }
        }
    }
    Ok(label_shares::split(&key, erp_id, lines, &own, &owner))
}

pub(crate) async fn ingest_label(
    engine: &Engine,
    conn: &Connection,
    label: &ss::Shipment,
    wm_name: &str,
    wm_time: Option<Timestamp>,
    parents: &mut HashMap<i64, Option<String>>,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    report.seen += 1;
    let ss_order_id = label.order_id.unwrap_or_default();
    let now = engine.clock.now();
    // Every share of the label seen before: the survivor's and those of the orders it
    // absorbed, all under the label's orderId.
    let existing: Vec<ShipmentRecord> = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), ss_order_id: Some(ss_order_id), ..Default::default() })
        .await?
        .into_iter()
        .filter(|s| s.kind == ShipmentKind::Label && s.ss_id == label.shipment_id)
        .collect();
    let mut change = Change::new(&conn.name, now);
    if let Some(t) = wm_time {
        let current = watermark(engine, conn, wm_name).await?;
        if current.is_none_or(|c| t > c) {
            change.watermark = Some((wm_name.to_string(), ms(t)));
        }
    }
    let mut records = Vec::new();
    if !existing.is_empty() {
        if !label.voided || existing.iter().all(|s| s.voided) {
            // Seen before and nothing changed that matters: one record, no new work.
            return Ok(());
        }
        records.extend(existing.iter().filter(|s| !s.voided).map(|s| s.shipment.clone()));
        report.voided += 1;
        for upsert in &mut records {
            upsert.voided = true;
            upsert.voided_at = label.void_date.or(Some(now));
            match upsert.state {
                ShipmentState::Packed | ShipmentState::Completed => change.jobs.push(job(&upsert.shipment_key, Phase::Cancelled, now)),
                ShipmentState::Seen => upsert.state = ShipmentState::Reversed,
                _ => {}
            }
            change.events.push(event(
                &upsert.shipment_key,
                EventKind::Voided,
                json!({"message": format!("label {} voided", upsert.tracking_number.clone().unwrap_or_default())}),
            ));
        }
        resend_after_void(engine, conn, &records, label.shipment_id, now, &mut change).await?;
    } else {
        report.new += 1;
        let erp_id = resolve(engine, conn, label.order_key.as_deref(), ss_order_id, parents).await?;
        let cost = label.shipment_cost.and_then(|c| {
            let currency = conn.account_currency;
            Money::from_decimal(c, currency, Rounding::HalfEven).ok().map(|m| (m.minor(), currency.code().to_string()))
        });
        let shares = shares(engine, conn, label, erp_id.clone()).await?;
        let merged: Vec<String> = shares.iter().filter(|s| !s.primary).filter_map(|s| s.erp_id.clone()).collect();
        for share in shares {
            let upsert = ShipmentUpsert {
                shipment_key: share.key.clone(),
                kind: ShipmentKind::Label,
                ss_id: label.shipment_id,
                ss_order_id,
                ss_order_key: label.order_key.clone(),
                erp_id: share.erp_id.clone(),
                carrier: label.carrier_code.clone().unwrap_or_default(),
                service: label.service_code.clone(),
                tracking_number: label.tracking_number.clone(),
                ship_date: label.ship_date,
                cost_minor: cost.as_ref().filter(|_| share.primary).map(|c| c.0),
                cost_currency: cost.as_ref().filter(|_| share.primary).map(|c| c.1.clone()),
                ss_created_at: label.create_date.unwrap_or(now),
                voided: label.voided,
                voided_at: if label.voided { label.void_date.or(Some(now)) } else { None },
                lines: share.lines,
                first_scan_at: None,
                tracking_status: None,
                state: match (&share.erp_id, label.voided) {
                    (None, _) => ShipmentState::Orphan,
                    (Some(_), true) => ShipmentState::Reversed,
                    (Some(_), false) => ShipmentState::Seen,
                },
                erp_fulfilment_id: None,
            };
            let tracking = upsert.tracking_number.clone().unwrap_or_default();
            let message = if share.primary && !merged.is_empty() {
                format!(
                    "label {tracking} ({} {}) for ShipStation order {ss_order_id}, which absorbed the orders of {}",
                    upsert.carrier,
                    upsert.service.clone().unwrap_or_default(),
                    merged.join(", ")
                )
            } else if share.primary {
                format!("label {tracking} ({} {}) for ShipStation order {ss_order_id}", upsert.carrier, upsert.service.clone().unwrap_or_default())
            } else {
                format!("label {tracking} for ShipStation order {ss_order_id} carries lines of this order, merged into it")
            };
            change.events.push(event(&share.key, EventKind::LabelSeen, json!({"message": message, "erp_id": share.erp_id})));
            match &share.erp_id {
                Some(_) if !label.voided => {
                    let phase = if conn.policy.fulfil_on == FulfilOn::Label { Phase::Completed } else { Phase::Packed };
                    change.jobs.push(job(&share.key, phase, now));
                }
                Some(_) => {}
                None => change.raise(
                    ExceptionKind::OrphanShipment,
                    "shipment",
                    share.key.clone(),
                    json!({
                        "message": format!(
                            "label {tracking} (ShipStation order {ss_order_id}, orderKey {}) belongs to no order shipledger pushed; check whether it was created in ShipStation by hand",
                            label.order_key.clone().unwrap_or_default()
                        ),
                    }),
                ),
            }
            records.push(upsert);
        }
    }
    let erp_ids: std::collections::BTreeSet<String> = records.iter().filter_map(|r| r.erp_id.clone()).collect();
    change.shipments = records;
    for erp_id in &erp_ids {
        mapping_exceptions(engine, conn, erp_id, &mut change).await?;
    }
    engine.store.commit(change).await?;
    Ok(())
}

pub(crate) async fn ingest_fulfillment(
    engine: &Engine,
    conn: &Connection,
    f: &ss::Fulfillment,
    parents: &mut HashMap<i64, Option<String>>,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    report.seen += 1;
    let key = format!("fulfillment:{}", f.fulfillment_id);
    if engine.store.get_shipment(&conn.name, &key).await?.is_some() {
        return Ok(());
    }
    let ss_order_id = f.order_id.unwrap_or_default();
    let erp_id = resolve(engine, conn, None, ss_order_id, parents).await?;
    let now = engine.clock.now();
    // Marked shipped without a label: every line of the order, as ShipStation has it.
    let lines = match conn.shipstation.get_order(ss_order_id).await {
        Ok(order) => lines_of(&order.items),
        Err(shipledger_shipstation::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut change = Change::new(&conn.name, now);
    if let Some(t) = f.create_date {
        change.watermark = Some((WM_FULFILLMENTS.to_string(), ms(t)));
    }
    report.new += 1;
    change.shipments.push(ShipmentUpsert {
        shipment_key: key.clone(),
        kind: ShipmentKind::Fulfillment,
        ss_id: f.fulfillment_id,
        ss_order_id,
        ss_order_key: None,
        erp_id: erp_id.clone(),
        carrier: f.carrier_code.clone().unwrap_or_default(),
        service: None,
        tracking_number: f.tracking_number.clone(),
        ship_date: f.ship_date,
        cost_minor: None,
        cost_currency: None,
        ss_created_at: f.create_date.unwrap_or(now),
        voided: false,
        voided_at: None,
        lines,
        first_scan_at: None,
        tracking_status: None,
        state: if erp_id.is_some() { ShipmentState::Seen } else { ShipmentState::Orphan },
        erp_fulfilment_id: None,
    });
    change.events.push(event(&key, EventKind::MarkedShippedElsewhere, json!({"message": format!("order {ss_order_id} marked shipped outside ShipStation"), "erp_id": erp_id})));
    if erp_id.is_some() {
        // Shipped by someone else: there is no label to wait a scan for.
        change.jobs.push(job(&key, Phase::Completed, now));
    }
    engine.store.commit(change).await?;
    Ok(())
}

/// Open or close the order's line-mapping exceptions from all its shipments.
async fn mapping_exceptions(engine: &Engine, conn: &Connection, erp_id: &str, change: &mut Change) -> Result<(), EngineError> {
    let lines = engine.store.order_lines(&conn.name, erp_id).await?;
    let ordered: Vec<OrderedLine> = lines
        .iter()
        .map(ordered_line)
        .collect();
    let mut shipments = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.to_string()), ..Default::default() })
        .await?;
    for pending in &change.shipments {
        shipments.retain(|s| s.shipment_key != pending.shipment_key);
    }
    let mut views: Vec<ShipmentView> = shipments.iter().map(view).collect();
    views.extend(change.shipments.iter().filter(|s| s.erp_id.as_deref() == Some(erp_id)).map(|s| ShipmentView {
        key: s.shipment_key.clone(),
        voided: s.voided,
        items: s.lines.iter().map(item).collect(),
    }));
    let mapping = map_lines(&ordered, &views);
    if mapping.over.is_empty() {
        change.clear(ExceptionKind::OverShipment, "order", erp_id);
    } else {
        change.raise(
            ExceptionKind::OverShipment,
            "order",
            erp_id.to_string(),
            json!({
                "message": mapping.over.iter().map(|o| format!("line {} ordered {} but {} shipped", o.line_id, o.ordered, o.shipped)).collect::<Vec<_>>().join("; "),
                "lines": mapping.over,
            }),
        );
    }
    if mapping.unknown.is_empty() {
        change.clear(ExceptionKind::UnknownShipmentLine, "order", erp_id);
    } else {
        change.raise(
            ExceptionKind::UnknownShipmentLine,
            "order",
            erp_id.to_string(),
            json!({
                "message": format!("{} shipment item(s) name no line of order {erp_id}; fix the items in ShipStation or the ERP order", mapping.unknown.len()),
                "items": mapping.unknown,
            }),
        );
    }
    Ok(())
}

pub(crate) fn ordered_line(l: &shipledger_store::OrderLineRecord) -> OrderedLine {
    OrderedLine { line_id: l.line_id.clone(), sku: l.sku.clone(), quantity: l.quantity, physical: l.physical }
}

fn item(l: &ShipmentLine) -> ShippedItem {
    ShippedItem { line_item_key: l.line_item_key.clone(), sku: l.sku.clone(), quantity: l.quantity }
}

pub(crate) fn view(s: &ShipmentRecord) -> ShipmentView {
    ShipmentView { key: s.shipment_key.clone(), voided: s.voided, items: s.lines.iter().map(item).collect() }
}

/// A void reopens the order in ShipStation: an ERP change that could not reach it
/// while it was labelled (a withdrawal, changed lines) is planned again now, as a
/// `sync_order` for the order's latest snapshot.
async fn resend_after_void(
    engine: &Engine,
    conn: &Connection,
    voided: &[ShipmentUpsert],
    ss_id: i64,
    now: Timestamp,
    change: &mut Change,
) -> Result<(), EngineError> {
    let erp_ids: std::collections::BTreeSet<&str> = voided.iter().filter_map(|u| u.erp_id.as_deref()).collect();
    for erp_id in erp_ids {
        let Some(order) = engine.store.get_order(&conn.name, erp_id).await? else { continue };
        if order.released_at.is_none() || order.pushed_hash.as_deref() == Some(order.snapshot_hash.as_str()) {
            continue;
        }
        change.jobs.push(NewJob::new(
            SyncOrder { erp_id: erp_id.to_string(), hash: order.snapshot_hash.clone() },
            format!("sync:{}:{}:void:{ss_id}", order.order_key, order.snapshot_hash),
            now,
        ));
        change.events.push(NewEvent::order(
            erp_id,
            EventKind::ResendPlanned,
            json!({"message": format!(
                "a label was voided, so ShipStation takes changes again: the ERP's latest version (order {}) is sent",
                order.state
            )}),
        ));
    }
    Ok(())
}

/// The `write_fulfilment` job that records `phase` of a shipment in the ERP, keyed by
/// shipment and phase.
pub(crate) fn job(shipment_key: &str, phase: Phase, now: Timestamp) -> NewJob {
    NewJob::new(
        WriteFulfilment { shipment_key: shipment_key.to_string(), phase },
        format!("ful:{shipment_key}:{phase}"),
        now,
    )
}

pub(crate) fn event(shipment_key: &str, kind: EventKind, detail: serde_json::Value) -> NewEvent {
    NewEvent::shipment(shipment_key, kind, detail)
}

/// Ask ShipStation v2 about live labels without a carrier scan; record first scans.
pub async fn scans(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    let Some(v2) = &conn.shipstation_v2 else { return Ok(report) };
    // Webhooks bring most scans; each pass asks about the oldest waiting labels only,
    // so polling stays well inside v2's 200 requests a minute.
    let waiting = engine
        .store
        .list_shipments(StoredShipments {
            connection: Some(conn.name.clone()),
            awaiting_scan: true,
            limit: SCANS_PER_PASS,
            ..Default::default()
        })
        .await?;
    // A merged label is one record per ERP order with the same number: ask once.
    let mut asked: HashMap<(String, String), Option<shipledger_shipstation::v2::model::TrackingInfo>> = HashMap::new();
    for s in waiting.into_iter().filter(|s| s.erp_id.is_some()) {
        let Some(number) = &s.tracking_number else { continue };
        let info = match asked.get(&(s.carrier.clone(), number.clone())) {
            Some(known) => known.clone(),
            None => {
                let info = match v2.get_tracking(&s.carrier, number).await {
                    Ok(info) => Some(info),
                    Err(shipledger_shipstation::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                };
                asked.insert((s.carrier.clone(), number.clone()), info.clone());
                info
            }
        };
        let Some(info) = info else { continue };
        if record_tracking(engine, conn, &s, &info).await? {
            report.scanned += 1;
        }
    }
    Ok(report)
}

/// Record what a tracking answer says about a shipment; plans the completed write on
/// the first physical scan. `true` when this was the first scan.
pub(crate) async fn record_tracking(
    engine: &Engine,
    conn: &Connection,
    s: &ShipmentRecord,
    info: &shipledger_shipstation::v2::model::TrackingInfo,
) -> Result<bool, EngineError> {
    let status = info.status_code.as_ref().map(|c| c.as_str().to_string());
    let accepted = info.first_carrier_acceptance().and_then(|e| e.occurred_at);
    let first_scan = accepted.is_some() && s.first_scan_at.is_none() && !s.voided;
    if !first_scan && status == s.tracking_status {
        return Ok(false);
    }
    let now = engine.clock.now();
    let mut upsert = s.shipment.clone();
    upsert.tracking_status = status.clone();
    let mut change = Change::new(&conn.name, now);
    if let (true, Some(at)) = (first_scan, accepted) {
        upsert.first_scan_at = Some(at);
        change.jobs.push(job(&s.shipment_key, Phase::Completed, now));
        change.events.push(event(
            &s.shipment_key,
            EventKind::FirstScan,
            json!({
                "message": format!("carrier scanned {} at {at} ({})", s.tracking_number.clone().unwrap_or_default(), status.clone().unwrap_or_default()),
                "at": at.to_string(),
            }),
        ));
    }
    change.shipments.push(upsert);
    engine.store.commit(change).await?;
    Ok(first_scan)
}

/// Webhook inbox jobs the receivers stored, v1 hints then v2 track events, each kind
/// through its handler ([`crate::flows::run_jobs`]).
pub async fn inbox(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    for kind in [JobKind::IngestV1Webhook, JobKind::IngestV2Track] {
        report.add(&crate::flows::run_jobs(engine, conn, kind).await?.shipments);
    }
    Ok(report)
}
