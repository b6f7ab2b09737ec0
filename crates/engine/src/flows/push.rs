//! Push: bring ShipStation in line with each released order's latest ERP snapshot.
//!
//! A run ([`step`]) claims up to [`BATCHES_PER_RUN`] × `push_batch` (≤ 100)
//! `sync_order` jobs, builds each order from the order's *current* record — not from
//! the job — so a late job can never undo a newer change, and sends them `push_batch`
//! at a time, one `createorders` request per batch, keyed by the deterministic
//! `orderKey` (an upsert: a retry after a crash between ShipStation's answer and our
//! commit updates the same order instead of making a second one). A batch whose
//! request fails ends the sending: the orders not yet sent go back, their attempt not
//! counted (none was made). Then **one** read-back verifies every batch of the run, so
//! a backlog of 1,000 orders costs ten `createorders` and two pages of orders.
//!
//! **Read back before retrying.** A job claimed before (attempts > 1: its answer was
//! lost to a 5xx or a timeout, its read-back came up short, its worker was killed or
//! drained mid-step) may
//! already have reached ShipStation. Before anything is sent, one read-back for the
//! whole run reads the orders ShipStation modified since the earliest moment those
//! jobs could have touched them (an order's release while its `orderId` is unknown,
//! else the job's creation; minus a margin), newest first, 500 a page, matching
//! `orderKey` here (v1 has no such filter). An order ShipStation holds as we want it —
//! or already shipped with our content — is recorded (`orderId`, status, a `pushed`
//! or `updated_in_shipstation` event) and its job is done without a request; one that
//! is still open and differs is sent as an update of that `orderId`; one that is
//! shipped or cancelled and does not hold our change is a `change_after_shipment`
//! exception (its `orderId` recorded all the same). The read-back is bounded (4 pages,
//! or twice the pages the wanted orders fill; 60 s); when the window holds more, up to
//! 10 missing orders are looked up by `orderNumber` (a starts-with match; the
//! `orderKey` is compared here) and the rest are retried later.
//!
//! **Leases.** A run may outlive its jobs' 30 s claim (ten batches, each waiting out
//! a spent rate window): it keeps them leased (`jobs::claim_held`, renewed every
//! 10 s in one statement), and before each batch sends only the orders whose jobs it
//! still holds; one whose lease was lost (the renewals stalled and another worker
//! claimed it) is left to that worker.
//!
//! **After sending**, per order: a refusal ShipStation words as "can no longer be
//! updated" is [`OrderRefusal::Locked`]; any other refusal is retried with backoff and
//! becomes an owned exception after the last attempt. Accepted orders, locked ones,
//! and those whose answer was lost (the request failed, or the answer left them out)
//! are read back at once the same way — the run's batches together — and only what
//! ShipStation shows is committed.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::retry::{Classify, Decision, Verdict};
use shipledger_core::order::{Address, ErpOrder, ErpOrderStatus};
use shipledger_core::{Weight, WeightUnit};
use shipledger_shipstation::v1::model::{self as ss, OrderRefusal, OrderStatus};
use shipledger_shipstation::v1::query::{OrderFilter, OrderSortBy, SortDir};
use shipledger_store::{
    Change, EventKind, ExceptionFilter, Job, JobKind, JobSpec, NewEvent, OrderLineRecord, OrderRecord,
    OrderState, OrderUpsert, SyncOrder,
};

use crate::flows::push_plan;
use crate::jobs;
use crate::{Connection, Engine, EngineError};

/// How far before the earliest moment a push could have touched an order the read-back
/// starts: our clock and ShipStation's may differ (ShipStation's Pacific times have
/// whole seconds, and an engine's injected clock may run ahead), and the read-back
/// reads newest first and stops once every key is found, so a wide margin costs a
/// page at most.
const READ_BACK_MARGIN: SignedDuration = SignedDuration::from_mins(30);
/// Orders a read-back page holds (ShipStation's largest page).
const READ_BACK_PAGE_SIZE: u32 = 500;
/// Pages a read-back reads at most before looking orders up one by one.
const READ_BACK_PAGES: u32 = 4;
/// Batches one push run sends at most (each of `push_batch` orders: up to 1,000
/// orders) before one read-back verifies them all.
pub const BATCHES_PER_RUN: u32 = 10;
/// How long a read-back pages at most before looking orders up one by one.
const READ_BACK_TIME: std::time::Duration = std::time::Duration::from_secs(60);
/// Orders one batch may look up by orderNumber when the read-back window is too large;
/// the rest are retried later.
const LOOKUPS_PER_BATCH: usize = 10;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub requests: u64,
    pub pushed: u64,
    pub already_in_sync: u64,
    pub retried: u64,
    pub failed: u64,
}

