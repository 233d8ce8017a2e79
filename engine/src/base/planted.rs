//! Deliberate bugs, for showing that the simulator catches each class of mistake the storage
//! core could make (the mutation-testing counterpart of `jetsim`'s sabotages, which break the
//! disk under the engine from the outside). Each is one wrong line a tired engineer could
//! write: a skipped check, a step out of order.
//!
//! They can be switched on only with the `planted-bugs` feature, through
//! `Env::with_planted_bug`; without it the check at each site is a constant `false` and every
//! site compiles to the correct code. (Cargo unifies features across a workspace, so a
//! `cargo build --workspace` compiles the checks in, since `jetsim` asks for them; no bug is
//! planted unless an `Env` names one.) They are not hooks for
//! observing the engine: nothing reads them but the line each one breaks.

/// A deliberate bug, planted at one line of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// Under cache pressure, changed pages are written back without first flushing the log
    /// that describes them: the WAL rule broken (`Core::make_log_durable`, before every batch).
    WriteBackBeforeLog,
    /// A checkpoint advances past changed pages it never wrote (`Core::checkpoint`).
    CheckpointBeforeWriteBack,
    /// A backup copies database pages without verifying their checksums (`backup::check_page`).
    BackupSkipsPageCheck,
    /// A backup copies log generations without verifying them (`backup::LogCheck`).
    BackupSkipsLogCheck,
    /// Recovery takes a log whose header names another log set or database
    /// (`recovery::read_and_scan`).
    RecoverySkipsSignatureCheck,
    /// Restore takes a set's log generation whose header names another log set or database
    /// (`Restore::restore_log`).
    RestoreSkipsSignatureCheck,
    /// Truncation ignores the checkpoint: it deletes every archived generation a recorded
    /// backup holds (`Core::truncate_logs`).
    TruncatePastCheckpoint,
    /// Recovery starts from a checkpoint file of another log set (`recovery::run`).
    RecoverySkipsCheckpointSignature,
    /// Restore takes a database copy whose pages are whole but which is not its backup's
    /// (`Restore::restore_database`: the digest).
    RestoreSkipsDigestCheck,
    /// A backup's progress leaves out the log generations it copies: the bytes are copied,
    /// but not counted (`BackupJob::copy_log`).
    BackupProgressSkipsLogs,
    /// Restore reads the manifest without checking its shape: a set whose manifest lists no
    /// log, logs out of order, impossible generations or lengths (`Restore::run`).
    RestoreTrustsManifestShape,
    /// Recovery after a dirty shutdown keeps the checkpoint file in place instead of writing a
    /// fresh one with both slots at its start (`recovery::run`).
    RecoveryReusesCheckpointFile,
    /// Recovery's fresh checkpoint file is made by copying the temporary file it was written
    /// as, which is left beside it (`recovery::run`).
    CheckpointLeavesTemporaryFile,
    /// A backup that fails after its manifest was renamed into place (its directory's fsync
    /// failed) does not put the previous manifest back (`BackupJob::clean_up`).
    FailedBackupKeepsItsManifest,
    /// A failed backup that could not put the previous manifest back removes its new files
    /// anyway, though the directory may durably name them (`BackupJob::clean_up`).
    FailedBackupDropsKeptFiles,
    /// A restore that fails leaves the files it copied in its destination
    /// (`Restore::clean_up`).
    RestoreLeavesItsFiles,
    /// Without a checkpoint file, recovery replays from the lowest generation it finds
    /// instead of refusing when generation 1 is gone (`recovery::run`).
    RecoveryGuessesItsStart,
    /// A backup's begin leaves the set directories of backups that never finished
    /// (`backup::prepare_directory`).
    BackupKeepsDebris,
    /// A failed write or fsync of the database does not stop the instance: it goes on
    /// serving from pages whose state on disk is unknown (`Core::change`,
    /// `Instance::with_running_core`).
    DatabaseWriteFailureNotFatal,
    /// A successful backup's record in the database header is left for the next checkpoint
    /// to write, not written at once: a power loss before it forgets the backup
    /// (`BackupJob::finish`).
    BackupRecordWaitsForCheckpoint,
    /// A checkpoint's pages stay pinned once it is written: written back, never evicted, so
    /// the cache grows past its size (`Pager::advance_round` leaves them frozen).
    CheckpointSkipsCacheBound,
    /// A batch writes its pages into place without the doublewrite file: a page torn by a
    /// power loss, or a batch cut off half-way, leaves the tree with no whole state to replay
    /// onto (`Pager::write_batch`).
    BatchSkipsDoublewrite,
    /// Opening the database ignores the batch a crash interrupted: the file keeps half of it
    /// (`doublewrite::recover`).
    RecoveryIgnoresInterruptedBatch,
    /// A page read from the file is not checked against the flush map: a page a write lost,
    /// or left at another place, is returned as data (`Pager::load`).
    FlushMapUnchecked,
    /// A page read from the file is taken without checking its checksum (`Pager::load`).
    PageChecksumUnchecked,
    /// A backup ignores [`Instance::stop_backup`](crate::Instance::stop_backup): the stopped
    /// backup runs on and succeeds (`backup::stop_requested`).
    StopBackupIgnored,
    /// A backup moves its fence past the pages it is about to read before it reads them
    /// without the instance lock: a page a batch overwrites in between is copied as it is
    /// now, not as it was at the begin (`BackupJob::step_database`).
    BackupFenceMovedBeforeRead,
    /// A restore writes no marker of its unfinished state: a place it half filled before a
    /// crash is opened by init as if it were whole (`Restore::check_destination`).
    RestoreLeavesNoMarker,
    /// A restore into a place an unfinished restore left its debris in refuses it as taken
    /// (`JET_errDatabaseDuplicate`) instead of clearing it (`Restore::check_destination`).
    RestoreRefusesItsDebris,
    /// Replay applies each key's first change in a sorted batch instead of its last: a key
    /// changed twice between checkpoints comes back with its older value
    /// (`Replay::apply_sorted`).
    ReplayKeepsFirstChange,
    /// A restore stopping at a point lands on the first commit past it, not the last at or
    /// before it (`Restore::find_landing`).
    RestoreOvershootsPoint,
    /// A roll forward replays the live archived generations but not the live current log,
    /// `edb.log` (`Restore::live_logs`).
    RollForwardSkipsCurrentLog,
    /// An external backup's `log_info` starts a new generation and lists it too, as ESE's
    /// JetGetLogInfo does: the backup then holds the commits made since its begin
    /// (`ExternalBackup::log_info`).
    ExternalLogInfoRollsAgain,
    /// An external backup's `truncate_log` does not check that every listed log was read
    /// whole (`ExternalBackup::truncate_log`).
    ExternalTruncatesUnread,
    /// An aborted external backup is recorded in the database header as if it had succeeded
    /// (`ExternalBackup::end`).
    ExternalAbortRecords,
    /// An external backup's sequential read of the database hands out a page the fence saved
    /// as it is now, not as the fence kept it (`ExternalBackup::read_database`).
    ExternalReadSkipsSavedPage,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 36] = [
        PlantedBug::WriteBackBeforeLog,
        PlantedBug::CheckpointBeforeWriteBack,
        PlantedBug::BackupSkipsPageCheck,
        PlantedBug::BackupSkipsLogCheck,
        PlantedBug::RecoverySkipsSignatureCheck,
        PlantedBug::RestoreSkipsSignatureCheck,
        PlantedBug::TruncatePastCheckpoint,
        PlantedBug::RecoverySkipsCheckpointSignature,
        PlantedBug::RestoreSkipsDigestCheck,
        PlantedBug::BackupProgressSkipsLogs,
        PlantedBug::RestoreTrustsManifestShape,
        PlantedBug::RecoveryReusesCheckpointFile,
        PlantedBug::CheckpointLeavesTemporaryFile,
        PlantedBug::FailedBackupKeepsItsManifest,
        PlantedBug::FailedBackupDropsKeptFiles,
        PlantedBug::RestoreLeavesItsFiles,
        PlantedBug::RecoveryGuessesItsStart,
        PlantedBug::BackupKeepsDebris,
        PlantedBug::DatabaseWriteFailureNotFatal,
        PlantedBug::BackupRecordWaitsForCheckpoint,
        PlantedBug::CheckpointSkipsCacheBound,
        PlantedBug::BatchSkipsDoublewrite,
        PlantedBug::RecoveryIgnoresInterruptedBatch,
        PlantedBug::FlushMapUnchecked,
        PlantedBug::PageChecksumUnchecked,
        PlantedBug::StopBackupIgnored,
        PlantedBug::BackupFenceMovedBeforeRead,
        PlantedBug::RestoreLeavesNoMarker,
        PlantedBug::RestoreRefusesItsDebris,
        PlantedBug::ReplayKeepsFirstChange,
        PlantedBug::RestoreOvershootsPoint,
        PlantedBug::RollForwardSkipsCurrentLog,
        PlantedBug::ExternalLogInfoRollsAgain,
        PlantedBug::ExternalTruncatesUnread,
        PlantedBug::ExternalAbortRecords,
        PlantedBug::ExternalReadSkipsSavedPage,
    ];

    /// Its name on the command line: kebab case (`write-back-before-log`).
    pub fn name(self) -> String {
        let debug = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in debug.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// What knows the bug an engine runs with: its `Env`. A trait, so that this module, which `env`
/// builds on for [`PlantedBug`], need not name `Env` in turn.
#[cfg(feature = "planted-bugs")]
pub(crate) trait Host {
    /// The bug planted, if any.
    fn planted_bug(&self) -> Option<PlantedBug>;
}

/// Whether `bug` is planted in `env`'s engine.
#[cfg(feature = "planted-bugs")]
pub(crate) fn active(env: &impl Host, bug: PlantedBug) -> bool {
    env.planted_bug() == Some(bug)
}

/// Whether `bug` is planted: never, without the `planted-bugs` feature.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub(crate) fn active<E>(_env: &E, _bug: PlantedBug) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case() {
        assert_eq!(
            PlantedBug::WriteBackBeforeLog.name(),
            "write-back-before-log"
        );
        let names: std::collections::BTreeSet<String> =
            PlantedBug::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), PlantedBug::ALL.len());
    }
}
