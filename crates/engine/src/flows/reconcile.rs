//! The reconciler's runner: per connection, refresh the store's copies of what
//! ShipStation and the ERP hold, then merge them with our ledger by order key and let
//! [`shipledger_core::reconcile::diff`] name every disagreement; each finding opens or
//! refreshes its owned exception, and every live exception of a reconciler kind that
//! no longer holds is closed.
//!
//! - **ShipStation** is read incrementally: orders by modify date and labels by
//!   create and void date, 500 a page, in the connection's stores only
//!   (`shipstation.store_id` and `store_ids`), from the last run's high-water mark
//!   (less an overlap), or from the window's start on a full run. The copies in the
//!   store hold the rest, so a daily run spends requests on what changed.
//! - **The ERP** is read through its change feed since the last run (a full run: the
//!   window, plus every order our ledger still has open), each order with its
//!   fulfilments and invoicing; and again for every key with a finding whose ERP side
//!   was not read in this run, so a finding is never raised from a stale copy.
//! - **The diff** reads the four sorted copies (ERP orders, ledger orders,
//!   ShipStation orders, labels) a page at a time and holds one key's records at once.
//! - **Ledger checks** outside the merge: labels whose carrier reports an exception,
//!   cost entries whose posting window closed without them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::order::{PaymentState, order_key};
use shipledger_core::reconcile::{self, DiffPolicy, ErpSide, Finding, FulfilmentView, LedgerSide, Record, SsOrderView, SsShipmentView};
use shipledger_core::order::ErpOrder;
use shipledger_erp::{Cursor, FulfilmentRecord, FulfilmentState};
use shipledger_shipstation::v1::model as ss;
use shipledger_shipstation::v1::query::{FulfillmentFilter, OrderFilter, OrderSortBy, ShipmentFilter as SsShipmentFilter, SortDir};
use shipledger_store::{
    Change, CostBatchFilter, CostEntryFilter, CostCursor, ExceptionFilter, OrderFilter as LedgerFilter, OrderState, ReconcileMode,
    ReconcileRun, ReconcileState, ShipmentFilter, StagedErpOrder, StagedSsOrder, StagedSsShipment, WatermarkMove,
};

use std::sync::Arc;

use shipledger_shipstation::V1Client;

use crate::{Connection, Engine, EngineError};

/// Rows per page of every read (ShipStation's largest page).
pub const PAGE: u32 = 500;
/// How far before the last high-water mark an incremental read starts: a record
/// written just before the mark but committed after it is still seen.
const OVERLAP: SignedDuration = SignedDuration::from_mins(10);
/// Rows of each of the store's copies read at a time by the merge (four such pages
/// are in memory at once).
const COPY_PAGE: u32 = 2_000;
/// v1 requests of each rate window the reconciler leaves to other work: half of
/// ShipStation's 40 a minute.
const V1_RESERVE: u32 = 20;
/// ERP reads of one page's fulfilments in flight at once.
const ERP_READS_AT_ONCE: usize = 8;
/// Findings (or exceptions) per commit.
const COMMIT_EVERY: usize = 500;

const WM_SS_ORDERS: &str = "reconcile_ss_orders";
const WM_SS_LABELS: &str = "reconcile_ss_labels";
const WM_SS_VOIDS: &str = "reconcile_ss_voids";
const WM_SS_FULFILLMENTS: &str = "reconcile_ss_fulfillments";
const WM_ERP: &str = "reconcile_erp";

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ReconcileOptions {
    /// The window's start (default: `policy.reconcile_window` ago). Given, the run is
    /// full from there.
    pub since: Option<Timestamp>,
    /// Read everything in the window again, whatever the last run read.
    pub full: bool,
}

/// What one run read, found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileStats {
    pub shipstation_requests: u64,
    pub erp_requests: u64,
    pub shipstation_orders_read: u64,
    pub shipstation_labels_read: u64,
    pub erp_orders_read: u64,
    /// Keys the diff judged.
    pub keys: u64,
    /// Findings per kind code.
    pub findings: BTreeMap<String, u64>,
    pub exceptions_opened: u64,
    pub exceptions_closed: u64,
    /// What the run could not judge, in words (a connector that reports no invoicing).
    pub notes: Vec<String>,
}

/// A finished run: its record (stats included) and its findings.
#[derive(Debug, Clone)]
pub struct ReconcileReport {
    pub run: ReconcileRun,
    pub stats: ReconcileStats,
    pub findings: Vec<Finding>,
}

/// Where a run is, for a progress display.
pub trait Progress: Send + Sync {
    fn step(&self, what: &str, done: u64);
}

/// No display.
pub struct Quiet;
impl Progress for Quiet {
    fn step(&self, _: &str, _: u64) {}
}

