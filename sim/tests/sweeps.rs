//! Systematic sweeps beside the random campaigns (SQLite's fail-the-Nth-call loops,
//! CrashMonkey's crash at every persistence point): one fixed workload — commits lazy and
//! durable, several log generations, checkpoints, a clean restart — crashed at every I/O
//! point in turn (power lost, and the process only), and met by every kind of I/O fault at
//! every matching operation in turn, in each zone. Every run must pass every oracle.

use jetsim::campaign::plan_for;
use jetsim::{ArmedFault, IoFault, Plan, RunOptions, Step, Zone, run};

/// The workload: the swarm configuration of one seed with every fault and crash left out,
/// small log files (many rolls) and a crash-free plan.
fn base() -> Plan {
    let mut plan = plan_for(21, Some(70), None);
    let c = &mut plan.config;
    c.log_file_kib = 128;
    c.circular_logging = true;
    c.checkpoint_depth_kib = 64;
    c.weights.crash = 0;
    c.weights.crash_at_io = 0;
    c.weights.io_fault = 0;
    c.weights.corrupt = 0;
    c.weights.put = 40;
    let config = c.clone();
    let mut plan = Plan::generate(config);
    plan.steps.push(Step::Restart);
    plan
}

fn with_first(plan: &Plan, step: Step) -> Plan {
    let mut p = plan.clone();
    p.steps.insert(0, step);
    p.config.steps = p.steps.len() as u32;
    p
}

/// Runs `plan` crashed at each of its I/O points in turn, power lost and process only;
/// returns the violations and how many points there were.
fn crash_sweep(plan: &Plan) -> (Vec<String>, u64) {
    let clean = run(plan, RunOptions::default());
    assert!(clean.violation.is_none(), "{:?}", clean.violation);
    let points = clean.disk_stats.points;
    let mut failures = Vec::new();
    for n in 1..=points {
        for power_loss in [true, false] {
            let crash = Step::CrashAt {
                points: n as u32,
                power_loss,
            };
            let report = run(&with_first(plan, crash), RunOptions::default());
            if let Some(v) = report.violation {
                failures.push(format!("crash at point {n} (power loss {power_loss}): {v}"));
            }
        }
    }
    (failures, points)
}

/// Runs `plan` met by every kind of I/O fault, in each of `zones`, transient and persistent,
/// at the 1st matching operation, the 2nd, … until none is left to fail; returns the
/// violations and how many faults fired.
fn fault_sweep(plan: &Plan, zones: &[Zone]) -> (Vec<String>, u32) {
    let mut failures = Vec::new();
    let mut fired = 0;
    for kind in [
        IoFault::ReadError,
        IoFault::WriteError,
        IoFault::SyncError,
        IoFault::Fsyncgate,
        IoFault::DiskFull,
    ] {
        for &zone in zones {
            for persistent in [false, true] {
                for after in 0..400 {
                    let fault = ArmedFault {
                        kind,
                        zone,
                        after,
                        persistent,
                    };
                    let report = run(&with_first(plan, Step::Fault(fault)), RunOptions::default());
                    if let Some(v) = report.violation {
                        failures.push(format!(
                            "{kind:?} {zone:?} after {after} persistent {persistent}: {v}"
                        ));
                    }
                    if report.disk_stats.faults_fired == 0 {
                        break;
                    }
                    fired += 1;
                }
            }
        }
    }
    (failures, fired)
}

#[test]
fn a_crash_at_every_io_point_recovers_a_durable_prefix() {
    let (failures, points) = crash_sweep(&base());
    assert!(
        points > 100,
        "the workload is too small to sweep: {points} points"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_io_fault_at_every_matching_operation_is_survived_or_reported() {
    let zones = [Zone::Database, Zone::Log, Zone::Checkpoint];
    let (failures, fired) = fault_sweep(&base(), &zones);
    assert!(fired > 200, "the sweep reached only {fired} faults");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A backup workload: a full backup, an incremental one and an atomic one, each copied a page
/// or two at a time while commits and checkpoints go on between the steps; a truncation, a
/// restore, a clean restart.
fn backup_base() -> Plan {
    use jetsim::BackupMode;
    let mut config = plan_for(21, Some(10), None).config;
    config.log_file_kib = 128;
    config.circular_logging = false;
    config.keys = 64;
    config.sessions = 1;
    config.tables = 1;
    config.sabotage = None;
    let mut steps = Vec::new();
    let mut v = 100;
    let mut put = |steps: &mut Vec<Step>, k: u16| {
        v += 1;
        steps.push(Step::Put {
            s: 0,
            t: 0,
            k,
            v,
            len: 300,
        });
    };
    for k in 0..40 {
        put(&mut steps, k);
    }
    steps.push(Step::Checkpoint);
    for (dir, mode) in [
        (0, BackupMode::Full),
        (0, BackupMode::Incremental),
        (1, BackupMode::Atomic),
    ] {
        steps.push(Step::BackupBegin { dir, mode });
        for round in 0..4u16 {
            put(&mut steps, round * 7 % 64);
            steps.push(Step::BackupStep { pages: 2 });
            if round == 1 {
                steps.push(Step::Checkpoint);
            }
        }
        steps.push(Step::BackupFinish { abandon: false });
        put(&mut steps, 50);
    }
    steps.push(Step::Truncate);
    steps.push(Step::Restore { dir: 0 });
    steps.push(Step::Restart);
    config.steps = steps.len() as u32;
    Plan { config, steps }
}

#[test]
fn a_crash_at_every_io_point_of_a_backup_workload_keeps_every_promise() {
    let plan = backup_base();
    let clean = run(&plan, RunOptions::default());
    assert!(
        clean.coverage.count(jetsim::Mark::IncrementalBackup) == 1
            && clean.coverage.count(jetsim::Mark::AtomicBackup) == 1,
        "the workload takes its backups"
    );
    let (failures, points) = crash_sweep(&plan);
    assert!(
        points > 200,
        "the workload is too small to sweep: {points} points"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_io_fault_at_every_operation_of_a_backup_workload_keeps_every_promise() {
    let zones = [Zone::Backup, Zone::Database, Zone::Log];
    let (failures, fired) = fault_sweep(&backup_base(), &zones);
    assert!(fired > 200, "the sweep reached only {fired} faults");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A restore of the backup workload's directory crashed at every one of its I/O points in
/// turn, power lost and the process only (`Step::RestoreCrash` with each pick): init must
/// refuse each place left half-restored, and a restore into it again must give the backup.
#[test]
fn a_restore_crashed_at_every_io_point_is_refused_then_restored_again() {
    let mut plan = backup_base();
    // (Before the restart, which the sweep's plan ends with.)
    plan.steps.pop();
    let base = plan.steps.len();
    let points = 200u32;
    for pick in 0..points {
        for power_loss in [false, true] {
            plan.steps.push(Step::RestoreCrash {
                dir: 0,
                pick,
                power_loss,
            });
        }
    }
    plan.config.steps = plan.steps.len() as u32;
    let report = run(&plan, RunOptions::default());
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let retried = report.coverage.count(jetsim::Mark::RestoreCrashRetried);
    // Each pick lands on a point of the restore (modulo their number): all but the few after
    // its marker is gone must be refused and restored again.
    assert!(
        retried > u64::from(points),
        "only {retried} of {} crashed restores were retried",
        plan.steps.len() - base
    );
}
