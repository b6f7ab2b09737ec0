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
//! - **Scans** ([`scans`], one bounded [`sweep`]): live labels without a carrier scan
//!   are asked about on ShipStation v2, many per request (`GET /v2/labels` pages
//!   show each label's coarse status; only labels that moved are tracked one by
//!   one), least recently checked first with a per-label backoff, so none waits for
//!   ever behind labels the carrier never scans; the first physical acceptance
//!   (never `NY`/`UN` or an electronic-only notice) is recorded with its time.
//! - **Inbox** ([`inbox`]): the webhook receivers' jobs, each kind run by its
//!   handler: [`ingest_v1_webhook`](crate::flows::ingest_v1_webhook) answers a burst
//!   of v1 hints with one [`poll_labels`] or [`poll_fulfillments`] (only from the
//!   configured ShipStation API, never from a hint's URL);
//!   [`ingest_v2_track`](crate::flows::ingest_v2_track) records a track event's scan
//!   (`record_tracking`).
//! - **Write-back planning**: a new label plans the ERP fulfilment *packed* (carrier,
//!   service, tracking, ship date); its first scan plans *completed* (`fulfil_on =
//!   "label"` completes at once); a void plans the reversal, even of a label whose
//!   packed write is not recorded yet (it may be in the ERP already). Each is a
//!   `write_fulfilment` job keyed by shipment and phase (`job`), run by
//!   [`write_fulfilment`](crate::flows::write_fulfilment).

use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::money::{Money, Rounding};
use shipledger_core::retry::RetryPolicy;
use shipledger_core::shipment::{OrderedLine, ShipmentView, ShippedItem, map_lines};
use shipledger_shipstation::v1::model as ss;
use shipledger_shipstation::v1::query::{FulfillmentFilter, ShipmentFilter, ShipmentSortBy, SortDir};
use shipledger_shipstation::v2::LabelFilter;
use shipledger_shipstation::v2::model::LabelStatus;
use shipledger_store::{
    AwaitingScan, Change, EventKind, JobKind, NewEvent, NewJob, Phase, ScanCheck, ShipmentFilter as StoredShipments, ShipmentKind,
    ShipmentLine, ShipmentRecord, ShipmentState, ShipmentUpsert, StoreError, SyncOrder, WatermarkMove, WriteFulfilment,
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
    Ok(watermark_read(engine, conn, name).await?.1)
}

/// A watermark as stored (the text a move starts from) and as the time it says.
async fn watermark_read(engine: &Engine, conn: &Connection, name: &str) -> Result<(Option<String>, Option<Timestamp>), EngineError> {
    let read = engine.store.get_watermark(&conn.name, name).await?;
    let time = read.as_deref().and_then(|v| v.parse::<i64>().ok()).and_then(|ms| Timestamp::from_millisecond(ms).ok());
    Ok((read, time))
}

/// The move of watermark `name` to `t`, from what is stored now, when `t` is ahead of
/// it: a watermark never goes back (the windows overlap, and voids and fulfillments
/// are not all seen in time order). Committed compare-and-set, so a move another
/// worker made meanwhile fails the commit instead of being undone.
async fn forward(engine: &Engine, conn: &Connection, name: &str, t: Timestamp) -> Result<Option<WatermarkMove>, EngineError> {
    let (read, current) = watermark_read(engine, conn, name).await?;
    Ok(current.is_none_or(|c| t > c).then(|| WatermarkMove::new(name, read, ms(t))))
}

/// How many times one shipment is decided again because another worker moved the
/// watermark its commit carried (or recorded one of its cost entries with other
/// contents), before the pass gives up (and is retried).
const MOVED_RETRIES: u32 = 5;

fn moved(result: &Result<(), EngineError>) -> bool {
    matches!(result, Err(EngineError::Store(StoreError::WatermarkMoved { .. } | StoreError::CostEntryMoved { .. })))
}

/// One decision and its commit, as a future that may be sent between threads.
type Attempt<'r> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), EngineError>> + Send + 'r>>;

/// What one try of a decision may change: the poll's resolved orders, and its own
/// counts (kept only when it is the last try).
struct Try<'a> {
    parents: &'a mut HashMap<i64, Option<String>>,
    report: ShipmentReport,
}

