//! What a step put on the run's timeline beyond what the calls inside it recorded: the faults
//! it armed, the checkpoints, truncations, tampering and restores to a point it asked for,
//! and the external backup's span (its state before and after the step).

use super::Sim;
use crate::timeline::Lane;
use crate::workload::{BACKUP_DIRS, Step};

/// The style of a span or mark that ended with `outcome`: failed or done.
fn failed(outcome: &str) -> bool {
    outcome.contains("JET_err") || outcome.starts_with("failed") || outcome.starts_with("refused")
}

impl Sim {
    /// Records the step just run, which returned `outcome`.
    pub(super) fn record_step(&self, step: &Step, outcome: &str) {
        let running_external = self.externals.running.is_some();
        // (A backup the machine crashed in is still the machine's to end, at the restart.)
        let active_backup = self.backups.active.as_ref().map(|a| a.facts.dir);
        let crashed_backup = self.backups.crashed.as_ref().map(|f| f.dir);
        let crashed = self.vfs.crashed();
        // (A directory number past the last names the last one a backup succeeded in.)
        let last_success = self.backups.last_success.unwrap_or(0);
        let point_dir = |dir: u8| {
            if dir < BACKUP_DIRS {
                usize::from(dir)
            } else {
                last_success
            }
        };
        self.record(|t| {
            t.end_step(outcome);
            let skipped = outcome.starts_with("skipped");
            let line = vec![format!("outcome: {outcome}")];
            match *step {
                Step::Fault(ref f) if outcome == "armed" => t.mark(
                    Lane::Faults,
                    "fault-armed",
                    format!("{:?} armed on the {:?} zone", f.kind, f.zone),
                    vec![format!(
                        "fires after {} more matching I/O operations{}",
                        f.after,
                        if f.persistent {
                            ", and on every one after"
                        } else {
                            ""
                        }
                    )],
                ),
                Step::CrashAt { points, power_loss } => t.mark(
                    Lane::Faults,
                    "fault-armed",
                    "crash armed",
                    vec![format!(
                        "the machine crashes {points} I/O points on{}",
                        if power_loss {
                            ", losing power"
                        } else {
                            " (the process only)"
                        }
                    )],
                ),
                Step::Checkpoint | Step::FlushLog if !skipped => t.mark(
                    Lane::Instance,
                    "checkpoint",
                    if *step == Step::Checkpoint {
                        "checkpoint"
                    } else {
                        "log flush"
                    },
                    line,
                ),
                Step::Truncate if !skipped => {
                    t.mark(Lane::Instance, "truncate", "log truncation", line)
                }
                Step::Tamper { target, kind, .. } if !skipped => {
                    let lane = if target < BACKUP_DIRS {
                        Lane::Backup(usize::from(target))
                    } else {
                        Lane::Instance
                    };
                    t.mark(lane, "tamper", format!("log set tampered: {kind:?}"), line);
                }
                Step::Corrupt { zone, .. } if !skipped => {
                    t.mark(Lane::Instance, "corrupt", format!("rot in {zone:?}"), line)
                }
                Step::RestoreTo { dir, .. }
                | Step::RollForward { dir, .. }
                | Step::RestoreCrash { dir, .. }
                    if !skipped =>
                {
                    let what = match step {
                        Step::RestoreTo { .. } => "restore to a point",
                        Step::RollForward { .. } => "roll forward",
                        _ => "crash during a restore",
                    };
                    let kind = if failed(outcome) {
                        "restore-refused"
                    } else {
                        "restore"
                    };
                    t.mark(Lane::Backup(point_dir(dir)), kind, what, line);
                }
                Step::StreamBackup { .. } if crashed => t.mark(
                    Lane::Stream,
                    "backup-lost",
                    "stream backup: the machine crashed during it",
                    line,
                ),
                Step::StreamBackup { .. } if !skipped => {
                    let kind = if failed(outcome) {
                        "restore-refused"
                    } else {
                        "restore"
                    };
                    t.mark(Lane::Stream, kind, "stream backup and restore", line);
                }
                _ => {}
            }
            // (Each end records itself where it happens; this is the fallback for one that
            // did not, which can only have been lost.)
            if !running_external {
                t.close(
                    Lane::External,
                    format!("ended unrecorded, at a step that returned {outcome}"),
                    "lost",
                    Vec::new(),
                );
            }
            for dir in 0..usize::from(BACKUP_DIRS) {
                if active_backup != Some(dir) && crashed_backup != Some(dir) {
                    t.close(
                        Lane::Backup(dir),
                        format!("ended: {outcome}"),
                        "lost",
                        Vec::new(),
                    );
                }
            }
        });
    }
}
