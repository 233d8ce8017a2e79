//! The database header, kept in page 0 with a shadow copy in page 1.
//!
//! The two copies are written one after the other, each followed by an fsync, so a torn write
//! of either always leaves the other whole. On open, the valid copy with the higher update
//! sequence wins.
//!
//! Body layout (after the 32-byte page envelope; little-endian):
//!
//! ```text
//! offset size field
//!     32    4 magic 0x89ABCDEF
//!     36    4 format version
//!     40    4 page size
//!     44    8 update sequence (grows by one with every header write)
//!     52   16 database signature: random u64, creation time (ms since the epoch)
//!     68   16 log signature: random u64, creation time
//!     84    4 state: 1 JustCreated, 2 DirtyShutdown, 3 CleanShutdown
//!     88    8 dbtime: the last database time handed out
//!     96    4 page count: the logical end of the file
//!    100    4 free list head (0: empty)
//!    104    4 free page count
//!    108    8 consistent log position (generation u32, offset u32)
//!    116    8 consistent time
//!    124   24 last full backup: mark (8), time (8), lowest and highest generation (4 + 4)
//!    148   24 last incremental backup: the same fields
//!    172    8 log through: the end of the log records whose changes the file holds
//!    180    8 catalog stamp: the dbtime the catalog root's last write gave it
//!    188    4 map digest: CRC32 of the flush map pages' dbtimes (see `flushmap`)
//! ```
//!
//! Version 2 added `log through`; version 3 made tree pages slotted (see `node`); version 4
//! added the flush map. Files of versions 1 (whose logs held page images) to 3 are refused
//! with `JET_errInvalidDatabaseVersion`.

use std::fmt;

use crate::base::codec::{Reader, Writer};
use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::limits;
use crate::base::vfs::VfsFile;
use crate::store::page::{self, PAGE_HEADER_LEN, PageHeader, PageKind, Pgno};

/// The magic number at the start of the header body (ESE's database magic).
pub const MAGIC: u32 = 0x89AB_CDEF;
/// The on-disk format version this engine writes and reads.
pub const FORMAT_VERSION: u32 = 4;
/// The page holding the primary header copy.
pub const HEADER_PGNO: Pgno = 0;
/// The page holding the shadow header copy.
pub const SHADOW_PGNO: Pgno = 1;
// Fixed, as the header's own pages are, and defined here beside them rather than in `catalog`:
// the modules the catalog is built on need it too (the header's checks, the flush map, whose
// entry for it the header holds, the doublewrite file and the pager).
/// The root page of the catalog tree.
pub const CATALOG_ROOT: Pgno = 2;

/// The identity of a database or a log set: a random number and a creation time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature {
    /// A random number drawn from the instance's entropy source.
    pub random: u64,
    /// When the signature was made, in milliseconds since the Unix epoch.
    pub created_millis: u64,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}@{}", self.random, self.created_millis)
    }
}

/// A position in the log: a generation and a byte offset within it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lgpos {
    /// The log generation.
    pub generation: u32,
    /// The byte offset within the generation's file.
    pub offset: u32,
}

impl fmt::Display for Lgpos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:08X},{:08X})", self.generation, self.offset)
    }
}

/// The database state recorded in the header, with ESE's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbState {
    /// Creation has not finished.
    JustCreated = 1,
    /// The database is (or was, when the process died) open for writing.
    DirtyShutdown = 2,
    /// Every change is in the file; no recovery is needed.
    CleanShutdown = 3,
}

impl DbState {
    fn from_u32(v: u32) -> Option<DbState> {
        Some(match v {
            1 => DbState::JustCreated,
            2 => DbState::DirtyShutdown,
            3 => DbState::CleanShutdown,
            _ => return None,
        })
    }
}

/// A backup record in the header (ESE's BKINFO): which backup, when, and its log range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupInfo {
    /// The backup's identity: the log position at which it began.
    pub mark: Lgpos,
    /// When the backup began, in milliseconds since the Unix epoch.
    pub time_millis: u64,
    /// The lowest log generation of the backup set (0: no backup recorded).
    pub gen_low: u32,
    /// The highest log generation of the backup set.
    pub gen_high: u32,
}

