//! `jetdb`: an embedded transactional storage engine in the mould of Microsoft's Extensible
//! Storage Engine (ESE, "JET Blue").
//!
//! A database is one file of fixed-size, checksummed pages holding named tables, each a
//! B+tree of byte keys (up to 255 bytes) to byte values (up to 1 MiB; large values are stored
//! out of line). Every failure is a [`JetError`] carrying ESE's error name and code.
//!
//! The engine reaches the outside world only through its [`Env`]: a [`Vfs`] for every file and
//! directory operation, a [`Clock`] for time, and an [`Entropy`] source for signatures. The
//! real ones are [`OsVfs`], [`SystemClock`] and OS-seeded entropy ([`Env::os`]); a simulator
//! supplies its own, and the engine then produces the same bytes for the same seed.
//!
//! ```
//! use jetdb::{Database, DatabaseOptions, Env, SeekMode};
//! # fn main() -> jetdb::Result<()> {
//! let env = Env::memory(42); // or Env::os() for real files
//! let mut db = Database::create(&env, "data.edb".as_ref(), &DatabaseOptions::default())?;
//! let users = db.create_table("users")?;
//! db.put(users, b"ada", b"lovelace")?;
//! db.put(users, b"grace", b"hopper")?;
//! let mut cursor = db.cursor(users)?;
//! cursor.seek(b"b", SeekMode::Ge)?;
//! assert_eq!(cursor.key()?, b"grace");
//! db.close()?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The engine's layers, bottom to top: base, store, wal, txn, backups. A module imports only from
// its own layer and those below it, and no modules import each other in a circle
// (engine/tests/layers.rs checks both; ARCHITECTURE.md's code map says why each module sits
// where it does).
mod backups;
mod base;
mod store;
mod txn;
mod wal;

// The modules that are public API, at the crate's root whatever layer they sit in.
pub use backups::{backup, external, manifest, status, stream, verify};
pub use base::{limits, planted};
pub use store::{doublewrite, header, page};
pub use txn::event;
pub use wal::{checkpoint, log};

pub use backups::backup::{BackupFlags, BackupJob, BackupOptions, BackupSummary};
pub use backups::external::{BackupEnd, BackupFile, ExternalBackup};
pub use backups::restore::{
    DAMAGE_ERRORS as RESTORE_DAMAGE_ERRORS, RestoreOptions, RestorePoint, RestoreSummary,
};
pub use backups::status::{Status, StatusFn, StatusKind};
pub use backups::verify::{BackupReport, Problem, verify_backup};
pub use base::env::{Clock, Entropy, Env, ManualClock, SeededEntropy};
pub use base::error::{ErrorKind, JetError, Result};
pub use base::os::{OsVfs, SystemClock, os_seed};
pub use base::planted::PlantedBug;
pub use base::vfs::{MemVfs, OpenMode, Vfs, VfsFile, parent_dir};
pub use store::btree::SeekMode;
pub use store::database::{Cursor, Database, DatabaseOptions, Range, Table};
pub use store::header::{BackupInfo, CATALOG_ROOT, DbHeader, DbState, Lgpos, Signature};
pub use store::integrity::{
    BadPage, ChecksumReport, IntegrityReport, TableReport, read_header_copies, verify_file,
};
pub use txn::event::{BackupKind, Event, EventLog, EventRecord, Operation};
pub use txn::instance::{CommitMode, Instance, InstanceParams, InstanceStats};
pub use txn::session::{Session, TxRange};
pub use wal::recovery::{RecoveryReport, describe_tail};

/// The README's examples run as doctests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
