//! Time as the client sees it: a monotonic "now" for rate windows, the wall clock for
//! `Retry-After` dates, and sleeping. Tests inject [`ManualClock`] so waits are
//! recorded instead of slept.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A boxed, `Send` future, the return type of the object-safe async traits in this
/// crate ([`Clock`], [`RateBudget`](crate::RateBudget)).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The source of time and of waiting.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic now, used for rate windows.
    fn now(&self) -> Instant;
    /// Wall-clock now, used to read `Retry-After: <HTTP-date>`.
    fn now_utc(&self) -> jiff::Timestamp;
    /// Wait for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock: `Instant::now`, `jiff::Timestamp::now` and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn now_utc(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when slept on or advanced: `sleep(d)` returns at once and
/// moves time forward by `d`. It records every sleep so a test can assert how long the
/// client *would* have waited.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_utc: jiff::Timestamp,
    state: Mutex<ManualState>,
}

#[derive(Debug, Default)]
struct ManualState {
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            start_utc: jiff::Timestamp::now(),
            state: Mutex::new(ManualState::default()),
        }
    }

    /// Move time forward without recording a sleep.
    pub fn advance(&self, by: Duration) {
        self.state.lock().expect("clock lock").elapsed += by;
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().expect("clock lock").sleeps.clone()
    }

    /// The sum of every sleep so far.
    pub fn total_slept(&self) -> Duration {
        self.sleeps().iter().sum()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.state.lock().expect("clock lock").elapsed
    }

    fn now_utc(&self) -> jiff::Timestamp {
        let elapsed = self.state.lock().expect("clock lock").elapsed;
        let span = jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
        self.start_utc.checked_add(span).unwrap_or(self.start_utc)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        {
            let mut state = self.state.lock().expect("clock lock");
            state.elapsed += duration;
            state.sleeps.push(duration);
        }
        Box::pin(tokio::task::yield_now())
    }
}
