//! The `damaged_backup` target; its body is `jetsim::fuzz::damaged_backup` (sim/src/fuzz/damaged_backup.rs), which
//! `cargo test -p jetsim --test fuzz_corpus` replays every corpus and regression file through.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetsim::fuzz::damaged_backup::damaged_backup(data));
