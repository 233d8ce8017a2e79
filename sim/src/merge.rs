//! Merging the JSON reports of a campaign's shards (`jetsim merge`): checks they are shards
//! of one campaign and that none is missing, sums the totals, lists every failure with its
//! replay and timeline commands, unions the coverage counts and judges the expected marks on
//! the union — the verdict a single shard leaves to the merge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::campaign::{
    CampaignOptions, REPORT_FORMAT, UNBOUNDED, parse_shard, replay_command, timeline_command,
};
use crate::coverage::{Coverage, EXPECT_FROM_SEEDS, Mark};
use crate::sabotage::Sabotage;

/// The `format` field of a merged report.
pub const MERGED_FORMAT: &str = "jetsim-merge/1";

/// How many missing shards a merge names (it counts them all).
pub const MISSING_NAMED: usize = 10;

/// What a shard's report says (the part of [`crate::campaign::json_report`] a merge reads).
#[derive(Clone, Debug, Deserialize)]
pub struct ShardReport {
    /// The jetsim version that wrote it.
    pub jetsim: String,
    /// The campaign's first seed.
    pub start: u64,
    /// The campaign's seed count (before sharding), or none for an unbounded time box.
    pub seeds_requested: Option<u64>,
    /// Steps per run, if not the default.
    pub steps: Option<u32>,
    /// The sabotage, by name.
    pub sabotage: Option<String>,
    /// Whether every seed ran twice and the traces were compared.
    pub check_determinism: bool,
    /// `K/N`, or none for a whole campaign.
    pub shard: Option<String>,
    /// The time box in seconds, if any.
    pub duration_seconds: Option<f64>,
    /// What it ran.
    pub covered: Covered,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds passed.
    pub passed: u64,
    /// Seeds failed.
    pub failed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Runs that ended early on detected corruption.
    pub ended_by_detected_corruption: u64,
    /// Each mark's count, by name.
    pub coverage: BTreeMap<String, u64>,
    /// Every seed's result.
    pub results: Vec<SeedRow>,
    /// The failed seeds.
    pub failures: Vec<FailureRow>,
}

/// The seeds a shard covered: `start..end` with its count.
#[derive(Clone, Debug, Deserialize)]
pub struct Covered {
    /// `--start` of the replay.
    pub start: u64,
    /// `start + --seeds` of the replay.
    pub end: u64,
    /// Seeds run.
    pub seeds: u64,
}

/// One seed's row in a shard's report.
#[derive(Clone, Debug, Deserialize)]
pub struct SeedRow {
    /// The seed.
    pub seed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The broken promise, if any (a merge reads only whether there is one).
    pub violation: Option<serde_json::Value>,
    /// Where a second run diverged, if any.
    pub divergence: Option<String>,
    /// The run ended early on detected corruption.
    pub ended_by_corruption: Option<String>,
}

impl SeedRow {
    /// Whether the seed passed, by its own row.
    pub fn passed(&self) -> bool {
        self.violation.is_none() && self.divergence.is_none()
    }
}

/// One failure in a shard's report.
#[derive(Clone, Debug, Deserialize)]
pub struct FailureRow {
    /// The seed.
    pub seed: u64,
    /// What broke, in one line.
    pub message: String,
}

/// A failed seed in the merge.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The shard that ran it.
    pub shard: u64,
    /// The seed.
    pub seed: u64,
    /// What broke, in one line.
    pub message: String,
    /// The command that replays it.
    pub replay: String,
    /// The command that writes its timeline.
    pub timeline: String,
}

/// The merged campaign.
#[derive(Clone, Debug)]
pub struct Merged {
    /// Each shard's report, by shard number (1-based), with its file.
    pub shards: BTreeMap<u64, (PathBuf, ShardReport)>,
    /// How many shards the campaign has.
    pub shard_count: u64,
    /// The first shards without a report (at most [`MISSING_NAMED`] of them).
    pub missing_shards: Vec<u64>,
    /// How many shards have no report.
    pub missing_count: u64,
    /// Time-boxed shards that ran no seed of their share (the box ended before the first).
    pub empty_shards: Vec<u64>,
    /// The campaign's first seed, steps and sabotage.
    pub start: u64,
    /// Steps per run, if not the default.
    pub steps: Option<u32>,
    /// The sabotage, if any.
    pub sabotage: Option<Sabotage>,
    /// The campaign's seed count, or none for an unbounded time box.
    pub seeds_requested: Option<u64>,
    /// Seeds run, passed, and ended early on detected corruption.
    pub seeds: u64,
    /// Seeds passed.
    pub passed: u64,
    /// Runs ended early on detected corruption.
    pub ended_by_detected_corruption: u64,
    /// The longest shard's wall-clock seconds.
    pub seconds: f64,
    /// Every failure.
    pub failures: Vec<Failure>,
    /// The union of the shards' counts.
    pub coverage: Coverage,
    /// Whether the expected marks were judged (a default-profile union of at least
    /// [`EXPECT_FROM_SEEDS`] seeds).
    pub coverage_checked: bool,
    /// Expected marks fired in no shard.
    pub missing_marks: Vec<Mark>,
    /// The seeds `start..end` every shard covered (all of them, unless time boxes or a missing
    /// shard cut some short).
    pub contiguous: (u64, u64),
}

