//! The job lifecycle: how every outbox job is claimed and how it ends. A handler
//! (one per [`JobKind`], under [`crate::flows`]) does the work; this module is the one
//! place that finishes a job — done, dead (with whatever exception and events the
//! handler's change carries), or put back to run again at a time — and the one place
//! that decides which: the kind's [`RetryPolicy`] (from the connection's policy) over
//! the failure's [`Verdict`] (each error classifies itself; a handler may say
//! otherwise where it knows more), the attempts made and the time since the job was
//! planned. It never matches an error's text.
//!
//! Every handler claims through [`claim_held`]: its jobs stay leased for as long as
//! its step runs, and before each effect not committed with the job it asks whether
//! the job is still its own ([`JobLease::holds`]). Whether to claim yet — or wait for
//! a batch still arriving — is [`still_arriving`], shared by the push (an ERP poll
//! releasing orders) and the webhook hints (a burst of deliveries).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use shipledger_core::clock::Clock;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::retry::{Classify, Decision, GiveUpReason, RetryPolicy, Verdict};
use shipledger_store::{Attempt, Change, Job, JobClaim, JobFinish, JobKind, JobState, RunnableJobs, StoreError};

use crate::schedule::AbortOnDrop;
use crate::{Connection, Engine, EngineError};

/// How long a claimed job is ours before another worker may take it over (a worker
/// that died delays its jobs this long; one that is merely slow may see its jobs
/// redone by another, which idempotency keys make harmless).
pub(crate) const LEASE: SignedDuration = SignedDuration::from_secs(30);

impl Classify for EngineError {
    /// What the underlying error says; a setup problem (a webhook body we cannot
    /// read, a connection that cannot be built) is an admin's.
    fn classify(&self) -> Verdict {
        match self {
            EngineError::Store(e) => e.classify(),
            EngineError::Erp(e) => e.classify(),
            EngineError::ShipStation(e) => e.classify(),
            EngineError::Setup(_) => Verdict::GiveUp { owner: Owner::Admin },
        }
    }
}

/// Lease up to `limit` runnable jobs of `kind` on the connection for [`LEASE`], kept
/// alive for as long as the returned [`JobLease`] lives: every handler claims this
/// way, so a step that outlasts [`LEASE`] (a push of ten batches that waits out rate
/// windows, a hint's poll of a busy day, fifty ERP write-backs to a slow ERP) keeps
/// its jobs. Before each external write (or each effect not committed with the job)
/// for a job the step asks [`JobLease::holds`]; a job whose lease was lost is left to
/// the worker that took it.
pub(crate) async fn claim_held(engine: &Engine, conn: &Connection, kind: JobKind, limit: u32) -> Result<(Vec<Job>, JobLease), EngineError> {
    let jobs = claim(engine, conn, kind, limit).await?;
    let lease = JobLease::renewing(engine, &jobs);
    Ok((jobs, lease))
}

/// The leases of one claim's jobs (they share the claim's token), renewed every
/// [`Engine::renew_every`] by one store statement for all of them
/// ([`Store::renew_jobs`](shipledger_store::Store::renew_jobs)) until the last job is
/// finished or the lease is dropped (the step ended, was cancelled or panicked).
pub(crate) struct JobLease {
    state: Arc<LeaseState>,
    clock: Arc<dyn Clock>,
    _renewal: Option<AbortOnDrop>,
}

struct LeaseState {
    /// Until when the jobs still held are ours (the last renewal's `lease_until`).
    until: Mutex<Timestamp>,
    /// Jobs the last renewal did not find under our token: finished, or taken over.
    gone: Mutex<HashSet<i64>>,
}

