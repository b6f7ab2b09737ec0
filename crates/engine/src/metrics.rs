//! shipledger's own state as Prometheus metrics: the process-wide recorder
//! ([`recorder`]) and the [`MeteredStore`], a decorator around the store that keeps
//! the gauges of jobs and open exceptions as its commits change them, so that no
//! scrape ever reads the store.
//!
//! | series | labels | kept by |
//! | --- | --- | --- |
//! | `shipledger_exceptions_open` | connection, kind, owner | every commit that opens or closes exceptions, every `act_on_exception` that ends one; re-seeded from one grouped count every [`RESEED_EXCEPTIONS_EVERY`] |
//! | `shipledger_jobs` | connection, kind, state (`pending`, `running`) | jobs planned, claimed, retried and finished through this store; refreshed from one grouped count every few seconds |
//! | `shipledger_job_oldest_pending_age_seconds` | connection, kind | the refresh: how long the most overdue pending job has been due (0 when none is) |
//! | `shipledger_orders` | connection, state | the refresh: one grouped count per connection |
//! | `shipledger_jobs_finished_total` | connection, kind, state (`done`, `dead`) | every commit that finishes a job |
//! | `shipledger_job_retries_total` | connection, kind | every job put back for a later attempt |
//!
//! Several processes may share one PostgreSQL store, and each sees only its own
//! commits: the periodic refresh ([`MeteredStore::run_refresh`]) sets every gauge
//! from the database again, so each process's gauges converge with what the others
//! did within one refresh. Between refreshes a gauge is this process's best
//! knowledge, never a scrape-time query.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::metrics as names;
use shipledger_store::{
    Attempt, BoxFuture, Change, CommitOutcome, EventRecord, ExceptionAct, ExceptionActed, ExceptionAudit, ExceptionAuditFilter, ExceptionFilter, ExceptionRecord, Job, JobClaim,
    JobFilter, JobState, JobStats, OpenExceptions, OrderFilter, OrderLineRecord, OrderRecord, OrderState, ReleasedLeases, Result,
    ScheduleFinish, ScheduleRecord, ScheduleTake, ShipmentFilter, ShipmentRecord, Store, StoreError, TimelineEntry,
};
use tokio::sync::watch;

pub const EXCEPTIONS_OPEN: &str = "shipledger_exceptions_open";
pub const JOBS: &str = "shipledger_jobs";
pub const JOB_OLDEST_PENDING_AGE: &str = "shipledger_job_oldest_pending_age_seconds";
pub const ORDERS: &str = "shipledger_orders";
pub const JOBS_FINISHED: &str = "shipledger_jobs_finished_total";
pub const JOB_RETRIES: &str = "shipledger_job_retries_total";

/// How often [`MeteredStore::run_refresh`] counts the open exceptions again.
pub const RESEED_EXCEPTIONS_EVERY: Duration = Duration::from_secs(60);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use; `/metrics` renders its
/// handle. The `metrics` facade allows one global recorder per process, so this is
/// install-once: every later call (another server in the same test, the CLI after
/// the store) gets the same handle.
///
/// Why this exporter: it is the `metrics` crate's own Prometheus renderer, so every
/// crate records through the facade and only this function knows Prometheus. It is
/// built without its HTTP listener (shipledger's server already serves `/metrics`),
/// and request latencies are real histograms with [`names::LATENCY_BUCKETS`]
/// (aggregatable across processes, unlike summaries).
pub fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(names::EXTERNAL_REQUEST_DURATION.to_string()), names::LATENCY_BUCKETS)
            .expect("the latency buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will show nothing");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::EXTERNAL_REQUESTS, "Requests sent to external systems, by system, endpoint, method and status.");
    describe_histogram!(names::EXTERNAL_REQUEST_DURATION, metrics::Unit::Seconds, "Latency of requests to external systems.");
    describe_counter!(names::EXTERNAL_RATE_LIMITED, "Requests answered 429 (rate limited), by system and endpoint.");
    describe_counter!(names::EXTERNAL_RETRIES, "Requests a client sent again after a failure, by system and endpoint.");
    describe_gauge!(names::RATE_BUDGET_REMAINING, "Requests left in the current rate window of an API key (by fingerprint).");
    describe_gauge!(EXCEPTIONS_OPEN, "Open exceptions by connection, kind and owner.");
    describe_gauge!(JOBS, "Outbox jobs pending or running, by connection and kind.");
    describe_gauge!(JOB_OLDEST_PENDING_AGE, metrics::Unit::Seconds, "How long the most overdue pending job of a kind has been due.");
    describe_gauge!(ORDERS, "Orders by connection and shipledger state.");
    describe_counter!(JOBS_FINISHED, "Outbox jobs finished, by connection, kind and final state.");
    describe_counter!(JOB_RETRIES, "Outbox jobs put back for a later attempt, by connection and kind.");
}

