//! Online backup (ESE's JetBackup): full, atomic and incremental backups into a directory,
//! and the truncation of logs no longer needed.
//!
//! **The backup point.** A backup begins, under the instance lock, by finishing the current
//! log generation (flush, end record, roll): every commit that returned before the begin is in
//! the generations up to the one just finished (`G`), every later one in `G + 1` and after.
//! A full backup copies the database file *as it stood at that moment* and the logs from the
//! checkpoint's generation to `G`: exactly what crash recovery at that moment would have
//! found. Restore replays them, so it lands exactly on the begin: no commit after it, none
//! before it lost.
//!
//! **Online.** Transactions go on while the backup copies, step by step. The file as it stood
//! at the begin is kept by a copy-before-write fence in the pager (`pager.rs`): before
//! the pager overwrites a page the backup has not copied yet, it saves the page for the
//! backup. Circular logging keeps every generation the backup still copies.
//!
//! **Verified.** Every database page copied passes its checksum (blank pages, not yet
//! written, are copied as they are): else `JET_errReadVerifyFailure`. Every log generation
//! copied is scanned whole as it is copied — header, every segment's checksum, generation,
//! index and log set, the records across them, the end record — else
//! `JET_errLogReadVerifyFailure`. It is read, checked and written a piece at a time (1 MiB,
//! [`log::LOG_PIECE`]), so a backup takes the same memory whatever the log file size; the
//! last piece is written only once the whole file has passed.
//!
//! **Durable before reported, and nothing left by a failure.** The files go into a new set
//! subdirectory (see [`crate::manifest`]); each is fsynced, then the directories, then the
//! manifest is written (temporary file, fsync, rename, directory fsync). Only then does the
//! backup exist. A failure before removes every file the backup wrote and leaves the previous
//! manifest — and so the previous backup — as it was; a crash before leaves debris that no
//! manifest names, which restore never reads and the next backup removes. After success, the
//! database header records the backup and the logs no longer needed are truncated; a failure
//! there is a warning (as in ESE: event 219), never a failed backup.
//!
//! **A resumable job.** [`Instance::begin_backup`] returns a [`BackupJob`]; each
//! [`BackupJob::step`] copies a bounded piece (at most 1 MiB of pages, or one log
//! generation), so a caller — the simulator — can interleave transactions between steps
//! deterministically. [`Instance::backup`] runs a job to the end.

use std::collections::BTreeSet;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::backups::external::{BackupFile, ExternalBackup, stop_requested};
pub use crate::backups::external::{BackupFlags, BackupSummary};
use crate::backups::manifest::{self, MANIFEST_NAME, Manifest};
use crate::backups::status::{Reporter, StatusFn, StatusKind};
use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail, io_err};
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{OpenMode, Vfs, VfsFile, parent_dir};
use crate::store::page::Pgno;
use crate::txn::event::{BackupKind, Event, EventLog, Operation};
use crate::txn::instance::{Core, Instance, no_file_on_path};
use crate::wal::log;

/// How much a step copies at most, and how much is written at once.
const CHUNK_BYTES: usize = 1024 * 1024;

/// How much of a copy is written before its write-back to the disk is started, without
/// waiting for it.
const WRITEBACK_BYTES: u64 = 1024 * 1024;

/// How much of a copy may be written and not yet durable: past it the copy is fsynced. Every
/// commit's fsync flushes the disk's write cache, with whatever the backup wrote before it: a
/// copy flushed in one fsync at its end (or 32 MiB at a time) left commits queued behind it
/// for tens to hundreds of milliseconds; 2 MiB at a time keeps a commit's p99 within 1.1–1.4×
/// its p99 with no backup (`bench foreground`), at about half the disk's copy speed.
const UNSYNCED_BYTES: u64 = 2 * WRITEBACK_BYTES;

/// The longest a rate-limited backup sleeps at once: a stop request is seen within it.
const PACE_SLICE_NANOS: u64 = 20_000_000;

/// How a backup shares the machine with the instance's traffic: options ESE's JetBackup does
/// not have, as RocksDB's `BackupEngineOptions` and pg_basebackup's `--max-rate` offer them.
///
/// ```
/// use std::num::NonZeroU64;
/// use jetdb::BackupOptions;
/// let limited = BackupOptions { max_rate: NonZeroU64::new(200 << 20) };
/// assert_eq!(BackupOptions::default().max_rate, None);
/// assert_eq!(limited.max_rate.map(NonZeroU64::get), Some(200 << 20));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupOptions {
    /// The most bytes a second the backup copies, database pages and log generations alike
    /// (each byte is read once and written once); `None`, the default, copies as fast as the
    /// disk allows. Measured from the backup's begin, with at most a second's worth of credit
    /// saved by a slower stretch.
    pub max_rate: Option<NonZeroU64>,
}

/// The database copy of a full backup in progress.
struct DbCopy {
    /// The database, open through the external backup.
    file: BackupFile,
    to: PathBuf,
    copy: Box<dyn VfsFile>,
    page_size: usize,
    /// The buffer pages are read into, reused from one step to the next.
    buf: Vec<u8>,
    writeback: Writeback,
    /// Bytes copied.
    copied: u64,
    done: bool,
}