impl PushReport {
    /// Add another pass's counts to these.
    pub fn add(&mut self, other: &PushReport) {
        self.requests += other.requests;
        self.pushed += other.pushed;
        self.already_in_sync += other.already_in_sync;
        self.retried += other.retried;
        self.failed += other.failed;
    }
}

/// What ShipStation's order should say, from the record's latest snapshot.
fn desired_status(snapshot: &ErpOrder) -> OrderStatus {
    match snapshot.status {
        ErpOrderStatus::Open => OrderStatus::AwaitingShipment,
        ErpOrderStatus::OnHold => OrderStatus::OnHold,
        ErpOrderStatus::Cancelled => OrderStatus::Cancelled,
    }
}

/// One job in the batch being pushed.
struct Pending {
    job: Job,
    record: OrderRecord,
    snapshot: ErpOrder,
    status: OrderStatus,
}

/// Claim and run `sync_order` jobs until none is runnable.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<PushReport, EngineError> {
    let mut report = PushReport::default();
    while step(engine, conn, &mut report).await? {}
    Ok(report)
}

/// One bounded step: claim up to [`BATCHES_PER_RUN`] batches of runnable
/// `sync_order` jobs, send them batch by batch and verify them all with one read-back.
/// `false` when none was runnable.
pub async fn step(engine: &Engine, conn: &Connection, report: &mut PushReport) -> Result<bool, EngineError> {
    let limit = conn.policy.push_batch.clamp(1, 100).saturating_mul(BATCHES_PER_RUN);
    if releasing(engine, conn, limit).await? {
        return Ok(false);
    }
    let (jobs, lease) = jobs::claim_held(engine, conn, JobKind::SyncOrder, limit).await?;
    if jobs.is_empty() {
        return Ok(false);
    }
    push_batch(engine, conn, jobs, &lease, report).await?;
    Ok(true)
}

/// How long a push waits for an ERP poll in progress to finish releasing orders.
const WAIT_FOR_RELEASE: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

/// Is an ERP poll of `conn` (by any worker) releasing orders right now, started less
/// than [`WAIT_FOR_RELEASE`] ago, with fewer than a full run of pushes runnable? Then
/// the push waits for it: pushing what the poll has released so far would split one
/// batch of 100 into many part-filled `createorders` (the lanes run the ERP poll and
/// the push at once, and so do two workers). A poll that hangs longer is not waited
/// for.
async fn releasing(engine: &Engine, conn: &Connection, full_run: u32) -> Result<bool, EngineError> {
    let now = engine.clock.now();
    let Some(poll) = engine.store.get_schedule(&conn.name, crate::schedule::Scheduled::ErpPoll.name()).await? else {
        return Ok(false);
    };
    // The poll is at work while a live lease holds it; since when it has been.
    let polling_since = poll.last_started_at.filter(|_| poll.lease_until.is_some_and(|until| until > now));
    if polling_since.is_none() {
        return Ok(false);
    }
    let runnable = engine.store.runnable_jobs(&conn.name, JobKind::SyncOrder, now).await?;
    Ok(jobs::still_arriving(&runnable, u64::from(full_run), polling_since, WAIT_FOR_RELEASE, now))
}

