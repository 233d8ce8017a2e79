//! The environment seams besides the file system: time and entropy, bundled with the [`Vfs`]
//! into an [`Env`] that every instance and database is created with.
//!
//! The engine reads the time only through a [`Clock`] and draws randomness (for database and
//! log signatures) only from an [`Entropy`] source, so that a simulator supplying a virtual
//! clock and a seeded source gets the same bytes on disk for the same seed.

use std::fmt;
use std::sync::{Arc, Mutex};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::base::vfs::Vfs;

/// A source of time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time in milliseconds since the Unix epoch, as recorded in headers.
    fn now_millis(&self) -> u64;
    /// A monotonic time in nanoseconds, for measuring durations; its origin is arbitrary.
    fn monotonic_nanos(&self) -> u64;
    /// Waits `nanos` nanoseconds (a backup's rate limit): a real clock sleeps, a clock that
    /// stands still unless advanced moves itself forward instead.
    fn sleep(&self, nanos: u64);
}

/// A source of random numbers for signatures.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// The next random 64-bit number.
    fn next_u64(&self) -> u64;
}

/// A deterministic [`Entropy`] source: ChaCha8 from a 64-bit seed.
#[derive(Debug)]
pub struct SeededEntropy {
    rng: Mutex<ChaCha8Rng>,
}

impl SeededEntropy {
    /// A source that yields the same numbers for the same `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }
}

impl Entropy for SeededEntropy {
    fn next_u64(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .next_u64()
    }
}

/// A [`Clock`] that stands still unless advanced: for tests and simulation.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: Mutex<u64>,
}

impl ManualClock {
    /// A clock at `millis` milliseconds after the Unix epoch.
    pub fn new(millis: u64) -> ManualClock {
        ManualClock {
            nanos: Mutex::new(millis.saturating_mul(1_000_000)),
        }
    }

    /// Moves the clock forward by `nanos` nanoseconds.
    pub fn advance(&self, nanos: u64) {
        let mut now = self
            .nanos
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *now = now.saturating_add(nanos);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.monotonic_nanos() / 1_000_000
    }

    fn monotonic_nanos(&self) -> u64 {
        *self
            .nanos
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn sleep(&self, nanos: u64) {
        self.advance(nanos);
    }
}

/// The environment an instance runs in: its file system, clock and entropy.
///
/// ```
/// use std::sync::Arc;
/// use jetdb::{Env, ManualClock, MemVfs, SeededEntropy};
/// let env = Env::new(Arc::new(MemVfs::new()), Arc::new(ManualClock::new(0)), Arc::new(SeededEntropy::new(7)));
/// assert_eq!(env.clock.now_millis(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct Env {
    /// Every file and directory operation.
    pub vfs: Arc<dyn Vfs>,
    /// Every reading of the time.
    pub clock: Arc<dyn Clock>,
    /// Every random number.
    pub entropy: Arc<dyn Entropy>,
    /// A deliberate bug the engine runs with (feature `planted-bugs`; see [`crate::planted`]).
    #[cfg(feature = "planted-bugs")]
    pub(crate) planted_bug: Option<crate::base::planted::PlantedBug>,
}

impl Env {
    /// An environment of the given parts.
    pub fn new(vfs: Arc<dyn Vfs>, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Env {
        Env {
            vfs,
            clock,
            entropy,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    /// The same environment, with the engine running `bug` (feature `planted-bugs`): for
    /// showing that the simulator catches it.
    #[cfg(feature = "planted-bugs")]
    pub fn with_planted_bug(mut self, bug: Option<crate::base::planted::PlantedBug>) -> Env {
        self.planted_bug = bug;
        self
    }

    /// An in-memory, deterministic environment: a [`MemVfs`](crate::MemVfs), a clock stopped at
    /// the epoch, and entropy from `seed`. For tests and examples.
    pub fn memory(seed: u64) -> Env {
        Env::new(
            Arc::new(crate::base::vfs::MemVfs::new()),
            Arc::new(ManualClock::new(0)),
            Arc::new(SeededEntropy::new(seed)),
        )
    }
}

#[cfg(feature = "planted-bugs")]
impl crate::base::planted::Host for Env {
    fn planted_bug(&self) -> Option<crate::base::planted::PlantedBug> {
        self.planted_bug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_entropy_is_deterministic() {
        let a = SeededEntropy::new(42);
        let b = SeededEntropy::new(42);
        let c = SeededEntropy::new(43);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], c.next_u64());
    }

    #[test]
    fn manual_clock_advances() {
        let clock = ManualClock::new(5);
        assert_eq!(clock.now_millis(), 5);
        clock.advance(2_000_000);
        assert_eq!(clock.now_millis(), 7);
        clock.sleep(3_000_000);
        assert_eq!(clock.now_millis(), 10);
    }
}