/// A copy's write-back to the disk in bounded pieces as it grows, so that no large flush is
/// left for its end to compete with the instance's commits.
#[derive(Debug, Default)]
struct Writeback {
    /// The range written since the last write-back was started.
    low: u64,
    high: u64,
    /// Bytes written since the last write-back was started.
    pending: u64,
    /// Bytes written since the last fsync.
    unsynced: u64,
}

impl Writeback {
    /// Records `len` bytes written at `offset` of `file`: starts their write-back every
    /// [`WRITEBACK_BYTES`] and waits for it (an fsync) every [`UNSYNCED_BYTES`].
    fn wrote(&mut self, file: &dyn VfsFile, path: &Path, offset: u64, len: u64) -> Result<()> {
        let end = offset + len;
        if self.pending == 0 {
            (self.low, self.high) = (offset, end);
        } else {
            (self.low, self.high) = (self.low.min(offset), self.high.max(end));
        }
        self.pending += len;
        self.unsynced += len;
        if self.unsynced >= UNSYNCED_BYTES {
            file.sync().map_err(io_err("fsync", path))?;
            (self.pending, self.unsynced) = (0, 0);
        } else if self.pending >= WRITEBACK_BYTES {
            file.start_writeback(self.low, self.high - self.low)
                .map_err(io_err("write back", path))?;
            self.pending = 0;
        }
        Ok(())
    }
}

/// A backup's rate limit ([`BackupOptions::max_rate`]): after each piece copied, it sleeps
/// until the bytes copied so far are due.
#[derive(Debug)]
struct Pace {
    rate: Option<NonZeroU64>,
    /// When the current stretch began (the clock's monotonic nanoseconds), and the bytes
    /// copied since.
    since: u64,
    bytes: u64,
}

impl Pace {
    fn new(rate: Option<NonZeroU64>, now: u64) -> Pace {
        Pace {
            rate,
            since: now,
            bytes: 0,
        }
    }

    /// Counts `bytes` copied and waits until they are due; `stopped` is asked between sleeps.
    fn advance(&mut self, env: &Env, bytes: u64, stopped: impl Fn() -> Result<()>) -> Result<()> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let rate = u128::from(rate.get());
        self.bytes += bytes;
        loop {
            let now = env.clock.monotonic_nanos();
            let due = u128::from(self.since) + u128::from(self.bytes) * 1_000_000_000 / rate;
            let now_wide = u128::from(now);
            if due <= now_wide {
                // A slower stretch (a step waiting for the instance, a caller between steps)
                // saves at most a second's worth of credit.
                if now_wide - due > 1_000_000_000 {
                    (self.since, self.bytes) = (now.saturating_sub(1_000_000_000), 0);
                }
                return Ok(());
            }
            stopped()?;
            let wait = u64::try_from(due - now_wide).unwrap_or(u64::MAX);
            env.clock.sleep(wait.min(PACE_SLICE_NANOS));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// A backup in progress: [`BackupJob::step`] until it returns `false`, then
/// [`BackupJob::finish`]. Dropping an unfinished job aborts it (as a failure).
///
/// Only one backup of an instance runs at a time (`JET_errBackupInProgress`). Its steps take
/// the instance lock for what needs it (the fence, reading up to 1 MiB of pages, and at the
/// finish the checkpoint that records the backup); transactions go on between the steps.
pub struct BackupJob<'s> {
    /// The backup, read through the external backup API: this job is its client, and keeps
    /// what is a backup directory's (the files, the manifest, the clean-up), the status
    /// callback and the pacing.
    ext: ExternalBackup,
    env: Env,
    events: EventLog,
    kind: BackupKind,
    dir: Option<PathBuf>,
    /// The set directory the backup writes into.
    set_dir: PathBuf,
    /// Whether this backup created `set_dir` (a full backup does).
    made_set_dir: bool,
    /// The manifest the directory had when the backup began.
    previous: Option<Manifest>,
    /// The set number a full backup takes.
    next_set: u32,
    db: Option<DbCopy>,
    /// Generations still to copy, ascending, and where they are read.
    logs_left: Vec<PathBuf>,
    /// Files this backup created in the destination: removed if it fails.
    created: Vec<PathBuf>,
    /// Whether the manifest may have been replaced (the commit point was attempted).
    manifest_touched: bool,
    progress: Reporter<'s>,
    /// The most bytes of database pages one step copies.
    step_bytes: usize,
    /// The rate limit.
    pace: Pace,
    state: JobState,
    warnings: Vec<String>,
}

impl std::fmt::Debug for BackupJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupJob")
            .field("kind", &self.kind)
            .field("backup", &self.ext)
            .field("dir", &self.dir)
            .field("done", &self.progress.done)
            .field("total", &self.progress.total)
            .finish()
    }
}

