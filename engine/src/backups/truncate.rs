//! Log truncation (ESE's JetTruncateLog, and JetBackup with no path): the archived log
//! generations no longer needed — by crash recovery, nor by the next incremental backup — are
//! chosen under the instance lock and deleted after it.

use std::path::PathBuf;

use crate::base::error::{Result, io_err};
use crate::base::planted::{self, PlantedBug};
use crate::txn::instance::{Core, Instance};

/// The log generations a truncation deletes, chosen under the instance lock
/// ([`Core::truncate_logs`]) and removed one at a time, the lock taken for each, each removal
/// made durable before the next ([`Truncation::carry_out`]). Removed at once, a gibibyte of
/// logs held every commit up for most of a second: under the lock, the unlinks; after it, the
/// file system freeing (on a disk mounted with `discard`, discarding) them all in one journal
/// commit, which the commits' writes queued behind.
#[derive(Debug, Default)]
pub(crate) struct Truncation {
    /// The init of the instance whose logs these are: another init's are not touched.
    epoch: u64,
    dir: PathBuf,
    logs: Vec<(u32, PathBuf)>,
}

impl Truncation {
    /// Removes the generations, oldest first, each under the instance lock and only while no
    /// backup that began meanwhile holds it, each removal made durable (the directory fsynced)
    /// before the next. Returns the range deleted.
    pub(crate) fn carry_out(self, instance: &Instance) -> Result<Option<(u32, u32)>> {
        let mut deleted: Option<(u32, u32)> = None;
        for (generation, path) in &self.logs {
            let mut removed = Ok(false);
            // (No instance, or another init's: these logs are no longer ours to remove.)
            let mut gone = true;
            instance.with_core_quietly(|core| {
                if core.epoch != self.epoch {
                    return;
                }
                gone = false;
                // (A backup that began since holds what it copies; below its hold, what a
                // truncation chose stays below the checkpoint.)
                if core
                    .backup
                    .is_some_and(|hold| *generation >= hold.keep_from)
                {
                    return;
                }
                removed = match core.env.vfs.remove(path) {
                    Ok(()) => Ok(true),
                    // (A truncation that ran meanwhile took it.)
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(err) => Err(io_err("remove", path)(err)),
                };
            });
            if gone {
                break;
            }
            if !removed? {
                continue;
            }
            let vfs = &instance.shared.env.vfs;
            vfs.sync_dir(&self.dir)
                .map_err(io_err("fsync", &self.dir))?;
            deleted = Some(match deleted {
                Some((low, _)) => (low, *generation),
                None => (*generation, *generation),
            });
        }
        Ok(deleted)
    }
}

impl Core {
    /// Truncates the logs no longer needed: every archived generation below the checkpoint
    /// (both slots) that a backup recorded in the header holds — never one after the last
    /// backup's highest generation, which the next incremental backup copies. With no backup
    /// recorded nothing is deleted: a log no backup holds may be needed to restore (use
    /// circular logging to keep no logs at all). It takes no checkpoint of its own (that
    /// would flush every changed page inside the backup call); what the checkpoint has not
    /// passed yet goes at a later truncation. With circular logging nothing is done (the
    /// checkpoints delete what they may). Returns what to delete, for
    /// [`Truncation::carry_out`] once the lock is released.
    pub(crate) fn truncate_logs(&mut self) -> Result<Truncation> {
        if self.params.circular_logging {
            return Ok(Truncation::default());
        }
        let now = self.env.clock.now_millis();
        self.change(|core| {
            let log = core.log.as_mut().expect("backup needs logging");
            if log.checkpoint.oldest().is_none() {
                // Until this process writes both slots, the other may hold an older position.
                let current = *log.checkpoint.current();
                log.checkpoint
                    .write(current.position, current.last_commit, now)?;
            }
            Ok(())
        })?;
        let log = self.log.as_ref().expect("backup needs logging");
        let oldest = log.checkpoint.oldest().expect("both slots written");
        let header = self.db.header();
        let backup_high = [header.backup_full, header.backup_incremental]
            .iter()
            .filter(|b| b.is_set())
            .map(|b| b.gen_high)
            .max();
        let Some(high) = backup_high else {
            return Ok(Truncation::default());
        };
        let mut keep_from = oldest.generation.min(high.saturating_add(1));
        if planted::active(&self.env, PlantedBug::TruncatePastCheckpoint) {
            keep_from = high.saturating_add(1);
        }
        if let Some(hold) = self.backup {
            keep_from = keep_from.min(hold.keep_from);
        }
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        let mut truncation = Truncation {
            epoch: self.epoch,
            dir: log.layout.log_dir.clone(),
            logs: Vec::new(),
        };
        for generation in log.layout.archived_generations(&*vfs)? {
            if generation >= keep_from {
                break;
            }
            // Never a generation crash recovery needs, nor one the next incremental backup
            // copies.
            assert!(generation < log.checkpoint.current().position.generation);
            assert!(generation <= high);
            truncation
                .logs
                .push((generation, log.layout.archived(generation)));
        }
        Ok(truncation)
    }
}
