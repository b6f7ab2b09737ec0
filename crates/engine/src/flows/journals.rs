//! Cost journals: the converted cost ledger → one balanced journal per posting window
//! in the ERP's base currency, planned in the outbox and read back (DESIGN §7).
//!
//! - **The planner** ([`plan`]) is a scheduled pass of the ERP-reads lane
//!   (`cost_batches`). It reads every entry of the connection in no live batch with
//!   its conversion, the batches already planned or posted, and the ERP's period
//!   state of each window it might post into, and lets
//!   [`plan_batches`](shipledger_core::journal::plan_batches) place them: an entry
//!   in its own window when that window is not posted and its period is open, else
//!   carried into the next one that is. A batch that is due (its window ended in
//!   company time, or `costs post --until` reached it) and has every entry converted
//!   becomes its journal ([`build_journal`]); the batch with its frozen journal, its
//!   entries and its `post_journal` job are committed in one change (the outbox), so
//!   a crash leaves the batch planned and posted once, or not planned at all. A batch
//!   waiting for a rate is not planned (its currency pair's `fx_rate_missing`
//!   exception says what to add); one that cannot become a journal raises
//!   `cost_batch_failed`; entries no open period can take raise
//!   `costs_no_open_period`.
//! - **The poster** ([`step`]) runs `post_journal` jobs in the ERP-writes lane: the
//!   ERP posts the frozen journal idempotently by the batch key (a retry after a
//!   crash finds the move it made), it is read back and compared line by line
//!   ([`JournalRecord::verify`](shipledger_erp::JournalRecord)), and only then is the
//!   batch posted in the store. A period that closed after planning is never
//!   written: the batch is withdrawn, its entries freed, and the next plan carries
//!   them into the next open window under the next revision.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;
use serde_json::json;
use shipledger_core::Money;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::journal::{BatchPlan, JournalError, PeriodState, PlanContext, PlannedBatch, Window, build_journal, company_date, plan_batches};
use shipledger_core::retry::{Classify, Verdict};
use shipledger_erp::ErpError;
use shipledger_store::{
    BatchMember, BatchMove, BatchState, Change, CostBatchFilter, CostBatchRecord, CostEntryFilter, EventKind, ExceptionFilter, Job, JobKind, JobSpec, NewCostBatch,
    NewEvent, NewJob, PostJournal, RecordType,
};

use crate::jobs::{self, Failed};
use crate::schedule::Scheduled;
use crate::{Connection, Engine, EngineError};

/// What a planning pass and the posts after it did, for `costs post` and the demo.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Batches planned (their journal frozen and posting planned).
    pub planned: Vec<String>,
    /// Batches that netted to zero: recorded, nothing to post.
    pub empty: Vec<String>,
    /// Due batches not planned because entries wait for a rate: key → entry count.
    pub waiting_for_rate: BTreeMap<String, usize>,
    /// Batches whose window has not ended yet.
    pub not_due: usize,
    /// Entries no open period can take.
    pub unplaced: usize,
    /// Due batches that could not become a journal (the exception says why).
    pub failed: Vec<String>,
    /// Journals posted and read back.
    pub posted: Vec<String>,
    /// Batches withdrawn because their period closed before they posted.
    pub withdrawn: Vec<String>,
}

impl BatchReport {
    pub fn add(&mut self, other: &BatchReport) {
        self.planned.extend(other.planned.iter().cloned());
        self.empty.extend(other.empty.iter().cloned());
        self.waiting_for_rate.extend(other.waiting_for_rate.iter().map(|(k, v)| (k.clone(), *v)));
        self.not_due += other.not_due;
        self.unplaced += other.unplaced;
        self.failed.extend(other.failed.iter().cloned());
        self.posted.extend(other.posted.iter().cloned());
        self.withdrawn.extend(other.withdrawn.iter().cloned());
    }
}

/// The event of a batch record.
fn event(key: &str, kind: EventKind, detail: serde_json::Value) -> NewEvent {
    NewEvent::new(RecordType::CostBatch, key, kind, detail)
}

/// The `post_journal` job of a batch: idempotent by the batch key.
pub fn post_job(batch_key: &str, now: jiff::Timestamp) -> NewJob {
    NewJob::new(PostJournal { batch_key: batch_key.to_string() }, format!("post_journal:{batch_key}"), now)
}

