//! `jetsim`: run the simulator — one seed, a plan file, or a campaign of many seeds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jetsim::campaign::{
    CampaignOptions, ShardEnv, UNBOUNDED, campaign_within, json_report, junit_report, parse_shard,
    plan_for, quiet_panics, replay_command, resolve_shard, run_checked, timeline_command,
};
use jetsim::trace::Keep;
use jetsim::{Plan, RunOptions, Sabotage, run};

/// Prints a line to standard output; a closed pipe (`jetsim … | head`) ends the program the
/// way SIGPIPE would, instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

#[derive(Parser)]
#[command(
    name = "jetsim",
    version,
    about = "Deterministic simulation of jetdb: a simulated disk and clock, crashes, torn writes, I/O errors and corruption, checked against a model."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One run: prints its configuration, then (with --trace) its events, and ends with a
    /// line holding `seed=S` and `trace=<hex>`.
    Run {
        /// The seed: it draws the configuration and the workload.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Steps in the workload (default: the profile's).
        #[arg(long)]
        steps: Option<u32>,
        /// Print every event as it happens.
        #[arg(long)]
        trace: bool,
        /// With --trace, print every disk operation too.
        #[arg(long, requires = "trace")]
        trace_io: bool,
        /// Run this plan (JSON) instead of drawing one from the seed.
        #[arg(long, conflicts_with_all = ["seed", "steps", "sabotage"])]
        plan: Option<PathBuf>,
        /// Write the plan as JSON, for editing, shrinking or a scenario file.
        #[arg(long)]
        dump_plan: Option<PathBuf>,
        /// Write the disk's files, as they stand at the end or at the violation, into this
        /// directory (for `jetutil logs`, `recover`, `check`…).
        #[arg(long)]
        dump_disk: Option<PathBuf>,
        /// Run twice and compare the traces; name the first divergent event.
        #[arg(long)]
        check_determinism: bool,
        /// Build a bug in, to see an oracle fire: skip-sync:log, skip-sync:database,
        /// skip-sync:checkpoint, skip-dir-sync, lost-write:database, lost-write:log,
        /// accept-conflicts, late-snapshot, panic-in-sync
        #[arg(long, value_parser = parse_sabotage)]
        sabotage: Option<Sabotage>,
        /// Write the run as a timeline to this HTML file (one self-contained page: sessions,
        /// the instance, backups, faults and the violation, lane by lane).
        #[arg(long)]
        timeline: Option<PathBuf>,
    },
    /// Shrinks a failing run to the fewest steps that still fire the same oracle, and writes
    /// it as a scenario file (check it in under scenarios/; once the bug is fixed, set its
    /// "expect" to null so it must pass).
    Shrink {
        /// The failing seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Steps in the workload (default: the profile's).
        #[arg(long)]
        steps: Option<u32>,
        /// Shrink this plan or scenario file instead.
        #[arg(long, conflicts_with_all = ["seed", "steps", "sabotage"])]
        plan: Option<PathBuf>,
        /// As for `run`.
        #[arg(long, value_parser = parse_sabotage)]
        sabotage: Option<Sabotage>,
        /// Where to write the scenario (default: shrunk-SEED.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The most runs to spend.
        #[arg(long, default_value_t = 3000)]
        max_runs: u64,
    },
    /// Many seeds over worker threads; ends with `N passed, M failed`.
    Campaign {
        /// How many seeds (default 20000; with --duration, the most, else unbounded).
        #[arg(long)]
        seeds: Option<u64>,
        /// Run seeds until this much time is spent (90s, 30m, 2h, 1h30m), then print the
        /// seed range covered and the command that replays it.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run shard K of N (1-based), e.g. 2/4: CI jobs share one campaign. Default: from
        /// JETSIM_SHARD=K/N, else from JOB_COMPLETION_INDEX (0-based) with JETSIM_SHARDS=N.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Steps per run (default: the profile's).
        #[arg(long)]
        steps: Option<u32>,
        /// Write a JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Run every seed twice and compare traces.
        #[arg(long)]
        check_determinism: bool,
        /// Build a bug in under the engine (see `run --help`).
        #[arg(long, value_parser = parse_sabotage)]
        sabotage: Option<Sabotage>,
    },
    /// Merges the JSON reports of a campaign's shards: totals, every failure, the union of
    /// coverage marks. Exits 1 if a seed failed, a shard is missing or an expected mark fired
    /// in none; 2 if the reports are not shards of one campaign.
    Merge {
        /// The shards' JSON reports (`campaign --json`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the merged JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a JUnit XML report here (a test suite per shard).
        #[arg(long)]
        junit: Option<PathBuf>,
    },
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("the duration must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (write e.g. 90s, 30m, 2h, 1h30m)")),
    }
}

/// Writes a report to `path`, making its directory first (a Kubernetes Job writes each run's
/// reports to a directory of its own), or says why it could not.
fn write_report(path: &std::path::Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    }
    write_file(path, text)
}

