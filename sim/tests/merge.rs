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
    // A suite per shard with a case per seed, and the merge's own checks.
    let suites = junit_suites(&xml);
    let seeds: usize = suites
        .iter()
        .filter(|s| s.0.starts_with("jetsim campaign shard"))
        .map(|s| s.1)
        .sum();
    assert_eq!(seeds, 20, "{suites:?}");
    assert_eq!(suites.len(), 4, "{suites:?}");
    assert!(suites.iter().all(|s| s.2 == 0), "{suites:?}");
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
    let junit_failures: usize = junit_suites(&xml).iter().map(|s| s.2).sum();
    assert_eq!(junit_failures as u64, failed);

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
