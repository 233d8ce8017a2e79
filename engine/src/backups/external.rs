//! The external backup API (ESE's JetBeginExternalBackup … JetEndExternalBackup): a backup
//! application reads the files itself, through the engine, and sends them anywhere — a
//! stream, a tape, an object store. JetBackup ([`crate::backup`]) is its client: it writes
//! what it reads into a backup directory.
//!
//! **The calls, in order.** [`Instance::begin_external_backup`] fixes the backup point and
//! returns an [`ExternalBackup`]. A full backup then has a *database phase*:
//! [`ExternalBackup::attach_info`] names the database, and [`ExternalBackup::open_file`],
//! [`ExternalBackup::read_file`] and [`ExternalBackup::close_file`] read it. Then
//! [`ExternalBackup::log_info`] names the log generations to copy (an incremental backup
//! begins here), each read the same way, in any order. [`ExternalBackup::truncate_log`]
//! records the backup in the database header and deletes the logs no longer needed; it is the
//! backup's commit point, to be called only once the copy is durable where it went.
//! [`ExternalBackup::end`] ends the backup, normally or as an abort. A call out of this order
//! is refused with `JET_errInvalidBackupSequence` and changes nothing.
//!
//! **The same guarantees as JetBackup.** The backup point is the begin: it finishes the
//! current log generation, and every commit before it is in the generations
//! [`ExternalBackup::log_info`] lists, none after (ESE rolls the log again at JetGetLogInfo;
//! this engine does not, so the point is exactly the begin, not somewhere in between). The
//! database reads as it stood at the begin, through the copy-before-write fence, while
//! transactions go on. Every page read passes its checksum and is the page its last write
//! left (`JET_errReadVerifyFailure`); every log generation is checked whole as it is read
//! (`JET_errLogReadVerifyFailure`), and its last bytes are handed out only once the whole
//! file has passed. The logs the backup reads are kept until it ends.
//!
//! **Failure.** Before the backup is recorded, an I/O error, a verification failure,
//! [`Instance::stop_backup`] (`JET_errBackupAbortByServer`) or a term fails the backup: its
//! hold on the logs and its fence are released, nothing is recorded or truncated, and every
//! later call answers with the error that failed it. A call out of order, a bad handle or a
//! bad buffer fails only that call. Once [`ExternalBackup::truncate_log`] has recorded it,
//! the backup has succeeded whatever comes after: an error deleting the logs is returned,
//! and ending it (or dropping it) either way reports the success.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::backups::manifest::{Manifest, SetBackup, SetLog};
use crate::backups::reader::{DbPieces, DbReader, LogReader, Saved};
use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail, io_err};
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::OpenMode;
use crate::store::header::{BackupInfo, DbHeader, Lgpos};
use crate::store::page::Pgno;
use crate::store::pager::SharedFence;
use crate::txn::event::{BackupKind, Event, EventLog};
use crate::txn::instance::{BackupHold, Core, Instance, lsn};
use crate::wal::log;
use std::ops::BitOr;

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

/// How an external backup ends ([`ExternalBackup::end`]; ESE's `JET_bitBackupEndNormal` and
/// `JET_bitBackupEndAbort`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupEnd {
    /// The application has the backup: every file it was given was read whole.
    Normal,
    /// The application gives the backup up: nothing is recorded, nothing truncated.
    Abort,
}

/// A file open for an external backup ([`ExternalBackup::open_file`]): a handle to pass to
/// [`ExternalBackup::read_file`] and [`ExternalBackup::close_file`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// The backup it belongs to: another backup's handle is refused.
    backup: u64,
    id: u64,
    size: u64,
}

impl BackupFile {
    /// The bytes the file reads as, in all (ESE's JetOpenFile returns it): for the database,
    /// its length when the backup began.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Where the calls are ([`ExternalBackup`]'s module docs give the order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A full backup's database may be read.
    Database,
    /// The logs are listed and may be read.
    Logs,
    /// The backup is recorded and the logs it allowed to go are deleted.
    Truncated,
}

#[derive(Debug)]
enum State {
    Running,
    /// Failed with this error: every later call answers with it.
    Failed(JetError),
    Ended,
}

/// What the begin decided, under the instance lock.
pub(crate) struct Begun {
    pub(crate) begin: SetBackup,
    /// The manifest a full backup of the begin writes, but for what the copy fills in (the
    /// database's digest and the logs): its signatures check the logs of any backup.
    pub(crate) template: Manifest,
    pub(crate) logs: Vec<u32>,
    pub(crate) db_pages: Option<Pgno>,
    pub(crate) fence: Option<SharedFence>,
    pub(crate) epoch: u64,
    pub(crate) stamps: Vec<u64>,
    pub(crate) db_path: PathBuf,
    pub(crate) page_size: usize,
    /// The bytes of every file to read.
    pub(crate) total: u64,
}

