//! The rate budget: how many requests an API key may still send in the current
//! window, shared by every client that uses the key.
//!
//! ShipStation v1 allows 40 requests a minute per key in fixed windows and reports
//! the state on every response (`X-Rate-Limit-Limit`, `-Remaining`, `-Reset` in
//! seconds). The client asks the budget before every request ([`RateBudget::acquire`])
//! and tells it what the server said after every response ([`RateBudget::observe`]),
//! so it never sends a request it knows will be refused. A 429 is observed as
//! "remaining 0 until reset", which pauses every caller sharing the key.
//!
//! [`InMemoryRateBudget`] serves one process. The trait is object safe and keyed by a
//! string ([`ClientConfig::budget_key`](crate::ClientConfig::budget_key), a fingerprint
//! of the API key), so a store-backed implementation can share one budget between
//! processes through the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shipledger_core::clock::{BoxFuture, Clock, SystemClock};

/// What the server said about the window, read from one response's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateObservation {
    /// `X-Rate-Limit-Limit`: requests per window.
    pub limit: Option<u32>,
    /// `X-Rate-Limit-Remaining`: requests left in this window.
    pub remaining: u32,
    /// Time until the window resets (`X-Rate-Limit-Reset`, or `Retry-After` on a 429).
    pub reset_after: Duration,
}

/// The answer to "may I send a request now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it; one request of the window has been reserved for it.
    Proceed,
    /// The window is spent: ask again after this long.
    Wait(Duration),
}

/// A rate budget keyed by API key fingerprint. See the module docs.
pub trait RateBudget: Send + Sync + std::fmt::Debug {
    /// Reserve one request for `key`, or say how long to wait for the next window.
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Admission>;
    /// Record what a response said about `key`'s window.
    fn observe<'a>(&'a self, key: &'a str, observation: RateObservation) -> BoxFuture<'a, ()>;
}

/// Extra time added to a server-announced reset before asking again. ShipStation's
/// `X-Rate-Limit-Reset` is whole seconds; if the server rounds down, waiting exactly
/// `reset` seconds would arrive a fraction early and earn a 429.
pub const DEFAULT_RESET_MARGIN: Duration = Duration::from_millis(1000);

/// One process's budgets, in memory.
#[derive(Debug)]
pub struct InMemoryRateBudget {
    clock: Arc<dyn Clock>,
    margin: Duration,
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    limit: Option<u32>,
    /// Requests left; `None` until the server has told us.
    remaining: Option<u32>,
    /// When the current window ends (server reset plus margin).
    resets_at: Option<Instant>,
}

impl InMemoryRateBudget {
    /// A budget on the real clock with [`DEFAULT_RESET_MARGIN`].
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        InMemoryRateBudget {
            clock,
            margin: DEFAULT_RESET_MARGIN,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Change the safety margin added to every reset.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Requests left for `key` as this budget believes (`None` when unknown).
    pub fn remaining(&self, key: &str) -> Option<u32> {
        self.windows
            .lock()
            .expect("budget lock")
            .get(key)
            .and_then(|w| w.remaining)
    }

    fn acquire_now(&self, key: &str) -> Admission {
        let now = self.clock.instant();
        let mut windows = self.windows.lock().expect("budget lock");
        let window = windows.entry(key.to_owned()).or_insert(Window {
            limit: None,
            remaining: None,
            resets_at: None,
        });
        if let Some(resets_at) = window.resets_at
            && now >= resets_at
        {
            // A new window: start from the last known limit, or unknown.
            window.remaining = window.limit;
            window.resets_at = None;
        }
        match window.remaining {
            None => Admission::Proceed,
            Some(0) => match window.resets_at {
                Some(resets_at) => Admission::Wait(resets_at - now),
                // Spent, but the server never said when it resets: try again shortly
                // (the response will tell us more).
                None => {
                    window.remaining = None;
                    Admission::Wait(self.margin)
                }
            },
            Some(n) => {
                window.remaining = Some(n - 1);
                Admission::Proceed
            }
        }
    }

    fn observe_now(&self, key: &str, observation: RateObservation) {
        let now = self.clock.instant();
        let mut windows = self.windows.lock().expect("budget lock");
        let window = windows.entry(key.to_owned()).or_insert(Window {
            limit: None,
            remaining: None,
            resets_at: None,
        });
        window.limit = observation.limit.or(window.limit);
        let resets_at = now + observation.reset_after + self.margin;
        // Responses can arrive out of order under concurrency; never let a stale
        // response give back requests a newer one already spent.
        // A later window always ends later than the current one; allow a second for
        // the server rounding its countdown.
        let same_window = window
            .resets_at
            .is_some_and(|at| resets_at <= at + Duration::from_secs(1));
        window.remaining = match (same_window, window.remaining) {
            (true, Some(local)) => Some(local.min(observation.remaining)),
            _ => Some(observation.remaining),
        };
        window.resets_at = Some(resets_at);
    }
}

impl Default for InMemoryRateBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RateBudget for InMemoryRateBudget {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Admission> {
        Box::pin(async move { self.acquire_now(key) })
    }

