//! `jetsim`: run the simulator — one seed, a plan file, or a campaign of many seeds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jetsim::campaign::{
    CampaignOptions, campaign, json_report, junit_report, plan_for, quiet_panics, replay_command,
    run_checked,
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
        /// How many seeds.
        #[arg(long, default_value_t = 20000)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run shard K of N (1-based), e.g. 2/4: CI jobs share one campaign.
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

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("shard {text:?} is not K/N with 1 <= K <= N");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
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
                    Ok(plan) => (plan, format!("jetsim run --plan {}", path.display())),
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
            let (mut report, divergence) = if trace || dump_disk.is_some() || timeline.is_some() {
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
            if let Some(d) = &divergence {
                say!("NON-DETERMINISM: {d}");
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
                say!("timeline: {replay} --timeline {}", html.display());
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
                out.display()
            );
            say!(
                "timeline: jetsim run --plan {} --timeline {}",
                out.display(),
                out.with_extension("html").display()
            );
            ExitCode::SUCCESS
        }
        Command::Campaign {
            seeds,
            start,
            jobs,
            shard,
            steps,
            json,
            junit,
            check_determinism,
            sabotage,
        } => {
            let options = CampaignOptions {
                start,
                seeds,
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                shard,
                steps,
                sabotage,
                check_determinism,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            quiet_panics();
            let report = campaign(&options);
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
            for r in report.results.iter().filter(|r| !r.passed()) {
                say!(
                    "FAILED seed {}: {}\n  replay: {}",
                    r.seed,
                    jetsim::campaign::describe(r),
                    replay_command(r.seed, steps, sabotage)
                );
            }
            if !report.missing.is_empty() {
                say!(
                    "FAILED coverage: expected marks never fired: {}",
                    report
                        .missing
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&json_report(&options, &report))
                    .expect("reports serialise");
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            if let Some(path) = junit
                && let Err(e) = std::fs::write(&path, junit_report(&options, &report))
            {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
            say!("{} passed, {} failed", report.passed(), report.failed());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
