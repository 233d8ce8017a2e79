//! The `jetsim` command line: one run, a failing run with its replay command, shrinking, and
//! a campaign with its JSON and JUnit reports and its last line.

use std::process::Command;

fn jetsim(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jetsim"))
        .args(args)
        // The shard variables of a CI job running these tests must not make a shard of them.
        .env_remove("JETSIM_SHARD")
        .env_remove("JETSIM_SHARDS")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .expect("jetsim runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_run_prints_its_configuration_and_ends_with_its_seed_and_trace() {
    let (ok, text) = jetsim(&["run", "--seed", "7", "--steps", "80"]);
    assert!(ok, "{text}");
    assert!(text.starts_with("seed=7 steps=80"), "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("seed=7 trace="), "{last}");
    let (_, again) = jetsim(&["run", "--seed", "7", "--steps", "80"]);
    assert_eq!(
        again.lines().last(),
        Some(last),
        "the same seed, the same trace"
    );
    let (ok, checked) = jetsim(&["run", "--seed", "7", "--steps", "80", "--check-determinism"]);
    assert!(ok && !checked.contains("NON-DETERMINISM"), "{checked}");
}

#[test]
fn the_trace_prints_each_step_with_its_outcome_on_its_line() {
    let (ok, text) = jetsim(&["run", "--seed", "10", "--steps", "140", "--trace"]);
    assert!(ok, "{text}");
    let steps: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("step "))
        .collect();
    assert_eq!(steps.len(), 140, "{text}");
    // Every step line ends with what the step returned, in order.
    for (i, line) in steps.iter().enumerate() {
        assert!(
            line.trim_start().starts_with(&format!("step {i}: ")),
            "{line}"
        );
        let (_, outcome) = line
            .split_once(" → ")
            .unwrap_or_else(|| panic!("no outcome: {line}"));
        assert!(!outcome.is_empty(), "{line}");
    }
    // Errors by ESE name and code; reads by what they found.
    assert!(
        steps
            .iter()
            .any(|l| l.contains("→ JET_err") && l.ends_with(')')),
        "{text}"
    );
    assert!(
        steps
            .iter()
            .any(|l| l.contains("Scan") && l.ends_with(" records")),
        "{text}"
    );
    // What happens during a step follows its line.
    let began = text
        .lines()
        .position(|l| l.contains("BackupBegin") && l.contains("→ began"))
        .expect("a backup began");
    let next = text.lines().nth(began + 1).unwrap();
    assert!(
        next.contains("backup ") && next.contains(" into bk") && next.contains(" began at commit"),
        "{text}"
    );
}

#[test]
fn a_violation_exits_1_naming_the_oracle_the_step_and_the_replay() {
    let (ok, text) = jetsim(&["run", "--seed", "2", "--sabotage", "panic-in-sync"]);
    assert!(!ok);
    assert!(
        text.contains("VIOLATION: oracle panic fired at step"),
        "{text}"
    );
    assert!(
        text.contains("replay: jetsim run --seed 2 --sabotage panic-in-sync"),
        "{text}"
    );
    let (ok, text) = jetsim(&["run", "--sabotage", "no-such-bug"]);
    assert!(!ok && text.contains("unknown sabotage"), "{text}");
}

#[test]
fn shrink_writes_a_scenario_that_replays_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    let out_s = out.to_str().unwrap();
    // The first seed the swarm loses a durable commit in under this sabotage.
    let sabotage = jetsim::Sabotage::SkipSync(jetsim::Zone::Log);
    let (seed, original) = (0..400u64)
        .find_map(|seed| {
            let plan = jetsim::campaign::plan_for(seed, None, Some(sabotage));
            let v = jetsim::run(&plan, jetsim::RunOptions::default()).violation?;
            (v.oracle == jetsim::Oracle::CrashPrefix).then_some((seed, v.step + 1))
        })
        .expect("a seed that loses a durable commit");
    let seed = seed.to_string();
    let (ok, text) = jetsim(&[
        "shrink",
        "--seed",
        &seed,
        "--sabotage",
        "skip-sync:log",
        "--out",
        out_s,
    ]);
    assert!(ok, "{text}");
    let scenario: jetsim::Scenario =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(scenario.expect, Some(jetsim::Oracle::CrashPrefix));
    // Shrunk to at most a third of the steps the failure took.
    assert!(
        scenario.plan.steps.len() * 3 <= original,
        "{} of {original}",
        scenario.plan.steps.len()
    );
    let (ok, text) = jetsim(&["run", "--plan", out_s]);
    assert!(!ok && text.contains("oracle crash-prefix"), "{text}");
}

#[test]
fn a_campaign_reports_json_junit_and_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("c.json");
    let junit = dir.path().join("c.xml");
    let (ok, text) = jetsim(&[
        "campaign",
        "--seeds",
        "12",
        "--start",
        "100",
        "--jobs",
        "2",
        "--shard",
        "2/3",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.lines().last(), Some("4 passed, 0 failed"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let seeds: Vec<u64> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![101, 104, 107, 110]);
    assert_eq!(report["failed"], 0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite") && xml.contains("seed 104"),
        "{xml}"
    );

    let (ok, text) = jetsim(&[
        "campaign",
        "--seeds",
        "30",
        "--sabotage",
        "skip-sync:log",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(text.lines().last().unwrap().ends_with("failed"), "{text}");
    assert!(text.contains("replay: jetsim run --seed"), "{text}");
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("<failure")
    );
}
