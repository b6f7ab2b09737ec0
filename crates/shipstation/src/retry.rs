//! Which failures deserve another attempt, and how long to wait before it.
//!
//! One function, [`is_retriable`], classifies every [`Error`]; the request loop in
//! the transport is the only place that acts on it. Nothing else in the crate retries.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

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

/// The one retry classification.
///
/// Retriable: 429 (after waiting for the window), 5xx, timeouts, connection and
/// interrupted-transfer errors. Never retried: 401/403, 404, other 4xx, decode
/// errors, redirects off the allowed origin and requests refused client-side. A request that is not idempotent is
/// retried only when it cannot have been processed: after a 429 or a failed connect.
pub fn is_retriable(err: &Error, idempotency: Idempotency) -> bool {
    let processing_impossible = matches!(
        err,
        Error::RateLimited { .. }
            | Error::Transport {
                kind: TransportKind::Connect,
                ..
            }
    );
    let transient = match err {
        Error::RateLimited { .. } => true,
        Error::Api { status, .. } => *status >= 500,
        Error::Transport { kind, .. } => !matches!(kind, TransportKind::Other),
        Error::Unauthorized { .. }
        | Error::NotFound { .. }
        | Error::Decode { .. }
        | Error::RedirectRefused { .. }
        | Error::InvalidRequest(_)
        | Error::Config(_) => false,
    };
    transient && (processing_impossible || idempotency == Idempotency::Idempotent)
}

/// Exponential backoff with "equal jitter": attempt `n` (0-based) waits between half
/// and all of `min(base * 2^n, max)`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.max);
        let half = ceiling / 2;
        let jitter_nanos = (half.as_nanos() as u64).max(1);
        half + Duration::from_nanos(random_u64() % jitter_nanos)
    }
}

fn random_u64() -> u64 {
    // RandomState is seeded from the OS per instance: enough randomness for jitter
    // without another dependency.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish()
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
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..10 {
            let d = b.delay(attempt);
            let ceiling =
                (Duration::from_millis(100) * 2u32.pow(attempt)).min(Duration::from_secs(1));
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
    }
}
