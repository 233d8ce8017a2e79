//! Campaigns: many seeds over worker threads (each run single-threaded and deterministic),
//! with coverage totals, optional determinism checks, and JSON and JUnit reports for CI.

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::coverage::{Coverage, EXPECT_FROM_SEEDS, Mark};
use crate::oracle::Violation;
use crate::run::{RunOptions, RunReport, run};
use crate::sabotage::Sabotage;
use crate::trace::{Keep, first_divergence};
use crate::workload::Plan;

/// What a campaign runs.
#[derive(Clone, Debug)]
pub struct CampaignOptions {
    /// The first seed.
    pub start: u64,
    /// How many seeds (before sharding).
    pub seeds: u64,
    /// Worker threads.
    pub jobs: usize,
    /// Run only shard `k` of `n` (1-based): seeds whose offset from `start` is `k - 1`
    /// modulo `n`.
    pub shard: Option<(u64, u64)>,
    /// Steps per run, if not the default.
    pub steps: Option<u32>,
    /// A deliberate bug under the engine.
    pub sabotage: Option<Sabotage>,
    /// Run every seed twice and compare traces.
    pub check_determinism: bool,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

impl CampaignOptions {
    /// The seeds this campaign (or its shard) runs.
    pub fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds)
            .filter(|i| self.shard.is_none_or(|(k, n)| i % n == k - 1))
            .map(|i| self.start.wrapping_add(i))
            .collect()
    }

    /// The plan of `seed` under these options.
    pub fn plan(&self, seed: u64) -> Plan {
        plan_for(seed, self.steps, self.sabotage)
    }
}

/// The plan of `seed`, with the step count and sabotage given.
pub fn plan_for(seed: u64, steps: Option<u32>, sabotage: Option<Sabotage>) -> Plan {
    let mut config = Config::swarm(seed);
    if let Some(steps) = steps {
        config.steps = steps;
    }
    config.sabotage = sabotage;
    Plan::generate(config)
}

/// The command that replays `seed` under these options.
pub fn replay_command(seed: u64, steps: Option<u32>, sabotage: Option<Sabotage>) -> String {
    let mut cmd = format!("jetsim run --seed {seed}");
    if let Some(steps) = steps {
        cmd.push_str(&format!(" --steps {steps}"));
    }
    if let Some(s) = sabotage {
        cmd.push_str(&format!(" --sabotage {s}"));
    }
    cmd
}

/// One seed's result.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The broken promise, if any.
    pub violation: Option<Violation>,
    /// Where a second run diverged, if determinism was checked and failed.
    pub divergence: Option<String>,
    /// The trace hash.
    pub trace: String,
    /// Engine calls made.
    pub operations: u64,
    /// Wall-clock seconds the run took (not part of the trace).
    pub seconds: f64,
    /// The run ended early on detected corruption.
    pub ended_by_corruption: Option<String>,
    #[serde(skip)]
    coverage: Coverage,
}

impl SeedResult {
    /// Whether the seed passed.
    pub fn passed(&self) -> bool {
        self.violation.is_none() && self.divergence.is_none()
    }
}

/// A campaign's results.
#[derive(Clone, Debug)]
pub struct CampaignReport {
    /// Each seed's result, by seed.
    pub results: Vec<SeedResult>,
    /// Marks over all runs.
    pub coverage: Coverage,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Expected marks that never fired (checked only for large enough default campaigns).
    pub missing: Vec<Mark>,
}

impl CampaignReport {
    /// Seeds that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }

    /// Seeds that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether the campaign as a whole passed: every seed, and every expected mark.
    pub fn ok(&self) -> bool {
        self.failed() == 0 && self.missing.is_empty()
    }

    /// Seeds per wall-clock second.
    pub fn seeds_per_second(&self) -> f64 {
        self.results.len() as f64 / self.seconds.max(1e-9)
    }

    /// Engine calls per wall-clock second.
    pub fn operations_per_second(&self) -> f64 {
        self.results.iter().map(|r| r.operations).sum::<u64>() as f64 / self.seconds.max(1e-9)
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps panic messages off the terminal while campaigns run (a panic is reported as a
/// violation, with its location).
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
}

/// The last panic's message and location on this thread, taken.
pub fn take_last_panic() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow_mut().take())
}

/// Runs `plan` once, or twice when checking determinism; names the first divergence.
pub fn run_checked(plan: &Plan, check_determinism: bool) -> (RunReport, Option<String>) {
    let first = run(plan, RunOptions::default());
    if !check_determinism {
        return (first, None);
    }
    let second = run(plan, RunOptions::default());
    if first.trace_hash == second.trace_hash {
        return (first, None);
    }
    let keep = RunOptions {
        keep: Keep::Everything,
        ..RunOptions::default()
    };
    let (a, b) = (run(plan, keep), run(plan, keep));
    let divergence = match first_divergence(&a.trace, &b.trace) {
        Some((i, x, y)) => format!(
            "traces {:016x} and {:016x} differ; first divergent event #{i}: {:?} vs {:?}",
            first.trace_hash, second.trace_hash, x, y
        ),
        None => format!(
            "traces {:016x} and {:016x} differ, but two kept traces agree (the divergence is intermittent)",
            first.trace_hash, second.trace_hash
        ),
    };
    (first, Some(divergence))
}