impl Instance {
    /// Backs the instance up (ESE's JetBackup) and returns when the backup is complete and
    /// durable, or has failed leaving nothing behind.
    ///
    /// - `path` is the backup directory; `None` copies nothing and only truncates the logs no
    ///   longer needed (by crash recovery, nor by the next incremental backup).
    /// - `flags`: [`BackupFlags::INCREMENTAL`], [`BackupFlags::ATOMIC`], or neither (a full
    ///   backup into a directory holding no finished backup).
    /// - `status` is called at Begin, at least every 4 MiB of Progress, and at Complete or
    ///   Fail; an error it returns stops the backup with that error.
    ///
    /// The backup holds exactly the transactions committed before it began. Errors, besides
    /// the I/O ones (`JET_errDiskIO`, `JET_errDiskFull`, and `JET_errFileAccessDenied` for a
    /// destination the OS refuses: read-only, or not permitted) and verification failures
    /// (`JET_errReadVerifyFailure`, `JET_errLogReadVerifyFailure`): `JET_errBackupInProgress`,
    /// `JET_errBackupNotAllowedYet` (during init), `JET_errNotInitialized`,
    /// `JET_errTermInProgress`, `JET_errRestoreInProgress`, `JET_errLoggingDisabled`,
    /// `JET_errLogWriteFail`, `JET_errInstanceUnavailable`,
    /// `JET_errClientRequestToStopJetService`, `JET_errInvalidGrbit`,
    /// `JET_errInvalidParameter` (flags with no path, or a path that is one of the instance's
    /// own directories), `JET_errInvalidPath` (the directory does not exist and
    /// `create_path_if_not_exist` is off, or it is a file, or its path runs through a file),
    /// `JET_errInvalidBackup` (incremental with circular logging, or into a directory holding
    /// another database's backup), `JET_errMissingFullBackup`,
    /// `JET_errBackupDirectoryNotEmpty` (a full backup, not atomic, into a directory holding a
    /// backup), `JET_errMissingFileToBackup`. `JET_errSessionSharingViolation` cannot happen:
    /// Rust's ownership rules out sharing a session between threads.
    pub fn backup(
        &self,
        path: Option<&Path>,
        flags: BackupFlags,
        status: Option<StatusFn<'_>>,
    ) -> Result<BackupSummary> {
        self.backup_with(path, flags, &BackupOptions::default(), status)
    }

    /// [`Instance::backup`] with [`BackupOptions`]: a rate limit.
    pub fn backup_with(
        &self,
        path: Option<&Path>,
        flags: BackupFlags,
        options: &BackupOptions,
        status: Option<StatusFn<'_>>,
    ) -> Result<BackupSummary> {
        let mut job = self.begin_backup_with(path, flags, options, status)?;
        while job.step()? {}
        job.finish()
    }

    /// Begins a backup (see [`Instance::backup`]) and returns it as a job to run step by step.
    /// The backup point is now: the job holds exactly the transactions committed before this
    /// call returned.
    pub fn begin_backup<'s>(
        &self,
        path: Option<&Path>,
        flags: BackupFlags,
        status: Option<StatusFn<'s>>,
    ) -> Result<BackupJob<'s>> {
        self.begin_backup_with(path, flags, &BackupOptions::default(), status)
    }

    /// [`Instance::begin_backup`] with [`BackupOptions`].
    pub fn begin_backup_with<'s>(
        &self,
        path: Option<&Path>,
        flags: BackupFlags,
        options: &BackupOptions,
        status: Option<StatusFn<'s>>,
    ) -> Result<BackupJob<'s>> {
        let known = BackupFlags::INCREMENTAL | BackupFlags::ATOMIC;
        if flags.bits() & !known.bits() != 0 {
            bail!(
                InvalidGrbit,
                "backup flags {:#x} name no option (incremental 0x1, atomic 0x4)",
                flags.bits()
            );
        }
        let kind = match path {
            None if flags != BackupFlags::NONE => bail!(
                InvalidParameter,
                "a backup without a path only truncates the logs; it takes no flags"
            ),
            None => BackupKind::Truncate,
            Some(_) if flags.contains(BackupFlags::INCREMENTAL) => BackupKind::Incremental,
            Some(_) => BackupKind::Full,
        };
        let atomic = kind == BackupKind::Full && flags.contains(BackupFlags::ATOMIC);
        let mut prepared = None;
        let ext = ExternalBackup::begin(
            self,
            kind,
            atomic,
            path.map(Path::to_path_buf),
            true,
            |core| {
                let Some(dir) = path else {
                    return Ok(None);
                };
                let p = prepare_directory(core, dir, kind, atomic)?;
                // An incremental adds the logs after the set's last backup.
                let from = p
                    .previous
                    .as_ref()
                    .map(|m| m.last().gen_high.saturating_add(1));
                prepared = Some(p);
                Ok(from)
            },
        )?;
        let (previous, next_set) = prepared.map_or((None, 0), |p| (p.previous, p.next_set));
        let env = self.shared.env.clone();
        let env_now = env.clock.monotonic_nanos();
        let mut job = BackupJob {
            events: self.params().event_log.clone(),
            env,
            kind,
            dir: path.map(Path::to_path_buf),
            set_dir: PathBuf::new(),
            made_set_dir: false,
            previous,
            next_set,
            db: None,
            logs_left: Vec::new(),
            created: Vec::new(),
            manifest_touched: false,
            progress: Reporter::new(Operation::Backup, status),
            step_bytes: CHUNK_BYTES,
            pace: Pace::new(options.max_rate, env_now),
            state: JobState::Running,
            warnings: Vec::new(),
            ext,
        };
        job.progress.total = job.ext.total_bytes();
        if let Err(err) = job.start() {
            return Err(job.fail(err));
        }
        Ok(job)
    }
}

