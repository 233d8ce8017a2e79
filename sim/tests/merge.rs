//! `jetsim merge`: shards' reports put back together — the same totals and coverage as the
//! unsharded campaign, a failed shard's replay lines, a missing shard failing the merge,
//! reports of different campaigns or a shard twice refused, and the union of marks judged.

use std::path::{Path, PathBuf};
use std::process::Command;

use jetsim::Mark;

fn jetsim(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jetsim"))
        .args(args)
        .env_remove("JETSIM_SHARD")
        .env_remove("JETSIM_SHARDS")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .expect("jetsim runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs shards `ks` of `n` of a campaign (`extra` arguments), each writing `shard-K.json`.
fn shards(dir: &Path, n: u64, ks: &[u64], extra: &[&str]) -> Vec<PathBuf> {
    ks.iter()
        .map(|k| {
            let json = dir.join(format!("shard-{k}.json"));
            let shard = format!("{k}/{n}");
            let mut args = vec!["campaign", "--jobs", "2", "--shard", &shard];
            args.extend(extra);
            args.extend(["--json", s(&json)]);
            jetsim(&args);
            json
        })
        .collect()
}

/// (test cases, failures) per `<testsuite>` name, read by an XML parser.
fn junit_suites(path: &Path) -> Vec<(String, usize, usize)> {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut suites = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => {
                    let name = e
                        .try_get_attribute("name")
                        .unwrap()
                        .map(|a| String::from_utf8(a.value.to_vec()).unwrap())
                        .unwrap_or_default();
                    suites.push((name, 0, 0));
                }
                b"testcase" => suites.last_mut().expect("in a suite").1 += 1,
                b"failure" => suites.last_mut().expect("in a suite").2 += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    suites
}

/// The seeds the JUnit's per-shard `N seeds passed (…)` cases count, summed.
fn passed_in_junit(path: &Path) -> u64 {
    let xml = std::fs::read_to_string(path).unwrap();
    xml.split("<testcase name=\"")
        .skip(1)
        .filter_map(|case| case.split_once(" seeds passed ("))
        .map(|(n, _)| n.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn the_merge_of_shards_equals_the_unsharded_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let campaign = ["--seeds", "20", "--start", "40", "--steps", "60"];
    let whole = dir.path().join("whole.json");
    let mut args = vec!["campaign", "--json", s(&whole)];
    args.extend(campaign);
    let (code, text) = jetsim(&args);
    assert_eq!(code, 0, "{text}");
    let files = shards(dir.path(), 3, &[3, 1, 2], &campaign);
    let (all, xml) = (dir.path().join("all.json"), dir.path().join("all.xml"));
    let mut args = vec!["merge"];
    args.extend(files.iter().map(|f| s(f)));
    args.extend(["--json", s(&all), "--junit", s(&xml)]);
    let (code, text) = jetsim(&args);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.lines().last(), Some("20 passed, 0 failed"), "{text}");
    let (whole, merged) = (read_json(&whole), read_json(&all));
    assert_eq!(merged["format"], "jetsim-merge/1");
    for key in [
        "seeds",
        "passed",
        "failed",
        "ended_by_detected_corruption",
        "coverage",
    ] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    assert_eq!(
        merged["contiguous"],
        serde_json::json!({"start": 40, "end": 60})
    );
    assert!(text.contains("every seed in 40..60 ran"), "{text}");
    // A suite per shard with one case for all its passing seeds (a nightly runs a million:
    // not a case each), and the merge's own checks.
    let suites = junit_suites(&xml);
    assert_eq!(suites.len(), 4, "{suites:?}");
    for suite in suites
        .iter()
        .filter(|s| s.0.starts_with("jetsim campaign shard"))
    {
        assert_eq!(suite.1, 1, "{suites:?}");
    }
    assert!(suites.iter().all(|s| s.2 == 0), "{suites:?}");
    assert_eq!(passed_in_junit(&xml), 20);
}

#[test]
fn a_failed_or_missing_shard_fails_the_merge_and_bad_sets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sabotaged = ["--seeds", "30", "--sabotage", "skip-sync:log"];
    let files = shards(dir.path(), 2, &[1, 2], &sabotaged);
    let reports: Vec<serde_json::Value> = files.iter().map(|f| read_json(f)).collect();
    let failed: u64 = reports.iter().map(|r| r["failed"].as_u64().unwrap()).sum();
    assert!(failed > 0, "the sabotage makes seeds fail");
    let (all, xml) = (dir.path().join("all.json"), dir.path().join("all.xml"));
    let (code, text) = jetsim(&[
        "merge",
        s(&files[0]),
        s(&files[1]),
        "--json",
        s(&all),
        "--junit",
        s(&xml),
    ]);
    assert_eq!(code, 1, "{text}");
    let seed = reports[1]["failures"][0]["seed"].as_u64().unwrap();
    for line in [
        format!("FAILED seed {seed} (shard 2/2): "),
        format!("  replay: jetsim run --seed {seed} --sabotage skip-sync:log"),
        format!(
            "  timeline: jetsim run --seed {seed} --sabotage skip-sync:log --timeline seed-{seed}.html"
        ),
    ] {
        assert!(text.lines().any(|l| l.starts_with(&line)), "{line}: {text}");
    }
    assert_eq!(
        read_json(&all)["failures"].as_array().unwrap().len() as u64,
        failed
    );
    // One case per failed seed and one for each shard's passing seeds.
    let suites = junit_suites(&xml);
    let junit_failures: usize = suites.iter().map(|s| s.2).sum();
    assert_eq!(junit_failures as u64, failed);
    for suite in suites
        .iter()
        .filter(|s| s.0.starts_with("jetsim campaign shard"))
    {
        assert_eq!(suite.1, suite.2 + 1, "{suites:?}");
    }
    assert_eq!(passed_in_junit(&xml), 30 - failed);

    // A shard that died without its report.
    let clean = ["--seeds", "12", "--steps", "40"];
    let clean_dir = dir.path().join("clean");
    std::fs::create_dir(&clean_dir).unwrap();
    let files = shards(&clean_dir, 3, &[1, 2, 3], &clean);
    let (code, text) = jetsim(&["merge", s(&files[0]), s(&files[2])]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED shard 2/3: no report"), "{text}");
    assert!(text.contains("every seed in 0..1 ran"), "{text}");

    // Bad input: exit 2, nothing merged.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_start = shards(
        &other,
        3,
        &[2],
        &["--seeds", "12", "--steps", "40", "--start", "1"],
    );
    let four = shards(&other, 4, &[4], &clean);
    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{\"seeds\": 3}").unwrap();
    for (args, why) in [
        (vec![s(&files[0]), s(&files[0])], "shard 1/3 twice"),
        (
            vec![s(&files[0]), s(&other_start[0])],
            "not shards of one campaign",
        ),
        (vec![s(&files[0]), s(&four[0])], "one of 3 shards"),
        (
            vec![s(&files[0]), s(&not_a_report)],
            "not a jetsim campaign report",
        ),
        (vec![s(&files[0]), "no-such-file.json"], "cannot read"),
    ] {
        let mut merge = vec!["merge"];
        merge.extend(args);
        let (code, text) = jetsim(&merge);
        assert_eq!(code, 2, "{why}: {text}");
        assert!(text.contains(why), "{why}: {text}");
    }
}

/// A shard's report as `campaign --json` writes it, for a default-profile campaign of
/// `seeds` from 0, whose runs fired `fired` marks once each.
fn synthetic(k: u64, n: u64, seeds: u64, fired: &[Mark]) -> serde_json::Value {
    let mine: Vec<u64> = (0..seeds).filter(|i| i % n == k - 1).collect();
    let coverage: serde_json::Map<String, serde_json::Value> = Mark::ALL
        .iter()
        .map(|m| (m.name(), u64::from(fired.contains(m)).into()))
        .collect();
    let results: Vec<serde_json::Value> = mine
        .iter()
        .map(|s| serde_json::json!({"seed": s, "seconds": 0.01, "trace": "0", "operations": 1}))
        .collect();
    serde_json::json!({
        "format": "jetsim-campaign/1",
        "jetsim": env!("CARGO_PKG_VERSION"),
        "start": 0, "seeds_requested": seeds, "steps": null, "sabotage": null,
        "check_determinism": false, "shard": format!("{k}/{n}"), "duration_seconds": null,
        "covered": {"start": 0, "end": mine.last().unwrap() + 1, "seeds": mine.len()},
        "seeds": mine.len(), "passed": mine.len(), "failed": 0, "seconds": 1.0,
        "ended_by_detected_corruption": 0, "coverage": coverage, "failures": [],
        "results": results,
    })
}

#[test]
fn a_mark_counts_if_any_shard_fired_it_and_fails_if_none_did() {
    let dir = tempfile::tempdir().unwrap();
    let rare = Mark::LogDeleted;
    let never = Mark::TornTailRecovered;
    let common: Vec<Mark> = Mark::ALL
        .into_iter()
        .filter(|m| *m != rare && *m != never)
        .collect();
    let write = |name: &str, report: serde_json::Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, report.to_string()).unwrap();
        path
    };
    let one = write("1.json", synthetic(1, 2, 1000, &common));
    let mut with_rare = common.clone();
    with_rare.push(rare);
    let two = write("2.json", synthetic(2, 2, 1000, &with_rare));
    let all = dir.path().join("all.json");
    let (code, text) = jetsim(&["merge", s(&one), s(&two), "--json", s(&all)]);
    assert_eq!(code, 1, "{text}");
    let merged = read_json(&all);
    assert_eq!(merged["missing_marks"], serde_json::json!([never.name()]));
    assert_eq!(merged["coverage"][rare.name()], 1);
    assert!(
        text.contains("FAILED coverage: expected marks fired in no shard: torn-tail-recovered"),
        "{text}"
    );
    // Fired in shard 1 only: the merge passes.
    let mut with_never = common.clone();
    with_never.push(never);
    let one = write("1.json", synthetic(1, 2, 1000, &with_never));
    let (code, text) = jetsim(&["merge", s(&one), s(&two)]);
    assert_eq!(code, 0, "{text}");
    // Under 1,000 seeds in all, coverage is not judged.
    let small_one = write("s1.json", synthetic(1, 2, 900, &common));
    let small_two = write("s2.json", synthetic(2, 2, 900, &common));
    let (code, text) = jetsim(&["merge", s(&small_one), s(&small_two)]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("coverage not judged"), "{text}");
}

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, v.to_string()).unwrap();
}