/// Run `attempt` again while its commit fails because another worker moved the
/// watermark it carried, up to [`MOVED_RETRIES`] times, each from a fresh report;
/// only the last try's counts are added to `report` (nothing of an earlier one was
/// written).
async fn retry_moved<'a, F>(parents: &'a mut HashMap<i64, Option<String>>, report: &mut ShipmentReport, mut attempt: F) -> Result<(), EngineError>
where
    F: for<'r> FnMut(&'r mut Try<'a>) -> Attempt<'r>,
{
    let mut this = Try { parents, report: ShipmentReport::default() };
    let mut tries = 0;
    loop {
        this.report = ShipmentReport::default();
        let result = attempt(&mut this).await;
        if moved(&result) && tries < MOVED_RETRIES {
            tries += 1;
            continue;
        }
        report.add(&this.report);
        return result;
    }
}

/// What a poll has found so far, across its parts: the counts, and the ShipStation
/// orders already resolved to an ERP order (a split child's parent), so each is asked
/// about once.
#[derive(Debug, Default)]
pub struct Polled {
    pub report: ShipmentReport,
    parents: HashMap<i64, Option<String>>,
}

/// How long after its creation a live label is still looked for among voids: the
/// longest carrier void period planned for (USPS allows about 30 days).
pub const VOID_LOOKBACK: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Read new labels, voids and fulfillments from ShipStation and record them: the
/// schedule's poll, [`poll_labels`], [`poll_voids`] and [`poll_fulfillments`] in turn.
///
/// It asks nothing when ShipStation can hold nothing new for it ([`poll_can_find`]):
/// the watermarks stay where they are, so the next poll that does ask covers the
/// time skipped.
pub async fn poll(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut polled = Polled::default();
    if !poll_can_find(engine, conn).await? {
        return Ok(polled.report);
    }
    poll_labels(engine, conn, &mut polled).await?;
    poll_voids(engine, conn, &mut polled).await?;
    poll_fulfillments(engine, conn, &mut polled).await?;
    Ok(polled.report)
}

/// Whether the scheduled poll can find anything in ShipStation now
/// ([`Store::shipment_poll_can_find`]): an order pushed there and not yet shipped or
/// cancelled (its labels, its fulfillment marked elsewhere, its split children and
/// the orders merged into it), an order that left that state within two poll
/// intervals and the overlap (a label made just before its cancellation), or a live
/// label younger than [`VOID_LOOKBACK`] (its void; v1 announces none). What this
/// gives up: a label or fulfillment for an order created in ShipStation by hand,
/// while nothing of ours is open there, is found only by the next poll that runs
/// (the watermarks did not move, so it is not lost) or named by the reconciler; a
/// void of a label older than [`VOID_LOOKBACK`] likewise.
///
/// [`Store::shipment_poll_can_find`]: shipledger_store::Store::shipment_poll_can_find
pub async fn poll_can_find(engine: &Engine, conn: &Connection) -> Result<bool, EngineError> {
    let now = engine.clock.now();
    let interval = SignedDuration::try_from(conn.policy.shipment_poll_interval).unwrap_or(SignedDuration::MAX);
    let recent = interval.checked_mul(2).and_then(|d| d.checked_add(OVERLAP)).unwrap_or(SignedDuration::MAX);
    let orders_since = now.checked_sub(recent).unwrap_or(Timestamp::MIN);
    let labels_since = now.checked_sub(VOID_LOOKBACK).unwrap_or(Timestamp::MIN);
    Ok(engine.store.shipment_poll_can_find(&conn.name, orders_since, labels_since).await?)
}

/// Labels created since the watermark (less the overlap), oldest first, each ingested
/// in its own commit, which advances the watermark: what a `SHIP_NOTIFY` or
/// `ITEM_SHIP_NOTIFY` hint can have changed. A label voided by then is ingested with
/// its void. Which labels are read is [`labels_to_read`]'s to decide.
pub async fn poll_labels(engine: &Engine, conn: &Connection, polled: &mut Polled) -> Result<(), EngineError> {
    let since = watermark(engine, conn, WM_CREATED).await?;
    let mut labels = labels_to_read(engine, conn, since).await?;
    labels.sort_by_key(|l| (l.create_date, l.shipment_id));
    for label in &labels {
        ingest_label(engine, conn, label, WM_CREATED, label.create_date, &mut polled.parents, &mut polled.report).await?;
    }
    Ok(())
}

