//! Coverage marks: the interesting things a run reached. A campaign counts how often each
//! fired and fails if one it expects never did — a simulator that silently stops reaching
//! torn tails or failed fsyncs would otherwise keep passing while testing nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An interesting event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mark {
    /// A durable commit returned Ok.
    DurableCommit,
    /// A lazy commit returned Ok.
    LazyCommit,
    /// A write met `JET_errWriteConflict`, as the model said it would.
    WriteConflict,
    /// A write met `JET_errVersionStoreOutOfMemory`.
    VersionStoreFull,
    /// A value went out of line.
    LargeValue,
    /// The checkpoint moved forward.
    CheckpointAdvanced,
    /// The log rolled to a new generation.
    LogRolled,
    /// Circular logging deleted a generation.
    LogDeleted,
    /// The machine lost power.
    PowerLoss,
    /// Only the process died; the page cache survived.
    ProcessKill,
    /// A crash fired at an armed I/O point.
    CrashAtIoPoint,
    /// A crash fired during a log roll (renaming or creating a generation).
    CrashDuringRoll,
    /// A crash fired during recovery.
    CrashDuringRecovery,
    /// Recovery found a torn tail and recovered.
    TornTailRecovered,
    /// Recovery undid a transaction cut off by the crash.
    TransactionUndone,
    /// Recovery finished an interrupted roll.
    RollFinished,
    /// A crash lost acknowledged lazy commits (allowed).
    LazyCommitsLost,
    /// An ambiguous commit was found present after recovery.
    AmbiguousPresent,
    /// An ambiguous commit was found absent after recovery.
    AmbiguousAbsent,
    /// An fsync failed and the engine stopped, then recovered.
    FsyncFailureSurvived,
    /// A write failed with EIO and the engine survived it.
    WriteErrorSurvived,
    /// A read failed with EIO and the engine reported it.
    ReadErrorReported,
    /// A write failed with ENOSPC and the engine survived it.
    DiskFullSurvived,
    /// A write was misdirected.
    MisdirectedWrite,
    /// Latent corruption was planted.
    CorruptionPlanted,
    /// Corruption was detected and reported with its documented error.
    CorruptionDetected,
    /// Recovery refused a damaged log or database with its documented error.
    RecoveryRefusedCorruption,
    /// A damaged header or checkpoint copy was survived through the other copy.
    RedundantCopySurvived,
    /// The final fault-free phase recovered and agreed with the model.
    FinalPhaseAgreed,
    /// A full backup succeeded.
    FullBackup,
    /// An atomic full backup succeeded.
    AtomicBackup,
    /// An incremental backup succeeded.
    IncrementalBackup,
    /// A backup call was refused with the error the contract names.
    BackupRefusedByContract,
    /// A backup failed and left nothing behind.
    BackupFailedCleanly,
    /// A backup stopped by `Instance::stop_backup` failed with -801 and left nothing behind.
    BackupStopped,
    /// The machine crashed while a backup ran.
    CrashDuringBackup,
    /// A backup found corruption in the live database or logs.
    BackupFoundCorruption,
    /// A backup directory restored to exactly its snapshot.
    BackupRestored,
    /// Restore refused a backup with planted damage.
    BackupCorruptionRefused,
    /// A restore crashed part-way: the place it left was refused by init, and a restore into
    /// it again gave the backup's snapshot.
    RestoreCrashRetried,
    /// A truncation deleted log generations.
    LogsTruncated,
    /// Live data was damaged beyond repair, and the last backup restored.
    RestoredAfterDamage,
    /// Rot was planted in the live files while a backup ran.
    RotMetRunningBackup,
    /// A bulk step (hundreds of puts in one transaction, or a range delete) committed.
    BulkCommitted,
    /// A run's database grew past a thousand pages (a tree of three or more levels, with a
    /// cache far smaller than the database).
    LargeDatabase,
    /// Log files that are not what they claim were planted (foreign, renumbered, swapped,
    /// missing, duplicated, resigned, a stale or foreign manifest).
    LogSetTampered,
    /// A restore or recovery refused such a log set with its documented error.
    LogSetTamperRefused,
    /// A restore or recovery met such a log set, harmlessly, and restored exactly.
    LogSetTamperHarmless,
    /// The machine crashed while a truncation removed log generations.
    CrashDuringTruncation,
    /// A write to the database file was lost or misdirected.
    DatabaseWriteLost,
    /// A page such a write left behind was refused (`JET_errReadLostFlushVerifyFailure`).
    LostFlushRefused,
    /// A restore of a chosen backup of a chain (`RestoreOptions::backups`) gave its snapshot.
    RestoredToChosenBackup,
    /// A restore to a commit time gave the model's state at that time.
    RestoredToTime,
    /// A restore to a log position gave the model's state after the last commit at or before it.
    RestoredToLgpos,
    /// A restore to a point outside what its set covers was refused (-553, -554) leaving nothing.
    RestorePointRefused,
    /// A roll forward through the live logs gave the state after their last commit.
    RolledForward,
    /// A roll forward stopped at a time among the live logs' commits.
    RolledForwardToTime,
    /// A roll forward was refused because the live logs no longer hold every generation after the set (truncated, or deleted by circular logging): -565.
    RollForwardLogsGone,
    /// A roll forward over live logs with a generation removed was refused (-565).
    RollForwardGapRefused,
    /// A roll forward over a live generation with a durable segment damaged was refused (-574).
    RollForwardCorruptRefused,
    /// A roll forward over an archived live generation cut short was refused (-571).
    RollForwardTornRefused,
    /// A roll forward over another log set's file among the live logs was refused (-610).
    RollForwardForeignRefused,
    /// A roll forward over a live generation that does not follow the one before it (its previous-generation time changed, or its name not its generation) was refused (-611).
    RollForwardNotContiguousRefused,
    /// An external backup began, full.
    ExternalFullBegun,
    /// An external backup began, incremental.
    ExternalIncrementalBegun,
    /// An external backup's read left its file part read, for a later step.
    ExternalSlowRead,
    /// An external backup opened a log while a lower listed one was still unread.
    ExternalLogsOutOfOrder,
    /// An external backup closed a log half read and read it again whole later.
    ExternalLogReread,
    /// A call out of an external backup's order was refused as documented, changing nothing.
    ExternalMisstepRefused,
    /// An external backup was given up (ended as an abort, or early) and left nothing.
    ExternalAborted,
    /// An external backup stopped by `stop_backup` failed with `JET_errBackupAbortByServer`.
    ExternalStopped,
    /// An external backup whose instance was terminated failed at its next call.
    ExternalEndedByRestart,
    /// The machine crashed while an external backup ran; it recorded nothing it should not.
    ExternalCrashed,
    /// A failed external backup recorded nothing and deleted no log.
    ExternalFailedCleanly,
    /// An external backup failed on damage in the pages or logs it read.
    ExternalFoundCorruption,
    /// An external backup ended normally, and its copy restored to the model at its begin.
    ExternalRestored,
    /// An incremental external backup, added to its set, restored to the model at its begin.
    ExternalIncrementalRestored,
    /// An external backup truncated the logs: recorded in the header, as the truncation oracle allows.
    ExternalTruncated,
    /// A streamed backup (`Instance::backup_to_stream`) wrote its stream whole.
    StreamWritten,
    /// A stream restored (`Instance::restore_stream`) to exactly the model at its begin.
    StreamRestored,
    /// A stream restored to a time gave the model's state at that time.
    StreamRestoredToTime,
    /// A damaged copy of a stream (a byte flipped, cut short, a byte appended) was refused
    /// with a documented error, leaving nothing.
    StreamDamageRefused,
    /// A streamed backup failed, changed nothing, and its part-written bytes were refused.
    StreamFailedCleanly,
}

