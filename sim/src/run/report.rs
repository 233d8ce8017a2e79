//! The report oracle: what a backup or a restore says it did — its summary, its progress, the
//! answer of each step, its status calls and its event log — must be what it did, as the
//! simulator saw it: the files it copied and their lengths, the generations it deleted, the
//! backup point it fixed, the set it restored.
//!
//! Applications act on these reports (a progress bar, a backup catalogue built from the
//! summaries, alerts from the event log), and a backup that misreports its point or its files
//! misleads whoever restores it. So they are checked as strictly as the data.
//!
//! The pacing of a job is checked too: a step copies `min(step size, 1 MiB)` of database pages
//! (at least one page) until the copy is whole, then one log generation per step, and answers
//! whether anything is left — the simulator predicts each answer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jetdb::manifest::Manifest;
use jetdb::{
    BackupJob, BackupKind, BackupSummary, Event, EventRecord, JetError, Lgpos, Operation,
    RestoreSummary, Status, StatusKind,
};

use super::{Check, Sim};
use crate::oracle::Oracle;
use crate::workload::BackupMode;

/// The events every instance of a run emits (the live one, restored copies, the other
/// instance), in order; each judged call takes what it emitted.
pub(crate) type EventSink = Arc<Mutex<Vec<EventRecord>>>;

/// How a running backup job's steps must go, as the simulator predicts them.
#[derive(Clone, Debug)]
pub(crate) struct Pace {
    /// The kind the job must report.
    pub(crate) kind: BackupKind,
    /// Its backup point.
    pub(crate) sequence: u64,
    pub(crate) mark: Lgpos,
    /// Database pages in the copy (0 unless full), and the page size.
    pub(crate) db_pages: u64,
    pub(crate) page_size: u64,
    /// The length of each generation it copies, in order.
    pub(crate) log_lens: Vec<u64>,
    /// Pages not copied yet, and generations not copied yet.
    pub(crate) pages_left: u64,
    pub(crate) logs_done: usize,
    /// Bytes the job reported copied after its last step.
    pub(crate) done: u64,
}

impl Pace {
    fn total(&self) -> u64 {
        self.db_pages * self.page_size + self.log_lens.iter().sum::<u64>()
    }

    fn logs_left(&self) -> usize {
        self.log_lens.len() - self.logs_done
    }

    /// Bytes copied once the database is whole and `logs` generations are.
    fn done_after(&self, logs: usize) -> u64 {
        self.db_pages * self.page_size + self.log_lens[..logs].iter().sum::<u64>()
    }
}

/// What the simulator knew just before a backup began.
pub(crate) struct Before {
    /// The log generation being written (the begin finishes it).
    pub(crate) generation: u32,
    /// The checkpoint's generation.
    pub(crate) checkpoint: u32,
    /// The highest generation of the directory's backup set (an incremental continues it).
    pub(crate) set_high: Option<u32>,
    /// The last backup point of this instance's backups so far.
    pub(crate) last_sequence: u64,
}

impl Sim {
    /// Takes the events emitted since the last take.
    pub(super) fn take_events(&self) -> Vec<Event> {
        let mut kept = self
            .events
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        kept.drain(..).map(|r| r.event).collect()
    }

    fn misreport(&self, detail: String) -> Check {
        Err(self.violation(Oracle::Report, detail))
    }

    /// The archived generation `g` of the live instance.
    fn live_archive(&self, g: u32) -> PathBuf {
        self.params
            .log_path
            .join(jetdb::log::archive_name(&self.params.base_name, g))
    }

