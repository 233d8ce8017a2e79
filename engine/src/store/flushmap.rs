//! The flush map: for every page, the dbtime its last write gave it, so a read that finds
//! an older page — a write the disk acknowledged but lost, or left at another place — is
//! refused with `JET_errReadLostFlushVerifyFailure` instead of being returned as data.
//!
//! A checksum proves a page is whole and its number that it sits where it belongs; neither
//! tells a page from an older copy of itself. ESE keeps a persisted flush map for this (a
//! state per page, checked against the page on read); this is the same idea made exact by
//! the atomic batches: every page a batch writes carries a new dbtime, and the batch writes
//! those dbtimes into the map in the same atomic step.
//!
//! # Where it lives
//!
//! Map pages sit at fixed places among the data pages, as SQLite's pointer-map pages do, so
//! finding a page's entry needs no lookup and every batch, backup and restore carries the map
//! with the pages it describes:
//!
//! ```text
//! pgno  0, 1   the header copies (they check each other; no entry)
//! pgno  2      the catalog root: its entry is in the header (`DbHeader::catalog_stamp`)
//! pgno  3      map page 0: entries of pages 4 ..= 3 + (S - 1)
//! pgno  3 + S  map page 1, and so on, every S pages
//! ```
//!
//! `S` is [`slots`]: a map page's body holds `S` little-endian u64 entries, and its slot 0 (the
//! map page itself) stays zero. Map pages are never allocated to a tree, never freed, and never
//! read through the cache: the pager keeps the whole map in memory (eight bytes a page, a
//! five-hundredth of the file) and rebuilds a map page from it whenever a batch writes a page
//! the map page describes.
//!
//! # Who checks the map pages
//!
//! The header records a digest of every map page's dbtime (`DbHeader::map_digest`): CRC32 of
//! their dbtimes in page order. A map page left stale by a lost write no longer matches it, so
//! the database is refused when it is opened. The header itself is two copies, written one
//! after the other, each checked by the other's sequence.

use crate::base::error::{ErrorKind, JetError, Result};
use crate::base::vfs::VfsFile;
use crate::store::header::DbHeader;
use crate::store::node;
use crate::store::page::{self, PAGE_HEADER_LEN, PageKind, Pgno};

/// The first map page.
pub(crate) const FIRST_MAP: Pgno = 3;

/// Entries on a map page of `page_size` bytes (slot 0 is the map page itself).
pub(crate) fn slots(page_size: usize) -> u32 {
    ((page_size - PAGE_HEADER_LEN) / 8) as u32
}

/// Whether page `pgno` is a map page.
pub(crate) fn is_map(pgno: Pgno, page_size: usize) -> bool {
    pgno >= FIRST_MAP && (pgno - FIRST_MAP).is_multiple_of(slots(page_size))
}

/// The map page holding `pgno`'s entry, and the entry's slot (for `pgno` past the catalog
/// root).
pub(crate) fn locate(pgno: Pgno, page_size: usize) -> (Pgno, usize) {
    debug_assert!(pgno >= FIRST_MAP);
    let s = slots(page_size);
    let group = (pgno - FIRST_MAP) / s;
    (FIRST_MAP + group * s, ((pgno - FIRST_MAP) % s) as usize)
}

/// The map pages of a database of `page_count` pages.
pub(crate) fn map_pages(page_count: Pgno, page_size: usize) -> impl Iterator<Item = Pgno> {
    let s = slots(page_size) as usize;
    (FIRST_MAP..page_count).step_by(s)
}

/// Entry `slot` of map page `p`.
pub(crate) fn entry(p: &[u8], slot: usize) -> u64 {
    let at = PAGE_HEADER_LEN + slot * 8;
    u64::from_le_bytes(p[at..at + 8].try_into().expect("8 bytes"))
}

