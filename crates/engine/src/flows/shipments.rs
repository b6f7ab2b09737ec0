//! Shipments: what ShipStation shipped comes back to the right ERP lines, once, in
//! two phases.
//!
//! - **Ingest** ([`poll`]): labels by their create and void date windows and orders
//!   marked shipped elsewhere (`/fulfillments`), each window overlapping the last by
//!   a few minutes; every ShipStation shipment becomes one record per ERP order it
//!   carries, however often it is seen. A record is resolved to its ERP order by
//!   `orderKey` (a split child by its parent's); a label for merged orders is shared
//!   out among the absorbed orders by `mergedIds` and the line ids; its items mapped to ERP lines by `lineItemKey`
//!   ([`shipledger_core::shipment::map_lines`]); what does not add up (more than
//!   ordered, a line the order lacks, a shipment for an order never pushed) is an
//!   owned exception. Watermarks advance in the same commit as what they cover.
//! - **Scans** ([`scans`]): live labels without a carrier scan are asked about on
//!   ShipStation v2; the first physical acceptance (never `NY`/`UN` or an
//!   electronic-only notice) is recorded with its time.
//! - **Inbox** ([`inbox`]): the webhook receivers' jobs. A v1 hint's `resource_url`
//!   is fetched only from the configured ShipStation API, never through a redirect to
//!   another origin; a refused one is finished at once, never retried, and raised to
//!   the admin as `webhook_foreign_host` ([`foreign_webhook`], shared with the
//!   receiver). v2 track events record the first scan.
//! - **Write-back** ([`write_back`]): a new label plans the ERP fulfilment *packed*
//!   (carrier, service, tracking, ship date); its first scan plans *completed*
//!   (`fulfil_on = "label"` completes at once); a void plans the reversal. Each is an
//!   outbox job keyed by shipment and phase, and is done only when the ERP shows it
//!   when read back. An ERP that cannot undo a completed fulfilment gets an
//!   exception that says exactly what to undo.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::money::{Currency, Money, Rounding};
use shipledger_core::shipment::{OrderedLine, ShipmentView, ShippedItem, map_lines};
use shipledger_erp::{ErpError, FulfilmentState, FulfilmentWrite, Package};
use shipledger_shipstation::v1::model as ss;
use shipledger_shipstation::{ForeignReason, MAX_RESOURCE_URL_LEN};
use shipledger_shipstation::v1::query::{FulfillmentFilter, ShipmentFilter, ShipmentSortBy, SortDir};
use shipledger_store::{
    Change, ExceptionFilter, ExceptionState, Job, JobClaim, JobFinish, JobState, NewEvent, NewJob, OrderState, Store, StoreError,
    OrderUpsert, ShipmentFilter as StoredShipments, ShipmentKind, ShipmentLine, ShipmentRecord, ShipmentState,
    ShipmentUpsert,
};

use crate::config::FulfilOn;
use crate::flows::label_shares::{self, Share};
use crate::flows::release::SYNC_ORDER;
use crate::flows::{LEASE, commit_job_change, retry_job};
use crate::{Connection, Engine, EngineError};

/// Watermarks: the latest ShipStation time each window has covered (epoch ms).
pub const WM_CREATED: &str = "ss_shipments_created";
pub const WM_VOIDED: &str = "ss_shipments_voided";
pub const WM_FULFILLMENTS: &str = "ss_fulfillments_created";
/// Inbox jobs the webhook receivers store.
pub const INGEST_V1: &str = "ingest_v1_webhook";
pub const INGEST_V2: &str = "ingest_v2_track";
/// The outbox job that writes one shipment's phase to the ERP.
pub const WRITE_FULFILMENT: &str = "write_fulfilment";
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

/// Read new labels, voids and fulfillments from ShipStation and record them.
pub async fn poll(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    let mut parents = HashMap::new();

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
        ingest_label(engine, conn, label, WM_CREATED, label.create_date, &mut parents, &mut report).await?;
    }

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
        ingest_label(engine, conn, label, WM_VOIDED, label.void_date, &mut parents, &mut report).await?;
    }

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
        ingest_fulfillment(engine, conn, f, &mut parents, &mut report).await?;
    }
    Ok(report)
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