impl Merged {
    /// Whether the campaign passed: every shard reported, every seed passed, every expected
    /// mark fired somewhere.
    pub fn ok(&self) -> bool {
        self.missing_count == 0
            && self.empty_shards.is_empty()
            && self.failures.is_empty()
            && self.missing_marks.is_empty()
    }

    /// Seeds failed.
    pub fn failed(&self) -> u64 {
        self.seeds - self.passed
    }
}

/// Reads a shard's report; an error names the file and what is wrong with it.
pub fn read_report(path: &Path) -> Result<ShardReport, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{name} is not JSON: {e}"))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(REPORT_FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "{name} has format {other:?}; this jetsim merges {REPORT_FORMAT:?} (campaign reports of jetsim {})",
                env!("CARGO_PKG_VERSION")
            ));
        }
        None => {
            return Err(format!(
                "{name} is not a jetsim campaign report (no \"format\": {REPORT_FORMAT:?})"
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("{name}: a malformed campaign report: {e}"))
}

/// Merges the shards' reports. An error (reports that are not of one campaign, a shard
/// twice, a report inconsistent with itself) means the input is bad, not that the campaign
/// failed.
pub fn merge(files: &[PathBuf]) -> Result<Merged, String> {
    let mut reports = Vec::new();
    for path in files {
        reports.push((path.clone(), read_report(path)?));
    }
    let Some((first_path, first)) = reports.first().cloned() else {
        return Err("no reports to merge".into());
    };
    let sabotage = match &first.sabotage {
        Some(name) => Some(
            Sabotage::parse(name)
                .ok_or_else(|| format!("{}: unknown sabotage {name:?}", first_path.display()))?,
        ),
        None => None,
    };
    let identity = |r: &ShardReport| {
        (
            r.jetsim.clone(),
            r.start,
            r.seeds_requested,
            r.steps,
            r.sabotage.clone(),
            r.check_determinism,
            r.duration_seconds.is_some(),
        )
    };
    let mut shards: BTreeMap<u64, (PathBuf, ShardReport)> = BTreeMap::new();
    let mut shard_count = None;
    for (path, report) in reports {
        let name = path.display().to_string();
        if identity(&report) != identity(&first) {
            return Err(format!(
                "{name} and {} are not shards of one campaign: (jetsim, start, seeds, steps, sabotage, check_determinism, time box) {:?} against {:?}",
                first_path.display(),
                identity(&report),
                identity(&first)
            ));
        }
        let (k, n) = match &report.shard {
            Some(text) => parse_shard(text).map_err(|e| format!("{name}: {e}"))?,
            None => (1, 1),
        };
        if *shard_count.get_or_insert(n) != n {
            return Err(format!(
                "{name} is shard {k}/{n}, but another report is one of {} shards",
                shard_count.unwrap_or(n)
            ));
        }
        check_consistent(&name, &report, k, n)?;
        if let Some((other, _)) = shards.get(&k) {
            return Err(format!(
                "shard {k}/{n} twice: {name} and {}",
                other.display()
            ));
        }
        shards.insert(k, (path, report));
    }
    let shard_count = shard_count.unwrap_or(1);
    // Counted, and the first few named, without walking every shard number: N may be large.
    let missing_count = shard_count - shards.len() as u64;
    let missing_shards: Vec<u64> = (1..=shard_count)
        .filter(|k| !shards.contains_key(k))
        .take(MISSING_NAMED)
        .collect();
    // A time box that ended before the first seed of a non-empty share: nothing was tested.
    let empty_shards: Vec<u64> = shards
        .iter()
        .filter(|(k, (_, r))| r.seeds == 0 && options_of(r, **k, shard_count).seed_count() > 0)
        .map(|(k, _)| *k)
        .collect();

    let mut coverage = Coverage::default();
    let mut failures = Vec::new();
    let (mut seeds, mut passed, mut ended, mut seconds) = (0u64, 0u64, 0u64, 0f64);
    let too_many = |path: &Path, what: &str| {
        format!("{}: its {what} overflow the merge's totals", path.display())
    };
    for (k, (path, r)) in &shards {
        seeds = seeds
            .checked_add(r.seeds)
            .ok_or_else(|| too_many(path, "seeds"))?;
        passed = passed
            .checked_add(r.passed)
            .ok_or_else(|| too_many(path, "passed seeds"))?;
        ended = ended
            .checked_add(r.ended_by_detected_corruption)
            .ok_or_else(|| too_many(path, "runs ended by corruption"))?;
        seconds = seconds.max(r.seconds);
        for (name, count) in &r.coverage {
            let mark: Mark = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| format!("{}: unknown coverage mark {name:?}", path.display()))?;
            let sum = coverage
                .count(mark)
                .checked_add(*count)
                .ok_or_else(|| too_many(path, &format!("{name} counts")))?;
            coverage.0.insert(mark, sum);
        }
        failures.extend(r.failures.iter().map(|f| Failure {
            shard: *k,
            seed: f.seed,
            message: f.message.clone(),
            replay: replay_command(f.seed, first.steps, sabotage),
            timeline: timeline_command(f.seed, first.steps, sabotage),
        }));
    }
    failures.sort_by_key(|f| f.seed);
    let default_profile = first.steps.is_none() && first.sabotage.is_none();
    let coverage_checked = default_profile && seeds >= EXPECT_FROM_SEEDS;
    let missing_marks = if coverage_checked {
        coverage.missing()
    } else {
        Vec::new()
    };
    // The first offset some shard did not run: every seed before it ran somewhere.
    let gap = shards
        .iter()
        .map(|(k, (_, r))| r.seeds.saturating_mul(shard_count).saturating_add(k - 1))
        .chain(missing_shards.first().map(|k| k - 1))
        .min()
        .unwrap_or(0)
        .min(first.seeds_requested.unwrap_or(UNBOUNDED));
    Ok(Merged {
        shards,
        shard_count,
        missing_shards,
        missing_count,
        empty_shards,
        start: first.start,
        steps: first.steps,
        sabotage,
        seeds_requested: first.seeds_requested,
        seeds,
        passed,
        ended_by_detected_corruption: ended,
        seconds,
        failures,
        coverage,
        coverage_checked,
        missing_marks,
        contiguous: (first.start, first.start.wrapping_add(gap)),
    })
}