    /// A backup began: its kind, point, generations, progress and events are what the
    /// simulator saw before and after. Returns how its steps must go.
    pub(super) fn check_begin_report(
        &self,
        job: &BackupJob<'static>,
        dir: &Path,
        mode: BackupMode,
        before: &Before,
        events: &[Event],
    ) -> Result<Pace, crate::oracle::Violation> {
        let kind = mode.kind();
        let say = |detail: String| self.violation(Oracle::Report, detail);
        if job.kind() != kind {
            return Err(say(format!(
                "a {mode:?} backup reports kind {:?}",
                job.kind()
            )));
        }
        let Some((low, high)) = job.logs() else {
            return Err(say(format!("a {mode:?} backup names no generations")));
        };
        let instance = self.instance.as_ref().expect("an instance");
        let mark = instance.log_position().ok().flatten().unwrap_or_default();
        // The begin may move the checkpoint forward (a checkpoint's batch being written goes
        // in first), never back, and never past the generation it finishes.
        let checkpoint = instance
            .checkpoint_position()
            .ok()
            .flatten()
            .map_or(0, |p| p.generation);
        if checkpoint < before.checkpoint || checkpoint > before.generation {
            return Err(say(format!(
                "a {mode:?} backup's begin moved the checkpoint from generation {:#X} to {checkpoint:#X}, \
                 in generation {:#X}",
                before.checkpoint, before.generation
            )));
        }
        // The begin finished the generation being written: it is the last one copied, and
        // the backup point is the start of the next.
        let want_low = match (kind, before.set_high) {
            (BackupKind::Incremental, Some(h)) => h + 1,
            _ => checkpoint,
        };
        if high != before.generation || low != want_low || mark.generation != high + 1 {
            return Err(say(format!(
                "a {mode:?} backup copies generations {low:#X}..={high:#X} from point {mark}; \
                 it began in generation {:#X}, with the checkpoint in {:#X} (then {checkpoint:#X}) \
                 and the set ending at {:?}",
                before.generation, before.checkpoint, before.set_high
            )));
        }
        let sequence = job.sequence();
        if sequence < before.last_sequence {
            return Err(say(format!(
                "a backup's point is commit {sequence}, before an earlier backup's ({})",
                before.last_sequence
            )));
        }
        let want = [
            Event::BackupBegin {
                kind,
                atomic: mode == BackupMode::Atomic,
                directory: Some(dir.to_path_buf()),
                mark,
                sequence,
            },
            Event::LogRange {
                operation: Operation::Backup,
                low,
                high,
            },
        ];
        if events != want {
            return Err(say(format!(
                "a {mode:?} backup's begin logged {events:?}, not {want:?}"
            )));
        }
        let page_size = u64::from(self.config.page_size);
        let db_pages = if kind == BackupKind::Full {
            self.vfs.len_of(&self.params.database_path).unwrap_or(0) / page_size
        } else {
            0
        };
        let log_lens: Vec<u64> = (low..=high)
            .map(|g| self.vfs.len_of(&self.live_archive(g)).unwrap_or(0))
            .collect();
        let pace = Pace {
            kind,
            sequence,
            mark,
            db_pages,
            page_size,
            log_lens,
            pages_left: db_pages,
            logs_done: 0,
            done: 0,
        };
        if job.progress() != (0, pace.total()) {
            return Err(say(format!(
                "a {mode:?} backup begins at progress {:?}; it copies {db_pages} pages and logs of {:?} bytes",
                job.progress(),
                pace.log_lens
            )));
        }
        Ok(pace)
    }