/// Makes `p` the map page `map`, its entries taken from `stamps` (indexed by page number;
/// entries past its end are zero). The page's dbtime is kept.
pub(crate) fn fill(p: &mut [u8], map: Pgno, stamps: &[u64]) {
    let s = slots(p.len()) as usize;
    p[0..8].fill(0);
    p[16] = PageKind::Map as u8;
    p[17..PAGE_HEADER_LEN].fill(0);
    for slot in 0..s {
        let pgno = map as usize + slot;
        let value = if slot == 0 {
            0
        } else {
            stamps.get(pgno).copied().unwrap_or(0)
        };
        let at = PAGE_HEADER_LEN + slot * 8;
        p[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    let tail = PAGE_HEADER_LEN + s * 8;
    p[tail..].fill(0);
}

/// The digest the header records: CRC32 of the map pages' dbtimes in page order.
pub(crate) fn digest(dbtimes: impl Iterator<Item = u64>) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for dbtime in dbtimes {
        hasher.update(&dbtime.to_le_bytes());
    }
    hasher.finalize()
}

/// A lost or misplaced write: the page on disk is not the one the map says was written.
pub(crate) fn lost_flush(pgno: Pgno, found: u64, expected: u64) -> JetError {
    JetError::new(
        ErrorKind::ReadLostFlushVerifyFailure,
        format!(
            "page {pgno} has dbtime {found} but its last write gave it {expected} (a lost or misdirected write)"
        ),
    )
}

/// The map digest does not match the map pages: one of them lost a write.
pub(crate) fn stale_map(expected: u32, found: u32) -> JetError {
    JetError::new(
        ErrorKind::ReadLostFlushVerifyFailure,
        format!(
            "the flush map's pages have digest {found:#010x} but the header records {expected:#010x} (a map page lost a write)"
        ),
    )
}

/// Reads the map pages of the file `header` describes and checks their dbtimes against the
/// header's digest. A map page that cannot be read, or fails its own checks, is an error too.
pub(crate) fn check_digest(file: &dyn VfsFile, header: &DbHeader) -> Result<()> {
    let page_size = header.page_size as usize;
    let mut p = vec![0u8; page_size];
    let mut dbtimes = Vec::new();
    for map in map_pages(header.page_count, page_size) {
        file.read_exact_at(&mut p, u64::from(map) * page_size as u64)
            .map_err(|err| JetError::io(format!("read flush map page {map}"), &err))?;
        let (kind, dbtime) = node::validate(&p, map)?;
        // (As the pager's open checks them: a map page newer than the header is corrupt.)
        if kind != PageKind::Map || dbtime > header.dbtime {
            return Err(JetError::new(
                ErrorKind::DatabaseCorrupted,
                format!(
                    "page {map} should be a page of the flush map, at most dbtime {}, but is a {kind:?} page of dbtime {dbtime}",
                    header.dbtime
                ),
            ));
        }
        dbtimes.push(dbtime);
    }
    let found = digest(dbtimes.into_iter());
    match found == header.map_digest {
        true => Ok(()),
        false => Err(stale_map(header.map_digest, found)),
    }
}

/// Checks the pages of a database file read in page order (a restore, a file check):
/// each page's dbtime against its entry, each map page's dbtime into the digest.
pub(crate) struct Verifier {
    page_size: usize,
    page_count: Pgno,
    catalog_stamp: u64,
    map_digest: u32,
    /// The map page of the group being read.
    map: Option<Vec<u8>>,
    hasher: crc32fast::Hasher,
}

impl Verifier {
    /// A verifier for the pages `header` describes.
    pub(crate) fn new(header: &DbHeader) -> Verifier {
        Verifier {
            page_size: header.page_size as usize,
            page_count: header.page_count,
            catalog_stamp: header.catalog_stamp,
            map_digest: header.map_digest,
            map: None,
            hasher: crc32fast::Hasher::new(),
        }
    }

    /// Checks page `pgno`, which has already passed its checksum and page number check.
    /// Pages must come in ascending order; pages past the page count are not checked.
    pub(crate) fn check(&mut self, pgno: Pgno, p: &[u8]) -> Result<()> {
        if pgno < crate::store::header::CATALOG_ROOT || pgno >= self.page_count {
            return Ok(());
        }
        let found = page::dbtime_of(p);
        if pgno == crate::store::header::CATALOG_ROOT {
            return match found == self.catalog_stamp {
                true => Ok(()),
                false => Err(lost_flush(pgno, found, self.catalog_stamp)),
            };
        }
        let (map, slot) = locate(pgno, self.page_size);
        if slot == 0 {
            if node::kind(p) != Some(PageKind::Map) {
                // The pages it describes are not checked against the one before it.
                self.map = None;
                return Err(JetError::new(
                    ErrorKind::DatabaseCorrupted,
                    format!("page {pgno} should be a page of the flush map"),
                ));
            }
            self.hasher.update(&found.to_le_bytes());
            self.map = Some(p.to_vec());
            return Ok(());
        }
        let Some(map_page) = &self.map else {
            // Its map page failed its own checks: that error is the one reported.
            return Ok(());
        };
        debug_assert!(map < pgno);
        let expected = entry(map_page, slot);
        match found == expected {
            true => Ok(()),
            false => Err(lost_flush(pgno, found, expected)),
        }
    }

    /// Page `pgno` failed its own checks (checksum, page number) and is passed over; if it is
    /// a map page, the pages it describes are not checked either (for a caller that goes on
    /// past a bad page, as a backup's verification does, rather than stop at it).
    pub(crate) fn skip(&mut self, pgno: Pgno) {
        if pgno > crate::store::header::CATALOG_ROOT
            && pgno < self.page_count
            && locate(pgno, self.page_size).1 == 0
        {
            self.map = None;
        }
    }

    /// After the last page: the map pages against the header's digest.
    pub(crate) fn finish(self) -> Result<()> {
        let found = self.hasher.finalize();
        match found == self.map_digest {
            true => Ok(()),
            false => Err(stale_map(self.map_digest, found)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_pages_sit_every_slots_pages_from_page_three() {
        let s = slots(4096);
        assert_eq!(s, 508);
        assert!(!is_map(2, 4096));
        assert!(is_map(3, 4096));
        assert!(!is_map(4, 4096));
        assert!(is_map(3 + s, 4096));
        assert!(!is_map(2 + s, 4096));
        assert_eq!(locate(4, 4096), (3, 1));
        assert_eq!(locate(2 + s, 4096), (3, s as usize - 1));
        assert_eq!(locate(3 + s, 4096), (3 + s, 0));
        assert_eq!(locate(4 + s, 4096), (3 + s, 1));
        let maps: Vec<Pgno> = map_pages(4 + s, 4096).collect();
        assert_eq!(maps, vec![3, 3 + s]);
        assert_eq!(map_pages(3, 4096).count(), 0);
    }

    #[test]
    fn a_filled_map_page_holds_each_entry_in_its_slot() {
        let mut p = vec![0xAAu8; 4096];
        let stamps: Vec<u64> = (0..600).map(|i| i * 10).collect();
        fill(&mut p, 3, &stamps);
        assert_eq!(node::kind(&p), Some(PageKind::Map));
        assert_eq!(entry(&p, 0), 0, "a map page has no entry of its own");
        assert_eq!(entry(&p, 1), 40);
        assert_eq!(entry(&p, 507), 5100);
        // Past the stamps' end, zero.
        let mut q = vec![0xAAu8; 4096];
        fill(&mut q, 511, &stamps);
        assert_eq!(entry(&q, 1), 5120);
        assert_eq!(entry(&q, 100), 0);
    }

    #[test]
    fn the_digest_depends_on_every_dbtime_and_their_order() {
        let a = digest([1u64, 2, 3].into_iter());
        assert_ne!(a, digest([1u64, 2, 4].into_iter()));
        assert_ne!(a, digest([2u64, 1, 3].into_iter()));
        assert_eq!(a, digest([1u64, 2, 3].into_iter()));
    }

    use crate::base::vfs::{MemVfs, OpenMode, Vfs};
    use crate::store::page::PageHeader;

    const PAGE: usize = 4096;

    /// A header of `page_count` pages of 4 KiB (only the fields the map reads matter).
    fn header(page_count: Pgno, dbtime: u64, catalog_stamp: u64, map_digest: u32) -> DbHeader {
        DbHeader {
            dbtime,
            page_count,
            catalog_stamp,
            map_digest,
            ..crate::store::header::tests::sample(PAGE as u32)
        }
    }

    /// Map page `map` of dbtime `dbtime`, its entries from `stamps`, sealed.
    fn map_page(map: Pgno, dbtime: u64, stamps: &[u64]) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        fill(&mut p, map, stamps);
        page::seal(
            &mut p,
            PageHeader {
                pgno: map,
                dbtime,
                kind: PageKind::Map,
            },
        );
        p
    }

    /// A page of dbtime `dbtime` (all the verifier reads of a data page).
    fn data_page(dbtime: u64) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        page::set_dbtime(&mut p, dbtime);
        p
    }

    #[test]
    fn the_file_check_reads_the_map_pages_against_the_header_digest() {
        // Two map pages (3 and 3 + 508 = 511): map page 0 last written at dbtime 5, map page 1
        // at 9, the header's dbtime. A map page older than the header is the usual case.
        let count = 512;
        let vfs = MemVfs::new();
        let file = vfs
            .open(std::path::Path::new("/db"), OpenMode::CreateNew)
            .unwrap();
        let write = |map: Pgno, p: &[u8]| {
            file.write_all_at(p, u64::from(map) * PAGE as u64).unwrap();
        };
        write(3, &map_page(3, 5, &[]));
        write(511, &map_page(511, 9, &[]));
        let good = header(count, 9, 0, digest([5u64, 9].into_iter()));
        check_digest(&*file, &good).expect("a map page older than the header is whole");

        // Map page 1 lost its last write: it still holds dbtime 7.
        write(511, &map_page(511, 7, &[]));
        let err = check_digest(&*file, &good).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");

        // A page of another kind where map page 1 belongs, at the very dbtime the digest
        // records: corrupt, whatever the digest says.
        let mut free = vec![0u8; PAGE];
        page::seal(
            &mut free,
            PageHeader {
                pgno: 511,
                dbtime: 9,
                kind: PageKind::Free,
            },
        );
        write(511, &free);
        let err = check_digest(&*file, &good).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DatabaseCorrupted, "{err}");

        // And a map page newer than the header is corrupt too.
        write(511, &map_page(511, 10, &[]));
        let newer = header(count, 9, 0, digest([5u64, 10].into_iter()));
        let err = check_digest(&*file, &newer).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DatabaseCorrupted, "{err}");
    }

    #[test]
    fn the_verifier_checks_the_catalog_root_against_the_header_stamp() {
        let h = header(4, 9, 6, digest([8u64].into_iter()));
        let mut v = Verifier::new(&h);
        // The header copies have no entry.
        v.check(0, &data_page(1)).unwrap();
        v.check(1, &data_page(1)).unwrap();
        // The catalog root lost its last write (dbtime 6): it still holds dbtime 4.
        let err = v.check(2, &data_page(4)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
        let mut v = Verifier::new(&h);
        v.check(2, &data_page(6))
            .expect("the catalog root as last written");
        v.check(3, &map_page(3, 8, &[])).unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn the_verifier_refuses_a_map_page_that_lost_a_write_with_the_pages_it_describes() {
        // Pages 4 and 5 written at dbtime 8 with map page 0, in one batch; the header's digest
        // records map page 0 at dbtime 8.
        let mut stamps = vec![0u64; 6];
        stamps[4] = 8;
        stamps[5] = 8;
        let h = header(6, 8, 2, digest([8u64].into_iter()));
        let pass = |map: &[u8], pages: &[u64]| -> Result<()> {
            let mut v = Verifier::new(&h);
            v.check(2, &data_page(2))?;
            v.check(3, map)?;
            for (i, &t) in pages.iter().enumerate() {
                v.check(4 + i as Pgno, &data_page(t))?;
            }
            v.finish()
        };
        pass(&map_page(3, 8, &stamps), &[8, 8]).expect("the pages as last written");
        // The whole batch lost: map page 0 and its pages hold the previous batch's writes
        // (dbtime 3), each page agreeing with the stale map. Only the digest tells.
        let mut old = vec![0u64; 6];
        old[4] = 3;
        old[5] = 3;
        let err = pass(&map_page(3, 3, &old), &[3, 3]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
        // The map page alone lost: its pages tell.
        let err = pass(&map_page(3, 3, &old), &[8, 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    }
}
