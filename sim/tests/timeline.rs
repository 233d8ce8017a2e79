//! The timeline of a run (`jetsim run --timeline`): recorded beside the trace without changing
//! its hash, holding every step with its outcome, every crash, power loss and recovery the
//! trace tells of, each backup in its directory's lane, and the violation with the model's
//! value and the engine's; rendered as one self-contained page whose data parses back.

use std::collections::BTreeSet;
use std::process::Command;

use jetsim::campaign::plan_for;
use jetsim::timeline::{Lane, Timeline, html};
use jetsim::trace::Keep;
use jetsim::{Oracle, Plan, RunOptions, RunReport, Sabotage, Step, run};

const SABOTAGE: &str = "engine:checkpoint-before-write-back";

fn plan(seed: u64, sabotage: Option<&str>) -> Plan {
    plan_for(
        seed,
        None,
        sabotage.map(|s| Sabotage::parse(s).expect("a sabotage")),
    )
}

/// A run with its trace's text and its timeline.
fn recorded(plan: &Plan) -> (RunReport, Timeline) {
    let mut report = run(
        plan,
        RunOptions {
            keep: Keep::Events,
            timeline: true,
            ..RunOptions::default()
        },
    );
    let timeline = report.timeline.take().expect("a timeline was asked for");
    (report, timeline)
}

/// How many of the trace's lines start with `prefix`.
fn lines(report: &RunReport, prefix: &str) -> usize {
    report
        .trace
        .lines()
        .iter()
        .filter(|(l, _)| l.starts_with(prefix))
        .count()
}

fn marks(t: &Timeline, lane: Lane, kind: &str) -> usize {
    t.marks
        .iter()
        .filter(|m| m.lane == lane && m.kind == kind)
        .count()
}

/// Seeds 5 and 16 back up into their directories, crash, lose power and recover.
#[test]
fn a_run_with_backups_and_crashes_is_all_on_its_timeline() {
    for seed in [5, 16] {
        let plan = plan(seed, None);
        let (report, t) = recorded(&plan);
        assert!(report.violation.is_none(), "seed {seed} passes");

        // Every step, in order, with the outcome its trace line holds; then the final phase.
        let indices: Vec<usize> = t.steps.iter().map(|s| s.index).collect();
        assert_eq!(indices, (0..=plan.steps.len()).collect::<Vec<_>>());
        for (i, step) in plan.steps.iter().enumerate() {
            let line = format!("step {i}: {step:?} → {}", t.steps[i].outcome);
            assert!(
                report.trace.lines().iter().any(|(l, _)| *l == line),
                "seed {seed}: no trace line {line:?}"
            );
        }

        // A session lane for each session that began a transaction, its span from there.
        let sessions = plan.config.sessions as usize;
        let mut used = BTreeSet::new();
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::Begin { s } = step
                && t.steps[i].outcome == "ok"
            {
                let lane = Lane::Session(*s as usize % sessions);
                used.insert(lane);
                assert!(
                    t.spans
                        .iter()
                        .any(|sp| sp.lane == lane && sp.begin_step == i),
                    "seed {seed}: the transaction begun at step {i} has no span"
                );
            }
        }
        assert!(!used.is_empty());
        assert!(used.iter().all(|l| t.lanes.contains(l)), "{:?}", t.lanes);

        // The instance lane: every crash, power loss, restart and recovery the trace shows.
        let crashes = lines(&report, "crash at I/O point");
        let power = lines(&report, "power loss:") + lines(&report, "crash during recovery");
        assert!(
            crashes > 0 && power > 0,
            "seed {seed} crashes and loses power"
        );
        assert_eq!(marks(&t, Lane::Instance, "crash"), crashes, "seed {seed}");
        assert_eq!(
            marks(&t, Lane::Instance, "power-loss"),
            power,
            "seed {seed}"
        );
        let restarts = t
            .marks
            .iter()
            .filter(|m| m.kind == "restart" && m.label == "process restart")
            .count();
        assert_eq!(restarts, lines(&report, "process restart"), "seed {seed}");
        let recoveries = t.marks.iter().filter(|m| m.label == "recovery").count();
        assert_eq!(recoveries, lines(&report, "recovered: "), "seed {seed}");
        assert!(
            marks(&t, Lane::Instance, "log-roll") > 0,
            "seed {seed} rolls its log"
        );

        // Each backup in its directory's lane, from its begin to its end.
        let backups: Vec<_> = t
            .spans
            .iter()
            .filter(|s| matches!(s.lane, Lane::Backup(_)))
            .collect();
        let began = report
            .trace
            .lines()
            .iter()
            .filter(|(l, _)| l.starts_with("backup ") && l.contains(" began at commit "))
            .count();
        assert_eq!(backups.len(), began, "seed {seed}");
        assert!(backups.len() >= 2, "seed {seed} backs up");
        for span in &backups {
            assert!(span.begin_step <= span.end_step, "{span:?}");
            assert!(span.begin_millis <= span.end_millis, "{span:?}");
            let Lane::Backup(dir) = span.lane else {
                unreachable!()
            };
            let began = &t.steps[span.begin_step].events;
            assert!(
                began.iter().any(
                    |e| e.starts_with("backup ") && e.contains(&format!(" into bk{dir} began"))
                ),
                "seed {seed}: the span in bk{dir} did not begin with a backup into bk{dir}: {began:?}"
            );
        }
        let succeeded = backups.iter().filter(|s| s.class == "backup-ok").count();
        let said = report
            .trace
            .lines()
            .iter()
            .filter(|(l, _)| l.starts_with("backup into bk") && l.ends_with(" succeeded"))
            .count();
        assert_eq!(succeeded, said, "seed {seed}");
    }
}