impl BackupInfo {
    /// Whether this record holds a backup.
    pub fn is_set(&self) -> bool {
        self.gen_low != 0
    }
}

/// The database header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbHeader {
    /// The on-disk format version.
    pub format_version: u32,
    /// The page size in bytes.
    pub page_size: u32,
    /// Grows by one with every header write; the higher of two valid copies wins.
    pub sequence: u64,
    /// The database's own identity.
    pub db_signature: Signature,
    /// The identity of the log set the database belongs to.
    pub log_signature: Signature,
    /// Whether the database was shut down cleanly.
    pub state: DbState,
    /// The last database time handed out; every page's dbtime is at most this.
    pub dbtime: u64,
    /// The number of pages in the database: its logical end.
    pub page_count: u32,
    /// The first page of the free list (0: the list is empty).
    pub free_head: Pgno,
    /// How many pages are on the free list.
    pub free_count: u32,
    /// The log position at which the database was last consistent.
    pub consistent_lgpos: Lgpos,
    /// When the database was last consistent.
    pub consistent_millis: u64,
    /// The last successful full backup.
    pub backup_full: BackupInfo,
    /// The last successful incremental backup since that full backup.
    pub backup_incremental: BackupInfo,
    /// The end of the log records whose changes the file holds (a batch writes it): a log
    /// that ends before it lost records it had made durable, and recovery refuses it.
    pub log_through: Lgpos,
    /// The dbtime the catalog root (page 2) was last written with: the flush map's entry for
    /// it (see `flushmap`).
    pub catalog_stamp: u64,
    /// CRC32 of the flush map pages' dbtimes, in page order: a map page that lost a write
    /// no longer matches it.
    pub map_digest: u32,
}

const BODY_LEN: usize = 192 - PAGE_HEADER_LEN;

impl DbHeader {
    /// Encodes the header as the page `pgno` (0 or 1) of `page_size` bytes.
    pub fn encode(&self, pgno: Pgno) -> Vec<u8> {
        assert!(pgno == HEADER_PGNO || pgno == SHADOW_PGNO);
        assert!(limits::page_size_valid(self.page_size as usize));
        let mut page = vec![0u8; PAGE_HEADER_LEN];
        let mut w = Writer::new(&mut page);
        w.u32(MAGIC);
        w.u32(self.format_version);
        w.u32(self.page_size);
        w.u64(self.sequence);
        for sig in [self.db_signature, self.log_signature] {
            w.u64(sig.random);
            w.u64(sig.created_millis);
        }
        w.u32(self.state as u32);
        w.u64(self.dbtime);
        w.u32(self.page_count);
        w.u32(self.free_head);
        w.u32(self.free_count);
        w.u32(self.consistent_lgpos.generation);
        w.u32(self.consistent_lgpos.offset);
        w.u64(self.consistent_millis);
        for info in [self.backup_full, self.backup_incremental] {
            w.u32(info.mark.generation);
            w.u32(info.mark.offset);
            w.u64(info.time_millis);
            w.u32(info.gen_low);
            w.u32(info.gen_high);
        }
        w.u32(self.log_through.generation);
        w.u32(self.log_through.offset);
        w.u64(self.catalog_stamp);
        w.u32(self.map_digest);
        debug_assert_eq!(page.len(), PAGE_HEADER_LEN + BODY_LEN);
        page.resize(self.page_size as usize, 0);
        page::seal(
            &mut page,
            PageHeader {
                pgno,
                dbtime: self.dbtime,
                kind: PageKind::Header,
            },
        );
        page
    }