/// Runs a campaign.
pub fn campaign(options: &CampaignOptions) -> CampaignReport {
    let seeds = options.seed_list();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(seeds.len()));
    let bar = if options.progress {
        indicatif::ProgressBar::new(seeds.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {per_sec} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    let plan = options.plan(seed);
                    let t = Instant::now();
                    let (mut report, divergence) = run_checked(&plan, options.check_determinism);
                    if let Some(v) = &mut report.violation
                        && let Some(p) = take_last_panic()
                    {
                        v.detail = p;
                    }
                    let result = SeedResult {
                        seed,
                        trace: format!("{:016x}", report.trace_hash),
                        operations: report.operations,
                        seconds: t.elapsed().as_secs_f64(),
                        ended_by_corruption: report.ended_by_corruption.clone(),
                        violation: report.violation,
                        divergence,
                        coverage: report.coverage,
                    };
                    if !result.passed() {
                        let n = failures.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{n} failed"));
                        bar.println(format!("seed {seed} FAILED: {}", describe(&result)));
                    }
                    results.lock().expect("no panic holds it").push(result);
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let mut results = results.into_inner().expect("no panic holds it");
    results.sort_by_key(|r| r.seed);
    let mut coverage = Coverage::default();
    for r in &results {
        coverage.merge(&r.coverage);
    }
    let default_profile = options.steps.is_none() && options.sabotage.is_none();
    let missing = if default_profile && results.len() as u64 >= EXPECT_FROM_SEEDS {
        coverage.missing()
    } else {
        Vec::new()
    };
    CampaignReport {
        results,
        coverage,
        seconds,
        missing,
    }
}

/// A failed seed in one line.
pub fn describe(result: &SeedResult) -> String {
    match (&result.violation, &result.divergence) {
        (Some(v), _) => v.to_string(),
        (None, Some(d)) => format!("non-determinism: {d}"),
        (None, None) => "passed".into(),
    }
}

/// The campaign as JSON, for tools.
pub fn json_report(options: &CampaignOptions, report: &CampaignReport) -> serde_json::Value {
    let failures: Vec<serde_json::Value> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            serde_json::json!({
                "seed": r.seed,
                "violation": r.violation,
                "divergence": r.divergence,
                "replay": replay_command(r.seed, options.steps, options.sabotage),
            })
        })
        .collect();
    let coverage: serde_json::Map<String, serde_json::Value> = Mark::ALL
        .iter()
        .map(|m| (m.name(), report.coverage.count(*m).into()))
        .collect();
    serde_json::json!({
        "seeds": report.results.len(),
        "start": options.start,
        "shard": options.shard.map(|(k, n)| format!("{k}/{n}")),
        "passed": report.passed(),
        "failed": report.failed(),
        "seconds": report.seconds,
        "seeds_per_second": report.seeds_per_second(),
        "operations_per_second": report.operations_per_second(),
        "coverage": coverage,
        "missing_marks": report.missing.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "failures": failures,
        "ended_by_detected_corruption": report.results.iter().filter(|r| r.ended_by_corruption.is_some()).count(),
        "results": report.results,
    })
}

/// The campaign as JUnit XML: one test case per seed, for CI systems to show failures.
pub fn junit_report(options: &CampaignOptions, report: &CampaignReport) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("jetsim campaign");
    for r in &report.results {
        let status = if r.passed() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(describe(r));
            s.set_description(format!(
                "replay: {}",
                replay_command(r.seed, options.steps, options.sabotage)
            ));
            s
        };
        let mut case = TestCase::new(format!("seed {}", r.seed), status);
        case.set_time(std::time::Duration::from_secs_f64(r.seconds));
        suite.add_test_case(case);
    }
    if !report.missing.is_empty() {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(format!(
            "expected coverage marks never fired: {:?}",
            report.missing.iter().map(|m| m.name()).collect::<Vec<_>>()
        ));
        suite.add_test_case(TestCase::new("coverage", s));
    }
    let mut junit = Report::new("jetsim");
    junit.add_test_suite(suite);
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- {e} -->"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_seeds_exactly() {
        let base = CampaignOptions {
            start: 100,
            seeds: 10,
            jobs: 1,
            shard: None,
            steps: None,
            sabotage: None,
            check_determinism: false,
            progress: false,
        };
        let all = base.seed_list();
        assert_eq!(all, (100..110).collect::<Vec<_>>());
        let mut joined: Vec<u64> = (1..=3)
            .flat_map(|k| {
                CampaignOptions {
                    shard: Some((k, 3)),
                    ..base.clone()
                }
                .seed_list()
            })
            .collect();
        joined.sort_unstable();
        assert_eq!(joined, all);
    }
}