    /// A step of the running backup returned `more`: it copied what the pace says, reported
    /// the bytes, and logged each file it completed.
    pub(super) fn check_step_report(
        &self,
        pace: &mut Pace,
        step_pages: u64,
        more: bool,
        progress: (u64, u64),
        events: &[Event],
    ) -> Check {
        let (done, total) = progress;
        let mut completed = Vec::new();
        if pace.pages_left > 0 {
            let chunk = step_pages.min(1024 * 1024 / pace.page_size).max(1);
            pace.pages_left -= chunk.min(pace.pages_left);
            if pace.pages_left == 0 {
                completed.push(pace.db_pages * pace.page_size);
            }
        } else if pace.logs_left() > 0 {
            completed.push(pace.log_lens[pace.logs_done]);
            pace.logs_done += 1;
        }
        let want_more = pace.pages_left > 0 || pace.logs_left() > 0;
        if more != want_more {
            return self.misreport(format!(
                "a backup step of {step_pages} pages says {} is left; {} pages and {} generations are",
                if more { "more" } else { "nothing" },
                pace.pages_left,
                pace.logs_left()
            ));
        }
        // Pages saved by the fence go out with a step too, so a database step's count is a
        // lower bound until the copy is whole; from then on it is exact.
        let exact = (pace.pages_left == 0).then(|| pace.done_after(pace.logs_done));
        let least = (pace.db_pages - pace.pages_left) * pace.page_size;
        if total != pace.total()
            || done < pace.done
            || done < least
            || exact.is_some_and(|e| e != done)
            || done > total
        {
            return self.misreport(format!(
                "after a backup step the progress is {done} of {total}; expected {} of {} (at least {least}, before {})",
                exact.map_or("?".into(), |e| e.to_string()),
                pace.total(),
                pace.done
            ));
        }
        pace.done = done;
        self.check_copied_events(events, &completed)
    }