#[test]
fn the_timeline_does_not_change_the_trace_hash() {
    for (seed, sabotage) in [(5, None), (16, None), (27, Some(SABOTAGE))] {
        let plan = plan(seed, sabotage);
        let plain = run(&plan, RunOptions::default());
        let (with, _) = recorded(&plan);
        assert_eq!(plain.trace_hash, with.trace_hash, "seed {seed}");
        assert!(plain.timeline.is_none());
    }
}

#[test]
fn a_violation_is_on_the_timeline_with_the_model_s_value_and_the_engine_s() {
    // (A crash-prefix violation in the instance's lane; a backup's in its directory's.)
    for (seed, oracle, lane) in [
        (27, Oracle::CrashPrefix, Lane::Instance),
        (2, Oracle::Backup, Lane::Backup(2)),
    ] {
        let (report, t) = recorded(&plan(seed, Some(SABOTAGE)));
        let v = report.violation.expect("the sabotage is caught");
        assert_eq!(v.oracle, oracle, "seed {seed}: {v}");
        let (expected, actual) = (
            v.expected.as_deref().expect("the model's value"),
            v.actual.as_deref().expect("the engine's value"),
        );
        assert_ne!(expected, actual);
        let record = t.violation.as_ref().expect("on the timeline");
        assert_eq!(record.violation, v);
        assert_eq!(record.lane, lane, "seed {seed}");
        assert!(t.lanes.contains(&lane));
        assert!(t.steps[v.step].outcome.starts_with("VIOLATION"));
    }
}

#[test]
fn the_page_is_self_contained_and_its_data_parses_back() {
    let (_, t) = recorded(&plan(27, Some(SABOTAGE)));
    let page = html::render(&t);
    for outside in [
        "http://", "https://", "src=", "url(", "@import", "<link", "fetch(",
    ] {
        assert!(!page.contains(outside), "the page holds {outside:?}");
    }
    assert_eq!(html::embedded(&page), Ok(t));
}

