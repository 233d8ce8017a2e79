//! Every oracle fires on a deliberately broken engine within a bounded number of seeds.
//!
//! Each sabotage builds one bug in — most in the disk under the engine (an fsync that does
//! nothing, a lost write), the rest in the session layer the simulator drives it through —
//! and the default swarm campaign must catch it, with the oracle that bug breaks.

use std::collections::BTreeSet;

use jetdb::PlantedBug;
use jetsim::campaign::plan_for;
use jetsim::{Oracle, RunOptions, Sabotage, Zone, run};

/// Runs seeds 0.. under `sabotage` until `want` has fired (or `bound` seeds have run);
/// returns the seed it first fired at and every oracle seen.
fn hunt(sabotage: Sabotage, want: Oracle, bound: u64) -> (Option<u64>, BTreeSet<Oracle>) {
    let mut seen = BTreeSet::new();
    for seed in 0..bound {
        let plan = plan_for(seed, Some(200), Some(sabotage));
        if let Some(v) = run(&plan, RunOptions::default()).violation {
            seen.insert(v.oracle);
            if v.oracle == want {
                return (Some(seed), seen);
            }
        }
    }
    (None, seen)
}

/// Runs seeds 0.. under `sabotage` until any of `oracles` fires; fails if none has within
/// `bound` seeds, or if another oracle fired first (the bug must be caught for what it is).
fn assert_caught_by(sabotage: Sabotage, oracles: &[Oracle], bound: u64) {
    for seed in 0..bound {
        let plan = plan_for(seed, Some(200), Some(sabotage));
        if let Some(v) = run(&plan, RunOptions::default()).violation {
            assert!(
                oracles.contains(&v.oracle),
                "{sabotage}: seed {seed} fired {v}, not one of {oracles:?}"
            );
            return;
        }
    }
    panic!("{sabotage}: none of {oracles:?} fired within {bound} seeds");
}

fn assert_fires(sabotage: Sabotage, want: Oracle, bound: u64) {
    let (seed, seen) = hunt(sabotage, want, bound);
    assert!(
        seed.is_some(),
        "{sabotage}: oracle {want} did not fire within {bound} seeds (seen: {seen:?})"
    );
}

/// As [`assert_fires`], for one check of an oracle: the violation must say `words`.
fn assert_fires_saying(sabotage: Sabotage, want: Oracle, words: &str, bound: u64) {
    let mut seen = Vec::new();
    for seed in 0..bound {
        let plan = plan_for(seed, Some(200), Some(sabotage));
        if let Some(v) = run(&plan, RunOptions::default()).violation {
            if v.oracle == want && v.detail.contains(words) {
                return;
            }
            seen.push(format!("seed {seed}: {v}"));
        }
    }
    panic!("{sabotage}: no violation of {want} saying {words:?} within {bound} seeds: {seen:#?}");
}

#[test]
fn a_log_fsync_that_does_nothing_loses_durable_commits() {
    // (Most seeds see it first as a refused recovery, below; the prefix oracle fires too.)
    assert_fires(Sabotage::SkipSync(Zone::Log), Oracle::CrashPrefix, 120);
    assert_fires(Sabotage::SkipSync(Zone::Log), Oracle::Recovery, 10);
}

#[test]
fn a_database_fsync_that_does_nothing_is_caught_down_to_the_integrity_check() {
    // Most seeds see it first as a refused recovery; each oracle below fires too.
    assert_caught_by(
        Sabotage::SkipSync(Zone::Database),
        &[
            Oracle::Recovery,
            Oracle::CrashPrefix,
            Oracle::WrongData,
            Oracle::UnexplainedError,
        ],
        20,
    );
    assert_fires(Sabotage::SkipSync(Zone::Database), Oracle::CrashPrefix, 300);
}

#[test]
fn a_checkpoint_fsync_that_does_nothing_fails_recovery() {
    assert_fires(Sabotage::SkipSync(Zone::Checkpoint), Oracle::Recovery, 200);
}

#[test]
fn a_directory_fsync_that_does_nothing_fails_recovery() {
    assert_fires(Sabotage::SkipDirSync, Oracle::Recovery, 200);
}

