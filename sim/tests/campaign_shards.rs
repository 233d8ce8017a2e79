//! A campaign's shard from the environment and its time box, through the `jetsim` binary:
//! which shard runs and where it came from, bad values refused, and a time-boxed campaign's
//! printed replay command running exactly the seeds it covered, with the same results.

use std::process::Command;

fn jetsim(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jetsim"));
    cmd.args(args);
    for name in ["JETSIM_SHARD", "JETSIM_SHARDS", "JOB_COMPLETION_INDEX"] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("jetsim runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// (seed, trace) of every result in a campaign's JSON report.
fn results(path: &std::path::Path) -> Vec<(u64, String)> {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["seed"].as_u64().unwrap(),
                r["trace"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_shard_comes_from_the_environment_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let json_s = json.to_str().unwrap();
    let small = [
        "campaign", "--seeds", "9", "--steps", "30", "--json", json_s,
    ];
    let (code, text) = jetsim(
        &small,
        &[("JOB_COMPLETION_INDEX", "1"), ("JETSIM_SHARDS", "3")],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("shard 2/3 (from JOB_COMPLETION_INDEX and JETSIM_SHARDS)"),
        "{text}"
    );
    let seeds: Vec<u64> = results(&json).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seeds, vec![1, 4, 7]);
    assert!(
        text.contains("covered seeds 0..8 (3 seeds, shard 2/3)"),
        "{text}"
    );

    let (code, text) = jetsim(&small, &[("JETSIM_SHARD", "3/3"), ("JETSIM_SHARDS", "3")]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("shard 3/3 (from JETSIM_SHARD)"), "{text}");
    let mut flagged = small.to_vec();
    flagged.extend(["--shard", "1/2"]);
    let (code, text) = jetsim(&flagged, &[("JETSIM_SHARD", "nonsense")]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("shard 1/2 (from --shard)"), "{text}");

    // Never a silent full campaign.
    for env in [
        vec![("JOB_COMPLETION_INDEX", "0")],
        vec![("JOB_COMPLETION_INDEX", "3"), ("JETSIM_SHARDS", "3")],
        vec![("JOB_COMPLETION_INDEX", "0"), ("JETSIM_SHARDS", "0")],
        vec![("JETSIM_SHARD", "4/3")],
        vec![("JETSIM_SHARDS", "3")],
        // JETSIM_SHARD and the Kubernetes variables disagree: which is meant is unknown.
        vec![("JETSIM_SHARD", "1/4"), ("JETSIM_SHARDS", "8")],
        vec![
            ("JETSIM_SHARD", "1/4"),
            ("JETSIM_SHARDS", "4"),
            ("JOB_COMPLETION_INDEX", "2"),
        ],
        vec![("JETSIM_SHARD", "2/4"), ("JOB_COMPLETION_INDEX", "0")],
    ] {
        let (code, text) = jetsim(&small, &env);
        assert_eq!(code, 2, "{env:?}: {text}");
        assert!(
            text.starts_with("error: ") && !text.contains("passed"),
            "{text}"
        );
    }
}

#[test]
fn a_time_boxed_campaign_covers_a_prefix_its_replay_command_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let (boxed, again) = (dir.path().join("boxed.json"), dir.path().join("again.json"));
    let (code, text) = jetsim(
        &[
            "campaign",
            "--duration",
            "1500ms",
            "--steps",
            "40",
            "--start",
            "500",
            "--jobs",
            "2",
            "--shard",
            "2/3",
            "--json",
            boxed.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    let ran = results(&boxed);
    let n = ran.len() as u64;
    assert!(n >= 2, "{text}");
    // Exactly the first n seeds of shard 2/3 from 500: 501, 504, 507, …
    let want: Vec<u64> = (0..n).map(|i| 501 + 3 * i).collect();
    assert_eq!(ran.iter().map(|r| r.0).collect::<Vec<_>>(), want);
    let end = 501 + 3 * (n - 1) + 1;
    assert!(
        text.contains(&format!("covered seeds 500..{end} ({n} seeds, shard 2/3)")),
        "{text}"
    );
    let replay = text
        .lines()
        .find_map(|l| l.strip_prefix("replay the range: jetsim "))
        .unwrap_or_else(|| panic!("no replay line: {text}"));
    assert_eq!(
        replay,
        format!(
            "campaign --start 500 --seeds {} --shard 2/3 --steps 40",
            end - 500
        )
    );
    let mut args: Vec<&str> = replay.split(' ').collect();
    args.extend(["--json", again.to_str().unwrap()]);
    let (code, text) = jetsim(&args, &[]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        results(&again),
        ran,
        "the replay runs the same seeds, same traces"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&boxed).unwrap()).unwrap();
    assert_eq!(report["seeds_requested"], serde_json::Value::Null);
    assert_eq!(report["duration_seconds"], 1.5);
    assert_eq!(report["covered"]["end"], end);

    // --seeds bounds a time box; a bad duration is refused.
    let (code, text) = jetsim(
        &[
            "campaign",
            "--duration",
            "1h",
            "--seeds",
            "3",
            "--steps",
            "30",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("covered seeds 0..3 (3 seeds)"), "{text}");
    let (code, text) = jetsim(&["campaign", "--duration", "soon"], &[]);
    assert_eq!(code, 2, "{text}");
}

/// A shard variable that is not UTF-8 is refused (exit 2), not taken for unset.
#[test]
fn a_shard_variable_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"1/\xff");
    for name in ["JETSIM_SHARD", "JETSIM_SHARDS", "JOB_COMPLETION_INDEX"] {
        let out = Command::new(env!("CARGO_BIN_EXE_jetsim"))
            .args(["campaign", "--seeds", "2", "--steps", "20"])
            .env_remove("JETSIM_SHARD")
            .env_remove("JETSIM_SHARDS")
            .env_remove("JOB_COMPLETION_INDEX")
            .env(name, bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("UTF-8"),
            "{stderr}"
        );
    }
}

/// A time box too long for the clock is no deadline (the seed bound ends the campaign), not
/// a silent exit 101 after panics were quietened.
#[test]
fn a_huge_duration_means_no_deadline_not_a_silent_panic() {
    let (code, text) = jetsim(
        &[
            "campaign",
            "--seeds",
            "2",
            "--steps",
            "20",
            "--duration",
            "500000000000years",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("covered seeds 0..2 (2 seeds)"), "{text}");
}
