//! One retry policy. An error says what kind of failure it is ([`Classify`]); a job
//! kind's [`RetryPolicy`] turns that, the attempts made and the time since the job was
//! planned into one [`Decision`]: run again at a time, or give up and raise an
//! exception with an owner. The backoff is the one function in shipledger that says
//! how long to wait ([`RetryPolicy::backoff`]): exponential from `initial`, capped at
//! `max_delay`, with ± `jitter_pct` spread so workers retrying together do not retry
//! in step.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::exception::Owner;

/// What a failure says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// The other side said when: try again after this (a `Retry-After`, a spent
    /// rate window). The wait is the one named, not a backoff, and the attempt is
    /// not counted: it never spends `max_attempts` (the store puts the claim's
    /// attempt back), and it does not count towards the attempts the give-up horizon
    /// waits for. The horizon itself still applies once those attempts were made.
    RetryAfter { after: Duration },
    /// A transient failure (network, 5xx, timeout): try again with backoff.
    Backoff,
    /// Some of the work was done and is kept; the rest is tried again with backoff.
    Partial,
    /// Trying again will not help; a person must act. The exception goes to `owner`.
    GiveUp { owner: Owner },
}

/// A failure that knows what kind of failure it is. Implemented by the ShipStation
/// client's, the ERP connectors' and the store's errors; a handler may still decide
/// otherwise where it knows more (a refusal it expects to clear by itself).
pub trait Classify {
    fn classify(&self) -> Verdict;
}

/// How one job kind is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The wait before the second attempt; it doubles per attempt.
    pub initial: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
    /// Spread of each wait, ± this percentage (0 to 100).
    pub jitter_pct: u8,
    /// Give up after this many attempts.
    pub max_attempts: u32,
    /// Give up once the job was first planned this long ago — but only after it had
    /// at least [`RetryPolicy::horizon_min_attempts`] counted attempts, so a job
    /// queued through an outage (or across an upgrade) still gets its retries.
    pub give_up_after: Duration,
}

/// The counted attempts a job has before the give-up horizon applies (at most
/// `max_attempts`): see [`RetryPolicy::horizon_min_attempts`].
pub const HORIZON_MIN_ATTEMPTS: u32 = 3;

impl Default for RetryPolicy {
    /// 2 s doubling to 5 minutes, ± 20 %, at most 5 attempts, within a day.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            jitter_pct: 20,
            max_attempts: 5,
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do with a job whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Put it back, to run no earlier than `at`.
    RetryAt { at: Timestamp },
    /// Finish it dead and raise an exception owned by `owner`.
    GiveUp { owner: Owner, why: GiveUpReason },
}

