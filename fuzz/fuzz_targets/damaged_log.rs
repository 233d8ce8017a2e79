//! The `damaged_log` target; its body is `jetsim::fuzz::damaged_log` (sim/src/fuzz/damaged_log.rs), which
//! `cargo test -p jetsim --test fuzz_corpus` replays every corpus and regression file through.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetsim::fuzz::damaged_log::damaged_log(data));
