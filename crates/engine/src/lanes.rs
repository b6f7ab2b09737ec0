//! Lanes: the engine's work, per connection and per budget it spends, run
//! concurrently so that one kind of wait never holds up another.
//!
//! | lane | its work | what it waits on |
//! |---|---|---|
//! | [`Lane::ErpReads`] | the ERP poll, the recheck (or, between rechecks, the follow), the FX conversion of cost entries | the ERP's reads |
//! | [`Lane::ErpWrites`] | `write_fulfilment` jobs | the ERP's writes |
//! | [`Lane::ShipStationV1`] | `sync_order` (push), `ingest_v1_webhook` hints, the shipment poll | the v1 budget (40 a minute) |
//! | [`Lane::ShipStationV2`] | the scan sweep | the v2 budget (200 a minute) |
//! | [`Lane::Intake`] | `ingest_v2_track` jobs, the monitors (and jobs of unknown kinds) | the store only |
//! | [`Lane::Reconcile`] | the scheduled reconciler run | the v1 budget and the ERP's reads, for many minutes |
//!
//! [`Engine::try_execute_one`] does at most one bounded unit of a lane's work (one
//! scheduled pass, or one claimed batch of one job kind), rotating between the lane's
//! kinds of work so a backlog of one never starves another. [`Engine::run`] runs one
//! task per (connection, lane), each looping `try_execute_one`, bounded per lane kind
//! across connections by a semaphore ([`LaneLimits`]); a rate-limit wait in the v1
//! lane, or a stalled ERP on one connection, delays nothing else.
//!
//! A step's permit counts a step at work, not one asleep: while a step waits for a
//! ShipStation rate budget ([`crate::budget::StoreRateBudget`]), it lends its permit
//! back ([`lend_permit`]), so the same lane of the other connections — other API
//! keys, other budgets — goes on, and takes it again before its request is sent
//! ([`reclaim_permit`]). Without that, eight connections whose budget is spent would
//! hold every v1 permit asleep and keep the fifty others from ShipStation.
//!
//! On its stop signal [`Engine::run`] drains: no lane claims anything new, the steps
//! in flight get [`DRAIN_GRACE`] to finish, the rest are cancelled, and every lease
//! this worker holds is given back ([`Engine::release_leases`]), so a cancelled
//! step's jobs run again — idempotently, like any job whose worker died — at once
//! rather than when their lease would have expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use shipledger_core::retry::RetryPolicy;
use shipledger_store::{JobKind, ScheduleRecord};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::schedule::Scheduled;
use crate::{Connection, Engine, EngineError, TickReport, flows};

/// The longest a lane's steps in flight may take to finish once [`Engine::run`] is
/// told to stop; the rest are cancelled (and their leases given back).
pub const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// The longest an idle lane sleeps before it looks again, so work another process
/// planned (or a pass another worker hastened) is seen soon.
pub const IDLE_CAP: Duration = Duration::from_secs(1);

/// How a failing lane backs off: 1 s doubling to 30 s, ± 20 % (the one retry
/// policy's backoff; only its delays are used).
const LANE_BACKOFF: RetryPolicy = RetryPolicy {
    initial: Duration::from_secs(1),
    max_delay: Duration::from_secs(30),
    jitter_pct: 20,
    max_attempts: u32::MAX,
    give_up_after: Duration::MAX,
};

/// A kind of work per connection that spends one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// The ERP poll and the recheck/follow: the ERP's reads.
    ErpReads,
    /// `write_fulfilment`: the ERP's writes.
    ErpWrites,
    /// Push, the v1 webhook hints and the shipment poll: the v1 budget.
    ShipStationV1,
    /// The scan sweep: the v2 budget.
    ShipStationV2,
    /// What the webhook receivers stored (`ingest_v2_track`) and the monitors: no
    /// external call.
    Intake,
    /// The reconciler: long reads of ShipStation and the ERP (its requests spend the
    /// connection's budgets), in a lane of its own so a run of many minutes never
    /// holds pushes, write-back or scan checks back.
    Reconcile,
}