/// What the directory holds when a backup begins.
struct Prepared {
    previous: Option<Manifest>,
    /// The set number a full backup takes.
    next_set: u32,
}

/// Checks the backup directory, creating it if the instance may, and removes debris of
/// backups that never finished.
fn prepare_directory(
    core: &mut Core,
    dir: &Path,
    kind: BackupKind,
    atomic: bool,
) -> Result<Prepared> {
    let params = &core.params;
    let vfs = &*core.env.vfs;
    let own = [
        params.log_path.as_path(),
        params.system_path.as_path(),
        parent_dir(&params.database_path),
    ];
    if dir.as_os_str().is_empty() || own.contains(&dir) {
        bail!(
            InvalidParameter,
            "the backup directory {:?} is one of the instance's own directories",
            dir.display().to_string()
        );
    }
    let is_dir = vfs.is_dir(dir).map_err(io_err("look up", dir))?;
    if !is_dir {
        no_file_on_path(vfs, dir)?;
        if kind == BackupKind::Incremental {
            bail!(
                MissingFullBackup,
                "{} does not exist: it holds no full backup to extend",
                dir.display()
            );
        }
        if !params.create_path_if_not_exist {
            bail!(
                InvalidPath,
                "the backup directory {} does not exist (set create_path_if_not_exist to create it)",
                dir.display()
            );
        }
        crate::txn::instance::ensure_dir(&core.env, dir, true)?;
    }
    let previous = match manifest::read(vfs, dir) {
        Ok(found) => found,
        // An I/O error reading it says nothing of the backup: it is the error.
        Err(err) if err.kind() != ErrorKind::LogCorruptDuringHardRestore => return Err(err),
        Err(err) => match kind {
            // A damaged backup is no backup to keep; the new one replaces it.
            BackupKind::Full => None,
            _ => bail!(
                InvalidBackup,
                "the backup in {} cannot be extended: {}",
                dir.display(),
                err.message()
            ),
        },
    };
    // A backup of another database (or log set) is never replaced or extended by mistake.
    if let Some(m) = &previous {
        let header = core.db.header();
        if m.log_signature != header.log_signature || m.db_signature != header.db_signature {
            bail!(
                InvalidBackup,
                "{} holds a backup of another database (database {}, log set {}); back up into another directory",
                dir.display(),
                m.db_signature,
                m.log_signature
            );
        }
    }
    let manifest_exists = vfs
        .exists(&dir.join(MANIFEST_NAME))
        .map_err(io_err("look up", dir))?;
    match kind {
        BackupKind::Full if manifest_exists && !atomic => bail!(
            BackupDirectoryNotEmpty,
            "{} holds a backup; a full backup replaces one only with the atomic flag",
            dir.display()
        ),
        BackupKind::Incremental if previous.is_none() => bail!(
            MissingFullBackup,
            "{} holds no full backup to extend",
            dir.display()
        ),
        _ => {}
    }
    // (Checked before any debris is removed: a refused call changes nothing.)
    // An incremental adds logs to the set the manifest names, which must be there with its
    // database copy: a manifest copied in from another directory names a set this one lacks.
    if let (BackupKind::Incremental, Some(m)) = (kind, &previous) {
        let db_copy = m.set_dir(dir).join(&m.db_name);
        if !vfs.exists(&db_copy).map_err(io_err("look up", &db_copy))? {
            bail!(
                MissingFullBackup,
                "{}: the manifest names {}, which is not there: no full backup to extend",
                dir.display(),
                db_copy.display()
            );
        }
    }
    // Debris: the temporary manifest, set directories the manifest does not name, and files
    // in its set that it does not list.
    let mut next_set = previous.as_ref().map_or(0, |m| m.set);
    let mut removed = false;
    // The manifest read is the one the directory durably names only once the directory is
    // synced: a backup that failed may have put the previous manifest back with no durable
    // fsync, and a power loss could then keep its own. Nothing is removed before that.
    let mut durable = false;
    let mut make_durable = || -> Result<()> {
        if !durable {
            vfs.sync_dir(dir).map_err(io_err("fsync", dir))?;
            durable = true;
        }
        Ok(())
    };
    for name in vfs.list(dir).map_err(io_err("list", dir))? {
        let path = dir.join(&name);
        if path == manifest::tmp_path(dir) {
            make_durable()?;
            vfs.remove(&path).map_err(io_err("remove", &path))?;
            removed = true;
        } else if let Some(set) = manifest::parse_set_dir_name(&name) {
            next_set = next_set.max(set);
            match &previous {
                Some(m) if m.set == set => {
                    let listed: BTreeSet<String> = m
                        .logs
                        .iter()
                        .map(|l| m.log_name(l.generation))
                        .chain([m.db_name.clone()])
                        .collect();
                    let mut removed_here = false;
                    for file in vfs.list(&path).map_err(io_err("list", &path))? {
                        if !listed.contains(&file) {
                            make_durable()?;
                            remove_tree(vfs, &path.join(&file))?;
                            removed_here = true;
                        }
                    }
                    if removed_here {
                        vfs.sync_dir(&path).map_err(io_err("fsync", &path))?;
                    }
                }
                _ if planted::active(&core.env, PlantedBug::BackupKeepsDebris) => {}
                _ => {
                    make_durable()?;
                    remove_tree(vfs, &path)?;
                    removed = true;
                }
            }
        }
    }
    if removed {
        vfs.sync_dir(dir).map_err(io_err("fsync", dir))?;
    }
    let next_set = next_set.checked_add(1).ok_or_else(|| {
        JetError::new(
            ErrorKind::InvalidBackup,
            format!("{} has used up its set numbers", dir.display()),
        )
    })?;
    Ok(Prepared { previous, next_set })
}