#[test]
fn lost_database_writes_are_refused_by_the_flush_map() {
    // A disk that drops a quarter of the database's writes, with nothing in the fault atlas
    // to say so: the engine names the stale pages it meets (the flush map), as an error the
    // run cannot explain, at a read or at recovery.
    assert_fires_saying(
        Sabotage::LostWrite(Zone::Database),
        Oracle::UnexplainedError,
        "JET_errReadLostFlushVerifyFailure",
        50,
    );
    assert_fires_saying(
        Sabotage::LostWrite(Zone::Database),
        Oracle::Recovery,
        "JET_errReadLostFlushVerifyFailure",
        50,
    );
}

#[test]
fn a_read_that_skips_the_flush_map_returns_lost_writes_as_data() {
    // The default swarm's own lost and misdirected database writes (one a run at most), met
    // by an engine that no longer checks pages against the flush map: a stale page's older
    // records come back after a restart as lost commits.
    assert_fires(
        Sabotage::Engine(PlantedBug::FlushMapUnchecked),
        Oracle::CrashPrefix,
        600,
    );
}

#[test]
fn a_read_that_skips_the_page_checksum_returns_damage_as_data() {
    assert_fires(
        Sabotage::Engine(PlantedBug::PageChecksumUnchecked),
        Oracle::CrashPrefix,
        200,
    );
}

#[test]
fn lost_log_writes_are_caught() {
    assert_fires(Sabotage::LostWrite(Zone::Log), Oracle::CrashPrefix, 200);
}

#[test]
fn a_write_conflict_let_through_is_caught() {
    assert_fires(Sabotage::AcceptConflicts, Oracle::WriteConflict, 50);
}

#[test]
fn a_snapshot_taken_late_is_caught() {
    assert_fires(Sabotage::LateSnapshot, Oracle::SnapshotRead, 100);
}

#[test]
fn a_call_out_of_order_accepted_is_caught() {
    assert_fires(Sabotage::AcceptNestedBegin, Oracle::Contract, 50);
}

#[test]
fn an_error_no_fault_explains_is_caught() {
    assert_fires(Sabotage::SpuriousReadError, Oracle::UnexplainedError, 100);
}

#[test]
fn a_backup_reported_before_its_files_are_durable_is_caught() {
    // A power loss after the backup's success leaves it unrestorable or different.
    assert_fires(Sabotage::SkipSync(Zone::Backup), Oracle::Backup, 20);
}

#[test]
fn a_backup_copying_pages_changed_after_its_begin_is_caught() {
    // Restored, it holds commits made after the backup point.
    assert_fires(Sabotage::StaleBackupPages, Oracle::Backup, 60);
}

#[test]
fn a_backup_copying_one_log_too_few_is_caught() {
    assert_fires(Sabotage::DropLastBackupLog, Oracle::Backup, 20);
}

#[test]
fn a_backup_copying_a_damaged_page_unverified_is_caught() {
    // Restore verifies every page, and refuses a backup that reported success.
    assert_fires(Sabotage::UnverifiedBackupPages, Oracle::Backup, 20);
}

#[test]
fn a_truncation_deleting_one_log_too_many_is_caught() {
    // (The report oracle sees it first in many seeds: what went is not what the engine said
    // it deleted.)
    assert_fires(Sabotage::OverTruncate, Oracle::Truncation, 100);
    assert_fires(Sabotage::OverTruncate, Oracle::Report, 40);
}

#[test]
fn a_panic_inside_the_engine_is_a_violation_not_a_crash_of_the_simulator() {
    assert_fires(Sabotage::PanicInSync, Oracle::Panic, 20);
}

// Bugs planted in the engine itself (`jetdb::planted`, feature `planted-bugs`): one per class
// of mistake the harness-power issue names, each caught by the default swarm within 200
// seeds (the restore's, rarer, within 400).

#[test]
fn pages_written_back_before_their_log_is_durable_are_caught() {
    // The WAL rule under cache pressure: lazy commits, evictions, a power loss. Recovery finds
    // a page torn with no log to mend it, or newer than its log; the pager's own assertion
    // (the durable log only grows) fires too.
    assert_caught_by(
        Sabotage::Engine(PlantedBug::WriteBackBeforeLog),
        &[
            Oracle::UnexplainedError,
            Oracle::CrashPrefix,
            Oracle::Panic,
            Oracle::Integrity,
            Oracle::Recovery,
        ],
        200,
    );
}

#[test]
fn a_checkpoint_advanced_past_unwritten_pages_is_caught() {
    assert_caught_by(
        Sabotage::Engine(PlantedBug::CheckpointBeforeWriteBack),
        &[
            Oracle::CrashPrefix,
            Oracle::WrongData,
            Oracle::Backup,
            Oracle::Integrity,
        ],
        50,
    );
}