async fn push_batch(engine: &Engine, conn: &Connection, jobs: Vec<Job>, lease: &jobs::JobLease, report: &mut PushReport) -> Result<(), EngineError> {
    // Group the jobs by order: one order is sent once however many jobs name it.
    let mut orders = Vec::with_capacity(jobs.len());
    for job in jobs {
        let JobSpec::SyncOrder(SyncOrder { erp_id, .. }) = &job.spec else {
            let why = format!("job {} is a {} job, not a sync_order", job.id, job.kind());
            jobs::dead(engine, &job, jobs::change(engine, conn), why).await?;
            continue;
        };
        orders.push((erp_id.clone(), job));
    }
    let by_order = push_plan::coalesce(orders, |(erp_id, _)| erp_id.clone())
        .into_iter()
        .map(|(erp_id, jobs)| (erp_id, jobs.into_iter().map(|(_, job)| job).collect::<Vec<Job>>()));
    let mut batch: Vec<(Pending, Vec<Job>)> = Vec::new();
    for (erp_id, mut jobs) in by_order {
        let first = jobs.remove(0);
        let Some(record) = engine.store.get_order(&conn.name, &erp_id).await? else {
            for job in std::iter::once(first).chain(jobs) {
                jobs::dead(engine, &job, jobs::change(engine, conn), format!("order {erp_id} is not in the store")).await?;
            }
            continue;
        };
        let snapshot: ErpOrder = match serde_json::from_value(record.snapshot.clone()) {
            Ok(s) => s,
            Err(e) => {
                let message = format!("order {erp_id}'s stored snapshot cannot be read: {e}");
                jobs::dead(engine, &first, jobs::change(engine, conn), message).await?;
                continue;
            }
        };
        let status = desired_status(&snapshot);
        if let Some(skip) = push_plan::no_request(&record, &status) {
            let note = skip.note();
            report.already_in_sync += 1;
            let mut change = jobs::change(engine, conn);
            change.events.push(event(&erp_id, EventKind::SyncSkipped, json!({"message": note})));
            jobs::done(engine, &first, change).await?;
            done(engine, conn, jobs).await?;
            continue;
        }
        batch.push((Pending { job: first, record, snapshot, status }, jobs));
    }
    if batch.is_empty() {
        return Ok(());
    }

    let mut orders = HashMap::with_capacity(batch.len());
    for (p, _) in &batch {
        let lines = engine.store.order_lines(&conn.name, &p.record.erp_id).await?;
        let mut order = build_order(conn, &p.record, &p.snapshot, &lines, p.status.clone());
        apply_overrides(&mut order, &engine.store.order_overrides(&conn.name, &p.record.erp_id).await?);
        orders.insert(p.record.order_key.clone(), order);
    }

    // A job claimed before (its answer lost, its read-back short, its worker killed)
    // may already have reached ShipStation: read back first, record what is there,
    // and send only what is missing or differs.
    let (unknown, mut to_send): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(p, _)| push_plan::read_back_first(&p.job));
    if !unknown.is_empty() {
        let since = unknown.iter().map(|(p, _)| earliest_effect(p)).min().expect("not empty") - READ_BACK_MARGIN;
        match read_back(conn, &unknown, since).await {
            Err(e) => {
                let message = format!("an earlier attempt's outcome is unknown and reading ShipStation back failed: {e}");
                for (p, extra) in unknown {
                    let verdict = jobs::unknown_outcome(e.classify());
                    retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushUnverified, verdict, report).await?;
                    done(engine, conn, extra).await?;
                }
            }
            Ok(seen) => {
                for (p, extra) in unknown {
                    match seen.get(&p.record.order_key) {
                        Known::Found(held) => match compare(&p, &orders[&p.record.order_key], held) {
                            Held::Differs => {
                                // Still open and not what we want: an update of that order.
                                orders.get_mut(&p.record.order_key).expect("built").order_id = held.order_id;
                                to_send.push((p, extra));
                            }
                            outcome => {
                                settle_held(engine, conn, p, held, outcome, "read back before retrying", report).await?;
                                done(engine, conn, extra).await?;
                            }
                        },
                        Known::Absent => to_send.push((p, extra)),
                        Known::Unknown => {
                            let message = "an earlier attempt's outcome is unknown and ShipStation holds more recent orders than one read-back covers; will look again";
                            let verdict = Verdict::Backoff;
                            retry_or_give_up(engine, conn, p.job, &p.record, message, ExceptionKind::PushUnverified, verdict, report).await?;
                            done(engine, conn, extra).await?;
                        }
                    }
                }
            }
        }
    }
    if to_send.is_empty() {
        return Ok(());
    }

    // Up to `push_batch` orders a request, one request after another; a request that
    // fails stops the run (ShipStation is unwell or its budget spent), and the orders
    // not yet sent go back uncounted: no attempt was made for them.
    let started = engine.clock.now();
    let batch_size = conn.policy.push_batch.clamp(1, 100) as usize;
    let mut check: Vec<(Pending, Vec<Job>, Sent)> = Vec::new();
    let mut to_send = to_send.into_iter().peekable();
    let mut stopped: Option<(Verdict, String)> = None;
    while to_send.peek().is_some() {
        let chunk: Vec<(Pending, Vec<Job>)> = to_send.by_ref().take(batch_size).collect();
        // A job whose lease was lost meanwhile (this run outlived it: another worker
        // has claimed it) gets no write from this run: that worker pushes it.
        let (chunk, lost): (Vec<_>, Vec<_>) = chunk.into_iter().partition(|(p, _)| lease.holds(&p.job));
        if !lost.is_empty() {
            tracing::info!(
                connection = %conn.name, orders = lost.len(),
                "push: the lease on these orders' jobs was lost (another worker holds them); not sending them"
            );
        }
        if chunk.is_empty() {
            continue;
        }
        if let Some((verdict, why)) = &stopped {
            for (p, extra) in chunk {
                report.retried += 1;
                put_back(engine, conn, &p.job, *verdict, why).await?;
                done(engine, conn, extra).await?;
            }
            continue;
        }
        let sending: Vec<ss::Order> = chunk.iter().map(|(p, _)| orders[&p.record.order_key].clone()).collect();
        report.requests += 1;
        let answer = conn.shipstation.create_orders(&sending).await;
        // A failed request says nothing about its effect (it may have done its work and
        // lost the answer): the read-back below says what it did.
        let (by_key, failed): (HashMap<String, ss::CreateOrderResult>, Option<String>) = match answer {
            Ok(result) => (result.results.into_iter().filter_map(|r| Some((r.order_key.clone()?, r))).collect(), None),
            Err(e) => {
                let why = format!("not sent: an earlier createorders of this run failed ({e})");
                stopped = Some((e.classify(), why));
                (HashMap::new(), Some(format!("createorders failed: {e}")))
            }
        };

        // What each order's answer leaves to the read-back, with the reason it is unverified.
        for (p, extra) in chunk {
            let sent = match (by_key.get(&p.record.order_key), &failed) {
                (_, Some(e)) => Sent::Lost(e.clone()),
                (None, None) => Sent::Lost("ShipStation's answer did not mention this order".to_string()),
                (Some(r), None) => match r.refusal() {
                    None => Sent::Accepted(r.order_id.expect("an accepted order has an orderId")),
                    Some(OrderRefusal::Locked) => Sent::Locked(r.error_message.clone().unwrap_or_default()),
                    Some(OrderRefusal::Other) => {
                        let message = r.error_message.clone().unwrap_or_else(|| "no reason given".into());
                        // ShipStation's refusals of one order in a batch carry no status; one
                        // may clear (a store or a service set up meanwhile): back off, and
                        // raise it once the attempts are spent.
                        let verdict = Verdict::Backoff;
                        retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushRejected, verdict, report).await?;
                        done(engine, conn, extra).await?;
                        continue;
                    }
                },
            };
            check.push((p, extra, sent));
        }
    }
    if check.is_empty() {
        return Ok(());
    }

    // Read back: what ShipStation shows for each orderKey the request may have touched.
    // An order refused as locked, or whose answer was lost, may have been there since
    // its release; one just accepted is among the newest.
    let since = check
        .iter()
        .map(|(p, _, sent)| if matches!(sent, Sent::Accepted(_)) { started } else { earliest_effect(p) })
        .min()
        .expect("not empty")
        - READ_BACK_MARGIN;
    let seen = read_back_keys(conn, check.iter().map(|(p, _, _)| (p.record.order_key.as_str(), p.snapshot.number.as_str())), since).await;
    for (p, extra, sent) in check {
        let held = match &seen {
            Ok(seen) => match seen.get(&p.record.order_key) {
                Known::Found(held) => Some(held),
                Known::Absent | Known::Unknown => None,
            },
            Err(_) => None,
        };
        match (held, &sent) {
            (Some(held), Sent::Accepted(order_id)) if held.order_id == Some(*order_id) && held.order_status == p.status => {
                report.pushed += 1;
                commit_pushed(engine, conn, &p, *order_id, &p.status, "read back").await?;
                done(engine, conn, extra).await?;
            }
            (Some(held), _) if !held.order_status.is_open() || !matches!(sent, Sent::Accepted(_)) => {
                // Locked, or there although the answer was lost: it holds what it holds.
                match compare(&p, &orders[&p.record.order_key], held) {
                    Held::Differs => {
                        let message = format!(
                            "ShipStation holds orderId {} with status {} but not this version ({})",
                            held.order_id.unwrap_or_default(),
                            held.order_status,
                            sent.reason()
                        );
                        let verdict = Verdict::Backoff;
                        retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushUnverified, verdict, report).await?;
                    }
                    outcome => settle_held(engine, conn, p, held, outcome, "read back", report).await?,
                }
                done(engine, conn, extra).await?;
            }
            (None, Sent::Locked(message)) if p.record.ss_order_id.is_some() => {
                // Long locked (not modified since this change was planned): the change
                // cannot reach it.
                give_up(engine, conn, p.job, &p.record, message, ExceptionKind::ChangeAfterShipment, report).await?;
                done(engine, conn, extra).await?;
            }
            (held, _) => {
                let message = match (&seen, held, &sent) {
                    (Err(e), _, _) => format!("{}; read-back failed: {e}", sent.reason()),
                    (Ok(_), Some(held), Sent::Accepted(order_id)) => format!(
                        "read back as orderId {} with status {}, expected orderId {order_id} with status {}",
                        held.order_id.unwrap_or_default(),
                        held.order_status,
                        p.status
                    ),
                    (Ok(_), _, Sent::Accepted(order_id)) => format!("orderId {order_id} was accepted but not found when read back"),
                    (Ok(_), _, _) => format!("{}; not found when read back", sent.reason()),
                };
                let verdict = match &seen {
                    Err(e) => jobs::unknown_outcome(e.classify()),
                    Ok(_) => Verdict::Backoff,
                };
                retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushUnverified, verdict, report).await?;
                done(engine, conn, extra).await?;
            }
        }
    }
    Ok(())
}