/// One kind of work a lane rotates through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// A scheduled pass ([`Scheduled::Recheck`] stands for the recheck, or the
    /// follow between rechecks).
    Pass(Scheduled),
    /// One claimed batch of a job kind.
    Jobs(JobKind),
}

impl Lane {
    pub const ALL: &'static [Lane] = &[Lane::ErpReads, Lane::ErpWrites, Lane::ShipStationV1, Lane::ShipStationV2, Lane::Intake, Lane::Reconcile];

    /// The name logs show (`erp_reads`, `shipstation_v1`, …).
    pub fn name(self) -> &'static str {
        match self {
            Lane::ErpReads => "erp_reads",
            Lane::ErpWrites => "erp_writes",
            Lane::ShipStationV1 => "shipstation_v1",
            Lane::ShipStationV2 => "shipstation_v2",
            Lane::Intake => "intake",
            Lane::Reconcile => "reconcile",
        }
    }

    /// The lane whose budget a job kind's handler spends. Every kind has one (the
    /// match is exhaustive), so a kind added to the store's `jobs!` list must be given
    /// a lane before it builds.
    pub fn of_job(kind: JobKind) -> Lane {
        match kind {
            JobKind::SyncOrder | JobKind::IngestV1Webhook => Lane::ShipStationV1,
            JobKind::WriteFulfilment | JobKind::PostJournal => Lane::ErpWrites,
            JobKind::IngestV2Track => Lane::Intake,
        }
    }

    /// The lane a scheduled pass runs in.
    pub fn of_pass(what: Scheduled) -> Lane {
        match what {
            Scheduled::ErpPoll | Scheduled::Recheck | Scheduled::Follow | Scheduled::FxConvert | Scheduled::CostBatches => Lane::ErpReads,
            Scheduled::ShipmentPoll => Lane::ShipStationV1,
            Scheduled::ScanSweep => Lane::ShipStationV2,
            Scheduled::Monitors => Lane::Intake,
            Scheduled::Reconcile => Lane::Reconcile,
        }
    }

    /// The scheduled passes of this lane.
    pub fn passes(self) -> impl Iterator<Item = Scheduled> {
        Scheduled::ALL.iter().copied().filter(move |s| Lane::of_pass(*s) == self)
    }

    /// The job kinds of this lane.
    pub fn job_kinds(self) -> impl Iterator<Item = JobKind> {
        JobKind::ALL.iter().copied().filter(move |k| Lane::of_job(*k) == self)
    }

    /// What this lane rotates through: its passes (the follow rides with the
    /// recheck), then its job kinds.
    fn work(self) -> Vec<Work> {
        self.passes()
            .filter(|s| *s != Scheduled::Follow)
            .map(Work::Pass)
            .chain(self.job_kinds().map(Work::Jobs))
            .collect()
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one [`Engine::try_execute_one`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One unit of the lane's work ran (a pass that was due, or a batch of jobs).
    Worked(TickReport),
    /// Nothing of this lane was due. `next_due`: the earliest time one of its
    /// scheduled passes is due (in the past when another worker holds it); `None`
    /// when the lane has only jobs, whose next runnable time the caller learns by
    /// looking again.
    Idle { next_due: Option<Timestamp> },
}

/// How many steps of each lane kind may run at once across every connection (each
/// may hold an ERP or ShipStation connection open). `[lanes]` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    pub erp_reads: usize,
    pub erp_writes: usize,
    pub shipstation_v1: usize,
    pub shipstation_v2: usize,
    pub intake: usize,
    /// Reconcile runs at once (each holds its pages in memory and writes its copies).
    pub reconcile: usize,
}

impl Default for LaneLimits {
    /// Eight steps of each lane kind at once; two reconcile runs.
    fn default() -> Self {
        LaneLimits { erp_reads: 8, erp_writes: 8, shipstation_v1: 8, shipstation_v2: 8, intake: 8, reconcile: 2 }
    }
}