/// A campaign whose seeds wrap past u64::MAX is a valid campaign: its shards merge, and the
/// merge agrees with them on the seeds covered.
#[test]
fn a_campaign_wrapping_past_u64_max_merges() {
    let dir = tempfile::tempdir().unwrap();
    let start = u64::MAX - 2;
    let wrap = [
        "--start",
        "18446744073709551613",
        "--seeds",
        "6",
        "--steps",
        "20",
    ];
    let files = shards(dir.path(), 2, &[1, 2], &wrap);
    // Results in run order: start, start + 2, then past the wrap.
    let seeds: Vec<u64> = read_json(&files[0])["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seeds,
        vec![start, start.wrapping_add(2), start.wrapping_add(4)]
    );
    let all = dir.path().join("all.json");
    let (code, text) = jetsim(&["merge", s(&files[0]), s(&files[1]), "--json", s(&all)]);
    assert_eq!(code, 0, "{text}");
    let merged = read_json(&all);
    assert_eq!(merged["seeds"], 6);
    assert_eq!(merged["contiguous"]["start"], start);
    assert_eq!(merged["contiguous"]["end"], start.wrapping_add(6));
}

/// A report is checked against its own rows: failures removed from the list (and the counts
/// edited to match), a failure listed twice, or a `covered` range that is not its results'
/// are refused (exit 2), never merged as a pass or counted twice.
#[test]
fn a_report_inconsistent_with_its_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sabotaged = ["--seeds", "30", "--sabotage", "skip-sync:log"];
    let files = shards(dir.path(), 2, &[1, 2], &sabotaged);
    let good = read_json(&files[1]);
    assert!(
        good["failed"].as_u64().unwrap() > 0,
        "the sabotage fails seeds"
    );
    let mut cases = Vec::new();
    let mut r = good.clone();
    r["failures"] = serde_json::json!([]);
    r["failed"] = 0.into();
    r["passed"] = r["seeds"].clone();
    cases.push(("failures removed", r));
    let mut r = good.clone();
    let first = r["failures"][0].clone();
    r["failures"].as_array_mut().unwrap().push(first);
    let listed = r["failures"].as_array().unwrap().len() as u64;
    r["failed"] = listed.into();
    r["passed"] = (r["seeds"].as_u64().unwrap() - listed).into();
    cases.push(("a failure listed twice", r));
    let mut r = good.clone();
    let passing = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["violation"].is_null())
        .map(|row| row["seed"].clone());
    if let Some(seed) = passing {
        // A listed failure whose row passed: the list names a seed the rows do not fail.
        let mut f = r["failures"][0].clone();
        f["seed"] = seed;
        r["failures"][0] = f;
        cases.push(("a failure whose row passed", r));
    }
    let mut r = good.clone();
    r["covered"]["end"] = (r["covered"]["end"].as_u64().unwrap() + 2).into();
    cases.push(("covered past its results", r));
    let mut r = good.clone();
    r["covered"]["start"] = 1.into();
    cases.push(("covered from elsewhere", r));
    let mut r = good.clone();
    r["ended_by_detected_corruption"] = 99.into();
    cases.push(("runs ended by corruption not in its rows", r));
    for (why, report) in cases {
        let bad = dir.path().join("bad.json");
        write_json(&bad, &report);
        let (code, text) = jetsim(&["merge", s(&files[0]), s(&bad)]);
        assert_eq!(code, 2, "{why}: {text}");
        assert!(text.contains("bad.json"), "{why}: {text}");
    }
}