#[test]
fn a_backup_copying_a_rotten_source_page_unverified_is_caught() {
    // Rot strikes the live database while the backup runs; the backup must refuse it, and
    // the restore of a set it reported good refuses it instead: the backup oracle fires.
    assert_fires(
        Sabotage::Engine(PlantedBug::BackupSkipsPageCheck),
        Oracle::Backup,
        200,
    );
}

#[test]
fn a_backup_copying_a_rotten_or_torn_log_unverified_is_caught() {
    assert_fires(
        Sabotage::Engine(PlantedBug::BackupSkipsLogCheck),
        Oracle::Backup,
        400,
    );
}

#[test]
fn recovery_taking_another_sets_log_is_caught() {
    // A foreign or re-signed live generation gets past the signature check, and recovery
    // then refuses it under another name, or replays it.
    assert_caught_by(
        Sabotage::Engine(PlantedBug::RecoverySkipsSignatureCheck),
        &[Oracle::Recovery, Oracle::CrashPrefix, Oracle::WrongData],
        200,
    );
}

#[test]
fn restore_taking_another_sets_log_is_caught() {
    assert_fires(
        Sabotage::Engine(PlantedBug::RestoreSkipsSignatureCheck),
        Oracle::Backup,
        400,
    );
}

#[test]
fn recovery_starting_from_another_sets_checkpoint_is_caught() {
    // Another instance's checkpoint file put in place: recovery must refuse it (-532), not
    // start from its position.
    assert_caught_by(
        Sabotage::Engine(PlantedBug::RecoverySkipsCheckpointSignature),
        &[Oracle::Recovery, Oracle::CrashPrefix, Oracle::WrongData],
        100,
    );
}

#[test]
fn restore_taking_another_backups_database_copy_is_caught() {
    // Another backup's whole database copy in the set, of the same length: only the digest
    // tells (rarer: both copies must be the same size).
    assert_fires(
        Sabotage::Engine(PlantedBug::RestoreSkipsDigestCheck),
        Oracle::Backup,
        600,
    );
}

#[test]
fn a_truncation_past_the_checkpoint_is_caught() {
    // Its own assertion (never a generation the checkpoint needs) fires first.
    assert_caught_by(
        Sabotage::Engine(PlantedBug::TruncatePastCheckpoint),
        &[Oracle::Panic, Oracle::Truncation, Oracle::Recovery],
        200,
    );
}

#[test]
fn the_unsabotaged_engine_passes_the_same_seeds() {
    for seed in 0..40 {
        let plan = plan_for(seed, Some(200), None);
        let report = run(&plan, RunOptions::default());
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
    }
}

#[test]
fn a_backup_misreporting_its_progress_is_caught() {
    // The report oracle: each step's progress is predicted from the files it copied.
    assert_fires(
        Sabotage::Engine(PlantedBug::BackupProgressSkipsLogs),
        Oracle::Report,
        50,
    );
}

#[test]
fn restore_trusting_a_forged_manifest_is_caught() {
    // A forged manifest (a dozen ways to lie, one tamper in four) must be refused with its
    // documented error; without its shape checked, restore fails otherwise or restores it.
    assert_caught_by(
        Sabotage::Engine(PlantedBug::RestoreTrustsManifestShape),
        &[Oracle::Backup, Oracle::Panic],
        200,
    );
}

#[test]
fn recovery_keeping_a_checkpoint_file_with_unequal_slots_is_caught() {
    // After a dirty shutdown both slots must hold where recovery started.
    let (seed, seen) = hunt(
        Sabotage::Engine(PlantedBug::RecoveryReusesCheckpointFile),
        Oracle::Recovery,
        200,
    );
    assert!(
        seed.is_some(),
        "the mirrored-slots check did not fire (seen: {seen:?})"
    );
}

#[test]
fn a_stray_file_after_a_clean_shutdown_is_caught() {
    // The layout check: after a clean shutdown only the documented names are there.
    assert_fires(
        Sabotage::Engine(PlantedBug::CheckpointLeavesTemporaryFile),
        Oracle::Contract,
        50,
    );
}

#[test]
fn a_failed_backup_leaving_its_manifest_is_caught_when_a_directory_fsync_fails() {
    // Only a directory fsync failing after the manifest's rename reaches the put-back: the
    // dirsync-eio fault.
    assert_fires(
        Sabotage::Engine(PlantedBug::FailedBackupKeepsItsManifest),
        Oracle::Backup,
        600,
    );
}

