//! Streamed backups in a run (`Instance::backup_to_stream`, `Instance::restore_stream`): the
//! `StreamBackup` step, judged by the `external-backup` oracle
//! (`../shared/reference/oracles.md`).
//!
//! The live instance writes a full copy backup as one stream into the simulator's memory,
//! under the run's faults. A stream made restores, with `restore_stream` on a disk of its own
//! outside fault injection, to exactly the model at the call's begin (the call is
//! synchronous: the model's committed state before it), and the header's backup records and
//! the live logs are as they were. A failed call leaves them as they were too, reports `Fail`
//! (never `Complete`), and its part-written bytes are refused as any damaged stream is. A
//! damaged copy of a stream (a byte flipped, cut short, a byte appended) is refused with one
//! of the documented errors, leaving no staging directory and nothing in the destination:
//! every byte of a stream is under a CRC. Now and then the stream is restored to a time too,
//! judged as `points.rs` judges a restore to a time of a lone full backup.

use std::path::Path;

use jetdb::{ErrorKind, Instance, JetError, RestoreOptions, RestorePoint, RestoreSummary};
use jetdb::{StatusKind, log};

use super::backups::Snapshot;
use super::{Check, Sim};
use crate::clock::EPOCH_MILLIS;
use crate::coverage::Mark;
use crate::oracle::{Oracle, Violation};
use crate::vfs::{IoFault, SimVfs};
use crate::workload::StreamDamage;

/// The errors `restore_stream` refuses a damaged or cut stream with.
const STREAM_ERRORS: [ErrorKind; 6] = [
    ErrorKind::RestoreOfNonBackupDatabase,
    ErrorKind::ReadVerifyFailure,
    ErrorKind::LogCorruptDuringHardRestore,
    ErrorKind::FileIOBeyondEOF,
    ErrorKind::InvalidDatabaseVersion,
    ErrorKind::MissingRestoreLogFiles,
];

/// The staging directory and the destination of a stream's restore, on its own disk.
const STAGING: &str = "sstage";
const PLACE: &str = "srst";

