//! The fuzz targets' bodies, callable on stable Rust.
//!
//! Each `fuzz/fuzz_targets/<target>.rs` binary is one line that calls the function of the same
//! name here, so `cargo test` can replay every checked-in corpus and regression file through
//! exactly the code libFuzzer runs (`sim/tests/fuzz_corpus.rs`). A function panics on a
//! finding, as a fuzz target must; its `*_with` variant also takes an engine bug to plant (to
//! show a replayed input has teeth) and returns which path the input took, so a test can show
//! that the seed corpus reaches the deep paths.
//!
//! The `damaged_*` targets build their pristine state once per process (a `OnceLock`) and
//! decode the damage from the input with [`arbitrary`]; [`encode`] writes those inputs, for
//! the seed-corpus generator (`cargo run -p jetsim --example fuzz-corpus`).

pub mod btree_ops;
pub mod damaged_backup;
pub mod damaged_database;
pub mod damaged_log;
pub mod encode;
pub mod seeds;
pub mod sim_plan;

/// A fuzz target: its name (the binary's and the corpus directory's) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by the name of its binary in `fuzz/fuzz_targets/` and its corpus directory.
pub const TARGETS: [Target; 5] = [
    ("btree_ops", btree_ops::btree_ops),
    ("damaged_backup", damaged_backup::damaged_backup),
    ("damaged_database", damaged_database::damaged_database),
    ("damaged_log", damaged_log::damaged_log),
    ("sim_plan", sim_plan::sim_plan),
];

/// The function of the target named `name`, if there is one.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
