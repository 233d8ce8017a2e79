//! What the simulator checks: the oracles, a violation of one, and the documented errors an
//! injected fault or planted damage may surface as (anything else is unexplained). The
//! precise rules are in `../shared/reference/oracles.md`; `run.rs` applies them.

use std::fmt;

use jetdb::ErrorKind;

use crate::vfs::IoFault;
use serde::{Deserialize, Serialize};

/// Which promise a violation broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Oracle {
    /// A read inside or outside a transaction differed from the model's snapshot.
    SnapshotRead,
    /// A write conflict the model predicted was missed, or one it did not predict was raised.
    WriteConflict,
    /// After a crash and recovery the database was no prefix of the commits holding every
    /// durable one.
    CrashPrefix,
    /// Recovery failed where the fault atlas says it must succeed.
    Recovery,
    /// An error was returned that no injected fault explains.
    UnexplainedError,
    /// Data came back that is not the model's (a wrong value, a key the workload never wrote).
    WrongData,
    /// The integrity check failed with nothing corrupted.
    Integrity,
    /// The API broke its contract (a call in the wrong state was not refused as documented).
    Contract,
    /// The engine panicked.
    Panic,
    /// A backup broke its promise: a successful one did not restore to exactly its snapshot,
    /// a failed one left something behind or changed the header, a crash during one left a
    /// directory that restores to anything else.
    Backup,
    /// A truncation deleted a log generation crash recovery or the next incremental backup
    /// needs.
    Truncation,
    /// A backup or a restore misreported what it did: its summary, its progress, a step's
    /// answer, its status calls or its events disagree with the files it copied, the
    /// generations it deleted, the backup point it fixed or the set it restored.
    Report,
    /// The engine held more memory than its bounds allow: between calls, the page cache past
    /// its size beside the pages it may not evict yet (changed, their log not durable).
    Memory,
    /// A restore to a point (a chosen backup of a chain, a commit time, a log position) gave
    /// anything but the model's committed state at that point, or a point outside what the
    /// set covers was not refused (`JET_errStartingRestoreLogTooHigh`,
    /// `JET_errEndingRestoreLogTooLow`) leaving its destination empty.
    RestorePoint,
    /// A roll forward through the live logs gave anything but the model's state after the
    /// last commit those logs hold (never before the last durable one), or live logs damaged,
    /// missing or foreign were not refused with the error documented for that damage, leaving
    /// the destination empty.
    RollForward,
    /// An external backup broke its promise: one that ended normally did not restore to
    /// exactly the model at its begin; a failed or aborted one recorded something or deleted
    /// a log; a call out of order was not refused with its documented error, or changed
    /// something; an incremental did not begin just after the last recorded backup.
    ExternalBackup,
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&name)
    }
}

/// A broken promise: which oracle, at which step, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The oracle that fired.
    pub oracle: Oracle,
    /// The step it fired at (the plan's length for the final phase).
    pub step: usize,
    /// What was seen.
    pub detail: String,
    /// The model's value, where a data oracle had it at hand (the differing keys, as the
    /// model holds them). Not part of its `Display`: the trace hashes that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The engine's value beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// The longest an expected or actual value is kept, in characters.
const VALUE_MAX: usize = 2000;

impl Violation {
    /// A violation of `oracle` at `step`, with no values.
    pub fn new(oracle: Oracle, step: usize, detail: impl Into<String>) -> Violation {
        Violation {
            oracle,
            step,
            detail: detail.into(),
            expected: None,
            actual: None,
        }
    }

    /// With the model's value and the engine's (each truncated sensibly).
    pub fn with_values(
        mut self,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Violation {
        self.expected = Some(truncate(expected.into()));
        self.actual = Some(truncate(actual.into()));
        self
    }
}

/// `text`, cut at [`VALUE_MAX`] characters with a note of how much was left out.
fn truncate(text: String) -> String {
    let total = text.chars().count();
    if total <= VALUE_MAX {
        return text;
    }
    let kept: String = text.chars().take(VALUE_MAX).collect();
    format!("{kept} … ({} more characters)", total - VALUE_MAX)
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "oracle {} fired at step {}: {}",
            self.oracle, self.step, self.detail
        )
    }
}

/// Errors an I/O fault (EIO, ENOSPC, a crash) may surface as.
pub const IO_ERRORS: [ErrorKind; 6] = [
    ErrorKind::DiskIO,
    ErrorKind::DiskFull,
    ErrorKind::LogDiskFull,
    ErrorKind::LogWriteFail,
    ErrorKind::InstanceUnavailable,
    ErrorKind::DatabaseUnavailable,
];

/// Errors a damaged database page or header may surface as.
pub const PAGE_ERRORS: [ErrorKind; 6] = [
    ErrorKind::ReadVerifyFailure,
    ErrorKind::ReadLostFlushVerifyFailure,
    ErrorKind::PageNotInitialized,
    ErrorKind::ReadPgnoVerifyFailure,
    ErrorKind::DatabaseCorrupted,
    ErrorKind::DatabaseUnavailable,
];

/// Errors recovery may refuse a damaged log with.
pub const LOG_ERRORS: [ErrorKind; 2] = [ErrorKind::LogFileCorrupt, ErrorKind::LogReadVerifyFailure];

/// The errors an injected fault of `kind`, fired during a call, may surface as. A misdirected
/// or lost write surfaces as none: what it leaves is found when it is read, as log damage
/// (by recovery) or page damage (the run marks the database damaged).
pub fn surfaces_as(kind: IoFault) -> &'static [ErrorKind] {
    match kind {
        IoFault::ReadError => &[
            ErrorKind::DiskIO,
            ErrorKind::DatabaseUnavailable,
            ErrorKind::InstanceUnavailable,
        ],
        IoFault::WriteError | IoFault::SyncError | IoFault::Fsyncgate | IoFault::DirSyncError => &[
            ErrorKind::DiskIO,
            ErrorKind::LogWriteFail,
            ErrorKind::DatabaseUnavailable,
            ErrorKind::InstanceUnavailable,
        ],
        IoFault::DiskFull => &[
            ErrorKind::DiskFull,
            ErrorKind::LogDiskFull,
            ErrorKind::LogWriteFail,
            ErrorKind::DatabaseUnavailable,
            ErrorKind::InstanceUnavailable,
        ],
        IoFault::Misdirect | IoFault::LostWrite => &[],
    }
}
