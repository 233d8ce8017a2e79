//! The instance: one database under a write-ahead log, its lifecycle (init, term,
//! stop_service), and the shared state every session works on.
//!
//! All work goes through one lock over the [`Core`]: the database, the log, the checkpoint
//! file, the open transactions, their write locks and the version store. The engine spawns no
//! threads; what ESE does in the background happens here at explicit points — the log is
//! flushed at a durable commit, a roll, cache pressure, a checkpoint, [`Instance::flush_log`]
//! or term; the
//! checkpoint advances when the log grows past the checkpoint depth, at
//! [`Instance::checkpoint`] and at term; changed pages are written back, as one batch, at a
//! checkpoint and under cache pressure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;

use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::limits;
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{Vfs, parent_dir};
use crate::store::database::{Database, DatabaseOptions, Table};
use crate::store::header::{DbHeader, DbState, Lgpos, Signature};
use crate::store::integrity::IntegrityReport;
use crate::store::page::Pgno;
use crate::txn::event::EventLog;
use crate::txn::version::VersionStore;
use crate::txn::writeset::{Write, WriteSet};
use crate::wal::checkpoint::CheckpointFile;
use crate::wal::log::{self, CommitRecord, LogWriter, SEGMENT_SIZE, TableRecord};
use crate::wal::recovery::{self, Layout, RecoveryReport};

/// An instance's parameters, named as ESE names them (`JET_param…`).
#[derive(Clone, Debug)]
pub struct InstanceParams {
    /// Where the log files go (`JET_paramLogFilePath`).
    pub log_path: PathBuf,
    /// Where the checkpoint file goes (`JET_paramSystemPath`).
    pub system_path: PathBuf,
    /// The database file the instance attaches; created at init if it does not exist.
    pub database_path: PathBuf,
    /// The three-character prefix of the log and checkpoint file names
    /// (`JET_paramBaseName`, default `edb`).
    pub base_name: String,
    /// The size of each log file in bytes (`JET_paramLogFileSize`, which ESE gives in KiB): a
    /// multiple of 4 KiB from 128 KiB to 1 GiB. Default 5 MiB.
    pub log_file_size: u64,
    /// Delete log generations the checkpoint has passed (`JET_paramCircularLog`). Off by
    /// default: archived logs then stay until a backup truncates them.
    pub circular_logging: bool,
    /// Create the log, system and database directories if they do not exist
    /// (`JET_paramCreatePathIfNotExist`); otherwise a missing one is `JET_errInvalidPath`. A
    /// path through a regular file is `JET_errInvalidPath` either way.
    pub create_path_if_not_exist: bool,
    /// Write-ahead logging and crash recovery (`JET_paramRecovery`). Off: no log, commits are
    /// durable only at [`Instance::checkpoint`] and term, a crash leaves the database dirty
    /// (`JET_errDatabaseDirtyShutdown` on the next init), and the database is cut loose from
    /// any log set it had. Backup refuses it with `JET_errLoggingDisabled`.
    pub recovery: bool,
    /// The page size of a new database (`JET_paramDatabasePageSize`).
    pub page_size: usize,
    /// The most bytes of pages to cache (`JET_paramCacheSizeMax`).
    pub cache_size: usize,
    /// How many bytes of log may accumulate past the checkpoint before it is advanced
    /// (`JET_paramCheckpointDepthMax`, default 20 MiB).
    pub checkpoint_depth: u64,
    /// The most bytes open transactions' changes and the versions kept for their snapshots
    /// may take (`JET_paramMaxVerPages`); past it, writes fail with
    /// `JET_errVersionStoreOutOfMemory`. Default 256 MiB.
    pub version_store_size: usize,
    /// Where backup and restore report their steps (ESE's event log); nowhere by default.
    pub event_log: EventLog,
}

impl InstanceParams {
    /// Parameters that keep everything in directory `dir`: `data.edb`, the logs `edb*.log` and
    /// the checkpoint `edb.chk`.
    pub fn in_directory(dir: impl AsRef<Path>) -> InstanceParams {
        let dir = dir.as_ref();
        InstanceParams {
            log_path: dir.to_path_buf(),
            system_path: dir.to_path_buf(),
            database_path: dir.join("data.edb"),
            base_name: "edb".into(),
            log_file_size: log::LOG_FILE_SIZE_DEFAULT,
            circular_logging: false,
            create_path_if_not_exist: false,
            recovery: true,
            page_size: limits::PAGE_SIZE_DEFAULT,
            cache_size: limits::CACHE_SIZE_DEFAULT,
            checkpoint_depth: 20 * 1024 * 1024,
            version_store_size: 256 * 1024 * 1024,
            event_log: EventLog::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.base_name.len() != 3 || !self.base_name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!(
                InvalidParameter,
                "the base name {:?} must be exactly 3 letters or digits",
                self.base_name
            );
        }
        if !(log::LOG_FILE_SIZE_MIN..=log::LOG_FILE_SIZE_MAX).contains(&self.log_file_size)
            || !self.log_file_size.is_multiple_of(SEGMENT_SIZE as u64)
        {
            bail!(
                InvalidParameter,
                "the log file size {} must be a multiple of 4 KiB from {} KiB to {} KiB",
                self.log_file_size,
                log::LOG_FILE_SIZE_MIN / 1024,
                log::LOG_FILE_SIZE_MAX / 1024
            );
        }
        if !limits::page_size_valid(self.page_size) {
            bail!(
                InvalidParameter,
                "page size {} is not a power of two from 4 KiB to 32 KiB",
                self.page_size
            );
        }
        Ok(())
    }

    pub(crate) fn layout(&self) -> Layout {
        Layout {
            log_dir: self.log_path.clone(),
            system_dir: self.system_path.clone(),
            database: self.database_path.clone(),
            base: self.base_name.clone(),
            log_file_size: self.log_file_size,
            circular: self.circular_logging,
        }
    }
}

/// How a commit is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// The log is fsynced before the commit returns (ESE's default).
    Durable,
    /// The commit returns at once (`JET_bitCommitLazyFlush`); it becomes durable with the next
    /// durable commit, [`Instance::flush_log`], a log roll, a checkpoint, cache pressure or
    /// term. A crash
    /// may lose it, but only together with every later commit.
    Lazy,
}

/// Counters of what an instance has done since init.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Transactions committed durably.
    pub durable_commits: u64,
    /// Transactions committed lazily.
    pub lazy_commits: u64,
    /// Transactions rolled back (explicitly or by being dropped).
    pub rollbacks: u64,
    /// Writes refused with `JET_errWriteConflict`.
    pub write_conflicts: u64,
    /// Checkpoints written (each moved the checkpoint forward).
    pub checkpoints: u64,
    /// Log generations started.
    pub log_rolls: u64,
    /// Bytes of log segments written (a flush writes its last, partly filled segment whole).
    pub log_bytes_written: u64,
    /// Database pages written: each page of a batch twice (the doublewrite file, then its
    /// place), and the header copies.
    pub database_pages_written: u64,
    /// Archived generations deleted by circular logging.
    pub logs_deleted: u64,
    /// Pages in the database cache now.
    pub cache_pages: u64,
    /// The cache's size in pages (`cache_size` over the page size, at least
    /// `limits::CACHE_PAGES_MIN`). Between calls the cache holds no more than this, beside
    /// [`InstanceStats::cache_pages_pinned`].
    pub cache_pages_max: u64,
    /// Changed pages the cache may not evict yet, whatever its size: they wait for the next
    /// batch (a checkpoint, or cache pressure after a call).
    pub cache_pages_pinned: u64,
    /// Page frames the cache holds memory for, holding a page or free. They grow with the
    /// cache past its size and go back (a whole arena at a time) when it is trimmed.
    pub cache_frames: u64,
}