/// The windows already taken by a live batch, and the revision each window's next
/// batch takes (one past its highest so far).
fn taken(batches: &[CostBatchRecord]) -> (BTreeSet<Window>, BTreeMap<Window, u32>) {
    let mut live = BTreeSet::new();
    let mut revisions: BTreeMap<Window, u32> = BTreeMap::new();
    for b in batches {
        if b.state != BatchState::Withdrawn {
            live.insert(b.window);
        }
        let next = revisions.entry(b.window).or_insert(0);
        *next = (*next).max(b.revision + 1);
    }
    (live, revisions)
}

/// Plan the due batches of `conn` (see the module's notes); `until` makes windows
/// ending on or before it due as well (`costs post --until`). A connection without
/// `[connections.accounts]` posts no journals: nothing is planned.
pub async fn plan(engine: &Engine, conn: &Connection, until: Option<Date>) -> Result<BatchReport, EngineError> {
    let mut report = BatchReport::default();
    let Some(accounts) = &conn.accounts else { return Ok(report) };
    let filter = CostEntryFilter { connection: Some(conn.name.clone()), unbatched: true, ..Default::default() };
    let entries = engine.store.list_cost_entries(filter.clone()).await?;
    let mut conversions: HashMap<String, shipledger_core::fx::Conversion> =
        engine.store.list_cost_conversions(filter).await?.into_iter().map(|c| (c.conversion.entry_key.clone(), c.conversion)).collect();
    let tz = conn.policy.company_timezone(conn.erp.as_ref()).await?;
    let now = engine.clock.now();
    let today = company_date(now, &tz);
    let batches = engine.store.list_cost_batches(CostBatchFilter { connection: Some(conn.name.clone()), ..Default::default() }).await?;
    let (live, revisions) = taken(&batches);
    let paired: Vec<_> = entries.into_iter().map(|e| {
        let c = conversions.remove(&e.entry_key);
        (e, c)
    }).collect();
    let plan = plan_with_periods(conn, &paired, &PlanContext {
        connection: &conn.name,
        policy: conn.policy.cost_batch,
        tz: &tz,
        posted: &live,
        revisions: &revisions,
        today,
        until,
    })
    .await?;

    let mut change = Change::new(&conn.name, now);
    for batch in &plan.batches {
        if !batch.due {
            report.not_due += 1;
            continue;
        }
        if !batch.waiting_for_rate.is_empty() {
            report.waiting_for_rate.insert(batch.key.clone(), batch.waiting_for_rate.len());
            continue;
        }
        match build_journal(batch, accounts) {
            Ok(journal) => {
                let (total, _) = journal.totals().map_err(|e| EngineError::Setup(format!("cost batch {}: {e}", batch.key)))?;
                change.cost_batches.push(new_batch(batch, journal, BatchState::Planned, None, total));
                change.jobs.push(post_job(&batch.key, now));
                change.events.push(event(
                    &batch.key,
                    EventKind::BatchPlanned,
                    json!({"message": format!(
                        "{} entries ({} carried over) planned as one journal of {total} for {}, posting planned",
                        batch.entries.len(), batch.carried_over(), batch.window
                    ), "total": total.to_string(), "entries": batch.entries.len(), "carried_over": batch.carried_over()}),
                ));
                change.clear(ExceptionKind::CostBatchFailed, "cost_batch", batch.key.clone());
                report.planned.push(batch.key.clone());
            }
            Err(JournalError::NothingToPost { .. }) => {
                let zero = Money::zero(batch.entries.first().and_then(|e| e.conversion.as_ref()).map(|c| c.base.currency()).unwrap_or(shipledger_core::Currency::GBP));
                let journal = shipledger_core::journal::JournalWrite { key: batch.key.clone(), date: batch.window.posting_date(), memo: String::new(), lines: Vec::new() };
                let why = "its entries net to zero in every line: nothing posted";
                change.cost_batches.push(new_batch(batch, journal, BatchState::Posted, Some(why.into()), zero));
                change.events.push(event(&batch.key, EventKind::JournalPosted, json!({"message": format!("{} entries for {}: {why}", batch.entries.len(), batch.window)})));
                report.empty.push(batch.key.clone());
            }
            Err(e) => {
                change.raise(
                    ExceptionKind::CostBatchFailed,
                    "cost_batch",
                    batch.key.clone(),
                    json!({"message": format!("cost batch {} ({} entries) is due but was not posted: {e}", batch.key, batch.entries.len())}),
                );
                report.failed.push(batch.key.clone());
            }
        }
    }
    report.unplaced = plan.unplaced.len();
    if plan.unplaced.is_empty() {
        // Closed only when one is open: an idle pass writes nothing.
        let open = engine
            .store
            .list_exceptions(ExceptionFilter {
                connection: Some(conn.name.clone()),
                kind: Some(ExceptionKind::CostsNoOpenPeriod),
                live: true,
                limit: 1,
                ..Default::default()
            })
            .await?;
        if !open.is_empty() {
            change.clear(ExceptionKind::CostsNoOpenPeriod, "connection", conn.name.clone());
        }
    } else {
        let windows: BTreeSet<String> = plan.unplaced.iter().map(|u| format!("{} ({})", u.own_window, u.last_state)).collect();
        change.raise(
            ExceptionKind::CostsNoOpenPeriod,
            "connection",
            conn.name.clone(),
            json!({"message": format!(
                "{} cost entr{} of connection {} cannot post: their windows' ERP periods are not open and no open period follows within a year (windows {}); open the next period in the ERP and they post there",
                plan.unplaced.len(), if plan.unplaced.len() == 1 { "y" } else { "ies" }, conn.name,
                windows.into_iter().collect::<Vec<_>>().join(", ")
            ), "entries": plan.unplaced.iter().map(|u| u.entry_key.clone()).collect::<Vec<_>>()}),
        );
    }
    let idle = change.cost_batches.is_empty() && change.open_exceptions.is_empty() && change.close_exceptions.is_empty();
    if !idle {
        engine.store.commit(change).await?;
    }
    Ok(report)
}