/// Removes a file, or a directory and everything in it. A directory's entries are removed
/// durably (its fsync) before it is: else a power loss could keep the directory's removal
/// but take back its entries', and the directory would come back with them.
fn remove_tree(vfs: &dyn Vfs, path: &Path) -> Result<()> {
    if vfs.is_dir(path).map_err(io_err("look up", path))? {
        let names = vfs.list(path).map_err(io_err("list", path))?;
        for name in &names {
            remove_tree(vfs, &path.join(name))?;
        }
        if !names.is_empty() {
            vfs.sync_dir(path).map_err(io_err("fsync", path))?;
        }
        vfs.remove_dir(path).map_err(io_err("remove", path))
    } else {
        vfs.remove(path).map_err(io_err("remove", path))
    }
}

impl<'s> BackupJob<'s> {
    /// The kind of backup this job makes.
    pub fn kind(&self) -> BackupKind {
        self.kind
    }

    /// The last commit the backup holds (its backup point).
    pub fn sequence(&self) -> u64 {
        self.ext.backup_point().sequence
    }

    /// The log generations the backup copies (`None` for a truncation).
    pub fn logs(&self) -> Option<(u32, u32)> {
        self.ext.summary().logs
    }

    /// Bytes copied so far and in all.
    pub fn progress(&self) -> (u64, u64) {
        (self.progress.done, self.progress.total)
    }

    /// Sets the most bytes of database pages one step copies (default 1 MiB; at least one
    /// page is copied): smaller steps let a caller interleave more work with the copy.
    pub fn set_step_size(&mut self, bytes: usize) {
        self.step_bytes = bytes.max(1);
    }

    /// Makes the set directory and the database copy, and reports the begin.
    fn start(&mut self) -> Result<()> {
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        if let Some(dir) = &self.dir {
            self.set_dir = match (&self.previous, self.kind) {
                (Some(m), BackupKind::Incremental) => m.set_dir(dir),
                _ => dir.join(Manifest::set_dir_name(self.next_set)),
            };
            if self.kind == BackupKind::Full {
                vfs.create_dir(&self.set_dir)
                    .map_err(io_err("create", &self.set_dir))?;
                self.made_set_dir = true;
                vfs.sync_dir(dir).map_err(io_err("fsync", dir))?;
                let from = self.ext.attach_info()?.remove(0);
                let name = from
                    .file_name()
                    .map_or_else(|| "data.edb".into(), |n| n.to_string_lossy().into_owned());
                let to = self.set_dir.join(name);
                let copy = vfs
                    .open(&to, OpenMode::CreateNew)
                    .map_err(io_err("create", &to))?;
                self.created.push(to.clone());
                let file = self.ext.open_file(&from)?;
                self.db = Some(DbCopy {
                    file,
                    to,
                    copy,
                    page_size: 0,
                    buf: Vec::new(),
                    writeback: Writeback::default(),
                    copied: 0,
                    done: false,
                });
                // (A database file is never empty: it holds its header pages.)
                debug_assert!(file.size() > 0);
            } else {
                self.logs_left = self.ext.log_info()?;
            }
        }
        self.progress.report(StatusKind::Begin)
    }

    fn emit(&self, event: Event) {
        self.events.emit(&*self.env.clock, event);
    }

    /// Copies the next piece: at most 1 MiB of database pages, or one log generation.
    /// Returns whether anything is left to copy. An error fails the backup (everything it
    /// wrote is removed); the job is then spent.
    pub fn step(&mut self) -> Result<bool> {
        match self.state {
            JobState::Running => {}
            JobState::Failed => bail!(NoBackup, "the backup failed; it has no more steps"),
            JobState::Succeeded => bail!(InvalidBackupSequence, "the backup is finished"),
        }
        match self.step_inner() {
            Ok(more) => Ok(more),
            Err(err) => Err(self.fail(err)),
        }
    }