#[derive(Clone, Debug)]
pub(crate) enum Lifecycle {
    NotInitialized,
    Initializing,
    /// [`Instance::restore`] is running (before any init).
    Restoring,
    Running,
    Terminating,
    Stopped,
    Failed(JetError),
}

/// An ESE instance: one database, its log, sessions and transactions.
///
/// `Instance` is a cheap handle (`Clone`, `Send`, `Sync`); sessions may be used from several
/// threads, each session by one thread at a time (its methods take `&mut self`: Rust's
/// ownership replaces ESE's run-time `JET_errSessionSharingViolation`).
///
/// ```
/// use jetdb::{CommitMode, Env, Instance, InstanceParams};
/// # fn main() -> jetdb::Result<()> {
/// let env = Env::memory(7);
/// env.vfs.create_dir("inst".as_ref()).unwrap();
/// let instance = Instance::new(env, InstanceParams::in_directory("inst"));
/// instance.init()?;
/// let mut session = instance.begin_session()?;
/// let users = session.create_table("users")?;
/// session.begin_transaction()?;
/// session.put(users, b"ada", b"lovelace")?;
/// session.put(users, b"grace", b"hopper")?;
/// session.commit_transaction(CommitMode::Durable)?; // durable once this returns
/// session.begin_transaction()?;
/// session.delete(users, b"ada")?;
/// session.rollback()?; // as if it never happened
/// assert_eq!(session.get(users, b"ada")?, Some(b"lovelace".to_vec()));
/// instance.term()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Instance {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) env: Env,
    params: InstanceParams,
    pub(crate) state: Mutex<Lifecycle>,
    /// The instance lock. Eventually fair (`parking_lot`): a thread waiting for it more than
    /// about half a millisecond is handed it at the next unlock, so a closed-loop committer
    /// cannot starve a backup's bookkeeping or another session.
    core: parking_lot::Mutex<Option<Core>>,
    /// Transaction ids are unique for the life of the `Instance` value, across inits.
    next_transaction: AtomicU64,
    /// How many times the instance was initialised: sessions and table handles of an earlier
    /// init are refused.
    pub(crate) inits: AtomicU64,
    /// The id of the backup [`Instance::stop_backup`] last stopped (0: none).
    pub(crate) backup_stop: AtomicU64,
}

