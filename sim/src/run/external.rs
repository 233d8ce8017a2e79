//! External backups in a run (`Instance::begin_external_backup`, ESE's external backup API):
//! the `ExternalBegin`, `ExternalRead`, `ExternalMisstep` and `ExternalEnd` steps, and the
//! `external-backup` oracle (`../shared/reference/oracles.md`).
//!
//! The simulator is the backup application. Its reader reads slowly — one bounded read a
//! step, between the workload's transactions — the database first, then the listed logs in
//! an order it draws, now and then giving a half-read log up to read it again later, and
//! keeps every byte in memory. A backup that ends normally is written as a backup directory
//! (its manifest, the database copy and the logs, as JetBackup lays them out) onto a disk of
//! its own, outside fault injection, restored there, and compared key by key with the model
//! at its begin. A backup that fails — an I/O error, damage found, `stop_backup`, a term, an
//! abort, an early end — must record nothing and delete no log; after a crash the header
//! records what it did at the begin, or (a crash in its truncation) this backup. A call out of
//! order must be refused with its documented error and leave the backup working. An
//! incremental backup must begin just after the last backup the header records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jetdb::manifest::{self, Manifest};
use jetdb::{BackupEnd, BackupFile, BackupFlags, BackupInfo, ErrorKind, ExternalBackup, JetError};

use super::backups::{Snapshot, dir_path};
use super::{Check, Sim};
use crate::coverage::Mark;
use crate::oracle::Oracle;
use crate::timeline::Lane;
use crate::vfs::IoFault;
use crate::workload::{BACKUP_DIRS, ExternalEndHow, Misstep};

/// The file the reader has open.
struct Reading {
    file: BackupFile,
    /// The log generation (`None`: the database).
    generation: Option<u32>,
    bytes: Vec<u8>,
}

/// What the oracles compare an external backup against.
#[derive(Clone)]
pub(crate) struct ExtFacts {
    incremental: bool,
    /// The model's committed state at the begin.
    snapshot: Snapshot,
    /// The header's backup records at the begin.
    header: Option<(BackupInfo, BackupInfo)>,
    /// The live archived logs at the begin.
    logs: BTreeSet<u32>,
    /// The generations it copies.
    gen_low: u32,
    gen_high: u32,
    /// Read errors fired before the begin (a later one may have hit the fence).
    reads_before: u64,
    damaged_at_begin: bool,
    /// `stop_backup` stopped it: its next call must fail with `JET_errBackupAbortByServer`.
    pub(crate) stopped: bool,
    /// Its instance was terminated (a clean restart): its next call must fail.
    pub(crate) orphaned: bool,
    /// It is in its truncation: a crash may leave it recorded.
    committing: bool,
}

/// The external backup in flight.
pub(crate) struct External {
    backup: ExternalBackup,
    db_path: PathBuf,
    /// The database copy, once read whole (a full backup).
    db: Option<Vec<u8>>,
    db_opened: bool,
    /// What `log_info` listed, once called.
    listed: Option<Vec<PathBuf>>,
    /// The logs read whole.
    logs: BTreeMap<u32, Vec<u8>>,
    open: Option<Reading>,
    /// A handle closed before: no longer valid.
    stale: Option<BackupFile>,
    pub(crate) facts: ExtFacts,
}

/// A set an incremental external backup extends: its manifest and files (by name in the set
/// directory).
#[derive(Clone)]
struct Chain {
    manifest: Manifest,
    files: Vec<(String, Vec<u8>)>,
}

/// The simulator's external backup state.
#[derive(Default)]
pub(crate) struct Externals {
    pub(crate) running: Option<External>,
    /// The last set an external backup recorded (truncated), if its files are known.
    chain: Option<Chain>,
    /// Restores made (seeds their disks).
    restores: u64,
    /// Restores of backup streams made (seeds their disks).
    pub(crate) stream_restores: u64,
    /// A backup whose truncation failed with the instance stopped: its record may have
    /// reached the disk, for the next recovery to find.
    pending_record: Option<ExtFacts>,
}

/// What one read did.
enum Read {
    /// Every file is read whole.
    Everything,
    /// The file is part read.
    Partial,
    /// The file was read to its end and closed.
    Finished,
    /// A half-read log was closed, to read again later.
    GaveUp,
    /// The API answered other than it documents (a file read short or long, a listing not
    /// the backup's): what it did.
    Wrong(String),
}

impl External {
    fn complete(&self) -> bool {
        (self.facts.incremental || self.db.is_some()) && self.unread().is_empty()
    }

    /// The generations not read whole yet.
    fn unread(&self) -> Vec<u32> {
        (self.facts.gen_low..=self.facts.gen_high)
            .filter(|g| !self.logs.contains_key(g))
            .collect()
    }