/// Checks a shard's report against itself: its seeds are the first ones of its shard, its
/// totals add up, and one without a time box ran all of its share.
/// The options of shard `k` of `n` of the campaign `r` is a shard of (as far as which seeds
/// it runs goes).
fn options_of(r: &ShardReport, k: u64, n: u64) -> CampaignOptions {
    CampaignOptions {
        start: r.start,
        seeds: r.seeds_requested.unwrap_or(UNBOUNDED),
        jobs: 1,
        shard: (n > 1 || r.shard.is_some()).then_some((k, n)),
        steps: r.steps,
        sabotage: None,
        check_determinism: false,
        progress: false,
    }
}

/// Checks a shard's report against itself: its seeds are the first ones of its shard, its
/// `covered` range is theirs, its totals and failures are what its rows say (a report whose
/// failures were edited out, or listed twice, is refused), every time a duration, and one
/// without a time box ran all of its share.
fn check_consistent(name: &str, r: &ShardReport, k: u64, n: u64) -> Result<(), String> {
    let options = options_of(r, k, n);
    let ran: Vec<u64> = r.results.iter().map(|s| s.seed).collect();
    let want: Vec<u64> = (0..ran.len() as u64)
        .map_while(|i| options.seed_at(i))
        .collect();
    if ran != want || r.seeds != ran.len() as u64 || r.covered.seeds != r.seeds {
        return Err(format!(
            "{name}: its results are not the first {} seeds of shard {k}/{n}",
            r.seeds
        ));
    }
    let (start, end) = options.covered(r.seeds);
    if (r.covered.start, r.covered.end) != (start, end) {
        return Err(format!(
            "{name}: it says it covered {}..{}, but its results cover {start}..{end}",
            r.covered.start, r.covered.end
        ));
    }
    if let Some(row) = r
        .results
        .iter()
        .find(|row| Duration::try_from_secs_f64(row.seconds).is_err())
    {
        return Err(format!(
            "{name}: seed {} took {} seconds, which is not a duration",
            row.seed, row.seconds
        ));
    }
    let failed_rows: Vec<u64> = r
        .results
        .iter()
        .filter(|row| !row.passed())
        .map(|row| row.seed)
        .collect();
    let passed_rows = r.seeds - failed_rows.len() as u64;
    let mut listed: Vec<u64> = r.failures.iter().map(|f| f.seed).collect();
    listed.sort_by_key(|seed| seed.wrapping_sub(r.start));
    if r.passed != passed_rows || r.failed != failed_rows.len() as u64 || listed != failed_rows {
        return Err(format!(
            "{name}: its totals and failures are not what its results say ({} passed, {} failed, failures listed for seeds {listed:?}; its results: {passed_rows} passed, failed seeds {failed_rows:?})",
            r.passed, r.failed
        ));
    }
    let ended_rows = r
        .results
        .iter()
        .filter(|row| row.ended_by_corruption.is_some())
        .count() as u64;
    if r.ended_by_detected_corruption != ended_rows {
        return Err(format!(
            "{name}: {} runs ended by detected corruption, but its results say {ended_rows}",
            r.ended_by_detected_corruption
        ));
    }
    if r.duration_seconds.is_none() && r.seeds != options.seed_count() {
        return Err(format!(
            "{name}: ran {} seeds of its {} without a time box",
            r.seeds,
            options.seed_count()
        ));
    }
    Ok(())
}