async fn ingest_label(
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
                ShipmentState::Packed | ShipmentState::Completed => change.jobs.push(job(&upsert.shipment_key, "cancelled", now)),
                ShipmentState::Seen => upsert.state = ShipmentState::Reversed,
                _ => {}
            }
            change.events.push(event(
                &upsert.shipment_key,
                "voided",
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
            change.events.push(event(&share.key, "label_seen", json!({"message": message, "erp_id": share.erp_id})));
            match &share.erp_id {
                Some(_) if !label.voided => {
                    let phase = if conn.policy.fulfil_on == FulfilOn::Label { "completed" } else { "packed" };
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

async fn ingest_fulfillment(
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
    change.events.push(event(&key, "marked_shipped_elsewhere", json!({"message": format!("order {ss_order_id} marked shipped outside ShipStation"), "erp_id": erp_id})));
    if erp_id.is_some() {
        // Shipped by someone else: there is no label to wait a scan for.
        change.jobs.push(job(&key, "completed", now));
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

fn ordered_line(l: &shipledger_store::OrderLineRecord) -> OrderedLine {
    OrderedLine { line_id: l.line_id.clone(), sku: l.sku.clone(), quantity: l.quantity, physical: l.physical }
}

fn item(l: &ShipmentLine) -> ShippedItem {
    ShippedItem { line_item_key: l.line_item_key.clone(), sku: l.sku.clone(), quantity: l.quantity }
}

fn view(s: &ShipmentRecord) -> ShipmentView {
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
        change.jobs.push(NewJob {
            kind: SYNC_ORDER.into(),
            idempotency_key: format!("sync:{}:{}:void:{ss_id}", order.order_key, order.snapshot_hash),
            payload: json!({"erp_id": erp_id, "hash": order.snapshot_hash}),
            run_at: now,
        });
        change.events.push(NewEvent {
            record_type: "order".into(),
            record_id: erp_id.to_string(),
            kind: "resend_planned".into(),
            detail: json!({"message": format!(
                "a label was voided, so ShipStation takes changes again: the ERP's latest version (order {}) is sent",
                order.state
            )}),
        });
    }
    Ok(())
}

fn job(shipment_key: &str, phase: &str, now: Timestamp) -> NewJob {
    NewJob {
        kind: WRITE_FULFILMENT.into(),
        idempotency_key: format!("ful:{shipment_key}:{phase}"),
        payload: json!({"shipment_key": shipment_key, "phase": phase}),
        run_at: now,
    }
}

fn event(shipment_key: &str, kind: &str, detail: serde_json::Value) -> NewEvent {
    NewEvent { record_type: "shipment".into(), record_id: shipment_key.to_string(), kind: kind.into(), detail }
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
async fn record_tracking(
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
        change.jobs.push(job(&s.shipment_key, "completed", now));
        change.events.push(event(
            &s.shipment_key,
            "first_scan",
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

/// Webhook inbox jobs the receivers stored: v1 hints whose resource is fetched (only
/// from the configured ShipStation host, checked again here, and never through a
/// redirect to another origin), and v2 track events.
///
/// A v1 job whose `resource_url` is longer than [`MAX_RESOURCE_URL_LEN`], is not a
/// URL, points off the configured API, or whose fetch is redirected off it, is
/// finished dead at once, never retried and nothing ingested; the last two also
/// raise the admin's `webhook_foreign_host` exception ([`foreign_webhook`]) in the
/// same commit. Other failed fetches are retried with backoff.
pub async fn inbox(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    let mut parents = HashMap::new();
    loop {
        let now = engine.clock.now();
        let jobs = engine
            .store
            .claim_jobs(JobClaim { kind: INGEST_V1, connection: Some(&conn.name), now, lease: LEASE, limit: 20, worker: &engine.worker })
            .await?;
        let v2_jobs = engine
            .store
            .claim_jobs(JobClaim { kind: INGEST_V2, connection: Some(&conn.name), now, lease: LEASE, limit: 50, worker: &engine.worker })
            .await?;
        if jobs.is_empty() && v2_jobs.is_empty() {
            return Ok(report);
        }
        for job in jobs {
            let outcome = ingest_v1(engine, conn, &job, &mut parents, &mut report).await;
            settle_inbox_job(engine, conn, job, outcome).await?;
        }
        for job in v2_jobs {
            let outcome = ingest_v2(engine, conn, &job, &mut report).await.map(|()| Inboxed::Done);
            settle_inbox_job(engine, conn, job, outcome).await?;
        }
    }
}

/// What became of an inbox job that did not fail in a way worth retrying.
enum Inboxed {
    /// Ingested (or nothing to ingest).
    Done,
    /// Refused for good: finished dead with `change` (an exception, an event) and why.
    Refused { change: Change, why: String },
}

async fn ingest_v1(
    engine: &Engine,
    conn: &Connection,
    job: &Job,
    parents: &mut HashMap<i64, Option<String>>,
    report: &mut ShipmentReport,
) -> Result<Inboxed, EngineError> {
    let raw = job.payload["resource_url"].as_str().unwrap_or_default();
    let kind = job.payload["resource_type"].as_str().unwrap_or_default();
    let base = conn.shipstation.base_url();
    let refused = |why: String| Ok(Inboxed::Refused { change: Change::new(&conn.name, engine.clock.now()), why });
    let len = raw.chars().count();
    if len > MAX_RESOURCE_URL_LEN {
        return refused(format!(
            "the webhook's resource_url is {len} characters long, more than the {MAX_RESOURCE_URL_LEN} accepted; not fetched"
        ));
    }
    let Ok(url) = url::Url::parse(raw) else {
        return refused(format!("the webhook's resource_url {raw:?} is not a URL; not fetched"));
    };
    let foreign = |reason: ForeignReason, redirect_to: Option<&str>| ForeignWebhook {
        resource_url: raw,
        resource_type: kind,
        reason,
        redirect_to: redirect_to.map(str::to_string),
        base,
    };
    if let Some(reason) = shipledger_shipstation::resource_url_mismatch(&url, base) {
        // The receiver checks this too; credentials never leave for another host.
        let why = format!("refused: {raw} is not fetched because {}", reason.explain());
        let change = foreign_webhook(engine.store.as_ref(), &conn.name, engine.clock.now(), &foreign(reason, None)).await?;
        return Ok(Inboxed::Refused { change, why });
    }
    let fetched = match kind {
        "SHIP_NOTIFY" | "ITEM_SHIP_NOTIFY" => conn
            .shipstation
            .get_resource::<ss::Page<ss::Shipment>>(&shipledger_shipstation::with_shipment_items(&url))
            .await
            .map(|page| (page.items, Vec::new())),
        "FULFILLMENT_SHIPPED" => conn.shipstation.get_resource::<ss::Page<ss::Fulfillment>>(&url).await.map(|page| (Vec::new(), page.items)),
        // New orders in ShipStation are ours (we pushed them): nothing to learn.
        _ => Ok((Vec::new(), Vec::new())),
    };
    let (labels, fulfillments) = match fetched {
        Ok(found) => found,
        Err(err) => {
            let shipledger_shipstation::Error::RedirectRefused { to, .. } = &err else { return Err(err.into()) };
            let refused = foreign(ForeignReason::Redirect, Some(to));
            let change = foreign_webhook(engine.store.as_ref(), &conn.name, engine.clock.now(), &refused).await?;
            return Ok(Inboxed::Refused { change, why: format!("refused: {err}") });
        }
    };
    for label in &labels {
        ingest_label(engine, conn, label, WM_CREATED, None, parents, report).await?;
    }
    for f in &fulfillments {
        ingest_fulfillment(engine, conn, f, parents, report).await?;
    }
    Ok(Inboxed::Done)
}

async fn ingest_v2(engine: &Engine, conn: &Connection, job: &Job, report: &mut ShipmentReport) -> Result<(), EngineError> {
    let Some(data) = job.payload.get("data") else { return Ok(()) };
    let info: shipledger_shipstation::v2::model::TrackingInfo = serde_json::from_str(&data.to_string())
        .map_err(|e| EngineError::Setup(format!("a track webhook's data could not be read: {e}")))?;
    let Some(number) = info.tracking_number.clone() else { return Ok(()) };
    let shipments = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), tracking_number: Some(number), ..Default::default() })
        .await?;
    for s in shipments.iter().filter(|s| s.kind == ShipmentKind::Label) {
        if record_tracking(engine, conn, s, &info).await? {
            report.scanned += 1;
        }
    }
    Ok(())
}

/// Finish an inbox job (dead at once when it was refused), or retry it later when
/// the fetch failed.
async fn settle_inbox_job(engine: &Engine, conn: &Connection, job: Job, outcome: Result<Inboxed, EngineError>) -> Result<(), EngineError> {
    let now = engine.clock.now();
    match outcome {
        Ok(Inboxed::Done) => finish(engine, conn, job, JobState::Done, None, None, vec![]).await,
        Ok(Inboxed::Refused { mut change, why }) => {
            tracing::warn!(connection = %conn.name, job = job.id, reason = %why, "webhook inbox job refused; not retried");
            change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.unwrap_or_default(), state: JobState::Dead, error: Some(why) });
            commit_job_change(engine, change).await
        }
        Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
        Err(e) if job.attempts >= i64::from(conn.policy.max_push_attempts) => {
            // Polling will still find what this webhook pointed at.
            finish(engine, conn, job, JobState::Dead, Some(e.to_string()), None, vec![]).await
        }
        Err(e) => {
            let wait = SignedDuration::from_secs(2i64.saturating_pow(job.attempts.clamp(1, 8) as u32).min(300));
            retry_job(engine, &job, now + wait, &e.to_string()).await
        }
    }
}

/// The most distinct offending URLs one `webhook_foreign_host` exception keeps (the
/// latest; every refusal is also an event on the timeline).
pub const FOREIGN_URLS_KEPT: usize = 50;

/// A v1 webhook URL that was not fetched, or whose fetch was redirected off the
/// configured ShipStation API.
#[derive(Debug, Clone)]
pub struct ForeignWebhook<'a> {
    /// The webhook's `resource_url`, as it came.
    pub resource_url: &'a str,
    pub resource_type: &'a str,
    pub reason: ForeignReason,
    /// For [`ForeignReason::Redirect`]: where the redirect pointed.
    pub redirect_to: Option<String>,
    /// The configured ShipStation API.
    pub base: &'a url::Url,
}

/// The change that raises (or refreshes) the admin's `webhook_foreign_host` exception
/// for `refused`, with a `refused` event on the webhook's timeline; the caller commits
/// it (with the job it finishes, if any).
///
/// The exception is on the offending host (`host[:port]` as named; a redirect's
/// target host); its message names the reason (`scheme`, `userinfo`, `host`, `port`
/// or `redirect`) and its detail keeps the reasons seen and the distinct offending
/// URLs, the latest [`FOREIGN_URLS_KEPT`] of them (a redirect's target, else the
/// `resource_url`), each cut to [`MAX_RESOURCE_URL_LEN`] characters with any password
/// blanked, so the detail stays bounded however often it is refreshed. The earlier
/// list is read before the commit, outside its transaction: of two refusals of one
/// host committed at the same moment, the list may keep only the later one's URL;
/// the `refused` events keep every one.
pub async fn foreign_webhook(store: &dyn Store, connection: &str, now: Timestamp, refused: &ForeignWebhook<'_>) -> Result<Change, StoreError> {
    let resource_url = shown_url(refused.resource_url);
    let offending = shown_url(refused.redirect_to.as_deref().unwrap_or(refused.resource_url));
    let host = url::Url::parse(refused.redirect_to.as_deref().unwrap_or(refused.resource_url))
        .ok()
        .and_then(|u| u.host_str().map(|h| match u.port() { Some(p) => format!("{h}:{p}"), None => h.to_string() }))
        .unwrap_or_else(|| "(no host)".to_string());
    let previous = store
        .list_exceptions(ExceptionFilter {
            connection: Some(connection.to_string()),
            state: Some(ExceptionState::Open),
            kind: Some(ExceptionKind::WebhookForeignHost),
            record_type: Some("webhook".into()),
            record_id: Some(host.clone()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    let earlier = |field: &str| -> Vec<String> {
        previous
            .first()
            .and_then(|e| e.detail[field].as_array())
            .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut urls = earlier("offending_urls");
    urls.retain(|u| *u != offending);
    urls.push(offending.clone());
    let drop = urls.len().saturating_sub(FOREIGN_URLS_KEPT);
    urls.drain(..drop);
    let mut reasons = earlier("reasons");
    let reason = refused.reason.code();
    if !reasons.iter().any(|r| r == reason) {
        reasons.push(reason.to_string());
    }
    let base = refused.base;
    let message = match refused.reason {
        ForeignReason::Redirect => format!(
            "fetching a v1 webhook's resource {resource_url} from the configured ShipStation API {base}, it answered with a redirect \
             to {offending}, another origin; the redirect was not followed, nothing was sent there (no credentials either) and \
             nothing was ingested. If ShipStation moved, set base_url to its new address; otherwise something between shipledger \
             and ShipStation (a proxy, DNS) is redirecting its requests: find it before trusting this connection's webhooks again."
        ),
        reason => format!(
            "a v1 webhook with a valid token pointed at {resource_url}, which is refused because {}; the configured ShipStation \
             API is {base}; nothing was fetched and no credentials were sent. Someone who knows this connection's webhook token \
             may be probing the endpoint: rotate the token (webhook_token_env) and subscribe the webhooks again with the new URL.",
            reason.explain()
        ),
    };
    let mut detail = json!({
        "message": message,
        "reason": reason,
        "reasons": reasons,
        "resource_url": resource_url,
        "resource_type": refused.resource_type,
        "allowed_base": base.as_str(),
        "offending_urls": urls,
    });
    if refused.reason == ForeignReason::Redirect {
        detail["redirect_to"] = json!(offending);
    }
    let mut change = Change::new(connection, now);
    change.raise(ExceptionKind::WebhookForeignHost, "webhook", host.clone(), detail);
    change.events.push(NewEvent {
        record_type: "webhook".into(),
        record_id: host,
        kind: "refused".into(),
        detail: json!({"reason": reason, "resource_url": resource_url, "offending_url": offending}),
    });
    Ok(change)
}

/// A URL as an exception may show it: any password blanked, at most
/// [`MAX_RESOURCE_URL_LEN`] characters.
fn shown_url(raw: &str) -> String {
    let blanked = match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        _ => raw.to_string(),
    };
    if blanked.chars().count() <= MAX_RESOURCE_URL_LEN {
        return blanked;
    }
    let mut cut: String = blanked.chars().take(MAX_RESOURCE_URL_LEN).collect();
    cut.push('…');
    cut
}

/// Run `write_fulfilment` jobs: write the phase to the ERP, read it back, record it.
pub async fn write_back(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    loop {
        let now = engine.clock.now();
        let jobs = engine
            .store
            .claim_jobs(JobClaim { kind: WRITE_FULFILMENT, connection: Some(&conn.name), now, lease: LEASE, limit: 50, worker: &engine.worker })
            .await?;
        if jobs.is_empty() {
            return Ok(report);
        }
        for job in jobs {
            write_one(engine, conn, job, &mut report).await?;
        }
    }
}

fn target(phase: &str) -> Option<FulfilmentState> {
    match phase {
        "packed" => Some(FulfilmentState::Packed),
        "completed" => Some(FulfilmentState::Completed),
        "cancelled" => Some(FulfilmentState::Cancelled),
        _ => None,
    }
}

async fn write_one(engine: &Engine, conn: &Connection, job: Job, report: &mut ShipmentReport) -> Result<(), EngineError> {
    let key = job.payload["shipment_key"].as_str().unwrap_or_default().to_string();
    let phase = job.payload["phase"].as_str().unwrap_or_default().to_string();
    let Some(state) = target(&phase) else {
        return finish(engine, conn, job, JobState::Dead, Some(format!("unknown phase {phase}")), None, vec![]).await;
    };
    let Some(shipment) = engine.store.get_shipment(&conn.name, &key).await? else {
        return finish(engine, conn, job, JobState::Dead, Some(format!("shipment {key} is not in the store")), None, vec![]).await;
    };
    let Some(erp_id) = shipment.erp_id.clone() else {
        return finish(engine, conn, job, JobState::Done, None, None, vec![]).await;
    };
    // A later phase already written makes an earlier one moot (a scan seen before the
    // packed write ran, say).
    let rank = |s: ShipmentState| match s {
        ShipmentState::Seen | ShipmentState::Orphan => 0,
        ShipmentState::Packed => 1,
        ShipmentState::Completed => 2,
        ShipmentState::Reversed => 3,
    };
    let wanted = match state {
        FulfilmentState::Packed => ShipmentState::Packed,
        FulfilmentState::Completed => ShipmentState::Completed,
        FulfilmentState::Cancelled => ShipmentState::Reversed,
    };
    if rank(shipment.state) >= rank(wanted) || (shipment.voided && state != FulfilmentState::Cancelled) {
        return finish(engine, conn, job, JobState::Done, None, None, vec![]).await;
    }
    let lines = engine.store.order_lines(&conn.name, &erp_id).await?;
    let ordered: Vec<OrderedLine> = lines
        .iter()
        .map(ordered_line)
        .collect();
    let mapping = map_lines(&ordered, &[view(&shipment)]);
    let write = FulfilmentWrite {
        key: format!("shipledger:{}:{}", conn.name, shipment.shipment_key),
        erp_order_id: erp_id.clone(),
        state,
        lines: mapping
            .by_shipment
            .get(&shipment.shipment_key)
            .map(|v| v.iter().map(|(l, q)| (l.clone(), (*q).max(0) as u32)).collect())
            .unwrap_or_default(),
        packages: vec![Package {
            carrier: shipment.carrier.clone(),
            service: shipment.service.clone(),
            tracking_number: shipment.tracking_number.clone().unwrap_or_default(),
            ship_date: shipment.ship_date,
            cost: shipment
                .cost_minor
                .zip(shipment.cost_currency.as_deref().and_then(|c| Currency::parse(c).ok()))
                .map(|(m, c)| Money::from_minor(m, c)),
        }],
    };
    // A new fulfilment document takes its quantities from what the order's other
    // documents leave, and the ERP refuses one that does not fit. When the store
    // already knows the ERP holds those quantities on another label's fulfilment (a
    // re-made label seen before the old one's void, or the void seen but its reversal
    // not yet written), writing now is a write certain to be refused: wait instead,
    // and let that fulfilment's reversal wake this job.
    if shipment.erp_fulfilment_id.is_none()
        && let Some(reason) = crowded_out(engine, conn, &shipment, &erp_id, &ordered, &write).await?
    {
        return give_up_or_retry(engine, conn, job, &shipment, &phase, &erp_id, reason, report).await;
    }
    let written = conn.erp.record_fulfilment(&write).await;
    // Whatever the answer, the ERP's own record decides: read it back.
    let read_back = conn.erp.fulfilments(&erp_id).await;
    let shown = read_back
        .as_ref()
        .ok()
        .and_then(|list| list.iter().find(|f| f.key == write.key).cloned());
    let now = engine.clock.now();
    match shown {
        Some(doc) if doc.state == state && doc.packages.iter().any(|p| p.tracking_number == write.packages[0].tracking_number) => {
            report.written += 1;
            let mut upsert = shipment.shipment.clone();
            upsert.state = wanted;
            upsert.erp_fulfilment_id = Some(doc.id.clone());
            let events = vec![event(
                &shipment.shipment_key,
                &format!("erp_{phase}"),
                json!({"message": format!("ERP fulfilment {} is {phase} for order {erp_id} with tracking {}", doc.id, write.packages[0].tracking_number), "erp_fulfilment": doc.id}),
            )];
            let mut change = Change::new(&conn.name, now);
            change.shipments.push(upsert);
            change.events = events;
            change.clear(ExceptionKind::TrackingWriteBackFailed, "shipment", shipment.shipment_key.clone());
            if state == FulfilmentState::Completed {
                maybe_order_shipped(engine, conn, &erp_id, &shipment.shipment_key, &mut change).await?;
            }
            if state == FulfilmentState::Cancelled {
                // The quantities are free again: the order's labels waiting for them
                // are written now, not at their next retry.
                let waiting = engine
                    .store
                    .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.clone()), ..Default::default() })
                    .await?;
                for s in waiting.iter().filter(|s| s.shipment_key != shipment.shipment_key && !s.voided && s.erp_fulfilment_id.is_none()) {
                    for phase in ["packed", "completed"] {
                        change.wake_jobs.push(self::job(&s.shipment_key, phase, now).idempotency_key);
                    }
                }
            }
            change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.clone().unwrap_or_default(), state: JobState::Done, error: None });
            commit_job_change(engine, change).await
        }
        _ => {
            let reason = match (&written, &read_back) {
                (Err(e), _) => e.to_string(),
                (Ok(_), Err(e)) => format!("the write was accepted but reading it back failed: {e}"),
                (Ok(_), Ok(_)) => "the ERP accepted the write but does not show it".to_string(),
            };
            let refused = matches!(written, Err(ErpError::Refused { .. }));
            if state == FulfilmentState::Cancelled && refused {
                // The ERP will not undo it: say exactly what a person must undo.
                let mut change = Change::new(&conn.name, now);
                change.raise(
                    ExceptionKind::VoidAfterWriteBack,
                    "shipment",
                    shipment.shipment_key.clone(),
                    json!({"message": format!(
                        "label {} was voided in ShipStation after ERP fulfilment {} for order {erp_id} was {}; the ERP refused to reverse it ({reason}): reverse that fulfilment in the ERP by hand",
                        shipment.tracking_number.clone().unwrap_or_default(),
                        shipment.erp_fulfilment_id.clone().unwrap_or_default(),
                        shipment.state,
                    )}),
                );
                change.events.push(write_failed(&shipment, &phase, &reason));
                change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.clone().unwrap_or_default(), state: JobState::Dead, error: Some(reason) });
                report.failed += 1;
                return commit_job_change(engine, change).await;
            }
            // A refusal can clear (a void reversed elsewhere frees the quantity), so it
            // is retried like a failure, and raised after the last attempt.
            give_up_or_retry(engine, conn, job, &shipment, &phase, &erp_id, reason, report).await
        }
    }
}