    /// Decodes and validates the header copy in `page`, which was read as page `pgno`.
    pub fn decode(page: &[u8], pgno: Pgno) -> Result<DbHeader> {
        let envelope = page::verify(page, pgno)?;
        if envelope.kind != PageKind::Header {
            bail!(
                DatabaseCorrupted,
                "page {pgno} should hold the database header but holds a {:?} page",
                envelope.kind
            );
        }
        let mut r = Reader::new(&page[PAGE_HEADER_LEN..]);
        let magic = r.u32()?;
        if magic != MAGIC {
            bail!(
                InvalidDatabase,
                "page {pgno}: bad magic {magic:#010x}; not a jetdb database"
            );
        }
        let format_version = r.u32()?;
        if format_version != FORMAT_VERSION {
            bail!(
                InvalidDatabaseVersion,
                "format version {format_version}; this engine reads version {FORMAT_VERSION}"
            );
        }
        let page_size = r.u32()?;
        if !limits::page_size_valid(page_size as usize) || page_size as usize != page.len() {
            bail!(
                DatabaseCorrupted,
                "header copy {pgno}: page size {page_size} is not valid here"
            );
        }
        let sequence = r.u64()?;
        let db_signature = Signature {
            random: r.u64()?,
            created_millis: r.u64()?,
        };
        let log_signature = Signature {
            random: r.u64()?,
            created_millis: r.u64()?,
        };
        let state_raw = r.u32()?;
        let state = DbState::from_u32(state_raw).ok_or_else(|| {
            JetError::new(
                ErrorKind::DatabaseCorrupted,
                format!("header copy {pgno}: unknown state {state_raw}"),
            )
        })?;
        let dbtime = r.u64()?;
        let page_count = r.u32()?;
        let free_head = r.u32()?;
        let free_count = r.u32()?;
        let consistent_lgpos = Lgpos {
            generation: r.u32()?,
            offset: r.u32()?,
        };
        let consistent_millis = r.u64()?;
        let mut backups = [BackupInfo::default(); 2];
        for info in &mut backups {
            info.mark = Lgpos {
                generation: r.u32()?,
                offset: r.u32()?,
            };
            info.time_millis = r.u64()?;
            info.gen_low = r.u32()?;
            info.gen_high = r.u32()?;
        }
        let log_through = Lgpos {
            generation: r.u32()?,
            offset: r.u32()?,
        };
        let catalog_stamp = r.u64()?;
        let map_digest = r.u32()?;
        let header = DbHeader {
            format_version,
            page_size,
            sequence,
            db_signature,
            log_signature,
            state,
            dbtime,
            page_count,
            free_head,
            free_count,
            consistent_lgpos,
            consistent_millis,
            backup_full: backups[0],
            backup_incremental: backups[1],
            log_through,
            catalog_stamp,
            map_digest,
        };
        header
            .check_geometry()
            .map_err(|err| err.context(format!("header copy {pgno}")))?;
        Ok(header)
    }

    /// Checks the header's counts against each other, before any layout math trusts them.
    fn check_geometry(&self) -> Result<()> {
        if self.page_count <= CATALOG_ROOT {
            bail!(
                DatabaseCorrupted,
                "page count {} is below the fixed pages",
                self.page_count
            );
        }
        if self.free_count >= self.page_count {
            bail!(
                DatabaseCorrupted,
                "{} free pages of {}",
                self.free_count,
                self.page_count
            );
        }
        if (self.free_head == 0) != (self.free_count == 0)
            || (self.free_head != 0
                && (self.free_head <= CATALOG_ROOT || self.free_head >= self.page_count))
        {
            bail!(
                DatabaseCorrupted,
                "free list head {} does not agree with {} free pages of {}",
                self.free_head,
                self.free_count,
                self.page_count
            );
        }
        Ok(())
    }
}

/// What was found in one header copy.
pub type HeaderCopy = Result<DbHeader>;