/// What one order's part of a `createorders` answer says.
enum Sent {
    Accepted(i64),
    /// Refused: the order exists and takes no more changes (the refusal's words).
    Locked(String),
    /// No word about it (the request failed, or the answer left it out).
    Lost(String),
}

impl Sent {
    fn reason(&self) -> String {
        match self {
            Sent::Accepted(id) => format!("accepted as orderId {id}"),
            Sent::Locked(m) | Sent::Lost(m) => m.clone(),
        }
    }
}

/// Finish the other jobs of an order whose first job was decided.
async fn done(engine: &Engine, conn: &Connection, extra: Vec<Job>) -> Result<(), EngineError> {
    for job in extra {
        jobs::done(engine, &job, jobs::change(engine, conn)).await?;
    }
    Ok(())
}

/// The earliest time an earlier attempt for this order could have created or modified
/// it in ShipStation: its release when ShipStation's id was never recorded (any job
/// since may have created it), this job's creation otherwise.
fn earliest_effect(p: &Pending) -> Timestamp {
    match (p.record.ss_order_id, p.record.released_at) {
        (None, Some(released)) => released.min(p.job.created_at),
        _ => p.job.created_at,
    }
}

/// What ShipStation holding an order means for this push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// It holds what we want: record it, send nothing.
    InSync,
    /// It still takes changes and holds something else: send ours as an update.
    Differs,
    /// It takes no more changes (shipped, cancelled). `undelivered` when what it holds
    /// is not what we want: a change that can no longer reach it.
    Locked { undelivered: bool },
}