/// What the gauges say, kept here so that each change adjusts one number and the
/// refresh can set them all again (a group that disappeared is set to 0).
#[derive(Debug, Default)]
struct Gauges {
    exceptions: BTreeMap<(String, ExceptionKind), u64>,
    /// `(connection, kind, state)`, state `pending` or `running`.
    jobs: BTreeMap<(String, String, JobState), u64>,
    oldest_pending: BTreeMap<(String, String), f64>,
    orders: BTreeMap<(String, OrderState), u64>,
}

fn publish_exception(key: &(String, ExceptionKind), n: u64) {
    let (connection, kind) = key;
    metrics::gauge!(EXCEPTIONS_OPEN, "connection" => connection.clone(), "kind" => kind.code(), "owner" => kind.owner().to_string())
        .set(n as f64);
}

fn publish_job(key: &(String, String, JobState), n: u64) {
    let (connection, kind, state) = key;
    metrics::gauge!(JOBS, "connection" => connection.clone(), "kind" => kind.clone(), "state" => state.as_str()).set(n as f64);
}

impl Gauges {
    fn exception(&mut self, connection: &str, kind: ExceptionKind, opened: bool) {
        let key = (connection.to_string(), kind);
        let n = self.exceptions.entry(key.clone()).or_default();
        *n = if opened { *n + 1 } else { n.saturating_sub(1) };
        publish_exception(&key, *n);
    }

    fn job(&mut self, connection: &str, kind: &str, state: JobState, up: bool) {
        let key = (connection.to_string(), kind.to_string(), state);
        let n = self.jobs.entry(key.clone()).or_default();
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
        publish_job(&key, *n);
    }

    fn seed_exceptions(&mut self, open: &[OpenExceptions]) {
        let mut next: BTreeMap<(String, ExceptionKind), u64> = self.exceptions.keys().map(|k| (k.clone(), 0)).collect();
        for o in open {
            next.insert((o.connection.clone(), o.kind), o.count);
        }
        for (key, n) in &next {
            publish_exception(key, *n);
        }
        self.exceptions = next;
    }

    fn seed_jobs(&mut self, stats: &[JobStats], now: Timestamp) {
        let mut jobs: BTreeMap<(String, String, JobState), u64> = self.jobs.keys().map(|k| (k.clone(), 0)).collect();
        let mut oldest: BTreeMap<(String, String), f64> = self.oldest_pending.keys().map(|k| (k.clone(), 0.0)).collect();
        for s in stats {
            jobs.insert((s.connection.clone(), s.kind.clone(), s.state), s.count);
            if s.state == JobState::Pending {
                let overdue = s.earliest_run_at.map(|t| now.duration_since(t).as_secs_f64().max(0.0)).unwrap_or(0.0);
                oldest.insert((s.connection.clone(), s.kind.clone()), overdue);
            }
        }
        // Every kind with jobs gauges has an age, 0 while none of its jobs is overdue.
        for (connection, kind, _) in jobs.keys() {
            oldest.entry((connection.clone(), kind.clone())).or_insert(0.0);
        }
        for (key, n) in &jobs {
            publish_job(key, *n);
        }
        for ((connection, kind), age) in &oldest {
            metrics::gauge!(JOB_OLDEST_PENDING_AGE, "connection" => connection.clone(), "kind" => kind.clone()).set(*age);
        }
        self.jobs = jobs;
        self.oldest_pending = oldest;
    }

    fn seed_orders(&mut self, connection: &str, counts: &[(OrderState, u64)]) {
        for state in OrderState::ALL {
            let key = (connection.to_string(), *state);
            let n = counts.iter().find(|(s, _)| s == state).map(|(_, n)| *n);
            // States never seen on the connection stay absent; a state seen once
            // reports 0 when its orders move on.
            let Some(n) = n.or_else(|| self.orders.contains_key(&key).then_some(0)) else { continue };
            metrics::gauge!(ORDERS, "connection" => connection.to_string(), "state" => state.as_str()).set(n as f64);
            self.orders.insert(key, n);
        }
    }
}

/// A [`Store`] that forwards every call to the store it wraps and keeps the job and
/// open-exception gauges as the calls change them (see the module docs). Wrap the
/// store once, where the process is wired, and hand the wrapper to the engine and
/// the server alike.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    gauges: Mutex<Gauges>,
    /// Jobs claimed through this store and not yet finished: their connection and
    /// kind, for the counters of retried and finished jobs.
    claimed: Mutex<HashMap<i64, (String, String)>>,
}

