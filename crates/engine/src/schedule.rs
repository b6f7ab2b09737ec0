//! Recurring work, per connection: when each kind of scheduled pass (ERP poll, held
//! and released orders read again, shipment poll, scan sweep, monitors) is due, who is
//! doing it now, and when it last worked.
//!
//! A pass is *taken* with a lease ([`Engine::take_schedule`]) and *finished*
//! ([`Engine::finish_schedule`]), which makes it due again one interval after it
//! started. A webhook hint can bring one forward ([`Engine::hasten_schedule`]).
//!
//! This is the one interface every caller of a scheduled pass uses (the tick, the
//! lanes). Its state lives in the store's `schedules` table
//! ([`Store::take_schedule`](shipledger_store::Store::take_schedule)), leased like a
//! job: of N workers on one PostgreSQL exactly one takes a due pass, so each pass runs
//! once per interval however many `serve` processes share the database. A worker
//! renews its lease while a pass runs ([`RENEW_EVERY`]); one that dies mid-pass holds
//! it at most [`LEASE`], then the next worker to look takes it over. A worker that
//! drains gives its passes back at once ([`Engine::release_leases`]).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use shipledger_store::{ReleasedLeases, ScheduleFinish, ScheduleRecord, ScheduleTake};

use crate::config::Policy;
use crate::{Connection, Engine, EngineError};

/// A kind of recurring pass over one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheduled {
    /// The ERP's change feed since the watermark ([`crate::flows::release::poll`]).
    ErpPoll,
    /// Every held and released-unshipped order read again by id
    /// ([`crate::flows::recheck::run`]), every `held_recheck_interval`.
    Recheck,
    /// Between rechecks: the held orders whose products or addresses the ERP says
    /// changed since the last recheck or follow ([`crate::flows::recheck::follow`]).
    Follow,
    /// Labels, voids and fulfillments from ShipStation ([`crate::flows::shipments::poll`]).
    ShipmentPoll,
    /// Live labels awaiting their first carrier scan ([`crate::flows::shipments::scans`]).
    ScanSweep,
    /// Cost entries converted to the base currency ([`crate::flows::fx::convert`]),
    /// every `shipment_poll_interval`.
    FxConvert,
    /// Due cost batches planned as journals ([`crate::flows::journals::plan`]), every
    /// `shipment_poll_interval`.
    CostBatches,
    /// Overdue scans and labels, and jobs this build cannot run
    /// ([`crate::flows::monitors`], [`crate::flows::unknown_jobs`]).
    Monitors,
    /// The reconciler ([`crate::flows::reconcile::scheduled`]), every
    /// `reconcile_interval` (never when it is `none`), full every
    /// `reconcile_full_interval`.
    Reconcile,
}

impl Scheduled {
    pub const ALL: &'static [Scheduled] =
        &[Scheduled::ErpPoll, Scheduled::Recheck, Scheduled::Follow, Scheduled::ShipmentPoll, Scheduled::ScanSweep, Scheduled::FxConvert, Scheduled::CostBatches, Scheduled::Monitors, Scheduled::Reconcile];

    /// The name stored and shown (`erp_poll`, `recheck`, …).
    pub fn name(self) -> &'static str {
        match self {
            Scheduled::ErpPoll => "erp_poll",
            Scheduled::Recheck => "recheck",
            Scheduled::Follow => "follow",
            Scheduled::ShipmentPoll => "shipment_poll",
            Scheduled::ScanSweep => "scan_sweep",
            Scheduled::FxConvert => "fx_convert",
            Scheduled::CostBatches => "cost_batches",
            Scheduled::Monitors => "monitors",
            Scheduled::Reconcile => "reconcile",
        }
    }

    pub fn parse(name: &str) -> Option<Scheduled> {
        Scheduled::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// How long after a pass starts the next one is due.
    pub fn interval(self, policy: &Policy) -> Duration {
        match self {
            Scheduled::ErpPoll | Scheduled::Follow => policy.poll_interval,
            Scheduled::Recheck => policy.held_recheck_interval,
            Scheduled::ShipmentPoll | Scheduled::ScanSweep | Scheduled::FxConvert | Scheduled::CostBatches | Scheduled::Monitors => {
                policy.shipment_poll_interval
            }
            Scheduled::Reconcile => policy.reconcile_interval.unwrap_or(Duration::MAX),
        }
    }

    /// Whether the pass runs by itself at all (`reconcile_interval = "none"`: the
    /// reconciler runs only when asked).
    pub fn enabled(self, policy: &Policy) -> bool {
        match self {
            Scheduled::Reconcile => policy.reconcile_interval.is_some(),
            _ => true,
        }
    }

    /// How long after a pass that *failed* it is due again: a failed recheck is tried
    /// again at once (the next tick), every other pass an interval after it started.
    pub fn after_failure(self, policy: &Policy) -> Duration {
        match self {
            Scheduled::Recheck => Duration::ZERO,
            // A failed run (ShipStation or the ERP down) is tried again within the
            // hour, not a day later.
            Scheduled::Reconcile => self.interval(policy).min(Duration::from_secs(3600)),
            other => other.interval(policy),
        }
    }
}