fn jetsim(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jetsim"))
        .args(args)
        .output()
        .expect("jetsim runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn jetsim_run_timeline_writes_the_page_and_a_failure_names_the_command() {
    let dir = std::env::temp_dir().join(format!("jetsim-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("seed-27.html");
    let path = page.to_str().unwrap();
    let (ok, text) = jetsim(&[
        "run",
        "--seed",
        "27",
        "--sabotage",
        SABOTAGE,
        "--timeline",
        path,
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("timeline written to {path}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "timeline: jetsim run --seed 27 --sabotage {SABOTAGE} --timeline {path}"
        )),
        "{text}"
    );
    let t = html::embedded(&std::fs::read_to_string(&page).unwrap()).unwrap();
    assert_eq!(
        t.violation.map(|v| v.violation.oracle),
        Some(Oracle::CrashPrefix)
    );

    // A plan file too; a failing run without --timeline names the command to get one.
    let plan = dir.join("plan.json");
    let (_, text) = jetsim(&[
        "run",
        "--seed",
        "27",
        "--sabotage",
        SABOTAGE,
        "--dump-plan",
        plan.to_str().unwrap(),
    ]);
    assert!(
        text.contains(&format!(
            "timeline: jetsim run --seed 27 --sabotage {SABOTAGE} --timeline seed-27.html"
        )),
        "{text}"
    );
    let from_plan = dir.join("plan.html");
    let (_, text) = jetsim(&[
        "run",
        "--plan",
        plan.to_str().unwrap(),
        "--timeline",
        from_plan.to_str().unwrap(),
    ]);
    assert!(text.contains("timeline written to"), "{text}");
    let again = html::embedded(&std::fs::read_to_string(&from_plan).unwrap()).unwrap();
    assert_eq!(again.steps.len(), t.steps.len());

    // Shrink names the timeline command of what it wrote.
    let shrunk = dir.join("shrunk.json");
    let (ok, text) = jetsim(&[
        "shrink",
        "--seed",
        "27",
        "--sabotage",
        SABOTAGE,
        "--max-runs",
        "30",
        "--out",
        shrunk.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // (The page in the current directory, not beside the scenario where it may be committed.)
    let command = format!(
        "timeline: jetsim run --plan {} --timeline shrunk.html",
        shrunk.display(),
    );
    assert!(text.contains(&command), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The command a line printed names, run by a shell in `cwd` with this build's jetsim.
fn run_printed(text: &str, prefix: &str, cwd: &std::path::Path) -> String {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {text}"));
    let command = line
        .strip_prefix("jetsim ")
        .unwrap_or_else(|| panic!("{line:?} runs jetsim"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("\"$JETSIM\" {command}"))
        .env("JETSIM", env!("CARGO_BIN_EXE_jetsim"))
        .current_dir(cwd)
        .output()
        .expect("sh runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The `replay:` and `timeline:` lines of `run` and `shrink` are commands a shell runs as
/// printed, whatever the paths hold (spaces, quotes, a `$`).
#[test]
fn the_printed_timeline_commands_run_as_printed() {
    let dir = std::env::temp_dir().join(format!("jetsim tl 'q' $x {}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("seed 27's.html");
    let (ok, text) = jetsim(&[
        "run",
        "--seed",
        "27",
        "--sabotage",
        SABOTAGE,
        "--timeline",
        page.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("timeline written to"), "{text}");
    std::fs::remove_file(&page).unwrap();
    let again = run_printed(&text, "timeline: ", &dir);
    assert!(again.contains("timeline written to"), "{again}");
    assert!(page.exists(), "{text}\n{again}");

    let shrunk = dir.join("shrunk 27.json");
    let (ok, text) = jetsim(&[
        "shrink",
        "--seed",
        "27",
        "--sabotage",
        SABOTAGE,
        "--max-runs",
        "30",
        "--out",
        shrunk.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let replay = text
        .lines()
        .find_map(|l| {
            l.split_once("(replay: ")
                .map(|(_, r)| r.trim_end_matches(')'))
        })
        .expect("a replay command");
    let replayed = run_printed(&format!("replay: {replay}"), "replay: ", &dir);
    assert!(replayed.contains("VIOLATION"), "{replayed}");
    let drawn = run_printed(&text, "timeline: ", &dir);
    assert!(drawn.contains("timeline written to"), "{drawn}");
    assert!(dir.join("shrunk 27.html").exists(), "{text}\n{drawn}");

    // A plan file's replay line too.
    let (_, text) = jetsim(&["run", "--plan", shrunk.to_str().unwrap()]);
    let replayed = run_printed(&text, "replay: ", &dir);
    assert!(replayed.contains("VIOLATION"), "{replayed}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--check-determinism` beside `--timeline` (or `--trace`) runs the check: two plain runs
/// and the recorded one give one trace.
#[test]
fn determinism_is_checked_beside_a_timeline() {
    let page = std::env::temp_dir().join(format!("jetsim-det-{}.html", std::process::id()));
    for extra in [
        ["--timeline", page.to_str().unwrap()],
        ["--trace", "--steps"],
    ] {
        let mut args = vec!["run", "--seed", "16", "--check-determinism"];
        args.extend(extra);
        if extra[0] == "--trace" {
            args.push("60");
        }
        let (ok, text) = jetsim(&args);
        assert!(ok, "{text}");
        assert!(
            text.contains("determinism checked: 3 runs gave the same trace"),
            "{args:?}: {text}"
        );
    }
    let (_, text) = jetsim(&["run", "--seed", "16", "--check-determinism"]);
    assert!(text.contains("determinism checked: 2 runs"), "{text}");
    std::fs::remove_file(&page).unwrap();
}

/// The external backup's span: opened where it began, closed where it really ended.
fn external(t: &Timeline, begin: usize) -> &jetsim::timeline::Span {
    t.spans
        .iter()
        .find(|s| s.lane == Lane::External && s.begin_step == begin)
        .unwrap_or_else(|| panic!("an external backup begun at step {begin}"))
}

/// Seed 130: the external backup begun at 144 dies with the `Crash` step 160 — lost, not a
/// success with the crash step's outcome.
#[test]
fn an_external_backup_killed_by_a_crash_step_is_lost() {
    let (_, t) = recorded(&plan(130, None));
    let span = external(&t, 144);
    assert_eq!(
        (span.end_step, span.class.as_str()),
        (160, "lost"),
        "{span:?}"
    );
}

/// Seed 10: the external backup begun at 256 dies with the crash inside step 259 (the restart
/// comes after the step): it ends at 259, not 260 with the next step's outcome.
#[test]
fn an_external_backup_ends_at_the_step_the_instance_died() {
    let (_, t) = recorded(&plan(10, None));
    let span = external(&t, 256);
    assert_eq!(
        (span.end_step, span.class.as_str()),
        (259, "lost"),
        "{span:?}"
    );
}

/// Seed 21: `ExternalEnd { how: Abort }` at step 129 aborts the backup: not a success.
#[test]
fn an_aborted_external_backup_is_not_a_success() {
    let plan = plan(21, None);
    assert!(matches!(plan.steps[129], Step::ExternalEnd { .. }));
    let (_, t) = recorded(&plan);
    let span = t
        .spans
        .iter()
        .find(|s| s.lane == Lane::External && s.end_step == 129)
        .expect("an external backup ended at step 129");
    assert_eq!(span.class, "backup-fail", "{span:?}");
    assert!(span.outcome.contains("aborted"), "{span:?}");
}

/// A second `ExternalBegin` refused with JET_errBackupInProgress while one runs is no
/// backup: the running one's span goes on.
#[test]
fn a_refused_external_begin_does_not_supersede_the_running_backup() {
    let mut plan = plan(10, None);
    assert!(matches!(plan.steps[272], Step::ExternalBegin { .. }));
    let again = plan.steps[272].clone();
    plan.steps.insert(273, again);
    let (_, t) = recorded(&plan);
    assert!(t.steps[273].outcome.contains("BackupInProgress"));
    let external: Vec<_> = t
        .spans
        .iter()
        .filter(|s| s.lane == Lane::External && s.begin_step >= 272)
        .collect();
    assert_eq!(external.len(), 1, "{external:#?}");
    assert_eq!(external[0].begin_step, 272);
    assert_ne!(external[0].outcome, "superseded");
}

/// A session oracle's violation at a step where nothing was marked (a read, an accepted
/// write) is drawn in the lane of the step's session.
#[test]
fn a_session_oracle_s_violation_is_in_the_session_s_lane() {
    for (seed, sabotage, oracle, session) in [
        (16, "late-snapshot", Oracle::SnapshotRead, 1),
        (3, "accept-conflicts", Oracle::WriteConflict, 3),
    ] {
        let (_, t) = recorded(&plan(seed, Some(sabotage)));
        let v = t.violation.expect("a violation");
        assert_eq!(v.violation.oracle, oracle);
        assert_eq!(v.lane, Lane::Session(session), "seed {seed} {sabotage}");
    }
}

/// A title holding the data slot's name (a plan file named so) does not receive the JSON.
#[test]
fn a_title_holding_the_data_slot_s_name_does_not_break_the_page() {
    let mut t = Timeline::new();
    t.title = "jetsim run --plan __TIMELINE_JSON__.json __TIMELINE_TITLE__".into();
    t.begin_step(0, "Checkpoint".into());
    let page = html::render(&t);
    assert_eq!(html::embedded(&page), Ok(t));
}

/// What the trace says ended a backup at `step`: a crash or restart there.
fn crashed_at(t: &Timeline, step: usize) -> bool {
    t.steps[step].events.iter().any(|e| {
        e.starts_with("crash at I/O point")
            || e.starts_with("power loss:")
            || e.starts_with("process restart")
            || e.starts_with("crash during recovery")
    })
}

/// External backups against the trace: one span for each begin the trace tells of, from its
/// begin's step; a success only where an `ExternalEnd` said it ended normally; lost only
/// where the instance died; none open at the end of a passing run. Stream backups: a crash
/// during one is no restore.
#[test]
fn external_and_stream_backups_end_where_the_trace_says() {
    let mut seen = BTreeSet::new();
    for seed in [
        10, 21, 130, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15,
    ] {
        let (report, t) = recorded(&plan(seed, None));
        let spans: Vec<_> = t
            .spans
            .iter()
            .filter(|s| s.lane == Lane::External)
            .collect();
        assert_eq!(
            spans.len(),
            lines(&report, "external backup began at commit"),
            "seed {seed}"
        );
        for span in spans {
            seen.insert(span.class.clone());
            assert!(
                t.steps[span.begin_step]
                    .events
                    .iter()
                    .any(|e| e.starts_with("external backup began")),
                "seed {seed}: {span:?}"
            );
            let end = &t.steps[span.end_step];
            match span.class.as_str() {
                "backup-ok" => assert!(
                    end.label.starts_with("ExternalEnd") && end.outcome.starts_with("ended: "),
                    "seed {seed}: {span:?} ends at {end:?}"
                ),
                "lost" => assert!(crashed_at(&t, span.end_step), "seed {seed}: {span:?}"),
                "backup-fail" => assert!(
                    end.label.starts_with("External") || end.label.starts_with("Restart"),
                    "seed {seed}: {span:?} ends at {end:?}"
                ),
                other => assert!(
                    report.violation.is_some(),
                    "seed {seed}: class {other} in a passing run: {span:?}"
                ),
            }
        }
        for m in t.marks.iter().filter(|m| m.lane == Lane::Stream) {
            if crashed_at(&t, m.step) {
                assert_eq!(m.kind, "backup-lost", "seed {seed}: {m:?}");
            }
        }
    }
    for class in ["backup-ok", "backup-fail", "lost"] {
        assert!(
            seen.contains(class),
            "no external backup drawn {class}: {seen:?}"
        );
    }
}

/// Backups into a directory against the trace: a success where the trace says it succeeded
/// (and not when the machine crashed in its finish), a failure where it failed, lost where
/// the instance died.
#[test]
fn directory_backups_end_where_the_trace_says() {
    for seed in [118, 124, 169, 201, 5, 16, 9, 33, 56] {
        let (_, t) = recorded(&plan(seed, None));
        for span in t.spans.iter().filter(|s| matches!(s.lane, Lane::Backup(_))) {
            let Lane::Backup(dir) = span.lane else {
                unreachable!()
            };
            let events = &t.steps[span.end_step].events;
            let said = |what: &str| {
                let line = format!("backup into bk{dir} {what}");
                events.iter().any(|e| e.starts_with(&line))
            };
            match span.class.as_str() {
                "backup-ok" => assert!(said("succeeded"), "seed {seed}: {span:?}"),
                "backup-fail" => assert!(
                    (said("failed") && !crashed_at(&t, span.end_step))
                        || span.outcome == "abandoned",
                    "seed {seed}: {span:?}"
                ),
                "lost" | "backup-kept" => {
                    assert!(crashed_at(&t, span.end_step), "seed {seed}: {span:?}");
                    assert!(span.outcome.contains("crashed"), "seed {seed}: {span:?}");
                    assert_eq!(
                        span.class == "backup-kept",
                        span.outcome.contains("found its manifest in place"),
                        "seed {seed}: {span:?}"
                    );
                    assert!(
                        !span.outcome.contains("ended: succeeded"),
                        "seed {seed}: {span:?}"
                    );
                }
                other => panic!("seed {seed}: {other}: {span:?}"),
            }
        }
    }
    // Seed 118: the backup into bk1 begun at 24 crashed as its finish (step 29) returned.
    let (_, t) = recorded(&plan(118, None));
    let span = t
        .spans
        .iter()
        .find(|s| s.lane == Lane::Backup(1) && s.begin_step == 24)
        .expect("the backup into bk1 begun at 24");
    assert_eq!(span.end_step, 29, "{span:?}");
    assert_eq!(span.class, "backup-kept", "{span:?}");
    assert!(
        span.outcome
            .starts_with("the machine crashed as its finish returned success"),
        "{span:?}"
    );
    // Seed 201: the backup into bk0 begun at 114 crashed before it was complete.
    let (_, t) = recorded(&plan(201, None));
    let span = t
        .spans
        .iter()
        .find(|s| s.lane == Lane::Backup(0) && s.begin_step == 114)
        .expect("the backup into bk0 begun at 114");
    assert_eq!(
        (span.end_step, span.class.as_str()),
        (145, "lost"),
        "{span:?}"
    );
    assert!(span.outcome.contains("found no manifest"), "{span:?}");
}

/// Every fault the disk fired is a mark, and the log rolls go up a generation at a time
/// (the same one again only after a power loss undid its rename).
#[test]
fn faults_fired_and_log_rolls_match_the_trace() {
    for seed in [4, 7, 10] {
        let (report, t) = recorded(&plan(seed, None));
        let fired = lines(&report, "fault: ");
        assert!(fired > 0, "seed {seed} fires faults");
        assert_eq!(t.count("fault-fired"), fired, "seed {seed}");
    }
    for seed in [5, 16] {
        let (_, t) = recorded(&plan(seed, None));
        let rolls: Vec<(usize, u32)> = t
            .marks
            .iter()
            .filter(|m| m.kind == "log-roll")
            .map(|m| {
                let hex = m.label.split("0x").nth(1).expect("a generation");
                let hex = hex.split_whitespace().next().unwrap();
                (m.step, u32::from_str_radix(hex, 16).unwrap())
            })
            .collect();
        assert!(rolls.len() > 1, "seed {seed}: {rolls:?}");
        for pair in rolls.windows(2) {
            let ((a, ga), (b, gb)) = (pair[0], pair[1]);
            let power_lost = t
                .marks
                .iter()
                .any(|m| m.kind == "power-loss" && (a..=b).contains(&m.step));
            assert!(
                gb == ga + 1 || (power_lost && gb <= ga),
                "seed {seed}: rolls {rolls:?}"
            );
        }
    }
}

/// The model's value and the engine's, at every data oracle that has them: a table gone
/// after recovery, the header's backup records after recovery, and the restores of an
/// external backup, a stream, and a roll forward (planted bugs that reach each).
#[test]
fn violations_carry_the_model_s_value_and_the_engine_s() {
    let cases: [(u64, &str, Oracle, &str, &str); 7] = [
        (
            17,
            "skip-sync:log",
            Oracle::WrongData,
            "table t0 (created at setup, never dropped)",
            "no table t0: JET_errObjectNotFound (-1305)",
        ),
        (
            24,
            "skip-sync:log",
            Oracle::WrongData,
            "table t0 (created at setup, never dropped)",
            "no table t0: JET_errObjectNotFound (-1305)",
        ),
        (
            14,
            "skip-sync:database",
            Oracle::WrongData,
            "table t0 (created at setup, never dropped)",
            "no table t0: JET_errObjectNotFound (-1305)",
        ),
        (
            10,
            "skip-dir-sync",
            Oracle::Backup,
            "header's backup records at least: full BackupInfo { mark: Lgpos { generation: 2, offset: 4128 }, time_millis: 1767225600027, gen_low: 1, gen_high: 1 }",
            "header's backup records: full BackupInfo { mark: Lgpos { generation: 0, offset: 0 }",
        ),
        (
            40,
            "engine:checkpoint-before-write-back",
            Oracle::ExternalBackup,
            "(0, 1)=#14 (29 bytes)\n(0, 4)=#24 (49 bytes)\n(1, 1)=#13 (49 bytes)",
            "(0, 1)=-\n(0, 4)=-\n(1, 1)=-",
        ),
        (
            105,
            "engine:checkpoint-before-write-back",
            Oracle::ExternalBackup,
            "(0, 7)=#12 (86 bytes)\n(1, 0)=#14 (67 bytes)\n(1, 3)=#9 (17 bytes)\n(1, 5)=#10 (93 bytes)\n(2, 3)=-\n(2, 4)=#13 (68 bytes)",
            "(0, 7)=#8 (58 bytes)\n(1, 0)=-\n(1, 3)=-\n(1, 5)=-\n(2, 3)=#5 (52 bytes)\n(2, 4)=-",
        ),
        (
            13,
            "engine:replay-keeps-first-change",
            Oracle::RollForward,
            "(1, 3)=#32 (46 bytes)\n(1, 39)=#30 (102 bytes)",
            "(1, 3)=#12 (34 bytes)\n(1, 39)=#14 (120 bytes)",
        ),
    ];
    for (seed, sabotage, oracle, expected, actual) in cases {
        let (report, t) = recorded(&plan(seed, Some(sabotage)));
        let v = report.violation.expect("the sabotage is caught");
        assert_eq!(v.oracle, oracle, "seed {seed} {sabotage}: {v}");
        let (e, a) = (v.expected.as_deref(), v.actual.as_deref());
        assert!(
            e.is_some_and(|e| e.starts_with(expected)),
            "seed {seed} {sabotage}: expected {e:?}"
        );
        assert!(
            a.is_some_and(|a| a.starts_with(actual)),
            "seed {seed} {sabotage}: actual {a:?}"
        );
        assert_eq!(t.violation.map(|r| r.violation), Some(v));
    }
    // (The stream's: seed 105's is a stream restored, not an external backup's copy.)
    let report = run(
        &plan(105, Some("engine:checkpoint-before-write-back")),
        RunOptions::default(),
    );
    assert!(
        report
            .violation
            .is_some_and(|v| v.detail.starts_with("a backup stream")),
    );
}

/// A crash inside a stream backup (armed to strike a few I/O points into it) is drawn as a
/// backup lost, not as a stream restored.
#[test]
fn a_stream_backup_the_machine_crashed_in_is_lost() {
    let (seed, at) = (0..60)
        .find_map(|seed| {
            let plan = plan(seed, None);
            let (_, t) = recorded(&plan);
            let at = plan.steps.iter().enumerate().position(|(i, s)| {
                matches!(s, Step::StreamBackup { .. })
                    && t.steps
                        .get(i)
                        .is_some_and(|r| r.outcome.starts_with("streamed"))
            })?;
            Some((seed, at))
        })
        .expect("a seed that streams a backup");
    let mut lost = 0;
    for points in 1..30 {
        let mut plan = plan(seed, None);
        plan.steps.insert(
            at,
            Step::CrashAt {
                points,
                power_loss: true,
            },
        );
        let (_, t) = recorded(&plan);
        if t.steps.len() <= at + 1 || !crashed_at(&t, at + 1) {
            continue;
        }
        let marks: Vec<_> = t
            .marks
            .iter()
            .filter(|m| m.lane == Lane::Stream && m.step == at + 1)
            .collect();
        assert!(
            marks.iter().all(|m| m.kind == "backup-lost"),
            "seed {seed}, crash {points} points on: {marks:?}"
        );
        lost += marks.len();
    }
    assert!(
        lost > 0,
        "no crash struck a stream backup (seed {seed}, step {at})"
    );
}
