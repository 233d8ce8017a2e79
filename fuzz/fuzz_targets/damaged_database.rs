//! The `damaged_database` target; its body is `jetsim::fuzz::damaged_database` (sim/src/fuzz/damaged_database.rs), which
//! `cargo test -p jetsim --test fuzz_corpus` replays every corpus and regression file through.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetsim::fuzz::damaged_database::damaged_database(data));
