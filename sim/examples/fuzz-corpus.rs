//! Writes the fuzz targets' seed corpus (`jetsim::fuzz::seeds`) to `fuzz/corpus/<target>/`:
//! `cargo run -p jetsim --example fuzz-corpus`. Deterministic; rerun after changing an input
//! format, and commit the result (`sim/tests/fuzz_corpus.rs` checks it is current).

use std::path::Path;

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let n = jetsim::fuzz::seeds::write(&fuzz)?;
    println!(
        "wrote {n} seed inputs under {}",
        fuzz.join("corpus").display()
    );
    Ok(())
}