    fn observe<'a>(&'a self, key: &'a str, observation: RateObservation) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.observe_now(key, observation) })
    }
}

/// A budget that admits everything and remembers nothing (for tests of other layers).
#[derive(Debug, Default, Clone, Copy)]
pub struct UnlimitedBudget;

impl RateBudget for UnlimitedBudget {
    fn acquire<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Admission> {
        Box::pin(async { Admission::Proceed })
    }

    fn observe<'a>(&'a self, _key: &'a str, _observation: RateObservation) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipledger_core::clock::ManualClock;

    fn obs(limit: u32, remaining: u32, reset_secs: u64) -> RateObservation {
        RateObservation {
            limit: Some(limit),
            remaining,
            reset_after: Duration::from_secs(reset_secs),
        }
    }

    #[tokio::test]
    async fn an_unknown_key_may_send_its_first_request() {
        let budget = InMemoryRateBudget::with_clock(Arc::new(ManualClock::starting_now()));
        assert_eq!(budget.acquire("k").await, Admission::Proceed);
    }

    #[tokio::test]
    async fn a_spent_window_makes_callers_wait_until_the_reset_plus_margin() {
        let clock = Arc::new(ManualClock::starting_now());
        let budget =
            InMemoryRateBudget::with_clock(clock.clone()).with_margin(Duration::from_millis(100));
        budget.observe("k", obs(40, 1, 20)).await;
        assert_eq!(budget.acquire("k").await, Admission::Proceed);
        assert_eq!(
            budget.acquire("k").await,
            Admission::Wait(Duration::from_millis(20_100))
        );
        clock.advance_std(Duration::from_secs(10));
        assert_eq!(
            budget.acquire("k").await,
            Admission::Wait(Duration::from_millis(10_100))
        );
        clock.advance_std(Duration::from_millis(10_100));
        // New window: the last known limit applies again.
        assert_eq!(budget.acquire("k").await, Admission::Proceed);
        assert_eq!(budget.remaining("k"), Some(39));
    }

    #[tokio::test]
    async fn keys_do_not_share_a_window() {
        let budget = InMemoryRateBudget::with_clock(Arc::new(ManualClock::starting_now()));
        budget.observe("a", obs(40, 0, 30)).await;
        assert!(matches!(budget.acquire("a").await, Admission::Wait(_)));
        assert_eq!(budget.acquire("b").await, Admission::Proceed);
    }

    #[tokio::test]
    async fn a_late_response_does_not_give_back_requests_already_spent() {
        let clock = Arc::new(ManualClock::starting_now());
        let budget = InMemoryRateBudget::with_clock(clock.clone());
        budget.observe("k", obs(40, 5, 30)).await;
        for _ in 0..5 {
            assert_eq!(budget.acquire("k").await, Admission::Proceed);
        }
        // A response sent before those five arrives late and says 4 were left.
        budget.observe("k", obs(40, 4, 30)).await;
        assert!(matches!(budget.acquire("k").await, Admission::Wait(_)));
    }
}