/// An external backup in progress (ESE's external backup API): see the module docs for the
/// order of its calls. Dropping one that has not ended aborts it, unless
/// [`ExternalBackup::truncate_log`] recorded it: then it has succeeded.
///
/// ```
/// use jetdb::{BackupEnd, BackupFlags, Env, Instance, InstanceParams};
/// # fn main() -> jetdb::Result<()> {
/// let env = Env::memory(7);
/// let mut params = InstanceParams::in_directory("inst");
/// params.create_path_if_not_exist = true;
/// let instance = Instance::new(env, params);
/// instance.init()?;
/// let mut session = instance.begin_session()?;
/// let t = session.create_table("t")?;
/// session.put(t, b"k", b"v")?;
/// let mut backup = instance.begin_external_backup(BackupFlags::NONE)?;
/// let mut files = backup.attach_info()?; // the database first
/// let mut copied = Vec::new(); // (a real application sends each file somewhere)
/// let mut buf = vec![0; 64 * 1024]; // a multiple of the page size
/// for phase in 0..2 {
///     if phase == 1 {
///         files = backup.log_info()?; // then the logs
///     }
///     for path in &files {
///         let file = backup.open_file(path)?;
///         let mut bytes = Vec::new();
///         loop {
///             let n = backup.read_file(file, &mut buf)?;
///             if n == 0 {
///                 break;
///             }
///             bytes.extend_from_slice(&buf[..n]);
///         }
///         assert_eq!(bytes.len() as u64, file.size());
///         backup.close_file(file)?;
///         copied.push((path.clone(), bytes));
///     }
/// }
/// let manifest = backup.manifest(None)?; // what a restore needs besides the files
/// backup.truncate_log()?; // once the copy is safe where it went
/// let summary = backup.end(BackupEnd::Normal)?;
/// assert_eq!(manifest.db_len, copied[0].1.len() as u64);
/// assert_eq!(summary.sequence, manifest.backups[0].sequence);
/// # drop(session);
/// # instance.term()?;
/// # Ok(()) }
/// ```
pub struct ExternalBackup {
    instance: Instance,
    env: Env,
    events: EventLog,
    id: u64,
    epoch: u64,
    kind: BackupKind,
    /// The backup directory, for the events of a JetBackup (none for an external backup).
    directory: Option<PathBuf>,
    begin: SetBackup,
    template: Manifest,
    phase: Phase,
    state: State,
    db_path: PathBuf,
    /// The database read (a full backup), once opened.
    db: Option<DbReader>,
    /// The fence and flush map, until the database is opened.
    db_parts: Option<(SharedFence, Vec<u64>, Pgno)>,
    /// Whether the database was opened (it is read once: the fence moves past what is read).
    db_opened: bool,
    page_size: usize,
    /// Pages the fence saved ahead of the sequential read, kept until their turn.
    ahead: Saved,
    log_dir: PathBuf,
    base: String,
    /// The generations to copy, ascending.
    logs: Vec<u32>,
    /// Each generation read whole: its length and CRC.
    logs_read: BTreeMap<u32, SetLog>,
    open: Option<OpenFile>,
    next_file: u64,
    total: u64,
    summary: BackupSummary,
    /// Whether a client (JetBackup) reports the failure itself, after its own clean-up.
    client_reports: bool,
    /// Whether `log_info` rolled the log (the planted bug `ExternalLogInfoRollsAgain`).
    rolled: bool,
}

struct OpenFile {
    id: u64,
    what: Opened,
}

enum Opened {
    Database,
    Log(Box<LogReader>),
}

impl std::fmt::Debug for ExternalBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalBackup")
            .field("kind", &self.kind)
            .field("phase", &self.phase)
            .field("state", &self.state)
            .field("sequence", &self.begin.sequence)
            .finish()
    }
}

