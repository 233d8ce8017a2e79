//! The simulated clock: virtual time that moves only when the simulator advances it, so a
//! run's timestamps (log headers, checkpoints) are a function of its seed.

use std::sync::atomic::{AtomicU64, Ordering};

use jetdb::Clock;

/// Virtual time, in nanoseconds since the Unix epoch.
#[derive(Debug)]
pub struct SimClock {
    nanos: AtomicU64,
}

/// Where simulated time starts: 2026-01-01T00:00:00Z.
pub const EPOCH_MILLIS: u64 = 1_767_225_600_000;

impl SimClock {
    /// A clock at [`EPOCH_MILLIS`].
    pub fn new() -> SimClock {
        SimClock {
            nanos: AtomicU64::new(EPOCH_MILLIS * 1_000_000),
        }
    }

    /// Moves time forward by `millis` milliseconds.
    pub fn advance_millis(&self, millis: u64) {
        self.nanos
            .fetch_add(millis.saturating_mul(1_000_000), Ordering::Relaxed);
    }

    /// Milliseconds of simulated time since [`EPOCH_MILLIS`].
    pub fn elapsed_millis(&self) -> u64 {
        self.now_millis() - EPOCH_MILLIS
    }
}

impl Default for SimClock {
    fn default() -> SimClock {
        SimClock::new()
    }
}

impl Clock for SimClock {
    fn now_millis(&self) -> u64 {
        self.monotonic_nanos() / 1_000_000
    }

    fn monotonic_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }

    fn sleep(&self, nanos: u64) {
        // Virtual time: a wait passes at once, and the clock moves past it.
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_only_when_advanced() {
        let clock = SimClock::new();
        assert_eq!(clock.now_millis(), EPOCH_MILLIS);
        assert_eq!(clock.now_millis(), EPOCH_MILLIS);
        clock.advance_millis(1500);
        assert_eq!(clock.elapsed_millis(), 1500);
    }
}
