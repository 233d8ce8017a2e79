//! The default jetsim campaign as an ordinary test: the test command of mutation testing
//! (`scripts/mutants.sh`, `.cargo/mutants.toml`), and a cheap smoke campaign in
//! `cargo test --workspace`.
//!
//! `JETSIM_MUTATION_SEEDS` (default [`DEFAULT_SEEDS`]) seeds from `JETSIM_MUTATION_START`
//! (default 0) run on two threads, with the default swarm configuration; any violation fails
//! the test, naming each failing seed, its violation and the command that replays it. With
//! 1000 seeds or more (as `.cargo/mutants.toml` asks) the campaign also demands its expected
//! coverage marks, as `jetsim campaign` does, and the test fails if one never fired: a
//! mutant that stops checkpoints or backups from happening is caught that way. A second test
//! shows the same helper fails on a deliberately broken engine, so this test can kill a
//! mutant.

use std::sync::Mutex;

use jetsim::Sabotage;
use jetsim::Zone;
use jetsim::campaign::{CampaignOptions, CampaignReport, campaign, describe, replay_command};

/// Seeds per run unless `JETSIM_MUTATION_SEEDS` says otherwise.
const DEFAULT_SEEDS: u64 = 200;

/// Worker threads (the machines this runs on are small, and a mutants run builds besides).
const JOBS: usize = 2;

/// The panic hook is global; the two tests take turns at replacing it.
static HOOK: Mutex<()> = Mutex::new(());

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// Runs `seeds` seeds from `start` under `sabotage` (the default swarm, default steps).
fn run_campaign(start: u64, seeds: u64, sabotage: Option<Sabotage>) -> CampaignReport {
    let options = CampaignOptions {
        start,
        seeds,
        jobs: JOBS,
        shard: None,
        steps: None,
        sabotage,
        check_determinism: false,
        progress: false,
    };
    let _turn = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    // Engine panics become violations (with their message and location); keep them off the
    // terminal while the campaign runs, then give the test harness its own hook back so an
    // assertion below still prints.
    jetsim::campaign::quiet_panics();
    let report = campaign(&options);
    drop(std::panic::take_hook());
    report
}

/// Every failing seed: its violation and its replay command.
fn failures(report: &CampaignReport, sabotage: Option<Sabotage>) -> Vec<String> {
    report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "seed {}: {}\n  replay: {}",
                r.seed,
                describe(r),
                replay_command(r.seed, None, sabotage)
            )
        })
        .collect()
}

#[test]
fn the_default_campaign_finds_no_violation() {
    let start = env_u64("JETSIM_MUTATION_START", 0);
    let seeds = env_u64("JETSIM_MUTATION_SEEDS", DEFAULT_SEEDS);
    let report = run_campaign(start, seeds, None);
    let failed = failures(&report, None);
    eprintln!(
        "{} seeds from {start} in {:.1} s on {JOBS} threads: {} failed",
        report.results.len(),
        report.seconds,
        failed.len()
    );
    assert_eq!(report.results.len() as u64, seeds);
    assert!(
        failed.is_empty(),
        "{} of {} seeds from {start} failed:\n{}",
        failed.len(),
        seeds,
        failed.join("\n")
    );
    assert!(
        report.missing.is_empty(),
        "{seeds} seeds from {start}: expected coverage marks never fired: {:?}",
        report.missing.iter().map(|m| m.name()).collect::<Vec<_>>()
    );
}

#[test]
fn the_same_campaign_fails_on_a_log_fsync_that_does_nothing() {
    // Commits acknowledged before they are durable: the first crash loses them, or recovery
    // refuses the log (oracles_fire.rs sees the recovery oracle within 10 seeds).
    let sabotage = Sabotage::SkipSync(Zone::Log);
    let report = run_campaign(0, 24, Some(sabotage));
    let failed = failures(&report, Some(sabotage));
    assert!(
        !failed.is_empty(),
        "{sabotage}: no violation in {} seeds; the campaign test could not kill a mutant",
        report.results.len()
    );
}