/// Whether `label` was created after the watermark `since`, to the millisecond the
/// store keeps (ShipStation's times may be finer: the newest label held is not after
/// the watermark it set).
fn after(label: &ss::Shipment, since: Timestamp) -> bool {
    label.create_date.is_some_and(|t| t.as_millisecond() > since.as_millisecond())
}

/// The labels of the window from `since` less the [`OVERLAP`] (everything, the first
/// time), read newest first, but only as far as is needed:
///
/// - the pages holding labels created after `since` (the watermark: every label up to
///   it has been ingested) are always read;
/// - the rest of the window, the overlap, is there for labels ShipStation lists late
///   (created before the watermark, shown after it moved). Its labels on ShipStation
///   are the first page's `total` less those created after `since`; when that is the
///   number of labels the store holds created in the overlap
///   ([`Store::count_labels_created`], from the query's start to the second, as
///   ShipStation filters), none is missing and its pages are not read again. When
///   the two differ (a late label, a label for an order ShipStation no longer shows,
///   a daylight-saving fold that widens the query), every page is read, as before.
///
/// A burst of 2,000 labels made within a minute so costs its four pages once, not
/// again at every poll for the ten minutes of the overlap.
///
/// [`Store::count_labels_created`]: shipledger_store::Store::count_labels_created
async fn labels_to_read(engine: &Engine, conn: &Connection, since: Option<Timestamp>) -> Result<Vec<ss::Shipment>, EngineError> {
    let mut pager = conn.shipstation.shipments_pager(&ShipmentFilter {
        create_date_start: since.map(|t| t - OVERLAP),
        include_shipment_items: true,
        sort_by: Some(ShipmentSortBy::CreateDate),
        sort_dir: Some(SortDir::Desc),
        page_size: Some(500),
        ..Default::default()
    })?;
    let mut labels: Vec<ss::Shipment> = Vec::new();
    // The watermark whose overlap is still to be counted (a first poll has none).
    let mut uncounted = since;
    while let Some(mut page) = pager.next_page().await? {
        let reached_overlap = page.last().is_some_and(|l| uncounted.is_some_and(|s| !after(l, s)));
        labels.append(&mut page);
        if reached_overlap
            && !pager.finished()
            && let (Some(since), Some(total)) = (uncounted.take(), pager.total())
            && overlap_held(engine, conn, &labels, since, total).await?
        {
            break;
        }
    }
    Ok(labels)
}

/// Whether the store holds every label ShipStation lists in the overlap before
/// `since`: `total` (the window's, newest first) less the `read` labels created after
/// `since`, against [`Store::count_labels_created`] from the query's start, cut to
/// the second as ShipStation filters.
///
/// [`Store::count_labels_created`]: shipledger_store::Store::count_labels_created
async fn overlap_held(engine: &Engine, conn: &Connection, read: &[ss::Shipment], since: Timestamp, total: i64) -> Result<bool, EngineError> {
    let listed = total - read.iter().filter(|l| after(l, since)).count() as i64;
    let start = since - OVERLAP;
    let from = Timestamp::from_second(start.as_second()).unwrap_or(start);
    let held = engine.store.count_labels_created(&conn.name, from, since).await?;
    let all_held = i64::try_from(held).is_ok_and(|held| held == listed);
    if all_held {
        tracing::debug!(connection = %conn.name, held, "shipment poll: every label of the overlap is held; not read again");
    } else {
        tracing::debug!(connection = %conn.name, held, listed, "shipment poll: ShipStation lists labels of the overlap the store does not hold; reading all of it");
    }
    Ok(all_held)
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
    // In void order, so each commit's watermark covers every void before it.
    let mut voids: Vec<&ss::Shipment> = voids.iter().filter(|s| s.voided).collect();
    voids.sort_by_key(|s| s.void_date);
    for label in voids {
        ingest_label(engine, conn, label, WM_VOIDED, label.void_date, &mut polled.parents, &mut polled.report).await?;
    }
    Ok(())
}