impl Instance {
    /// Begins an external backup (ESE's JetBeginExternalBackup): [`BackupFlags::NONE`] for a
    /// full backup, [`BackupFlags::INCREMENTAL`] for the logs since the last backup the
    /// header records (one whose logs were truncated: [`ExternalBackup::truncate_log`]). The
    /// backup point is now. See [`ExternalBackup`] for the calls that follow.
    ///
    /// Errors: `JET_errInvalidGrbit` (any other flag, atomic included: it is about a backup
    /// directory), `JET_errBackupInProgress`, `JET_errBackupNotAllowedYet`,
    /// `JET_errLoggingDisabled`, `JET_errInvalidBackup` (incremental with circular logging),
    /// `JET_errMissingFullBackup` (incremental with no full backup recorded),
    /// `JET_errMissingFileToBackup`, the lifecycle's errors, and I/O errors.
    pub fn begin_external_backup(&self, flags: BackupFlags) -> Result<ExternalBackup> {
        if flags.bits() & !BackupFlags::INCREMENTAL.bits() != 0 {
            bail!(
                InvalidGrbit,
                "external backup flags {:#x} name no option (incremental 0x1; atomic is for a backup directory)",
                flags.bits()
            );
        }
        let kind = if flags.contains(BackupFlags::INCREMENTAL) {
            BackupKind::Incremental
        } else {
            BackupKind::Full
        };
        ExternalBackup::begin(self, kind, false, None, false, |core| {
            Ok(match kind {
                // The logs after the last backup the header records.
                BackupKind::Incremental => {
                    let header = core.db.header();
                    [header.backup_full, header.backup_incremental]
                        .iter()
                        .filter(|b| b.is_set())
                        .map(|b| b.gen_high.saturating_add(1))
                        .max()
                }
                _ => None,
            })
        })
    }
}

