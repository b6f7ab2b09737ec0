//! Which failures deserve another attempt inside one request, and how long to wait
//! before it.
//!
//! The failure's kind is the one classification ([`Classify`] on [`Error`], in
//! `error.rs`); the wait is the one backoff ([`RetryPolicy::backoff`] in
//! `shipledger_core::retry`). This module only adds what a single HTTP request must
//! know on top: whether repeating it can do harm ([`Idempotency`]). The request loop
//! in the transport is the only place that acts on it. Nothing else in the crate
//! retries.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use shipledger_core::retry::{Classify, RetryPolicy, Verdict};

use crate::error::{Error, TransportKind};

/// Whether repeating a request can do harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it leaves the same state: reads, deletes, `holduntil`,
    /// `markasshipped`, and `createorder(s)` *with an `orderKey`* (an upsert).
    Idempotent,
    /// Repeating it may create a second record (`webhooks/subscribe`): retried only
    /// when ShipStation certainly did not process it (429, no connection).
    NotIdempotent,
}

/// Whether the client repeats a failed request: the failure classifies as transient
/// (429, 5xx, 408, 425, timeouts, connection and transfer errors: [`Verdict::Backoff`]
/// or [`Verdict::RetryAfter`]), and repeating it can do no harm. Never retried:
/// 401/403, 404, other 4xx, decode errors, redirects off the allowed origin and
/// requests refused client-side. A request that is not idempotent is retried only when
/// it cannot have been processed: after a 429 or a failed connect.
pub fn is_retriable(err: &Error, idempotency: Idempotency) -> bool {
    let processing_impossible = matches!(
        err,
        Error::RateLimited { .. }
            | Error::Transport {
                kind: TransportKind::Connect,
                ..
            }
    );
    let transient = matches!(err.classify(), Verdict::Backoff | Verdict::RetryAfter { .. });
    transient && (processing_impossible || idempotency == Idempotency::Idempotent)
}

/// The client's in-request retry policy: from `base`, doubling, at most `max`, ± a
/// third (so workers that failed together do not retry in step).
pub(crate) fn policy(base: Duration, max: Duration) -> RetryPolicy {
    RetryPolicy { initial: base, max_delay: max, jitter_pct: 33, ..RetryPolicy::default() }
}

/// The wait before retry number `attempt + 1` (`attempt` is 0 after the first failure).
pub(crate) fn delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    policy.backoff(attempt.saturating_add(1), random_u32())
}

fn random_u32() -> u32 {
    // RandomState is seeded from the OS per instance: enough randomness for jitter
    // without another dependency.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api {
            request: "GET /orders".into(),
            status,
            message: String::new(),
        }
    }

    #[test]
    fn server_errors_and_rate_limits_are_retried_client_errors_are_not() {
        use Idempotency::*;
        assert!(is_retriable(&api(500), Idempotent));
        assert!(is_retriable(&api(503), Idempotent));
        assert!(!is_retriable(&api(400), Idempotent));
        assert!(!is_retriable(&api(409), Idempotent));
        let limited = Error::RateLimited {
            request: "GET /orders".into(),
            retry_after: None,
        };
        assert!(is_retriable(&limited, Idempotent));
        assert!(is_retriable(&limited, NotIdempotent));
        assert!(!is_retriable(
            &Error::NotFound {
                request: "GET /orders/1".into(),
                path: "/orders/1".into()
            },
            Idempotent
        ));
        assert!(!is_retriable(
            &Error::InvalidRequest("x".into()),
            Idempotent
        ));
    }

    #[test]
    fn a_non_idempotent_request_is_not_repeated_after_a_server_error() {
        assert!(!is_retriable(&api(500), Idempotency::NotIdempotent));
    }

    #[test]
    fn backoff_grows_and_stays_within_its_bounds() {
        let p = policy(Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 0..10 {
            let d = delay(&p, attempt);
            let ceiling = (Duration::from_millis(100) * 2u32.pow(attempt)).min(Duration::from_secs(1));
            assert!(d >= ceiling * 2 / 3 && d <= ceiling * 4 / 3, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn a_408_is_transient_but_another_refusal_is_not() {
        assert!(is_retriable(&api(408), Idempotency::Idempotent));
        assert!(!is_retriable(&api(408), Idempotency::NotIdempotent));
        assert!(!is_retriable(&api(422), Idempotency::Idempotent));
    }
}