impl Sim {
    /// A `StreamBackup` step.
    pub(super) fn stream_backup(
        &mut self,
        damage: Option<StreamDamage>,
        pick: u64,
        to_time: bool,
    ) -> Check {
        self.take_events();
        let Some(instance) = self.instance.clone() else {
            self.say("skipped: no instance");
            return Ok(());
        };
        self.vfs.suspend_faults(true);
        let header = self.header_records();
        let logs = self.live_logs();
        self.vfs.suspend_faults(false);
        let busy = self.backup_running();
        let begin = self.model.last();
        let snapshot = self.model.state_at(begin);
        let damaged_at_begin = self.pages_damaged();
        let before = self.vfs.fired();
        self.operations += 1;
        let mut bytes = Vec::new();
        let mut statuses = Vec::new();
        let result = {
            let mut status = |s: &jetdb::Status| {
                statuses.push(s.kind);
                Ok(())
            };
            instance.backup_to_stream(&mut bytes, Some(&mut status))
        };
        self.take_events();
        self.say_result(&result, |s| {
            format!("streamed: commit {}, {} bytes", s.sequence, bytes.len())
        });
        if self.vfs.crashed() {
            // (What a crash leaves is judged at the restart, as for any backup.)
            return Ok(());
        }
        let failed = result.is_err();
        let fine = if failed {
            !statuses.contains(&StatusKind::Complete) && statuses.last() == Some(&StatusKind::Fail)
        } else {
            !statuses.contains(&StatusKind::Fail) && statuses.last() == Some(&StatusKind::Complete)
        };
        if !fine {
            return Err(self.violation(
                Oracle::Report,
                format!(
                    "a streamed backup that {} reported {statuses:?}",
                    if failed { "failed" } else { "succeeded" }
                ),
            ));
        }
        match result {
            Err(e) if busy && e.kind() == ErrorKind::BackupInProgress => {
                self.coverage.hit(Mark::ExternalMisstepRefused);
                return Ok(());
            }
            Err(e) => {
                self.stream_failure_explained(&e, &before, damaged_at_begin)?;
                self.stream_changed_nothing(header, &logs, "failed")?;
                // Its part-written bytes claim nothing: they are refused as a cut stream is.
                let got = self.restore_stream_bytes(&bytes, &RestoreOptions::default())?;
                if let Ok((_, state)) = got {
                    return Err(self.violation(
                        Oracle::ExternalBackup,
                        format!(
                            "the {} bytes a failed streamed backup ({e}) wrote restored ({} records)",
                            bytes.len(),
                            state.len()
                        ),
                    ));
                }
                self.coverage.hit(Mark::StreamFailedCleanly);
                return Ok(());
            }
            Ok(_) if busy => {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    "a streamed backup succeeded beside a running backup; the contract says JET_errBackupInProgress",
                ));
            }
            Ok(_) => {}
        }
        self.coverage.hit(Mark::StreamWritten);
        self.stream_changed_nothing(header, &logs, "succeeded")?;
        // The stream restores to exactly the model at its begin.
        match self.restore_stream_bytes(&bytes, &RestoreOptions::default())? {
            Ok((_, got)) => self.stream_compare(&got, &snapshot, "restored")?,
            Err(e) => {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("a stream whose backup succeeded does not restore: {e}"),
                ));
            }
        }
        self.coverage.hit(Mark::StreamRestored);
        if let Some(damage) = damage {
            self.stream_damaged(&bytes, damage, pick)?;
        }
        if to_time {
            self.stream_to_time(&bytes, begin, pick)?;
        }
        Ok(())
    }

    /// A failed streamed backup's error must be explained: by a fault, by damage it met in
    /// the live files, by tampering with them.
    fn stream_failure_explained(
        &mut self,
        err: &JetError,
        before: &std::collections::BTreeMap<IoFault, u64>,
        damaged_at_begin: bool,
    ) -> Check {
        let kind = err.kind();
        if self.damage_explains(kind, damaged_at_begin, None) {
            self.detected(kind);
            return Ok(());
        }
        if self.explained(err, before) {
            return Ok(());
        }
        Err(self.violation(
            Oracle::UnexplainedError,
            format!("a streamed backup failed with no fault to explain it: {err}"),
        ))
    }

    /// A streamed backup is a copy backup: the header's backup records and the live logs are
    /// as they were (circular logging may delete logs of its own accord).
    fn stream_changed_nothing(
        &mut self,
        header: Option<(jetdb::BackupInfo, jetdb::BackupInfo)>,
        logs: &std::collections::BTreeSet<u32>,
        how: &str,
    ) -> Check {
        if self.instance_dead() {
            return Ok(());
        }
        self.vfs.suspend_faults(true);
        let now = self.header_records();
        let live = self.live_logs();
        self.vfs.suspend_faults(false);
        if let (Some(now), Some(then)) = (now, header)
            && now != then
        {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!(
                    "a streamed backup that {how} changed the header's backup records from {then:?} to {now:?}"
                ),
            ));
        }
        if !self.config.circular_logging && self.live_tamper_in_effect(None).is_none() {
            let gone: Vec<u32> = logs.iter().copied().filter(|g| !live.contains(g)).collect();
            if !gone.is_empty() {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("a streamed backup that {how} deleted log generations {gone:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Restores `bytes` with `restore_stream` and `options` on a fresh disk of its own,
    /// outside fault injection, and reads it back. A refusal must leave no staging directory
    /// and nothing in the destination.
    fn restore_stream_bytes(
        &mut self,
        bytes: &[u8],
        options: &RestoreOptions,
    ) -> Result<Result<(RestoreSummary, Snapshot), JetError>, Violation> {
        self.externals.stream_restores += 1;
        let disk = SimVfs::new(
            self.config.device.clone(),
            self.config.seed ^ 0x5354_0000_0000 ^ self.externals.stream_restores,
            crate::trace::Trace::default(),
        );
        let disk = std::sync::Arc::new(disk);
        let shared: std::sync::Arc<dyn jetdb::Vfs> = disk.clone();
        let mut env = self.env.clone();
        env.vfs = shared;
        let inst = Instance::new(env, self.params_in(Path::new(PLACE)));
        let staging = Path::new(STAGING);
        let result = inst.restore_stream(&mut &bytes[..], staging, options, None);
        let got = match result {
            Ok(summary) => match self.read_restored(&inst, staging) {
                Ok(state) => Ok(Ok((summary, state))),
                Err(mut v) => {
                    v.oracle = Oracle::ExternalBackup;
                    Err(v)
                }
            },
            Err(e) => {
                let staged = jetdb::Vfs::exists(&*disk, staging).unwrap_or(true);
                let left: Vec<_> = disk.crcs_under(Path::new(PLACE)).into_keys().collect();
                if staged || !left.is_empty() {
                    Err(self.violation(
                        Oracle::ExternalBackup,
                        format!(
                            "a restore of a backup stream that failed ({e}) left {}{left:?}",
                            if staged {
                                "its staging directory, and "
                            } else {
                                ""
                            }
                        ),
                    ))
                } else {
                    Ok(Err(e))
                }
            }
        };
        self.take_events();
        got
    }

    /// A restored stream must hold exactly `want`.
    fn stream_compare(&self, got: &Snapshot, want: &Snapshot, what: &str) -> Check {
        if got == want {
            return Ok(());
        }
        let differ: Vec<String> = super::backups::differing(want, got);
        let (expected, actual) = super::backups::snapshot_diff(want, got);
        Err(self
            .violation(
                Oracle::ExternalBackup,
                format!(
                    "a backup stream {what} differs from the model at its begin: {}",
                    differ.join(", ")
                ),
            )
            .with_values(expected, actual))
    }

    /// A damaged copy of a stream must be refused with a documented error, leaving nothing.
    fn stream_damaged(&mut self, bytes: &[u8], damage: StreamDamage, pick: u64) -> Check {
        let mut copy = bytes.to_vec();
        let at = (pick % bytes.len() as u64) as usize;
        let what = match damage {
            StreamDamage::Flip => {
                copy[at] ^= ((pick >> 32) as u8).max(1);
                format!("with byte {at} of {} flipped", bytes.len())
            }
            StreamDamage::Cut => {
                copy.truncate(at);
                format!("cut to {at} of {} bytes", bytes.len())
            }
            StreamDamage::Append => {
                copy.push((pick >> 32) as u8);
                format!("with a byte appended to its {}", bytes.len())
            }
        };
        match self.restore_stream_bytes(&copy, &RestoreOptions::default())? {
            Err(e) if STREAM_ERRORS.contains(&e.kind()) => {
                self.say(format!(
                    "the stream {what}: refused: {}",
                    super::error_outcome(&e)
                ));
                self.coverage.hit(Mark::StreamDamageRefused);
                Ok(())
            }
            Err(e) => Err(self.violation(
                Oracle::ExternalBackup,
                format!("a backup stream {what} was refused with {e}, not a documented error"),
            )),
            Ok((_, got)) => Err(self.violation(
                Oracle::ExternalBackup,
                format!(
                    "a backup stream {what} restored ({} records); every byte is under a CRC",
                    got.len()
                ),
            )),
        }
    }

    /// The stream restored to a time, judged as a restore to a time of a lone full backup
    /// taken at commit `begin`.
    fn stream_to_time(&mut self, bytes: &[u8], begin: u64, pick: u64) -> Check {
        // The set's manifest and first log's creation, from an unpacked copy.
        let scratch = SimVfs::new(
            self.config.device.clone(),
            self.config.seed ^ 0x5354_5400_0000,
            crate::trace::Trace::default(),
        );
        let dir = Path::new("unpacked");
        let Ok(m) = jetdb::stream::unpack(&scratch, &mut &bytes[..], dir) else {
            return Err(self.violation(
                Oracle::ExternalBackup,
                "a stream whose backup succeeded does not unpack",
            ));
        };
        let created = m.logs.first().and_then(|l| {
            let name = m.log_name(l.generation);
            let bytes = scratch.content(&m.set_dir(dir).join(&name))?;
            let mut scanner = log::LogScanner::new(&name);
            scanner
                .feed(&bytes[..bytes.len().min(log::SEGMENT_SIZE)])
                .ok()?;
            scanner.header().map(|h| h.created_millis)
        });
        let Some(created) = created else {
            self.say("skipped a restore to a time: the stream's first log does not scan");
            return Ok(());
        };
        let lo = self.model.millis_of(begin).unwrap_or(EPOCH_MILLIS);
        let hi = m.last().millis;
        // Half the time between the backup's point and its begin (its state), else anywhere
        // around them, where it may be refused.
        let t = if pick & 1 == 0 && hi > lo {
            lo + (pick >> 8) % (hi - lo)
        } else {
            let from = lo.min(created).saturating_sub(200);
            from + (pick >> 8) % (hi.saturating_sub(from) + 400)
        };
        let allowed = self.time_allowed(t, (lo, hi, begin, created), None);
        let options = RestoreOptions {
            until: Some(RestorePoint::Time(t)),
            ..RestoreOptions::default()
        };
        let what = format!("a backup stream restored with {options:?}");
        self.event(format_args!("{what}: allowed {allowed:?}"));
        let got = self.restore_stream_bytes(bytes, &options)?;
        if self.judge_point(Oracle::ExternalBackup, &what, got, &allowed)? {
            self.coverage.hit(Mark::StreamRestoredToTime);
        }
        Ok(())
    }
}