impl MeteredStore {
    /// Wrap `inner` and seed the gauges from its grouped counts (the process's
    /// recorder is installed first, so the seeds are not lost).
    pub async fn wrap(inner: Arc<dyn Store>) -> Result<Arc<MeteredStore>> {
        recorder();
        let store = Arc::new(MeteredStore { inner, gauges: Mutex::default(), claimed: Mutex::default() });
        store.reseed_exceptions().await?;
        store.refresh(&[]).await?;
        Ok(store)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn gauges(&self) -> std::sync::MutexGuard<'_, Gauges> {
        self.gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Set the open-exception gauges from one grouped count of the store.
    pub async fn reseed_exceptions(&self) -> Result<()> {
        let open = self.inner.count_open_exceptions().await?;
        self.gauges().seed_exceptions(&open);
        Ok(())
    }

    /// Set the job gauges from one grouped count of the store, and the order gauges
    /// of `connections` from one grouped count each.
    pub async fn refresh(&self, connections: &[String]) -> Result<()> {
        let stats = self.inner.job_stats().await?;
        let mut orders = Vec::new();
        for c in connections {
            orders.push((c, self.inner.count_orders_by_state(c).await?));
        }
        let mut gauges = self.gauges();
        gauges.seed_jobs(&stats, Timestamp::now());
        for (c, counts) in orders {
            gauges.seed_orders(c, &counts);
        }
        Ok(())
    }

    /// Refresh the gauges every `every` (and the open exceptions every
    /// [`RESEED_EXCEPTIONS_EVERY`]) until `stop` turns true; also the exporter's
    /// upkeep (histogram samples folded in). A failed refresh is logged and tried
    /// again next time.
    pub async fn run_refresh(self: Arc<Self>, connections: Vec<String>, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut reseeded = Instant::now();
        loop {
            if let Err(e) = self.refresh(&connections).await {
                tracing::warn!(error = %e, "could not refresh the job and order gauges; trying again");
            }
            if reseeded.elapsed() >= RESEED_EXCEPTIONS_EVERY {
                match self.reseed_exceptions().await {
                    Ok(()) => reseeded = Instant::now(),
                    Err(e) => tracing::warn!(error = %e, "could not count the open exceptions again; trying again"),
                }
            }
            recorder().run_upkeep();
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// The open exceptions as the gauges count them, per (connection, kind).
    pub fn open_exceptions(&self) -> BTreeMap<(String, ExceptionKind), u64> {
        self.gauges().exceptions.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (k.clone(), *n)).collect()
    }

    /// The pending and running jobs as the gauges count them, per (connection, kind, state).
    pub fn jobs(&self) -> BTreeMap<(String, String, JobState), u64> {
        self.gauges().jobs.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (k.clone(), *n)).collect()
    }

    /// The connection and kind of a job this store claimed (or, failing that, as
    /// the store has it).
    async fn job_kind(&self, job_id: i64) -> Option<(String, String)> {
        let known = self.claimed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&job_id);
        match known {
            Some(k) => Some(k),
            None => self.inner.get_job(job_id).await.ok().flatten().map(|j| { let kind = j.kind().to_string(); (j.connection, kind) }),
        }
    }

    async fn metered_commit(&self, change: Change) -> Result<CommitOutcome> {
        let meta = CommitMeta::of(&change);
        let result = self.inner.commit(change).await;
        self.counted(meta, result).await
    }

    /// A group commit counted as its changes would be one by one: all of it or, when
    /// it failed, none of it.
    async fn metered_commit_batch(&self, changes: &[Change]) -> Result<Vec<CommitOutcome>> {
        let metas: Vec<CommitMeta> = changes.iter().map(CommitMeta::of).collect();
        let outcomes = self.inner.commit_batch(changes).await?;
        let mut counted = Vec::with_capacity(outcomes.len());
        for (meta, outcome) in metas.into_iter().zip(outcomes) {
            counted.push(self.counted(meta, Ok(outcome)).await?);
        }
        Ok(counted)
    }

