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

pub mod backup;
mod btree;
mod catalog;
pub mod checkpoint;
mod codec;
mod database;
pub mod doublewrite;
mod env;
mod error;
pub mod event;
mod flushmap;
pub mod header;
mod instance;
mod integrity;
pub mod limits;
pub mod log;
pub mod manifest;
mod node;
mod os;
mod overflow;
pub mod page;
mod pager;
pub mod planted;
mod recovery;
mod restore;
mod session;
pub mod status;
mod version;
mod vfs;
mod writeset;

pub use backup::{BackupFlags, BackupJob, BackupSummary};
pub use btree::SeekMode;
pub use catalog::CATALOG_ROOT;
pub use database::{Cursor, Database, DatabaseOptions, Range, Table};
pub use env::{Clock, Entropy, Env, ManualClock, SeededEntropy};
pub use error::{ErrorKind, JetError, Result};
pub use event::{BackupKind, Event, EventLog, EventRecord, Operation};
pub use header::{BackupInfo, DbHeader, DbState, Lgpos, Signature};
pub use instance::{CommitMode, Instance, InstanceParams, InstanceStats};
pub use integrity::{
    BadPage, ChecksumReport, IntegrityReport, TableReport, read_header_copies, verify_file,
};
pub use os::{OsVfs, SystemClock, os_seed};
pub use planted::PlantedBug;
pub use recovery::{RecoveryReport, describe_tail};
pub use restore::{DAMAGE_ERRORS as RESTORE_DAMAGE_ERRORS, RestoreSummary};
pub use session::{Session, TxRange};
pub use status::{Status, StatusFn, StatusKind};
pub use vfs::{MemVfs, OpenMode, Vfs, VfsFile, parent_dir};

/// The README's examples run as doctests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