fn new_batch(batch: &PlannedBatch, journal: shipledger_core::journal::JournalWrite, state: BatchState, detail: Option<String>, total: Money) -> NewCostBatch {
    NewCostBatch {
        batch_key: batch.key.clone(),
        window: batch.window,
        revision: batch.revision,
        journal,
        members: batch.entries.iter().map(|e| BatchMember { entry_key: e.entry.entry_key.clone(), carried_from: e.carried_from }).collect(),
        state,
        detail,
        total,
    }
}

/// [`plan_batches`] with the ERP's period states, read as the plan asks for them:
/// the plan is made with the states known, the dates it asked about and did not know
/// are read, and it is made again, until it asks about nothing new.
async fn plan_with_periods(
    conn: &Connection,
    entries: &[(shipledger_core::cost::CostEntry, Option<shipledger_core::fx::Conversion>)],
    ctx: &PlanContext<'_>,
) -> Result<BatchPlan, EngineError> {
    let mut known: BTreeMap<Date, PeriodState> = BTreeMap::new();
    for _ in 0..32 {
        let asked = std::cell::RefCell::new(BTreeSet::new());
        let plan = plan_batches(entries, ctx, |d| match known.get(&d) {
            Some(s) => *s,
            None => {
                asked.borrow_mut().insert(d);
                // Unknown yet: taken as closed so the plan looks further, and read
                // before the plan is made again.
                PeriodState::Closed
            }
        });
        let asked = asked.into_inner();
        if asked.is_empty() {
            return Ok(plan);
        }
        for d in asked {
            known.insert(d, conn.erp.period_state(d).await?);
        }
    }
    Err(EngineError::Setup(format!("connection {}: the cost plan kept asking for more ERP periods; is the ERP's calendar readable?", conn.name)))
}

/// What `costs post` does now, on one connection: convert every entry that has a
/// rate ([`fx::convert`](crate::flows::fx::convert)), plan every due window (`until`
/// brings forward those ending on or before it), run the posting jobs; and when a
/// period closed under a planned batch, plan and post again so its entries land in
/// the next open window now rather than at the next pass.
pub async fn post_now(engine: &Engine, conn: &Connection, until: Option<Date>) -> Result<(crate::flows::fx::FxReport, BatchReport), EngineError> {
    let converted = crate::flows::fx::convert(engine, conn).await?;
    let mut report = plan(engine, conn, until).await?;
    report.add(&run(engine, conn).await?);
    if !report.withdrawn.is_empty() {
        report.add(&plan(engine, conn, until).await?);
        report.add(&run(engine, conn).await?);
    }
    Ok((converted, report))
}

/// Run `post_journal` jobs until none is runnable.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<BatchReport, EngineError> {
    let mut report = BatchReport::default();
    while step(engine, conn, &mut report).await? {}
    Ok(report)
}

/// One bounded step: claim up to 10 runnable `post_journal` jobs, held while the
/// step runs, and post each. `false` when none was runnable.
pub async fn step(engine: &Engine, conn: &Connection, report: &mut BatchReport) -> Result<bool, EngineError> {
    let (jobs, lease) = jobs::claim_held(engine, conn, JobKind::PostJournal, 10).await?;
    if jobs.is_empty() {
        return Ok(false);
    }
    for job in jobs {
        if lease.still_holds(conn, &job, "journal posting") {
            post_one(engine, conn, job, &lease, report).await?;
        }
    }
    Ok(true)
}