impl LaneLimits {
    pub fn of(&self, lane: Lane) -> usize {
        match lane {
            Lane::ErpReads => self.erp_reads,
            Lane::ErpWrites => self.erp_writes,
            Lane::ShipStationV1 => self.shipstation_v1,
            Lane::ShipStationV2 => self.shipstation_v2,
            Lane::Intake => self.intake,
            Lane::Reconcile => self.reconcile,
        }
    }
}

/// The lanes' state in one engine: where each (connection, lane) is in its rotation,
/// and the wake-up signal.
#[derive(Debug, Default)]
pub(crate) struct LaneState {
    cursors: Mutex<HashMap<(String, Lane), usize>>,
    wake: Arc<Notify>,
}

impl LaneState {
    fn cursor(&self, conn: &str, lane: Lane) -> usize {
        *self.cursors.lock().expect("lane cursors lock").get(&(conn.to_string(), lane)).unwrap_or(&0)
    }

    fn set_cursor(&self, conn: &str, lane: Lane, at: usize) {
        self.cursors.lock().expect("lane cursors lock").insert((conn.to_string(), lane), at);
    }
}

impl Engine {
    /// The signal that wakes every idle lane at once (a webhook receiver that stored
    /// work calls `notify_waiters()` on it, or [`Engine::wake`]). Without it a lane
    /// sees new work within [`IDLE_CAP`].
    pub fn waker(&self) -> Arc<Notify> {
        self.lanes_state.wake.clone()
    }

    /// Wake every idle lane now (new work was stored).
    pub fn wake(&self) {
        self.lanes_state.wake.notify_waiters();
    }