/// The merge as JSON.
pub fn json_report(m: &Merged) -> serde_json::Value {
    let reports: Vec<serde_json::Value> = m
        .shards
        .iter()
        .map(|(k, (path, r))| {
            serde_json::json!({
                "shard": format!("{k}/{}", m.shard_count),
                "file": path.display().to_string(),
                "seeds": r.seeds,
                "passed": r.passed,
                "failed": r.failed,
                "seconds": r.seconds,
                "duration_seconds": r.duration_seconds,
                "covered": {"start": r.covered.start, "end": r.covered.end, "seeds": r.covered.seeds},
            })
        })
        .collect();
    let failures: Vec<serde_json::Value> = m
        .failures
        .iter()
        .map(|f| {
            serde_json::json!({
                "shard": format!("{}/{}", f.shard, m.shard_count),
                "seed": f.seed,
                "message": f.message,
                "replay": f.replay,
                "timeline": f.timeline,
            })
        })
        .collect();
    let coverage: serde_json::Map<String, serde_json::Value> = Mark::ALL
        .iter()
        .map(|mark| (mark.name(), m.coverage.count(*mark).into()))
        .collect();
    serde_json::json!({
        "format": MERGED_FORMAT,
        "jetsim": env!("CARGO_PKG_VERSION"),
        "start": m.start,
        "seeds_requested": m.seeds_requested,
        "steps": m.steps,
        "sabotage": m.sabotage.map(|s| s.to_string()),
        "shards": m.shard_count,
        "missing_shards": m.missing_shards.iter().map(|k| format!("{k}/{}", m.shard_count)).collect::<Vec<_>>(),
        "missing_shard_count": m.missing_count,
        "empty_shards": m.empty_shards.iter().map(|k| format!("{k}/{}", m.shard_count)).collect::<Vec<_>>(),
        "reports": reports,
        "contiguous": {"start": m.contiguous.0, "end": m.contiguous.1},
        "seeds": m.seeds,
        "passed": m.passed,
        "failed": m.failed(),
        "ended_by_detected_corruption": m.ended_by_detected_corruption,
        "seconds": m.seconds,
        "coverage": coverage,
        "coverage_checked": m.coverage_checked,
        "missing_marks": m.missing_marks.iter().map(|mark| mark.name()).collect::<Vec<_>>(),
        "failures": failures,
        "ok": m.ok(),
    })
}

