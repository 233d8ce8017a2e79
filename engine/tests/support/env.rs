//! Deterministic environments: a `Vfs` with a stopped clock and seeded entropy, so that a test
//! writes the same bytes on every run.

use std::path::Path;
use std::sync::Arc;

use jetdb::{Env, ManualClock, MemVfs, OpenMode, SeededEntropy, Vfs};

/// An environment over `vfs` whose entropy comes from `seed` and whose clock stands at
/// `millis`.
pub fn env_with(vfs: impl Vfs + 'static, seed: u64, millis: u64) -> Env {
    Env::new(
        Arc::new(vfs),
        Arc::new(ManualClock::new(millis)),
        Arc::new(SeededEntropy::new(seed)),
    )
}

/// A deterministic environment over `vfs`: seed 1, the clock at the epoch. The database-level
/// tests' environment.
pub fn env_over(vfs: impl Vfs + 'static) -> Env {
    env_with(vfs, 1, 0)
}

/// A deterministic environment over `vfs`: seed 1, the clock 1 ms past the epoch. The
/// instance-level tests' environment (backup, failures, lost writes).
pub fn env(vfs: impl Vfs + 'static) -> Env {
    env_with(vfs, 1, 1)
}

/// An in-memory environment ([`env_over`]) whose file `d.edb` holds `bytes`.
pub fn env_holding(bytes: &[u8]) -> Env {
    let vfs = MemVfs::new();
    vfs.open(Path::new("d.edb"), OpenMode::CreateNew)
        .unwrap()
        .write_all_at(bytes, 0)
        .unwrap();
    env_over(vfs)
}
