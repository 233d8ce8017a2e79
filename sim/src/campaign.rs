//! Campaigns: many seeds over worker threads (each run single-threaded and deterministic),
//! with coverage totals, optional determinism checks, and JSON and JUnit reports for CI.
//!
//! A campaign may be one shard of several (`--shard K/N`, or from the environment:
//! [`resolve_shard`]) and may be time-boxed ([`campaign_within`]); `jetsim merge`
//! ([`crate::merge`]) puts the shards' JSON reports back together.

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
    /// How many seeds (before sharding); [`UNBOUNDED`] for a time-boxed campaign with no
    /// upper bound.
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

/// `seeds` of a time-boxed campaign without an upper bound.
pub const UNBOUNDED: u64 = u64::MAX;

/// The `format` field of a campaign's JSON report; `jetsim merge` refuses any other.
pub const REPORT_FORMAT: &str = "jetsim-campaign/1";

impl CampaignOptions {
    /// The `i`-th seed this campaign (or its shard) runs, if it has that many: shard `k` of
    /// `n` takes the seeds whose offset from `start` is `k - 1` modulo `n`.
    pub fn seed_at(&self, i: u64) -> Option<u64> {
        let offset = self.offset_at(i)?;
        Some(self.start.wrapping_add(offset))
    }

    /// The offset from `start` of the `i`-th seed this campaign (or its shard) runs.
    fn offset_at(&self, i: u64) -> Option<u64> {
        let offset = match self.shard {
            Some((k, n)) => i.checked_mul(n)?.checked_add(k - 1)?,
            None => i,
        };
        (offset < self.seeds).then_some(offset)
    }

    /// How many seeds this campaign (or its shard) runs when not cut short by a time box.
    pub fn seed_count(&self) -> u64 {
        match self.shard {
            Some((k, n)) if self.seeds >= k => (self.seeds - k) / n + 1,
            Some(_) => 0,
            None => self.seeds,
        }
    }

    /// The range of seeds `start..end` whose first `count` seeds of this campaign (or its
    /// shard) fall in: the `--start` and `--seeds` that run exactly them again.
    pub fn covered(&self, count: u64) -> (u64, u64) {
        let end = match count.checked_sub(1).and_then(|i| self.offset_at(i)) {
            Some(last) => last + 1,
            None => 0,
        };
        (self.start, self.start.wrapping_add(end))
    }

    /// The command that runs the first `count` seeds of this campaign (or its shard) again,
    /// and nothing else.
    pub fn replay_range_command(&self, count: u64) -> String {
        let (start, end) = self.covered(count);
        let mut cmd = format!(
            "jetsim campaign --start {start} --seeds {}",
            end.wrapping_sub(start)
        );
        if let Some((k, n)) = self.shard {
            cmd.push_str(&format!(" --shard {k}/{n}"));
        }
        if let Some(steps) = self.steps {
            cmd.push_str(&format!(" --steps {steps}"));
        }
        if let Some(s) = self.sabotage {
            cmd.push_str(&format!(" --sabotage {s}"));
        }
        if self.check_determinism {
            cmd.push_str(" --check-determinism");
        }
        cmd
    }

    /// Whether this is one shard of several: its coverage verdict is left to `jetsim merge`.
    pub fn sharded(&self) -> bool {
        self.shard.is_some_and(|(_, n)| n > 1)
    }

    /// The plan of `seed` under these options.
    pub fn plan(&self, seed: u64) -> Plan {
        plan_for(seed, self.steps, self.sabotage)
    }
}

/// The most shards a campaign may have: far more than machines anyone has, and few enough
/// for a merge to name the missing ones.
pub const MAX_SHARDS: u64 = 1_000_000;

/// Parses `K/N` (1-based, `1 <= K <= N <= MAX_SHARDS`).
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("shard {text:?} is not K/N with 1 <= K <= N");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    if n > MAX_SHARDS {
        return Err(format!("shard {text:?}: at most {MAX_SHARDS} shards"));
    }
    Ok((k, n))
}

