//! The ShipStation rate budgets kept in the store, so every worker of every process
//! that uses one API key spends one budget. They plug into the client's
//! [`RateBudget`] trait: before each request the client asks the store; after each
//! response it reports what the server said.
//!
//! - **v1** (40 requests a minute) tells its window on every answer
//!   (`X-Rate-Limit-Limit`, `-Remaining`, `-Reset`): [`Store::rate_take`] spends
//!   what the last answer said is left, [`Store::rate_observe`] records each answer.
//! - **v2** (200 requests a minute, [`V2_LIMIT`]) says nothing until it answers 429
//!   with `Retry-After`: the store counts the window itself
//!   ([`Store::rate_take_counted`], under the v2 key's own row), and a 429 is
//!   recorded as "nothing left until then", which pauses every worker.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use shipledger_core::clock::{BoxFuture, Clock};
use shipledger_shipstation::budget::{Admission, DEFAULT_RESET_MARGIN, RateBudget, RateObservation};
use shipledger_store::Store;

/// ShipStation v2's default limit: requests per [`V2_WINDOW`] per API key.
pub const V2_LIMIT: u32 = 200;

/// The window v2's limit counts over: a minute, plus the margin the client adds to
/// every reset ([`DEFAULT_RESET_MARGIN`]), so a window counted from our first
/// request never ends before the server's does.
pub const V2_WINDOW: Duration = Duration::from_secs(60).checked_add(DEFAULT_RESET_MARGIN).expect("a minute and a second");

pub struct StoreRateBudget {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Requests left unspent in each window, for other work (webhook fetches).
    reserve: u32,
    /// `(limit, window)` when the store counts the window itself (v2); `None` when
    /// the server's headers say what is left (v1).
    counted: Option<(u32, SignedDuration)>,
}

impl StoreRateBudget {
    /// A budget that spends what the server's rate headers say is left (v1).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, reserve: u32) -> Self {
        StoreRateBudget { store, clock, reserve, counted: None }
    }

    /// A budget of `limit` requests per `window`, counted in the store (an API that
    /// does not tell its window on every answer).
    pub fn counted(store: Arc<dyn Store>, clock: Arc<dyn Clock>, limit: u32, window: Duration, reserve: u32) -> Self {
        let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::from_secs(60));
        StoreRateBudget { store, clock, reserve, counted: Some((limit.max(1), window)) }
    }

    /// ShipStation v2's budget: [`V2_LIMIT`] per [`V2_WINDOW`], counted in the store.
    pub fn v2(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        StoreRateBudget::counted(store, clock, V2_LIMIT, V2_WINDOW, 0)
    }
}

impl std::fmt::Debug for StoreRateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRateBudget").field("reserve", &self.reserve).field("counted", &self.counted).finish()
    }
}

impl RateBudget for StoreRateBudget {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Admission> {
        Box::pin(async move {
            // A lane step that lent its permit while it waited takes it back before it
            // asks (and so before its request is sent).
            crate::lanes::reclaim_permit().await;
            let now = self.clock.now();
            let taken = match self.counted {
                None => self.store.rate_take(key, self.reserve, now).await,
                Some((limit, window)) => self.store.rate_take_counted(key, limit, window, self.reserve, now).await,
            };
            match taken {
                Ok(None) => Admission::Proceed,
                Ok(Some(until)) => {
                    // Asleep until the window reopens: the lane's other connections
                    // (other keys, other budgets) may use the permit meanwhile.
                    crate::lanes::lend_permit();
                    let wait = until.duration_since(now).max(SignedDuration::from_millis(50));
                    Admission::Wait(Duration::try_from(wait).unwrap_or(Duration::from_secs(1)))
                }
                Err(e) => {
                    // The store is the source of truth; without it, wait and ask again
                    // rather than spend a budget we cannot see.
                    tracing::warn!(error = %e, "rate budget unavailable; waiting a second");
                    crate::lanes::lend_permit();
                    Admission::Wait(Duration::from_secs(1))
                }
            }
        })
    }

    fn observe<'a>(&'a self, key: &'a str, observation: RateObservation) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let now = self.clock.now();
            let reset_at = now + SignedDuration::try_from(observation.reset_after).unwrap_or(SignedDuration::ZERO);
            let limit = observation.limit.or(self.counted.map(|(limit, _)| limit)).unwrap_or(observation.remaining);
            if let Err(e) = self.store.rate_observe(key, limit, observation.remaining, reset_at, now).await {
                tracing::warn!(error = %e, "could not record the rate budget");
            }
            // Nothing left in the window (or a 429): whatever this step sends next
            // waits for it first, so its lane's permit is lent back now; the next
            // `acquire` takes it again.
            if observation.remaining == 0 {
                crate::lanes::lend_permit();
            }
        })
    }
}