/// Reads both header copies of the database file. Page 1's offset depends on the page size,
/// which is taken from page 0 when that copy names a valid one and is otherwise searched for.
pub fn read_copies(file: &dyn VfsFile) -> Result<[HeaderCopy; 2]> {
    let len = file
        .len()
        .map_err(|err| JetError::io("read the database header", &err))?;
    if len < 2 * limits::PAGE_SIZE_MIN as u64 {
        bail!(
            DatabaseCorrupted,
            "the file holds {len} bytes, too few for the two header pages"
        );
    }
    let primary = read_copy(file, len, HEADER_PGNO, None)?;
    let hint = primary.as_ref().ok().map(|h| h.page_size as usize);
    let shadow = read_copy(file, len, SHADOW_PGNO, hint)?;
    Ok([primary, shadow])
}

/// Writes `chosen` over every copy that is damaged or differs from it, each write followed
/// by an fsync (and the file fsynced first), leaving the good copy untouched: afterwards both copies are whole, so the next
/// header write (copy 0, then copy 1) never has both copies in flight at once. A crash during
/// the repair leaves the good copy as it was.
pub(crate) fn repair_copies(
    file: &dyn VfsFile,
    copies: &[HeaderCopy; 2],
    chosen: &DbHeader,
) -> Result<bool> {
    let mut repaired = false;
    for (copy, pgno) in copies.iter().zip([HEADER_PGNO, SHADOW_PGNO]) {
        if matches!(copy, Ok(h) if h == chosen) {
            continue;
        }
        if !repaired {
            // The good copy may be a write whose fsync failed before a crash, still pending:
            // it must be durable before the other copy is written.
            file.sync()
                .map_err(|err| JetError::io("fsync before repairing the header", &err))?;
        }
        let offset = u64::from(pgno) * u64::from(chosen.page_size);
        file.write_all_at(&chosen.encode(pgno), offset)
            .and_then(|()| file.sync())
            .map_err(|err| JetError::io(format!("repair header copy {pgno}"), &err))?;
        repaired = true;
    }
    Ok(repaired)
}

/// The header to trust: the valid copy with the higher update sequence.
pub fn choose(copies: &[HeaderCopy; 2]) -> Result<&DbHeader> {
    match copies {
        [Ok(a), Ok(b)] => Ok(if b.sequence > a.sequence { b } else { a }),
        [Ok(a), Err(_)] => Ok(a),
        [Err(_), Ok(b)] => Ok(b),
        [Err(a), Err(b)] => {
            // Report the primary copy's kind of failure, and both messages.
            Err(JetError::new(
                a.kind(),
                format!(
                    "both header copies are bad: {}; {}",
                    a.message(),
                    b.message()
                ),
            ))
        }
    }
}