impl Mark {
    /// Every mark.
    pub const ALL: [Mark; 83] = [
        Mark::DurableCommit,
        Mark::LazyCommit,
        Mark::WriteConflict,
        Mark::VersionStoreFull,
        Mark::LargeValue,
        Mark::CheckpointAdvanced,
        Mark::LogRolled,
        Mark::LogDeleted,
        Mark::PowerLoss,
        Mark::ProcessKill,
        Mark::CrashAtIoPoint,
        Mark::CrashDuringRoll,
        Mark::CrashDuringRecovery,
        Mark::TornTailRecovered,
        Mark::TransactionUndone,
        Mark::RollFinished,
        Mark::LazyCommitsLost,
        Mark::AmbiguousPresent,
        Mark::AmbiguousAbsent,
        Mark::FsyncFailureSurvived,
        Mark::WriteErrorSurvived,
        Mark::ReadErrorReported,
        Mark::DiskFullSurvived,
        Mark::MisdirectedWrite,
        Mark::CorruptionPlanted,
        Mark::CorruptionDetected,
        Mark::RecoveryRefusedCorruption,
        Mark::RedundantCopySurvived,
        Mark::FinalPhaseAgreed,
        Mark::FullBackup,
        Mark::AtomicBackup,
        Mark::IncrementalBackup,
        Mark::BackupRefusedByContract,
        Mark::BackupFailedCleanly,
        Mark::BackupStopped,
        Mark::CrashDuringBackup,
        Mark::BackupFoundCorruption,
        Mark::BackupRestored,
        Mark::BackupCorruptionRefused,
        Mark::RestoreCrashRetried,
        Mark::LogsTruncated,
        Mark::RestoredAfterDamage,
        Mark::RotMetRunningBackup,
        Mark::BulkCommitted,
        Mark::LargeDatabase,
        Mark::LogSetTampered,
        Mark::LogSetTamperRefused,
        Mark::LogSetTamperHarmless,
        Mark::CrashDuringTruncation,
        Mark::DatabaseWriteLost,
        Mark::LostFlushRefused,
        Mark::RestoredToChosenBackup,
        Mark::RestoredToTime,
        Mark::RestoredToLgpos,
        Mark::RestorePointRefused,
        Mark::RolledForward,
        Mark::RolledForwardToTime,
        Mark::RollForwardLogsGone,
        Mark::RollForwardGapRefused,
        Mark::RollForwardCorruptRefused,
        Mark::RollForwardTornRefused,
        Mark::RollForwardForeignRefused,
        Mark::RollForwardNotContiguousRefused,
        Mark::ExternalFullBegun,
        Mark::ExternalIncrementalBegun,
        Mark::ExternalSlowRead,
        Mark::ExternalLogsOutOfOrder,
        Mark::ExternalLogReread,
        Mark::ExternalMisstepRefused,
        Mark::ExternalAborted,
        Mark::ExternalStopped,
        Mark::ExternalEndedByRestart,
        Mark::ExternalCrashed,
        Mark::ExternalFailedCleanly,
        Mark::ExternalFoundCorruption,
        Mark::ExternalRestored,
        Mark::ExternalIncrementalRestored,
        Mark::ExternalTruncated,
        Mark::StreamWritten,
        Mark::StreamRestored,
        Mark::StreamRestoredToTime,
        Mark::StreamDamageRefused,
        Mark::StreamFailedCleanly,
    ];