/// Why a job is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    /// The failure is one retrying cannot fix.
    Permanent,
    /// Its attempts are spent.
    Attempts,
    /// It was planned longer ago than the give-up horizon.
    Horizon,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1 = the first attempt failed):
    /// `initial × 2^(attempt−1)`, at most `max_delay`, spread by `roll` (any `u32`,
    /// uniformly random in production) over ± `jitter_pct`. Never negative and never
    /// above `max_delay` plus its jitter.
    pub fn backoff(&self, attempt: u32, roll: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let base = self
            .initial
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        let pct = u64::from(self.jitter_pct.min(100));
        let spread = base_ms.saturating_mul(pct) / 100;
        // roll in [0, 2^32) maps to an offset in [-spread, +spread].
        let offset = (u128::from(spread) * 2 * u128::from(roll)) >> 32;
        let offset = u64::try_from(offset).unwrap_or(u64::MAX);
        Duration::from_millis(base_ms.saturating_sub(spread).saturating_add(offset))
    }

    /// How many counted attempts a job has had before the give-up horizon can give it
    /// up: three, or `max_attempts` when that is fewer.
    pub fn horizon_min_attempts(&self) -> u32 {
        HORIZON_MIN_ATTEMPTS.min(self.max_attempts)
    }

    /// The decision for a job that failed `attempts` times (this attempt included,
    /// as the claim counted it), planned at `planned_at`, with a failure that
    /// classified as `verdict`. A [`Verdict::RetryAfter`] attempt is not counted:
    /// it retries at the named time while the horizon has not passed, and the
    /// horizon gives it up only after [`RetryPolicy::horizon_min_attempts`] counted
    /// attempts before it.
    pub fn decide(&self, verdict: Verdict, attempts: u32, planned_at: Timestamp, now: Timestamp, roll: u32, owner_if_spent: Owner) -> Decision {
        let wait = match verdict {
            Verdict::GiveUp { owner } => return Decision::GiveUp { owner, why: GiveUpReason::Permanent },
            Verdict::RetryAfter { after } => after,
            Verdict::Backoff | Verdict::Partial => self.backoff(attempts, roll),
        };
        let counted = !matches!(verdict, Verdict::RetryAfter { .. });
        if counted && attempts >= self.max_attempts {
            return Decision::GiveUp { owner: owner_if_spent, why: GiveUpReason::Attempts };
        }
        let counted_attempts = if counted { attempts } else { attempts.saturating_sub(1) };
        let horizon = SignedDuration::try_from(self.give_up_after).unwrap_or(SignedDuration::MAX);
        if counted_attempts >= self.horizon_min_attempts() && now.duration_since(planned_at) >= horizon {
            return Decision::GiveUp { owner: owner_if_spent, why: GiveUpReason::Horizon };
        }
        let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
        Decision::RetryAt { at: now.saturating_add(wait).unwrap_or(Timestamp::MAX) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { initial: Duration::from_secs(2), max_delay: Duration::from_secs(300), jitter_pct: 20, max_attempts: 5, give_up_after: Duration::from_secs(3600) }
    }

    const MIDDLE: u32 = 1 << 31;

    #[test]
    fn the_wait_doubles_from_the_first_failure_up_to_the_cap() {
        let p = policy();
        let waits: Vec<u64> = (1..=10).map(|a| p.backoff(a, MIDDLE).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.backoff(u32::MAX, MIDDLE), Duration::from_secs(300), "no overflow far out");
    }

    #[test]
    fn jitter_spreads_each_wait_within_its_percentage() {
        let p = policy();
        assert_eq!(p.backoff(3, 0), Duration::from_millis(6_400), "8 s − 20 %");
        assert!(p.backoff(3, u32::MAX) <= Duration::from_millis(9_600), "8 s + 20 % at most");
        assert!(p.backoff(3, u32::MAX) > Duration::from_millis(9_590));
        let none = RetryPolicy { jitter_pct: 0, ..p };
        assert_eq!(none.backoff(3, 0), none.backoff(3, u32::MAX));
    }

    #[test]
    fn a_permanent_failure_gives_up_at_once_to_its_owner() {
        let now: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
        let d = policy().decide(Verdict::GiveUp { owner: Owner::Admin }, 1, now, now, MIDDLE, Owner::Ops);
        assert_eq!(d, Decision::GiveUp { owner: Owner::Admin, why: GiveUpReason::Permanent });
    }

    #[test]
    fn a_transient_failure_backs_off_until_attempts_or_horizon_are_spent() {
        let planned: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
        let p = policy();
        let now = planned + SignedDuration::from_secs(10);
        assert_eq!(p.decide(Verdict::Backoff, 2, planned, now, MIDDLE, Owner::Ops), Decision::RetryAt { at: now + SignedDuration::from_secs(4) });
        assert_eq!(p.decide(Verdict::Partial, 5, planned, now, MIDDLE, Owner::Ops), Decision::GiveUp { owner: Owner::Ops, why: GiveUpReason::Attempts });
        let late = planned + SignedDuration::from_hours(1);
        assert_eq!(p.decide(Verdict::Backoff, 3, planned, late, MIDDLE, Owner::Finance), Decision::GiveUp { owner: Owner::Finance, why: GiveUpReason::Horizon });
    }

    #[test]
    fn a_job_queued_through_an_outage_gets_its_first_retries_before_the_horizon_gives_it_up() {
        // Planned 25 hours ago (the service was down, or upgraded); the horizon is a day.
        let planned: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
        let now = planned + SignedDuration::from_hours(25);
        let p = RetryPolicy::default();
        assert_eq!(p.horizon_min_attempts(), 3);
        assert_eq!(p.decide(Verdict::Backoff, 1, planned, now, MIDDLE, Owner::Ops), Decision::RetryAt { at: now + SignedDuration::from_secs(2) }, "the first failure is retried");
        assert_eq!(p.decide(Verdict::Backoff, 2, planned, now, MIDDLE, Owner::Ops), Decision::RetryAt { at: now + SignedDuration::from_secs(4) }, "and the second");
        assert_eq!(p.decide(Verdict::Backoff, 3, planned, now, MIDDLE, Owner::Ops), Decision::GiveUp { owner: Owner::Ops, why: GiveUpReason::Horizon }, "the third is given up: the horizon has passed");
        let wait = Verdict::RetryAfter { after: Duration::from_secs(30) };
        assert_eq!(p.decide(wait, 3, planned, now, MIDDLE, Owner::Ops), Decision::RetryAt { at: now + SignedDuration::from_secs(30) }, "a named wait after two counted attempts is kept");
        assert_eq!(p.decide(wait, 4, planned, now, MIDDLE, Owner::Ops), Decision::GiveUp { owner: Owner::Ops, why: GiveUpReason::Horizon }, "after three it is not");
        let two = RetryPolicy { max_attempts: 2, ..p };
        assert_eq!(two.horizon_min_attempts(), 2, "never more than the attempts a job may have");
    }

    #[test]
    fn rate_limits_do_not_spend_the_attempts_a_transient_failure_needs() {
        // As the store keeps it: each claim counts an attempt, a named wait puts it back.
        let planned: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
        let p = policy();
        let mut attempts = 0;
        for minute in 1..=7 {
            attempts += 1;
            let now = planned + SignedDuration::from_mins(minute);
            let d = p.decide(Verdict::RetryAfter { after: Duration::from_secs(60) }, attempts, planned, now, MIDDLE, Owner::Ops);
            assert_eq!(d, Decision::RetryAt { at: now + SignedDuration::from_secs(60) }, "429 number {minute}");
            attempts -= 1;
        }
        for failure in 1..p.max_attempts {
            attempts += 1;
            let now = planned + SignedDuration::from_mins(10);
            let d = p.decide(Verdict::Backoff, attempts, planned, now, MIDDLE, Owner::Ops);
            assert!(matches!(d, Decision::RetryAt { .. }), "5xx number {failure} after seven 429s is retried: {d:?}");
        }
        attempts += 1;
        let d = p.decide(Verdict::Backoff, attempts, planned, planned + SignedDuration::from_mins(11), MIDDLE, Owner::Ops);
        assert_eq!(d, Decision::GiveUp { owner: Owner::Ops, why: GiveUpReason::Attempts }, "the fifth counted failure spends them");
    }

    #[test]
    fn a_server_named_wait_is_kept_and_not_counted_as_an_attempt() {
        let planned: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
        let now = planned + SignedDuration::from_secs(10);
        let d = policy().decide(Verdict::RetryAfter { after: Duration::from_secs(42) }, 9, planned, now, MIDDLE, Owner::Ops);
        assert_eq!(d, Decision::RetryAt { at: now + SignedDuration::from_secs(42) });
    }
}