/// A shard: `(K, N)`, shard K (1-based) of N.
pub type Shard = (u64, u64);

/// Where a campaign's shard came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardSource {
    /// The `--shard` flag.
    Flag,
    /// `JETSIM_SHARD=K/N`.
    JetsimShard,
    /// A Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` (0-based) with `JETSIM_SHARDS=N`.
    CompletionIndex,
}

impl std::fmt::Display for ShardSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShardSource::Flag => "--shard",
            ShardSource::JetsimShard => "JETSIM_SHARD",
            ShardSource::CompletionIndex => "JOB_COMPLETION_INDEX and JETSIM_SHARDS",
        })
    }
}

/// The shard-related environment variables, as read (an empty value counts as unset, so a
/// CI template that leaves one blank does not break a run).
#[derive(Clone, Debug, Default)]
pub struct ShardEnv {
    /// `JETSIM_SHARD`.
    pub jetsim_shard: Option<String>,
    /// `JOB_COMPLETION_INDEX`.
    pub completion_index: Option<String>,
    /// `JETSIM_SHARDS`.
    pub jetsim_shards: Option<String>,
}

impl ShardEnv {
    /// Reads the variables from this process's environment; one that is not UTF-8 is an
    /// error (taking it for unset could run the whole campaign in every shard).
    pub fn from_process() -> Result<ShardEnv, String> {
        let var = |name: &str| match std::env::var_os(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|v| format!("{name}={v:?} is not UTF-8")),
        };
        Ok(ShardEnv {
            jetsim_shard: var("JETSIM_SHARD")?,
            completion_index: var("JOB_COMPLETION_INDEX")?,
            jetsim_shards: var("JETSIM_SHARDS")?,
        })
    }
}

