//! The event log: a structured record of each step of a backup or a restore, delivered to a
//! sink the application chooses (ESE writes the same steps to the Windows event log).
//!
//! Events are values, stamped with the instance's clock, so a simulator gets the same events
//! for the same seed and a test can assert on them.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::base::env::Clock;
use crate::base::error::JetError;
use crate::store::header::Lgpos;

/// Which long-running operation a status callback or an event is about (ESE's `JET_SNP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `JET_snpBackup` (9).
    Backup = 9,
    /// `JET_snpRestore` (8).
    Restore = 8,
}

/// What a backup does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackupKind {
    /// The database and the logs needed to make it consistent.
    #[default]
    Full,
    /// Only the logs written since the last full or incremental backup.
    Incremental,
    /// No copy: only the truncation of logs no longer needed (a backup with no path).
    Truncate,
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
            BackupKind::Truncate => "truncation",
        })
    }
}

/// One step of a backup or a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A backup began (ESE's events 210 and 211). `mark` is its backup point in the log.
    BackupBegin {
        /// Full, incremental or truncation only.
        kind: BackupKind,
        /// Whether the previous backup in the directory is kept until this one succeeds.
        atomic: bool,
        /// The backup directory (none for a truncation).
        directory: Option<PathBuf>,
        /// The log position at which the backup began: its identity.
        mark: Lgpos,
        /// The last commit the backup holds.
        sequence: u64,
    },
    /// The log generations the backup copies (ESE's event 223).
    LogRange {
        /// The operation.
        operation: Operation,
        /// The lowest generation.
        low: u32,
        /// The highest generation.
        high: u32,
    },
    /// A file was copied whole, verified and made durable (ESE's events 220 and 221).
    FileCopied {
        /// The operation.
        operation: Operation,
        /// Where it was read.
        from: PathBuf,
        /// Where it was written.
        to: PathBuf,
        /// How many bytes.
        bytes: u64,
    },
    /// Log generations no longer needed were deleted.
    LogsTruncated {
        /// The lowest generation deleted.
        low: u32,
        /// The highest generation deleted.
        high: u32,
    },
    /// The backup is complete and durable (ESE's event 213).
    BackupSucceeded {
        /// Full, incremental or truncation only.
        kind: BackupKind,
        /// The backup directory.
        directory: Option<PathBuf>,
        /// The last commit the backup holds.
        sequence: u64,
    },
    /// The backup failed and left nothing behind (ESE's events 214 and 215).
    BackupFailed {
        /// Full, incremental or truncation only.
        kind: BackupKind,
        /// Why.
        error: JetError,
    },
    /// A restore began (ESE's event 204).
    RestoreBegin {
        /// The backup directory.
        from: PathBuf,
        /// The log generations it replays.
        low: u32,
        /// The highest of them.
        high: u32,
    },
    /// The restored database was recovered to the backup point and shut down cleanly.
    RestoreSucceeded {
        /// The last commit the restored database holds.
        sequence: u64,
        /// Commit groups replayed.
        commits_replayed: u64,
    },
    /// The restore failed; nothing it wrote is left in the destination.
    RestoreFailed {
        /// Why.
        error: JetError,
    },
    /// Something went wrong that does not fail the operation (ESE's warning events, such as
    /// 219: the header could not record the backup).
    Warning {
        /// The operation.
        operation: Operation,
        /// What happened.
        message: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::BackupBegin {
                kind,
                atomic,
                directory,
                mark,
                sequence,
            } => {
                write!(f, "{kind} backup began at {mark} (commit {sequence})")?;
                if let Some(dir) = directory {
                    write!(f, " into {}", dir.display())?;
                }
                if *atomic {
                    f.write_str(", atomic")?;
                }
                Ok(())
            }
            Event::LogRange {
                operation,
                low,
                high,
            } => write!(
                f,
                "{} logs: generations {low:#X} to {high:#X}",
                op(*operation)
            ),
            Event::FileCopied {
                operation,
                from,
                to,
                bytes,
            } => write!(
                f,
                "{}: copied {} to {} ({bytes} bytes)",
                op(*operation),
                from.display(),
                to.display()
            ),
            Event::LogsTruncated { low, high } => {
                write!(f, "deleted log generations {low:#X} to {high:#X}")
            }
            Event::BackupSucceeded {
                kind,
                directory,
                sequence,
            } => {
                write!(f, "{kind} backup succeeded (commit {sequence})")?;
                if let Some(dir) = directory {
                    write!(f, " in {}", dir.display())?;
                }
                Ok(())
            }
            Event::BackupFailed { kind, error } => write!(f, "{kind} backup failed: {error}"),
            Event::RestoreBegin { from, low, high } => write!(
                f,
                "restore began from {} (generations {low:#X} to {high:#X})",
                from.display()
            ),
            Event::RestoreSucceeded {
                sequence,
                commits_replayed,
            } => write!(
                f,
                "restore succeeded: {commits_replayed} commits replayed, up to commit {sequence}"
            ),
            Event::RestoreFailed { error } => write!(f, "restore failed: {error}"),
            Event::Warning { operation, message } => {
                write!(f, "{} warning: {message}", op(*operation))
            }
        }
    }
}

fn op(operation: Operation) -> &'static str {
    match operation {
        Operation::Backup => "backup",
        Operation::Restore => "restore",
    }
}

/// An event with the time it happened (the instance's clock, milliseconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// When.
    pub millis: u64,
    /// What.
    pub event: Event,
}

type Sink = Arc<dyn Fn(&EventRecord) + Send + Sync>;

/// Where an instance's events go: nowhere (the default), or to a function of the
/// application's choosing (`JET_paramEventSource`, in spirit).
#[derive(Clone, Default)]
pub struct EventLog {
    sink: Option<Sink>,
}

impl EventLog {
    /// Events go to `sink`, in order, from the thread that caused them.
    pub fn new(sink: impl Fn(&EventRecord) + Send + Sync + 'static) -> EventLog {
        EventLog {
            sink: Some(Arc::new(sink)),
        }
    }

    /// An event log that keeps every event in memory, and the list it keeps them in.
    pub fn collect() -> (EventLog, Arc<Mutex<Vec<EventRecord>>>) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&kept);
        let log = EventLog::new(move |record| {
            sink.lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .push(record.clone());
        });
        (log, kept)
    }

    pub(crate) fn emit(&self, clock: &dyn Clock, event: Event) {
        if let Some(sink) = &self.sink {
            sink(&EventRecord {
                millis: clock.now_millis(),
                event,
            });
        }
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.sink.is_some() {
            "EventLog(sink)"
        } else {
            "EventLog(none)"
        })
    }
}