fn read_copy(
    file: &dyn VfsFile,
    len: u64,
    pgno: Pgno,
    page_size: Option<usize>,
) -> Result<HeaderCopy> {
    let candidates: Vec<usize> = match page_size {
        Some(size) => vec![size],
        None if pgno == HEADER_PGNO => vec![peek_page_size(file)?.unwrap_or(limits::PAGE_SIZE_MIN)],
        None => (0..)
            .map(|shift| limits::PAGE_SIZE_MIN << shift)
            .take_while(|&size| size <= limits::PAGE_SIZE_MAX)
            .collect(),
    };
    let mut first_err = None;
    for size in candidates {
        let offset = u64::from(pgno) * size as u64;
        if offset + size as u64 > len {
            let err = JetError::new(
                ErrorKind::DatabaseCorrupted,
                format!("header copy {pgno} lies beyond the end"),
            );
            first_err.get_or_insert(err);
            continue;
        }
        let mut page = vec![0u8; size];
        file.read_exact_at(&mut page, offset)
            .map_err(|err| JetError::io(format!("read header copy {pgno}"), &err))?;
        match DbHeader::decode(&page, pgno) {
            Ok(header) => return Ok(Ok(header)),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    Ok(Err(first_err.expect("at least one candidate page size")))
}

/// The page size named by page 0, if it names a valid one (the checksum is not checked yet).
fn peek_page_size(file: &dyn VfsFile) -> Result<Option<usize>> {
    let mut head = [0u8; PAGE_HEADER_LEN + 12];
    file.read_exact_at(&mut head, 0)
        .map_err(|err| JetError::io("read the database header", &err))?;
    let size = u32::from_le_bytes(
        head[PAGE_HEADER_LEN + 8..PAGE_HEADER_LEN + 12]
            .try_into()
            .expect("4 bytes"),
    );
    Ok(Some(size as usize).filter(|&s| limits::page_size_valid(s)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header with every field set, most away from their defaults (for tests).
    pub(crate) fn sample(page_size: u32) -> DbHeader {
        DbHeader {
            format_version: FORMAT_VERSION,
            page_size,
            sequence: 5,
            db_signature: Signature {
                random: 1,
                created_millis: 2,
            },
            log_signature: Signature {
                random: 3,
                created_millis: 4,
            },
            state: DbState::CleanShutdown,
            dbtime: 77,
            page_count: 10,
            free_head: 4,
            free_count: 2,
            consistent_lgpos: Lgpos {
                generation: 3,
                offset: 4096,
            },
            consistent_millis: 99,
            backup_full: BackupInfo {
                mark: Lgpos {
                    generation: 2,
                    offset: 8,
                },
                time_millis: 5,
                gen_low: 1,
                gen_high: 2,
            },
            backup_incremental: BackupInfo::default(),
            log_through: Lgpos {
                generation: 3,
                offset: 8192,
            },
            catalog_stamp: 76,
            map_digest: 0x1234_5678,
        }
    }

    #[test]
    fn round_trip_every_page_size() {
        for size in [4096, 8192, 16384, 32768] {
            let header = sample(size);
            for pgno in [HEADER_PGNO, SHADOW_PGNO] {
                let page = header.encode(pgno);
                assert_eq!(page.len(), size as usize);
                assert_eq!(DbHeader::decode(&page, pgno).unwrap(), header);
            }
        }
    }

    #[test]
    fn bad_fields_are_refused() {
        let good = sample(4096);
        let mut wrong_magic = good.encode(0);
        wrong_magic[PAGE_HEADER_LEN] ^= 1;
        page::seal(
            &mut wrong_magic,
            PageHeader {
                pgno: 0,
                dbtime: 77,
                kind: PageKind::Header,
            },
        );
        assert_eq!(
            DbHeader::decode(&wrong_magic, 0).unwrap_err().kind(),
            ErrorKind::InvalidDatabase
        );
        // Version 1 (its logs held page images), 2 (its tree pages were not slotted) and any
        // later one are refused.
        for version in [1, 2, 9] {
            let other = DbHeader {
                format_version: version,
                ..good.clone()
            };
            assert_eq!(
                DbHeader::decode(&other.encode(0), 0).unwrap_err().kind(),
                ErrorKind::InvalidDatabaseVersion
            );
        }
        let leaky = DbHeader {
            free_count: 0,
            ..good.clone()
        };
        assert_eq!(
            DbHeader::decode(&leaky.encode(0), 0).unwrap_err().kind(),
            ErrorKind::DatabaseCorrupted
        );
        let mut flipped = good.encode(1);
        flipped[100] ^= 0x10;
        assert_eq!(
            DbHeader::decode(&flipped, 1).unwrap_err().kind(),
            ErrorKind::ReadVerifyFailure
        );
    }

    #[test]
    fn choose_prefers_the_newer_valid_copy() {
        let older = sample(4096);
        let newer = DbHeader {
            sequence: 6,
            ..older.clone()
        };
        let bad = || Err(JetError::bare(ErrorKind::ReadVerifyFailure));
        assert_eq!(
            choose(&[Ok(older.clone()), Ok(newer.clone())]).unwrap(),
            &newer
        );
        assert_eq!(
            choose(&[Ok(newer.clone()), Ok(older.clone())]).unwrap(),
            &newer
        );
        assert_eq!(choose(&[bad(), Ok(older.clone())]).unwrap(), &older);
        assert_eq!(choose(&[Ok(older.clone()), bad()]).unwrap(), &older);
        assert_eq!(
            choose(&[bad(), bad()]).unwrap_err().kind(),
            ErrorKind::ReadVerifyFailure
        );
    }
}
