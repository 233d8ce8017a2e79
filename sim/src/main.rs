//! `jetsim`: the deterministic simulator for `jetdb`.
//!
//! Not built yet: the simulated disk, clock, workload, model and oracles arrive with the
//! simulator issue. Until then this binary says so and exits successfully, so scripts that
//! call it learn the state of things instead of failing on a missing binary.

fn main() {
    eprintln!(
        "jetsim {}: the simulator is not built yet; try `jetutil` (cargo run -p jetdb --bin jetutil -- --help)",
        env!("CARGO_PKG_VERSION")
    );
}
