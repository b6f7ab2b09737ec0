//! The sandbox's virtual clock: real time plus an offset that tests move forward with
//! `POST /_sandbox/clock/advance`, so a "24 hours later" story needs no sleep. Every
//! timestamp the sandbox writes, its rate-limit windows and its simulator read this
//! clock.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_the_clock_moves_now_forward_and_never_back() {
        let clock = Clock::new();
        let before = clock.now();
        clock.advance(SignedDuration::from_hours(24));
        assert!(clock.now() >= before + SignedDuration::from_hours(24));
        clock.advance(SignedDuration::from_hours(-48));
        assert!(clock.now() >= before + SignedDuration::from_hours(24));
    }
}