/// Orders marked shipped outside ShipStation since the watermark (less the overlap):
/// what a `FULFILLMENT_SHIPPED` hint can have changed.
pub async fn poll_fulfillments(engine: &Engine, conn: &Connection, polled: &mut Polled) -> Result<(), EngineError> {
    let since = watermark(engine, conn, WM_FULFILLMENTS).await?;
    let mut marked = conn
        .shipstation
        .all_fulfillments(&FulfillmentFilter {
            create_date_start: since.map(|t| t - OVERLAP),
            page_size: Some(500),
            ..Default::default()
        })
        .await?;
    marked.sort_by_key(|f| f.create_date);
    for f in &marked {
        ingest_fulfillment(engine, conn, f, f.create_date, &mut polled.parents, &mut polled.report).await?;
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

/// Record one label seen in ShipStation (new, or voided since), moving watermark
/// `wm_name` to `wm_time` when that is ahead of it (`None`: a webhook's label, which
/// moves no poll's watermark). Should another worker move the watermark meanwhile,
/// the label is decided again from a fresh read (nothing of the first try is written).
pub(crate) async fn ingest_label(
    engine: &Engine,
    conn: &Connection,
    label: &ss::Shipment,
    wm_name: &str,
    wm_time: Option<Timestamp>,
    parents: &mut HashMap<i64, Option<String>>,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    retry_moved(parents, report, |t| Box::pin(ingest_label_once(engine, conn, label, wm_name, wm_time, t.parents, &mut t.report))).await
}

async fn ingest_label_once(
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
        change.watermark = forward(engine, conn, wm_name, t).await?;
    }
    let mut records = Vec::new();
    if !existing.is_empty() {
        if !label.voided || existing.iter().all(|s| s.voided) {
            // Seen before and nothing changed that matters: one record, no new work
            // (a changed cost is the cost ledger's to record).
            return crate::flows::costs::revise_seen_label(engine, conn, label, &existing, change).await;
        }
        records.extend(existing.iter().filter(|s| !s.voided).map(|s| s.shipment.clone()));
        report.voided += 1;
        for upsert in &mut records {
            upsert.voided = true;
            upsert.voided_at = label.void_date.or(Some(now));
            // Its reversal is planned whatever the store knows of its ERP fulfilment.
            // Still `seen`, the packed write is planned or in flight and may already
            // be in the ERP, its answer not yet recorded (or lost): the packed write,
            // seeing the void, writes nothing more, and the reversal asks the ERP
            // whether it holds a fulfilment for this label before it cancels one.
            if matches!(upsert.state, ShipmentState::Seen | ShipmentState::Packed | ShipmentState::Completed) {
                change.jobs.push(job(&upsert.shipment_key, Phase::Cancelled, now));
            }
            change.events.push(event(
                &upsert.shipment_key,
                EventKind::Voided,
                json!({"message": format!("label {} voided", upsert.tracking_number.clone().unwrap_or_default())}),
            ));
        }
        resend_after_void(engine, conn, &records, label.shipment_id, now, &mut change).await?;
        crate::flows::costs::plan_void(engine, conn, label, &existing, now, &mut change).await?;
    } else {
        report.new += 1;
        let erp_id = resolve(engine, conn, label.order_key.as_deref(), ss_order_id, parents).await?;
        let cost = label.shipment_cost.and_then(|c| {
            let currency = conn.account_currency;
            Money::from_decimal(c, currency, Rounding::HalfEven).ok().map(|m| (m.minor(), currency.code().to_string()))
        });
        let shares = shares(engine, conn, label, erp_id.clone()).await?;
        let merged: Vec<String> = shares.iter().filter(|s| !s.primary).filter_map(|s| s.erp_id.clone()).collect();
        let primary_erp_id = shares.iter().find(|s| s.primary).and_then(|s| s.erp_id.clone());
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
        crate::flows::costs::plan_new_label(conn, label, primary_erp_id, now, &mut change);
    }
    let erp_ids: std::collections::BTreeSet<String> = records.iter().filter_map(|r| r.erp_id.clone()).collect();
    change.shipments = records;
    for erp_id in &erp_ids {
        mapping_exceptions(engine, conn, erp_id, &mut change).await?;
    }
    engine.store.commit(change).await?;
    Ok(())
}

/// Record one order marked shipped outside ShipStation, moving the fulfillments'
/// watermark to `wm_time` when that is ahead of it (`None`: a webhook's, which moves
/// no poll's watermark); decided again should another worker move it meanwhile.
pub(crate) async fn ingest_fulfillment(
    engine: &Engine,
    conn: &Connection,
    f: &ss::Fulfillment,
    wm_time: Option<Timestamp>,
    parents: &mut HashMap<i64, Option<String>>,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    retry_moved(parents, report, |t| Box::pin(ingest_fulfillment_once(engine, conn, f, wm_time, t.parents, &mut t.report))).await
}

async fn ingest_fulfillment_once(
    engine: &Engine,
    conn: &Connection,
    f: &ss::Fulfillment,
    wm_time: Option<Timestamp>,
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
    if let Some(t) = wm_time {
        change.watermark = forward(engine, conn, WM_FULFILLMENTS, t).await?;
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

/// How much one scan sweep ([`sweep`]) may ask ShipStation v2. One sweep makes at
/// most `max_pages + max_moved_tracks + max_due_tracks` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    /// Labels per `GET /v2/labels` page (1 to 500).
    pub page_size: u32,
    /// `GET /v2/labels` pages per sweep.
    pub max_pages: u32,
    /// Track calls for labels whose coarse status moved on those pages.
    pub max_moved_tracks: u32,
    /// Track calls for labels due by their backoff that the pages did not settle,
    /// least recently checked first.
    pub max_due_tracks: u32,
}

impl Default for SweepLimits {
    /// 4 pages of 500, 80 moved and 20 due labels tracked: at most 104 requests, about
    /// half of v2's 200 a minute when a sweep runs every minute.
    fn default() -> Self {
        SweepLimits { page_size: 500, max_pages: 4, max_moved_tracks: 80, max_due_tracks: 20 }
    }
}

/// One bounded scan sweep with the default [`SweepLimits`]: see [`sweep`].
pub async fn scans(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    sweep(engine, conn, SweepLimits::default()).await
}

/// The wait before a label is checked again after `empty_checks` checks that found
/// no physical scan: the poll interval doubling per check, at most
/// `policy.scan_check_max_interval` (the one backoff of [`RetryPolicy`]).
pub fn scan_check_backoff(policy: &crate::config::Policy, empty_checks: u32) -> std::time::Duration {
    RetryPolicy {
        initial: policy.shipment_poll_interval,
        max_delay: policy.scan_check_max_interval,
        jitter_pct: 0,
        ..RetryPolicy::default()
    }
    .backoff(empty_checks, 0)
}

/// The labels of one tracking number that await a scan (a merged label is one record
/// per ERP order), with what the sweep decided about them.
struct Parcel {
    carrier: String,
    labels: Vec<AwaitingScan>,
}

/// What the sweep learnt about a tracking number.
enum Seen {
    /// First scans recorded: the labels no longer await one.
    Scanned(u64),
    /// No physical scan: check again after the backoff, remembering `coarse` when
    /// given.
    Nothing { coarse: Option<String> },
}

/// One bounded scan sweep: ShipStation v2 is asked which live labels the carrier has
/// scanned, fairly (every label awaiting a scan is checked again within
/// `scan_check_max_interval` plus the sweeps its turn waits) and cheaply (many labels
/// per request).
///
/// 1. **Pages.** `GET /v2/labels` (completed labels, most recently modified first,
///    `page_size` a page) shows each label's coarse `tracking_status`. A label we
///    hold awaiting a scan (matched by tracking number) whose status is `unknown` was
///    checked: nothing happened. One whose status *moved* (not `unknown` and not what
///    the sweep last saw) gets one track call (`GET /v2/tracking`) to confirm a
///    physical scan ([`record_tracking`]). One whose status is still the one last
///    seen (`in_transit` from an electronic notice) is not settled by the page: its
///    detail may have moved under the same coarse status, so it waits for its turn
///    in step 2. Paging stops at the last page, after `max_pages`, or after a page
///    with no moved label (the moved ones come first) once no label is due that no
///    page has shown (a page settles up to `page_size` due labels in one request,
///    where step 2 spends one request per label).
/// 2. **Due labels.** Labels due by their backoff ([`Store::scans_due`], least
///    recently checked first) that step 1 did not settle are tracked one by one, up
///    to `max_due_tracks`. A track call settles a label in one request, where a
///    `GET /v2/labels?tracking_number=` lookup would need a track call after it
///    whenever the label moved.
///
/// A connection with no label awaiting a scan asks nothing (no page could settle
/// anything).
///
/// Every check that finds no physical scan pushes the label's next check out
/// ([`scan_check_backoff`]). A merged label (one tracking number, several ERP
/// orders) is asked about once. Checks are recorded as they are made, so a failure
/// part-way keeps what was learnt.
///
/// [`Store::scans_due`]: shipledger_store::Store::scans_due
pub async fn sweep(engine: &Engine, conn: &Connection, limits: SweepLimits) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    let Some(v2) = &conn.shipstation_v2 else { return Ok(report) };
    let now = engine.clock.now();
    // No label awaits a scan: no page or track call could settle anything.
    if engine.store.scans_due(&conn.name, Timestamp::MAX, 1).await?.is_empty() {
        return Ok(report);
    }
    // Tracking numbers this sweep settled: not asked about again in it.
    let mut settled: HashSet<String> = HashSet::new();

    // 1. Pages of labels, most recently modified first.
    let mut tracks = 0;
    // Labels a page showed but did not settle (no status, or the one last seen),
    // by tracking number, with their rows: step 2's to track when due.
    let mut shown: HashMap<String, usize> = HashMap::new();
    for page in 1..=limits.max_pages.max(1) {
        let list = v2
            .list_labels(&LabelFilter {
                label_status: Some(LabelStatus::Completed),
                sort_by: Some("modified_at".into()),
                sort_dir: Some("desc".into()),
                page_size: Some(limits.page_size.clamp(1, 500)),
                page: Some(page),
                ..Default::default()
            })
            .await?;
        // v1 names no currency, so a label was recorded in the account currency; a
        // label whose v2 cost is in another one has its entries moved to it, once
        // (a later sweep finds them agreeing and records nothing).
        for label in list.labels.iter().filter(|l| l.shipment_cost.as_ref().is_some_and(|c| c.currency.code() != conn.account_currency.code())) {
            crate::flows::costs::record_v2_label(engine, conn, label).await?;
        }
        let listed: Vec<(String, Option<String>)> = list
            .labels
            .iter()
            .filter_map(|l| {
                let number = l.tracking_number.clone().or_else(|| l.packages.iter().find_map(|p| p.tracking_number.clone()))?;
                Some((number, l.tracking_status.as_deref().map(str::to_ascii_lowercase)))
            })
            .collect();
        let numbers: Vec<String> = listed.iter().map(|(n, _)| n.clone()).collect();
        let mut held = parcels(engine.store.scans_awaiting(&conn.name, &numbers).await?);
        let mut moved_here = false;
        let mut checks = Vec::new();
        // The page's labels in the order they changed (the page lists the latest
        // change first), so first scans are recorded in the order the carrier made them.
        for (number, coarse) in listed.into_iter().rev() {
            if settled.contains(&number) {
                continue;
            }
            let Some(parcel) = held.remove(&number) else { continue };
            let last = parcel.labels[0].check.coarse_status.clone();
            let rows = parcel.labels.len();
            let seen = match coarse.as_deref() {
                // The label carries no status: nothing learnt; its turn comes in step 2.
                None => {
                    shown.insert(number, rows);
                    continue;
                }
                Some("unknown") => Seen::Nothing { coarse },
                Some(_) if coarse == last => {
                    shown.insert(number, rows);
                    continue;
                }
                Some(_) => {
                    moved_here = true;
                    if tracks >= limits.max_moved_tracks {
                        // Still moved next sweep: its status is not recorded as seen.
                        continue;
                    }
                    tracks += 1;
                    track(engine, conn, v2, &number, &parcel, coarse).await?
                }
            };
            settled.insert(number);
            settle(conn, &parcel, seen, now, &mut checks, &mut report);
        }
        engine.store.mark_scans_checked(&conn.name, &checks).await?;
        if i64::from(page) >= list.pages {
            break;
        }
        // The next page may hold a moved label while this one did; and while labels
        // are due that no page has shown yet, a page (up to 500 labels a request) is
        // cheaper than tracking them one by one in step 2.
        if !moved_here && !due_unshown(engine, conn, now, &settled, &shown).await? {
            break;
        }
    }

    // 2. Labels due by their backoff that the pages did not settle.
    let due = engine
        .store
        .scans_due(&conn.name, now, limits.max_due_tracks.saturating_mul(4).saturating_add(settled.len() as u32))
        .await?;
    let mut waiting: Vec<(String, Parcel)> = Vec::new();
    for label in due {
        let Some(number) = label.tracking_number.clone() else { continue };
        if settled.contains(&number) {
            continue;
        }
        let room = waiting.len() < limits.max_due_tracks as usize;
        match waiting.iter_mut().find(|(n, _)| *n == number) {
            Some((_, parcel)) => parcel.labels.push(label),
            None if room => waiting.push((number, Parcel { carrier: label.carrier.clone(), labels: vec![label] })),
            None => {}
        }
    }
    // The other records of a merged label, which may not all have been due.
    let numbers: Vec<String> = waiting.iter().map(|(n, _)| n.clone()).collect();
    let mut all = parcels(engine.store.scans_awaiting(&conn.name, &numbers).await?);
    let mut checks = Vec::new();
    for (number, parcel) in waiting {
        let parcel = all.remove(&number).unwrap_or(parcel);
        let seen = match track(engine, conn, v2, &number, &parcel, None).await {
            Ok(seen) => seen,
            Err(e) => {
                engine.store.mark_scans_checked(&conn.name, &checks).await?;
                return Err(e);
            }
        };
        settle(conn, &parcel, seen, now, &mut checks, &mut report);
    }
    engine.store.mark_scans_checked(&conn.name, &checks).await?;
    Ok(report)
}

/// Whether a label is due for a check ([`Store::scans_due`]) that this sweep has
/// neither settled nor seen on a page.
///
/// [`Store::scans_due`]: shipledger_store::Store::scans_due
async fn due_unshown(
    engine: &Engine,
    conn: &Connection,
    now: Timestamp,
    settled: &HashSet<String>,
    shown: &HashMap<String, usize>,
) -> Result<bool, EngineError> {
    // Settled labels are no longer due; shown ones may be, so ask for one row more
    // than they have.
    let rows: usize = shown.values().sum();
    let limit = u32::try_from(rows.saturating_add(1)).unwrap_or(u32::MAX);
    let due = engine.store.scans_due(&conn.name, now, limit).await?;
    Ok(due.iter().any(|l| l.tracking_number.as_ref().is_some_and(|n| !settled.contains(n) && !shown.contains_key(n))))
}

/// Awaiting labels by tracking number.
fn parcels(found: Vec<AwaitingScan>) -> HashMap<String, Parcel> {
    let mut by_number: HashMap<String, Parcel> = HashMap::new();
    for label in found {
        let Some(number) = label.tracking_number.clone() else { continue };
        by_number.entry(number).or_insert_with(|| Parcel { carrier: label.carrier.clone(), labels: Vec::new() }).labels.push(label);
    }
    by_number
}

/// One track call for a parcel; its first physical scan is recorded on every label
/// with its number. `coarse` is the page's status, remembered when nothing is found.
async fn track(
    engine: &Engine,
    conn: &Connection,
    v2: &shipledger_shipstation::V2Client,
    number: &str,
    parcel: &Parcel,
    coarse: Option<String>,
) -> Result<Seen, EngineError> {
    let info = match v2.get_tracking(&parcel.carrier, number).await {
        Ok(info) => info,
        // Unknown to the carrier (yet): nothing to record, ask again later.
        Err(shipledger_shipstation::Error::NotFound { .. }) => return Ok(Seen::Nothing { coarse }),
        Err(e) => return Err(e.into()),
    };
    let mut scanned = 0;
    for label in &parcel.labels {
        if record_tracking(engine, conn, label, &info).await? {
            scanned += 1;
        }
    }
    Ok(if scanned > 0 { Seen::Scanned(scanned) } else { Seen::Nothing { coarse } })
}

/// Count first scans; queue the check of labels still without one.
fn settle(conn: &Connection, parcel: &Parcel, seen: Seen, now: Timestamp, checks: &mut Vec<ScanCheck>, report: &mut ShipmentReport) {
    match seen {
        Seen::Scanned(n) => report.scanned += n,
        Seen::Nothing { coarse } => {
            for label in &parcel.labels {
                let wait = scan_check_backoff(&conn.policy, label.check.empty_checks.saturating_add(1));
                let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
                checks.push(ScanCheck {
                    shipment_key: label.shipment_key.clone(),
                    checked_at: now,
                    next_due_at: now.checked_add(wait).unwrap_or(Timestamp::MAX),
                    coarse_status: coarse.clone(),
                });
            }
        }
    }
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