/// Compare what we would send with what ShipStation holds.
fn compare(p: &Pending, ours: &ss::Order, held: &ss::Order) -> Held {
    let same = same_content(ours, held);
    if held.order_status.is_open() {
        return if held.order_status == p.status && same { Held::InSync } else { Held::Differs };
    }
    let delivered = match (&held.order_status, &p.status) {
        // A cancellation arrived: nothing else matters for a cancelled order.
        (OrderStatus::Cancelled, OrderStatus::Cancelled) => true,
        // Shipped is where an open order goes next: ours arrived if its content did.
        (OrderStatus::Shipped, OrderStatus::AwaitingShipment | OrderStatus::AwaitingPayment) => same,
        _ => false,
    };
    Held::Locked { undelivered: !delivered }
}

/// Does ShipStation's order carry what ours says (number, ship-to, amount paid, and the
/// lines, unless ShipStation split or merged it)?
fn same_content(ours: &ss::Order, held: &ss::Order) -> bool {
    fn address(a: &ss::Address) -> [&str; 8] {
        [&a.name, &a.company, &a.street1, &a.street2, &a.city, &a.state, &a.postal_code, &a.country]
            .map(|s| s.as_deref().map(str::trim).unwrap_or_default())
    }
    let lines = |o: &ss::Order| {
        let mut lines: Vec<_> = o.items.iter().map(|i| (i.line_item_key.clone(), i.sku.clone(), i.quantity, i.unit_price)).collect();
        lines.sort();
        lines
    };
    let reshaped = held.advanced_options.as_ref().is_some_and(|a| a.merged_or_split == Some(true));
    ours.order_number == held.order_number
        && address(&ours.ship_to) == address(&held.ship_to)
        && ours.amount_paid == held.amount_paid
        && (reshaped || lines(ours) == lines(held))
}

/// Record an order ShipStation holds, as [`compare`] judged it: what it holds is ours
/// (pushed or updated, even when already shipped), or a change that cannot reach it.
async fn settle_held(
    engine: &Engine,
    conn: &Connection,
    p: Pending,
    held: &ss::Order,
    outcome: Held,
    how: &str,
    report: &mut PushReport,
) -> Result<(), EngineError> {
    let order_id = held.order_id.unwrap_or_default();
    match outcome {
        Held::InSync | Held::Locked { undelivered: false } => {
            report.pushed += 1;
            commit_pushed(engine, conn, &p, order_id, &held.order_status, how).await
        }
        Held::Locked { undelivered: true } => {
            let message = format!(
                "ShipStation order #{order_id} is {} and can no longer be updated; this change did not reach it (wanted {})",
                held.order_status, p.status
            );
            report.failed += 1;
            let mut change = Change::new(&conn.name, engine.clock.now());
            if p.record.ss_order_id != Some(order_id) {
                // Our ledger learns where the order is, whatever happens to the change.
                let fresh = engine.store.get_order(&conn.name, &p.record.erp_id).await?.unwrap_or_else(|| p.record.clone());
                let mut upsert = OrderUpsert::from_record(&fresh);
                upsert.ss_order_id = Some(order_id);
                upsert.ss_status = Some(held.order_status.as_str().to_string());
                if upsert.state == OrderState::Released {
                    upsert.state = OrderState::Pushed;
                }
                change.order = Some(upsert);
                change.events.push(event(
                    &p.record.erp_id,
                    if p.record.ss_order_id.is_none() { EventKind::Pushed } else { EventKind::UpdatedInShipstation },
                    json!({
                        "message": format!("ShipStation order #{order_id} is {} ({how}; an earlier version)", held.order_status),
                        "order_id": order_id, "order_key": p.record.order_key, "status": held.order_status.as_str(), "verified": true,
                    }),
                ));
            }
            let kind = change_after_shipment_unless_withdrawn(engine, conn, &p.record).await?;
            raise_failed(&mut change, &p.job, &p.record, &message, kind);
            jobs::dead(engine, &p.job, change, message).await
        }
        Held::Differs => unreachable!("an order that differs is sent, not settled"),
    }
}