/// A time-boxed shard and one without a time box are not one campaign, nor are shards that
/// differ in --check-determinism (exit 2). A time-boxed shard that ran no seed fails the
/// merge (exit 1), named.
#[test]
fn time_boxed_or_not_and_determinism_checks_are_part_of_the_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("1.json"), dir.path().join("2.json"));
    let base = ["campaign", "--seeds", "40", "--steps", "30"];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        assert_eq!(jetsim(&a).0, 0);
    };
    run(&["--shard", "1/2", "--json", s(&one)]);
    run(&["--shard", "2/2", "--duration", "1ns", "--json", s(&two)]);
    let (code, text) = jetsim(&["merge", s(&one), s(&two)]);
    assert_eq!(code, 2, "a full shard and a time-boxed one merged: {text}");
    assert!(text.contains("time box"), "{text}");
    run(&["--shard", "2/2", "--check-determinism", "--json", s(&two)]);
    let (code, text) = jetsim(&["merge", s(&one), s(&two)]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("check_determinism"), "{text}");
    // Both time-boxed, one too short to run a seed: the merge fails and names it.
    run(&["--shard", "1/2", "--duration", "1h", "--json", s(&one)]);
    run(&["--shard", "2/2", "--duration", "1ns", "--json", s(&two)]);
    assert_eq!(read_json(&two)["seeds"], 0);
    let (code, text) = jetsim(&["merge", s(&one), s(&two)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED shard 2/2: ran no seed"), "{text}");
}

/// Crafted numbers are bad input (exit 2 with a reason), never a panic (exit 101).
#[test]
fn crafted_reports_are_refused_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let files = shards(dir.path(), 2, &[1, 2], &["--seeds", "10", "--steps", "20"]);
    let good = read_json(&files[0]);
    let mark = good["coverage"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let mut cases = Vec::new();
    let mut r = read_json(&files[1]);
    r["passed"] = u64::MAX.into();
    r["failed"] = 1.into();
    cases.push(("overflowing totals", r));
    for seconds in [1e300, -1.0] {
        let mut r = read_json(&files[1]);
        r["results"][0]["seconds"] = seconds.into();
        cases.push(("bad seconds", r));
    }
    let mut r = read_json(&files[1]);
    r["coverage"][&mark] = u64::MAX.into();
    let mut first = good.clone();
    first["coverage"][&mark] = 1.into();
    write_json(&files[0], &first);
    cases.push(("overflowing coverage", r));
    let xml = dir.path().join("all.xml");
    for (why, report) in cases {
        let bad = dir.path().join("bad.json");
        write_json(&bad, &report);
        let (code, text) = jetsim(&["merge", s(&files[0]), s(&bad), "--junit", s(&xml)]);
        assert_eq!(code, 2, "{why}: {text}");
        assert!(text.contains("error: "), "{why}: {text}");
    }
}

/// The shard count is bounded (at most 1,000,000) and missing shards are counted, not
/// enumerated: a merge of one shard of a million ends at once, listing only the first few.
#[test]
fn a_merge_of_one_shard_of_very_many_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = jetsim(&["campaign", "--seeds", "1", "--shard", "1/1000000000000"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("at most 1000000 shards"), "{text}");
    let json = dir.path().join("one.json");
    let (code, text) = jetsim(&[
        "campaign",
        "--seeds",
        "1",
        "--steps",
        "20",
        "--shard",
        "1/1000000",
        "--json",
        s(&json),
    ]);
    assert_eq!(code, 0, "{text}");
    let xml = dir.path().join("all.xml");
    let started = std::time::Instant::now();
    let (code, text) = jetsim(&["merge", s(&json), "--junit", s(&xml)]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // One seed in all: the other shards are empty, not missing... but they did not report.
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED shard 2/1000000: no report"), "{text}");
    assert!(text.contains("999999 shards without a report"), "{text}");
    assert!(text.lines().count() < 100, "{text}");
    let cases: usize = junit_suites(&xml).iter().map(|s| s.1).sum();
    assert!(cases < 100, "{cases} test cases");
    // A crafted report with a shard count past the bound is refused.
    let mut r = read_json(&json);
    r["shard"] = "1/1000000000000".into();
    write_json(&json, &r);
    let (code, text) = jetsim(&["merge", s(&json)]);
    assert_eq!(code, 2, "{text}");
}