    fn step_inner(&mut self) -> Result<bool> {
        self.ext.check_stop()?;
        if self.db.as_ref().is_some_and(|db| !db.done) {
            self.step_database()?;
        } else if !self.logs_left.is_empty() {
            let from = self.logs_left.remove(0);
            self.copy_log(&from)?;
        }
        // Every step that copied something reports it.
        self.progress.catch_up()?;
        Ok(self.db.as_ref().is_some_and(|db| !db.done) || !self.logs_left.is_empty())
    }

    /// Copies the next pages of the database, as the external backup reads them (see
    /// `external.rs` for why they are the begin's): the pages the fence saved, each where it
    /// goes, then the run read, but for the pages it saved.
    fn step_database(&mut self) -> Result<()> {
        let page_size = self.ext.backup_page_size();
        let db = self.db.as_mut().expect("a database copy");
        db.page_size = page_size;
        let chunk_pages = (self.step_bytes.min(CHUNK_BYTES) / page_size).max(1) as Pgno;
        let mut buf = std::mem::take(&mut db.buf);
        let file = db.file;
        let pieces = self.ext.read_db_pages(file, chunk_pages, &mut buf)?;
        let db = self.db.as_mut().expect("a database copy");
        let mut bytes = 0u64;
        if let Some(pieces) = pieces {
            let to_dest = |db: &mut DbCopy, data: &[u8], offset: u64| -> Result<()> {
                db.copy
                    .write_all_at(data, offset)
                    .map_err(io_err("write", &db.to))?;
                db.writeback
                    .wrote(&*db.copy, &db.to, offset, data.len() as u64)
            };
            for (&pgno, page) in &pieces.saved {
                to_dest(db, page, u64::from(pgno) * page_size as u64)?;
                bytes += page_size as u64;
            }
            // Runs of pages not saved ahead go out as one write each.
            let skip = &pieces.skip;
            let mut i = 0usize;
            while i < skip.len() {
                if skip[i] {
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < skip.len() && !skip[j] {
                    j += 1;
                }
                to_dest(
                    db,
                    &buf[i * page_size..j * page_size],
                    u64::from(pieces.first + i as Pgno) * page_size as u64,
                )?;
                bytes += ((j - i) * page_size) as u64;
                i = j;
            }
            db.copied += (skip.len() * page_size) as u64;
        }
        db.buf = buf;
        if db.copied == db.file.size() {
            db.copy.sync().map_err(io_err("fsync", &db.to))?;
            db.done = true;
            db.buf = Vec::new();
            let file = db.file;
            self.ext.close_file(file)?;
            self.logs_left = self.ext.log_info()?;
        }
        self.progress.advance(bytes)?;
        self.pace_after(bytes)?;
        if let Some(db) = self.db.as_ref().filter(|db| db.done) {
            let event = Event::FileCopied {
                operation: Operation::Backup,
                from: self.ext.database_path().to_path_buf(),
                to: db.to.clone(),
                bytes: db.file.size(),
            };
            self.emit(event);
        }
        Ok(())
    }

    /// Waits, under a rate limit, until `bytes` more copied are due.
    fn pace_after(&mut self, bytes: u64) -> Result<()> {
        let (instance, id) = self.ext.instance_and_id();
        self.pace
            .advance(&self.env, bytes, || stop_requested(instance, id))
    }

    /// Copies one archived log generation as the external backup reads it, a piece at a
    /// time ([`log::LOG_PIECE`]), each piece checked, so the job's memory is the same
    /// whatever the log file size. The last piece comes only once the whole file has
    /// passed, so a generation of one piece that fails leaves no file; a longer one leaves
    /// what it wrote for the failure to remove.
    fn copy_log(&mut self, from: &Path) -> Result<()> {
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        let name = from.file_name().expect("a log file's name");
        let to = self.set_dir.join(name);
        let count = !planted::active(&self.env, PlantedBug::BackupProgressSkipsLogs);
        let file = self.ext.open_file(from)?;
        let len = file.size();
        let mut writeback = Writeback::default();
        let mut copy: Option<log::LogCopy> = None;
        let create = |created: &mut Vec<PathBuf>| -> Result<log::LogCopy> {
            let file = vfs
                .open(&to, OpenMode::CreateTruncate)
                .map_err(io_err("create", &to))?;
            created.push(to.clone());
            log::LogCopy::new(file, &to, len)
        };
        while let Some((piece, _)) = self.ext.read_log_piece(file)? {
            let copy = match &mut copy {
                Some(copy) => copy,
                None => copy.insert(create(&mut self.created)?),
            };
            let at = copy.file().1;
            let progress = &mut self.progress;
            copy.write(piece, |n| progress.advance(if count { n } else { 0 }))?;
            writeback.wrote(copy.file().0, &to, at, piece.len() as u64)?;
            // Paced, and stoppable, a piece at a time: a generation may be a gibibyte.
            let n = piece.len() as u64;
            let (instance, id) = self.ext.instance_and_id();
            stop_requested(instance, id)?;
            self.pace
                .advance(&self.env, n, || stop_requested(instance, id))?;
        }
        self.ext.close_file(file)?;
        let copy = match copy {
            Some(copy) => copy,
            None => create(&mut self.created)?,
        };
        copy.finish(|n| self.progress.advance(if count { n } else { 0 }))?;
        self.emit(Event::FileCopied {
            operation: Operation::Backup,
            from: from.to_path_buf(),
            to,
            bytes: len,
        });
        Ok(())
    }

    /// Runs what is left, makes the backup durable and records it: the manifest is written
    /// last, and only then does the backup exist. Then the header records it and the logs no
    /// longer needed are truncated.
    pub fn finish(mut self) -> Result<BackupSummary> {
        match self.state {
            JobState::Running => {}
            JobState::Failed => bail!(NoBackup, "the backup failed"),
            JobState::Succeeded => bail!(InvalidBackupSequence, "the backup is finished"),
        }
        match self.commit() {
            Ok(()) => {}
            Err(err) => return Err(self.fail(err)),
        }
        self.state = JobState::Succeeded;
        self.after_success();
        // The backup is done; what the callback says now changes nothing.
        let _ = self.progress.report(StatusKind::Complete);
        let mut summary = self.ext.summary().clone();
        summary.warnings = std::mem::take(&mut self.warnings);
        Ok(summary)
    }

    /// Everything up to the commit point: the rest of the copy, the fsyncs, the manifest.
    fn commit(&mut self) -> Result<()> {
        while self.step_inner()? {}
        // A backup of an instance terminated (and initialised again) since it began is
        // abandoned: nothing now holds its logs.
        self.ext.check_held()?;
        let Some(dir) = self.dir.clone() else {
            // A backup without a path: the truncation is the whole of it.
            self.ext.truncate_log()?;
            return Ok(());
        };
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        // Every file is fsynced already; now the entries naming them. (The set directory's own
        // entry was made durable when it was created.)
        vfs.sync_dir(&self.set_dir)
            .map_err(io_err("fsync", &self.set_dir))?;
        let manifest = match self.kind {
            BackupKind::Incremental => self.ext.manifest(self.previous.as_ref())?,
            _ => Manifest {
                set: self.next_set,
                ..self.ext.manifest(None)?
            },
        };
        debug_assert_eq!(manifest.log_range().1, self.ext.backup_point().gen_high);
        // The commit point: the new manifest, written aside and renamed into place.
        let tmp = manifest::tmp_path(&dir);
        let bytes = manifest.encode();
        let written = vfs
            .open(&tmp, OpenMode::CreateTruncate)
            .and_then(|file| {
                file.write_all_at(&bytes, 0)?;
                file.sync()
            })
            .map_err(io_err("write", &tmp));
        // The last moment a stop request fails the backup.
        written
            .and_then(|()| self.ext.check_stop())
            .and_then(|()| {
                vfs.rename(&tmp, &dir.join(MANIFEST_NAME))
                    .map_err(io_err("rename", &tmp))
            })?;
        // From here the directory may name the new set: a failure must put the old back.
        self.manifest_touched = true;
        vfs.sync_dir(&dir).map_err(io_err("fsync", &dir))?;
        Ok(())
    }

    /// After the commit point: remove the replaced set, record the backup in the header,
    /// truncate, release the instance. Failures are warnings.
    fn after_success(&mut self) {
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        if let (Some(dir), Some(previous)) = (&self.dir, &self.previous)
            && self.kind == BackupKind::Full
        {
            let old = previous.set_dir(dir);
            if let Err(err) = remove_tree(&*vfs, &old).and_then(|()| {
                vfs.sync_dir(dir)
                    .map_err(|err| JetError::io(format!("fsync {}", dir.display()), &err))
            }) {
                self.warn(format!(
                    "the replaced backup set {} could not be removed: {err}",
                    old.display()
                ));
            }
        }
        if self.kind != BackupKind::Truncate
            && let Err(err) = self.ext.record_and_truncate()
        {
            self.warn(format!(
                "the backup is complete, but recording it in the header and truncating the logs failed: {err}"
            ));
        }
        self.ext.finish_normally();
    }

    fn warn(&mut self, message: String) {
        self.emit(Event::Warning {
            operation: Operation::Backup,
            message: message.clone(),
        });
        self.warnings.push(message);
    }

    /// Fails the backup: removes what it wrote, puts the previous manifest back if the commit
    /// point was attempted, releases the instance, reports. Returns `err`.
    fn fail(&mut self, err: JetError) -> JetError {
        if self.state != JobState::Running {
            return err;
        }
        self.state = JobState::Failed;
        // (The external backup may have failed already, with this error: it then released
        // the instance, and left the report to this job.)
        self.ext.fail(err.clone());
        self.clean_up();
        self.emit(Event::BackupFailed {
            kind: self.kind,
            error: err.clone(),
        });
        let _ = self.progress.report(StatusKind::Fail);
        err
    }

    /// Best effort: whatever cannot be removed is debris no manifest lists, which restore
    /// never reads and the next backup removes.
    fn clean_up(&mut self) {
        self.db = None;
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        let Some(dir) = self.dir.clone() else {
            return;
        };
        if self.manifest_touched
            && !planted::active(&self.env, PlantedBug::FailedBackupKeepsItsManifest)
        {
            let path = dir.join(MANIFEST_NAME);
            // Put back durably: the directory's fsync too, or a power loss could keep the new
            // manifest and the removal of its files.
            let restored = match &self.previous {
                Some(previous) => manifest::write(&*vfs, &dir, previous),
                None => vfs
                    .remove(&path)
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .and_then(|()| vfs.sync_dir(&dir))
                    .map_err(|err| JetError::io("remove the manifest", &err)),
            };
            if let Err(err) = restored {
                // Which manifest the directory durably names — the new one, or the one put
                // back — is unknown now: the files of both stay, so whichever it is restores.
                // (What no manifest names is debris the next backup removes.)
                self.warn(format!(
                    "the previous manifest could not be put back: {err}"
                ));
                self.warn("the new backup's files are kept: the directory may name them".into());
                if !planted::active(&self.env, PlantedBug::FailedBackupDropsKeptFiles) {
                    return;
                }
            }
        }
        let _ = vfs.remove(&manifest::tmp_path(&dir));
        for path in std::mem::take(&mut self.created).into_iter().rev() {
            let _ = vfs.remove(&path);
        }
        if self.made_set_dir {
            // (Its entries' removals durable before the directory's: see `remove_tree`.)
            let _ = vfs.sync_dir(&self.set_dir);
            let _ = remove_tree(&*vfs, &self.set_dir);
            let _ = vfs.sync_dir(&dir);
        } else if !self.set_dir.as_os_str().is_empty() {
            let _ = vfs.sync_dir(&self.set_dir);
        }
    }
}

impl Drop for BackupJob<'_> {
    fn drop(&mut self) {
        if self.state == JobState::Running {
            self.fail(JetError::new(
                ErrorKind::BackupAbortByCaller,
                "the backup job was dropped before it finished",
            ));
        }
    }
}

