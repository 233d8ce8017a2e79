//! The `sim_plan` target; its body is `jetsim::fuzz::sim_plan` (sim/src/fuzz/sim_plan.rs), which
//! `cargo test -p jetsim --test fuzz_corpus` replays every corpus and regression file through.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetsim::fuzz::sim_plan::sim_plan(data));