impl std::fmt::Display for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduled pass taken by this worker. Give it back with
/// [`Engine::finish_schedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleLease {
    pub connection: String,
    pub what: Scheduled,
    /// Names this lease; finishing with a token that no longer holds the pass fails.
    pub token: String,
    pub started_at: Timestamp,
    /// When the last pass that worked started (`None`: never worked).
    pub last_success: Option<Timestamp>,
    /// Keeps the lease alive while the pass runs (stops when the lease is finished,
    /// or its last clone dropped).
    renewal: Renewal,
}

/// The task that renews a taken pass's lease every [`RENEW_EVERY`], aborted when the
/// last clone of its [`ScheduleLease`] goes. Leases compare equal whatever their
/// renewal.
#[derive(Clone)]
struct Renewal(Arc<AbortOnDrop>);

/// A background task that ends when its handle is dropped (a step that is cancelled
/// or panics drops it, so nothing it leased is renewed any longer).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Renewal {
    fn stop(&self) {
        self.0.0.abort();
    }
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renewal")
    }
}

impl PartialEq for Renewal {
    fn eq(&self, _: &Renewal) -> bool {
        true
    }
}

impl Eq for Renewal {}

/// How long a taken pass is this worker's before another may take it over unless it
/// is renewed. The worker renews it every [`RENEW_EVERY`] for as long as the pass
/// runs (a shipment poll of a busy day at 40 requests a minute takes minutes), so a
/// pass is taken over only from a worker that died or stalled, and then within this
/// long (as a dead worker's jobs are, [`crate::jobs`]).
pub const LEASE: SignedDuration = SignedDuration::from_secs(30);

/// How often a running pass's lease, and the leases of the jobs a step holds, are
/// renewed (real time: pacing, not a decision). [`Engine::renew_every`] is this
/// unless a test says otherwise.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

fn after(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
}

impl Engine {
    /// Take `what` on `conn` when it is due now (or at once with `force`), leased to
    /// this worker. `None` when it is not due, or another worker holds it.
    pub async fn take_schedule(&self, conn: &Connection, what: Scheduled, force: bool) -> Result<Option<ScheduleLease>, EngineError> {
        let now = self.clock.now();
        let taken = self
            .store
            .take_schedule(ScheduleTake { connection: &conn.name, name: what.name(), now, lease: LEASE, force, worker: &self.worker })
            .await?;
        Ok(taken.map(|record| {
            let token = record.lease_token.unwrap_or_default();
            let renewal = self.renew(&conn.name, what, &token);
            ScheduleLease {
                connection: conn.name.clone(),
                what,
                token,
                started_at: record.last_started_at.unwrap_or(now),
                last_success: record.last_success_at,
                renewal,
            }
        }))
    }