/// A place a restore began to fill and never finished is not an instance: its files are the
/// restore's debris (logs without their database, a database copy not yet replayed). Init
/// refuses it (`JET_errSoftRecoveryOnBackupDatabase`, -544, as ESE refuses soft recovery of a
/// backup's files) until a restore into it finishes.
fn refuse_half_restored(env: &Env, params: &InstanceParams) -> Result<()> {
    let marker = params.layout().restore_marker();
    if env
        .vfs
        .exists(&marker)
        .map_err(|err| JetError::io(format!("look up {}", marker.display()), &err))?
    {
        bail!(
            SoftRecoveryOnBackupDatabase,
            "{} is there: a restore into this place did not finish; run the restore again (it clears what the first one left)",
            marker.display()
        );
    }
    // The marker's absence must be durable before this instance writes anything: a restore
    // killed between the marker's removal and its directory's fsync leaves a removal a power
    // loss can undo, and the marker would come back over this instance's commits.
    let dir = parent_dir(&marker);
    if !dir.as_os_str().is_empty() && env.vfs.is_dir(dir).unwrap_or(false) {
        env.vfs
            .sync_dir(dir)
            .map_err(|err| JetError::io(format!("fsync {}", dir.display()), &err))?;
    }
    Ok(())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock is a broken invariant; the data is still whole enough to
    // report errors from.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Instance {
    /// A new instance with these parameters, not yet initialised (ESE's JetCreateInstance).
    pub fn new(env: Env, params: InstanceParams) -> Instance {
        Instance {
            shared: Arc::new(Shared {
                env,
                params,
                state: Mutex::new(Lifecycle::NotInitialized),
                core: parking_lot::Mutex::new(None),
                next_transaction: AtomicU64::new(1),
                backup_stop: AtomicU64::new(0),
                inits: AtomicU64::new(0),
            }),
        }
    }

    /// The instance's parameters.
    pub fn params(&self) -> &InstanceParams {
        &self.shared.params
    }

    /// Initialises the instance (ESE's JetInit): creates the database if it does not exist,
    /// runs crash recovery if the last shutdown was not clean, and starts logging.
    ///
    /// Recovery starts at the checkpoint. Without the checkpoint file it replays from
    /// generation 1 when the log set's whole history is there (for a clean database too: the
    /// logs give the last commit's sequence, which new commits continue), and otherwise
    /// refuses with `JET_errCheckpointFileNotFound` (-542).
    pub fn init(&self) -> Result<()> {
        {
            let mut state = lock(&self.shared.state);
            match &*state {
                Lifecycle::NotInitialized => *state = Lifecycle::Initializing,
                Lifecycle::Initializing => {
                    bail!(InitInProgress, "the instance is being initialised")
                }
                Lifecycle::Restoring => {
                    bail!(RestoreInProgress, "a restore into the instance is running")
                }
                _ => bail!(AlreadyInitialized, "the instance is already initialised"),
            }
        }
        let epoch = self.shared.inits.fetch_add(1, Ordering::Relaxed) + 1;
        let result = refuse_half_restored(&self.shared.env, &self.shared.params)
            .and_then(|()| Core::start(&self.shared.env, &self.shared.params, epoch));
        let mut state = lock(&self.shared.state);
        match result {
            Ok(core) => {
                *self.shared.core.lock() = Some(core);
                *state = Lifecycle::Running;
                Ok(())
            }
            Err(err) => {
                *state = Lifecycle::NotInitialized;
                Err(err)
            }
        }
    }

    /// Shuts the instance down cleanly (ESE's JetTerm): open transactions are rolled back,
    /// the log is flushed, every changed page is written, the database is marked
    /// `CleanShutdown` and the checkpoint moved to the end of the log; last, the disk space of
    /// the current log generation's blank tail is given back (the next init takes it again).
    /// After a fatal error the instance is released without writing anything and term
    /// returns `JET_errInstanceUnavailable`: lazy commits may be lost, and the next init
    /// recovers.
    pub fn term(&self) -> Result<()> {
        let failed = {
            let mut state = lock(&self.shared.state);
            let failed = match &*state {
                Lifecycle::NotInitialized => {
                    bail!(NotInitialized, "the instance is not initialised")
                }
                Lifecycle::Initializing => {
                    bail!(InitInProgress, "the instance is being initialised")
                }
                Lifecycle::Restoring => {
                    bail!(RestoreInProgress, "a restore into the instance is running")
                }
                Lifecycle::Terminating => bail!(TermInProgress, "the instance is shutting down"),
                Lifecycle::Failed(_) => true,
                Lifecycle::Running | Lifecycle::Stopped => false,
            };
            *state = Lifecycle::Terminating;
            failed
        };
        // Whatever happens below — an error, or a panic on a broken invariant — the instance
        // ends up uninitialised, so a new init can recover.
        struct Released<'a>(&'a Mutex<Lifecycle>);
        impl Drop for Released<'_> {
            fn drop(&mut self) {
                *lock(self.0) = Lifecycle::NotInitialized;
            }
        }
        let _released = Released(&self.shared.state);
        let core = self.shared.core.lock().take();
        match core {
            Some(mut core) if !failed && core.fatal.is_none() => core.shut_down(),
            // Released, but not shut down cleanly: the caller must know that lazy commits
            // may be lost and that the next init recovers.
            Some(core) => bail!(
                InstanceUnavailable,
                "the instance stopped after a fatal error ({}); it was released without a clean shutdown, and the next init recovers",
                core.fatal
                    .as_ref()
                    .map_or("see the earlier error".to_string(), ToString::to_string)
            ),
            None => bail!(NotInitialized, "the instance is not initialised"),
        }
    }

    /// Stops all activity (ESE's JetStopService): every later call that would work on the
    /// instance gets `JET_errClientRequestToStopJetService`. [`Instance::term`] still shuts it
    /// down, and rolling back or dropping a session still releases what it held.
    pub fn stop_service(&self) -> Result<()> {
        let mut state = lock(&self.shared.state);
        match &*state {
            Lifecycle::Running => {
                *state = Lifecycle::Stopped;
                Ok(())
            }
            other => Err(state_error(other)),
        }
    }

    /// Makes every lazy commit durable.
    pub fn flush_log(&self) -> Result<()> {
        self.with_core(Core::flush_log)
    }

    /// Writes every changed page and advances the checkpoint to the end of the log (with
    /// circular logging, deleting the generations it passes).
    pub fn checkpoint(&self) -> Result<()> {
        self.with_core(Core::checkpoint)
    }

    /// What crash recovery did at the last init, if logging is on.
    pub fn recovery_report(&self) -> Result<Option<RecoveryReport>> {
        self.with_core(|core| Ok(core.recovery.clone()))
    }

    /// Counters since init.
    pub fn stats(&self) -> Result<InstanceStats> {
        self.with_core(|core| {
            let mut stats = core.stats;
            if let Some(log) = &core.log {
                stats.log_rolls = log.writer.rolls();
                stats.log_bytes_written = log.writer.bytes_written();
            }
            let pager = core.db.pager_mut();
            stats.cache_pages = pager.cached_pages() as u64;
            stats.database_pages_written = pager.pages_written();
            stats.cache_pages_max = pager.cache_pages_max() as u64;
            stats.cache_pages_pinned = pager.pinned_pages() as u64;
            stats.cache_frames = pager.frames_allocated() as u64;
            Ok(stats)
        })
    }

    /// The position the next log record will take, if logging is on.
    pub fn log_position(&self) -> Result<Option<Lgpos>> {
        self.with_core(|core| Ok(core.log.as_ref().map(|log| log.writer.position())))
    }

    /// The checkpoint: where recovery would start now, if logging is on.
    pub fn checkpoint_position(&self) -> Result<Option<Lgpos>> {
        self.with_core(|core| {
            Ok(core
                .log
                .as_ref()
                .map(|log| log.checkpoint.current().position))
        })
    }

    /// The database header as it stands in memory.
    pub fn database_header(&self) -> Result<DbHeader> {
        self.with_core(|core| Ok(core.db.header().clone()))
    }

    /// Checks the whole database: every page used exactly once, every tree well formed.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        self.with_core(|core| core.db.check_integrity())
    }

    /// Runs `f` on the core if the instance takes work; a fatal error inside stops the
    /// instance.
    pub(crate) fn with_core<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        check_state(&lock(&self.shared.state))?;
        self.with_running_core(f)
    }

    /// [`Instance::with_core`] for backup calls, which name the lifecycle states as JetBackup
    /// does: during init `JET_errBackupNotAllowedYet`.
    pub(crate) fn with_core_for_backup<T>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T>,
    ) -> Result<T> {
        self.check_backup_state()?;
        self.with_running_core(f)
    }

    /// Whether the instance's lifecycle state lets a backup call run, as JetBackup names the
    /// states (during init `JET_errBackupNotAllowedYet`). Takes only the state's lock, which
    /// no one holds across I/O.
    pub(crate) fn check_backup_state(&self) -> Result<()> {
        match &*lock(&self.shared.state) {
            Lifecycle::Initializing => bail!(
                BackupNotAllowedYet,
                "the instance is being initialised (recovery may be running); back up once init returns"
            ),
            other => check_state(other),
        }
    }

    fn with_running_core<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        let mut guard = self.shared.core.lock();
        let Some(core) = guard.as_mut() else {
            bail!(NotInitialized, "the instance is not initialised");
        };
        if let Some(err) = &core.fatal {
            bail!(
                InstanceUnavailable,
                "the instance stopped after a fatal error ({err})"
            );
        }
        let result = f(core);
        // A failed write or fsync of the database, even one a read made while evicting,
        // leaves the file's state unknown: the instance takes no more work until a new init.
        if core.fatal.is_none()
            && !planted::active(&core.env, PlantedBug::DatabaseWriteFailureNotFatal)
            && let Err(unusable) = core.db.check_usable()
        {
            core.fail(result.as_ref().err().cloned().unwrap_or(unusable));
        }
        if let Some(err) = &core.fatal {
            *lock(&self.shared.state) = Lifecycle::Failed(err.clone());
        }
        result
    }

    /// Runs `f` on the core whatever the lifecycle state, if there is one: for releasing what
    /// a dropped transaction held.
    pub(crate) fn with_core_quietly(&self, f: impl FnOnce(&mut Core)) {
        if let Some(core) = self.shared.core.lock().as_mut() {
            f(core);
        }
    }

    pub(crate) fn next_transaction_id(&self) -> u64 {
        self.shared.next_transaction.fetch_add(1, Ordering::Relaxed)
    }
}

fn state_error(state: &Lifecycle) -> JetError {
    match state {
        Lifecycle::NotInitialized => {
            JetError::new(ErrorKind::NotInitialized, "the instance is not initialised")
        }
        Lifecycle::Initializing => JetError::new(
            ErrorKind::InitInProgress,
            "the instance is being initialised",
        ),
        Lifecycle::Terminating => {
            JetError::new(ErrorKind::TermInProgress, "the instance is shutting down")
        }
        Lifecycle::Restoring => JetError::new(
            ErrorKind::RestoreInProgress,
            "a restore into the instance is running",
        ),
        Lifecycle::Stopped => JetError::new(
            ErrorKind::ClientRequestToStopJetService,
            "the instance was stopped by stop_service",
        ),
        Lifecycle::Failed(err) => JetError::new(
            ErrorKind::InstanceUnavailable,
            format!("the instance stopped after a fatal error ({err})"),
        ),
        Lifecycle::Running => unreachable!("a running instance takes work"),
    }
}

fn check_state(state: &Lifecycle) -> Result<()> {
    match state {
        Lifecycle::Running => Ok(()),
        other => Err(state_error(other)),
    }
}

/// The log and checkpoint of a logging instance.
#[derive(Debug)]
pub(crate) struct Logging {
    pub(crate) writer: LogWriter,
    pub(crate) checkpoint: CheckpointFile,
    pub(crate) layout: Layout,
    /// A commit's records as they are encoded, kept for the next (`Core::log_group`).
    buf: Vec<u8>,
    /// Where each record in `buf` ends.
    ends: Vec<usize>,
}

/// The most a commit's encoding buffer keeps for the next one: a group is appended each
/// 64 KiB, so only a put whose value is larger than that (its parts encoded together) grows
/// it past this.
const KEPT_BUFFER_BYTES: usize = 128 * 1024;

/// A key's entry in the lock table: its table's root and a hash of its bytes.
type LockKey = (Pgno, u64);