#[test]
fn a_failed_backup_dropping_the_files_its_directory_may_name_is_caught() {
    // The put-back of the previous manifest failed too (dirsync-eio): the directory may name
    // either set, so both must stay and it must still restore.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::FailedBackupDropsKeptFiles),
        Oracle::Backup,
        "said it kept its files",
        1600,
    );
}

#[test]
fn a_failed_restore_leaving_its_files_is_caught() {
    // A restore refused (a tampered or damaged set) must leave its destination empty.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::RestoreLeavesItsFiles),
        Oracle::Backup,
        "that failed",
        200,
    );
}

#[test]
fn recovery_guessing_where_to_start_without_its_checkpoint_is_caught() {
    // The checkpoint file removed (a live tamper) once the logs no longer begin at generation
    // 1: recovery must refuse with JET_errCheckpointFileNotFound, not replay what it finds.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::RecoveryGuessesItsStart),
        Oracle::Recovery,
        "without the checkpoint file",
        600,
    );
}

#[test]
fn a_backup_leaving_the_debris_of_unfinished_ones_is_caught() {
    // The layout check: after a success the directory holds its manifest and its set only.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::BackupKeepsDebris),
        Oracle::Backup,
        "beside its set",
        200,
    );
}

#[test]
fn an_instance_serving_on_after_a_failed_database_write_is_caught() {
    // Every database write is a batch the instance writes (a checkpoint, cache pressure, a
    // commit larger than the cache); a failed one must latch the instance.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::DatabaseWriteFailureNotFatal),
        Oracle::Contract,
        "still takes work",
        400,
    );
}

#[test]
fn a_backup_record_left_for_the_next_checkpoint_is_caught() {
    // The header's record of a successful backup must survive a power loss at once: it is
    // what lets truncation delete the logs the backup holds.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::BackupRecordWaitsForCheckpoint),
        Oracle::Backup,
        "after a recovery the header records",
        50,
    );
}

#[test]
fn a_cache_left_past_its_size_is_caught() {
    // The memory oracle: between calls the cache holds at most its size, beside the changed
    // pages it may not evict yet.
    assert_fires(
        Sabotage::Engine(PlantedBug::CheckpointSkipsCacheBound),
        Oracle::Memory,
        200,
    );
}

#[test]
fn a_batch_written_into_place_without_the_doublewrite_file_is_caught() {
    // A power loss in the middle of its writes leaves pages torn or newer than the header:
    // recovery refuses the file, which a whole batch would never leave.
    assert_fires(
        Sabotage::Engine(PlantedBug::BatchSkipsDoublewrite),
        Oracle::Recovery,
        60,
    );
}

#[test]
fn a_batch_left_half_installed_is_caught() {
    assert_fires(
        Sabotage::Engine(PlantedBug::RecoveryIgnoresInterruptedBatch),
        Oracle::Recovery,
        60,
    );
}

#[test]
fn replay_keeping_a_keys_first_change_in_a_batch_is_caught() {
    // Replay sorts a batch by key and applies each key's last change: the first instead
    // brings back a value a later commit replaced.
    assert_fires(
        Sabotage::Engine(PlantedBug::ReplayKeepsFirstChange),
        Oracle::CrashPrefix,
        200,
    );
}

#[test]
fn a_stopped_backup_that_goes_on_is_caught() {
    // After `Instance::stop_backup` the running backup's next call must fail with -801.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::StopBackupIgnored),
        Oracle::Backup,
        "stopped by stop_backup",
        400,
    );
}

#[test]
fn a_restore_writing_no_marker_is_caught_by_a_restore_crash() {
    // Killed part-way, a restore without its marker leaves a place init takes for whole.
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::RestoreLeavesNoMarker),
        Oracle::Backup,
        "without its marker",
        600,
    );
}

#[test]
fn a_restore_refusing_its_own_debris_is_caught_by_a_restore_crash() {
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::RestoreRefusesItsDebris),
        Oracle::Backup,
        "a restore into the same place failed",
        200,
    );
}

/// The first seed below `bound` whose run under `sabotage` fires one of `oracles` first.
fn first_caught(sabotage: Sabotage, oracles: &[Oracle], bound: u64) -> u64 {
    (0..bound)
        .find(|&seed| {
            let plan = plan_for(seed, Some(200), Some(sabotage));
            run(&plan, RunOptions::default())
                .violation
                .is_some_and(|v| oracles.contains(&v.oracle))
        })
        .unwrap_or_else(|| panic!("{sabotage}: none of {oracles:?} fired within {bound} seeds"))
}