impl ExternalBackup {
    /// The begin every backup shares: the checks, then `prepare` (a JetBackup's directory;
    /// it returns the first generation an incremental copies), then the backup point, the
    /// hold on the logs and the fence — all under one hold of the instance lock. A refused
    /// begin is reported as a failed backup.
    pub(crate) fn begin(
        instance: &Instance,
        kind: BackupKind,
        atomic: bool,
        directory: Option<PathBuf>,
        directory_client: bool,
        prepare: impl FnOnce(&mut Core) -> Result<Option<u32>>,
    ) -> Result<ExternalBackup> {
        let params = instance.params().clone();
        let id = instance.next_transaction_id();
        let env = instance.shared.env.clone();
        let begun = instance.with_core_for_backup(|core| {
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
            let from = prepare(core)?;
            begin_in_core(core, id, kind, from)
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
        let db_parts = match (begun.fence.take(), begun.db_pages) {
            (Some(fence), Some(pages)) => Some((fence, std::mem::take(&mut begun.stamps), pages)),
            _ => None,
        };
        let backup = ExternalBackup {
            instance: instance.clone(),
            events: params.event_log.clone(),
            env,
            id,
            epoch: begun.epoch,
            kind,
            directory: directory.clone(),
            begin: begun.begin,
            template: begun.template,
            phase: if kind == BackupKind::Full {
                Phase::Database
            } else {
                Phase::Logs
            },
            state: State::Running,
            db_path: begun.db_path,
            db: None,
            db_parts,
            db_opened: false,
            page_size: begun.page_size,
            ahead: Saved::new(),
            log_dir: params.log_path.clone(),
            base: params.base_name.clone(),
            logs: begun.logs,
            logs_read: BTreeMap::new(),
            open: None,
            next_file: 1,
            total: begun.total,
            summary: BackupSummary {
                kind,
                directory,
                sequence: begun.begin.sequence,
                mark: begun.begin.mark,
                logs: (kind != BackupKind::Truncate)
                    .then_some((begun.begin.gen_low, begun.begin.gen_high)),
                ..BackupSummary::default()
            },
            client_reports: directory_client,
            rolled: false,
        };
        backup.emit(Event::BackupBegin {
            kind,
            atomic,
            directory: backup.directory.clone(),
            mark: backup.begin.mark,
            sequence: backup.begin.sequence,
        });
        if kind != BackupKind::Truncate {
            backup.emit(Event::LogRange {
                operation: crate::txn::event::Operation::Backup,
                low: backup.begin.gen_low,
                high: backup.begin.gen_high,
            });
        }
        Ok(backup)
    }

    /// Full or incremental.
    pub fn kind(&self) -> BackupKind {
        self.kind
    }

    /// The backup point: the last commit the backup holds, its log position and time, and the
    /// generations it copies.
    pub fn backup_point(&self) -> SetBackup {
        self.begin
    }

    /// The bytes of every file the backup reads, in all.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The databases to read (ESE's JetGetAttachInfo): the instance's one database. A full
    /// backup's database phase only, else `JET_errInvalidBackupSequence`.
    pub fn attach_info(&mut self) -> Result<Vec<PathBuf>> {
        self.check_call()?;
        if self.phase != Phase::Database {
            bail!(
                InvalidBackupSequence,
                "attach info is for a full backup before its logs are listed"
            );
        }
        Ok(vec![self.db_path.clone()])
    }

    /// Opens a file of the backup to read (ESE's JetOpenFile): the database, in a full
    /// backup's database phase, once; a log generation [`ExternalBackup::log_info`] listed,
    /// after it, as often as wanted. One file is open at a time.
    ///
    /// Errors: `JET_errInvalidBackupSequence` (out of its phase, a file already open, the
    /// database a second time), `JET_errInvalidParameter` (no file of this backup),
    /// `JET_errMissingFileToBackup` (a listed log gone), I/O errors.
    pub fn open_file(&mut self, path: &Path) -> Result<BackupFile> {
        self.check_call()?;
        if let Some(open) = &self.open {
            bail!(
                InvalidBackupSequence,
                "file {} of the backup is open: close it first",
                open.id
            );
        }
        let id = self.next_file;
        if path == self.db_path {
            if self.kind != BackupKind::Full || self.phase != Phase::Database {
                bail!(
                    InvalidBackupSequence,
                    "the database is read by a full backup, before the logs are listed"
                );
            }
            if self.db_opened {
                bail!(
                    InvalidBackupSequence,
                    "the database was opened already: it is read once, front to back"
                );
            }
            let (fence, stamps, pages) = self.db_parts.take().expect("a full backup's fence");
            let reader = self
                .guard(|b| DbReader::open(&b.env, &b.db_path, b.page_size, pages, stamps, fence))?;
            let size = u64::from(reader.end) * self.page_size as u64;
            self.db = Some(reader);
            self.db_opened = true;
            self.next_file += 1;
            self.open = Some(OpenFile {
                id,
                what: Opened::Database,
            });
            return Ok(BackupFile {
                backup: self.id,
                id,
                size,
            });
        }
        let generation = self
            .logs
            .iter()
            .copied()
            .find(|&g| self.log_dir.join(log::archive_name(&self.base, g)) == path);
        let Some(generation) = generation else {
            bail!(
                InvalidParameter,
                "{} is not a file of this backup",
                path.display()
            );
        };
        if self.phase != Phase::Logs {
            bail!(
                InvalidBackupSequence,
                "the logs are read once they are listed (log info), and before the truncation"
            );
        }
        let reader = self.guard(|b| {
            let from = b.log_dir.join(log::archive_name(&b.base, generation));
            let signatures = (b.template.log_signature, b.template.db_signature);
            LogReader::open(&b.env, &from, generation, signatures)
        })?;
        let size = reader.len();
        self.next_file += 1;
        self.open = Some(OpenFile {
            id,
            what: Opened::Log(Box::new(reader)),
        });
        Ok(BackupFile {
            backup: self.id,
            id,
            size,
        })
    }

    /// Reads the open file's next bytes into `buf` (ESE's JetReadFile) and returns how many;
    /// 0 at its end. The database reads in whole pages: `buf` must be a multiple of the page
    /// size (`JET_errInvalidParameter`), and each page is verified as it is read. A log
    /// generation is checked as it is read; its last bytes are handed out only once the
    /// whole file has passed.
    ///
    /// Memory: a page the instance overwrites ahead of the read is saved (as it stood at the
    /// begin) until the read reaches it, so a slow reader beside a busy writer holds up to
    /// the pages overwritten ahead of it.
    pub fn read_file(&mut self, file: BackupFile, buf: &mut [u8]) -> Result<usize> {
        self.check_call()?;
        self.check_file(file)?;
        if buf.is_empty() {
            bail!(InvalidParameter, "a read into an empty buffer");
        }
        if matches!(self.open.as_ref().map(|o| &o.what), Some(Opened::Database)) {
            if !buf.len().is_multiple_of(self.page_size) {
                bail!(
                    InvalidParameter,
                    "the database reads in whole pages: the buffer's {} bytes are not a multiple of the page size ({})",
                    buf.len(),
                    self.page_size
                );
            }
            return self.guard(|b| b.read_database(buf));
        }
        self.guard(|b| {
            let Some(Opened::Log(reader)) = b.open.as_mut().map(|o| &mut o.what) else {
                unreachable!("checked: a file is open");
            };
            let n = reader.read(buf)?;
            if let Some(done) = reader.done() {
                b.record_log(done);
            }
            Ok(n)
        })
    }

    /// The next piece of the open log generation, as it was read (at most
    /// [`log::LOG_PIECE`] bytes), and whether it is the file's last: JetBackup's copy reads
    /// this way, without copying out of the buffer.
    pub(crate) fn read_log_piece(&mut self, file: BackupFile) -> Result<Option<(&[u8], bool)>> {
        self.check_call()?;
        self.check_file(file)?;
        let read = match self.open.as_mut().map(|o| &mut o.what) {
            Some(Opened::Log(reader)) => reader.next_piece(),
            _ => bail!(InvalidParameter, "file {} is not a log generation", file.id),
        };
        let got = match read {
            Ok(got) => got.is_some(),
            Err(err) => return Err(self.fail(err)),
        };
        let Some(Opened::Log(reader)) = self.open.as_mut().map(|o| &mut o.what) else {
            unreachable!("still open");
        };
        // The piece is handed out whole.
        reader.handed = reader.piece().len();
        if let Some(done) = reader.done() {
            self.record_log(done);
        }
        let Some(Opened::Log(reader)) = self.open.as_ref().map(|o| &o.what) else {
            unreachable!("still open");
        };
        Ok(got.then(|| (reader.piece(), reader.last)))
    }

    /// The next pages of the database for JetBackup's copy, which writes each where it
    /// goes: the pages the fence saved (anywhere in the file), then the next run read, with
    /// the pages in it that the fence saved (now or before) marked to skip. At most
    /// `max_pages`; `None` once the whole file is read.
    pub(crate) fn read_db_pages(
        &mut self,
        file: BackupFile,
        max_pages: Pgno,
        buf: &mut Vec<u8>,
    ) -> Result<Option<DbPieces>> {
        self.check_call()?;
        self.check_file(file)?;
        self.guard(|b| {
            let db = b.db.as_mut().expect("the database is open");
            let count = max_pages.max(1).min(db.end - db.next);
            if count == 0 {
                return Ok(None);
            }
            buf.resize(count as usize * db.page_size, 0);
            let pieces = db.step(&b.env, running(&b.instance, b.id, b.epoch), buf)?;
            b.summary.database_bytes +=
                (pieces.saved.len() + pieces.read_pages()) as u64 * b.page_size as u64;
            Ok(Some(pieces))
        })
    }

    /// Closes the open file (ESE's JetCloseFile). A file closed before its end was not read
    /// whole: a log may be opened and read again; the database may not.
    pub fn close_file(&mut self, file: BackupFile) -> Result<()> {
        self.check_call()?;
        self.check_file(file)?;
        self.open = None;
        Ok(())
    }

    /// Lists the log generations to read (ESE's JetGetLogInfo), as paths to open: those from
    /// the checkpoint at the begin (a full backup) or after the last backup (an incremental)
    /// up to the one the begin finished. The database phase ends here: no file may be open.
    /// No new generation is started: the backup point stays the begin. Called again, it
    /// lists the same.
    pub fn log_info(&mut self) -> Result<Vec<PathBuf>> {
        self.check_call()?;
        if self.open.is_some() {
            bail!(
                InvalidBackupSequence,
                "a file of the backup is open: close it before the logs are listed"
            );
        }
        match self.phase {
            Phase::Database => {
                self.phase = Phase::Logs;
                // The database is done with: what the fence would keep is no longer needed.
                if !self.db.as_ref().is_some_and(DbReader::is_done) {
                    let id = self.id;
                    self.instance.with_core_quietly(|core| {
                        if core.backup.is_some_and(|h| h.id == id) {
                            core.db.pager_mut().clear_fence();
                        }
                    });
                }
                self.db_parts = None;
            }
            Phase::Logs => {}
            Phase::Truncated => bail!(
                InvalidBackupSequence,
                "the logs were truncated: the backup has nothing more to read"
            ),
        }
        if planted::active(&self.env, PlantedBug::ExternalLogInfoRollsAgain) && !self.rolled {
            self.rolled = true;
            let rolled = self.instance.with_core_for_backup(finish_generation);
            let finished = self.guard(|_| rolled)?;
            self.logs.extend(self.begin.gen_high + 1..=finished);
            self.begin.gen_high = finished;
        }
        Ok(self
            .logs
            .iter()
            .map(|&g| self.log_dir.join(log::archive_name(&self.base, g)))
            .collect())
    }

    /// The manifest a restore needs besides the files (a JetBackup writes it into the backup
    /// directory, a stream carries it), once every file was read whole. A full backup's
    /// names set 1, with `previous` `None`. An incremental backup's extends `previous`, the
    /// manifest of the set it follows, whose last backup must end where this one begins
    /// (`JET_errInvalidBackup`, `JET_errMissingFullBackup` without one).
    pub fn manifest(&self, previous: Option<&Manifest>) -> Result<Manifest> {
        self.check_state()?;
        self.check_complete()?;
        match (self.kind, previous) {
            (BackupKind::Full, None) => {
                let mut m = self.template.clone();
                m.db_digest = self.db.as_ref().map_or(0, DbReader::digest);
                m.logs = self.logs_read.values().copied().collect();
                Ok(m)
            }
            (BackupKind::Full, Some(_)) => bail!(
                InvalidParameter,
                "a full backup's manifest extends no other"
            ),
            (_, None) => bail!(
                MissingFullBackup,
                "an incremental backup's manifest extends the set it follows; none was given"
            ),
            (_, Some(p)) => {
                if p.log_signature != self.template.log_signature
                    || p.db_signature != self.template.db_signature
                {
                    bail!(
                        InvalidBackup,
                        "the set given is another database's or another log set's"
                    );
                }
                if p.last().gen_high.saturating_add(1) != self.begin.gen_low {
                    bail!(
                        InvalidBackup,
                        "the set given ends at generation {:#X}, and this backup begins at {:#X}",
                        p.last().gen_high,
                        self.begin.gen_low
                    );
                }
                let mut m = p.clone();
                m.backups.push(self.begin);
                m.logs.extend(self.logs_read.values().copied());
                Ok(m)
            }
        }
    }

    /// Records the backup in the database header and deletes the log generations no longer
    /// needed (ESE's JetTruncateLog): those below the checkpoint that this backup holds. The
    /// backup's commit point: an incremental backup next begins after it. Call it only once
    /// the copy is durable where it went. Every listed log must have been read whole
    /// (`JET_errLogFileNotCopied`), and a full backup's database (`JET_errInvalidBackupSequence`).
    /// Returns the generations deleted. An error before the record fails the backup; one
    /// after it (deleting the logs) is returned with the backup recorded, as a success. (A
    /// record whose write or fsync fails may still have reached the disk, as any write after a
    /// failed fsync: the instance then stops, and after recovery the header shows which.)
    pub fn truncate_log(&mut self) -> Result<Option<(u32, u32)>> {
        self.check_call()?;
        if self.phase != Phase::Logs || self.open.is_some() {
            bail!(
                InvalidBackupSequence,
                "the logs are truncated after they are listed and read, with no file open"
            );
        }
        if !planted::active(&self.env, PlantedBug::ExternalTruncatesUnread) {
            self.check_complete()?;
        }
        self.record_and_truncate()
    }

    /// [`ExternalBackup::truncate_log`] past its checks, for JetBackup past its commit
    /// point, which a stop no longer undoes.
    pub(crate) fn record_and_truncate(&mut self) -> Result<Option<(u32, u32)>> {
        let (id, kind, begin) = (self.id, self.kind, self.begin);
        let recorded = self.instance.with_core_for_backup(|core| {
            check_hold(core, id)?;
            // Nothing more is read: the instance is released, so the truncation deletes what
            // this backup held, and another backup may begin while its files go.
            release(core, id);
            if kind != BackupKind::Truncate {
                record(core, kind, begin)?;
            }
            Ok(())
        });
        if let Err(err) = recorded {
            return Err(self.fail(err));
        }
        // From here the backup is recorded: an error of the truncation is only that.
        self.phase = Phase::Truncated;
        let truncation = self
            .instance
            .with_core_for_backup(|core| core.truncate_logs())?;
        let deleted = truncation.carry_out(&self.instance)?;
        if let Some((low, high)) = deleted {
            self.summary.truncated = Some((low, high));
            self.emit(Event::LogsTruncated { low, high });
        }
        Ok(deleted)
    }

    /// Ends the backup (ESE's JetEndExternalBackup). [`BackupEnd::Normal`] after every file
    /// was read whole: the backup succeeded (recorded in the header only if the logs were
    /// truncated, as ESE records one that was not as a copy backup, which no incremental
    /// follows). Normal before that, or [`BackupEnd::Abort`]: the backup is given up,
    /// nothing recorded or truncated; Normal then answers `JET_errInvalidBackupSequence`.
    /// After [`ExternalBackup::truncate_log`] the backup is recorded: either ends it as a
    /// success, and a stop or a term meanwhile changes nothing. A failed backup answers with
    /// the error that failed it.
    pub fn end(mut self, how: BackupEnd) -> Result<BackupSummary> {
        if let State::Failed(err) = &self.state {
            return Err(err.clone());
        }
        if how == BackupEnd::Abort && self.phase != Phase::Truncated {
            if planted::active(&self.env, PlantedBug::ExternalAbortRecords) {
                let (id, kind, begin) = (self.id, self.kind, self.begin);
                let _ = self.instance.with_core_for_backup(|core| {
                    check_hold(core, id)?;
                    record(core, kind, begin)
                });
            }
            self.fail(JetError::new(
                ErrorKind::BackupAbortByCaller,
                "the external backup was ended as an abort",
            ));
            return Ok(std::mem::take(&mut self.summary));
        }
        // (Past the truncation the backup is recorded: a stop or a term no longer undoes it.)
        if self.phase != Phase::Truncated {
            self.check_call()?;
        }
        let complete = match self.phase {
            Phase::Database => Err(JetError::new(
                ErrorKind::InvalidBackupSequence,
                "the backup ended in its database phase: it is given up",
            )),
            _ => self.check_complete(),
        };
        if let Err(err) = complete {
            return Err(self.fail(err));
        }
        self.finish_normally();
        Ok(std::mem::take(&mut self.summary))
    }

    /// The backup has succeeded: release the instance and report it.
    pub(crate) fn finish_normally(&mut self) {
        let id = self.id;
        self.instance.with_core_quietly(|core| release(core, id));
        self.state = State::Ended;
        self.emit(Event::BackupSucceeded {
            kind: self.kind,
            directory: self.directory.clone(),
            sequence: self.begin.sequence,
        });
    }

    /// What the backup read and truncated, so far.
    pub(crate) fn summary(&self) -> &BackupSummary {
        &self.summary
    }

    /// Fails the backup with `err` (once): the hold and the fence are released, the failure
    /// reported. Returns `err`.
    pub(crate) fn fail(&mut self, err: JetError) -> JetError {
        if !matches!(self.state, State::Running) {
            return err;
        }
        self.state = State::Failed(JetError::new(
            err.kind(),
            format!("the backup failed: {}", err.message()),
        ));
        self.open = None;
        self.db = None;
        self.db_parts = None;
        self.ahead.clear();
        let id = self.id;
        self.instance.with_core_quietly(|core| release(core, id));
        if !self.client_reports {
            self.emit(Event::BackupFailed {
                kind: self.kind,
                error: err.clone(),
            });
        }
        err
    }

    /// Fails with `JET_errBackupAbortByServer` if [`Instance::stop_backup`] stopped this
    /// backup.
    pub(crate) fn check_stop(&self) -> Result<()> {
        stop_requested(&self.instance, self.id)
    }

    /// The database's page size.
    pub(crate) fn backup_page_size(&self) -> usize {
        self.page_size
    }

    /// The database file.
    pub(crate) fn database_path(&self) -> &Path {
        &self.db_path
    }

    /// Fails unless the instance still holds this backup (a term or a new init ends it).
    pub(crate) fn check_held(&mut self) -> Result<()> {
        let id = self.id;
        let held = self
            .instance
            .with_core_for_backup(|core| check_hold(core, id));
        held.map_err(|err| self.fail(err))
    }

    /// The instance, for a client's rate limit.
    pub(crate) fn instance_and_id(&self) -> (&Instance, u64) {
        (&self.instance, self.id)
    }

    fn emit(&self, event: Event) {
        self.events.emit(&*self.env.clock, event);
    }

    /// Runs `f`, failing the backup if it fails.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        match f(self) {
            Ok(t) => Ok(t),
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Whether the backup takes calls: running, and the instance still runs it (no stop,
    /// no term since the begin). A stop or a term fails it.
    fn check_call(&mut self) -> Result<()> {
        self.check_state()?;
        let running = self.instance.check_backup_state().and_then(|()| {
            if self.instance.shared.inits.load(Ordering::Acquire) != self.epoch {
                bail!(
                    BackupAbortByServer,
                    "the instance no longer runs this backup (it was terminated and initialised again)"
                );
            }
            self.check_stop()
        });
        running.map_err(|err| self.fail(err))
    }

    /// Whether the backup is running.
    fn check_state(&self) -> Result<()> {
        match &self.state {
            State::Running => Ok(()),
            State::Failed(err) => Err(err.clone()),
            State::Ended => bail!(InvalidBackupSequence, "the backup has ended"),
        }
    }

    /// `file` must be the one open.
    fn check_file(&self, file: BackupFile) -> Result<()> {
        match &self.open {
            Some(open) if open.id == file.id && file.backup == self.id => Ok(()),
            _ => bail!(
                InvalidParameter,
                "file {} is not open for this backup",
                file.id
            ),
        }
    }

    /// Every file was read whole.
    fn check_complete(&self) -> Result<()> {
        if self.kind == BackupKind::Full && !self.db.as_ref().is_some_and(DbReader::is_done) {
            bail!(
                InvalidBackupSequence,
                "the database was not read whole: the backup is not complete"
            );
        }
        if let Some(&missing) = self.logs.iter().find(|g| !self.logs_read.contains_key(g)) {
            bail!(
                LogFileNotCopied,
                "log generation {missing:#X} was not read whole: the backup is not complete"
            );
        }
        Ok(())
    }

    /// The database's next pages, in order, into `buf` (whole pages): those read now, and
    /// those the fence saved before their turn.
    fn read_database(&mut self, buf: &mut [u8]) -> Result<usize> {
        let page_size = self.page_size;
        let db = self.db.as_mut().expect("the database is open");
        let count = ((buf.len() / page_size) as Pgno).min(db.end - db.next);
        if count == 0 {
            return Ok(0);
        }
        let first = db.next;
        let out = &mut buf[..count as usize * page_size];
        let pieces = db.step(&self.env, running(&self.instance, self.id, self.epoch), out)?;
        self.ahead.extend(pieces.saved);
        let stale = planted::active(&self.env, PlantedBug::ExternalReadSkipsSavedPage);
        for (i, &skip) in pieces.skip.iter().enumerate() {
            if skip && !stale {
                let pgno = first + i as Pgno;
                let page = self
                    .ahead
                    .remove(&pgno)
                    .expect("a page the fence secured, it saved");
                out[i * page_size..(i + 1) * page_size].copy_from_slice(&page);
            }
        }
        let n = count as usize * page_size;
        self.summary.database_bytes += n as u64;
        Ok(n)
    }

    fn record_log(&mut self, done: SetLog) {
        if self.logs_read.insert(done.generation, done).is_none() {
            self.summary.log_bytes += done.len;
        }
    }
}

impl Drop for ExternalBackup {
    fn drop(&mut self) {
        if matches!(self.state, State::Running) {
            if self.phase == Phase::Truncated {
                // Recorded: dropped or ended, it succeeded.
                self.finish_normally();
                return;
            }
            self.fail(JetError::new(
                ErrorKind::BackupAbortByCaller,
                "the backup was dropped before it ended",
            ));
        }
    }
}

/// The part of the begin that runs under the instance lock: finish the current generation,
/// fix the backup point, hold the logs and fence the database file. `from` is the first
/// generation an incremental backup copies.
fn begin_in_core(core: &mut Core, id: u64, kind: BackupKind, from: Option<u32>) -> Result<Begun> {
    // A batch being written in pieces goes in first, and the checkpoint moves for it: the
    // file then holds one whole state, and the generations to copy begin at the checkpoint.
    core.change(Core::settle_round)?;
    let dir = core.params.log_path.clone();
    let base = core.params.base_name.clone();
    let db_path = core.params.database_path.clone();
    let header = core.db.header().clone();
    let vfs = std::sync::Arc::clone(&core.env.vfs);
    let log = core.log.as_ref().expect("checked: logging is on");
    let checkpoint = *log.checkpoint.current();
    let current_gen = log.writer.position().generation;
    let gen_low = match (kind, from) {
        (BackupKind::Incremental, Some(from)) => from,
        (BackupKind::Incremental, None) => bail!(
            MissingFullBackup,
            "an incremental backup extends a full backup, and none is recorded"
        ),
        _ => checkpoint.position.generation,
    };
    // Every generation to copy, before the one about to be finished, must still be here.
    if kind != BackupKind::Truncate {
        let present: std::collections::BTreeSet<u32> = log
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
        finish_generation(core)?;
        // The flush freed the pages that waited for the log: the cache goes back within its
        // size before the fence, whose copies-before-write it then need not make.
        core.relieve_cache()?;
        current_gen
    };
    // (An incremental with nothing new since the last backup copies the one generation
    // the begin finished.)
    debug_assert!(kind == BackupKind::Truncate || gen_low <= gen_high);
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
    let template = Manifest {
        set: 1,
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
    };
    Ok(Begun {
        begin,
        template,
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

/// Finishes the current log generation (flush, end record, roll) and returns it: every
/// commit before now is then in a finished generation.
fn finish_generation(core: &mut Core) -> Result<u32> {
    core.change(|core| {
        let log = core.log.as_mut().expect("a backup runs with logging");
        log.writer.flush()?;
        log.writer.roll()?;
        let durable = lsn(log.writer.durable());
        core.db.pager_mut().set_wal_durable(durable);
        Ok(log.writer.position().generation - 1)
    })
}

/// Records backup `begin` in the database header, durably, before the logs it allows to go
/// are deleted. It records commits up to the backup's point, so the log holds them durably
/// first.
fn record(core: &mut Core, kind: BackupKind, begin: SetBackup) -> Result<()> {
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
    core.flush_log()?;
    if planted::active(&core.env, PlantedBug::BackupRecordWaitsForCheckpoint) {
        record(core.db.pager_mut().header_mut());
        Ok(())
    } else {
        core.change(|core| core.db.pager_mut().write_header_now(record))
    }
}

/// Fails with `JET_errBackupAbortByServer` if [`Instance::stop_backup`] stopped backup `id`.
pub(crate) fn stop_requested(instance: &Instance, id: u64) -> Result<()> {
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

/// A check that the instance still runs backup `id`, begun in init `epoch`: its lifecycle
/// takes backup calls, no term and new init came since, and no stop.
fn running(instance: &Instance, id: u64, epoch: u64) -> impl Fn() -> Result<()> + '_ {
    move || {
        instance.check_backup_state()?;
        if instance.shared.inits.load(Ordering::Acquire) != epoch {
            bail!(
                BackupAbortByServer,
                "the instance no longer runs this backup (it was terminated and initialised again)"
            );
        }
        stop_requested(instance, id)
    }
}

/// Checks that the instance still runs this backup (a term or a new init ends it).
pub(crate) fn check_hold(core: &Core, id: u64) -> Result<()> {
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
