//! Writes the fuzz targets' seed corpus (`jetsim::fuzz::seeds`) to `fuzz/corpus/<target>/`:
//! `cargo run -p jetsim --example fuzz-corpus`. Deterministic; rerun after changing an input
//! format, and commit the result (`sim/tests/fuzz_corpus.rs` checks it is current). With
//! `--regressions` it also writes the hand-made past-bug-area inputs to `fuzz/regressions/`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let regressions = std::env::args().any(|a| a == "--regressions");
    let n = jetsim::fuzz::seeds::write(&fuzz, regressions)?;
    println!("wrote {n} inputs under {}", fuzz.display());
    Ok(())
}