#[test]
fn a_restore_overshooting_its_point_is_caught() {
    // Stopped at a time or a log position, it lands on the first commit past it: the state
    // differs from the model's at the point (or, the commit past it changing nothing, it
    // reports landing on another commit than the one it restored). Most often a roll forward
    // stopping among the live logs' commits shows it; a restore within a set's logs needs
    // an incremental backup after the full one, for commits to lie between their points.
    let bug = Sabotage::Engine(PlantedBug::RestoreOvershootsPoint);
    first_caught(
        bug,
        &[Oracle::RollForward, Oracle::RestorePoint, Oracle::Report],
        120,
    );
    assert_fires(bug, Oracle::RestorePoint, 900);
}

#[test]
fn a_roll_forward_skipping_the_live_current_log_is_caught() {
    // Without the live edb.log, commits known durable are missing, or (the set's next
    // generation being the current one) nothing follows the set: refused for a gap.
    assert_fires(
        Sabotage::Engine(PlantedBug::RollForwardSkipsCurrentLog),
        Oracle::RollForward,
        40,
    );
}

#[test]
fn the_seeds_that_catch_a_restore_to_a_point_pass_without_the_bug() {
    // The oracles fire for the planted bug, not for something else in those runs.
    for bug in [
        PlantedBug::RestoreOvershootsPoint,
        PlantedBug::RollForwardSkipsCurrentLog,
    ] {
        let seed = first_caught(
            Sabotage::Engine(bug),
            &[Oracle::RollForward, Oracle::RestorePoint],
            120,
        );
        let report = run(&plan_for(seed, Some(200), None), RunOptions::default());
        assert!(
            report.violation.is_none(),
            "seed {seed} without {}: {:?}",
            bug.name(),
            report.violation
        );
    }
}

#[test]
fn an_external_backup_copying_rotten_pages_or_logs_unverified_is_caught() {
    // The external API reads through the same checks: a copy it handed out unverified does
    // not restore to the model at its begin (seeds 361, 450).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::BackupSkipsPageCheck),
        Oracle::ExternalBackup,
        "does not restore",
        700,
    );
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::BackupSkipsLogCheck),
        Oracle::ExternalBackup,
        "does not restore",
        700,
    );
}

#[test]
fn an_external_backup_going_on_after_stop_backup_is_caught() {
    // After `Instance::stop_backup` the external backup's next call must fail with -801
    // (seed 31).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::StopBackupIgnored),
        Oracle::ExternalBackup,
        "stop_backup",
        200,
    );
}

#[test]
fn the_external_apis_own_planted_bugs_are_caught() {
    // A `log_info` that rolls again lists a generation the reader did not expect to read
    // whole, and its JetBackup client records a later point (seed 0, 2).
    assert_fires(
        Sabotage::Engine(PlantedBug::ExternalLogInfoRollsAgain),
        Oracle::ExternalBackup,
        40,
    );
    // An abort recorded in the header as a success (seed 11).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::ExternalAbortRecords),
        Oracle::ExternalBackup,
        "changed the header's backup records",
        60,
    );
    // A page the fence saved handed out as it is now: the copy's digest is not the
    // manifest's (seed 52).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::ExternalReadSkipsSavedPage),
        Oracle::ExternalBackup,
        "does not restore",
        200,
    );
    // A truncation before every log was read answered Ok (seed 579: the misstep is rare).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::ExternalTruncatesUnread),
        Oracle::ExternalBackup,
        "answered Ok",
        800,
    );
}

#[test]
fn a_streamed_backup_that_does_not_restore_or_a_stream_restore_leaving_files_is_caught() {
    // A stream of rotten pages copied unverified is refused by its restore (seed 123).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::BackupSkipsPageCheck),
        Oracle::ExternalBackup,
        "a stream whose backup succeeded does not restore",
        250,
    );
    // A `log_info` that rolls again: the stream's manifest does not hold together (seed 2).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::ExternalLogInfoRollsAgain),
        Oracle::ExternalBackup,
        "a stream whose backup succeeded does not restore",
        40,
    );
    // A refused restore of a stream to a time leaves its files in the destination (seed 2).
    assert_fires_saying(
        Sabotage::Engine(PlantedBug::RestoreLeavesItsFiles),
        Oracle::ExternalBackup,
        "a restore of a backup stream that failed",
        40,
    );
}
