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
    let command = format!(
        "timeline: jetsim run --plan {} --timeline {}",
        shrunk.display(),
        dir.join("shrunk.html").display()
    );
    assert!(text.contains(&command), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