impl JobLease {
    fn renewing(engine: &Engine, jobs: &[Job]) -> JobLease {
        let until = jobs.iter().filter_map(|j| j.lease_until).min().unwrap_or_else(|| engine.clock.now());
        let state = Arc::new(LeaseState { until: Mutex::new(until), gone: Mutex::new(HashSet::new()) });
        let token = jobs.first().and_then(|j| j.lease_token.clone());
        let renewal = token.map(|token| {
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            let (store, clock, every, state) = (engine.store.clone(), engine.clock.clone(), engine.renew_every, state.clone());
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let now = clock.now();
                    let until = now.checked_add(LEASE).unwrap_or(Timestamp::MAX);
                    match store.renew_jobs(&token, until, now).await {
                        Ok(held) => {
                            let lost: HashSet<i64> = ids.iter().copied().filter(|id| !held.contains(id)).collect();
                            *state.gone.lock().expect("job lease lock") = lost;
                            *state.until.lock().expect("job lease lock") = until;
                            if held.is_empty() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not renew the leases of claimed jobs; trying again"),
                    }
                }
            }))
        });
        JobLease { state, clock: engine.clock.clone(), _renewal: renewal }
    }

    /// Is `job` still ours to work on? Not when its lease ran out by the clock (the
    /// renewals failed or stalled) or the last renewal found it no longer under our
    /// token (another worker took it over): then no further write is made for it; the
    /// worker that holds it now does the job, idempotently.
    pub(crate) fn holds(&self, job: &Job) -> bool {
        let until = *self.state.until.lock().expect("job lease lock");
        self.clock.now() < until && !self.state.gone.lock().expect("job lease lock").contains(&job.id)
    }

    /// [`JobLease::holds`], logging (as `what` of the connection's `kind` jobs) when
    /// the job is no longer ours and so gets nothing more from this step.
    pub(crate) fn still_holds(&self, conn: &Connection, job: &Job, what: &str) -> bool {
        let held = self.holds(job);
        if !held {
            tracing::info!(
                connection = %conn.name, job = job.id, kind = %job.kind(),
                "{what}: the job's lease was lost (another worker holds it); left to that worker"
            );
        }
        held
    }
}

/// Lease up to `limit` runnable jobs of `kind` on the connection for [`LEASE`]
/// (renewed by [`claim_held`], the only caller).
async fn claim(engine: &Engine, conn: &Connection, kind: JobKind, limit: u32) -> Result<Vec<Job>, EngineError> {
    let now = engine.clock.now();
    // Look before claiming: a claim is a write (on SQLite it takes the one writer),
    // and an idle lane asks every second; counting what is runnable is a read.
    if engine.store.runnable_jobs(&conn.name, kind, now).await?.count == 0 {
        return Ok(Vec::new());
    }
    Ok(engine
        .store
        .claim_jobs(JobClaim { kind, connection: Some(&conn.name), now, lease: LEASE, limit, worker: &engine.worker })
        .await?)
}

/// Claim coalescing: should a step hold off claiming because the jobs it would claim
/// are still arriving? Yes while fewer than a `full` run of them are runnable and
/// what plans them started less than `patience` ago (`planning_since`): claiming
/// now would split one full batch into part-filled ones. Work whose planner has
/// taken longer than `patience`, or that fills a run, is claimed at once.
pub(crate) fn still_arriving(runnable: &RunnableJobs, full: u64, planning_since: Option<Timestamp>, patience: SignedDuration, now: Timestamp) -> bool {
    runnable.count < full && planning_since.is_some_and(|since| now.duration_since(since) < patience)
}

/// The retry policy of a job's kind on this connection.
pub(crate) fn policy(conn: &Connection, job: &Job) -> RetryPolicy {
    conn.policy.retry_policy(job.kind())
}

/// What to do with `job`, whose attempt failed as `verdict`: run again at a time, or
/// give up (to `owner_if_spent` when its attempts or horizon are spent). Jitter's roll
/// is random.
pub(crate) fn decide(engine: &Engine, conn: &Connection, job: &Job, verdict: Verdict, owner_if_spent: Owner) -> Decision {
    let attempts = u32::try_from(job.attempts.max(0)).unwrap_or(u32::MAX);
    policy(conn, job).decide(verdict, attempts, job.created_at, engine.clock.now(), rand::random(), owner_if_spent)
}

/// Finish `job` done, committing `change` (its events, records, exceptions closed)
/// in the same transaction.
pub(crate) async fn done(engine: &Engine, job: &Job, change: Change) -> Result<(), EngineError> {
    finish(engine, job, change, JobState::Done, None).await
}

/// Finish `job` dead because of `why`, committing `change` (the exception that says
/// what to do, the timeline's note) in the same transaction.
pub(crate) async fn dead(engine: &Engine, job: &Job, change: Change, why: impl Into<String>) -> Result<(), EngineError> {
    finish(engine, job, change, JobState::Dead, Some(why.into())).await
}

/// A change on the job's connection, at the engine's now, to finish a job with.
pub(crate) fn change(engine: &Engine, conn: &Connection) -> Change {
    Change::new(&conn.name, engine.clock.now())
}

