//! The `sim_plan` target: the simulator driven by the input's bytes. Each input is a plan
//! ([`Plan::from_bytes`]: a seed, then one step per few bytes), run against the model with
//! every oracle. A violation is a finding, and libFuzzer's minimisation of the input shrinks
//! the plan. `jetsim run --plan FILE` replays one: the panic message of a violation carries
//! the plan as JSON. An engine panic (rather than a violation) aborts a libFuzzer run before
//! any plan is printed: replay its crash file with `cargo +nightly fuzz run sim_plan FILE`,
//! or on stable by putting it in `fuzz/regressions/sim_plan/` (`cargo test -p jetsim --test
//! fuzz_corpus` names it), and decode it with `Plan::from_bytes`.

use jetdb::PlantedBug;

use crate::run::{RunOptions, RunReport, run};
use crate::sabotage::Sabotage;
use crate::workload::Plan;

/// The target: panics with the violation and the plan (as JSON) if any oracle fires (an
/// engine panic propagates as it is, without the plan).
pub fn sim_plan(data: &[u8]) {
    sim_plan_with(data, None);
}

/// [`sim_plan`] with `bug` planted in the engine (as `--sabotage engine:NAME` does), returning
/// the run's report: its coverage marks show the path the input took.
pub fn sim_plan_with(data: &[u8], bug: Option<PlantedBug>) -> RunReport {
    let mut plan = Plan::from_bytes(data);
    plan.config.sabotage = bug.map(Sabotage::Engine);
    let report = run(&plan, RunOptions::default());
    if let Some(v) = &report.violation {
        panic!(
            "{v}\nplan: {}",
            serde_json::to_string(&plan).expect("plans serialise")
        );
    }
    report
}
