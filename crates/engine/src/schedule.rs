//! Recurring work, per connection: when each kind of scheduled pass (ERP poll, held
//! and released orders read again, shipment poll, scan sweep, monitors) is due, who is
//! doing it now, and when it last worked.
//!
//! A pass is *taken* with a lease ([`Engine::take_schedule`]) and *finished*
//! ([`Engine::finish_schedule`]), which makes it due again one interval after it
//! started. A webhook hint can bring one forward ([`Engine::hasten_schedule`]).
//!
//! This is the one interface every caller of a scheduled pass uses (the tick, the
//! lanes). Its state lives in this process for now; it moves into the store so that N
//! workers on one PostgreSQL do each pass once per interval.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

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
    /// Overdue scans and labels, and jobs this build cannot run
    /// ([`crate::flows::monitors`], [`crate::flows::unknown_jobs`]).
    Monitors,
}

impl Scheduled {
    pub const ALL: &'static [Scheduled] =
        &[Scheduled::ErpPoll, Scheduled::Recheck, Scheduled::Follow, Scheduled::ShipmentPoll, Scheduled::ScanSweep, Scheduled::Monitors];

    /// The name stored and shown (`erp_poll`, `recheck`, …).
    pub fn name(self) -> &'static str {
        match self {
            Scheduled::ErpPoll => "erp_poll",
            Scheduled::Recheck => "recheck",
            Scheduled::Follow => "follow",
            Scheduled::ShipmentPoll => "shipment_poll",
            Scheduled::ScanSweep => "scan_sweep",
            Scheduled::Monitors => "monitors",
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
            Scheduled::ShipmentPoll | Scheduled::ScanSweep | Scheduled::Monitors => policy.shipment_poll_interval,
        }
    }

    /// How long after a pass that *failed* it is due again: a failed recheck is tried
    /// again at once (the next tick), every other pass an interval after it started.
    pub fn after_failure(self, policy: &Policy) -> Duration {
        match self {
            Scheduled::Recheck => Duration::ZERO,
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
}

/// This process's schedule state (per connection and pass).
#[derive(Debug, Default)]
pub(crate) struct Schedules {
    slots: std::sync::Mutex<HashMap<(String, Scheduled), Slot>>,
}

#[derive(Debug, Default, Clone)]
struct Slot {
    /// Due at or after this (`None`: never ran, due now).
    next_due: Option<Timestamp>,
    last_success: Option<Timestamp>,
    /// The token of the lease that holds it.
    leased: Option<String>,
}

fn after(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
}

impl Engine {
    /// Take `what` on `conn` when it is due now (or at once with `force`), leased to
    /// this worker. `None` when it is not due, or another worker holds it.
    pub async fn take_schedule(&self, conn: &Connection, what: Scheduled, force: bool) -> Result<Option<ScheduleLease>, EngineError> {
        let now = self.clock.now();
        let mut slots = self.schedules.slots.lock().expect("schedules lock");
        let slot = slots.entry((conn.name.clone(), what)).or_default();
        if slot.leased.is_some() || (!force && slot.next_due.is_some_and(|due| due > now)) {
            return Ok(None);
        }
        let token = format!("{}:{}:{}", self.worker, what, now.as_millisecond());
        slot.leased = Some(token.clone());
        Ok(Some(ScheduleLease { connection: conn.name.clone(), what, token, started_at: now, last_success: slot.last_success }))
    }

    /// Give a pass back: due again one interval after it started when it worked
    /// (`ok`), or per [`Scheduled::after_failure`] when it did not.
    pub async fn finish_schedule(&self, conn: &Connection, lease: ScheduleLease, ok: bool) -> Result<(), EngineError> {
        let mut slots = self.schedules.slots.lock().expect("schedules lock");
        let slot = slots.entry((conn.name.clone(), lease.what)).or_default();
        if slot.leased.as_deref() != Some(lease.token.as_str()) {
            return Err(EngineError::Setup(format!(
                "connection {}: the {} pass's lease was lost before it finished",
                conn.name, lease.what
            )));
        }
        slot.leased = None;
        let wait = if ok { lease.what.interval(&conn.policy) } else { lease.what.after_failure(&conn.policy) };
        slot.next_due = Some(after(lease.started_at, wait));
        if ok {
            slot.last_success = Some(lease.started_at);
        }
        Ok(())
    }

    /// Mark `what` as having worked from `at` without running it (a full recheck also
    /// counts as a follow), keeping its due time.
    pub async fn record_schedule_success(&self, conn: &Connection, what: Scheduled, at: Timestamp) -> Result<(), EngineError> {
        let mut slots = self.schedules.slots.lock().expect("schedules lock");
        let slot = slots.entry((conn.name.clone(), what)).or_default();
        slot.last_success = Some(slot.last_success.map_or(at, |t| t.max(at)));
        Ok(())
    }

    /// When `what` is next due on `conn` (now when it never ran).
    pub async fn schedule_due_at(&self, conn: &Connection, what: Scheduled) -> Result<Timestamp, EngineError> {
        let now = self.clock.now();
        let slots = self.schedules.slots.lock().expect("schedules lock");
        Ok(slots.get(&(conn.name.clone(), what)).and_then(|s| s.next_due).unwrap_or(now))
    }

    /// Bring `what` forward: due no later than `at` (a webhook said something changed).
    pub async fn hasten_schedule(&self, conn: &Connection, what: Scheduled, at: Timestamp) -> Result<(), EngineError> {
        let mut slots = self.schedules.slots.lock().expect("schedules lock");
        let slot = slots.entry((conn.name.clone(), what)).or_default();
        slot.next_due = Some(slot.next_due.map_or(at, |due| due.min(at)));
        Ok(())
    }
}
