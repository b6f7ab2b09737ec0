//! The ShipStation rate budget kept in the store, so every worker of every process
//! that uses one API key spends one budget (40 requests a minute on v1). It plugs into
//! the client's [`RateBudget`] trait: before each request the client asks
//! [`Store::rate_take`]; after each response it reports the `X-Rate-Limit-*` headers
//! through [`Store::rate_observe`].

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use shipledger_core::clock::{BoxFuture, Clock};
use shipledger_shipstation::budget::{Admission, RateBudget, RateObservation};
use shipledger_store::Store;


pub struct StoreRateBudget {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Requests left unspent in each window, for other work (webhook fetches).
    reserve: u32,
}

impl StoreRateBudget {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, reserve: u32) -> Self {
        StoreRateBudget { store, clock, reserve }
    }
}

impl std::fmt::Debug for StoreRateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRateBudget").field("reserve", &self.reserve).finish()
    }
}

impl RateBudget for StoreRateBudget {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Admission> {
        Box::pin(async move {
            let now = self.clock.now();
            match self.store.rate_take(key, self.reserve, now).await {
                Ok(None) => Admission::Proceed,
                Ok(Some(until)) => {
                    let wait = until.duration_since(now).max(SignedDuration::from_millis(50));
                    Admission::Wait(Duration::try_from(wait).unwrap_or(Duration::from_secs(1)))
                }
                Err(e) => {
                    // The store is the source of truth; without it, wait and ask again
                    // rather than spend a budget we cannot see.
                    tracing::warn!(error = %e, "rate budget unavailable; waiting a second");
                    Admission::Wait(Duration::from_secs(1))
                }
            }
        })
    }

    fn observe<'a>(&'a self, key: &'a str, observation: RateObservation) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let now = self.clock.now();
            let reset_at = now + SignedDuration::try_from(observation.reset_after).unwrap_or(SignedDuration::ZERO);
            let limit = observation.limit.unwrap_or(observation.remaining);
            if let Err(e) = self.store.rate_observe(key, limit, observation.remaining, reset_at, now).await {
                tracing::warn!(error = %e, "could not record the rate budget");
            }
        })
    }
}