    /// Update the gauges and counters for a commit's result.
    async fn counted(&self, meta: CommitMeta, result: Result<CommitOutcome>) -> Result<CommitOutcome> {
        let CommitMeta { connection, planned, finish } = meta;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                if let (Some((job_id, _)), StoreError::LeaseLost { .. }) = (finish, &e) {
                    self.claimed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&job_id);
                }
                return Err(e);
            }
        };
        let finished = match finish {
            Some((job_id, state)) => self.job_kind(job_id).await.map(|k| (k, state)),
            None => None,
        };
        let mut gauges = self.gauges();
        for kind in &outcome.opened_kinds {
            gauges.exception(&connection, *kind, true);
        }
        for kind in &outcome.closed_kinds {
            gauges.exception(&connection, *kind, false);
        }
        for (kind, key) in &planned {
            if !outcome.jobs_skipped.contains(key) {
                gauges.job(&connection, kind, JobState::Pending, true);
            }
        }
        if let Some(((job_connection, kind), state)) = finished {
            gauges.job(&job_connection, &kind, JobState::Running, false);
            metrics::counter!(JOBS_FINISHED, "connection" => job_connection, "kind" => kind, "state" => state.as_str()).increment(1);
        }
        Ok(outcome)
    }

    async fn metered_claim(&self, claim: JobClaim<'_>) -> Result<Vec<Job>> {
        let jobs = self.inner.claim_jobs(claim).await?;
        if !jobs.is_empty() {
            let mut claimed = self.claimed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut gauges = self.gauges();
            for job in &jobs {
                let kind = job.kind().as_str();
                claimed.insert(job.id, (job.connection.clone(), kind.to_string()));
                gauges.job(&job.connection, kind, JobState::Pending, false);
                gauges.job(&job.connection, kind, JobState::Running, true);
            }
        }
        Ok(jobs)
    }

    async fn metered_retry(&self, job_id: i64, lease_token: &str, next_run_at: Timestamp, error: &str, attempt: Attempt, now: Timestamp) -> Result<()> {
        let result = self.inner.retry_job(job_id, lease_token, next_run_at, error, attempt, now).await;
        let kind = self.job_kind(job_id).await;
        if let (Ok(()), Some((connection, kind))) = (&result, kind) {
            let mut gauges = self.gauges();
            gauges.job(&connection, &kind, JobState::Running, false);
            gauges.job(&connection, &kind, JobState::Pending, true);
            metrics::counter!(JOB_RETRIES, "connection" => connection, "kind" => kind).increment(1);
        }
        result
    }

    async fn metered_release(&self, worker: &str, now: Timestamp) -> Result<ReleasedLeases> {
        let released = self.inner.release_leases(worker, now).await?;
        if !released.jobs.is_empty() {
            let mut claimed = self.claimed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut gauges = self.gauges();
            for (id, connection, kind) in &released.jobs {
                claimed.remove(id);
                gauges.job(connection, kind, JobState::Running, false);
                gauges.job(connection, kind, JobState::Pending, true);
            }
        }
        Ok(released)
    }

    async fn metered_act(&self, act: ExceptionAct) -> Result<ExceptionActed> {
        // Only a live exception can be acted on, so it was live before.
        let acted = self.inner.act_on_exception(act).await?;
        if !acted.exception.state.is_live() {
            self.gauges().exception(&acted.exception.connection, acted.exception.kind, false);
        }
        Ok(acted)
    }
}

/// What the gauges need to know of a change before it is committed.
struct CommitMeta {
    connection: String,
    planned: Vec<(String, String)>,
    finish: Option<(i64, JobState)>,
}

impl CommitMeta {
    fn of(change: &Change) -> CommitMeta {
        CommitMeta {
            connection: change.connection.clone(),
            planned: change.jobs.iter().map(|j| (j.spec.kind().to_string(), j.idempotency_key.clone())).collect(),
            finish: change.finish_job.as_ref().map(|f| (f.job_id, f.state)),
        }
    }
}