/// A write-back that did not happen (failed, refused, or waiting for quantities):
/// retried with backoff, and after the last attempt finished dead with a
/// `tracking_write_back_failed` exception that says why.
#[allow(clippy::too_many_arguments)]
async fn give_up_or_retry(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    shipment: &ShipmentRecord,
    phase: &str,
    erp_id: &str,
    reason: String,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    let now = engine.clock.now();
    if job.attempts >= i64::from(conn.policy.max_push_attempts) {
        report.failed += 1;
        let mut change = Change::new(&conn.name, now);
        change.raise(
            ExceptionKind::TrackingWriteBackFailed,
            "shipment",
            shipment.shipment_key.clone(),
            json!({"message": format!(
                "recording {phase} with tracking {} on ERP order {erp_id} failed after {} attempt(s): {reason}",
                shipment.tracking_number.clone().unwrap_or_default(), job.attempts
            )}),
        );
        change.events.push(write_failed(shipment, phase, &reason));
        change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.clone().unwrap_or_default(), state: JobState::Dead, error: Some(reason) });
        return commit_job_change(engine, change).await;
    }
    // At most 30 s apart: a refusal usually clears as soon as a void is seen (and a
    // reversal written wakes the jobs waiting for it at once).
    let wait = SignedDuration::from_secs(2i64.saturating_pow(job.attempts.clamp(1, 8) as u32).min(30));
    retry_job(engine, &job, now + wait, &reason).await
}

