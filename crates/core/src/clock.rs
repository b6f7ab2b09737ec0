//! The one clock every crate reads: wall-clock UTC for records and thresholds, a
//! monotonic instant for rate windows, and a way to wait. Production uses
//! [`SystemClock`]; tests inject [`ManualClock`], which moves only when told to or
//! slept on, so a "24 hours later" story needs no sleep and no zeroed threshold.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A boxed, `Send` future: what [`Clock::sleep`] returns (object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The source of time and of waiting.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
    /// A monotonic now, for measuring spans (rate windows, latencies).
    fn instant(&self) -> Instant;
    /// Wait for `duration` (a [`ManualClock`] returns at once and moves forward).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Real time: `Timestamp::now`, `Instant::now` and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when advanced or slept on: `sleep(d)` returns at once and
/// moves time forward by `d`, and is recorded so a test can assert how long the code
/// *would* have waited.
#[derive(Debug)]
pub struct ManualClock {
    start: Timestamp,
    start_instant: Instant,
    state: Mutex<ManualState>,
}

#[derive(Debug, Default)]
struct ManualState {
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { start, start_instant: Instant::now(), state: Mutex::new(ManualState::default()) }
    }

    /// A clock standing at the real now.
    pub fn starting_now() -> Self {
        ManualClock::new(Timestamp::now())
    }

    /// Move time forward without recording a sleep. Time never moves back: a negative
    /// span is ignored.
    pub fn advance(&self, by: SignedDuration) {
        if let Ok(by) = Duration::try_from(by) {
            self.advance_std(by);
        }
    }

    /// [`ManualClock::advance`] by a `std` duration.
    pub fn advance_std(&self, by: Duration) {
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

    fn elapsed(&self) -> Duration {
        self.state.lock().expect("clock lock").elapsed
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::starting_now()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.elapsed()).unwrap_or(SignedDuration::MAX);
        self.start.saturating_add(elapsed).unwrap_or(Timestamp::MAX)
    }

    fn instant(&self) -> Instant {
        self.start_instant + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut state = self.state.lock().expect("clock lock");
        state.elapsed += duration;
        state.sleeps.push(duration);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_records_what_it_slept() {
        let start: Timestamp = "2026-03-08T09:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        let before = clock.instant();
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_hours(24));
        assert_eq!(clock.now(), "2026-03-09T09:00:00Z".parse::<Timestamp>().unwrap());
        clock.advance(SignedDuration::from_secs(-5));
        assert_eq!(clock.now(), "2026-03-09T09:00:00Z".parse::<Timestamp>().unwrap(), "time never runs back");
        futures_lite_block_on(clock.sleep(Duration::from_secs(3)));
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(3)]);
        assert_eq!(clock.instant() - before, Duration::from_secs(24 * 3600 + 3));
    }

    /// Poll a future that is ready at once (a manual clock's sleep).
    fn futures_lite_block_on(fut: BoxFuture<'static, ()>) {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = fut;
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    }
}