/// The lock table is shrunk when the locks held fall below an eighth of the most held since
/// the last shrink, if that most was above this number; it keeps room for this many.
const LOCKS_KEPT: usize = 4096;

// A key's lock is its table and `writeset::hash_key` of it. Two keys of one table with the
// same hash share a lock: a spurious write conflict, at odds of one in 2^64 per pair, never a
// missed one.

/// A position as one number that orders like it: the generation above the offset.
pub(crate) fn lsn(pos: Lgpos) -> u64 {
    (u64::from(pos.generation) << 32) | u64::from(pos.offset)
}

/// Everything behind the instance lock.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) env: Env,
    pub(crate) params: InstanceParams,
    pub(crate) db: Database,
    pub(crate) log: Option<Logging>,
    /// The sequence number of the last commit: a snapshot is one of these.
    pub(crate) last_sequence: u64,
    /// Open transactions and their snapshots.
    active: BTreeMap<u64, u64>,
    /// Keys written by open transactions, and by which: each key as its table and a 64-bit
    /// hash of its bytes (`lock_of`), so a transaction's write set holds its keys once.
    locks: FxHashMap<LockKey, u64>,
    /// The most locks held at once since the lock table was last shrunk.
    locks_peak: usize,
    versions: VersionStore,
    /// The first fatal error: a failed log write or fsync, or a failure in the middle of
    /// applying a commit. After it the instance refuses all work.
    fatal: Option<JetError>,
    pub(crate) stats: InstanceStats,
    pub(crate) recovery: Option<RecoveryReport>,
    /// Which init of the instance this is.
    pub(crate) epoch: u64,
    /// The running backup, if any: one at a time.
    pub(crate) backup: Option<BackupHold>,
    /// The checkpoint a batch being written in pieces will advance to (`Core::maintain`).
    round: Option<RoundMark>,
    /// The log's end when `Core::maintain` last ran: what a commit adds past it is its own.
    maintained: Option<Lgpos>,
}

/// Where a batch written in pieces began: once it is in the file, the checkpoint moves here.
#[derive(Clone, Copy, Debug)]
struct RoundMark {
    /// The log's end when the batch was frozen: every change logged before is in it.
    position: Lgpos,
    /// The last commit's sequence then.
    sequence: u64,
}

/// What a running backup holds in the instance.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BackupHold {
    /// The job's id.
    pub(crate) id: u64,
    /// The lowest log generation it copies: none from here on is deleted while it runs.
    pub(crate) keep_from: u32,
}

impl Core {
    pub(crate) fn start(env: &Env, params: &InstanceParams, epoch: u64) -> Result<Core> {
        params.validate()?;
        let layout = params.layout();
        for dir in [
            &params.log_path,
            &params.system_path,
            &parent_dir(&params.database_path).to_path_buf(),
        ] {
            ensure_dir(env, dir, params.create_path_if_not_exist)?;
        }
        let options = DatabaseOptions {
            page_size: params.page_size,
            cache_size: params.cache_size,
            read_only: false,
        };
        let db_exists = env.vfs.exists(&params.database_path).map_err(|err| {
            JetError::io(format!("look up {}", params.database_path.display()), &err)
        })?;
        if !db_exists {
            if params.recovery && logs_exist(env, &layout)? {
                bail!(
                    FileNotFound,
                    "the database {} is missing, but its log files are in {}",
                    params.database_path.display(),
                    params.log_path.display()
                );
            }
            create_database(env, &params.database_path, &options)?;
        }
        if !params.recovery {
            let mut db = Database::open(env, &params.database_path, &options)?;
            // Changed without a log, the database no longer matches any log set it had:
            // recovery must never replay old logs into it.
            if db.header().log_signature != Signature::default() {
                db.pager_mut().header_mut().log_signature = Signature::default();
                db.flush()?;
            }
            db.number_tables_from(epoch << 32);
            return Ok(Core::new(env, params, db, None, None, epoch));
        }
        let recovered = recovery::run(env, &layout, &options)?;
        let mut db = recovered.db;
        let durable = lsn(recovered.writer.durable());
        db.pager_mut().set_wal_durable(durable);
        // Marked in use on disk now: a batch written before the next clean shutdown leaves
        // the file needing the log.
        db.pager_mut().set_state(DbState::DirtyShutdown);
        db.flush()?;
        // Table handles of an earlier init never match this one's.
        db.number_tables_from(epoch << 32);
        let last_commit = recovered.last_commit;
        let mut core = Core::new(
            env,
            params,
            db,
            Some(Logging {
                writer: recovered.writer,
                checkpoint: recovered.checkpoint,
                layout,
                buf: Vec::new(),
                ends: Vec::new(),
            }),
            Some(recovered.report),
            epoch,
        );
        // Commit sequence numbers run on across inits, so a replay may cross them.
        core.last_sequence = last_commit;
        core.delete_old_logs()?;
        Ok(core)
    }

    fn new(
        env: &Env,
        params: &InstanceParams,
        db: Database,
        log: Option<Logging>,
        recovery: Option<RecoveryReport>,
        epoch: u64,
    ) -> Core {
        Core {
            env: env.clone(),
            params: params.clone(),
            db,
            log,
            last_sequence: 0,
            active: BTreeMap::new(),
            locks: FxHashMap::default(),
            locks_peak: 0,
            versions: VersionStore::default(),
            fatal: None,
            stats: InstanceStats::default(),
            recovery,
            epoch,
            backup: None,
            round: None,
            maintained: None,
        }
    }

    /// Records a fatal error and returns it.
    pub(crate) fn fail(&mut self, err: JetError) -> JetError {
        self.fatal.get_or_insert_with(|| err.clone());
        err
    }

    /// Runs a change to the database; an error that leaves the database or the log unusable
    /// is fatal to the instance.
    pub(crate) fn change<T>(&mut self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        let result = f(self);
        if let Err(err) = &result {
            let log_failed = self
                .log
                .as_ref()
                .is_some_and(|l| l.writer.failed().is_some());
            let db_failed = self.db.check_usable().is_err()
                && !planted::active(&self.env, PlantedBug::DatabaseWriteFailureNotFatal);
            if log_failed || db_failed {
                return Err(self.fail(err.clone()));
            }
        }
        result
    }

    // --- transactions ---

    /// Opens a transaction: its snapshot is the last commit.
    pub(crate) fn begin(&mut self, id: u64) -> u64 {
        self.active.insert(id, self.last_sequence);
        self.last_sequence
    }

    pub(crate) fn check_open(&self, id: u64) -> Result<()> {
        if self.active.contains_key(&id) {
            Ok(())
        } else {
            bail!(
                InvalidSesid,
                "the transaction is no longer open (the instance was terminated and initialised again)"
            )
        }
    }

    /// Reads `key` as transaction snapshot `snapshot` sees it (the caller checks its own
    /// writes first).
    pub(crate) fn read(
        &mut self,
        table: Table,
        key: &[u8],
        snapshot: u64,
    ) -> Result<Option<Vec<u8>>> {
        if !self.versions.is_empty()
            && let Some(kept) = self.versions.as_of(&(table.root(), key.to_vec()), snapshot)
        {
            return Ok(kept.map(<[u8]>::to_vec));
        }
        self.db.get(table, key)
    }

    /// Whether `key` exists in `table` as a snapshot after commit `snapshot` sees it (the
    /// value is not copied).
    pub(crate) fn exists(&mut self, table: Table, key: &[u8], snapshot: u64) -> Result<bool> {
        if !self.versions.is_empty()
            && let Some(kept) = self.versions.as_of(&(table.root(), key.to_vec()), snapshot)
        {
            return Ok(kept.is_some());
        }
        self.db.contains(table, key)
    }