async fn post_one(engine: &Engine, conn: &Connection, job: Job, lease: &jobs::JobLease, report: &mut BatchReport) -> Result<(), EngineError> {
    let JobSpec::PostJournal(PostJournal { batch_key: key }) = job.spec.clone() else {
        let why = format!("job {} is a {} job, not a post_journal", job.id, job.kind());
        return jobs::dead(engine, &job, jobs::change(engine, conn), why).await;
    };
    let Some(batch) = engine.store.get_cost_batch(&conn.name, &key).await? else {
        return jobs::dead(engine, &job, jobs::change(engine, conn), format!("cost batch {key} is not in the store")).await;
    };
    if batch.state != BatchState::Planned {
        return jobs::done(engine, &job, jobs::change(engine, conn)).await;
    }
    if !lease.still_holds(conn, &job, "journal posting") {
        return Ok(());
    }
    let posted = conn.erp.post_journal(&batch.journal).await;
    let now = engine.clock.now();
    match posted {
        Ok(record) => match record.verify(&batch.journal) {
            Ok(()) => {
                let mut change = jobs::change(engine, conn);
                change.batch_moves.push(BatchMove {
                    batch_key: key.clone(),
                    from: BatchState::Planned,
                    to: BatchState::Posted,
                    erp_move_id: Some(record.id.clone()),
                    detail: None,
                });
                change.events.push(event(
                    &key,
                    EventKind::JournalPosted,
                    json!({"message": format!(
                        "ERP move {} posted on {} for {}: {} lines, {} debit = credit, {} entries ({} carried over), read back",
                        record.id, record.date, batch.window, record.lines.len(), batch.total, batch.entry_count, batch.carried_over
                    ), "erp_move": record.id, "total": batch.total.to_string()}),
                ));
                change.clear(ExceptionKind::CostBatchFailed, "cost_batch", key.clone());
                report.posted.push(key);
                jobs::done(engine, &job, change).await
            }
            Err(why) => {
                // The ERP holds a move under this batch's key that is not the journal
                // planned: a person must look before anything else is written.
                let reason = format!("the ERP's move for {key} is not the journal planned: {why}");
                give_up_or_retry(engine, conn, &job, &key, Verdict::GiveUp { owner: Owner::Finance }, reason).await.map(|_| ())
            }
        },
        Err(ErpError::PeriodNotOpen { date, state, .. }) => {
            let detail = format!("the ERP period of {date} is {state}: nothing was written; its {} entries go to the next open window", batch.entry_count);
            let mut change = jobs::change(engine, conn);
            change.batch_moves.push(BatchMove { batch_key: key.clone(), from: BatchState::Planned, to: BatchState::Withdrawn, erp_move_id: None, detail: Some(detail.clone()) });
            change.events.push(event(&key, EventKind::BatchWithdrawn, json!({"message": detail})));
            report.withdrawn.push(key);
            jobs::done(engine, &job, change).await?;
            // Re-planned soon, not an interval later.
            engine.hasten_schedule(conn, Scheduled::CostBatches, now).await?;
            Ok(())
        }
        Err(e) => {
            let reason = e.to_string();
            give_up_or_retry(engine, conn, &job, &key, e.classify(), reason).await.map(|_| ())
        }
    }
}

/// A post that did not happen: retried per the `post_journal` policy and, once given
/// up, raised as `cost_batch_failed` on the batch (the batch stays planned: fixing the
/// cause and retrying the job posts it).
async fn give_up_or_retry(engine: &Engine, conn: &Connection, job: &Job, key: &str, verdict: Verdict, reason: String) -> Result<Failed, EngineError> {
    let owner = ExceptionKind::CostBatchFailed.owner();
    jobs::fail(engine, conn, job, verdict, &reason, owner, |owner, _| {
        let mut change = jobs::change(engine, conn);
        change.raise(
            jobs::owned(ExceptionKind::CostBatchFailed, owner),
            "cost_batch",
            key.to_string(),
            json!({"message": format!("posting the journal of cost batch {key} gave up after {} attempt(s): {reason}", job.attempts), "job": job.id}),
        );
        change.events.push(event(key, EventKind::JournalFailed, json!({"message": format!("posting gave up: {reason}")})));
        change
    })
    .await
}