/// Writes `text` to `path`, or says why it could not.
/// A path as a shell word: in single quotes when it holds anything a POSIX shell would
/// split, expand or glob. (Hand-written: a crate for it would be a dependency of the fuzz
/// workspace too.)
fn shell_word(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./,:=@%+".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text;
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn parse_sabotage(text: &str) -> Result<Sabotage, String> {
    Sabotage::parse(text).ok_or_else(|| {
        let known: Vec<String> = Sabotage::ALL.iter().map(|s| s.to_string()).collect();
        format!("unknown sabotage {text:?}; known: {}", known.join(", "))
    })
}

/// Reads a plan, or the plan of a scenario file.
fn load_plan(path: &std::path::Path) -> Result<Plan, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let plan = match serde_json::from_str::<jetsim::Scenario>(&text) {
        Ok(scenario) => scenario.plan,
        Err(_) => serde_json::from_str::<Plan>(&text)
            .map_err(|e| format!("{} is neither a plan nor a scenario: {e}", path.display()))?,
    };
    plan.config
        .validate()
        .map_err(|why| format!("{}: {why}", path.display()))?;
    Ok(plan)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            seed,
            steps,
            trace,
            trace_io,
            plan,
            dump_plan,
            dump_disk,
            check_determinism,
            sabotage,
            timeline,
        } => {
            let (plan, replay) = match plan {
                Some(path) => match load_plan(&path) {
                    Ok(plan) => (plan, format!("jetsim run --plan {}", shell_word(&path))),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => (
                    plan_for(seed, steps, sabotage),
                    replay_command(seed, steps, sabotage),
                ),
            };
            if let Some(path) = dump_plan {
                let json = serde_json::to_string_pretty(&plan).expect("plans serialise");
                if let Err(e) = std::fs::write(&path, json) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            if !trace {
                // (With --trace the configuration is the first event.)
                say!("{}", plan.config);
            }
            let recorded = trace || dump_disk.is_some() || timeline.is_some();
            // A recorded run is checked too: two plain runs first, then the recorded one must
            // give their trace (recording changes no run).
            let checked = (recorded && check_determinism).then(|| run_checked(&plan, true));
            let (mut report, mut divergence) = if recorded {
                let options = RunOptions {
                    keep: if trace_io {
                        Keep::Everything
                    } else {
                        Keep::Events
                    },
                    echo: trace,
                    keep_disk: dump_disk.is_some(),
                    timeline: timeline.is_some(),
                };
                (run(&plan, options), None)
            } else {
                run_checked(&plan, check_determinism)
            };
            if let Some((first, first_divergence)) = checked {
                divergence = first_divergence.or_else(|| {
                    (first.trace_hash != report.trace_hash).then(|| {
                        format!(
                            "two runs gave trace {:016x}, the recorded run {:016x}",
                            first.trace_hash, report.trace_hash
                        )
                    })
                });
            }
            if let (Some(path), Some(t)) = (&timeline, &mut report.timeline) {
                t.title = replay.clone();
                if let Err(e) = std::fs::write(path, jetsim::timeline::html::render(t)) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
                say!("timeline written to {}", path.display());
            }
            if let Some(dir) = &dump_disk {
                for (path, bytes) in &report.disk {
                    let to = dir.join(path);
                    let written = to
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(&to, bytes));
                    if let Err(e) = written {
                        eprintln!("error: cannot write {}: {e}", to.display());
                        return ExitCode::from(2);
                    }
                }
                say!("disk written to {}", dir.display());
            }
            match &divergence {
                Some(d) => say!("NON-DETERMINISM: {d}"),
                None if check_determinism => say!(
                    "determinism checked: {} runs gave the same trace",
                    if recorded { 3 } else { 2 }
                ),
                None => {}
            }
            if let Some(e) = &report.ended_by_corruption {
                say!("ended early: detected corruption left nothing to recover: {e}");
            }
            let verdict = if report.violation.is_some() || divergence.is_some() {
                "FAIL"
            } else {
                "pass"
            };
            if let Some(v) = &report.violation {
                say!("VIOLATION: {v}");
                say!("replay: {replay}");
                let html = timeline
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(format!("seed-{}.html", report.seed)));
                say!("timeline: {replay} --timeline {}", shell_word(&html));
            }
            say!(
                "seed={} trace={:016x} steps={} operations={} commits={} restarts={} simulated={}ms {verdict}",
                report.seed,
                report.trace_hash,
                report.steps,
                report.operations,
                report.commits,
                report.restarts,
                report.sim_millis
            );
            if verdict == "pass" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Shrink {
            seed,
            steps,
            plan,
            sabotage,
            out,
            max_runs,
        } => {
            let (plan, origin) = match &plan {
                Some(path) => match load_plan(path) {
                    Ok(plan) => (plan, format!("shrunk from {}", path.display())),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => (
                    plan_for(seed, steps, sabotage),
                    format!("shrunk from `{}`", replay_command(seed, steps, sabotage)),
                ),
            };
            let Some(shrunk) = jetsim::shrink(&plan, max_runs) else {
                say!("the run passes: nothing to shrink");
                return ExitCode::FAILURE;
            };
            let out =
                out.unwrap_or_else(|| PathBuf::from(format!("shrunk-{}.json", plan.config.seed)));
            let scenario = jetsim::Scenario {
                description: format!("{origin}: {}", shrunk.violation),
                expect: Some(shrunk.violation.oracle),
                plan: shrunk.plan,
            };
            let json = serde_json::to_string_pretty(&scenario).expect("scenarios serialise");
            if let Err(e) = std::fs::write(&out, json) {
                eprintln!("error: cannot write {}: {e}", out.display());
                return ExitCode::from(2);
            }
            say!(
                "{} steps shrunk to {} in {} runs; still: {}",
                plan.steps.len(),
                scenario.plan.steps.len(),
                shrunk.runs,
                shrunk.violation
            );
            say!(
                "written to {} (replay: jetsim run --plan {})",
                out.display(),
                shell_word(&out)
            );
            // (In the current directory: not beside the scenario, where it might be committed.)
            let html =
                PathBuf::from(out.file_stem().unwrap_or(out.as_os_str())).with_extension("html");
            say!(
                "timeline: jetsim run --plan {} --timeline {}",
                shell_word(&out),
                shell_word(&html)
            );
            ExitCode::SUCCESS
        }
        Command::Campaign {
            seeds,
            duration,
            start,
            jobs,
            shard,
            steps,
            json,
            junit,
            check_determinism,
            sabotage,
        } => {
            let shard = match ShardEnv::from_process().and_then(|env| resolve_shard(shard, &env)) {
                Ok(shard) => shard,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let options = CampaignOptions {
                start,
                seeds: seeds.unwrap_or(if duration.is_some() { UNBOUNDED } else { 20000 }),
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                shard: shard.as_ref().map(|(s, _)| *s),
                steps,
                sabotage,
                check_determinism,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            if let Some(((k, n), source)) = &shard {
                say!("shard {k}/{n} (from {source})");
            }
            quiet_panics();
            let report = campaign_within(&options, duration);
            say!("marks:");
            for mark in jetsim::Mark::ALL {
                say!("  {:<28} {}", mark.name(), report.coverage.count(mark));
            }
            let ended = report
                .results
                .iter()
                .filter(|r| r.ended_by_corruption.is_some())
                .count();
            say!(
                "{} seeds in {:.1} s on {} threads: {:.0} seeds/s, {:.0} engine calls/s; {ended} ended early on detected corruption",
                report.results.len(),
                report.seconds,
                options.jobs,
                report.seeds_per_second(),
                report.operations_per_second()
            );
            let count = report.results.len() as u64;
            let (first, end) = options.covered(count);
            let of_shard = match options.shard {
                Some((k, n)) => format!(", shard {k}/{n}"),
                None => String::new(),
            };
            say!("covered seeds {first}..{end} ({count} seeds{of_shard})");
            if duration.is_some() {
                say!("replay the range: {}", options.replay_range_command(count));
            }
            for r in report.results.iter().filter(|r| !r.passed()) {
                say!(
                    "FAILED seed {}: {}\n  replay: {}\n  timeline: {}",
                    r.seed,
                    jetsim::campaign::describe(r),
                    replay_command(r.seed, steps, sabotage),
                    timeline_command(r.seed, steps, sabotage)
                );
            }
            if !report.missing.is_empty() {
                let names: Vec<String> = report.missing.iter().map(|m| m.name()).collect();
                if report.coverage_left_to_merge {
                    say!(
                        "marks this shard never fired: {} (another shard may; `jetsim merge` judges coverage)",
                        names.join(", ")
                    );
                } else {
                    say!(
                        "FAILED coverage: expected marks never fired: {}",
                        names.join(", ")
                    );
                }
            }
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&json_report(&options, &report))
                    .expect("reports serialise");
                if let Err(e) = write_report(&path, &text) {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            if let Some(path) = junit
                && let Err(e) = write_report(&path, &junit_report(&options, &report))
            {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            say!("{} passed, {} failed", report.passed(), report.failed());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Merge { files, json, junit } => {
            let merged = match jetsim::merge::merge(&files) {
                Ok(merged) => merged,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&jetsim::merge::json_report(&merged))
                    .expect("reports serialise");
                if let Err(e) = write_report(&path, &text) {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            if let Some(path) = junit
                && let Err(e) = write_report(&path, &jetsim::merge::junit_report(&merged))
            {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            say!("{}", jetsim::merge::summary(&merged));
            if merged.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