    /// Renew the lease `token` on `what` every [`Engine::renew_every`] until it is lost.
    fn renew(&self, connection: &str, what: Scheduled, token: &str) -> Renewal {
        let (store, clock, every) = (self.store.clone(), self.clock.clone(), self.renew_every);
        let (connection, token) = (connection.to_string(), token.to_string());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let now = clock.now();
                let until = now.checked_add(LEASE).unwrap_or(Timestamp::MAX);
                match store.renew_schedule(&connection, what.name(), &token, until, now).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(connection = %connection, pass = %what, error = %e, "could not renew a pass's lease; trying again"),
                }
            }
        });
        Renewal(Arc::new(AbortOnDrop(task)))
    }

    /// Give a pass back: due again one interval after it started when it worked
    /// (`ok`), or per [`Scheduled::after_failure`] when it did not. Fails (a store
    /// error, `ScheduleLeaseLost`) when the lease ran out and another worker took
    /// the pass over; that worker's pass is the one that counts.
    pub async fn finish_schedule(&self, conn: &Connection, lease: ScheduleLease, ok: bool) -> Result<(), EngineError> {
        let error = (!ok).then_some("the pass failed (see the logs of its worker)");
        self.end_schedule(conn, lease, error).await
    }

    /// [`finish_schedule`](Engine::finish_schedule) with the pass's outcome, so the
    /// store keeps why it last failed (`shipledger schedules`, the API).
    pub async fn finish_schedule_with<T>(&self, conn: &Connection, lease: ScheduleLease, outcome: &Result<T, EngineError>) -> Result<(), EngineError> {
        let error = outcome.as_ref().err().map(ToString::to_string);
        self.end_schedule(conn, lease, error.as_deref()).await
    }

    async fn end_schedule(&self, conn: &Connection, lease: ScheduleLease, error: Option<&str>) -> Result<(), EngineError> {
        lease.renewal.stop();
        let wait = match error {
            None => lease.what.interval(&conn.policy),
            Some(_) => lease.what.after_failure(&conn.policy),
        };
        self.store
            .finish_schedule(ScheduleFinish {
                connection: &conn.name,
                name: lease.what.name(),
                lease_token: &lease.token,
                next_due_at: after(lease.started_at, wait),
                error,
                now: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Mark `what` as having worked from `at` without running it (a full recheck also
    /// counts as a follow), keeping its due time.
    pub async fn record_schedule_success(&self, conn: &Connection, what: Scheduled, at: Timestamp) -> Result<(), EngineError> {
        Ok(self.store.record_schedule_success(&conn.name, what.name(), at, self.clock.now()).await?)
    }

    /// When `what` is next due on `conn` (now when it never ran).
    pub async fn schedule_due_at(&self, conn: &Connection, what: Scheduled) -> Result<Timestamp, EngineError> {
        let now = self.clock.now();
        let record = self.store.get_schedule(&conn.name, what.name()).await?;
        Ok(record.and_then(|r| r.next_due_at).unwrap_or(now))
    }

    /// Bring `what` forward: due no later than `at` (a webhook said something changed).
    pub async fn hasten_schedule(&self, conn: &Connection, what: Scheduled, at: Timestamp) -> Result<(), EngineError> {
        Ok(self.store.hasten_schedule(&conn.name, what.name(), at, self.clock.now()).await?)
    }

    /// Bring `passes` of `conn` forward to now: the one way to say "run these passes
    /// now" (`sync --once` says it of every pass, [`Engine::tick`] of the ERP poll and
    /// the follow); the passes then run when next taken, as any due pass does. A
    /// pass another worker is running keeps its lease, and that run counts (its
    /// finish sets the next due time).
    pub async fn hasten_now(&self, conn: &Connection, passes: &[Scheduled]) -> Result<(), EngineError> {
        let now = self.clock.now();
        for what in passes {
            self.hasten_schedule(conn, *what, now).await?;
        }
        Ok(())
    }

    /// Every pass of `conn` as the store keeps it (due time, lease, last success and
    /// error, runs), for `shipledger schedules` and the API.
    pub async fn schedules(&self, conn: &Connection) -> Result<Vec<ScheduleRecord>, EngineError> {
        Ok(self.store.list_schedules(Some(&conn.name)).await?)
    }

    /// Give back every job and pass lease this worker holds (the drain does, before
    /// the process exits): the jobs run at once elsewhere, as retries (the attempt
    /// their claim counted stays: their write may have gone out), the passes keep
    /// their due time.
    pub async fn release_leases(&self) -> Result<ReleasedLeases, EngineError> {
        Ok(self.store.release_leases(&self.worker, self.clock.now()).await?)
    }
}
