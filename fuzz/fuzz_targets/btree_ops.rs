//! The `btree_ops` target; its body is `jetsim::fuzz::btree_ops` (sim/src/fuzz/btree_ops.rs), which
//! `cargo test -p jetsim --test fuzz_corpus` replays every corpus and regression file through.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jetsim::fuzz::btree_ops::btree_ops(data));