    /// `events` are one `FileCopied` of the backup for each of `completed` (their bytes).
    fn check_copied_events(&self, events: &[Event], completed: &[u64]) -> Check {
        let copied: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::FileCopied {
                    operation: Operation::Backup,
                    bytes,
                    ..
                } => Some(*bytes),
                _ => None,
            })
            .collect();
        if copied != completed || events.len() != completed.len() {
            return self.misreport(format!(
                "a backup that completed files of {completed:?} bytes logged {events:?}"
            ));
        }
        Ok(())
    }

    /// A backup finished: its summary and the events of its finish agree with its begin, the
    /// files it copied, and the generations the simulator saw deleted.
    pub(super) fn check_finish_report(
        &self,
        pace: &Pace,
        dir: &Path,
        summary: &BackupSummary,
        deleted: &[u32],
        events: &[Event],
    ) -> Check {
        let low_high = (
            pace.mark.generation - pace.log_lens.len() as u32,
            pace.mark.generation - 1,
        );
        let want = BackupSummary {
            kind: pace.kind,
            directory: Some(dir.to_path_buf()),
            sequence: pace.sequence,
            mark: pace.mark,
            logs: Some(low_high),
            database_bytes: pace.db_pages * pace.page_size,
            log_bytes: pace.log_lens.iter().sum(),
            truncated: summary.truncated,
            warnings: summary.warnings.clone(),
        };
        if *summary != want {
            return self.misreport(format!(
                "a backup's summary is {summary:?}; it did {want:?}"
            ));
        }
        // The rest of the copy (a finish runs what the steps left).
        let mut completed = Vec::new();
        if pace.pages_left > 0 {
            completed.push(pace.db_pages * pace.page_size);
        }
        completed.extend(&pace.log_lens[pace.logs_done..]);
        let copies = completed.len().min(events.len());
        self.check_copied_events(&events[..copies], &completed)?;
        self.check_tail(
            &events[copies..],
            pace.kind,
            Some(dir),
            pace.sequence,
            summary,
            deleted,
        )
    }

    /// After a backup's copies: its warnings, its truncation, its success.
    fn check_tail(
        &self,
        events: &[Event],
        kind: BackupKind,
        dir: Option<&Path>,
        sequence: u64,
        summary: &BackupSummary,
        deleted: &[u32],
    ) -> Check {
        let warnings: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Warning {
                    operation: Operation::Backup,
                    message,
                } => Some(message),
                _ => None,
            })
            .collect();
        let rest: Vec<&Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::Warning { .. }))
            .collect();
        let mut want = Vec::new();
        if let Some((low, high)) = summary.truncated {
            want.push(Event::LogsTruncated { low, high });
        }
        want.push(Event::BackupSucceeded {
            kind,
            directory: dir.map(Path::to_path_buf),
            sequence,
        });
        if rest.iter().copied().ne(want.iter()) || !warnings.iter().copied().eq(&summary.warnings) {
            return self.misreport(format!(
                "a {kind} backup that returned {summary:?} logged {events:?}"
            ));
        }
        // What it says it deleted is what went (circular logging deletes at checkpoints, and
        // a truncation then deletes nothing itself).
        // (A generation already missing in the range — taken by hand — is no lie.)
        let exact = !self.config.circular_logging;
        let agrees = match summary.truncated {
            None => !exact || deleted.is_empty(),
            Some((low, high)) => {
                exact
                    && deleted.first() == Some(&low)
                    && deleted.last() == Some(&high)
                    && self.live_logs().range(low..=high).next().is_none()
            }
        };
        if !agrees {
            return self.misreport(format!(
                "a {kind} backup says it deleted generations {:?}; {deleted:?} went",
                summary.truncated
            ));
        }
        Ok(())
    }

    /// A truncation (a backup with no path) succeeded.
    pub(super) fn check_truncate_report(
        &self,
        summary: &BackupSummary,
        mark: Option<Lgpos>,
        deleted: &[u32],
        events: &[Event],
    ) -> Check {
        let Some((
            Event::BackupBegin {
                kind: BackupKind::Truncate,
                atomic: false,
                directory: None,
                mark: begin_mark,
                sequence,
            },
            tail,
        )) = events
            .split_first()
            .map(|(first, tail)| (first.clone(), tail))
        else {
            return self.misreport(format!("a truncation logged {events:?}"));
        };
        let want = BackupSummary {
            kind: BackupKind::Truncate,
            directory: None,
            sequence,
            mark: begin_mark,
            logs: None,
            database_bytes: 0,
            log_bytes: 0,
            truncated: summary.truncated,
            warnings: summary.warnings.clone(),
        };
        if *summary != want || Some(begin_mark) != mark {
            return self.misreport(format!(
                "a truncation from {mark:?} returned {summary:?} and logged {events:?}"
            ));
        }
        self.check_tail(tail, BackupKind::Truncate, None, sequence, summary, deleted)
    }

    /// A backup call failed with `err`: it logged the failure, and no success.
    /// (`err` is the error it returned, or — for a job dropped unfinished — the kind of the
    /// error it logs.)
    pub(super) fn check_failure_report(
        &self,
        kind: Option<BackupKind>,
        err: Result<&JetError, jetdb::ErrorKind>,
        events: &[Event],
    ) -> Check {
        if self.vfs.crashed() {
            return Ok(());
        }
        let succeeded = events
            .iter()
            .any(|e| matches!(e, Event::BackupSucceeded { .. }));
        let failed_last = match (kind, events.last()) {
            // Refused before it had a kind (bad flags): nothing to log.
            (None, last) => last.is_none(),
            (Some(kind), Some(Event::BackupFailed { kind: k, error })) => {
                *k == kind
                    && match err {
                        Ok(err) => error == err,
                        Err(want) => error.kind() == want,
                    }
            }
            _ => false,
        };
        let err = match err {
            Ok(err) => err.to_string(),
            Err(kind) => kind.name().to_string(),
        };
        if succeeded || !failed_last {
            return self.misreport(format!(
                "a {kind:?} backup that failed with {err} logged {events:?}"
            ));
        }
        Ok(())
    }

    /// A restore of `from`, whose manifest is `manifest`, returned `result`, having made the
    /// status calls `statuses` and emitted `events`; the calls nested in its Begin status
    /// (another restore, a backup, into the same instance) answered `nested`.
    pub(super) fn check_restore_report(
        &self,
        from: &Path,
        manifest: Option<&Manifest>,
        result: &Result<RestoreSummary, JetError>,
        statuses: &[Status],
        events: &[Event],
        nested: &[Option<jetdb::ErrorKind>],
    ) -> Check {
        use jetdb::ErrorKind::RestoreInProgress;
        if nested.iter().any(|n| *n != Some(RestoreInProgress)) {
            return self.misreport(format!(
                "calls into an instance while it restores answered {nested:?}, not JET_errRestoreInProgress"
            ));
        }
        let ops_ok = statuses.iter().all(|s| s.operation == Operation::Restore)
            && statuses.windows(2).all(|w| w[0].done <= w[1].done);
        let summary = match result {
            Err(err) => {
                let logged =
                    matches!(events.last(), Some(Event::RestoreFailed { error }) if error == err);
                let called = statuses.last().is_none_or(|s| s.kind == StatusKind::Fail);
                if !logged || !called || !ops_ok {
                    return self.misreport(format!(
                        "a restore of {} that failed with {err} logged {events:?}, status calls {statuses:?}",
                        from.display()
                    ));
                }
                return Ok(());
            }
            Ok(summary) => summary,
        };
        let Some(m) = manifest else {
            return self.misreport(format!(
                "{} has no manifest the simulator can read (none, or refused as damaged), yet its restore reports {summary:?}",
                from.display()
            ));
        };
        let log_bytes: u64 = m.logs.iter().map(|l| l.len).sum();
        let last = m.last();
        let want = RestoreSummary {
            sequence: last.sequence,
            backups: m.backups.len(),
            logs: m.log_range(),
            database_bytes: m.db_len,
            log_bytes,
            commits_replayed: summary.commits_replayed,
            // (Into a fresh place: nothing of an earlier restore to clear.)
            debris_removed: Vec::new(),
            // Where the last commit is, if the set's logs hold it: judged below.
            position: summary.position,
            commit_millis: summary.commit_millis,
            rolled_forward: None,
        };
        let (low, high) = m.log_range();
        let placed = summary
            .position
            .is_none_or(|at| (low..=high).contains(&at.generation))
            && summary.position.is_some() == summary.commit_millis.is_some();
        if *summary != want
            || !placed
            || summary.commits_replayed > last.sequence.saturating_sub(m.checkpoint_last_commit)
        {
            return self.misreport(format!(
                "a restore of {} reports {summary:?}; its manifest says {want:?} (checkpoint at commit {})",
                from.display(),
                m.checkpoint_last_commit
            ));
        }
        let copied = |e: &Event| {
            matches!(
                e,
                Event::FileCopied {
                    operation: Operation::Restore,
                    ..
                }
            )
        };
        let files = events.iter().filter(|e| copied(e)).count();
        let others: Vec<&Event> = events.iter().filter(|e| !copied(e)).collect();
        let want_events = [
            Event::RestoreBegin {
                from: from.to_path_buf(),
                low,
                high,
            },
            Event::LogRange {
                operation: Operation::Restore,
                low,
                high,
            },
            Event::RestoreSucceeded {
                sequence: summary.sequence,
                commits_replayed: summary.commits_replayed,
            },
        ];
        if files != m.logs.len() + 1 || others.iter().copied().ne(want_events.iter()) {
            return self.misreport(format!(
                "a restore of {} ({} logs) logged {events:?}",
                from.display(),
                m.logs.len()
            ));
        }
        let total = m.db_len + log_bytes;
        let begun = statuses
            .first()
            .is_some_and(|s| s.kind == StatusKind::Begin && s.done == 0 && s.total == total);
        let completed = statuses
            .last()
            .is_some_and(|s| s.kind == StatusKind::Complete && s.done == total && s.total == total);
        let bounded = statuses.iter().all(|s| s.done <= s.total);
        if !begun || !completed || !bounded || !ops_ok {
            return self.misreport(format!(
                "a restore of {} bytes from {} made the status calls {statuses:?}",
                total,
                from.display()
            ));
        }
        Ok(())
    }
}
