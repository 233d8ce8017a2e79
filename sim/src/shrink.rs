//! Shrinking a failing plan, and scenario files: a plan with what it must do (pass, or fire a
//! given oracle), checked in under `scenarios/` and run by `cargo test`.
//!
//! The shrinker removes steps while the same oracle still fires: first everything after the
//! failing step, then halves, quarters… down to single steps (a simple delta debugging). A
//! removed step changes how the disk's seeded choices fall later, so each candidate is run,
//! never assumed.

use serde::{Deserialize, Serialize};

use crate::oracle::{Oracle, Violation};
use crate::run::{RunOptions, run};
use crate::workload::Plan;

/// A checked-in scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// What it is about: the bug it caught, the behaviour it pins down.
    pub description: String,
    /// The oracle it must fire (a scenario over a sabotaged disk), or none: it must pass.
    #[serde(default)]
    pub expect: Option<Oracle>,
    /// The plan.
    pub plan: Plan,
}

impl Scenario {
    /// Runs the scenario; `Err` says how it missed its expectation.
    pub fn check(&self) -> Result<(), String> {
        self.plan.config.validate()?;
        let report = run(&self.plan, RunOptions::default());
        match (&self.expect, &report.violation) {
            (None, None) => Ok(()),
            (Some(want), Some(v)) if v.oracle == *want => Ok(()),
            (None, Some(v)) => Err(format!("it should pass, but {v}")),
            (Some(want), None) => Err(format!("oracle {want} should fire, but the run passed")),
            (Some(want), Some(v)) => Err(format!("oracle {want} should fire, but {v}")),
        }
    }
}

/// The result of shrinking.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing plan found.
    pub plan: Plan,
    /// Its violation.
    pub violation: Violation,
    /// Runs made.
    pub runs: u64,
}

/// Shrinks `plan`, which must fail, keeping the oracle it fires. Makes at most `max_runs`
/// runs. `None` if the plan does not fail.
pub fn shrink(plan: &Plan, max_runs: u64) -> Option<Shrunk> {
    let runs = std::cell::Cell::new(0u64);
    let fails = |candidate: &Plan, oracle: Option<Oracle>| -> Option<Violation> {
        runs.set(runs.get() + 1);
        let v = run(candidate, RunOptions::default()).violation?;
        oracle.is_none_or(|o| o == v.oracle).then_some(v)
    };
    let mut violation = fails(plan, None)?;
    let oracle = violation.oracle;
    let mut best = plan.clone();
    // Steps after the failing one never ran (unless it failed in the final phase).
    if violation.step + 1 < best.steps.len() {
        let mut cut = best.clone();
        cut.steps.truncate(violation.step + 1);
        if let Some(v) = fails(&cut, Some(oracle)) {
            best = cut;
            violation = v;
        }
    }
    let mut chunk = best.steps.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < best.steps.len() && runs.get() < max_runs {
            let mut candidate = best.clone();
            let end = (i + chunk).min(candidate.steps.len());
            candidate.steps.drain(i..end);
            match fails(&candidate, Some(oracle)) {
                Some(v) => {
                    best = candidate;
                    violation = v;
                }
                None => i += chunk,
            }
        }
        if chunk == 1 || runs.get() >= max_runs {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    best.config.steps = best.steps.len() as u32;
    Some(Shrunk {
        plan: best,
        violation,
        runs: runs.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sabotage::Sabotage;
    use crate::vfs::Zone;

    #[test]
    fn shrinking_keeps_the_oracle_and_drops_steps() {
        // A disk that skips the log's fsync loses durable commits at the first power loss.
        let failing = (0..200)
            .map(|seed| {
                let mut config = Config::swarm(seed);
                config.steps = 120;
                config.sabotage = Some(Sabotage::SkipSync(Zone::Log));
                Plan::generate(config)
            })
            .find(|plan| run(plan, RunOptions::default()).violation.is_some())
            .expect("a sabotaged log fails within 200 seeds");
        let before = run(&failing, RunOptions::default()).violation.unwrap();
        let shrunk = shrink(&failing, 400).expect("it fails");
        assert_eq!(shrunk.violation.oracle, before.oracle);
        assert!(shrunk.plan.steps.len() < failing.steps.len() / 2);
        let again = run(&shrunk.plan, RunOptions::default()).violation.unwrap();
        assert_eq!(again.oracle, before.oracle);
        let scenario = Scenario {
            description: "round trip".into(),
            expect: Some(before.oracle),
            plan: shrunk.plan,
        };
        let json = serde_json::to_string(&scenario).unwrap();
        let back: Scenario = serde_json::from_str(&json).unwrap();
        assert_eq!(back.check(), Ok(()));
    }
}