async fn finish(engine: &Engine, job: &Job, mut change: Change, state: JobState, error: Option<String>) -> Result<(), EngineError> {
    if state == JobState::Dead {
        // The exceptions a given-up job raises name it, so a person can retry it.
        for open in &mut change.open_exceptions {
            open.job_id.get_or_insert(job.id);
        }
    }
    change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.clone().unwrap_or_default(), state, error });
    // A lease lost to another worker means that worker redoes the job (idempotently),
    // so it is not an error here.
    match engine.store.commit(change).await {
        Ok(_) | Err(StoreError::LeaseLost { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Put `job`, whose attempt failed as `verdict`, back to run again no earlier than
/// `at`, recording why (a lost lease is fine). A wait the other side named
/// ([`Verdict::RetryAfter`]) is not an attempt: the store puts the claim's back.
pub(crate) async fn retry_at(engine: &Engine, job: &Job, at: Timestamp, verdict: Verdict, why: &str) -> Result<(), EngineError> {
    let token = job.lease_token.clone().unwrap_or_default();
    let attempt = match verdict {
        Verdict::RetryAfter { .. } => Attempt::NotCounted,
        Verdict::Backoff | Verdict::Partial | Verdict::GiveUp { .. } => Attempt::Counted,
    };
    match engine.store.retry_job(job.id, &token, at, why, attempt, engine.clock.now()).await {
        Ok(()) | Err(StoreError::LeaseLost { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The exception a handler raises when it gives a job up: its own `kind`, unless the
/// failure named an admin (refused credentials, a configuration or an answer
/// shipledger cannot read) while `kind` is someone else's — then
/// [`ExceptionKind::IntegrationFault`], so the person who can fix it is the one told.
pub(crate) fn owned(kind: ExceptionKind, owner: Owner) -> ExceptionKind {
    if owner == Owner::Admin && kind.owner() != Owner::Admin { ExceptionKind::IntegrationFault } else { kind }
}

/// A failure to *read back* a write whose outcome is unknown: the write may have
/// happened, so data ops would have to fix (a record not found, a refusal) is no
/// reason to stop trying; only what an admin must fix gives up at once.
pub(crate) fn unknown_outcome(verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::GiveUp { owner } if owner != Owner::Admin => Verdict::Backoff,
        other => other,
    }
}

/// A webhook hint's job failed (`e`): retried per its kind's policy. Given up, it
/// raises nothing (what the hint pointed at is still found another way, `then`),
/// unless an admin must fix the connection (credentials refused, an answer shipledger
/// cannot read): then `integration_fault` on the webhook, saying `what` failed.
pub(crate) async fn fail_hint(engine: &Engine, conn: &Connection, job: &Job, e: &EngineError, what: &str, then: &str) -> Result<Failed, EngineError> {
    let why = e.to_string();
    fail(engine, conn, job, e.classify(), &why, Owner::Ops, |owner, _| {
        let mut change = change(engine, conn);
        if owner == Owner::Admin {
            change.raise(
                ExceptionKind::IntegrationFault,
                "webhook",
                job.idempotency_key.clone(),
                serde_json::json!({"message": format!("{what} and was given up: {why}; {then} once the connection is fixed"), "job": job.id}),
            );
        }
        change
    })
    .await
}

/// How a failed attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    Retried,
    GaveUp,
}

/// A failed attempt at `job`, as one decision: retried per its kind's policy, or —
/// when the failure is permanent, or its attempts or horizon are spent — finished
/// dead with the change `give_up` builds (the exception, the timeline's note; given
/// the owner and the reason).
pub(crate) async fn fail(
    engine: &Engine,
    conn: &Connection,
    job: &Job,
    verdict: Verdict,
    why: &str,
    owner_if_spent: Owner,
    give_up: impl FnOnce(Owner, GiveUpReason) -> Change,
) -> Result<Failed, EngineError> {
    match decide(engine, conn, job, verdict, owner_if_spent) {
        Decision::RetryAt { at } => {
            retry_at(engine, job, at, verdict, why).await?;
            Ok(Failed::Retried)
        }
        Decision::GiveUp { owner, why: reason } => {
            tracing::warn!(
                connection = %conn.name, job = job.id, kind = %job.kind(), attempts = job.attempts, owner = %owner,
                reason = ?reason, error = %why, "job given up"
            );
            dead(engine, job, give_up(owner, reason), why).await?;
            Ok(Failed::GaveUp)
        }
    }
}
