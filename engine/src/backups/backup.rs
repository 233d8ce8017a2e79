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
use std::ops::BitOr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::backups::manifest::{self, MANIFEST_NAME, Manifest, SetBackup, SetLog};
use crate::backups::status::{Reporter, StatusFn, StatusKind};
use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail, io_err};
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{OpenMode, Vfs, VfsFile, parent_dir};
use crate::store::header::{BackupInfo, DbHeader, Lgpos};
use crate::store::page::{self, Pgno};
use crate::store::pager::{CopyFence, SharedFence};
use crate::txn::event::{BackupKind, Event, EventLog, Operation};
use crate::txn::instance::{BackupHold, Core, Instance, lsn, no_file_on_path};
use crate::wal::log::{self, LogTail};

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

/// JetBackup's options (`JET_bit…`), combined with `|`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupFlags(u32);

impl BackupFlags {
    /// A full backup into an empty directory (or a directory whose backup was never finished).
    pub const NONE: BackupFlags = BackupFlags(0);
    /// `JET_bitBackupIncremental` (0x1): copy only the log generations written since the last
    /// full or incremental backup, adding them to the backup set in the directory. An
    /// incremental backup is always atomic: the set it extends stays restorable if it fails.
    pub const INCREMENTAL: BackupFlags = BackupFlags(0x1);
    /// `JET_bitBackupAtomic` (0x4): a full backup into a directory that may hold a previous
    /// backup, which stays restorable until the new one has succeeded and then is removed.
    pub const ATOMIC: BackupFlags = BackupFlags(0x4);

    /// Flags from ESE's numeric grbit; bits that name no option are refused when the backup
    /// begins (`JET_errInvalidGrbit`).
    pub const fn from_bits(bits: u32) -> BackupFlags {
        BackupFlags(bits)
    }