    /// Takes the write lock on `key` for transaction `id`, or refuses with
    /// `JET_errWriteConflict`: another open transaction wrote it, or a commit after the
    /// snapshot did.
    pub(crate) fn lock_key(
        &mut self,
        id: u64,
        snapshot: u64,
        root: Pgno,
        hash: u64,
        key: &[u8],
        write_bytes: usize,
    ) -> Result<()> {
        let lock = (root, hash);
        if let Some(&owner) = self.locks.get(&lock)
            && owner != id
        {
            self.stats.write_conflicts += 1;
            bail!(
                WriteConflict,
                "key {} is being written by another open transaction",
                show_key(key)
            );
        }
        if !self.versions.is_empty()
            && self
                .versions
                .newest(&(root, key.to_vec()))
                .is_some_and(|s| s > snapshot)
        {
            self.stats.write_conflicts += 1;
            bail!(
                WriteConflict,
                "key {} was changed by a transaction that committed after this one began",
                show_key(key)
            );
        }
        if write_bytes + self.versions.bytes() > self.params.version_store_size {
            bail!(
                VersionStoreOutOfMemory,
                "open transactions hold {} bytes of changes and versions; the most is {}",
                write_bytes + self.versions.bytes(),
                self.params.version_store_size
            );
        }
        self.locks.insert(lock, id);
        self.locks_peak = self.locks_peak.max(self.locks.len());
        Ok(())
    }

    /// Ends transaction `id`: the locks of `writes` (those it still holds) are released.
    pub(crate) fn end(&mut self, id: u64, writes: Option<&WriteSet>) {
        if self.active.remove(&id).is_none() {
            return;
        }
        if let Some(writes) = writes {
            writes.for_each(|w| self.unlock(id, w.root, w.hash));
        }
        let oldest = self.active.values().copied().min().unwrap_or(u64::MAX);
        self.versions.collect(oldest);
        // Once the locks a large transaction took are gone, give back the table that held
        // them, or it stays that size (a million puts leave tens of MiB) and every later lock
        // probes it. Judged by the most locks held since, not by the table's capacity, which
        // its removed entries blur.
        if self.locks_peak > LOCKS_KEPT && self.locks.len() * 8 < self.locks_peak {
            self.locks.shrink_to(LOCKS_KEPT.max(self.locks.len() * 2));
            self.locks_peak = self.locks.len();
        }
    }

    /// Releases transaction `id`'s lock on the key of table `root` whose hash is `hash`.
    fn unlock(&mut self, id: u64, root: Pgno, hash: u64) {
        let lock = (root, hash);
        if self.locks.get(&lock) == Some(&id) {
            self.locks.remove(&lock);
        }
    }

    /// Ends transaction `id` without committing: nothing of `writes` is applied.
    pub(crate) fn rolled_back(&mut self, id: u64, writes: &WriteSet) {
        if self.active.contains_key(&id) {
            self.stats.rollbacks += 1;
        }
        self.end(id, Some(writes));
    }