/// Whether ShipStation holds an orderKey, as far as one read-back can tell.
enum Known<'a> {
    Found(&'a ss::Order),
    /// Not there: every order modified in the window was read, or it was looked up.
    Absent,
    /// The window held more than one read-back reads.
    Unknown,
}

/// What one read-back found: ShipStation's orders by orderKey.
struct ReadBack {
    found: HashMap<String, ss::Order>,
    /// Every order in the window was read.
    complete: bool,
    /// Keys looked up one by one (by orderNumber) because the window was too large.
    looked_up: std::collections::HashSet<String>,
}

impl ReadBack {
    fn get(&self, key: &str) -> Known<'_> {
        match self.found.get(key) {
            Some(order) => Known::Found(order),
            None if self.complete || self.looked_up.contains(key) => Known::Absent,
            None => Known::Unknown,
        }
    }
}

async fn read_back(conn: &Connection, batch: &[(Pending, Vec<Job>)], since: Timestamp) -> Result<ReadBack, EngineError> {
    read_back_keys(conn, batch.iter().map(|(p, _)| (p.record.order_key.as_str(), p.snapshot.number.as_str())), since).await
}

/// Read orders modified since `since`, newest first, 500 a page, until every wanted
/// `(orderKey, orderNumber)` is found, the window is exhausted, or the read-back's
/// bounds ([`READ_BACK_PAGES`], [`READ_BACK_TIME`]) are reached. ShipStation v1
/// cannot filter by orderKey: keys are matched here. When the bounds cut the window
/// short, up to [`LOOKUPS_PER_BATCH`] missing orders are looked up by orderNumber (a
/// starts-with match, so the orderKey is compared here too).
async fn read_back_keys<'a>(
    conn: &Connection,
    wanted: impl Iterator<Item = (&'a str, &'a str)>,
    since: Timestamp,
) -> Result<ReadBack, EngineError> {
    let wanted: HashMap<&str, &str> = wanted.collect();
    let mut seen = ReadBack { found: HashMap::new(), complete: false, looked_up: Default::default() };
    let filter = OrderFilter {
        modify_date_start: Some(since),
        sort_by: Some(OrderSortBy::ModifyDate),
        sort_dir: Some(SortDir::Desc),
        page_size: Some(READ_BACK_PAGE_SIZE),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + READ_BACK_TIME;
    let mut pager = conn.shipstation.orders_pager(&filter)?;
    for _ in 0..read_back_pages(wanted.len()) {
        let Some(page) = pager.next_page().await? else {
            seen.complete = true;
            break;
        };
        // The pager drops orders an earlier page already showed (ShipStation's pages
        // shift while orders are modified), so a page's length says nothing about
        // whether it was the last: the pager says so by answering None.
        for order in page {
            if let Some(key) = order.order_key.as_deref()
                && wanted.contains_key(key)
                && order.order_id.is_some()
            {
                seen.found.insert(key.to_string(), order);
            }
        }
        if wanted.keys().all(|k| seen.found.contains_key(*k)) {
            seen.complete = true;
            break;
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
    }
    if !seen.complete {
        let missing: Vec<(&str, &str)> =
            wanted.iter().filter(|(k, _)| !seen.found.contains_key(**k)).map(|(k, n)| (*k, *n)).take(LOOKUPS_PER_BATCH).collect();
        for (key, number) in missing {
            let filter = OrderFilter { order_number: Some(number.to_string()), page_size: Some(READ_BACK_PAGE_SIZE), ..Default::default() };
            let page = conn.shipstation.list_orders(&filter).await?;
            if let Some(order) = page.items.into_iter().find(|o| o.order_key.as_deref() == Some(key) && o.order_id.is_some()) {
                seen.found.insert(key.to_string(), order);
            }
            seen.looked_up.insert(key.to_string());
        }
    }
    Ok(seen)
}

/// Pages a read-back of `wanted` orders reads at most: [`READ_BACK_PAGES`], or twice
/// the pages the wanted orders fill when that is more, so orders modified meanwhile by
/// others (the warehouse, a person) cannot push a large run's own orders out of reach.
fn read_back_pages(wanted: usize) -> u32 {
    let own = u32::try_from(wanted.div_ceil(READ_BACK_PAGE_SIZE as usize)).unwrap_or(u32::MAX);
    READ_BACK_PAGES.max(own.saturating_mul(2))
}

/// Put back a job that was not sent because an earlier request of its run failed:
/// its attempt is not counted (none was made), and it runs again once the failure's
/// named wait, or the kind's first backoff, has passed.
async fn put_back(engine: &Engine, conn: &Connection, job: &Job, verdict: Verdict, why: &str) -> Result<(), EngineError> {
    let after = match verdict {
        Verdict::RetryAfter { after } => after,
        _ => jobs::policy(conn, job).initial,
    };
    let at = engine.clock.now().saturating_add(SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX);
    jobs::retry_at(engine, job, at, Verdict::RetryAfter { after }, why).await
}

/// Record that ShipStation holds this order's latest snapshot as `order_id` with
/// `status` (which may be further along than what we sent: shipped), and finish the job.
async fn commit_pushed(
    engine: &Engine,
    conn: &Connection,
    p: &Pending,
    order_id: i64,
    status: &OrderStatus,
    how: &str,
) -> Result<(), EngineError> {
    let now = engine.clock.now();
    // Write the ShipStation side onto the freshest record, so a snapshot that arrived
    // while we were pushing is kept (its own job pushes it next).
    let fresh = engine.store.get_order(&conn.name, &p.record.erp_id).await?.unwrap_or_else(|| p.record.clone());
    let mut upsert = OrderUpsert::from_record(&fresh);
    upsert.ss_order_id = Some(order_id);
    upsert.ss_status = Some(status.as_str().to_string());
    upsert.pushed_hash = Some(p.record.snapshot_hash.clone());
    upsert.pushed_at = Some(now);
    if fresh.snapshot_hash == p.record.snapshot_hash && fresh.state != OrderState::Shipped {
        upsert.state = match status {
            OrderStatus::Cancelled => OrderState::Cancelled,
            _ => OrderState::Pushed,
        };
    }
    let kind = match (p.record.ss_order_id, status) {
        (_, OrderStatus::Cancelled) => EventKind::CancelledInShipstation,
        (_, OrderStatus::OnHold) => EventKind::HeldInShipstation,
        (None, _) => EventKind::Pushed,
        (Some(_), _) => EventKind::UpdatedInShipstation,
    };
    let mut change = Change::new(&conn.name, now);
    change.order = Some(upsert);
    change.events.push(event(
        &p.record.erp_id,
        kind,
        json!({
            "message": format!("ShipStation order #{order_id} is {} ({how})", status.as_str()),
            "order_id": order_id, "order_key": p.record.order_key, "status": status.as_str(), "verified": true,
        }),
    ));
    for kind in [ExceptionKind::PushRejected, ExceptionKind::PushUnverified] {
        change.clear(kind, "order", p.record.erp_id.clone());
    }
    jobs::done(engine, &p.job, change).await
}

fn event(erp_id: &str, kind: EventKind, detail: serde_json::Value) -> NewEvent {
    NewEvent::order(erp_id, kind, detail)
}

/// A push that did not happen: run again per the `sync_order` retry policy, or —
/// once its failure is permanent or its attempts or horizon are spent — given up
/// with `kind`'s exception ([`give_up`]).
#[allow(clippy::too_many_arguments)]
async fn retry_or_give_up(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    record: &OrderRecord,
    message: &str,
    kind: ExceptionKind,
    verdict: Verdict,
    report: &mut PushReport,
) -> Result<(), EngineError> {
    match jobs::decide(engine, conn, &job, verdict, kind.owner()) {
        Decision::RetryAt { at } => {
            report.retried += 1;
            jobs::retry_at(engine, &job, at, verdict, message).await
        }
        Decision::GiveUp { owner, .. } => give_up(engine, conn, job, record, message, jobs::owned(kind, owner), report).await,
    }
}

async fn give_up(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    record: &OrderRecord,
    message: &str,
    kind: ExceptionKind,
    report: &mut PushReport,
) -> Result<(), EngineError> {
    report.failed += 1;
    let kind = match kind {
        ExceptionKind::ChangeAfterShipment => change_after_shipment_unless_withdrawn(engine, conn, record).await?,
        other => Some(other),
    };
    let mut change = jobs::change(engine, conn);
    raise_failed(&mut change, &job, record, message, kind);
    jobs::dead(engine, &job, change, message).await
}

/// `change_after_shipment`, unless the order was withdrawn by the ERP and its open
/// `order_withdrawn` exception already names the labels to void: then ops need no
/// second exception for the cancel (or hold) ShipStation refused.
async fn change_after_shipment_unless_withdrawn(
    engine: &Engine,
    conn: &Connection,
    record: &OrderRecord,
) -> Result<Option<ExceptionKind>, EngineError> {
    let open = engine
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(conn.name.clone()),
            live: true,
            kind: Some(ExceptionKind::OrderWithdrawn),
            record_type: Some("order".into()),
            record_id: Some(record.erp_id.clone()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(if open.is_empty() { Some(ExceptionKind::ChangeAfterShipment) } else { None })
}

/// The push of `record` failed for good: an owned exception (none when another open
/// one already says what to do) and a `sync_failed` event, for the change that
/// finishes the job dead.
fn raise_failed(change: &mut Change, job: &Job, record: &OrderRecord, message: &str, kind: Option<ExceptionKind>) {
    if let Some(kind) = kind {
        change.raise(
            kind,
            "order",
            record.erp_id.clone(),
            json!({
                "message": format!("order {} ({}): {message}", record.number, record.order_key),
                "order_number": record.number,
                "attempts": job.attempts,
            }),
        );
    }
    change.events.push(event(&record.erp_id, EventKind::SyncFailed, json!({"message": message, "attempts": job.attempts})));
}

fn ss_address(a: &Address) -> ss::Address {
    ss::Address {
        name: a.name.clone(),
        company: a.company.clone(),
        street1: a.street1.clone(),
        street2: a.street2.clone(),
        city: a.city.clone(),
        state: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
        phone: a.phone.clone(),
        ..ss::Address::default()
    }
}

fn grams(w: Weight) -> ss::Weight {
    ss::Weight::new(w.to_decimal(WeightUnit::Grams), WeightUnit::Grams).expect("grams have a v1 unit")
}

/// The ShipStation order for a record: every field from the ERP snapshot (a full
/// replace, as ShipStation updates are), weights as resolved at release. The
/// advanced options carry our ERP id (`customField1`), the order's currency
/// (`customField2`) and the customer's own reference (`customField3`), where the
/// warehouse sees them.
pub fn build_order(
    conn: &Connection,
    record: &OrderRecord,
    snapshot: &ErpOrder,
    lines: &[OrderLineRecord],
    status: OrderStatus,
) -> ss::Order {
    let mut order = ss::Order::new(
        record.order_key.clone(),
        snapshot.number.clone(),
        snapshot.placed_at,
        status,
        ss_address(&snapshot.ship_to),
    );
    order.order_id = record.ss_order_id;
    if let Some(bill) = &snapshot.bill_to {
        order.bill_to = ss_address(bill);
    }
    order.customer_email = snapshot.customer_email.clone();
    order.payment_date = snapshot.payment.at;
    order.amount_paid = Some(snapshot.payment.amount.to_decimal());
    order.shipping_amount = snapshot.shipping_paid.map(|m| m.to_decimal());
    order.tax_amount = snapshot.tax_paid.map(|m| m.to_decimal());
    order.requested_shipping_service = snapshot.requested_service.clone();
    let weights: HashMap<&str, Option<i64>> = lines.iter().map(|l| (l.line_id.as_str(), l.unit_weight_mg)).collect();
    let mut total = Weight::ZERO;
    for line in &snapshot.lines {
        let unit_weight = weights
            .get(line.line_id.as_str())
            .copied()
            .flatten()
            .map(|mg| Weight::from_milligrams(mg.max(0) as u64));
        if line.physical
            && let Some(w) = unit_weight.and_then(|w| w.checked_mul(u64::from(line.quantity)).ok())
        {
            total = total.checked_add(w).unwrap_or(total);
        }
        order.items.push(ss::OrderItem {
            line_item_key: Some(line.line_id.clone()),
            sku: line.sku.clone(),
            name: line.name.clone(),
            weight: if line.physical { unit_weight.map(grams) } else { None },
            quantity: i64::from(line.quantity),
            unit_price: Some(line.unit_price.to_decimal()),
            adjustment: !line.physical,
            ..ss::OrderItem::default()
        });
    }
    if !total.is_zero() {
        order.weight = Some(grams(total));
    }
    order.advanced_options = Some(ss::AdvancedOptions {
        store_id: conn.store_id,
        custom_field1: Some(snapshot.erp_id.clone()),
        custom_field2: Some(snapshot.currency.clone()),
        custom_field3: snapshot.customer_reference.clone(),
        source: Some("shipledger".into()),
        ..ss::AdvancedOptions::default()
    });
    order
}

/// The ShipStation-side fields an operator set on this order (edit and retry),
/// over what [`build_order`] made; names [`shipledger_core::overrides::FIELDS`] does
/// not know are left alone.
pub fn apply_overrides(order: &mut ss::Order, overrides: &std::collections::BTreeMap<String, String>) {
    for (field, value) in overrides {
        let value = Some(value.clone());
        match field.as_str() {
            "carrier_code" => order.carrier_code = value,
            "service_code" => order.service_code = value,
            "package_code" => order.package_code = value,
            "confirmation" => order.confirmation = value,
            "internal_notes" => order.internal_notes = value,
            "warehouse_id" => {
                if let Some(id) = value.and_then(|v| v.parse::<i64>().ok()) {
                    order.advanced_options.get_or_insert_with(ss::AdvancedOptions::default).warehouse_id = Some(id);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