    /// The numeric grbit.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether `other`'s bits are all set.
    pub const fn contains(self, other: BackupFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for BackupFlags {
    type Output = BackupFlags;
    fn bitor(self, rhs: BackupFlags) -> BackupFlags {
        BackupFlags(self.0 | rhs.0)
    }
}

/// What a successful backup did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupSummary {
    /// Full, incremental, or truncation only.
    pub kind: BackupKind,
    /// The backup directory.
    pub directory: Option<PathBuf>,
    /// The last commit the backup holds: restoring it gives exactly the commits up to this.
    pub sequence: u64,
    /// The log position at which the backup began.
    pub mark: Lgpos,
    /// The log generations copied (`None` for a truncation).
    pub logs: Option<(u32, u32)>,
    /// Bytes of database copied.
    pub database_bytes: u64,
    /// Bytes of logs copied.
    pub log_bytes: u64,
    /// The log generations deleted afterwards, if any.
    pub truncated: Option<(u32, u32)>,
    /// What went wrong after the backup was complete (it still succeeded).
    pub warnings: Vec<String>,
}

/// Pages the fence saved for the backup, by page number.
type Saved = std::collections::BTreeMap<Pgno, Vec<u8>>;

/// The database copy of a full backup in progress.
struct DbCopy {
    from: PathBuf,
    /// The backup's own handle on the database file: pages are read through it without the
    /// instance lock (see [`BackupJob::step_database`]).
    source: Box<dyn VfsFile>,
    to: PathBuf,
    file: Box<dyn VfsFile>,
    page_size: usize,
    /// Pages the copy holds: the file's length when the backup began.
    end: Pgno,
    /// The first page not copied yet (the fence's `copied_below`, which only the job moves).
    next: Pgno,
    /// The buffer pages are read into, reused from one step to the next.
    buf: Vec<u8>,
    /// Each page's stored checksum, for the copy's digest in the manifest.
    sums: Vec<u32>,
    /// The flush map when the backup began: the dbtime each page must have (0: not
    /// written yet, nothing to check).
    stamps: Vec<u64>,
    /// The pager's copy-before-write fence over the file, shared with the job.
    fence: SharedFence,
    writeback: Writeback,
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
    instance: Instance,
    env: Env,
    events: EventLog,
    id: u64,
    /// The init the backup began in: a term and a new init since end it.
    epoch: u64,
    kind: BackupKind,
    atomic: bool,
    dir: Option<PathBuf>,
    /// The set directory the backup writes into.
    set_dir: PathBuf,
    /// Whether this backup created `set_dir` (a full backup does).
    made_set_dir: bool,
    /// The manifest the directory had when the backup began.
    previous: Option<Manifest>,
    /// The manifest this backup will write.
    manifest: Option<Manifest>,
    begin: SetBackup,
    db: Option<DbCopy>,
    /// Generations still to copy, ascending.
    logs_left: Vec<u32>,
    log_dir: PathBuf,
    base: String,
    /// Files this backup created in the destination: removed if it fails.
    created: Vec<PathBuf>,
    /// Whether the manifest may have been replaced (the commit point was attempted).
    manifest_touched: bool,
    progress: Reporter<'s>,
    /// The most bytes of database pages one step copies.
    step_bytes: usize,
    /// The buffer log generations are read into a piece at a time (at most
    /// [`log::LOG_PIECE`] bytes, whatever the log file size), reused from one to the next.
    log_buf: Vec<u8>,
    /// The rate limit.
    pace: Pace,
    state: JobState,
    summary: BackupSummary,
}

impl std::fmt::Debug for BackupJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupJob")
            .field("kind", &self.kind)
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
        let params = self.params().clone();
        let id = self.next_transaction_id();
        let env = self.shared.env.clone();
        let begun = self.with_core_for_backup(|core| {
            if core.log.is_none() {
                bail!(
                    LoggingDisabled,
                    "the instance runs without logging (recovery off): there is no log to back up"
                );
            }
            if core.backup.is_some() {
                bail!(BackupInProgress, "a backup of this instance is already running");
            }
            if kind == BackupKind::Incremental {
                if params.circular_logging {
                    bail!(
                        InvalidBackup,
                        "an incremental backup needs every log since the last backup, and circular logging deletes them"
                    );
                }
                if !core.db.header().backup_full.is_set() {
                    bail!(
                        MissingFullBackup,
                        "an incremental backup extends a full backup, and this database has none"
                    );
                }
            }
            let prepared = match path {
                Some(dir) => Some(prepare_directory(core, dir, kind, atomic)?),
                None => None,
            };
            begin_in_core(core, id, kind, prepared)
        });
        let mut begun = match begun {
            Ok(begun) => begun,
            Err(err) => {
                // A refused backup is a failed one to whoever reads the event log.
                params.event_log.emit(
                    &*env.clock,
                    Event::BackupFailed {
                        kind,
                        error: err.clone(),
                    },
                );
                return Err(err);
            }
        };
        let env_now = env.clock.monotonic_nanos();
        let mut job = BackupJob {
            instance: self.clone(),
            events: params.event_log.clone(),
            env,
            id,
            epoch: begun.epoch,
            kind,
            atomic,
            dir: path.map(Path::to_path_buf),
            set_dir: begun.set_dir.clone().unwrap_or_default(),
            made_set_dir: false,
            previous: begun.previous.clone(),
            manifest: begun.manifest.clone(),
            begin: begun.begin,
            db: None,
            logs_left: begun.logs.clone(),
            log_dir: params.log_path.clone(),
            base: params.base_name.clone(),
            created: Vec::new(),
            manifest_touched: false,
            progress: Reporter::new(Operation::Backup, status),
            step_bytes: CHUNK_BYTES,
            log_buf: Vec::new(),
            pace: Pace::new(options.max_rate, env_now),
            state: JobState::Running,
            summary: BackupSummary {
                kind,
                directory: path.map(Path::to_path_buf),
                sequence: begun.begin.sequence,
                mark: begun.begin.mark,
                logs: (kind != BackupKind::Truncate)
                    .then_some((begun.begin.gen_low, begun.begin.gen_high)),
                ..BackupSummary::default()
            },
        };
        job.progress.total = begun.total;
        if let Err(err) = job.start(&mut begun) {
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

/// What [`begin_in_core`] decided.
struct Begun {
    begin: SetBackup,
    previous: Option<Manifest>,
    manifest: Option<Manifest>,
    set_dir: Option<PathBuf>,
    logs: Vec<u32>,
    db_pages: Option<Pgno>,
    /// The fence over the database file (a full backup).
    fence: Option<SharedFence>,
    /// The init the backup began in (`Core::epoch`).
    epoch: u64,
    /// The flush map at the begin (a full backup).
    stamps: Vec<u64>,
    db_path: PathBuf,
    page_size: usize,
    total: u64,
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

/// The part of the begin that runs under the instance lock: finish the current generation,
/// fix the backup point, hold the logs and fence the database file.
fn begin_in_core(
    core: &mut Core,
    id: u64,
    kind: BackupKind,
    prepared: Option<Prepared>,
) -> Result<Begun> {
    // A batch being written in pieces goes in first, and the checkpoint moves for it: the
    // file then holds one whole state, and the generations to copy begin at the checkpoint.
    core.change(Core::settle_round)?;
    let dir = core.params.log_path.clone();
    let base = core.params.base_name.clone();
    let db_path = core.params.database_path.clone();
    let header = core.db.header().clone();
    let vfs = std::sync::Arc::clone(&core.env.vfs);
    let (previous, next_set) = match prepared {
        Some(p) => (p.previous, p.next_set),
        None => (None, 0),
    };
    let log = core.log.as_ref().expect("checked: logging is on");
    let checkpoint = *log.checkpoint.current();
    let current_gen = log.writer.position().generation;
    let gen_low = match (kind, &previous) {
        // (`prepare_directory` checked the set is this database's.)
        (BackupKind::Incremental, Some(m)) => m.last().gen_high.saturating_add(1),
        _ => checkpoint.position.generation,
    };
    // Every generation to copy, before the one about to be finished, must still be here.
    if kind != BackupKind::Truncate {
        let present: BTreeSet<u32> = core
            .log
            .as_ref()
            .expect("checked")
            .layout
            .archived_generations(&*vfs)?
            .into_iter()
            .collect();
        if let Some(missing) = (gen_low..current_gen).find(|g| !present.contains(g)) {
            bail!(
                MissingFileToBackup,
                "log generation {missing:#X} ({}) is needed by the backup but is missing",
                log::archive_name(&base, missing)
            );
        }
    }
    let millis = core.env.clock.now_millis();
    // The backup point: finish the current generation, so every commit before now is in a
    // generation the backup copies whole.
    let gen_high = if kind == BackupKind::Truncate {
        current_gen.saturating_sub(1)
    } else {
        core.change(|core| {
            let log = core.log.as_mut().expect("checked");
            log.writer.flush()?;
            log.writer.roll()?;
            let durable = lsn(log.writer.durable());
            core.db.pager_mut().set_wal_durable(durable);
            Ok(())
        })?;
        // The flush freed the pages that waited for the log: the cache goes back within its
        // size before the fence, whose copies-before-write it then need not make.
        core.relieve_cache()?;
        current_gen
    };
    let mark = core.log.as_ref().expect("checked").writer.position();
    let begin = SetBackup {
        kind: if kind == BackupKind::Incremental {
            BackupKind::Incremental
        } else {
            BackupKind::Full
        },
        mark,
        millis,
        sequence: core.last_sequence,
        gen_low,
        gen_high,
    };
    let logs: Vec<u32> = if kind == BackupKind::Truncate {
        Vec::new()
    } else {
        (gen_low..=gen_high).collect()
    };
    let mut total = 0u64;
    for &generation in &logs {
        let path = dir.join(log::archive_name(&base, generation));
        let file = vfs
            .open(&path, OpenMode::Read)
            .map_err(io_err("open", &path))?;
        total += file.len().map_err(io_err("size of", &path))?;
    }
    let page_size = header.page_size as usize;
    let mut db_pages = None;
    let mut fence = None;
    let mut stamps = Vec::new();
    if kind == BackupKind::Full {
        let (pages, shared) = core.db.pager_mut().set_fence()?;
        total += u64::from(pages) * page_size as u64;
        db_pages = Some(pages);
        fence = Some(shared);
        // The file holds the last batch whole (batches finish under the lock): each page
        // as the map records it.
        stamps = core.db.pager_mut().stamps().to_vec();
        // A page written, past the file's end: the write that grew the file was lost.
        if let Some(pgno) = (pages as usize..stamps.len()).find(|&p| stamps[p] != 0) {
            core.db.pager_mut().clear_fence();
            return Err(
                crate::store::flushmap::lost_flush(pgno as Pgno, 0, stamps[pgno])
                    .context(format!("{} (past the file's end)", db_path.display())),
            );
        }
    }
    core.backup = Some(BackupHold {
        id,
        keep_from: if kind == BackupKind::Truncate {
            u32::MAX
        } else {
            gen_low
        },
    });
    let db_name = db_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data.edb".into());
    let (manifest, set_dir) = match (kind, &previous) {
        (BackupKind::Truncate, _) => (None, None),
        (BackupKind::Incremental, Some(m)) => {
            let mut next = m.clone();
            next.backups.push(begin);
            (Some(next), None)
        }
        _ => (
            Some(Manifest {
                set: next_set,
                log_signature: header.log_signature,
                db_signature: header.db_signature,
                page_size: header.page_size,
                db_len: u64::from(db_pages.unwrap_or(0)) * page_size as u64,
                // Set once the copy is complete.
                db_digest: 0,
                checkpoint: checkpoint.position,
                checkpoint_last_commit: checkpoint.last_commit,
                base_name: base.clone(),
                db_name,
                backups: vec![begin],
                logs: Vec::new(),
            }),
            None,
        ),
    };
    Ok(Begun {
        begin,
        previous,
        manifest,
        set_dir,
        logs,
        db_pages,
        fence,
        epoch: core.epoch,
        stamps,
        db_path,
        page_size,
        total,
    })
}

impl<'s> BackupJob<'s> {
    /// The kind of backup this job makes.
    pub fn kind(&self) -> BackupKind {
        self.kind
    }

    /// The last commit the backup holds (its backup point).
    pub fn sequence(&self) -> u64 {
        self.begin.sequence
    }

    /// The log generations the backup copies (`None` for a truncation).
    pub fn logs(&self) -> Option<(u32, u32)> {
        self.summary.logs
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
    fn start(&mut self, begun: &mut Begun) -> Result<()> {
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        if let (Some(dir), Some(manifest)) = (&self.dir, &self.manifest) {
            self.set_dir = manifest.set_dir(dir);
            if self.kind == BackupKind::Full {
                vfs.create_dir(&self.set_dir)
                    .map_err(io_err("create", &self.set_dir))?;
                self.made_set_dir = true;
                vfs.sync_dir(dir).map_err(io_err("fsync", dir))?;
                let to = self.set_dir.join(&manifest.db_name);
                let file = vfs
                    .open(&to, OpenMode::CreateNew)
                    .map_err(io_err("create", &to))?;
                self.created.push(to.clone());
                let source = vfs
                    .open(&begun.db_path, OpenMode::Read)
                    .map_err(io_err("open", &begun.db_path))?;
                self.db = Some(DbCopy {
                    from: begun.db_path.clone(),
                    source,
                    to,
                    file,
                    page_size: begun.page_size,
                    end: begun.db_pages.unwrap_or(0),
                    next: 0,
                    buf: Vec::new(),
                    sums: vec![0; begun.db_pages.unwrap_or(0) as usize],
                    stamps: std::mem::take(&mut begun.stamps),
                    fence: begun
                        .fence
                        .take()
                        .expect("a full backup fences the file while it copies"),
                    writeback: Writeback::default(),
                    done: false,
                });
            }
        }
        self.emit(Event::BackupBegin {
            kind: self.kind,
            atomic: self.atomic,
            directory: self.dir.clone(),
            mark: self.begin.mark,
            sequence: self.begin.sequence,
        });
        if self.kind != BackupKind::Truncate {
            self.emit(Event::LogRange {
                operation: Operation::Backup,
                low: self.begin.gen_low,
                high: self.begin.gen_high,
            });
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
        self.check_stop()?;
        if self.db.as_ref().is_some_and(|db| !db.done) {
            self.step_database()?;
        } else if !self.logs_left.is_empty() {
            let generation = self.logs_left.remove(0);
            self.copy_log(generation)?;
        }
        // Every step that copied something reports it.
        self.progress.catch_up()?;
        Ok(self.db.as_ref().is_some_and(|db| !db.done) || !self.logs_left.is_empty())
    }

    /// Copies the next pages of the database, and the pages the fence saved since.
    ///
    /// The pages are read through the job's own handle, without the instance lock, so
    /// commits go on while the backup waits for the disk. That is safe because the fence
    /// still covers them while they are read: the pager saves any of them before it
    /// overwrites it, under the lock. So the job asks the fence which pages it saved only
    /// *after* the read, and takes those from the fence; any other page was not overwritten
    /// during the read, and what was read is its content at the begin. (Asking before, or
    /// moving the fence past the pages before reading them, would copy a page overwritten
    /// in between as it is now.)
    fn step_database(&mut self) -> Result<()> {
        let db = self.db.as_mut().expect("a database copy");
        let (page_size, first) = (db.page_size, db.next);
        let chunk_pages = (self.step_bytes.min(CHUNK_BYTES) / page_size).max(1) as Pgno;
        let count = chunk_pages.min(db.end - first);
        let mut buf = std::mem::take(&mut db.buf);
        buf.resize(count as usize * page_size, 0);
        let early = planted::active(&self.env, PlantedBug::BackupFenceMovedBeforeRead);
        let mut taken = None;
        if early {
            taken = Some(self.take_from_fence(first, count)?);
        }
        let db = self.db.as_mut().expect("a database copy");
        db.source
            .read_exact_at(&mut buf, u64::from(first) * page_size as u64)
            .map_err(|err| {
                JetError::io(
                    format!("{}: read from page {first} for a backup", db.from.display()),
                    &err,
                )
            })?;
        self.check_stop()?;
        let (skip, saved) = match taken {
            Some(taken) => taken,
            None => self.take_from_fence(first, count)?,
        };
        let mut bytes = 0u64;
        {
            let db = self.db.as_mut().expect("a database copy");
            let end = db.end;
            db.next = first + count;
            let to_dest = |db: &mut DbCopy, data: &[u8], offset: u64| -> Result<()> {
                db.file
                    .write_all_at(data, offset)
                    .map_err(io_err("write", &db.to))?;
                db.writeback
                    .wrote(&*db.file, &db.to, offset, data.len() as u64)
            };
            for (&pgno, page) in &saved {
                check_page(&self.env, page, pgno, stamp(&db.stamps, pgno), &db.from)?;
                db.sums[pgno as usize] = page::stored_checksum(page);
                to_dest(db, page, u64::from(pgno) * page_size as u64)?;
                bytes += page_size as u64;
            }
            // Runs of pages not saved ahead go out as one write each.
            let mut i = 0usize;
            while i < skip.len() {
                if skip[i] {
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < skip.len() && !skip[j] {
                    let page = &buf[j * page_size..(j + 1) * page_size];
                    let pgno = first + j as Pgno;
                    check_page(&self.env, page, pgno, stamp(&db.stamps, pgno), &db.from)?;
                    db.sums[first as usize + j] = page::stored_checksum(page);
                    j += 1;
                }
                to_dest(
                    db,
                    &buf[i * page_size..j * page_size],
                    u64::from(first + i as Pgno) * page_size as u64,
                )?;
                bytes += ((j - i) * page_size) as u64;
                i = j;
            }
            db.buf = buf;
            if first + count == end {
                db.file.sync().map_err(io_err("fsync", &db.to))?;
                db.done = true;
                db.buf = Vec::new();
                let digest = manifest::page_digest(&db.sums);
                self.manifest
                    .as_mut()
                    .expect("a full backup has a manifest")
                    .db_digest = digest;
            }
        }
        self.summary.database_bytes += bytes;
        self.progress.advance(bytes)?;
        self.pace_after(bytes)?;
        if let Some(db) = self.db.as_ref().filter(|db| db.done) {
            let event = Event::FileCopied {
                operation: Operation::Backup,
                from: db.from.clone(),
                to: db.to.clone(),
                bytes: u64::from(db.end) * page_size as u64,
            };
            self.emit(event);
        }
        Ok(())
    }

    /// Moves the fence past pages `first..first + count` and returns which of them it saved
    /// (those the copy takes from the fence) with every page it saved since the last step.
    ///
    /// Only the fence's own lock is taken, never the instance's: a writer holding the
    /// instance lock from one commit to the next cannot starve the copy.
    fn take_from_fence(&mut self, first: Pgno, count: Pgno) -> Result<(Vec<bool>, Saved)> {
        self.check_running()?;
        let db = self.db.as_ref().expect("a database copy");
        let mut fence = CopyFence::lock(&db.fence);
        if let Some(err) = fence.failed.take() {
            return Err(err);
        }
        assert_eq!(fence.copied_below, first, "only the job moves the fence");
        assert!(
            first + count <= fence.end,
            "the copy ends at the fence's end"
        );
        let saved = std::mem::take(&mut fence.saved);
        let skip: Vec<bool> = (first..first + count)
            .map(|p| fence.secured.contains(&p))
            .collect();
        fence.copied_below = first + count;
        fence.secured = fence.secured.split_off(&(first + count));
        Ok((skip, saved))
    }

    /// Checks, without the instance lock, that the instance still runs this backup: it takes
    /// backup calls, and has not been terminated and initialised again since the begin.
    fn check_running(&self) -> Result<()> {
        self.instance.check_backup_state()?;
        if self.instance.shared.inits.load(Ordering::Acquire) != self.epoch {
            bail!(
                BackupAbortByServer,
                "the instance no longer runs this backup (it was terminated and initialised again)"
            );
        }
        Ok(())
    }

    /// Fails with `JET_errBackupAbortByServer` if [`Instance::stop_backup`] stopped this
    /// backup.
    fn check_stop(&self) -> Result<()> {
        stop_requested(&self.instance, self.id)
    }

    /// Waits, under a rate limit, until `bytes` more copied are due.
    fn pace_after(&mut self, bytes: u64) -> Result<()> {
        let (instance, id) = (&self.instance, self.id);
        self.pace
            .advance(&self.env, bytes, || stop_requested(instance, id))
    }

    /// Copies one archived log generation, verifying it as it goes: read a piece at a time
    /// ([`log::LOG_PIECE`]) through `log_buf`, each piece checked, then written and hashed,
    /// so the job's memory is the same whatever the log file size. The last piece is written
    /// only once the whole file has passed, so a generation of one piece that fails leaves
    /// no file; a longer one leaves what it wrote for the failure to remove.
    fn copy_log(&mut self, generation: u32) -> Result<()> {
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        let name = log::archive_name(&self.base, generation);
        let from = self.log_dir.join(&name);
        let to = self.set_dir.join(&name);
        let manifest = self.manifest.as_ref().expect("a backup with files");
        let mut check = (!planted::active(&self.env, PlantedBug::BackupSkipsLogCheck))
            .then(|| LogCheck::new(generation, manifest, &from));
        let count = !planted::active(&self.env, PlantedBug::BackupProgressSkipsLogs);
        let mut source = log::PieceReader::open(&*vfs, &from, &mut self.log_buf)?;
        let len = source.len();
        let mut crc = crc32fast::Hasher::new();
        let mut writeback = Writeback::default();
        let mut copy: Option<log::LogCopy> = None;
        let create = |created: &mut Vec<PathBuf>| -> Result<log::LogCopy> {
            let file = vfs
                .open(&to, OpenMode::CreateTruncate)
                .map_err(io_err("create", &to))?;
            created.push(to.clone());
            log::LogCopy::new(file, &to, len)
        };
        while let Some((piece, last)) = source.next_piece()? {
            if let Some(check) = check.as_mut() {
                check.piece(piece)?;
            }
            if last && let Some(check) = check.take() {
                check.finish()?;
            }
            crc.update(piece);
            let copy = match &mut copy {
                Some(copy) => copy,
                None => copy.insert(create(&mut self.created)?),
            };
            let at = copy.file().1;
            copy.write(piece, |n| self.progress.advance(if count { n } else { 0 }))?;
            writeback.wrote(copy.file().0, &to, at, piece.len() as u64)?;
            // Paced, and stoppable, a piece at a time: a generation may be a gibibyte.
            let (instance, id) = (&self.instance, self.id);
            stop_requested(instance, id)?;
            self.pace.advance(&self.env, piece.len() as u64, || {
                stop_requested(instance, id)
            })?;
        }
        if let Some(check) = check.take() {
            check.finish()?; // An empty file: no piece was its last.
        }
        let copy = match copy {
            Some(copy) => copy,
            None => create(&mut self.created)?,
        };
        copy.finish(|n| self.progress.advance(if count { n } else { 0 }))?;
        self.summary.log_bytes += len;
        self.manifest
            .as_mut()
            .expect("a backup with files")
            .logs
            .push(SetLog {
                generation,
                len,
                crc: crc.finalize(),
            });
        self.emit(Event::FileCopied {
            operation: Operation::Backup,
            from,
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
        self.emit(Event::BackupSucceeded {
            kind: self.kind,
            directory: self.dir.clone(),
            sequence: self.begin.sequence,
        });
        // The backup is done; what the callback says now changes nothing.
        let _ = self.progress.report(StatusKind::Complete);
        Ok(std::mem::take(&mut self.summary))
    }

    /// Everything up to the commit point: the rest of the copy, the fsyncs, the manifest.
    fn commit(&mut self) -> Result<()> {
        while self.step_inner()? {}
        // A backup of an instance terminated (and initialised again) since it began is
        // abandoned: nothing now holds its logs.
        let id = self.id;
        self.instance
            .with_core_for_backup(|core| check_hold(core, id))?;
        let Some(dir) = self.dir.clone() else {
            // A backup without a path: the truncation is the whole of it.
            let id = self.id;
            let truncation = self.instance.with_core_for_backup(|core| {
                check_hold(core, id)?;
                core.truncate_logs()
            })?;
            if let Some((low, high)) = truncation.carry_out(&self.instance)? {
                self.summary.truncated = Some((low, high));
                self.emit(Event::LogsTruncated { low, high });
            }
            return Ok(());
        };
        let vfs = std::sync::Arc::clone(&self.env.vfs);
        // Every file is fsynced already; now the entries naming them. (The set directory's own
        // entry was made durable when it was created.)
        vfs.sync_dir(&self.set_dir)
            .map_err(io_err("fsync", &self.set_dir))?;
        let manifest = self.manifest.as_ref().expect("a backup with files");
        debug_assert_eq!(manifest.log_range().1, self.begin.gen_high);
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
        written.and_then(|()| self.check_stop()).and_then(|()| {
            vfs.rename(&tmp, &dir.join(MANIFEST_NAME))
                .map_err(io_err("rename", &tmp))
        })?;
        // From here the directory may name the new set: a failure must put the old back.
        self.manifest_touched = true;
        vfs.sync_dir(&dir).map_err(io_err("fsync", &dir))?;
        Ok(())
    }

    /// After the commit point: remove the replaced set, release the instance, record the
    /// backup in the header, truncate. Failures are warnings.
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
        let (id, kind, begin) = (self.id, self.kind, self.begin);
        if kind == BackupKind::Truncate {
            self.instance.with_core_quietly(|core| release(core, id));
            return;
        }
        let result = self.instance.with_core_for_backup(|core| {
            release(core, id);
            let info = BackupInfo {
                mark: begin.mark,
                time_millis: begin.millis,
                gen_low: begin.gen_low,
                gen_high: begin.gen_high,
            };
            let record = |header: &mut DbHeader| {
                if kind == BackupKind::Full {
                    header.backup_full = info;
                    header.backup_incremental = BackupInfo::default();
                } else {
                    header.backup_incremental = info;
                }
            };
            // The record is durable before the logs it allows to go are deleted. It records
            // commits up to the backup's point, so the log holds them durably first.
            core.flush_log()?;
            if planted::active(&core.env, PlantedBug::BackupRecordWaitsForCheckpoint) {
                record(core.db.pager_mut().header_mut());
            } else {
                core.change(|core| core.db.pager_mut().write_header_now(record))?;
            }
            core.truncate_logs()
        });
        // The files go without the instance lock: unlinking a gibibyte of logs takes a while.
        let result = result.and_then(|truncation| truncation.carry_out(&self.instance));
        match result {
            Ok(Some((low, high))) => {
                self.summary.truncated = Some((low, high));
                self.emit(Event::LogsTruncated { low, high });
            }
            Ok(None) => {}
            Err(err) => {
                // The instance may have released the hold already, or be gone.
                self.instance.with_core_quietly(|core| release(core, id));
                self.warn(format!(
                    "the backup is complete, but recording it in the header and truncating the logs failed: {err}"
                ));
            }
        }
    }

    fn warn(&mut self, message: String) {
        self.emit(Event::Warning {
            operation: Operation::Backup,
            message: message.clone(),
        });
        self.summary.warnings.push(message);
    }

    /// Fails the backup: removes what it wrote, puts the previous manifest back if the commit
    /// point was attempted, releases the instance, reports. Returns `err`.
    fn fail(&mut self, err: JetError) -> JetError {
        if self.state != JobState::Running {
            return err;
        }
        self.state = JobState::Failed;
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
        let id = self.id;
        self.instance.with_core_quietly(|core| {
            release(core, id);
        });
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

/// Fails with `JET_errBackupAbortByServer` if [`Instance::stop_backup`] stopped backup `id`.
fn stop_requested(instance: &Instance, id: u64) -> Result<()> {
    if instance.shared.backup_stop.load(Ordering::Acquire) == id
        && !planted::active(&instance.shared.env, PlantedBug::StopBackupIgnored)
    {
        bail!(
            BackupAbortByServer,
            "the backup was stopped (JetStopBackup) before it was complete"
        );
    }
    Ok(())
}

/// Checks that the instance still runs this backup (a term or a new init ends it).
fn check_hold(core: &Core, id: u64) -> Result<()> {
    match core.backup {
        Some(hold) if hold.id == id => Ok(()),
        _ => bail!(
            BackupAbortByServer,
            "the instance no longer runs this backup (it was terminated and initialised again)"
        ),
    }
}

/// Ends the instance's hold for backup `id`, and its fence over the database file.
fn release(core: &mut Core, id: u64) {
    if core.backup.is_some_and(|h| h.id == id) {
        core.backup = None;
        core.db.pager_mut().clear_fence();
    }
}

/// The dbtime the flush map says page `pgno` was last written with (0: never written).
fn stamp(stamps: &[u64], pgno: Pgno) -> u64 {
    stamps.get(pgno as usize).copied().unwrap_or(0)
}

/// A page the backup copies must pass its checksum, or be blank (allocated, never written),
/// and be the page its last write left (`stamp`, when it has been written).
fn check_page(env: &Env, page: &[u8], pgno: Pgno, stamp: u64, from: &Path) -> Result<()> {
    if planted::active(env, PlantedBug::BackupSkipsPageCheck) {
        return Ok(());
    }
    let checked = page::verify_copy(page, pgno).and_then(|()| {
        let found = page::dbtime_of(page);
        match stamp == 0 || found == stamp {
            true => Ok(()),
            false => Err(crate::store::flushmap::lost_flush(pgno, found, stamp)),
        }
    });
    checked.map_err(|err| {
        JetError::new(
            err.kind(),
            format!(
                "{}: {} (found by the backup)",
                from.display(),
                err.message()
            ),
        )
    })
}

/// An archived generation the backup copies must be whole: its header, every segment, its end.
/// Checked as it is read, a piece at a time: the header as soon as it is whole (the
/// generation, log set and database it names), every segment and record as they come, the
/// end once the file has been read.
struct LogCheck<'a> {
    scanner: log::LogScanner,
    generation: u32,
    manifest: &'a Manifest,
    from: &'a Path,
}

impl<'a> LogCheck<'a> {
    fn new(generation: u32, manifest: &'a Manifest, from: &'a Path) -> LogCheck<'a> {
        LogCheck {
            // (The scan's own errors name the file already.)
            scanner: log::LogScanner::new(&from.display().to_string()),
            generation,
            manifest,
            from,
        }
    }

    fn bad(from: &Path, why: String) -> JetError {
        JetError::new(
            ErrorKind::LogReadVerifyFailure,
            format!("{}: {why} (found by the backup)", from.display()),
        )
    }

    /// The scan's own error: a damaged header is the backup's verify failure.
    fn found(e: JetError) -> JetError {
        match e.kind() {
            ErrorKind::BadLogVersion => e,
            _ => JetError::new(
                ErrorKind::LogReadVerifyFailure,
                format!("{} (found by the backup)", e.message()),
            ),
        }
    }

    /// Checks the file's next piece.
    fn piece(&mut self, piece: &[u8]) -> Result<()> {
        let known = self.scanner.header().is_some();
        self.scanner.feed(piece).map_err(Self::found)?;
        match self.scanner.header() {
            Some(header) if !known => self.header(header),
            _ => Ok(()),
        }
    }

    fn header(&self, header: &log::LogHeader) -> Result<()> {
        if header.generation != self.generation {
            return Err(Self::bad(
                self.from,
                format!("it holds generation {:#X}", header.generation),
            ));
        }
        if header.log_signature != self.manifest.log_signature {
            return Err(Self::bad(self.from, "it belongs to another log set".into()));
        }
        if header.db_signature != self.manifest.db_signature {
            return Err(Self::bad(
                self.from,
                "it belongs to another database".into(),
            ));
        }
        Ok(())
    }

    /// Judges the file once every piece has been checked.
    fn finish(self) -> Result<()> {
        let scan = self.scanner.finish().map_err(Self::found)?;
        match &scan.tail {
            LogTail::Ended => Ok(()),
            other => Err(Self::bad(
                self.from,
                format!(
                    "an archived generation must be whole and ended, and it is {}",
                    crate::wal::recovery::describe_tail(other)
                ),
            )),
        }
    }
}

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