impl Instance {
    /// Stops the backup running now, if any (ESE's JetStopBackup), from any thread: its next
    /// step — or its rate limit's sleep, within 20 ms — fails with
    /// `JET_errBackupAbortByServer`, and it leaves nothing behind, as any failed backup. A
    /// backup past its commit point (its manifest in place) is complete and is not undone.
    /// Backups begun after this call run as usual. Returns whether a backup was running.
    pub fn stop_backup(&self) -> bool {
        let mut running = false;
        self.with_core_quietly(|core| {
            if let Some(hold) = core.backup {
                self.shared.backup_stop.store(hold.id, Ordering::Release);
                running = true;
            }
        });
        running
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::Path;
    use std::sync::Mutex;

    use super::{BackupFlags, UNSYNCED_BYTES, WRITEBACK_BYTES, Writeback};
    use crate::base::vfs::VfsFile;

    /// A file that only records the write-backs started and the fsyncs asked of it.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(char, u64, u64)>>);

    impl VfsFile for Recorder {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Ok(0)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            self.0.lock().unwrap().push(('s', 0, 0));
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
            self.0.lock().unwrap().push(('w', offset, len));
            Ok(())
        }
    }

    /// A copy is written back every [`WRITEBACK_BYTES`], over the range written since the
    /// last, and fsynced every [`UNSYNCED_BYTES`]; pages written ahead (saved by the fence)
    /// widen the range.
    #[test]
    fn a_copy_is_written_back_and_synced_in_bounded_pieces() {
        // (The expected calls below are worked out for an fsync every second write-back.)
        const { assert!(UNSYNCED_BYTES == 2 * WRITEBACK_BYTES) };
        let file = Recorder::default();
        let mut wb = Writeback::default();
        let w = WRITEBACK_BYTES;
        let piece = w / 4;
        let path = Path::new("copy");
        let mut offset = 0;
        while offset < 2 * UNSYNCED_BYTES {
            wb.wrote(&file, path, offset, piece).unwrap();
            offset += piece;
            if offset == 3 * piece {
                // A page saved ahead, far past the sequential copy.
                wb.wrote(&file, path, 100 * w, 4096).unwrap();
            }
        }
        let calls = file.0.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                ('w', 0, 100 * w + 4096),
                ('s', 0, 0),
                ('w', 2 * w, w),
                ('s', 0, 0),
            ]
        );
    }

    #[test]
    fn flags_combine_as_a_union_of_bits() {
        let both = BackupFlags::INCREMENTAL | BackupFlags::ATOMIC;
        assert_eq!(both.bits(), 0x5);
        assert_eq!(
            BackupFlags::INCREMENTAL | BackupFlags::INCREMENTAL,
            BackupFlags::INCREMENTAL
        );
        assert!(both.contains(BackupFlags::ATOMIC) && both.contains(BackupFlags::INCREMENTAL));
        assert!(!BackupFlags::ATOMIC.contains(BackupFlags::INCREMENTAL));
        assert_eq!(BackupFlags::from_bits(0x100).bits(), 0x100);
    }
}