/// Why the ERP would refuse `write` as a new fulfilment document, when the store
/// knows: some of its lines are already taken, up to the ordered quantity, by the
/// fulfilments of the order's other labels that the ERP holds (written packed or
/// completed and not reversed, voided or not). `None` when they fit.
async fn crowded_out(
    engine: &Engine,
    conn: &Connection,
    shipment: &ShipmentRecord,
    erp_id: &str,
    ordered: &[OrderedLine],
    write: &FulfilmentWrite,
) -> Result<Option<String>, EngineError> {
    let holders: Vec<ShipmentRecord> = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.to_string()), ..Default::default() })
        .await?
        .into_iter()
        .filter(|s| s.shipment_key != shipment.shipment_key && matches!(s.state, ShipmentState::Packed | ShipmentState::Completed))
        .collect();
    if holders.is_empty() {
        return Ok(None);
    }
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut holding: HashMap<String, Vec<&ShipmentRecord>> = HashMap::new();
    for h in &holders {
        let mapping = map_lines(ordered, &[view(h)]);
        for (line, q) in mapping.by_shipment.get(&h.shipment_key).into_iter().flatten() {
            *held.entry(line.clone()).or_default() += *q;
            holding.entry(line.clone()).or_default().push(h);
        }
    }
    let mut full = Vec::new();
    let mut by: Vec<&ShipmentRecord> = Vec::new();
    for (line, q) in &write.lines {
        let Some(line_ordered) = ordered.iter().find(|l| &l.line_id == line) else { continue };
        let already = held.get(line).copied().unwrap_or(0);
        if already > 0 && already + i64::from(*q) > line_ordered.quantity {
            full.push(format!("{line} ({already} of {} taken)", line_ordered.quantity));
            for h in holding.get(line).into_iter().flatten() {
                if !by.iter().any(|b| b.shipment_key == h.shipment_key) {
                    by.push(h);
                }
            }
        }
    }
    if full.is_empty() {
        return Ok(None);
    }
    let labels: Vec<String> = by
        .iter()
        .map(|h| {
            format!(
                "label {} (ERP fulfilment {}, {}{})",
                h.tracking_number.clone().unwrap_or_default(),
                h.erp_fulfilment_id.clone().unwrap_or_default(),
                h.state,
                if h.voided { ", voided: its reversal is not written yet" } else { ", not voided" }
            )
        })
        .collect();
    Ok(Some(format!(
        "not sent: the ERP would refuse it, lines {} are on the fulfilments of {}; it is written once they are reversed (a void of the old label)",
        full.join(", "),
        labels.join(", ")
    )))
}

