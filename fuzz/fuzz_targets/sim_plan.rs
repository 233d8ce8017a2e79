//! The simulator driven by the fuzzer's bytes: each input is a plan (`Plan::from_bytes`:
//! a seed, then one step per few bytes), run against the model with every oracle. A
//! violation is a crash here, and libFuzzer's minimisation of the input shrinks the plan.
//! `jetsim run --plan` replays one: write the plan with `Plan::from_bytes` and serde_json.
#![no_main]

use jetsim::{Plan, RunOptions, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plan = Plan::from_bytes(data);
    let report = run(&plan, RunOptions::default());
    if let Some(v) = report.violation {
        panic!(
            "{v}\nplan: {}",
            serde_json::to_string(&plan).expect("plans serialise")
        );
    }
});