impl Store for MeteredStore {
    fn ensure_connection<'a>(&'a self, name: &'a str, now: Timestamp) -> BoxFuture<'a, Result<()>> {
        self.inner.ensure_connection(name, now)
    }
    fn commit<'a>(&'a self, change: Change) -> BoxFuture<'a, Result<CommitOutcome>> {
        Box::pin(self.metered_commit(change))
    }
    fn commit_batch<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Vec<CommitOutcome>>> {
        Box::pin(self.metered_commit_batch(changes))
    }
    fn count_labels_created<'a>(&'a self, connection: &'a str, from: Timestamp, to: Timestamp) -> BoxFuture<'a, Result<u64>> {
        self.inner.count_labels_created(connection, from, to)
    }
    fn shipment_poll_can_find<'a>(&'a self, connection: &'a str, orders_since: Timestamp, labels_since: Timestamp) -> BoxFuture<'a, Result<bool>> {
        self.inner.shipment_poll_can_find(connection, orders_since, labels_since)
    }
    fn get_order<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>> {
        self.inner.get_order(connection, erp_id)
    }
    fn get_order_by_key<'a>(&'a self, connection: &'a str, order_key: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>> {
        self.inner.get_order_by_key(connection, order_key)
    }
    fn list_orders<'a>(&'a self, filter: OrderFilter) -> BoxFuture<'a, Result<Vec<OrderRecord>>> {
        self.inner.list_orders(filter)
    }
    fn order_lines<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<OrderLineRecord>>> {
        self.inner.order_lines(connection, erp_id)
    }
    fn count_orders_by_state<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(OrderState, u64)>>> {
        self.inner.count_orders_by_state(connection)
    }
    fn claim_jobs<'a>(&'a self, claim: JobClaim<'a>) -> BoxFuture<'a, Result<Vec<Job>>> {
        Box::pin(self.metered_claim(claim))
    }
    fn retry_job<'a>(
        &'a self,
        job_id: i64,
        lease_token: &'a str,
        next_run_at: Timestamp,
        error: &'a str,
        attempt: Attempt,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.metered_retry(job_id, lease_token, next_run_at, error, attempt, now))
    }
    fn get_job<'a>(&'a self, job_id: i64) -> BoxFuture<'a, Result<Option<Job>>> {
        self.inner.get_job(job_id)
    }
    fn list_jobs<'a>(&'a self, filter: JobFilter) -> BoxFuture<'a, Result<Vec<Job>>> {
        self.inner.list_jobs(filter)
    }
    fn count_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(String, JobState, u64)>>> {
        self.inner.count_jobs(connection)
    }
    fn unknown_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<shipledger_store::UnknownJobs>>> {
        self.inner.unknown_jobs(connection)
    }
    fn unreadable_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<shipledger_store::UnknownJobs>>> {
        self.inner.unreadable_jobs(connection)
    }
    fn runnable_jobs<'a>(&'a self, connection: &'a str, kind: shipledger_store::JobKind, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::RunnableJobs>> {
        self.inner.runnable_jobs(connection, kind, now)
    }
    fn job_stats<'a>(&'a self) -> BoxFuture<'a, Result<Vec<JobStats>>> {
        self.inner.job_stats()
    }
    fn get_watermark<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        self.inner.get_watermark(connection, name)
    }
    fn renew_jobs<'a>(&'a self, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<Vec<i64>>> {
        self.inner.renew_jobs(lease_token, lease_until, now)
    }
    fn release_leases<'a>(&'a self, worker: &'a str, now: Timestamp) -> BoxFuture<'a, Result<ReleasedLeases>> {
        Box::pin(self.metered_release(worker, now))
    }
    fn take_schedule<'a>(&'a self, take: ScheduleTake<'a>) -> BoxFuture<'a, Result<Option<ScheduleRecord>>> {
        self.inner.take_schedule(take)
    }
    fn finish_schedule<'a>(&'a self, finish: ScheduleFinish<'a>) -> BoxFuture<'a, Result<()>> {
        self.inner.finish_schedule(finish)
    }
    fn renew_schedule<'a>(&'a self, connection: &'a str, name: &'a str, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<bool>> {
        self.inner.renew_schedule(connection, name, lease_token, lease_until, now)
    }
    fn record_schedule_success<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
        self.inner.record_schedule_success(connection, name, at, now)
    }
    fn hasten_schedule<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
        self.inner.hasten_schedule(connection, name, at, now)
    }
    fn get_schedule<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ScheduleRecord>>> {
        self.inner.get_schedule(connection, name)
    }
    fn list_schedules<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ScheduleRecord>>> {
        self.inner.list_schedules(connection)
    }
    fn timeline<'a>(&'a self, connection: &'a str, record_type: &'a str, record_id: &'a str) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
        self.inner.timeline(connection, record_type, record_id)
    }
    fn order_timeline<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<TimelineEntry>>> {
        self.inner.order_timeline(connection, erp_id)
    }
    fn list_exceptions<'a>(&'a self, filter: ExceptionFilter) -> BoxFuture<'a, Result<Vec<ExceptionRecord>>> {
        self.inner.list_exceptions(filter)
    }
    fn get_exception<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<ExceptionRecord>>> {
        self.inner.get_exception(id)
    }
    fn count_open_exceptions<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OpenExceptions>>> {
        self.inner.count_open_exceptions()
    }
    fn act_on_exception<'a>(&'a self, act: ExceptionAct) -> BoxFuture<'a, Result<ExceptionActed>> {
        Box::pin(self.metered_act(act))
    }
    fn list_exception_audit<'a>(&'a self, filter: ExceptionAuditFilter) -> BoxFuture<'a, Result<Vec<ExceptionAudit>>> {
        self.inner.list_exception_audit(filter)
    }
    fn order_overrides<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<std::collections::BTreeMap<String, String>>> {
        self.inner.order_overrides(connection, erp_id)
    }
    fn create_api_token<'a>(&'a self, token: shipledger_store::NewApiToken, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ApiTokenRecord>> {
        self.inner.create_api_token(token, now)
    }
    fn list_api_tokens<'a>(&'a self) -> BoxFuture<'a, Result<Vec<shipledger_store::ApiTokenRecord>>> {
        self.inner.list_api_tokens()
    }
    fn api_token_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::ApiTokenRecord>>> {
        self.inner.api_token_by_hash(hash)
    }
    fn revoke_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ApiTokenRecord>> {
        self.inner.revoke_api_token(id, now)
    }
    fn touch_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<()>> {
        self.inner.touch_api_token(id, now)
    }
    fn stage_ss_orders<'a>(&'a self, connection: &'a str, orders: &'a [shipledger_store::StagedSsOrder]) -> BoxFuture<'a, Result<()>> {
        self.inner.stage_ss_orders(connection, orders)
    }
    fn stage_ss_merges<'a>(&'a self, connection: &'a str, into: i64, absorbed: &'a [i64], modified_at: Timestamp) -> BoxFuture<'a, Result<()>> {
        self.inner.stage_ss_merges(connection, into, absorbed, modified_at)
    }
    fn stage_ss_shipments<'a>(&'a self, connection: &'a str, shipments: &'a [shipledger_store::StagedSsShipment]) -> BoxFuture<'a, Result<()>> {
        self.inner.stage_ss_shipments(connection, shipments)
    }
    fn stage_erp_orders<'a>(&'a self, connection: &'a str, orders: &'a [shipledger_store::StagedErpOrder]) -> BoxFuture<'a, Result<()>> {
        self.inner.stage_erp_orders(connection, orders)
    }
    fn resolve_recon_keys<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<shipledger_store::ResolvedKeys>> {
        self.inner.resolve_recon_keys(connection)
    }
    fn page_ss_orders<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::StagedSsOrder>>> {
        self.inner.page_ss_orders(connection, after, limit)
    }
    fn page_ss_shipments<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::StagedSsShipment>>> {
        self.inner.page_ss_shipments(connection, after, limit)
    }
    fn page_erp_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::StagedErpOrder>>> {
        self.inner.page_erp_orders(connection, after, limit)
    }
    fn page_ledger_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<(String, shipledger_core::reconcile::LedgerSide)>>> {
        self.inner.page_ledger_orders(connection, after, limit)
    }
    fn start_reconcile_run<'a>(&'a self, connection: &'a str, mode: shipledger_store::ReconcileMode, since: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ReconcileRun>> {
        self.inner.start_reconcile_run(connection, mode, since, now)
    }
    fn finish_reconcile_run<'a>(&'a self, id: i64, state: shipledger_store::ReconcileState, stats: serde_json::Value, error: Option<String>, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ReconcileRun>> {
        self.inner.finish_reconcile_run(id, state, stats, error, now)
    }
    fn abandon_reconcile_runs<'a>(&'a self, connection: &'a str, why: &'a str, now: Timestamp) -> BoxFuture<'a, Result<u64>> {
        self.inner.abandon_reconcile_runs(connection, why, now)
    }
    fn get_reconcile_run<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<shipledger_store::ReconcileRun>>> {
        self.inner.get_reconcile_run(id)
    }
    fn list_reconcile_runs<'a>(&'a self, filter: shipledger_store::ReconcileRunFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::ReconcileRun>>> {
        self.inner.list_reconcile_runs(filter)
    }
    fn add_reconcile_findings<'a>(&'a self, run_id: i64, connection: &'a str, findings: &'a [shipledger_core::reconcile::Finding]) -> BoxFuture<'a, Result<()>> {
        self.inner.add_reconcile_findings(run_id, connection, findings)
    }
    fn list_reconcile_findings<'a>(&'a self, filter: shipledger_store::ReconcileFindingFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::ReconcileFindingRecord>>> {
        self.inner.list_reconcile_findings(filter)
    }
    fn get_shipment<'a>(&'a self, connection: &'a str, shipment_key: &'a str) -> BoxFuture<'a, Result<Option<ShipmentRecord>>> {
        self.inner.get_shipment(connection, shipment_key)
    }
    fn list_cost_entries<'a>(&'a self, filter: shipledger_store::CostEntryFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::CostEntry>>> {
        self.inner.list_cost_entries(filter)
    }
    fn get_cost_entry<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<shipledger_store::CostEntry>>> {
        self.inner.get_cost_entry(id)
    }
    fn get_cost_entry_by_key<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CostEntry>>> {
        self.inner.get_cost_entry_by_key(connection, entry_key)
    }
    fn list_cost_conversions<'a>(&'a self, filter: shipledger_store::CostEntryFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::CostConversion>>> {
        self.inner.list_cost_conversions(filter)
    }
    fn get_cost_conversion<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CostConversion>>> {
        self.inner.get_cost_conversion(connection, entry_key)
    }
    fn get_carrier_invoice<'a>(&'a self, connection: &'a str, carrier: &'a str, number: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CarrierInvoiceRecord>>> {
        self.inner.get_carrier_invoice(connection, carrier, number)
    }
    fn list_carrier_invoices<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<shipledger_store::CarrierInvoiceRecord>>> {
        self.inner.list_carrier_invoices(connection)
    }
    fn list_invoice_charges<'a>(&'a self, filter: shipledger_store::InvoiceChargeFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::InvoiceChargeRecord>>> {
        self.inner.list_invoice_charges(filter)
    }
    fn uninvoiced_labels<'a>(&'a self, connection: &'a str, carrier: &'a str, from: jiff::civil::Date, to: jiff::civil::Date) -> BoxFuture<'a, Result<Vec<shipledger_store::ShipmentRecord>>> {
        self.inner.uninvoiced_labels(connection, carrier, from, to)
    }
    fn list_cost_batches<'a>(&'a self, filter: shipledger_store::CostBatchFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::CostBatchRecord>>> {
        self.inner.list_cost_batches(filter)
    }
    fn get_cost_batch<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CostBatchRecord>>> {
        self.inner.get_cost_batch(connection, batch_key)
    }
    fn cost_batch_members<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Vec<shipledger_store::BatchMember>>> {
        self.inner.cost_batch_members(connection, batch_key)
    }
    fn unconverted_cost_entries<'a>(&'a self, connection: &'a str, after_id: Option<i64>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::CostEntry>>> {
        self.inner.unconverted_cost_entries(connection, after_id, limit)
    }
    fn list_shipments<'a>(&'a self, filter: ShipmentFilter) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>> {
        self.inner.list_shipments(filter)
    }
    fn scans_due<'a>(&'a self, connection: &'a str, now: Timestamp, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::AwaitingScan>>> {
        self.inner.scans_due(connection, now, limit)
    }
    fn scans_awaiting<'a>(&'a self, connection: &'a str, tracking_numbers: &'a [String]) -> BoxFuture<'a, Result<Vec<shipledger_store::AwaitingScan>>> {
        self.inner.scans_awaiting(connection, tracking_numbers)
    }
    fn mark_scans_checked<'a>(&'a self, connection: &'a str, checks: &'a [shipledger_store::ScanCheck]) -> BoxFuture<'a, Result<()>> {
        self.inner.mark_scans_checked(connection, checks)
    }
    fn rate_take<'a>(&'a self, key: &'a str, reserve: u32, now: Timestamp) -> BoxFuture<'a, Result<Option<Timestamp>>> {
        self.inner.rate_take(key, reserve, now)
    }
    fn rate_take_counted<'a>(
        &'a self,
        key: &'a str,
        limit: u32,
        window: jiff::SignedDuration,
        reserve: u32,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Option<Timestamp>>> {
        self.inner.rate_take_counted(key, limit, window, reserve, now)
    }
    fn rate_observe<'a>(&'a self, key: &'a str, limit: u32, remaining: u32, reset_at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
        self.inner.rate_observe(key, limit, remaining, reset_at, now)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shipledger_store::{ExceptionAction, JobFinish, NewJob};

    use super::*;

    const SHOP: &str = "acme-uk";

    async fn metered() -> Arc<MeteredStore> {
        let inner: Arc<dyn Store> = shipledger_store::open("sqlite::memory:").await.unwrap();
        inner.ensure_connection(SHOP, Timestamp::now()).await.unwrap();
        MeteredStore::wrap(inner).await.unwrap()
    }

    /// A push job due at `run_at`: the claim's own clock, so a claim at that instant finds it.
    fn job(erp_id: &str, key: &str, run_at: Timestamp) -> NewJob {
        NewJob::new(shipledger_store::SyncOrder { erp_id: erp_id.into(), hash: "h".into() }, key, run_at)
    }

    /// What the store itself says is open, per (connection, kind).
    async fn open_in_store(store: &MeteredStore) -> BTreeMap<(String, ExceptionKind), u64> {
        store.inner().count_open_exceptions().await.unwrap().into_iter().map(|o| ((o.connection, o.kind), o.count)).collect()
    }

    #[tokio::test]
    async fn holding_two_unpaid_orders_and_paying_one_moves_the_finance_gauge_as_it_commits() {
        let store = metered().await;
        let mut hold = Change::new(SHOP, Timestamp::now());
        hold.raise(ExceptionKind::HeldUnpaid, "order", "SO-1", json!({}));
        hold.raise(ExceptionKind::HeldUnpaid, "order", "SO-2", json!({}));
        store.commit(hold).await.unwrap();
        let two = BTreeMap::from([((SHOP.to_string(), ExceptionKind::HeldUnpaid), 2)]);
        assert_eq!(store.open_exceptions(), two);

        // Seen unpaid again: the same exception refreshed, not a third one.
        let mut again = Change::new(SHOP, Timestamp::now());
        again.raise(ExceptionKind::HeldUnpaid, "order", "SO-1", json!({}));
        store.commit(again).await.unwrap();
        assert_eq!(store.open_exceptions(), two);

        // SO-1 is paid: its exception closes.
        let mut paid = Change::new(SHOP, Timestamp::now());
        paid.clear(ExceptionKind::HeldUnpaid, "order", "SO-1");
        store.commit(paid).await.unwrap();
        assert_eq!(store.open_exceptions(), BTreeMap::from([((SHOP.to_string(), ExceptionKind::HeldUnpaid), 1)]));
        assert_eq!(store.open_exceptions(), open_in_store(&store).await);
    }

    #[tokio::test]
    async fn an_acknowledged_exception_still_counts_and_a_resolved_one_no_longer_does() {
        let store = metered().await;
        let mut hold = Change::new(SHOP, Timestamp::now());
        hold.raise(ExceptionKind::HeldMissingWeight, "order", "SO-7", json!({}));
        let id = store.commit(hold).await.unwrap().exceptions_opened[0];
        let act = |action, note: Option<&str>| ExceptionAct {
            id,
            action,
            actor: "cli:ops".into(),
            note: note.map(str::to_string),
            at: Timestamp::now(),
        };
        let held = BTreeMap::from([((SHOP.to_string(), ExceptionKind::HeldMissingWeight), 1)]);

        store.act_on_exception(act(ExceptionAction::Acknowledge, None)).await.unwrap();
        assert_eq!(store.open_exceptions(), held, "acknowledged is still live");
        store.act_on_exception(act(ExceptionAction::Resolve, Some("weighed by hand"))).await.unwrap();
        assert_eq!(store.open_exceptions(), BTreeMap::new());
        // Ignoring it after that is refused and moves nothing.
        assert!(store.act_on_exception(act(ExceptionAction::Ignore, Some("never mind"))).await.is_err());
        assert_eq!(store.open_exceptions(), BTreeMap::new());
        assert_eq!(store.open_exceptions(), open_in_store(&store).await);
    }

    #[tokio::test]
    async fn exceptions_another_process_opened_are_counted_at_the_next_reseed() {
        let store = metered().await;
        // Another process commits to the same database, past this process's wrapper.
        let mut elsewhere = Change::new(SHOP, Timestamp::now());
        elsewhere.raise(ExceptionKind::HeldUnknownSku, "order", "SO-9", json!({}));
        elsewhere.raise(ExceptionKind::HeldUnpaid, "order", "SO-9", json!({}));
        store.inner().commit(elsewhere).await.unwrap();
        assert_eq!(store.open_exceptions(), BTreeMap::new(), "nothing this process saw");

        store.reseed_exceptions().await.unwrap();
        assert_eq!(store.open_exceptions(), open_in_store(&store).await);
        assert_eq!(store.open_exceptions().len(), 2);
    }

    #[tokio::test]
    async fn a_job_is_pending_when_planned_running_when_claimed_and_gone_when_finished() {
        let store = metered().await;
        let now = Timestamp::now();
        let mut plan = Change::new(SHOP, now);
        plan.jobs = vec![job("SO-1", "sync:SO-1", now), job("SO-2", "sync:SO-2", now)];
        store.commit(plan).await.unwrap();
        // Planned again (the same keys): skipped, not counted twice.
        let mut again = Change::new(SHOP, now);
        again.jobs = vec![job("SO-1", "sync:SO-1", now)];
        store.commit(again).await.unwrap();
        let pending = |n| ((SHOP.to_string(), shipledger_store::JobKind::SyncOrder.as_str().to_string(), JobState::Pending), n);
        let running = |n| ((SHOP.to_string(), shipledger_store::JobKind::SyncOrder.as_str().to_string(), JobState::Running), n);
        assert_eq!(store.jobs(), BTreeMap::from([pending(2)]));

        let claim = JobClaim { kind: shipledger_store::JobKind::SyncOrder, connection: Some(SHOP), now, lease: jiff::SignedDuration::from_secs(30), limit: 1, worker: "t" };
        let claimed = store.claim_jobs(claim.clone()).await.unwrap();
        assert_eq!(store.jobs(), BTreeMap::from([pending(1), running(1)]));

        // ShipStation was down: back for a later attempt.
        let token = claimed[0].lease_token.clone().unwrap();
        store.retry_job(claimed[0].id, &token, now, "ShipStation answered 503", Attempt::Counted, now).await.unwrap();
        assert_eq!(store.jobs(), BTreeMap::from([pending(2)]));

        let claimed = store.claim_jobs(JobClaim { limit: 2, ..claim }).await.unwrap();
        assert_eq!(store.jobs(), BTreeMap::from([running(2)]));
        let mut done = Change::new(SHOP, now);
        done.finish_job = Some(JobFinish { job_id: claimed[0].id, lease_token: claimed[0].lease_token.clone().unwrap(), state: JobState::Done, error: None });
        store.commit(done).await.unwrap();
        assert_eq!(store.jobs(), BTreeMap::from([running(1)]));

        // The refresh agrees with what the commits counted.
        store.refresh(&[SHOP.to_string()]).await.unwrap();
        assert_eq!(store.jobs(), BTreeMap::from([running(1)]));
    }

    #[test]
    fn the_oldest_pending_age_is_how_long_the_most_overdue_job_has_waited_and_zero_once_drained() {
        let now: Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        let stats = |state, count, earliest: Option<Timestamp>| JobStats {
            connection: SHOP.into(),
            kind: shipledger_store::JobKind::WriteFulfilment.as_str().into(),
            state,
            count,
            earliest_run_at: earliest,
        };
        let key = (SHOP.to_string(), shipledger_store::JobKind::WriteFulfilment.as_str().to_string());
        let mut gauges = Gauges::default();
        gauges.seed_jobs(&[stats(JobState::Pending, 3, Some(now - jiff::SignedDuration::from_secs(90)))], now);
        assert_eq!(gauges.oldest_pending[&key], 90.0);
        // A retry scheduled for later is not overdue.
        gauges.seed_jobs(&[stats(JobState::Pending, 1, Some(now + jiff::SignedDuration::from_secs(60)))], now);
        assert_eq!(gauges.oldest_pending[&key], 0.0);
        // Drained: the kind's gauges stay, at zero.
        gauges.seed_jobs(&[], now);
        assert_eq!(gauges.oldest_pending[&key], 0.0);
        assert_eq!(gauges.jobs[&(SHOP.to_string(), shipledger_store::JobKind::WriteFulfilment.as_str().to_string(), JobState::Pending)], 0);
    }
}