    /// One read of at most `bytes` (at least one page of the database), opening the next file
    /// first if none is open: the database, then a log `pick` chooses. Also says whether the
    /// log opened was out of order.
    fn advance(&mut self, bytes: usize, pick: u8, page_size: usize) -> jetdb::Result<(Read, bool)> {
        let mut out_of_order = false;
        if self.open.is_none() {
            if !self.facts.incremental && !self.db_opened {
                let files = self.backup.attach_info()?;
                if files != [self.db_path.clone()] {
                    return Ok((Read::Wrong(format!("attach info named {files:?}")), false));
                }
                let file = self.backup.open_file(&self.db_path)?;
                self.db_opened = true;
                self.open = Some(Reading {
                    file,
                    generation: None,
                    bytes: Vec::new(),
                });
            } else {
                if self.listed.is_none() {
                    let listed = self.backup.log_info()?;
                    let generations: Vec<Option<u32>> = listed
                        .iter()
                        .map(|p| {
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .and_then(|n| jetdb::log::parse_archive_name("edb", n))
                        })
                        .collect();
                    let want: Vec<Option<u32>> = (self.facts.gen_low..=self.facts.gen_high)
                        .map(Some)
                        .collect();
                    if generations != want {
                        return Ok((
                            Read::Wrong(format!(
                                "log info listed {listed:?}, not generations {:#X}..={:#X}",
                                self.facts.gen_low, self.facts.gen_high
                            )),
                            false,
                        ));
                    }
                    self.listed = Some(listed);
                }
                let unread = self.unread();
                if unread.is_empty() {
                    return Ok((Read::Everything, false));
                }
                let i = usize::from(pick) % unread.len();
                out_of_order = i > 0;
                let generation = unread[i];
                let path = self.log_path(generation);
                let file = self.backup.open_file(&path)?;
                self.open = Some(Reading {
                    file,
                    generation: Some(generation),
                    bytes: Vec::new(),
                });
            }
        }
        let reading = self.open.as_mut().expect("a file is open");
        let file = reading.file;
        if reading.generation.is_some() && pick % 16 == 15 && !reading.bytes.is_empty() {
            self.backup.close_file(file)?;
            self.open = None;
            self.stale = Some(file);
            return Ok((Read::GaveUp, out_of_order));
        }
        let len = match reading.generation {
            None => (bytes / page_size).max(1) * page_size,
            Some(_) => bytes.max(1),
        };
        let mut buf = vec![0; len];
        let n = self.backup.read_file(file, &mut buf)?;
        let reading = self.open.as_mut().expect("a file is open");
        reading.bytes.extend_from_slice(&buf[..n]);
        let got = reading.bytes.len() as u64;
        if n > 0 && got < file.size() {
            return Ok((Read::Partial, out_of_order));
        }
        if got != file.size() {
            return Ok((
                Read::Wrong(format!(
                    "a file read {got} bytes, but its size is {}",
                    file.size()
                )),
                out_of_order,
            ));
        }
        self.backup.close_file(file)?;
        let reading = self.open.take().expect("a file is open");
        self.stale = Some(file);
        match reading.generation {
            None => self.db = Some(reading.bytes),
            Some(g) => {
                self.logs.insert(g, reading.bytes);
            }
        }
        Ok((Read::Finished, out_of_order))
    }

    /// Reads everything left, fast.
    fn read_rest(&mut self, page_size: usize) -> jetdb::Result<Option<String>> {
        for _ in 0..1_000_000 {
            match self.advance(1 << 20, 0, page_size)?.0 {
                Read::Everything => return Ok(None),
                Read::Wrong(what) => return Ok(Some(what)),
                _ => {}
            }
        }
        unreachable!("a backup with no end");
    }

    /// The listed path of log `generation`.
    fn log_path(&self, generation: u32) -> PathBuf {
        self.listed
            .iter()
            .flatten()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| jetdb::log::parse_archive_name("edb", n))
                    == Some(generation)
            })
            .cloned()
            .expect("a listed generation")
    }
}

impl Sim {
    /// The path of archived log `generation` in the live log directory.
    fn archive_path(&self, generation: u32) -> PathBuf {
        self.params
            .log_path
            .join(jetdb::log::archive_name(&self.params.base_name, generation))
    }

    /// Whether a backup runs that a new one must wait for (`JET_errBackupInProgress`): a
    /// JetBackup, or an external backup whose instance still runs it.
    pub(super) fn backup_running(&self) -> bool {
        self.backups.active.is_some()
            || self
                .externals
                .running
                .as_ref()
                .is_some_and(|x| !x.facts.orphaned)
    }