/// Run the reconciler once over `conn`. The caller holds the connection's reconcile
/// pass (the schedule, or `shipledger reconcile` taking it), so a run still marked
/// running is one whose worker stopped: it is marked failed first.
pub async fn run(engine: &Engine, conn: &Connection, options: &ReconcileOptions, progress: &dyn Progress) -> Result<ReconcileReport, EngineError> {
    let now = engine.clock.now();
    let window = SignedDuration::try_from(conn.policy.reconcile_window).unwrap_or(SignedDuration::MAX);
    let since = options.since.unwrap_or_else(|| now.checked_sub(window).unwrap_or(Timestamp::MIN));
    // A run that worked (full, or incremental on top of one) holds the copies an
    // incremental run builds on.
    let has_full = !engine
        .store
        .list_reconcile_runs(shipledger_store::ReconcileRunFilter {
            connection: Some(conn.name.clone()),
            state: Some(ReconcileState::Done),
            limit: 1,
            ..Default::default()
        })
        .await?
        .is_empty();
    let mode = if options.full || options.since.is_some() || !has_full { ReconcileMode::Full } else { ReconcileMode::Incremental };
    // The reconciler reads ShipStation through a budget that leaves part of every
    // window to pushes, webhook fetches and polls: a long run never starves them.
    let budget = Arc::new(crate::budget::StoreRateBudget::new(engine.store.clone(), engine.clock.clone(), V1_RESERVE));
    let ss = conn.shipstation.with_other_budget(budget).map_err(EngineError::from)?;
    let abandoned = engine.store.abandon_reconcile_runs(&conn.name, "abandoned: its worker stopped before it finished", now).await?;
    if abandoned > 0 {
        tracing::warn!(connection = %conn.name, runs = abandoned, "reconcile runs left running by a stopped worker are marked failed");
    }
    let run = engine.store.start_reconcile_run(&conn.name, mode, since, now).await?;
    let mut stats = ReconcileStats::default();
    match Box::pin(reconcile(engine, conn, &ss, mode, since, now, progress, &mut stats)).await {
        Ok(findings) => {
            let run = engine.store.finish_reconcile_run(run.id, ReconcileState::Done, to_value(&stats), None, engine.clock.now()).await?;
            findings_store(engine, conn, run.id, &findings).await?;
            Ok(ReconcileReport { run, stats, findings })
        }
        Err(e) => {
            let _ = engine.store.finish_reconcile_run(run.id, ReconcileState::Failed, to_value(&stats), Some(e.to_string()), engine.clock.now()).await;
            Err(e)
        }
    }
}

/// The scheduled run ([`crate::schedule::Scheduled::Reconcile`]): full when no full
/// run has worked within `reconcile_full_interval` (or ever), else incremental.
pub async fn scheduled(engine: &Engine, conn: &Connection) -> Result<ReconcileReport, EngineError> {
    let now = engine.clock.now();
    let last_full = engine
        .store
        .list_reconcile_runs(shipledger_store::ReconcileRunFilter {
            connection: Some(conn.name.clone()),
            mode: Some(ReconcileMode::Full),
            state: Some(ReconcileState::Done),
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_iter()
        .next();
    let full = match (&last_full, conn.policy.reconcile_full_interval) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(run), Some(every)) => {
            let every = SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX);
            run.started_at.checked_add(every).is_ok_and(|due| due <= now)
        }
    };
    let report = run(engine, conn, &ReconcileOptions { since: None, full }, &Quiet).await?;
    tracing::info!(
        connection = %conn.name,
        run = report.run.id,
        mode = %report.run.mode,
        findings = report.findings.len(),
        opened = report.stats.exceptions_opened,
        closed = report.stats.exceptions_closed,
        "reconcile run done"
    );
    Ok(report)
}

fn to_value(stats: &ReconcileStats) -> serde_json::Value {
    serde_json::to_value(stats).unwrap_or_default()
}