/// Which shard to run: the `--shard` flag, else `JETSIM_SHARD=K/N`, else
/// `JOB_COMPLETION_INDEX=I` with `JETSIM_SHARDS=N` (shard `I + 1` of `N`), else the whole
/// campaign. A malformed or inconsistent value is an error, never a silent full campaign —
/// and so is `JETSIM_SHARD` beside `JETSIM_SHARDS` or `JOB_COMPLETION_INDEX` that disagree
/// with it (which one the deployment meant is unknown).
pub fn resolve_shard(
    flag: Option<Shard>,
    env: &ShardEnv,
) -> Result<Option<(Shard, ShardSource)>, String> {
    if let Some(shard) = flag {
        return Ok(Some((shard, ShardSource::Flag)));
    }
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|t| !t.is_empty())
    }
    if let Some(text) = set(&env.jetsim_shard) {
        let (k, n) = parse_shard(text).map_err(|e| format!("JETSIM_SHARD: {e}"))?;
        if let Some(shards) = set(&env.jetsim_shards)
            && shards.parse::<u64>().ok() != Some(n)
        {
            return Err(format!(
                "JETSIM_SHARD={text} disagrees with JETSIM_SHARDS={shards}: unset one"
            ));
        }
        if let Some(index) = set(&env.completion_index)
            && index.parse::<u64>().ok().and_then(|i| i.checked_add(1)) != Some(k)
        {
            return Err(format!(
                "JETSIM_SHARD={text} disagrees with JOB_COMPLETION_INDEX={index} (0-based): unset one"
            ));
        }
        return Ok(Some(((k, n), ShardSource::JetsimShard)));
    }
    match (set(&env.completion_index), set(&env.jetsim_shards)) {
        (None, None) => Ok(None),
        (Some(index), None) => Err(format!(
            "JOB_COMPLETION_INDEX={index} is set but JETSIM_SHARDS (the number of shards) is not"
        )),
        (None, Some(n)) => Err(format!(
            "JETSIM_SHARDS={n} is set but neither JETSIM_SHARD nor JOB_COMPLETION_INDEX says which shard to run"
        )),
        (Some(index), Some(n)) => {
            let index: u64 = index
                .parse()
                .map_err(|_| format!("JOB_COMPLETION_INDEX={index:?} is not a number"))?;
            let n: u64 = n
                .parse()
                .map_err(|_| format!("JETSIM_SHARDS={n:?} is not a number"))?;
            if n == 0 {
                return Err("JETSIM_SHARDS=0: there must be at least one shard".into());
            }
            if n > MAX_SHARDS {
                return Err(format!("JETSIM_SHARDS={n}: at most {MAX_SHARDS} shards"));
            }
            if index >= n {
                return Err(format!(
                    "JOB_COMPLETION_INDEX={index} is not below JETSIM_SHARDS={n} (the index is 0-based)"
                ));
            }
            Ok(Some(((index + 1, n), ShardSource::CompletionIndex)))
        }
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

/// The command that runs `seed` again writing its timeline (an HTML view of the run).
pub fn timeline_command(seed: u64, steps: Option<u32>, sabotage: Option<Sabotage>) -> String {
    format!(
        "{} --timeline seed-{seed}.html",
        replay_command(seed, steps, sabotage)
    )
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
    /// Each seed's result, in run order (by offset from `start`).
    pub results: Vec<SeedResult>,
    /// Marks over all runs.
    pub coverage: Coverage,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Expected marks that never fired (checked only for large enough default campaigns).
    pub missing: Vec<Mark>,
    /// The time box, if the campaign had one.
    pub duration: Option<Duration>,
    /// Whether `missing` is only reported, the verdict on coverage left to `jetsim merge`
    /// (a shard of several may miss a rare mark another shard reaches).
    pub coverage_left_to_merge: bool,
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

    /// Whether the campaign as a whole passed: every seed, and every expected mark (unless
    /// that verdict is left to the merge).
    pub fn ok(&self) -> bool {
        self.failed() == 0 && (self.missing.is_empty() || self.coverage_left_to_merge)
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
    campaign_within(options, None)
}

/// Runs a campaign, time-boxed by `duration` if given: workers claim the next seed until the
/// time is spent and finish the runs in flight, so the seeds run are exactly the first ones
/// of the (sharded) sequence — `CampaignOptions::covered` names them.
pub fn campaign_within(options: &CampaignOptions, duration: Option<Duration>) -> CampaignReport {
    let next = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let (bar, template) = match (options.progress, duration) {
        (false, _) => (indicatif::ProgressBar::hidden(), ""),
        (true, None) => (
            indicatif::ProgressBar::new(options.seed_count()),
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {per_sec} {msg}",
        ),
        (true, Some(_)) => (
            indicatif::ProgressBar::no_length(),
            "{elapsed_precise} {pos} seeds, {per_sec} {msg}",
        ),
    };
    if !template.is_empty() {
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
    }
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    // A time box too long for the clock is no deadline at all.
    let deadline = duration.and_then(|d| started.checked_add(d));
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    // The check comes before the claim: indices are claimed in order and every
                    // claimed one runs, so what ran is a prefix of the sequence.
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(seed) = options.seed_at(i) else {
                        break;
                    };
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
    // Run order, not seed value: a campaign may wrap past u64::MAX.
    results.sort_by_key(|r| r.seed.wrapping_sub(options.start));
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
        duration,
        coverage_left_to_merge: options.sharded(),
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

/// The campaign as JSON, for tools and for `jetsim merge`: what was asked (start, seeds,
/// steps, sabotage, shard, time box), what was covered, totals, coverage counts, failures with
/// their replay and timeline commands, and every seed's result.
pub fn json_report(options: &CampaignOptions, report: &CampaignReport) -> serde_json::Value {
    let failures: Vec<serde_json::Value> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            serde_json::json!({
                "seed": r.seed,
                "message": describe(r),
                "violation": r.violation,
                "divergence": r.divergence,
                "replay": replay_command(r.seed, options.steps, options.sabotage),
                "timeline": timeline_command(r.seed, options.steps, options.sabotage),
            })
        })
        .collect();
    let coverage: serde_json::Map<String, serde_json::Value> = Mark::ALL
        .iter()
        .map(|m| (m.name(), report.coverage.count(*m).into()))
        .collect();
    let count = report.results.len() as u64;
    let (start, end) = options.covered(count);
    let default_profile = options.steps.is_none() && options.sabotage.is_none();
    let coverage_verdict = if !default_profile || count < EXPECT_FROM_SEEDS {
        "not checked"
    } else if report.coverage_left_to_merge {
        "left to the merge"
    } else {
        "checked"
    };
    serde_json::json!({
        "format": REPORT_FORMAT,
        "jetsim": env!("CARGO_PKG_VERSION"),
        "start": options.start,
        "seeds_requested": (options.seeds != UNBOUNDED).then_some(options.seeds),
        "steps": options.steps,
        "sabotage": options.sabotage.map(|s| s.to_string()),
        "check_determinism": options.check_determinism,
        "shard": options.shard.map(|(k, n)| format!("{k}/{n}")),
        "duration_seconds": report.duration.map(|d| d.as_secs_f64()),
        "covered": {
            "start": start,
            "end": end,
            "seeds": count,
            "replay": options.replay_range_command(count),
        },
        "seeds": count,
        "passed": report.passed(),
        "failed": report.failed(),
        "seconds": report.seconds,
        "seeds_per_second": report.seeds_per_second(),
        "operations_per_second": report.operations_per_second(),
        "coverage": coverage,
        "coverage_verdict": coverage_verdict,
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
                "replay: {}\ntimeline: {}",
                replay_command(r.seed, options.steps, options.sabotage),
                timeline_command(r.seed, options.steps, options.sabotage)
            ));
            s
        };
        let mut case = TestCase::new(format!("seed {}", r.seed), status);
        case.set_time(std::time::Duration::from_secs_f64(r.seconds));
        suite.add_test_case(case);
    }
    if !report.missing.is_empty() && !report.coverage_left_to_merge {
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

    fn base() -> CampaignOptions {
        CampaignOptions {
            start: 100,
            seeds: 10,
            jobs: 1,
            shard: None,
            steps: None,
            sabotage: None,
            check_determinism: false,
            progress: false,
        }
    }

    fn seeds(options: &CampaignOptions) -> Vec<u64> {
        (0..).map_while(|i| options.seed_at(i)).collect()
    }

    #[test]
    fn shards_split_the_seeds_exactly() {
        let all = seeds(&base());
        assert_eq!(all, (100..110).collect::<Vec<_>>());
        let mut joined = Vec::new();
        for k in 1..=3 {
            let shard = CampaignOptions {
                shard: Some((k, 3)),
                ..base()
            };
            let mine = seeds(&shard);
            assert_eq!(mine.len() as u64, shard.seed_count(), "shard {k}/3");
            joined.extend(mine);
        }
        joined.sort_unstable();
        assert_eq!(joined, all);
        // More shards than seeds: the last ones are empty, not an error.
        let empty = CampaignOptions {
            seeds: 2,
            shard: Some((3, 4)),
            ..base()
        };
        assert_eq!((seeds(&empty), empty.seed_count()), (vec![], 0));
    }

    #[test]
    fn the_covered_range_replays_exactly_the_seeds_run() {
        for shard in [None, Some((2, 3)), Some((3, 3))] {
            let options = CampaignOptions {
                seeds: UNBOUNDED,
                shard,
                ..base()
            };
            for count in 0..7 {
                let (start, end) = options.covered(count);
                let replay = CampaignOptions {
                    start,
                    seeds: end - start,
                    ..options.clone()
                };
                let ran: Vec<u64> = (0..count).map(|i| options.seed_at(i).unwrap()).collect();
                assert_eq!(seeds(&replay), ran, "{shard:?} {count}");
            }
        }
        let options = CampaignOptions {
            shard: Some((2, 3)),
            steps: Some(50),
            ..base()
        };
        assert_eq!(
            options.replay_range_command(2),
            "jetsim campaign --start 100 --seeds 5 --shard 2/3 --steps 50"
        );
    }

    #[test]
    fn the_shard_comes_from_the_flag_then_jetsim_shard_then_the_completion_index() {
        let env = |shard: &str, index: &str, shards: &str| ShardEnv {
            jetsim_shard: (!shard.is_empty()).then(|| shard.to_owned()),
            completion_index: (!index.is_empty()).then(|| index.to_owned()),
            jetsim_shards: (!shards.is_empty()).then(|| shards.to_owned()),
        };
        use ShardSource::*;
        let ok = |k, n, source| Ok(Some(((k, n), source)));
        type Case = (
            Option<Shard>,
            ShardEnv,
            Result<Option<(Shard, ShardSource)>, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (None, env("", "", ""), Ok(None)),
            (Some((1, 2)), env("3/4", "0", "8"), ok(1, 2, Flag)),
            (None, env("3/4", "2", "4"), ok(3, 4, JetsimShard)),
            (None, env("3/4", "", "4"), ok(3, 4, JetsimShard)),
            (
                None,
                env("3/4", "0", "8"),
                Err("disagrees with JETSIM_SHARDS=8"),
            ),
            (
                None,
                env("3/4", "0", "4"),
                Err("disagrees with JOB_COMPLETION_INDEX=0"),
            ),
            (None, env("3/4", "x", ""), Err("JOB_COMPLETION_INDEX=x")),
            (
                None,
                env("1/2000000", "", ""),
                Err("at most 1000000 shards"),
            ),
            (None, env("", "0", "2000000"), Err("at most 1000000 shards")),
            (None, env(" 2/4 ", "", ""), ok(2, 4, JetsimShard)),
            (None, env("", "0", "4"), ok(1, 4, CompletionIndex)),
            (None, env("", "3", "4"), ok(4, 4, CompletionIndex)),
            // An empty value is unset (a blank CI template).
            (
                None,
                ShardEnv {
                    jetsim_shard: Some(String::new()),
                    ..env("", "1", "2")
                },
                ok(2, 2, CompletionIndex),
            ),
            // The flag wins over a malformed environment.
            (Some((1, 1)), env("nonsense", "", ""), ok(1, 1, Flag)),
            (None, env("0/4", "", ""), Err("JETSIM_SHARD")),
            (None, env("5/4", "", ""), Err("JETSIM_SHARD")),
            (None, env("2", "", ""), Err("JETSIM_SHARD")),
            (None, env("", "4", "4"), Err("not below")),
            (None, env("", "0", "0"), Err("JETSIM_SHARDS=0")),
            (None, env("", "2", ""), Err("JETSIM_SHARDS")),
            (None, env("", "", "4"), Err("which shard")),
            (None, env("", "-1", "4"), Err("not a number")),
            (None, env("", "1", "four"), Err("not a number")),
        ];
        for (flag, env, want) in cases {
            let got = resolve_shard(flag, &env);
            match (&got, &want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{flag:?} {env:?}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{e} lacks {part}"),
                _ => panic!("{flag:?} {env:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_time_box_runs_a_prefix_and_a_shard_leaves_the_coverage_verdict_to_the_merge() {
        let options = CampaignOptions {
            seeds: UNBOUNDED,
            shard: Some((2, 4)),
            steps: Some(20),
            jobs: 2,
            ..base()
        };
        let report = campaign_within(&options, Some(Duration::from_millis(300)));
        let ran: Vec<u64> = report.results.iter().map(|r| r.seed).collect();
        assert!(!ran.is_empty());
        let want: Vec<u64> = (0..ran.len() as u64)
            .map(|i| options.seed_at(i).unwrap())
            .collect();
        assert_eq!(ran, want);
        // An explicit bound still holds under a time box.
        let bounded = CampaignOptions {
            seeds: 9,
            ..options.clone()
        };
        let report = campaign_within(&bounded, Some(Duration::from_secs(60)));
        assert_eq!(report.results.len(), 2);
        // A shard with missing marks still passes; the whole campaign would not.
        let mut report = report;
        report.missing = vec![Mark::LogDeleted];
        assert!(report.ok());
        report.coverage_left_to_merge = false;
        assert!(!report.ok());
    }
}