/// The timeline's note that a write-back gave up (its exception says what to do).
fn write_failed(shipment: &ShipmentRecord, phase: &str, reason: &str) -> NewEvent {
    event(
        &shipment.shipment_key,
        &format!("erp_{phase}_failed"),
        json!({"message": format!(
            "recording {phase} with tracking {} in the ERP failed: {reason}",
            shipment.tracking_number.clone().unwrap_or_default()
        )}),
    )
}

/// When every physical line is shipped and every live shipment completed, the order
/// is shipped.
async fn maybe_order_shipped(engine: &Engine, conn: &Connection, erp_id: &str, completing: &str, change: &mut Change) -> Result<(), EngineError> {
    let shipments = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.to_string()), ..Default::default() })
        .await?;
    let live: Vec<&ShipmentRecord> = shipments.iter().filter(|s| !s.voided).collect();
    if !live.iter().all(|s| s.state == ShipmentState::Completed || s.shipment_key == completing) {
        return Ok(());
    }
    let lines = engine.store.order_lines(&conn.name, erp_id).await?;
    let ordered: Vec<OrderedLine> = lines
        .iter()
        .map(ordered_line)
        .collect();
    let views: Vec<ShipmentView> = shipments.iter().map(view).collect();
    if !map_lines(&ordered, &views).complete(&ordered) {
        return Ok(());
    }
    if let Some(order) = engine.store.get_order(&conn.name, erp_id).await?
        && order.state != OrderState::Shipped
    {
        let mut upsert = OrderUpsert::from_record(&order);
        upsert.state = OrderState::Shipped;
        change.order = Some(upsert);
        change.events.push(NewEvent {
            record_type: "order".into(),
            record_id: erp_id.to_string(),
            kind: "shipped".into(),
            detail: json!({"message": format!("every line shipped and scanned; tracking {}", live.iter().filter_map(|s| s.tracking_number.clone()).collect::<Vec<_>>().join(", "))}),
        });
    }
    Ok(())
}

async fn finish(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    state: JobState,
    error: Option<String>,
    shipment: Option<ShipmentUpsert>,
    events: Vec<NewEvent>,
) -> Result<(), EngineError> {
    let mut change = Change::new(&conn.name, engine.clock.now());
    change.events = events;
    change.shipments.extend(shipment);
    change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.unwrap_or_default(), state, error });
    commit_job_change(engine, change).await
}