async fn findings_store(engine: &Engine, conn: &Connection, run_id: i64, findings: &[Finding]) -> Result<(), EngineError> {
    for chunk in findings.chunks(COMMIT_EVERY) {
        engine.store.add_reconcile_findings(run_id, &conn.name, chunk).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn reconcile(
    engine: &Engine,
    conn: &Connection,
    ss: &V1Client,
    mode: ReconcileMode,
    since: Timestamp,
    now: Timestamp,
    progress: &dyn Progress,
    stats: &mut ReconcileStats,
) -> Result<Vec<Finding>, EngineError> {
    let full = mode == ReconcileMode::Full;
    // ShipStation first: the keys it changed are ERP orders to read again.
    let mut touched: BTreeSet<String> = BTreeSet::new();
    Box::pin(refresh_shipstation(engine, conn, ss, full, since, progress, stats, &mut touched)).await?;
    let mut read: BTreeSet<String> = BTreeSet::new();
    Box::pin(refresh_erp(engine, conn, full, since, &touched, progress, stats, &mut read)).await?;
    engine.store.resolve_recon_keys(&conn.name).await?;

    let policy = DiffPolicy {
        now,
        grace: signed(conn.policy.reconcile_grace),
        invoice_grace: signed(conn.policy.invoice_grace),
        awaiting_after: signed(conn.policy.awaiting_shipment_after),
    };
    let mut findings = Vec::new();
    let mut suspects: Vec<Record> = Vec::new();
    let mut merge = Merge::new(engine.store.as_ref(), &conn.name);
    while let Some(mut record) = Box::pin(merge.next()).await? {
        stats.keys += 1;
        if record.ledger.is_none() && record.erp.is_none() {
            record.same_number = same_number(engine, conn, &record).await?;
        }
        if stats.keys.is_multiple_of(10_000) {
            progress.step("comparing", stats.keys);
        }
        let found = reconcile::diff(&record, &policy);
        if found.is_empty() {
            continue;
        }
        let stale_erp = record.erp.as_ref().is_none_or(|e| !read.contains(&e.erp_id));
        if stale_erp && record.ledger.is_some() {
            suspects.push(record);
        } else {
            findings.extend(found);
        }
    }
    // A finding from a copy this run did not refresh is confirmed against the ERP
    // (and, for an order ShipStation seems to lack, against ShipStation) first.
    progress.step("confirming", suspects.len() as u64);
    for chunk in suspects.chunks(PAGE as usize) {
        let ids: Vec<String> = chunk.iter().filter_map(|r| r.ledger.as_ref().map(|l| l.erp_id.clone())).collect();
        let fresh = read_erp(engine, conn, &ids, stats).await?;
        stage_erp(engine, conn, &fresh).await?;
        let by_id: BTreeMap<&str, &ErpSide> = fresh.iter().map(|e| (e.erp_id.as_str(), e)).collect();
        for record in chunk {
            let mut record = record.clone();
            record.erp = record.ledger.as_ref().and_then(|l| by_id.get(l.erp_id.as_str())).map(|e| (*e).clone());
            if record.ss_orders.is_empty()
                && let Some(id) = record.ledger.as_ref().and_then(|l| l.ss_order_id)
            {
                stats.shipstation_requests += 1;
                match ss.get_order(id).await {
                    Ok(order) if in_scope(conn, &order) => {
                        let staged = stage_order(&order);
                        if let Some(s) = staged {
                            engine.store.stage_ss_orders(&conn.name, std::slice::from_ref(&s)).await?;
                            record.ss_orders.push(s.view);
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            findings.extend(reconcile::diff(&record, &policy));
        }
    }
    Box::pin(ledger_checks(engine, conn, &policy, &mut findings)).await?;
    for f in &findings {
        *stats.findings.entry(f.kind.code().to_string()).or_default() += 1;
    }
    let (opened, closed) = Box::pin(sync_exceptions(engine, conn, &findings, now)).await?;
    stats.exceptions_opened = opened;
    stats.exceptions_closed = closed;
    Ok(findings)
}

/// What [`compare_copies`] judged: keys, and findings per kind code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Compared {
    pub keys: u64,
    pub findings: BTreeMap<String, u64>,
}

/// The diff alone, over the copies the store holds: every key's records merged from
/// the four byte-ordered copies (ERP, ledger, ShipStation orders, labels) a page at a
/// time and judged by core's diff. Nothing is read from ShipStation or the ERP and
/// nothing is written; memory is a page of each copy. This is the step of a run
/// between reading and confirming, which `shipledger bench reconcile` measures.
pub async fn compare_copies(store: &dyn shipledger_store::Store, connection: &str, policy: &DiffPolicy, progress: &dyn Progress) -> Result<Compared, EngineError> {
    let mut compared = Compared::default();
    let mut merge = Merge::new(store, connection);
    while let Some(record) = Box::pin(merge.next()).await? {
        compared.keys += 1;
        if compared.keys.is_multiple_of(10_000) {
            progress.step("comparing", compared.keys);
        }
        for f in reconcile::diff(&record, policy) {
            *compared.findings.entry(f.kind.code().to_string()).or_default() += 1;
        }
    }
    Ok(compared)
}

/// The ledger's order with the number of a ShipStation order nobody released.
async fn same_number(engine: &Engine, conn: &Connection, record: &Record) -> Result<Option<LedgerSide>, EngineError> {
    for o in record.ss_orders.iter().filter(|o| o.parent_id.is_none() && !o.order_number.is_empty()) {
        let found = engine
            .store
            .list_orders(LedgerFilter { connection: Some(conn.name.clone()), number_prefix: Some(o.order_number.clone()), limit: 10, ..Default::default() })
            .await?;
        if let Some(ours) = found.into_iter().find(|l| l.number == o.order_number) {
            return Ok(Some(LedgerSide { erp_id: ours.erp_id, number: ours.number, state: ours.state.as_str().to_string(), ss_order_id: ours.ss_order_id, pushed_at: ours.pushed_at }));
        }
    }
    Ok(None)
}

fn signed(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

// ---- ShipStation

fn in_scope(conn: &Connection, order: &ss::Order) -> bool {
    conn.store_ids.is_empty() || order.advanced_options.as_ref().and_then(|a| a.store_id).is_some_and(|s| conn.store_ids.contains(&s))
}

fn stage_order(o: &ss::Order) -> Option<StagedSsOrder> {
    let id = o.order_id?;
    let adv = o.advanced_options.as_ref();
    let view = SsOrderView {
        ss_order_id: id,
        order_key: o.order_key.clone(),
        order_number: o.order_number.clone(),
        store_id: adv.and_then(|a| a.store_id),
        status: o.order_status.as_str().to_string(),
        parent_id: adv.and_then(|a| a.parent_id),
        merged_into: None,
        created_at: o.create_date,
        ship_by: o.ship_by_date,
    };
    let root_key = match (&view.order_key, view.parent_id) {
        (Some(key), None) => key.clone(),
        _ => format!("ss:{id}"),
    };
    Some(StagedSsOrder { root_key, modified_at: o.modify_date.or(o.create_date).unwrap_or(Timestamp::UNIX_EPOCH), view })
}

fn stage_label(s: &ss::Shipment) -> StagedSsShipment {
    let ss_order_id = s.order_id.unwrap_or_default();
    StagedSsShipment {
        root_key: s.order_key.clone().unwrap_or_else(|| format!("ss:{ss_order_id}")),
        view: SsShipmentView {
            shipment_id: s.shipment_id,
            ss_order_id,
            tracking_number: s.tracking_number.clone(),
            carrier: s.carrier_code.clone().unwrap_or_default(),
            voided: s.voided,
            created_at: s.create_date,
            voided_at: s.void_date,
            fulfillment: false,
        },
    }
}

/// An order marked shipped elsewhere, as the copy holds it: under its order's key once
/// the keys are resolved, its id negated (fulfillment and shipment ids are separate
/// sequences).
fn stage_fulfillment(f: &ss::Fulfillment) -> StagedSsShipment {
    let ss_order_id = f.order_id.unwrap_or_default();
    StagedSsShipment {
        root_key: format!("ss:{ss_order_id}"),
        view: SsShipmentView {
            shipment_id: -f.fulfillment_id,
            ss_order_id,
            tracking_number: f.tracking_number.clone(),
            carrier: f.carrier_code.clone().unwrap_or_default(),
            voided: f.voided,
            created_at: f.create_date,
            voided_at: f.void_date,
            fulfillment: true,
        },
    }
}

/// The stores to read: the configured ones, or the whole account (`None`).
fn scopes(conn: &Connection) -> Vec<Option<i64>> {
    if conn.store_ids.is_empty() { vec![None] } else { conn.store_ids.iter().copied().map(Some).collect() }
}

async fn mark(engine: &Engine, conn: &Connection, name: &str) -> Result<(Option<String>, Option<Timestamp>), EngineError> {
    let read = engine.store.get_watermark(&conn.name, name).await?;
    let t = read.as_deref().and_then(|v| v.parse::<i64>().ok()).and_then(|ms| Timestamp::from_millisecond(ms).ok());
    Ok((read, t))
}

async fn advance(engine: &Engine, conn: &Connection, name: &str, from: Option<String>, to: Option<Timestamp>, now: Timestamp) -> Result<(), EngineError> {
    let current = from.as_deref().and_then(|v| v.parse::<i64>().ok());
    let Some(to) = to.map(|t| t.as_millisecond()).filter(|t| current.is_none_or(|c| *t > c)) else { return Ok(()) };
    let mut change = Change::new(&conn.name, now);
    change.watermark = Some(WatermarkMove::new(name, from, to.to_string()));
    engine.store.commit(change).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn refresh_shipstation(
    engine: &Engine,
    conn: &Connection,
    ss: &V1Client,
    full: bool,
    since: Timestamp,
    progress: &dyn Progress,
    stats: &mut ReconcileStats,
    touched: &mut BTreeSet<String>,
) -> Result<(), EngineError> {
    let now = engine.clock.now();
    let start = |mark: Option<Timestamp>| if full { since } else { mark.map(|t| t - OVERLAP).unwrap_or(since).min(now) };

    // Orders, by modify date.
    let (from, at) = mark(engine, conn, WM_SS_ORDERS).await?;
    let mut high = at;
    for store in scopes(conn) {
        let filter = OrderFilter {
            store_id: store,
            modify_date_start: Some(start(at)),
            sort_by: Some(OrderSortBy::ModifyDate),
            sort_dir: Some(SortDir::Asc),
            page_size: Some(PAGE),
            ..Default::default()
        };
        let mut pager = ss.orders_pager(&filter)?;
        loop {
            stats.shipstation_requests += 1;
            let Some(page) = pager.next_page().await? else { break };
            let mut staged = Vec::with_capacity(page.len());
            for o in page.iter().filter(|o| in_scope(conn, o)) {
                let Some(s) = stage_order(o) else { continue };
                high = high.max(Some(s.modified_at));
                touched.insert(s.root_key.clone());
                let merged = o.advanced_options.as_ref().map(|a| a.merged_ids.clone()).unwrap_or_default();
                if !merged.is_empty() {
                    engine.store.stage_ss_merges(&conn.name, s.view.ss_order_id, &merged, s.modified_at).await?;
                }
                staged.push(s);
            }
            stats.shipstation_orders_read += staged.len() as u64;
            engine.store.stage_ss_orders(&conn.name, &staged).await?;
            progress.step("reading ShipStation orders", stats.shipstation_orders_read);
        }
    }
    advance(engine, conn, WM_SS_ORDERS, from, high, now).await?;

    // Labels, by create date and by void date.
    for (name, voids) in [(WM_SS_LABELS, false), (WM_SS_VOIDS, true)] {
        let (from, at) = mark(engine, conn, name).await?;
        let mut high = at;
        for store in scopes(conn) {
            let mut filter = SsShipmentFilter { store_id: store, page_size: Some(PAGE), ..Default::default() };
            if voids {
                filter.void_date_start = Some(start(at));
            } else {
                filter.create_date_start = Some(start(at));
            }
            let mut pager = ss.shipments_pager(&filter)?;
            loop {
                stats.shipstation_requests += 1;
                let Some(page) = pager.next_page().await? else { break };
                let staged: Vec<StagedSsShipment> = page.iter().filter(|s| !voids || s.voided).map(stage_label).collect();
                for s in &page {
                    high = high.max(if voids { s.void_date } else { s.create_date });
                }
                touched.extend(staged.iter().map(|s| s.root_key.clone()));
                stats.shipstation_labels_read += staged.len() as u64;
                engine.store.stage_ss_shipments(&conn.name, &staged).await?;
                progress.step("reading ShipStation labels", stats.shipstation_labels_read);
            }
        }
        advance(engine, conn, name, from, high, now).await?;
    }

    // Orders marked shipped elsewhere (`/fulfillments`, by create date: ShipStation
    // cannot filter them by store, so one of an order outside ours is left unjudged).
    let (from, at) = mark(engine, conn, WM_SS_FULFILLMENTS).await?;
    let mut high = at;
    let filter = FulfillmentFilter { create_date_start: Some(start(at)), page_size: Some(PAGE), ..Default::default() };
    let mut pager = ss.fulfillments_pager(&filter)?;
    loop {
        stats.shipstation_requests += 1;
        let Some(page) = pager.next_page().await? else { break };
        let staged: Vec<StagedSsShipment> = page.iter().map(stage_fulfillment).collect();
        for f in &page {
            high = high.max(f.create_date);
        }
        stats.shipstation_labels_read += staged.len() as u64;
        engine.store.stage_ss_shipments(&conn.name, &staged).await?;
        progress.step("reading ShipStation fulfillments", stats.shipstation_labels_read);
    }
    advance(engine, conn, WM_SS_FULFILLMENTS, from, high, now).await?;
    Ok(())
}

// ---- the ERP

fn erp_side(order: &ErpOrder, fulfilments: &[FulfilmentRecord], invoiced: Option<BTreeMap<String, u32>>) -> ErpSide {
    ErpSide {
        erp_id: order.erp_id.clone(),
        number: order.number.clone(),
        status: order.status,
        paid: order.payment.state == PaymentState::Captured,
        lines: order.physical_lines().map(|l| (l.line_id.clone(), l.quantity)).collect(),
        placed_at: order.placed_at,
        updated_at: order.updated_at,
        fulfilments: fulfilments
            .iter()
            .map(|f| FulfilmentView {
                id: f.id.clone(),
                live: f.state != FulfilmentState::Cancelled,
                completed: f.state == FulfilmentState::Completed,
                tracking: f.packages.iter().map(|p| p.tracking_number.clone()).collect(),
                lines: f.lines.clone(),
                updated_at: f.updated_at,
            })
            .collect(),
        invoiced,
    }
}

/// These orders as the ERP holds them now, each with its fulfilments and invoicing.
async fn read_erp(engine: &Engine, conn: &Connection, ids: &[String], stats: &mut ReconcileStats) -> Result<Vec<ErpSide>, EngineError> {
    let _ = engine;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    stats.erp_requests += ids.len().div_ceil(shipledger_erp::ORDERS_PER_READ) as u64;
    let orders = conn.erp.orders(ids).await?;
    sides(conn, &orders, stats).await
}

async fn sides(conn: &Connection, orders: &[ErpOrder], stats: &mut ReconcileStats) -> Result<Vec<ErpSide>, EngineError> {
    let ids: Vec<String> = orders.iter().map(|o| o.erp_id.clone()).collect();
    stats.erp_requests += ids.len().div_ceil(shipledger_erp::ORDERS_PER_READ) as u64;
    let mut invoiced = conn.erp.invoiced(&ids).await?;
    if invoiced.is_none() && !stats.notes.iter().any(|n| n.contains("invoic")) {
        stats.notes.push(format!(
            "the {} connector does not report invoicing: shipped-not-invoiced and invoiced-not-shipped were not judged",
            conn.erp.kind()
        ));
    }
    // One read of fulfilments per order (the Erp trait has no batched read yet), a
    // few at once.
    use futures::{StreamExt, TryStreamExt};
    let reads: Vec<_> = orders.iter().map(|o| conn.erp.fulfilments(&o.erp_id)).collect();
    let fulfilments: Vec<Vec<FulfilmentRecord>> = futures::stream::iter(reads).buffered(ERP_READS_AT_ONCE).try_collect().await?;
    stats.erp_requests += orders.len() as u64;
    let mut out = Vec::with_capacity(orders.len());
    for (o, fulfilments) in orders.iter().zip(&fulfilments) {
        let inv = invoiced.as_mut().map(|m| m.remove(&o.erp_id).unwrap_or_default());
        out.push(erp_side(o, fulfilments, inv));
    }
    stats.erp_orders_read += out.len() as u64;
    Ok(out)
}

async fn stage_erp(engine: &Engine, conn: &Connection, sides: &[ErpSide]) -> Result<(), EngineError> {
    let staged: Vec<StagedErpOrder> =
        sides.iter().map(|e| StagedErpOrder { order_key: order_key(&conn.name, &e.erp_id), view: e.clone() }).collect();
    engine.store.stage_erp_orders(&conn.name, &staged).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn refresh_erp(
    engine: &Engine,
    conn: &Connection,
    full: bool,
    since: Timestamp,
    touched: &BTreeSet<String>,
    progress: &dyn Progress,
    stats: &mut ReconcileStats,
    read: &mut BTreeSet<String>,
) -> Result<(), EngineError> {
    let now = engine.clock.now();
    let stored = engine.store.get_watermark(&conn.name, WM_ERP).await?;
    let mut cursor = match (&stored, full) {
        (Some(text), false) => Cursor::from_watermark(text).map(|c| Cursor { updated_at: c.updated_at - OVERLAP, erp_id: String::new() }),
        _ => None,
    }
    .unwrap_or(Cursor { updated_at: since, erp_id: String::new() });
    let mut high: Option<Cursor> = stored.as_deref().and_then(Cursor::from_watermark);
    loop {
        stats.erp_requests += 1;
        let page = conn.erp.changed_orders(Some(&cursor), PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() };
        let fresh = sides(conn, &page, stats).await?;
        read.extend(fresh.iter().map(|e| e.erp_id.clone()));
        stage_erp(engine, conn, &fresh).await?;
        progress.step("reading ERP orders", stats.erp_orders_read);
        if high.as_ref().is_none_or(|h| cursor > *h) {
            high = Some(cursor.clone());
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    // Orders whose ShipStation side changed, and (full) every order our ledger still
    // has open however old, read by id.
    let prefix = format!("shipledger:{}:", conn.name);
    let mut more: BTreeSet<String> = touched.iter().filter_map(|k| k.strip_prefix(&prefix)).map(str::to_string).collect();
    if full {
        for state in [OrderState::Received, OrderState::Held, OrderState::Released, OrderState::Pushed] {
            let open = engine.store.list_orders(LedgerFilter { connection: Some(conn.name.clone()), state: Some(state), ..Default::default() }).await?;
            more.extend(open.into_iter().map(|o| o.erp_id));
        }
    }
    let more: Vec<String> = more.into_iter().filter(|id| !read.contains(id)).collect();
    for chunk in more.chunks(PAGE as usize) {
        let fresh = read_erp(engine, conn, chunk, stats).await?;
        read.extend(fresh.iter().map(|e| e.erp_id.clone()));
        stage_erp(engine, conn, &fresh).await?;
        progress.step("reading ERP orders", stats.erp_orders_read);
    }
    if let Some(h) = high.filter(|h| stored.as_deref().and_then(Cursor::from_watermark).is_none_or(|s| *h > s)) {
        let mut change = Change::new(&conn.name, now);
        change.watermark = Some(WatermarkMove::new(WM_ERP, stored, h.to_watermark()));
        engine.store.commit(change).await?;
    }
    Ok(())
}

// ---- the merge

/// One sorted copy, read a page at a time.
struct Stream<T> {
    buf: VecDeque<T>,
    done: bool,
    /// The last key read (a copy keyed by key alone).
    last_key: Option<String>,
    /// The last (key, id) read (a copy keyed by key and id).
    last: Option<(String, i64)>,
}

impl<T> Stream<T> {
    fn new() -> Self {
        Stream { buf: VecDeque::new(), done: false, last_key: None, last: None }
    }
}

/// The four copies merged by key.
struct Merge<'e> {
    store: &'e dyn shipledger_store::Store,
    connection: &'e str,
    erp: Stream<StagedErpOrder>,
    ledger: Stream<(String, LedgerSide)>,
    orders: Stream<StagedSsOrder>,
    labels: Stream<StagedSsShipment>,
}

impl<'e> Merge<'e> {
    fn new(store: &'e dyn shipledger_store::Store, connection: &'e str) -> Self {
        Merge { store, connection, erp: Stream::new(), ledger: Stream::new(), orders: Stream::new(), labels: Stream::new() }
    }

    /// Read the next page of every copy whose buffer ran dry, the reads at once.
    async fn fill(&mut self) -> Result<(), EngineError> {
        let Merge { store, connection, erp, ledger, orders, labels } = self;
        let (store, connection) = (*store, *connection);
        let erp = async {
            if erp.buf.is_empty() && !erp.done {
                let after = erp.last_key.clone();
                let page = store.page_erp_orders(connection, after.as_deref(), COPY_PAGE).await?;
                erp.done = page.len() < COPY_PAGE as usize;
                erp.last_key = page.last().map(|p| p.order_key.clone()).or(after);
                erp.buf.extend(page);
            }
            Ok::<(), EngineError>(())
        };
        let ledger = async {
            if ledger.buf.is_empty() && !ledger.done {
                let after = ledger.last_key.clone();
                let page = store.page_ledger_orders(connection, after.as_deref(), COPY_PAGE).await?;
                ledger.done = page.len() < COPY_PAGE as usize;
                ledger.last_key = page.last().map(|p| p.0.clone()).or(after);
                ledger.buf.extend(page);
            }
            Ok(())
        };
        let orders = async {
            if orders.buf.is_empty() && !orders.done {
                let after = orders.last.clone();
                let page = store.page_ss_orders(connection, after.as_ref().map(|(k, i)| (k.as_str(), *i)), COPY_PAGE).await?;
                orders.done = page.len() < COPY_PAGE as usize;
                orders.last = page.last().map(|p| (p.root_key.clone(), p.view.ss_order_id)).or(after);
                orders.buf.extend(page);
            }
            Ok(())
        };
        let labels = async {
            if labels.buf.is_empty() && !labels.done {
                let after = labels.last.clone();
                let page = store.page_ss_shipments(connection, after.as_ref().map(|(k, i)| (k.as_str(), *i)), COPY_PAGE).await?;
                labels.done = page.len() < COPY_PAGE as usize;
                labels.last = page.last().map(|p| (p.root_key.clone(), p.view.shipment_id)).or(after);
                labels.buf.extend(page);
            }
            Ok(())
        };
        tokio::try_join!(erp, ledger, orders, labels)?;
        Ok(())
    }

    /// The next key's records, in byte order of keys.
    async fn next(&mut self) -> Result<Option<Record>, EngineError> {
        self.fill().await?;
        let heads = [
            self.erp.buf.front().map(|e| e.order_key.clone()),
            self.ledger.buf.front().map(|l| l.0.clone()),
            self.orders.buf.front().map(|o| o.root_key.clone()),
            self.labels.buf.front().map(|s| s.root_key.clone()),
        ];
        let Some(key) = heads.into_iter().flatten().min_by(|a, b| a.as_bytes().cmp(b.as_bytes())) else { return Ok(None) };
        let mut record = Record { key: key.clone(), ..Default::default() };
        loop {
            let mut took = false;
            if self.erp.buf.front().is_some_and(|e| e.order_key == key) {
                record.erp = self.erp.buf.pop_front().map(|e| e.view);
                took = true;
            }
            if self.ledger.buf.front().is_some_and(|l| l.0 == key) {
                record.ledger = self.ledger.buf.pop_front().map(|l| l.1);
                took = true;
            }
            while self.orders.buf.front().is_some_and(|o| o.root_key == key) {
                record.ss_orders.extend(self.orders.buf.pop_front().map(|o| o.view));
                took = true;
            }
            while self.labels.buf.front().is_some_and(|s| s.root_key == key) {
                record.ss_shipments.extend(self.labels.buf.pop_front().map(|s| s.view));
                took = true;
            }
            // A key's rows can run across a page boundary: read on until they stop.
            let empty = self.orders.buf.is_empty() && !self.orders.done || self.labels.buf.is_empty() && !self.labels.done;
            if !took || !empty {
                break;
            }
            self.fill().await?;
        }
        Ok(Some(record))
    }
}

// ---- checks on the ledger alone

/// What a shipment's parcel weighs, from its ERP order's lines (each order's lines
/// read once per run): its lines' quantities × their unit weights, matched by line
/// key, else by SKU. `None` when a line cannot be matched or has no weight.
#[derive(Default)]
struct LineWeights {
    orders: std::collections::HashMap<String, Vec<shipledger_store::OrderLineRecord>>,
}

impl LineWeights {
    async fn of(&mut self, engine: &Engine, conn: &Connection, s: &shipledger_store::ShipmentRecord) -> Result<Option<i64>, EngineError> {
        let Some(erp_id) = &s.erp_id else { return Ok(None) };
        if !self.orders.contains_key(erp_id) {
            let lines = engine.store.order_lines(&conn.name, erp_id).await?;
            self.orders.insert(erp_id.clone(), lines);
        }
        let lines = &self.orders[erp_id];
        if s.lines.is_empty() {
            return Ok(None);
        }
        let mut total: i64 = 0;
        for item in &s.lines {
            let line = lines
                .iter()
                .find(|l| item.line_item_key.as_deref() == Some(l.line_id.as_str()))
                .or_else(|| lines.iter().find(|l| item.sku.is_some() && l.sku.as_deref() == item.sku.as_deref()));
            let Some(weight) = line.and_then(|l| l.unit_weight_mg) else { return Ok(None) };
            total = total.saturating_add(weight.saturating_mul(item.quantity));
        }
        Ok(Some(total))
    }
}

async fn ledger_checks(engine: &Engine, conn: &Connection, policy: &DiffPolicy, findings: &mut Vec<Finding>) -> Result<(), EngineError> {
    // Carrier exceptions on live labels, a page at a time; the labels of the
    // cost-model window with their costs and weights, for the expected-cost model.
    let model_since = policy.now.checked_sub(SignedDuration::try_from(conn.policy.cost_model_window).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MIN);
    let mut costed: Vec<shipledger_core::cost_model::LabelCost> = Vec::new();
    // Each judged label's order and tracking number, for its finding.
    let mut named: std::collections::HashMap<String, (Option<String>, Option<String>)> = std::collections::HashMap::new();
    let mut weights = LineWeights::default();
    let mut after = None;
    loop {
        let page = engine
            .store
            .list_shipments(ShipmentFilter { connection: Some(conn.name.clone()), voided: Some(false), after, limit: PAGE, ..Default::default() })
            .await?;
        for s in &page {
            if let Some(status) = &s.tracking_status
                && let Some(f) = reconcile::carrier_exception(&s.shipment_key, &s.carrier, s.tracking_number.as_deref().unwrap_or(""), s.erp_id.as_deref(), status, None)
            {
                findings.push(f);
            }
            if s.kind == shipledger_store::ShipmentKind::Label
                && s.ss_created_at >= model_since
                && let (Some(minor), Some(code)) = (s.cost_minor, s.cost_currency.as_deref())
                && let Ok(currency) = shipledger_core::Currency::parse(code)
            {
                let weight_mg = weights.of(engine, conn, s).await?;
                costed.push(shipledger_core::cost_model::LabelCost {
                    shipment_key: s.shipment_key.clone(),
                    carrier: s.carrier.clone(),
                    service: s.service.clone(),
                    weight_mg,
                    cost: shipledger_core::Money::from_minor(minor, currency),
                });
                named.insert(s.shipment_key.clone(), (s.erp_id.clone(), s.tracking_number.clone()));
            }
        }
        let Some(last) = page.last() else { break };
        after = Some(shipledger_store::ShipmentCursor::after(last));
        if page.len() < PAGE as usize {
            break;
        }
    }

    for o in shipledger_core::cost_model::outliers(&costed) {
        let (erp_id, tracking) = &named[&o.shipment_key];
        findings.push(reconcile::label_cost_outlier(&o, erp_id.as_deref(), tracking.as_deref()));
    }

    // Orders with a label in the same window that charged shipping and cost more to
    // ship, judged on every entry of their labels (an older label's, a late
    // invoice's); free shipping is never raised.
    let (recent, recent_conversions) = crate::margins::entries_with_conversions(engine.store.as_ref(), &conn.name, Some(model_since), None).await?;
    let rates = crate::margins::rate_pool(&recent_conversions);
    let orders: BTreeSet<&str> = recent.iter().filter_map(|e| e.label.erp_id.as_deref()).collect();
    for erp_id in orders {
        let (entries, conversions) = crate::margins::of_order(engine.store.as_ref(), &conn.name, erp_id).await?;
        for m in crate::margins::of_orders(engine.store.as_ref(), &conn.name, &entries, &conversions, &rates).await?.into_values() {
            if let Some(v) = crate::margins::undercharged(&conn.policy, &m.margin) {
                findings.push(reconcile::shipping_undercharged(&m.margin, &v, &m.number, conn.policy.cost_variance_pct, &conn.policy.cost_variance_floor.to_string()));
            }
        }
    }

    // Cost entries whose posting window has closed without them (a connection
    // with no accounts posts none).
    if conn.accounts.is_none() {
        return Ok(());
    }
    let tz = conn.policy.company_timezone(conn.erp.as_ref()).await.unwrap_or(jiff::tz::TimeZone::UTC);
    let cutoff = policy.now.checked_sub(policy.grace).unwrap_or(policy.now);
    let mut after: Option<CostCursor> = None;
    loop {
        let page = engine
            .store
            .list_cost_entries(CostEntryFilter {
                connection: Some(conn.name.clone()),
                until: Some(cutoff),
                unbatched: true,
                after,
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        for e in &page {
            let window = shipledger_core::journal::Window::of_label(e.posting_at(), &tz, conn.policy.cost_batch);
            let Some(end) = window_end(&window, &tz) else { continue };
            let converted = engine.store.get_cost_conversion(&conn.name, &e.entry_key).await?.is_some();
            let why = if converted { "it was placed in no batch" } else { "it is still waiting for an FX rate" };
            findings.extend(reconcile::cost_entry_unposted(&e.entry_key, end, why, policy));
        }
        let Some(last) = page.last() else { break };
        after = Some(CostCursor { label_created_at: last.label.label_created_at, id: last.id });
        if page.len() < PAGE as usize {
            break;
        }
    }
    let planned = engine
        .store
        .list_cost_batches(CostBatchFilter { connection: Some(conn.name.clone()), state: Some(shipledger_store::BatchState::Planned), ..Default::default() })
        .await?;
    for b in planned {
        let Some(end) = window_end(&b.window, &tz) else { continue };
        for m in engine.store.cost_batch_members(&conn.name, &b.batch_key).await? {
            let why = format!("its batch {} is planned but not posted ({})", b.batch_key, b.detail.clone().unwrap_or_else(|| "its journal is not yet in the ERP".into()));
            findings.extend(reconcile::cost_entry_unposted(&m.entry_key, end, &why, policy));
        }
    }
    Ok(())
}

/// The instant a posting window ends: midnight after its last day, company time.
fn window_end(window: &shipledger_core::journal::Window, tz: &jiff::tz::TimeZone) -> Option<Timestamp> {
    Some(window.end.tomorrow().ok()?.to_zoned(tz.clone()).ok()?.timestamp())
}

// ---- exceptions

/// Open or refresh the exception of every finding; close every live exception of a
/// reconciler kind that was not found. Returns (opened, closed).
async fn sync_exceptions(engine: &Engine, conn: &Connection, findings: &[Finding], now: Timestamp) -> Result<(u64, u64), EngineError> {
    let mut opened = 0;
    let mut closed = 0;
    for chunk in findings.chunks(COMMIT_EVERY) {
        let mut change = Change::new(&conn.name, now);
        for f in chunk {
            change.raise(f.kind, &f.record_type, f.record_id.clone(), f.detail.clone());
        }
        let outcome = engine.store.commit(change).await?;
        opened += outcome.exceptions_opened.len() as u64;
    }
    let found: BTreeSet<(ExceptionKind, &str, &str)> = findings.iter().map(|f| (f.kind, f.record_type.as_str(), f.record_id.as_str())).collect();
    for kind in reconcile::RECONCILER_KINDS {
        let live = engine
            .store
            .list_exceptions(ExceptionFilter { connection: Some(conn.name.clone()), kind: Some(*kind), live: true, ..Default::default() })
            .await?;
        let gone: Vec<_> = live.iter().filter(|e| !found.contains(&(e.kind, e.record_type.as_str(), e.record_id.as_str()))).collect();
        for chunk in gone.chunks(COMMIT_EVERY) {
            let mut change = Change::new(&conn.name, now);
            for e in chunk {
                change.clear(e.kind, &e.record_type, e.record_id.clone());
            }
            closed += engine.store.commit(change).await?.exceptions_closed;
        }
    }
    Ok((opened, closed))
}