    /// Whether a default-profile campaign of at least [`EXPECT_FROM_SEEDS`] seeds must reach
    /// this mark at least once. Only a full version store is too rare to demand.
    pub fn expected(self) -> bool {
        self != Mark::VersionStoreFull
    }

    /// Its name in reports.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{self:?}"))
    }
}

/// Campaigns of at least this many seeds check the expected marks ([`Mark::expected`]).
pub const EXPECT_FROM_SEEDS: u64 = 1000;

/// How often each mark fired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage(pub BTreeMap<Mark, u64>);

impl Coverage {
    /// Counts `mark` once.
    pub fn hit(&mut self, mark: Mark) {
        *self.0.entry(mark).or_default() += 1;
    }

    /// How often `mark` fired.
    pub fn count(&self, mark: Mark) -> u64 {
        self.0.get(&mark).copied().unwrap_or(0)
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: &Coverage) {
        for (mark, n) in &other.0 {
            *self.0.entry(*mark).or_default() += n;
        }
    }

    /// The expected marks that never fired.
    pub fn missing(&self) -> Vec<Mark> {
        Mark::ALL
            .into_iter()
            .filter(|m| m.expected() && self.count(*m) == 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_have_kebab_names_and_missing_ones_are_named() {
        assert_eq!(Mark::TornTailRecovered.name(), "torn-tail-recovered");
        let mut c = Coverage::default();
        let expected = Mark::ALL.into_iter().filter(|m| m.expected()).count();
        assert!(expected >= 40);
        assert_eq!(c.missing().len(), expected);
        for m in Mark::ALL.into_iter().filter(|m| m.expected()) {
            c.hit(m);
        }
        assert!(c.missing().is_empty());
    }
}