    /// An `ExternalBegin` step.
    pub(super) fn external_begin(&mut self, incremental: bool) -> Check {
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
        let expected = if busy {
            Some(ErrorKind::BackupInProgress)
        } else if incremental && self.config.circular_logging {
            Some(ErrorKind::InvalidBackup)
        } else if incremental && !header.is_some_and(|(full, _)| full.is_set()) {
            Some(ErrorKind::MissingFullBackup)
        } else {
            None
        };
        let flags = if incremental {
            BackupFlags::INCREMENTAL
        } else {
            BackupFlags::NONE
        };
        let before = self.vfs.fired();
        self.operations += 1;
        let result = instance.begin_external_backup(flags);
        self.take_events();
        self.say_result(&result, |b| {
            let p = b.backup_point();
            format!(
                "began: commit {}, logs {:#X}..={:#X}",
                p.sequence, p.gen_low, p.gen_high
            )
        });
        let backup = match result {
            Ok(backup) => backup,
            Err(e) if Some(e.kind()) == expected => {
                if busy {
                    self.coverage.hit(Mark::ExternalMisstepRefused);
                }
                return Ok(());
            }
            Err(e) => {
                if let Some(kind) = expected
                    && !self.explained(&e, &before)
                {
                    return Err(self.violation(
                        Oracle::ExternalBackup,
                        format!(
                            "an external backup's begin gave {e}, but the contract says {}",
                            kind.name()
                        ),
                    ));
                }
                if self.live_tamper_explains(e.kind(), None) {
                    return Ok(());
                }
                return self.check_error("begin_external_backup", &e, &before);
            }
        };
        if let Some(kind) = expected {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!(
                    "an external backup began, but the contract says {}",
                    kind.name()
                ),
            ));
        }
        let point = backup.backup_point();
        if incremental {
            // It begins just after the last backup the header records.
            let (full, inc) = header.unwrap_or_default();
            let want = [full, inc]
                .iter()
                .filter(|b| b.is_set())
                .map(|b| b.gen_high + 1)
                .max();
            if want != Some(point.gen_low) {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!(
                        "an incremental external backup begins at generation {:#X}; the header records full {full:?}, incremental {inc:?}",
                        point.gen_low
                    ),
                ));
            }
        }
        self.coverage.hit(if incremental {
            Mark::ExternalIncrementalBegun
        } else {
            Mark::ExternalFullBegun
        });
        self.event(format_args!(
            "external backup began at commit {}",
            self.model.last()
        ));
        let facts = ExtFacts {
            incremental,
            snapshot: self.model.state_at(self.model.last()),
            header,
            logs,
            gen_low: point.gen_low,
            gen_high: point.gen_high,
            reads_before: before.get(&IoFault::ReadError).copied().unwrap_or(0),
            damaged_at_begin: self.pages_damaged(),
            stopped: false,
            orphaned: false,
            committing: false,
        };
        self.record(|t| {
            t.open(
                Lane::External,
                format!(
                    "external {}",
                    if incremental { "incremental" } else { "full" }
                ),
                vec![format!(
                    "began at the model's commit {}: backup point commit {}, logs {:#X}..={:#X}",
                    self.model.last(),
                    point.sequence,
                    point.gen_low,
                    point.gen_high
                )],
            )
        });
        self.externals.running = Some(External {
            backup,
            db_path: self.params.database_path.clone(),
            db: None,
            db_opened: false,
            listed: None,
            logs: BTreeMap::new(),
            open: None,
            stale: None,
            facts,
        });
        Ok(())
    }

    /// An `ExternalRead` step.
    pub(super) fn external_read(&mut self, kib: u16, pick: u8) -> Check {
        self.take_events();
        let page_size = self.config.page_size as usize;
        let Some(x) = self.externals.running.as_mut() else {
            self.say("skipped: no external backup running");
            return Ok(());
        };
        let before = self.vfs.fired();
        self.operations += 1;
        let result = x.advance(usize::from(kib.max(1)) * 1024, pick, page_size);
        let (stopped, orphaned) = (x.facts.stopped, x.facts.orphaned);
        self.take_events();
        match result {
            Err(e) => {
                self.say(format!("failed: {}", super::error_outcome(&e)));
                self.external_failed(&e, &before, false)
            }
            Ok(_) if self.vfs.crashed() => Ok(()),
            Ok((Read::Everything, _)) => {
                self.say("ok: every file read");
                Ok(())
            }
            Ok(_) if stopped || orphaned => {
                let x = self.externals.running.take().expect("running");
                drop(x.backup);
                self.external_span_ends(
                    "failed: it went on reading after it was stopped",
                    "backup-fail",
                );
                Err(self.violation(
                    Oracle::ExternalBackup,
                    "an external backup that was stopped or whose instance was terminated went on reading",
                ))
            }
            Ok((Read::Wrong(what), _)) => Err(self.violation(
                Oracle::ExternalBackup,
                format!("an external backup answered wrong: {what}"),
            )),
            Ok((read, out_of_order)) => {
                if out_of_order {
                    self.coverage.hit(Mark::ExternalLogsOutOfOrder);
                }
                let x = self.externals.running.as_ref().expect("running");
                let what = match read {
                    Read::Partial => {
                        self.coverage.hit(Mark::ExternalSlowRead);
                        "part read"
                    }
                    Read::GaveUp => {
                        self.coverage.hit(Mark::ExternalLogReread);
                        "a half-read log given up"
                    }
                    _ => "a file read whole",
                };
                let files = usize::from(x.db.is_some()) + x.logs.len();
                self.say(format!("ok: {what}; {files} files read whole"));
                Ok(())
            }
        }
    }

    /// An `ExternalMisstep` step: the call must be refused with its documented error, and the
    /// backup go on working.
    pub(super) fn external_misstep(&mut self, misstep: Misstep) -> Check {
        use ErrorKind::*;
        self.take_events();
        let dead = self.instance_dead();
        let Some(x) = self.externals.running.as_mut() else {
            self.say("skipped: no external backup running");
            return Ok(());
        };
        if x.facts.stopped || x.facts.orphaned || dead {
            self.say("skipped: the backup is stopped");
            return Ok(());
        }
        let page_size = self.config.page_size as usize;
        let full = !x.facts.incremental;
        let db_phase = full && x.listed.is_none();
        let unknown = self.params.log_path.join(jetdb::log::archive_name(
            &self.params.base_name,
            0xFFFF_FF00,
        ));
        let gen_low = x.facts.gen_low;
        let first_log = self.archive_path(gen_low);
        let instance = self.instance.clone().expect("an instance");
        let x = self.externals.running.as_mut().expect("running");
        let open = x.open.as_ref().map(|r| r.file);
        let unread = !x.unread().is_empty();
        let (what, expected, got): (&str, ErrorKind, jetdb::Result<()>) = match misstep {
            Misstep::AttachInfoLate if db_phase => {
                // (In order: it must name the database.)
                let got = x.backup.attach_info();
                self.operations += 1;
                return match got {
                    Ok(files) if files == [x.db_path.clone()] => {
                        self.say("in order: attach info named the database");
                        Ok(())
                    }
                    other => Err(self.violation(
                        Oracle::ExternalBackup,
                        format!("attach info in the database phase answered {other:?}"),
                    )),
                };
            }
            Misstep::AttachInfoLate => (
                "attach info after the database phase",
                InvalidBackupSequence,
                x.backup.attach_info().map(|_| ()),
            ),
            Misstep::OpenOutOfTurn if open.is_some() || !full || x.db_opened => (
                "open the database with a file open, a second time, or in an incremental",
                InvalidBackupSequence,
                x.backup.open_file(&x.db_path.clone()).map(|_| ()),
            ),
            Misstep::LogBeforeInfo if db_phase && open.is_none() => (
                "open a log before the logs are listed",
                InvalidBackupSequence,
                x.backup.open_file(&first_log).map(|_| ()),
            ),
            Misstep::UnknownFile => (
                "open a file that is not the backup's",
                if open.is_some() {
                    InvalidBackupSequence
                } else {
                    InvalidParameter
                },
                x.backup.open_file(&unknown).map(|_| ()),
            ),
            Misstep::StaleHandle if x.stale.is_some() => (
                "read with a closed handle",
                InvalidParameter,
                x.backup
                    .read_file(x.stale.expect("stale"), &mut vec![0; page_size])
                    .map(|_| ()),
            ),
            Misstep::BadBuffer if open.is_some() => {
                let db = x.open.as_ref().is_some_and(|r| r.generation.is_none());
                let len = if db { page_size / 2 } else { 0 };
                (
                    "read into a bad buffer",
                    InvalidParameter,
                    x.backup
                        .read_file(open.expect("open"), &mut vec![0; len])
                        .map(|_| ()),
                )
            }
            Misstep::LogInfoWhileOpen if open.is_some() => (
                "list the logs with a file open",
                InvalidBackupSequence,
                x.backup.log_info().map(|_| ()),
            ),
            Misstep::TruncateEarly if db_phase || open.is_some() || unread => (
                "truncate before every file was read",
                if db_phase || open.is_some() {
                    InvalidBackupSequence
                } else {
                    LogFileNotCopied
                },
                x.backup.truncate_log().map(|_| ()),
            ),
            Misstep::ManifestEarly if (full && x.db.is_none()) || unread => (
                "the manifest before every file was read",
                if full && x.db.is_none() {
                    InvalidBackupSequence
                } else {
                    LogFileNotCopied
                },
                x.backup.manifest(None).map(|_| ()),
            ),
            Misstep::SecondBackup => {
                self.operations += 2;
                let truncation = instance.backup(None, BackupFlags::NONE, None).map(|_| ());
                let external = instance
                    .begin_external_backup(BackupFlags::NONE)
                    .map(|_| ());
                (
                    "a JetBackup truncation and a second external backup beside it",
                    BackupInProgress,
                    truncation.and(external),
                )
            }
            _ => {
                self.say(format!("skipped: {misstep:?} is no misstep now"));
                return Ok(());
            }
        };
        self.operations += 1;
        self.take_events();
        match got {
            Err(e) if e.kind() == expected => {}
            other => {
                let other = other.map_err(|e| e.kind().name());
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("{what} answered {other:?}, not {}", expected.name()),
                ));
            }
        }
        self.say(format!("refused: {}", expected.name()));
        // The backup goes on: the listing calls of its phase still answer.
        let x = self.externals.running.as_mut().expect("running");
        if x.open.is_none() {
            let probe = match &x.listed {
                Some(listed) => x.backup.log_info().map(|l| l == *listed),
                None if full => x.backup.attach_info().map(|f| f == [x.db_path.clone()]),
                None => Ok(true),
            };
            if !matches!(probe, Ok(true)) {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("after a refused call ({what}) the backup no longer works: {probe:?}"),
                ));
            }
        }
        self.coverage.hit(Mark::ExternalMisstepRefused);
        Ok(())
    }

    /// An `ExternalEnd` step.
    pub(super) fn external_end(&mut self, how: ExternalEndHow) -> Check {
        self.take_events();
        let page_size = self.config.page_size as usize;
        let Some(x) = self.externals.running.as_mut() else {
            self.say("skipped: no external backup running");
            return Ok(());
        };
        let before = self.vfs.fired();
        self.operations += 1;
        let early = how == ExternalEndHow::Early && !x.complete();
        if how == ExternalEndHow::Abort || early {
            let x = self.externals.running.take().expect("running");
            let (stopped, orphaned) = (x.facts.stopped, x.facts.orphaned);
            let facts = x.facts.clone();
            let how = if early {
                BackupEnd::Normal
            } else {
                BackupEnd::Abort
            };
            let result = x.backup.end(how);
            self.take_events();
            let fine = match (&result, how) {
                (Ok(_), BackupEnd::Abort) => true,
                (Err(e), BackupEnd::Normal) => {
                    matches!(
                        e.kind(),
                        ErrorKind::InvalidBackupSequence | ErrorKind::LogFileNotCopied
                    ) || (stopped && e.kind() == ErrorKind::BackupAbortByServer)
                }
                _ => false,
            };
            self.say_result(&result, |_| "ended".into());
            if self.vfs.crashed() {
                self.external_span_ends("lost: the machine crashed as it ended", "lost");
            } else if early {
                self.external_span_ends(
                    format!(
                        "ended early, before every file was read: {}",
                        answer(&result)
                    ),
                    "backup-fail",
                );
            } else {
                self.external_span_ends(format!("aborted: {}", answer(&result)), "backup-fail");
            }
            if !fine && !orphaned && !self.vfs.crashed() {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("an external backup ended ({how:?}) before it was complete answered {result:?}"),
                ));
            }
            self.coverage.hit(Mark::ExternalAborted);
            return self.check_external_failure(&facts, false);
        }
        // Read to the end, then end normally (truncating first, if asked).
        let rest = x.read_rest(page_size);
        if let Ok(Some(what)) = rest {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!("an external backup answered wrong: {what}"),
            ));
        }
        if let Err(e) = rest {
            self.take_events();
            self.say(format!("failed: {}", super::error_outcome(&e)));
            return self.external_failed(&e, &before, false);
        }
        if self.vfs.crashed() {
            return Ok(());
        }
        let x = self.externals.running.as_ref().expect("running");
        let incremental = x.facts.incremental;
        let previous = if incremental {
            self.previous_set(x.facts.gen_low)
        } else {
            None
        };
        let x = self.externals.running.as_mut().expect("running");
        let manifest = x.backup.manifest(previous.as_ref().map(|c| &c.manifest));
        let manifest = match manifest {
            Ok(m) => Some(m),
            Err(e)
                if incremental
                    && previous.is_none()
                    && e.kind() == ErrorKind::MissingFullBackup =>
            {
                None
            }
            Err(e) => {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("the manifest of an external backup read whole answered {e}"),
                ));
            }
        };
        let mut truncated = None;
        if how == ExternalEndHow::Truncate {
            x.facts.committing = true;
            self.vfs.suspend_faults(true);
            let logs_before = self.live_logs();
            self.vfs.suspend_faults(false);
            let x = self.externals.running.as_mut().expect("running");
            let result = x.backup.truncate_log();
            if self.vfs.crashed() {
                return Ok(());
            }
            match result {
                Ok(deleted) => {
                    truncated = Some(deleted);
                    self.external_recorded(&logs_before)?;
                }
                Err(e) => {
                    self.take_events();
                    self.say(format!("truncation failed: {}", super::error_outcome(&e)));
                    let facts = self
                        .externals
                        .running
                        .as_ref()
                        .expect("running")
                        .facts
                        .clone();
                    self.vfs.suspend_faults(true);
                    let recorded = !self.instance_dead() && self.external_is_recorded(&facts);
                    self.vfs.suspend_faults(false);
                    if !recorded {
                        return self.external_failed(&e, &before, true);
                    }
                    // Recorded, then deleting its logs failed: the backup has succeeded, and
                    // must end as one, its copy restoring to its begin.
                    if !self.explained(&e, &before) {
                        return Err(self.violation(
                            Oracle::UnexplainedError,
                            format!("an external backup's truncation failed with no fault to explain it: {e}"),
                        ));
                    }
                    self.external_recorded(&logs_before)?;
                    truncated = Some(None);
                }
            }
        }
        let x = self.externals.running.take().expect("running");
        let stopped = x.facts.stopped;
        let facts = x.facts.clone();
        let point = x.backup.backup_point();
        let db = x.db;
        let logs = x.logs;
        let result = x.backup.end(BackupEnd::Normal);
        self.take_events();
        if self.vfs.crashed() {
            self.external_span_ends("lost: the machine crashed as it ended", "lost");
            return Ok(());
        }
        let summary = match result {
            Ok(summary) => summary,
            Err(e) => {
                self.say(format!("failed: {}", super::error_outcome(&e)));
                self.external_span_ends(format!("failed at its end: {e}"), "backup-fail");
                // (The backup is spent: judge it as failed, unless it was recorded.)
                self.externals.running = None;
                return self.external_ended_badly(&facts, &e, &before, truncated.is_some());
            }
        };
        self.external_span_ends(
            format!(
                "ended normally: commit {}, logs {:#X}..={:#X}{}",
                point.sequence,
                point.gen_low,
                point.gen_high,
                if truncated.is_some() {
                    ", truncated"
                } else {
                    ""
                }
            ),
            "backup-ok",
        );
        if stopped {
            return Err(self.violation(
                Oracle::ExternalBackup,
                "an external backup stopped by stop_backup ended normally",
            ));
        }
        if truncated.is_none() {
            // A copy backup: recorded nowhere.
            self.vfs.suspend_faults(true);
            let now = self.header_records();
            self.vfs.suspend_faults(false);
            if let (Some(now), Some(then)) = (now, facts.header)
                && now != then
            {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("an external backup ended without a truncation changed the header's backup records from {then:?} to {now:?}"),
                ));
            }
        }
        if summary.sequence != point.sequence {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!(
                    "an external backup's summary names commit {}, its backup point {}",
                    summary.sequence, point.sequence
                ),
            ));
        }
        self.say(format!(
            "ended: commit {}, logs {:#X}..={:#X}{}",
            point.sequence,
            point.gen_low,
            point.gen_high,
            match truncated {
                Some(Some((l, h))) => format!(", deleted {l:#X}..={h:#X}"),
                Some(None) => ", nothing deleted".into(),
                None => String::new(),
            }
        ));
        let Some(manifest) = manifest else {
            // An incremental whose set the simulator does not hold: unjudged.
            if truncated.is_some() {
                self.externals.chain = None;
            }
            return Ok(());
        };
        let mut files: Vec<(String, Vec<u8>)> = previous.map(|c| c.files).unwrap_or_default();
        if let Some(db) = db {
            files.push((manifest.db_name.clone(), db));
        }
        for (g, bytes) in logs {
            files.push((manifest.log_name(g), bytes));
        }
        self.restore_external(&manifest, &files, &facts.snapshot)?;
        self.coverage.hit(Mark::ExternalRestored);
        if incremental {
            self.coverage.hit(Mark::ExternalIncrementalRestored);
        }
        if truncated.is_some() {
            self.externals.chain = Some(Chain { manifest, files });
        }
        Ok(())
    }

    /// After an external backup's truncation: the header records it, and what went lies
    /// below the checkpoint and within what it holds.
    fn external_recorded(&mut self, logs_before: &BTreeSet<u32>) -> Check {
        let x = self.externals.running.as_ref().expect("running");
        let (incremental, high) = (x.facts.incremental, x.facts.gen_high);
        let sequence = x.backup.backup_point().sequence;
        self.vfs.suspend_faults(true);
        let records = self.header_records();
        self.vfs.suspend_faults(false);
        if let Some((full, inc)) = records {
            let record = if incremental { inc } else { full };
            if record.gen_high != high || (!incremental && inc.is_set()) {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!(
                        "after an external {} backup's truncation up to generation {high:#X}, the header records full {full:?}, incremental {inc:?}",
                        if incremental { "incremental" } else { "full" }
                    ),
                ));
            }
        }
        self.backups.high = Some(self.backups.high.map_or(high, |h| h.max(high)));
        self.backups.recorded = records;
        self.backups.last_sequence = self.backups.last_sequence.max(sequence);
        self.check_truncation(logs_before)?;
        self.coverage.hit(Mark::ExternalTruncated);
        Ok(())
    }

    /// The set an incremental beginning at `gen_low` extends, if the simulator holds it: the
    /// last one an external backup recorded, or a backup directory's it knows exactly.
    fn previous_set(&self, gen_low: u32) -> Option<Chain> {
        if let Some(chain) = &self.externals.chain
            && chain.manifest.last().gen_high.checked_add(1) == Some(gen_low)
        {
            return Some(chain.clone());
        }
        self.vfs.suspend_faults(true);
        let found = (0..usize::from(BACKUP_DIRS)).find_map(|dir| {
            let state = &self.backups.dirs[dir];
            if state.allowed.len() != 1
                || state.allowed[0].is_none()
                || state.damaged
                || state.tampered.is_some()
                || state.forged.is_some()
            {
                return None;
            }
            let m = self.manifest_of(dir).ok().flatten()?;
            if m.last().gen_high.checked_add(1) != Some(gen_low) {
                return None;
            }
            let set = m.set_dir(&dir_path(dir));
            let mut files = vec![(m.db_name.clone(), self.vfs.content(&set.join(&m.db_name))?)];
            for l in &m.logs {
                let name = m.log_name(l.generation);
                files.push((name.clone(), self.vfs.content(&set.join(&name))?));
            }
            Some(Chain { manifest: m, files })
        });
        self.vfs.suspend_faults(false);
        found
    }

    /// Writes an external backup's copy as a backup directory on a disk of its own, restores
    /// it there, and compares it with `want`.
    fn restore_external(
        &mut self,
        m: &Manifest,
        files: &[(String, Vec<u8>)],
        want: &Snapshot,
    ) -> Check {
        self.externals.restores += 1;
        let dir = Path::new("xbk");
        let set = m.set_dir(dir);
        let disk = crate::vfs::SimVfs::new(
            self.config.device.clone(),
            self.config.seed ^ 0x5842_0000_0000 ^ self.externals.restores,
            crate::trace::Trace::default(),
        );
        disk.mkdir_durable(dir);
        disk.mkdir_durable(&set);
        for (name, bytes) in files {
            disk.put_at_rest(&set.join(name), bytes);
        }
        disk.put_at_rest(&dir.join(manifest::MANIFEST_NAME), &m.encode());
        let mut env = self.env.clone();
        env.vfs = std::sync::Arc::new(disk);
        let place = Path::new("xrst");
        let inst = jetdb::Instance::new(env, self.params_in(place));
        let restored = inst.restore(dir, None);
        let got = match restored {
            Ok(_) => self.read_restored(&inst, dir).map_err(|mut v| {
                v.oracle = Oracle::ExternalBackup;
                v
            }),
            Err(e) => Err(self.violation(
                Oracle::ExternalBackup,
                format!("the copy of an external backup that ended normally does not restore: {e}"),
            )),
        };
        self.take_events();
        let got = got?;
        if got != *want {
            let differ: Vec<String> = super::backups::differing(want, &got);
            let (expected, actual) = super::backups::snapshot_diff(want, &got);
            return Err(self
                .violation(
                    Oracle::ExternalBackup,
                    format!(
                        "the copy of an external backup restored differs from the model at its begin: {}",
                        differ.join(", ")
                    ),
                )
                .with_values(expected, actual));
        }
        Ok(())
    }

    /// A call of the external backup failed it: the error must be explained, and the backup
    /// leave nothing. With `recorded_maybe`, the failure came in its truncation, which may
    /// have recorded it.
    fn external_failed(
        &mut self,
        err: &JetError,
        before: &BTreeMap<IoFault, u64>,
        recorded_maybe: bool,
    ) -> Check {
        if self.vfs.crashed() {
            // Judged after the restart.
            return Ok(());
        }
        let mut x = self.externals.running.take().expect("running");
        let facts = x.facts.clone();
        self.external_span_ends(format!("failed: {err}"), "backup-fail");
        if !recorded_maybe && !facts.orphaned {
            // A failed backup answers every later call with the error that failed it.
            let again = x.backup.log_info().map(|_| ());
            let ended = x.backup.end(BackupEnd::Normal).map(|_| ());
            self.take_events();
            for (call, got) in [("log info", again), ("end", ended)] {
                if got.as_ref().err().map(JetError::kind) != Some(err.kind()) {
                    return Err(self.violation(
                        Oracle::ExternalBackup,
                        format!(
                            "after an external backup failed with {err}, {call} answered {got:?}"
                        ),
                    ));
                }
            }
        } else {
            drop(x.backup);
        }
        self.take_events();
        self.external_ended_badly(&facts, err, before, recorded_maybe)
    }

    fn external_ended_badly(
        &mut self,
        facts: &ExtFacts,
        err: &JetError,
        before: &BTreeMap<IoFault, u64>,
        recorded_maybe: bool,
    ) -> Check {
        let kind = err.kind();
        let fence_read = self.fence_read_failed(kind, facts.reads_before);
        let damage = self.damage_explains(
            kind,
            facts.damaged_at_begin,
            Some((facts.gen_low, facts.gen_high)),
        );
        if facts.orphaned {
            self.coverage.hit(Mark::ExternalEndedByRestart);
        } else if facts.stopped && kind == ErrorKind::BackupAbortByServer {
            self.coverage.hit(Mark::ExternalStopped);
        } else if facts.stopped {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!("an external backup stopped by stop_backup failed with {err}, not JET_errBackupAbortByServer"),
            ));
        } else if damage {
            self.coverage.hit(Mark::ExternalFoundCorruption);
            self.detected(kind);
        } else if !fence_read && !self.explained(err, before) {
            return Err(self.violation(
                Oracle::UnexplainedError,
                format!("an external backup failed with no fault to explain it: {err}"),
            ));
        }
        if recorded_maybe && self.external_is_recorded(facts) {
            // Recorded before its deletions failed: a success as far as the header goes.
            self.external_counts_as_recorded(facts);
            return Ok(());
        }
        if recorded_maybe && self.instance_dead() {
            // The record's write failed: the disk may hold it or not.
            self.externals.pending_record = Some(facts.clone());
            self.externals.chain = None;
        }
        self.check_external_failure(facts, false)
    }

    /// The header records the backup of `facts`: truncation may go up to its logs, and the
    /// set an incremental extends is no longer the simulator's.
    fn external_counts_as_recorded(&mut self, facts: &ExtFacts) {
        let high = facts.gen_high;
        self.backups.high = Some(self.backups.high.map_or(high, |h| h.max(high)));
        self.externals.chain = None;
    }

    /// After a recovery: a backup whose record's write failed may be recorded after all.
    pub(super) fn external_record_after_restart(&mut self) {
        if let Some(facts) = self.externals.pending_record.take()
            && self.external_is_recorded(&facts)
        {
            self.external_counts_as_recorded(&facts);
        }
    }

    /// Whether the header records the backup of `facts`.
    fn external_is_recorded(&self, facts: &ExtFacts) -> bool {
        self.header_records().is_some_and(|(full, inc)| {
            let record = if facts.incremental { inc } else { full };
            record.is_set()
                && record.gen_high == facts.gen_high
                && Some((full, inc)) != facts.header
        })
    }

    /// The failure guarantees: nothing recorded, no log deleted. (A backup whose instance
    /// was terminated is judged at the restart, `at_term`: after it, other backups run.)
    pub(super) fn check_external_failure(&mut self, facts: &ExtFacts, at_term: bool) -> Check {
        if self.vfs.crashed() || (facts.orphaned && !at_term) {
            return Ok(());
        }
        self.vfs.suspend_faults(true);
        let header = self.header_records();
        let logs = self.live_logs();
        self.vfs.suspend_faults(false);
        if let (Some(now), Some(then)) = (header, facts.header)
            && now != then
        {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!("a failed external backup changed the header's backup records from {then:?} to {now:?}"),
            ));
        }
        let circular = self.config.circular_logging;
        // (Logs removed by hand are the tampering's.)
        if self.live_tamper_in_effect(None).is_none() {
            let gone: Vec<u32> = facts
                .logs
                .iter()
                .copied()
                .filter(|g| !logs.contains(g) && (!circular || *g >= facts.gen_low))
                .collect();
            if !gone.is_empty() {
                return Err(self.violation(
                    Oracle::ExternalBackup,
                    format!("a failed external backup deleted log generations {gone:?}"),
                ));
            }
        }
        self.coverage.hit(Mark::ExternalFailedCleanly);
        Ok(())
    }

    /// After a restart that a crash made while an external backup ran: the header records
    /// what it did at the begin, or — a crash in its truncation — this backup.
    pub(super) fn after_crash_during_external(&mut self, facts: ExtFacts) -> Check {
        self.coverage.hit(Mark::ExternalCrashed);
        if self.instance.is_none() {
            return Ok(());
        }
        self.vfs.suspend_faults(true);
        let header = self.header_records();
        self.vfs.suspend_faults(false);
        if facts.orphaned {
            // Judged at the term that ended it; other backups ran since.
            return Ok(());
        }
        if facts.committing && self.external_is_recorded(&facts) {
            self.external_counts_as_recorded(&facts);
            return Ok(());
        }
        if let (Some(now), Some(then)) = (header, facts.header)
            && now != then
        {
            return Err(self.violation(
                Oracle::ExternalBackup,
                format!("after a crash during an external backup the header's backup records changed from {then:?} to {now:?}"),
            ));
        }
        Ok(())
    }

    /// The external backup in flight, if any, dies with the process: its facts, for
    /// [`Sim::after_crash_during_external`].
    pub(super) fn external_dies(&mut self) -> Option<ExtFacts> {
        let x = self.externals.running.take()?;
        self.vfs.crash();
        drop(x.backup);
        self.external_span_ends("lost: the instance died during it", "lost");
        Some(x.facts)
    }

    /// The external backup's span on the timeline ends here, with `outcome` (style `class`).
    fn external_span_ends(&self, outcome: impl Into<String>, class: &str) {
        self.record(|t| t.close(Lane::External, outcome, class, Vec::new()));
    }
}

/// A call's answer, as a span's outcome says it.
fn answer<T>(result: &jetdb::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => super::error_outcome(e),
    }
}