    /// At most one bounded unit of `lane`'s work on `conn`: a scheduled pass that is
    /// due, or one claimed batch of one job kind. The lane's kinds of work take turns:
    /// each call starts after the kind that last worked (or failed), so a backlog of
    /// one kind never starves another. `Idle` when nothing of the lane was due.
    ///
    /// A pass is *taken* (a write) only when a read of its record says it is due and
    /// no live lease holds it, and a job kind is claimed only when a count says one
    /// is runnable ([`crate::jobs`]): an idle lane reads, it does not write.
    pub async fn try_execute_one(&self, conn: &Connection, lane: Lane) -> Result<Step, EngineError> {
        let work = lane.work();
        let start = self.lanes_state.cursor(&conn.name, lane);
        let now = self.clock.now();
        let records = self.pass_records(conn, lane).await?;
        let worth_taking = |pass: Scheduled| match pass {
            // The recheck's turn is the recheck, or the follow between rechecks.
            Scheduled::Recheck | Scheduled::Follow => {
                takeable(records.get(&Scheduled::Recheck), now) || takeable(records.get(&Scheduled::Follow), now)
            }
            other => other.enabled(&conn.policy) && takeable(records.get(&other), now),
        };
        for i in 0..work.len() {
            let at = (start + i) % work.len();
            if let Work::Pass(pass) = work[at]
                && !worth_taking(pass)
            {
                continue;
            }
            let outcome = self.do_work(conn, work[at]).await;
            if !matches!(outcome, Ok(None)) {
                self.lanes_state.set_cursor(&conn.name, lane, (at + 1) % work.len());
            }
            match outcome {
                Ok(Some(report)) => return Ok(Step::Worked(report)),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        // When the lane's next pass is due, from what was read above (a pass never
        // taken is due now); a pass taken meanwhile is seen on the next look.
        let next_due = lane
            .passes()
            .filter(|pass| pass.enabled(&conn.policy))
            .map(|pass| records.get(&pass).and_then(|r| r.next_due_at).unwrap_or(now))
            .min();
        Ok(Step::Idle { next_due })
    }

    /// The stored records of `lane`'s passes on `conn` (one read of the connection's
    /// schedules); a pass never taken has none.
    async fn pass_records(&self, conn: &Connection, lane: Lane) -> Result<HashMap<Scheduled, ScheduleRecord>, EngineError> {
        if lane.passes().next().is_none() {
            return Ok(HashMap::new());
        }
        Ok(self
            .schedules(conn)
            .await?
            .into_iter()
            .filter_map(|r| Scheduled::parse(&r.name).filter(|p| Lane::of_pass(*p) == lane).map(|p| (p, r)))
            .collect())
    }

    /// Run one unit of `work`; `None` when there was nothing to do (not due, held by
    /// another worker, no runnable job). A pass runs only when due: to run one now,
    /// bring it forward first ([`Engine::hasten_now`]).
    async fn do_work(&self, conn: &Connection, work: Work) -> Result<Option<TickReport>, EngineError> {
        match work {
            Work::Jobs(kind) => {
                let (run, worked) = flows::run_jobs_step(self, conn, kind).await?;
                Ok(worked.then(|| TickReport { push: run.push, shipments: run.shipments, journals: run.journals, ..TickReport::default() }))
            }
            Work::Pass(Scheduled::Recheck | Scheduled::Follow) => self.recheck_or_follow(conn).await,
            Work::Pass(what) => self.scheduled_pass(conn, what).await,
        }
    }

    /// Give back every lease this worker holds, in one store statement
    /// ([`Engine::release_leases`]): its running jobs go back to pending, runnable at
    /// once, keeping the claim's attempt (a step cut short may have made its write:
    /// the next claim is a retry, and a push reads back before it sends), the passes
    /// it took and did not finish keep their due time. Returns how many.
    pub(crate) async fn give_back_leases(&self) -> Result<usize, EngineError> {
        let released = self.release_leases().await?;
        Ok(released.jobs.len() + released.schedules.len())
    }

    /// One scheduled pass other than the recheck/follow, when due.
    async fn scheduled_pass(&self, conn: &Connection, what: Scheduled) -> Result<Option<TickReport>, EngineError> {
        let Some(lease) = self.take_schedule(conn, what, false).await? else { return Ok(None) };
        let mut report = TickReport::default();
        let result = match what {
            Scheduled::ErpPoll => flows::release::poll(self, conn).await.map(|r| report.poll.add(&r)),
            Scheduled::ShipmentPoll => flows::shipments::poll(self, conn).await.map(|r| report.shipments.add(&r)),
            Scheduled::ScanSweep => flows::shipments::scans(self, conn).await.map(|r| report.shipments.add(&r)),
            Scheduled::FxConvert => flows::fx::convert(self, conn).await.map(|_| ()),
            Scheduled::CostBatches => flows::journals::plan(self, conn, None).await.map(|r| report.journals.add(&r)),
            Scheduled::Monitors => async {
                flows::monitors::run(self, conn).await?;
                flows::unknown_jobs::run(self, conn).await.map(|_| ())
            }
            .await,
            Scheduled::Reconcile => Box::pin(flows::reconcile::scheduled(self, conn)).await.map(|_| ()),
            Scheduled::Recheck | Scheduled::Follow => unreachable!("the recheck and follow run through recheck_or_follow"),
        };
        self.finish_schedule_with(conn, lease, &result).await?;
        result.map(|()| Some(report))
    }

    /// The recheck when due; otherwise the follow of what changed since the last
    /// recheck or follow, when due.
    async fn recheck_or_follow(&self, conn: &Connection) -> Result<Option<TickReport>, EngineError> {
        let mut report = TickReport::default();
        if let Some(lease) = self.take_schedule(conn, Scheduled::Recheck, false).await? {
            let started = lease.started_at;
            let result = flows::recheck::run(self, conn).await;
            self.finish_schedule_with(conn, lease, &result).await?;
            report.recheck.add(&result?);
            // A full recheck also covers what a follow would have read.
            self.record_schedule_success(conn, Scheduled::Follow, started).await?;
            return Ok(Some(report));
        }
        let Some(lease) = self.take_schedule(conn, Scheduled::Follow, false).await? else { return Ok(None) };
        // Only once a recheck or follow has worked is there a "since" to follow from.
        let Some(since) = lease.last_success else {
            let nothing_to_follow_from: Result<(), EngineError> =
                Err(EngineError::Setup("no recheck or follow has worked yet, so there is nothing to follow from".into()));
            self.finish_schedule_with(conn, lease, &nothing_to_follow_from).await?;
            return Ok(None);
        };
        let result = flows::recheck::follow(self, conn, since).await;
        self.finish_schedule_with(conn, lease, &result).await?;
        report.recheck.add(&result?);
        Ok(Some(report))
    }

    /// The tick's pass over one connection: the ERP poll and the follow are brought
    /// forward to now ([`Engine::hasten_now`], so the ERP is always read), then every
    /// pass that is due runs: the ERP poll, the recheck (a follow of what changed
    /// otherwise), the shipment poll and scan sweep, every job kind until none is
    /// runnable ([`flows::run_jobs`]), then the monitors. A pass that fails is logged
    /// and the rest still run; the first failure is returned.
    pub(crate) async fn tick_connection(&self, conn: &Connection, report: &mut TickReport) -> Result<(), EngineError> {
        let mut first_error: Option<EngineError> = None;
        let mut note = |what: &str, outcome: Result<Option<TickReport>, EngineError>, report: &mut TickReport| match outcome {
            Ok(Some(r)) => report.add(&r),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(connection = %conn.name, error = %e, "{what} failed; will retry");
                first_error.get_or_insert(e);
            }
        };
        let passes = [
            (Scheduled::ErpPoll, "reading the ERP"),
            (Scheduled::Recheck, "reading held and released orders again"),
            (Scheduled::ShipmentPoll, "reading shipments"),
            (Scheduled::ScanSweep, "sweeping labels for carrier scans"),
        ];
        if let Err(e) = self.hasten_now(conn, &[Scheduled::ErpPoll, Scheduled::Follow]).await {
            note("bringing the ERP poll forward", Err(e), report);
        }
        for (what, doing) in passes {
            note(doing, self.do_work(conn, Work::Pass(what)).await, report);
        }
        // Every job kind, each through its handler: a kind added to the store's
        // `jobs!` list runs here without another line, and one kind's failure does
        // not keep the others from running.
        for kind in JobKind::ALL {
            let outcome = flows::run_jobs(self, conn, *kind)
                .await
                .map(|run| Some(TickReport { push: run.push, shipments: run.shipments, journals: run.journals, ..TickReport::default() }));
            note(&format!("running {kind} jobs"), outcome, report);
        }
        // Costs the jobs above recorded are converted in the same tick.
        note("converting cost entries to the base currency", self.do_work(conn, Work::Pass(Scheduled::FxConvert)).await, report);
        // Batches that became due are planned and posted in the same tick too.
        note("planning cost batches", self.do_work(conn, Work::Pass(Scheduled::CostBatches)).await, report);
        let posted = flows::run_jobs(self, conn, JobKind::PostJournal)
            .await
            .map(|run| Some(TickReport { journals: run.journals, ..TickReport::default() }));
        note("posting cost journals", posted, report);
        note("checking for overdue work", self.do_work(conn, Work::Pass(Scheduled::Monitors)).await, report);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Run every lane of every connection until `stop` turns true (or its sender is
    /// dropped), then drain: stop claiming, give the steps in flight [`DRAIN_GRACE`]
    /// to finish, cancel the rest, give back every lease this worker holds, return.
    ///
    /// One task per (connection, lane), each looping [`Engine::try_execute_one`]; at
    /// most [`LaneLimits`] steps of a lane kind run at once across connections. An
    /// idle lane sleeps until its next pass is due, at most [`IDLE_CAP`], or until
    /// [`Engine::waker`] is signalled. A failing lane logs (connection, lane, error)
    /// and backs off; the others go on. A lane task that panics is logged and started
    /// again.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let permits: HashMap<Lane, Arc<Semaphore>> =
            Lane::ALL.iter().map(|lane| (*lane, Arc::new(Semaphore::new(self.lane_limits.of(*lane).max(1))))).collect();
        let mut tasks = JoinSet::new();
        let mut which = HashMap::new();
        let lane_stop = stop.clone();
        let spawn = |tasks: &mut JoinSet<()>, which: &mut HashMap<tokio::task::Id, (usize, Lane)>, index: usize, lane: Lane| {
            let handle = tasks.spawn(lane_loop(self.clone(), index, lane, permits[&lane].clone(), lane_stop.clone()));
            which.insert(handle.id(), (index, lane));
        };
        for index in 0..self.connections.len() {
            for lane in Lane::ALL {
                spawn(&mut tasks, &mut which, index, *lane);
            }
        }
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                Some(ended) = tasks.join_next_with_id() => {
                    let id = match &ended { Ok((id, ())) => *id, Err(e) => e.id() };
                    let Some((index, lane)) = which.remove(&id) else { continue };
                    if *lane_stop.borrow() {
                        continue;
                    }
                    if let Err(e) = ended {
                        tracing::error!(connection = %self.connections[index].name, lane = %lane, error = %e, "a lane task ended; starting it again");
                    }
                    spawn(&mut tasks, &mut which, index, lane);
                }
            }
        }
        let drained = tokio::time::timeout(DRAIN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::info!(steps = tasks.len(), "stopping: cancelling the steps still in flight; their work runs again");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        match self.give_back_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(leases = n, "stopping: gave back the leases of unfinished work"),
            Err(e) => tracing::warn!(error = %e, "stopping: could not give every lease back; they expire by themselves"),
        }
    }
}