    /// Commits transaction `id`: logs its writes as one group (flushed if durable), then
    /// applies them to the trees.
    ///
    /// The writes are consumed as they are applied, so a transaction's memory falls as the
    /// cache fills. On a failure before anything is logged the transaction is rolled back
    /// (its locks released); after, the failure is fatal to the instance.
    pub(crate) fn commit(
        &mut self,
        id: u64,
        writes: WriteSet,
        tables: &BTreeMap<Pgno, Table>,
        mode: CommitMode,
    ) -> Result<()> {
        if let Err(err) = self.check_open(id) {
            self.rolled_back(id, &writes);
            return Err(err);
        }
        if writes.is_empty() {
            self.end(id, None);
            // A durable commit makes every commit before it durable, even with nothing of
            // its own to log: what the transaction read is then safe.
            if mode == CommitMode::Durable {
                self.flush_log()?;
            }
            return Ok(());
        }
        let durable = mode == CommitMode::Durable;
        // Open snapshots may still need the values this commit replaces. They are all read
        // before anything changes, so a failed read leaves the trees as they were.
        let prepared = self.next_sequence().and_then(|sequence| {
            let mut befores = Vec::new();
            if self.active.keys().any(|&other| other != id) {
                let mut keys = Vec::with_capacity(writes.len());
                writes.for_each(|w| keys.push((w.root, w.key.to_vec())));
                for key in keys {
                    let before = self.db.get(tables[&key.0], &key.1)?;
                    befores.push((key, before));
                }
            }
            Ok((sequence, befores))
        });
        let (sequence, befores) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                self.rolled_back(id, &writes);
                return Err(err);
            }
        };
        // From the first record on, any failure is fatal: the log may hold a commit the trees
        // do not, or the trees half of one.
        if let Err(err) = self.log_and_apply(id, sequence, writes, tables, durable) {
            return Err(self.fail(err));
        }
        for (key, before) in befores {
            self.versions.record(key, sequence, before);
        }
        self.last_sequence = sequence;
        if durable {
            self.stats.durable_commits += 1;
        } else {
            self.stats.lazy_commits += 1;
        }
        // (Its locks went as its writes were applied.)
        self.end(id, None);
        self.maintain_after_commit();
        Ok(())
    }

    fn next_sequence(&self) -> Result<u64> {
        match self.last_sequence.checked_add(1) {
            Some(next) => Ok(next),
            None => bail!(
                LogWriteFail,
                "commit sequence numbers are exhausted (the checkpoint may be damaged)"
            ),
        }
    }

    /// Logs a transaction's writes as one group, then applies them to the trees.
    ///
    /// The group is in the log before the trees change, so a transaction larger than the
    /// cache can have a batch write the trees half-way through it: recovery replays the whole
    /// group again from the checkpoint before it.
    fn log_and_apply(
        &mut self,
        id: u64,
        sequence: u64,
        writes: WriteSet,
        tables: &BTreeMap<Pgno, Table>,
        durable: bool,
    ) -> Result<()> {
        if self.log.is_some() {
            self.log_group(id, sequence, &writes, durable)?;
        }
        // The only open transaction holds every lock: they all go at once below, not one
        // probe of a table as large as the transaction per write.
        let sole = self.active.len() == 1;
        debug_assert!(
            !sole || self.locks.len() <= writes.len(),
            "only open transactions hold locks, one a key"
        );
        // Applied in the order written, each chunk of the write set freed once applied, and
        // (if others are open) each lock released: nobody else runs until the commit returns.
        let applied = writes.drain(
            |Write {
                 root,
                 hash,
                 key,
                 value,
             }| {
                let table = tables[&root];
                match value {
                    Some(value) => self.db.put(table, key, value)?,
                    None => {
                        self.db.delete(table, key)?;
                    }
                }
                if !sole {
                    self.unlock(id, root, hash);
                }
                if self.log.is_some() && self.db.pager_mut().over_capacity() {
                    // Written, then evicted at once: left over its size, the cache would call
                    // for a batch after every write to a page it already holds.
                    self.batch()?;
                    self.db.pager_mut().trim()?;
                }
                Ok(())
            },
        );
        if sole {
            self.locks.clear();
        }
        applied
    }

    /// Runs the work that follows a commit. The commit is already logged (and acknowledged
    /// to its caller), so a failure here does not fail it; it stops the instance, whose
    /// database writes are then in an unknown state.
    fn maintain_after_commit(&mut self) {
        if let Err(err) = self.maintain() {
            self.fail(err);
        }
    }

    /// Logs a transaction's writes, then its commit record; flushes the log if `durable`.
    fn log_group(
        &mut self,
        id: u64,
        sequence: u64,
        writes: &WriteSet,
        durable: bool,
    ) -> Result<()> {
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let (mut puts, mut deletes, mut records) = (0u32, 0u32, 0u32);
        // Buffers kept from one commit to the next: a small commit then allocates nothing
        // here (a cold allocation costs about what encoding a record does).
        let (mut buf, mut ends) = (std::mem::take(&mut log.buf), std::mem::take(&mut log.ends));
        let mut append = |buf: &mut Vec<u8>, ends: &mut Vec<usize>| -> Result<()> {
            let mut start = 0;
            for &end in ends.iter() {
                log.writer.append(&buf[start..end])?;
                start = end;
            }
            records += ends.len() as u32;
            buf.clear();
            ends.clear();
            Ok(())
        };
        // Table by table (a pass each), so the log names each table once per group however
        // the transaction interleaved them; writes to distinct keys commute, so replaying them
        // in this order leaves what applying them in the order written does.
        for &only in writes.roots() {
            let name = self.db.table_name(only).expect("a written table is open");
            log::encode_table(&mut buf, TableRecord::Use, name);
            ends.push(buf.len());
            writes.try_for_each(
                |Write {
                     root, key, value, ..
                 }| {
                    if root != only {
                        return Ok(());
                    }
                    match value {
                        Some(value) => {
                            log::encode_put(&mut buf, &mut ends, key, value);
                            puts += 1;
                        }
                        None => {
                            log::encode_delete(&mut buf, key);
                            ends.push(buf.len());
                            deletes += 1;
                        }
                    }
                    if buf.len() >= 64 * 1024 {
                        append(&mut buf, &mut ends)?;
                    }
                    Ok(())
                },
            )?;
        }
        append(&mut buf, &mut ends)?;
        let commit = CommitRecord {
            transaction: id,
            sequence,
            millis: self.env.clock.now_millis(),
            records,
            puts,
            deletes,
        };
        log::encode_commit(&mut buf, &commit);
        let result = self.append_commit(&buf, durable);
        let log = self.log.as_mut().expect("logging");
        // (`append` left no record end behind: the commit record is appended whole.)
        debug_assert!(ends.is_empty());
        if buf.capacity() <= KEPT_BUFFER_BYTES {
            buf.clear();
            (log.buf, log.ends) = (buf, ends);
        }
        result
    }

    /// Appends an encoded commit record, flushes the log if `durable`, and tells the pager
    /// how far the log holds the cache's changes and how far it is durable.
    fn append_commit(&mut self, record: &[u8], durable: bool) -> Result<()> {
        let log = self.log.as_mut().expect("logging");
        let end = log.writer.append(record)?;
        self.db.pager_mut().logged(lsn(end));
        if durable {
            log.writer.flush()?;
        }
        let durable_to = lsn(log.writer.durable());
        self.db.pager_mut().set_wal_durable(durable_to);
        Ok(())
    }

    /// The work ESE does in the background, done after each commit: advance the checkpoint
    /// as the log grows, and relieve cache pressure.
    ///
    /// Once the log has grown half its checkpoint depth past the checkpoint, the changed
    /// pages are frozen as a batch (`Pager::begin_round`), and each later commit writes a
    /// share of it, paced by the log's growth so the batch is in the file by the time the log
    /// has grown another half depth; then the checkpoint moves to where the batch began. No
    /// commit waits for a whole batch, unless the log outruns the pace (the batch is then
    /// finished at once) or the cache fills with pages waiting for it.
    ///
    /// A commit that alone logged half a depth or more also writes the batch it begins:
    /// it changed about as many pages as a batch holds, and paying for them is in
    /// proportion to its size; left to the small commits after it, they would each carry a
    /// share of a backlog they did not make.
    fn maintain(&mut self) -> Result<()> {
        let Some(log) = &self.log else {
            return self.relieve_cache();
        };
        let file = self.params.log_file_size;
        let at = |p: Lgpos| u64::from(p.generation) * file + u64::from(p.offset);
        let end = log.writer.position();
        let pos = at(end);
        let own = pos.saturating_sub(self.maintained.map_or(pos, at));
        self.maintained = Some(end);
        let window = (self.params.checkpoint_depth / 2).max(1);
        if let Some(mark) = self.round {
            // (No batch: another write finished it, a backup's header record; the
            // checkpoint still moves. A batch of no pages, the header alone, goes at once.)
            let progress = self.db.pager_mut().round_progress();
            let (total, done) = progress.unwrap_or((0, 0));
            let grown = pos.saturating_sub(at(mark.position));
            let due = match grown >= window {
                true => total,
                false => (total as u64 * grown).div_ceil(window) as usize,
            };
            if due > done || total == 0 {
                self.change(|core| core.advance_round(due - done))?;
            }
        }
        // A batch just finished may leave the checkpoint far behind (a large commit arrived
        // while it was written): the next one begins at once.
        if self.round.is_none() {
            let log = self.log.as_ref().expect("checked");
            let behind = pos.saturating_sub(at(log.checkpoint.current().position));
            if behind > window {
                self.change(Core::begin_round)?;
                // Already past the whole depth, or this commit alone made a batch's worth:
                // the batch goes in now.
                if behind > self.params.checkpoint_depth || own >= window {
                    self.change(Core::settle_round)?;
                }
            }
        }
        self.relieve_cache()
    }

    /// Freezes the changed pages as a batch to be written in pieces after the commits to
    /// come (the log flushed first: the WAL rule).
    fn begin_round(&mut self) -> Result<()> {
        self.make_log_durable()?;
        let Some(log) = &self.log else {
            return Ok(());
        };
        let mark = RoundMark {
            position: log.writer.position(),
            sequence: self.last_sequence,
        };
        let state = self.db.header().state;
        self.db.pager_mut().begin_round(state)?;
        if self.db.pager_mut().round_running() {
            self.round = Some(mark);
        }
        Ok(())
    }

    /// Writes up to `budget` more pieces of the batch being written; once it is in the
    /// file, moves the checkpoint to where it began.
    fn advance_round(&mut self, budget: usize) -> Result<()> {
        let Some(mark) = self.round else {
            return self.db.pager_mut().finish_round();
        };
        if !self.db.pager_mut().advance_round(budget)? {
            return Ok(());
        }
        self.round = None;
        if let Some(log) = &mut self.log
            && mark.position > log.checkpoint.current().position
        {
            log.checkpoint
                .write(mark.position, mark.sequence, self.env.clock.now_millis())?;
            self.stats.checkpoints += 1;
        }
        self.delete_old_logs()
    }

    /// Finishes the batch being written in pieces, if any (and moves the checkpoint).
    pub(crate) fn settle_round(&mut self) -> Result<()> {
        self.advance_round(usize::MAX)
    }

    pub(crate) fn flush_log(&mut self) -> Result<()> {
        self.change(|core| {
            if let Some(log) = &mut core.log {
                log.writer.flush()?;
                let durable = lsn(log.writer.durable());
                core.db.pager_mut().set_wal_durable(durable);
            }
            Ok(())
        })?;
        self.relieve_cache()
    }

    /// Brings the cache back within its size: evicts unchanged pages, and when changed pages
    /// fill it, writes them back as a batch first (a read may have loaded past the size, and
    /// a commit or checkpoint leaves changed or written pages cached).
    pub(crate) fn relieve_cache(&mut self) -> Result<()> {
        if !self.db.pager_mut().over_capacity() {
            return Ok(());
        }
        self.change(|core| core.db.pager_mut().trim())?;
        let pager = self.db.pager_mut();
        if pager.over_capacity() && (pager.dirty_pages() > 0 || pager.round_running()) {
            self.write_batch()?;
            self.change(|core| core.db.pager_mut().trim())?;
        }
        Ok(())
    }

    /// Flushes the log, then writes every changed page as one batch.
    pub(crate) fn write_batch(&mut self) -> Result<()> {
        self.change(Core::batch)
    }

    fn batch(&mut self) -> Result<()> {
        // A batch being written goes first: the file holds batches whole, one at a time.
        self.settle_round()?;
        self.make_log_durable()?;
        self.db.flush()
    }

    /// Flushes the log and tells the pager it is durable: no batch is written before the log
    /// holding its changes is (the WAL rule).
    fn make_log_durable(&mut self) -> Result<()> {
        if let Some(log) = &mut self.log {
            if planted::active(&self.env, PlantedBug::WriteBackBeforeLog) {
                // Everything appended counts as durable, flushed or not.
                let end = lsn(log.writer.position());
                self.db.pager_mut().set_wal_durable(end);
            } else {
                log.writer.flush()?;
                let durable = lsn(log.writer.durable());
                self.db.pager_mut().set_wal_durable(durable);
            }
        }
        Ok(())
    }

    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        self.change(|core| {
            if planted::active(&core.env, PlantedBug::CheckpointBeforeWriteBack) {
                // The log is flushed, the changed pages are not written.
                if let Some(log) = &mut core.log {
                    log.writer.flush()?;
                }
            } else {
                core.batch()?;
            }
            if let Some(log) = &mut core.log {
                let position = log.writer.position();
                if position > log.checkpoint.current().position {
                    log.checkpoint.write(
                        position,
                        core.last_sequence,
                        core.env.clock.now_millis(),
                    )?;
                    core.stats.checkpoints += 1;
                }
            }
            core.delete_old_logs()
        })?;
        self.relieve_cache()
    }

    /// With circular logging, deletes the archived generations before both checkpoint slots'
    /// positions: if the newer slot is damaged, recovery starts from the older one.
    pub(crate) fn delete_old_logs(&mut self) -> Result<()> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        if !self.params.circular_logging {
            return Ok(());
        }
        let Some(oldest) = log.checkpoint.oldest() else {
            return Ok(());
        };
        // A running backup still copies the generations from its lowest on.
        let keep_from = match self.backup {
            Some(hold) => oldest.generation.min(hold.keep_from),
            None => oldest.generation,
        };
        let vfs = &*self.env.vfs;
        let mut deleted = 0;
        for generation in log.layout.archived_generations(vfs)? {
            if generation >= keep_from {
                break;
            }
            // A generation recovery may need, from either checkpoint slot, or a running backup
            // copies, is never deleted.
            assert!(
                generation < oldest.generation
                    && generation < log.checkpoint.current().position.generation
                    && self.backup.is_none_or(|hold| generation < hold.keep_from)
            );
            let path = log.layout.archived(generation);
            vfs.remove(&path)
                .map_err(|err| JetError::io(format!("remove {}", path.display()), &err))?;
            deleted += 1;
        }
        if deleted > 0 {
            vfs.sync_dir(&log.layout.log_dir).map_err(|err| {
                JetError::io(format!("fsync {}", log.layout.log_dir.display()), &err)
            })?;
            self.stats.logs_deleted += deleted;
        }
        Ok(())
    }

    /// A clean shutdown: everything flushed, the database marked `CleanShutdown` at the end
    /// of the log, the checkpoint there too.
    pub(crate) fn shut_down(&mut self) -> Result<()> {
        self.active.clear();
        self.locks.clear();
        self.versions.collect(u64::MAX);
        self.change(|core| {
            core.settle_round()?;
            if let Some(log) = &mut core.log {
                log.writer.flush()?;
                let position = log.writer.position();
                let durable = lsn(log.writer.durable());
                let now = core.env.clock.now_millis();
                let pager = core.db.pager_mut();
                pager.set_wal_durable(durable);
                pager.set_state(DbState::CleanShutdown);
                let header = pager.header_mut();
                header.consistent_lgpos = position;
                header.consistent_millis = now;
                core.db.flush()?;
                let log = core.log.as_mut().expect("checked");
                if position > log.checkpoint.current().position {
                    log.checkpoint.write(position, core.last_sequence, now)?;
                }
                core.delete_old_logs()?;
                // Last, once the database is clean and the log durable: a failure here
                // leaves only blank or torn segments past the log's end, which the next init
                // clears; it is still reported, as every I/O error is.
                core.log.as_mut().expect("checked").writer.release_tail()
            } else {
                core.db.flush()
            }
        })
    }

    // --- tables ---

    pub(crate) fn create_table(&mut self, name: &str) -> Result<Table> {
        // A refused name changes nothing; a failure inside the change latches the database.
        let table = self.change(|core| core.db.create_table(name))?;
        if let Err(err) = self.log_table_change(TableRecord::Create, name) {
            return Err(self.fail(err));
        }
        self.maintain_after_commit();
        Ok(table)
    }

    pub(crate) fn delete_table(&mut self, name: &str) -> Result<()> {
        let table = self.db.open_table(name)?;
        let root = table.root();
        // (Rare: a walk over the lock table, whose order does not matter here.)
        if self.locks.keys().any(|&(table, _)| table == root) {
            bail!(
                TableInUse,
                "table {name:?} has changes in an open transaction"
            );
        }
        self.change(|core| core.db.delete_table(name))?;
        if let Err(err) = self.log_table_change(TableRecord::Delete, name) {
            return Err(self.fail(err));
        }
        self.versions.drop_table(root);
        self.maintain_after_commit();
        Ok(())
    }

    /// Logs a table creation or deletion as its own durable group.
    fn log_table_change(&mut self, kind: TableRecord, name: &str) -> Result<()> {
        let sequence = self.next_sequence()?;
        if let Some(log) = &mut self.log {
            let mut record = Vec::new();
            log::encode_table(&mut record, kind, name);
            log.writer.append(&record)?;
            let commit = CommitRecord {
                transaction: 0,
                sequence,
                millis: self.env.clock.now_millis(),
                records: 1,
                puts: 0,
                deletes: 0,
            };
            record.clear();
            log::encode_commit(&mut record, &commit);
            self.append_commit(&record, true)?;
        }
        self.last_sequence = sequence;
        Ok(())
    }

    pub(crate) fn open_table(&self, name: &str) -> Result<Table> {
        self.db.open_table(name)
    }

    pub(crate) fn table_names(&self) -> Vec<String> {
        self.db.table_names()
    }

    pub(crate) fn db_and_versions(&mut self) -> (&mut Database, &VersionStore) {
        (&mut self.db, &self.versions)
    }
}

fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Refuses directory `dir` if it, or a directory on its path, is a file
/// (`JET_errInvalidPath`): on the OS a lookup through a file fails already (ENOTDIR), but a
/// `Vfs` may answer that nothing is there, and the error must not depend on which.
pub(crate) fn no_file_on_path(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let io = |p: &Path| {
        let what = format!("look up {}", p.display());
        move |err| JetError::io(what.clone(), &err)
    };
    for p in dir.ancestors().take_while(|p| !p.as_os_str().is_empty()) {
        // Walking up, the first entry there decides: above a directory, no file is in the way.
        if vfs.is_dir(p).map_err(io(p))? {
            return Ok(());
        }
        if vfs.exists(p).map_err(io(p))? {
            if p == dir {
                bail!(InvalidPath, "{} is a file, not a directory", dir.display());
            }
            bail!(
                InvalidPath,
                "{}: {} is a file, not a directory",
                dir.display(),
                p.display()
            );
        }
    }
    Ok(())
}

/// Makes sure directory `dir` exists, creating it and its missing ancestors if `create`.
/// A missing one is `JET_errInvalidPath` otherwise; a file in its place or on its path is
/// `JET_errInvalidPath` either way.
pub(crate) fn ensure_dir(env: &Env, dir: &Path, create: bool) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let exists = env
        .vfs
        .is_dir(dir)
        .map_err(|err| JetError::io(format!("look up {}", dir.display()), &err))?;
    if exists {
        return Ok(());
    }
    no_file_on_path(&*env.vfs, dir)?;
    if !create {
        bail!(
            InvalidPath,
            "the directory {} does not exist (set create_path_if_not_exist to create it)",
            dir.display()
        );
    }
    env.vfs
        .create_dir_all(dir)
        .map_err(|err| JetError::io(format!("create {}", dir.display()), &err))?;
    let parent = parent_dir(dir);
    if !parent.as_os_str().is_empty() {
        env.vfs
            .sync_dir(parent)
            .map_err(|err| JetError::io(format!("fsync {}", parent.display()), &err))?;
    }
    Ok(())
}