/// The merge as JUnit XML, bounded for time-boxed nightlies (a million seeds): a test suite
/// per shard with a test case per failed seed and one for all of its passing seeds, and a
/// suite for the merge's own checks (each shard reported and ran seeds, coverage).
pub fn junit_report(m: &Merged) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let failure = |message: String| {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(message);
        s
    };
    let failed: BTreeMap<u64, &Failure> = m.failures.iter().map(|f| (f.seed, f)).collect();
    let mut junit = Report::new("jetsim");
    for (k, (_, r)) in &m.shards {
        let mut suite = TestSuite::new(format!("jetsim campaign shard {k}/{}", m.shard_count));
        let mut passed = (0u64, 0f64);
        for row in &r.results {
            if row.passed() {
                passed = (passed.0 + 1, passed.1 + row.seconds);
                continue;
            }
            let status = match failed.get(&row.seed) {
                Some(f) => {
                    let mut s = failure(f.message.clone());
                    s.set_description(format!("replay: {}\ntimeline: {}", f.replay, f.timeline));
                    s
                }
                None => failure("failed".into()),
            };
            let mut case = TestCase::new(format!("seed {}", row.seed), status);
            // Checked when the report was read: every row's seconds are a duration.
            case.set_time(Duration::try_from_secs_f64(row.seconds).unwrap_or_default());
            suite.add_test_case(case);
        }
        let mut case = TestCase::new(
            format!(
                "{} seeds passed ({}..{})",
                passed.0, r.covered.start, r.covered.end
            ),
            TestCaseStatus::success(),
        );
        case.set_time(Duration::try_from_secs_f64(passed.1).unwrap_or(Duration::MAX));
        suite.add_test_case(case);
        junit.add_test_suite(suite);
    }
    let mut merge = TestSuite::new("jetsim merge");
    for k in m.shards.keys() {
        let status = if m.empty_shards.contains(k) {
            failure("ran no seed: its time box ended before the first run".into())
        } else {
            TestCaseStatus::success()
        };
        merge.add_test_case(TestCase::new(
            format!("shard {k}/{} reported", m.shard_count),
            status,
        ));
    }
    for k in &m.missing_shards {
        merge.add_test_case(TestCase::new(
            format!("shard {k}/{} reported", m.shard_count),
            failure("no report: the shard died, or its report was not collected".into()),
        ));
    }
    let unnamed = m.missing_count - m.missing_shards.len() as u64;
    if unnamed > 0 {
        merge.add_test_case(TestCase::new(
            format!("{unnamed} more shards reported"),
            failure(format!("{unnamed} more shards without a report")),
        ));
    }
    let status = if m.missing_marks.is_empty() {
        TestCaseStatus::success()
    } else {
        failure(format!(
            "expected coverage marks fired in no shard: {}",
            names(&m.missing_marks)
        ))
    };
    merge.add_test_case(TestCase::new("coverage", status));
    junit.add_test_suite(merge);
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- {e} -->"))
}

fn names(marks: &[Mark]) -> String {
    marks
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The merge's summary for a terminal: the marks, the shards, every failure with its replay
/// and timeline lines, missing shards and marks, and last `N passed, M failed`.
pub fn summary(m: &Merged) -> String {
    let mut out = String::from("marks (all shards):\n");
    for mark in Mark::ALL {
        out.push_str(&format!(
            "  {:<28} {}\n",
            mark.name(),
            m.coverage.count(mark)
        ));
    }
    for (k, (path, r)) in &m.shards {
        out.push_str(&format!(
            "shard {k}/{}: {} seeds ({}..{}), {} failed, {:.1} s  [{}]\n",
            m.shard_count,
            r.seeds,
            r.covered.start,
            r.covered.end,
            r.failed,
            r.seconds,
            path.display()
        ));
    }
    out.push_str(&format!(
        "{} seeds over {} of {} shards ({:.1} s the longest); every seed in {}..{} ran; {} ended early on detected corruption\n",
        m.seeds,
        m.shards.len(),
        m.shard_count,
        m.seconds,
        m.contiguous.0,
        m.contiguous.1,
        m.ended_by_detected_corruption
    ));
    for f in &m.failures {
        out.push_str(&format!(
            "FAILED seed {} (shard {}/{}): {}\n  replay: {}\n  timeline: {}\n",
            f.seed, f.shard, m.shard_count, f.message, f.replay, f.timeline
        ));
    }
    for k in &m.missing_shards {
        out.push_str(&format!(
            "FAILED shard {k}/{}: no report (the shard died, or its report was not collected)\n",
            m.shard_count
        ));
    }
    if m.missing_count > m.missing_shards.len() as u64 {
        out.push_str(&format!(
            "FAILED {} shards without a report (the first {} named above)\n",
            m.missing_count,
            m.missing_shards.len()
        ));
    }
    for k in &m.empty_shards {
        out.push_str(&format!(
            "FAILED shard {k}/{}: ran no seed (its time box ended before the first run)\n",
            m.shard_count
        ));
    }
    if !m.missing_marks.is_empty() {
        out.push_str(&format!(
            "FAILED coverage: expected marks fired in no shard: {}\n",
            names(&m.missing_marks)
        ));
    } else if m.coverage_checked {
        out.push_str("coverage: every expected mark fired in some shard\n");
    } else {
        out.push_str(&format!(
            "coverage not judged: fewer than {EXPECT_FROM_SEEDS} seeds, or not the default profile\n"
        ));
    }
    out.push_str(&format!("{} passed, {} failed", m.passed, m.failed()));
    out
}