/// The permit of the lane step running on this task, and the semaphore it came from.
struct LanePermit {
    permits: Arc<Semaphore>,
    /// `None` while lent back (the step waits for a rate budget).
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

tokio::task_local! {
    /// Set by [`lane_loop`] around each step, so that a wait deep inside a
    /// ShipStation call can lend the step's permit back.
    static LANE_PERMIT: LanePermit;
}

/// The step on this task is about to wait (its rate budget is spent): give its
/// lane's permit back, so other connections' steps of the lane kind run meanwhile.
/// Nothing outside a lane step (a tick, a test calling a flow).
pub(crate) fn lend_permit() {
    let lent = LANE_PERMIT.try_with(|p| p.held.lock().expect("lane permit lock").take()).ok().flatten();
    if lent.is_some() {
        tracing::trace!("lane permit lent back while waiting for a rate budget");
    }
}

/// Take the lane's permit again if this task's step lent it ([`lend_permit`]), waiting
/// for one to be free: a request is sent only under a permit. Nothing outside a lane
/// step, or when the permit is held.
pub(crate) async fn reclaim_permit() {
    let lent = LANE_PERMIT
        .try_with(|p| p.held.lock().expect("lane permit lock").is_none().then(|| p.permits.clone()))
        .ok()
        .flatten();
    let Some(permits) = lent else { return };
    // Closed only when the engine's run is gone; the step is then cancelled anyway.
    if let Ok(permit) = permits.acquire_owned().await {
        let _ = LANE_PERMIT.try_with(|p| p.held.lock().expect("lane permit lock").replace(permit));
    }
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// One (connection, lane) until stopped: a permit, one step (lending the permit back
/// while it waits for a rate budget), then straight on after work, a sleep when idle,
/// a backoff after a failure. A step in flight is not
/// interrupted by the stop signal (the drain cancels it after its grace).
async fn lane_loop(engine: Arc<Engine>, index: usize, lane: Lane, permits: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
    let conn = &engine.connections[index];
    let wake = engine.waker();
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        // Registered before the step, so a wake-up that comes while the step finds
        // nothing (a webhook stored just after its empty claim) is not lost: a
        // `Notified` receives `notify_waiters` from the moment it is created.
        let woken = wake.notified();
        // The permit is the step's, task-local, so a rate-budget wait lends it back;
        // whatever it holds at the end is given back with the scope.
        let held = LanePermit { permits: permits.clone(), held: Mutex::new(Some(permit)) };
        let outcome = LANE_PERMIT.scope(held, engine.try_execute_one(conn, lane)).await;
        // Pacing, not time semantics: the lane waits on tokio's real timer, never on
        // the injected clock (a `ManualClock`'s sleep returns at once, so pacing on it
        // would spin). What is due is decided from `engine.clock`.
        let wait = match outcome {
            Ok(Step::Worked(report)) => {
                failures = 0;
                if report.busy() {
                    tracing::debug!(connection = %conn.name, lane = %lane, ?report, "lane step");
                }
                tokio::task::yield_now().await;
                continue;
            }
            Ok(Step::Idle { next_due }) => {
                failures = 0;
                idle_wait(engine.clock.now(), next_due)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = LANE_BACKOFF.backoff(failures, rand::random());
                tracing::warn!(
                    connection = %conn.name, lane = %lane, error = %e, failures, backoff_ms = wait.as_millis() as u64,
                    "lane step failed; backing off"
                );
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = woken => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Would taking this pass at `now` get it: due (or never taken) and no live lease
/// holds it? Only then is the take (a write) worth trying; the take itself decides.
fn takeable(record: Option<&ScheduleRecord>, now: Timestamp) -> bool {
    record.is_none_or(|r| {
        let due = r.next_due_at.is_none_or(|d| d <= now);
        let held = r.lease_token.is_some() && r.lease_until.is_some_and(|until| until > now);
        due && !held
    })
}

/// How long an idle lane sleeps: until its next pass is due, at most [`IDLE_CAP`]; a
/// due time already past (another worker holds the pass) or unknown waits the cap.
fn idle_wait(now: Timestamp, next_due: Option<Timestamp>) -> Duration {
    next_due
        .map(|due| due.duration_since(now))
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .map_or(IDLE_CAP, |d| d.min(IDLE_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_kind_and_pass_has_one_lane_and_each_lane_has_work() {
        for kind in JobKind::ALL {
            assert_eq!(Lane::ALL.iter().filter(|l| l.job_kinds().any(|k| k == *kind)).count(), 1, "{kind}");
        }
        for pass in Scheduled::ALL {
            assert_eq!(Lane::ALL.iter().filter(|l| l.passes().any(|p| p == *pass)).count(), 1, "{pass}");
        }
        for lane in Lane::ALL {
            assert!(!lane.work().is_empty(), "{lane} has nothing to do");
        }
        assert_eq!(
            Lane::ShipStationV1.work(),
            vec![Work::Pass(Scheduled::ShipmentPoll), Work::Jobs(JobKind::SyncOrder), Work::Jobs(JobKind::IngestV1Webhook)]
        );
        assert_eq!(
            Lane::ErpReads.work(),
            vec![Work::Pass(Scheduled::ErpPoll), Work::Pass(Scheduled::Recheck), Work::Pass(Scheduled::FxConvert), Work::Pass(Scheduled::CostBatches)]
        );
        assert_eq!(Lane::ErpWrites.work(), vec![Work::Jobs(JobKind::WriteFulfilment), Work::Jobs(JobKind::PostJournal)]);
    }

    #[test]
    fn an_idle_lane_sleeps_until_its_next_pass_at_most_the_cap() {
        let now = Timestamp::from_second(1_790_000_000).unwrap();
        let soon = now + jiff::SignedDuration::from_millis(300);
        let later = now + jiff::SignedDuration::from_secs(60);
        let past = now - jiff::SignedDuration::from_secs(5);
        assert_eq!(idle_wait(now, Some(soon)), Duration::from_millis(300));
        assert_eq!(idle_wait(now, Some(later)), IDLE_CAP);
        assert_eq!(idle_wait(now, Some(past)), IDLE_CAP);
        assert_eq!(idle_wait(now, None), IDLE_CAP);
    }
}