fn logs_exist(env: &Env, layout: &Layout) -> Result<bool> {
    let current = layout.current();
    let exists = env
        .vfs
        .exists(&current)
        .map_err(|err| JetError::io(format!("look up {}", current.display()), &err))?;
    Ok(exists || !layout.archived_generations(&*env.vfs)?.is_empty())
}

/// Creates the database under a temporary name and renames it into place, so a crash never
/// leaves a half-made database under the real name.
fn create_database(env: &Env, path: &Path, options: &DatabaseOptions) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |err: std::io::Error| JetError::io(what.clone(), &err)
    };
    if env.vfs.exists(&tmp).map_err(io("look up", &tmp))? {
        env.vfs.remove(&tmp).map_err(io("remove", &tmp))?;
    }
    Database::create(env, &tmp, options)?.close()?;
    env.vfs.rename(&tmp, path).map_err(io("rename", &tmp))?;
    let dir = parent_dir(path);
    env.vfs.sync_dir(dir).map_err(io("fsync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CommitMode;

    fn instance_with(env: Env, version_store_size: usize) -> Instance {
        let mut params = InstanceParams::in_directory("db");
        params.create_path_if_not_exist = true;
        params.version_store_size = version_store_size;
        let instance = Instance::new(env, params);
        instance.init().unwrap();
        instance
    }

    fn instance() -> Instance {
        instance_with(Env::memory(3), 256 << 20)
    }

    fn kept_buffer(instance: &Instance) -> usize {
        instance
            .with_core(|core| Ok(core.log.as_ref().expect("logging").buf.capacity()))
            .unwrap()
    }

    #[test]
    fn a_small_commit_keeps_its_encoding_buffer_and_a_large_value_does_not() {
        let instance = instance();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        s.begin_transaction().unwrap();
        s.put(t, b"small", b"v").unwrap();
        s.commit_transaction(CommitMode::Lazy).unwrap();
        assert!(
            kept_buffer(&instance) > 0,
            "a small commit's buffer was dropped"
        );
        s.begin_transaction().unwrap();
        s.put(t, b"large", &vec![7u8; crate::limits::VALUE_LEN_MAX])
            .unwrap();
        s.commit_transaction(CommitMode::Lazy).unwrap();
        let kept = kept_buffer(&instance);
        assert!(
            kept <= KEPT_BUFFER_BYTES,
            "a large value's buffer was kept ({kept} bytes)"
        );
    }

    #[test]
    fn a_commit_record_counts_its_records_puts_and_deletes() {
        let env = Env::memory(3);
        let instance = instance_with(env.clone(), 256 << 20);
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        s.begin_transaction().unwrap();
        for key in [&b"a"[..], b"b", b"c"] {
            s.put(t, key, b"v").unwrap();
        }
        s.commit_transaction(CommitMode::Durable).unwrap();
        s.begin_transaction().unwrap();
        s.put(t, b"d", b"v").unwrap();
        assert!(s.delete(t, b"a").unwrap());
        assert!(s.delete(t, b"b").unwrap());
        s.commit_transaction(CommitMode::Durable).unwrap();
        let bytes = log::read_file(&*env.vfs, Path::new("db/edb.log")).unwrap();
        let scan = log::scan(&bytes, "edb.log").unwrap();
        let counts: Vec<(u32, u32, u32)> = scan
            .records
            .iter()
            .filter_map(|(_, r)| match r {
                log::Record::Commit(c) if c.records > 1 => Some((c.records, c.puts, c.deletes)),
                _ => None,
            })
            .collect();
        // Each group: a table record, then its puts and deletes.
        assert_eq!(counts, [(4, 3, 0), (4, 1, 2)]);
    }

    #[test]
    fn a_transaction_may_write_up_to_the_version_store_size_and_not_past_it() {
        let instance = instance_with(Env::memory(3), 1000);
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        s.begin_transaction().unwrap();
        // A write counts its key, its value and 32 bytes: 533, then 467, exactly 1000.
        s.put(t, b"a", &[1; 500]).unwrap();
        s.put(t, b"b", &[2; 434]).unwrap();
        let err = s.put(t, b"c", b"").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::VersionStoreOutOfMemory);
        s.commit_transaction(CommitMode::Durable).unwrap();
        let mut reader = instance.begin_session().unwrap();
        assert_eq!(reader.get(t, b"b").unwrap().as_deref(), Some(&[2; 434][..]));
        assert_eq!(reader.get(t, b"c").unwrap(), None);
    }

    #[test]
    fn a_large_transaction_gives_back_its_lock_table_and_keeps_the_locks_still_held() {
        let instance = instance();
        let mut holder = instance.begin_session().unwrap();
        let t = holder.create_table("t").unwrap();
        holder.begin_transaction().unwrap();
        holder.put(t, b"held", b"1").unwrap();

        let mut big = instance.begin_session().unwrap();
        big.begin_transaction().unwrap();
        for i in 0..20_000u32 {
            big.put(t, &i.to_be_bytes(), b"v").unwrap();
        }
        let grown = instance
            .with_core(|core| Ok(core.locks.capacity()))
            .unwrap();
        assert!(grown >= 20_000, "the puts were locked ({grown})");
        big.commit_transaction(CommitMode::Lazy).unwrap();
        let capacity = instance
            .with_core(|core| Ok(core.locks.capacity()))
            .unwrap();
        let buffer = kept_buffer(&instance);
        assert!(
            capacity <= 2 * LOCKS_KEPT,
            "the lock table kept {capacity} slots"
        );
        assert!(
            buffer > 0 && buffer <= KEPT_BUFFER_BYTES,
            "the log buffer kept {buffer} bytes"
        );

        // The lock still held survived the shrink.
        let mut other = instance.begin_session().unwrap();
        other.begin_transaction().unwrap();
        let err = other.put(t, b"held", b"2").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::WriteConflict);
        other.rollback().unwrap();
        holder.commit_transaction(CommitMode::Durable).unwrap();
        let mut reader = instance.begin_session().unwrap();
        assert_eq!(reader.get(t, b"held").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            reader.get(t, &19_999u32.to_be_bytes()).unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
}
