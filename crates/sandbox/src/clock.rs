//! The sandbox's virtual clock: ShipStation's own time in the fake ShipStation (and
//! the sandbox ERP's), not shipledger's. It is real time plus an offset that tests
//! move forward with `POST /_sandbox/clock/advance`, so a "24 hours later" story needs
//! no sleep. Every timestamp the sandbox writes, its rate-limit windows and its
//! simulator read this clock.
//!
//! It implements shipledger's one [`Clock`] trait, so code that takes a clock can run
//! on the sandbox's time, but it is a different clock from the one shipledger's
//! engine is given: moving the sandbox's clock is "ShipStation's time moved", seen by
//! shipledger only through what ShipStation answers; moving a
//! [`ManualClock`](shipledger_core::clock::ManualClock) injected into the engine is
//! "shipledger's time moved". A story where a day passes for both moves both.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use shipledger_core::clock::{BoxFuture, Clock};

#[derive(Debug, Default)]
pub struct VirtualClock {
    offset_ms: AtomicI64,
}

impl VirtualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Now, as the sandbox sees it.
    pub fn now(&self) -> Timestamp {
        Timestamp::now() + SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Move the clock forward (never back: ShipStation's time does not run backwards).
    pub fn advance(&self, by: SignedDuration) {
        let ms = by.as_millis().max(0) as i64;
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far the clock runs ahead of real time.
    pub fn offset(&self) -> SignedDuration {
        SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        VirtualClock::now(self)
    }

    /// Real monotonic time plus the offset (which is never negative).
    fn instant(&self) -> Instant {
        let offset = Duration::from_millis(self.offset_ms.load(Ordering::SeqCst).max(0) as u64);
        Instant::now() + offset
    }

    /// Waiting takes real time: the virtual clock runs at real speed between advances.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_the_clock_moves_now_forward_and_never_back() {
        let clock = VirtualClock::new();
        let before = clock.now();
        clock.advance(SignedDuration::from_hours(24));
        assert!(clock.now() >= before + SignedDuration::from_hours(24));
        clock.advance(SignedDuration::from_hours(-48));
        assert!(clock.now() >= before + SignedDuration::from_hours(24));
    }

    #[test]
    fn as_a_clock_its_instant_runs_ahead_by_the_same_offset() {
        let clock = VirtualClock::new();
        let dyn_clock: &dyn Clock = &clock;
        let before = dyn_clock.instant();
        let wall_before = dyn_clock.now();
        clock.advance(SignedDuration::from_hours(2));
        assert!(dyn_clock.instant() - before >= Duration::from_secs(2 * 3600));
        assert!(dyn_clock.now().duration_since(wall_before) >= SignedDuration::from_hours(2));
    }
}
