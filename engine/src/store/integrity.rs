//! Checking a database whole: the structure of every tree and the checksum of every page.
//!
//! [`Database::check_integrity`] walks the catalog, every table's tree, every out-of-line value
//! and the free list through the page cache, and proves that every page of the file is used
//! exactly once and every tree is well formed. [`verify_file`] reads every page of a file
//! straight from disk and verifies its checksum, without opening the database; it is what
//! `jetutil checksum` runs and works on a file too damaged to open.

use std::collections::BTreeMap;
use std::path::Path;

use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::vfs::{OpenMode, Vfs};
use crate::store::btree::DEPTH_MAX;
use crate::store::database::Database;
use crate::store::flushmap;
use crate::store::header::CATALOG_ROOT;
use crate::store::header::{self, DbHeader, HeaderCopy};
use crate::store::node::{self, ValueRef};
use crate::store::overflow;
use crate::store::page::PageKind;
use crate::store::page::Pgno;
use crate::store::pager::Pager;

/// What [`Database::check_integrity`] found in a sound database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Pages in the database, header pages included.
    pub page_count: u32,
    /// Pages on the free list.
    pub free_pages: u32,
    /// Pages of the catalog tree.
    pub catalog_pages: u32,
    /// Pages of the flush map.
    pub map_pages: u32,
    /// Each table, by name.
    pub tables: BTreeMap<String, TableReport>,
}

/// One table's part of an [`IntegrityReport`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableReport {
    /// Records in the table.
    pub records: u64,
    /// Levels of the tree (1: the root is a leaf).
    pub depth: u32,
    /// Pages of the tree itself.
    pub tree_pages: u32,
    /// Overflow pages of its large values.
    pub overflow_pages: u32,
}

impl Database {
    /// Checks the whole database and returns its shape, or `JET_errDatabaseCorrupted` naming
    /// the first fault: a page used twice or by nothing, keys out of order or outside their
    /// branch's range, leaves at different depths, a malformed value chain or free list (or the
    /// checksum error of a page that cannot be read).
    pub fn check_integrity(&mut self) -> Result<IntegrityReport> {
        self.check_usable()?;
        let roots = self.table_roots();
        let pager = self.pager_mut();
        let page_count = pager.header().page_count;
        let mut checker = Checker {
            pager,
            owner: vec![0; page_count as usize],
            owners: vec![String::new()],
        };
        checker.claim(0, "the header")?;
        checker.claim(1, "the header")?;
        let page_size = checker.pager.page_size();
        let mut map_pages = 0;
        for map in flushmap::map_pages(page_count, page_size) {
            checker.claim(map, "the flush map")?;
            map_pages += 1;
        }
        let mut report = IntegrityReport {
            page_count,
            map_pages,
            ..Default::default()
        };
        let catalog = checker.tree("the catalog", CATALOG_ROOT)?;
        report.catalog_pages = catalog.tree_pages;
        if catalog.records != roots.len() as u64 {
            bail!(
                CatalogCorrupted,
                "the catalog holds {} entries but {} tables were loaded",
                catalog.records,
                roots.len()
            );
        }
        for (name, root) in roots {
            let table = checker.tree(&format!("table {name:?}"), root)?;
            report.tables.insert(name, table);
        }
        report.free_pages = checker.free_list()?;
        if let Some(pgno) = checker.owner.iter().position(|&owner| owner == 0) {
            bail!(
                DatabaseCorrupted,
                "page {pgno} is used by nothing (a leaked page)"
            );
        }
        Ok(report)
    }
}

struct Checker<'a> {
    pager: &'a mut Pager,
    /// For each page, the index in `owners` of what uses it (0: nothing yet). Four bytes a page,
    /// so a large database can be checked.
    owner: Vec<u32>,
    /// The names of the users of pages; entry 0 is "nothing".
    owners: Vec<String>,
}

impl Checker<'_> {
    fn claim(&mut self, pgno: Pgno, what: &str) -> Result<()> {
        let Some(slot) = self.owner.get_mut(pgno as usize) else {
            bail!(
                DatabaseCorrupted,
                "{what} links to page {pgno}, beyond the end ({} pages)",
                self.owner.len()
            );
        };
        if *slot != 0 {
            let other = &self.owners[*slot as usize];
            bail!(
                DatabaseCorrupted,
                "page {pgno} is used twice: by {other} and by {what}"
            );
        }
        if self.owners.last().is_none_or(|last| last != what) {
            self.owners.push(what.to_string());
        }
        *slot = u32::try_from(self.owners.len() - 1).expect("fewer owners than pages");
        Ok(())
    }

    fn tree(&mut self, what: &str, root: Pgno) -> Result<TableReport> {
        let mut report = TableReport::default();
        let depth = self.node(what, root, None, None, 1, &mut report)?;
        report.depth = depth;
        Ok(report)
    }

    /// Checks the subtree at `pgno`, whose keys must lie in `[low, high)`; returns its depth.
    fn node(
        &mut self,
        what: &str,
        pgno: Pgno,
        low: Option<&[u8]>,
        high: Option<&[u8]>,
        level: u32,
        report: &mut TableReport,
    ) -> Result<u32> {
        if level as usize > DEPTH_MAX {
            bail!(
                DatabaseCorrupted,
                "{what} is deeper than {DEPTH_MAX} levels"
            );
        }
        self.claim(pgno, what)?;
        report.tree_pages += 1;
        // Copied: checking a child reads other pages through the same cache. (Its layout was
        // validated when it was read: records fit the page. Only a tree page's fields mean
        // anything below, so nothing is read before its kind is known.)
        let page = self.pager.page(pgno)?.to_vec();
        let in_range = |key: &[u8]| low.is_none_or(|l| key >= l) && high.is_none_or(|h| key < h);
        let is_root = level == 1;
        let kind = node::kind(&page);
        let count = match kind {
            Some(PageKind::Leaf | PageKind::Branch) => node::count(&page),
            _ => 0,
        };
        match kind {
            Some(PageKind::Leaf) => {
                if count == 0 && !is_root {
                    bail!(
                        DatabaseCorrupted,
                        "{what}: leaf page {pgno} is empty but is not the root"
                    );
                }
                for i in 0..count {
                    if !in_range(node::key(&page, i)) {
                        bail!(
                            DatabaseCorrupted,
                            "{what}: page {pgno} holds a key outside its branch's range"
                        );
                    }
                    if let ValueRef::Overflow { first, len } = node::value(&page, i) {
                        for chain_page in overflow::pages(self.pager, first, len)? {
                            self.claim(chain_page, &format!("{what} (value chain)"))?;
                            report.overflow_pages += 1;
                        }
                    }
                }
                report.records += count as u64;
                Ok(level)
            }
            Some(PageKind::Branch) => {
                if count == 0 {
                    bail!(DatabaseCorrupted, "{what}: branch page {pgno} has no keys");
                }
                if !(0..count).all(|i| in_range(node::key(&page, i))) {
                    bail!(
                        DatabaseCorrupted,
                        "{what}: branch page {pgno} holds a key outside its range"
                    );
                }
                let mut depth = None;
                for i in 0..node::children(&page) {
                    let child_low = if i == 0 {
                        low
                    } else {
                        Some(node::key(&page, i - 1))
                    };
                    let child_high = if i < count {
                        Some(node::key(&page, i))
                    } else {
                        high
                    };
                    let child = node::child(&page, i);
                    let d = self.node(what, child, child_low, child_high, level + 1, report)?;
                    if *depth.get_or_insert(d) != d {
                        bail!(
                            DatabaseCorrupted,
                            "{what}: leaves at different depths under page {pgno}"
                        );
                    }
                }
                Ok(depth.expect("a branch has children"))
            }
            other => bail!(
                DatabaseCorrupted,
                "{what}: page {pgno} is a {other:?} page inside the tree"
            ),
        }
    }

    fn free_list(&mut self) -> Result<u32> {
        let expected = self.pager.header().free_count;
        let mut pgno = self.pager.header().free_head;
        let mut count = 0u32;
        while pgno != 0 {
            if count >= expected {
                bail!(
                    DatabaseCorrupted,
                    "the free list is longer than the {expected} pages the header counts"
                );
            }
            self.claim(pgno, "the free list")?;
            if self.pager.kind(pgno)? != PageKind::Free {
                bail!(
                    DatabaseCorrupted,
                    "page {pgno} is on the free list but is not a free page"
                );
            }
            let next = node::next(self.pager.page(pgno)?);
            count += 1;
            pgno = next;
        }
        if count != expected {
            bail!(
                DatabaseCorrupted,
                "the free list holds {count} pages; the header counts {expected}"
            );
        }
        Ok(count)
    }
}

/// One page that failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPage {
    /// The page number.
    pub pgno: u64,
    /// What is wrong with it.
    pub error: JetError,
}

/// What [`verify_file`] found.
#[derive(Debug)]
pub struct ChecksumReport {
    /// The two header copies, as read.
    pub header_copies: [HeaderCopy; 2],
    /// The page size the file was read with.
    pub page_size: usize,
    /// The pages the header says the database holds.
    pub logical_pages: u32,
    /// The whole pages the file holds.
    pub file_pages: u64,
    /// Every page that failed verification, in page order.
    pub bad_pages: Vec<BadPage>,
    /// Pages the header counts that are missing from a truncated file.
    pub missing_pages: std::ops::Range<u64>,
}

impl ChecksumReport {
    /// How many pages are bad or missing.
    pub fn bad_count(&self) -> u64 {
        self.bad_pages.len() as u64 + (self.missing_pages.end - self.missing_pages.start)
    }
}

/// Reads the two header copies of the database file at `path`.
pub fn read_header_copies(vfs: &dyn Vfs, path: &Path) -> Result<[HeaderCopy; 2]> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
    header::read_copies(&*file).map_err(|err| err.context(path.display()))
}

/// Verifies every page of the database file at `path`: both header copies, then the checksum,
/// page number and structure of every other page, and each page's dbtime against the flush
/// map (a page a write lost is `JET_errReadLostFlushVerifyFailure`; a map page that fails its
/// checks, or the header's digest, is reported as the first map page). While a batch a crash
/// interrupted waits in the doublewrite file, the pages are not checked against the map: the
/// file may hold part of the batch until a read-write open finishes it. Pages past the
/// header's page count are unused space and pass (blank, or left torn by a batch cut off
/// before its seal), unless such a pending batch names them. Fails only when no header copy
/// is readable, since then the page size is unknown.
pub fn verify_file(vfs: &dyn Vfs, path: &Path) -> Result<ChecksumReport> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
    let header_copies = header::read_copies(&*file).map_err(|err| err.context(path.display()))?;
    let header: DbHeader = header::choose(&header_copies)
        .map_err(|err| err.context(path.display()))?
        .clone();
    let page_size = header.page_size as usize;
    let len = file
        .len()
        .map_err(|err| JetError::io(format!("{}: length", path.display()), &err))?;
    let file_pages = len / page_size as u64;
    let mut bad_pages = Vec::new();
    for (pgno, copy) in header_copies.iter().enumerate() {
        if let Err(error) = copy {
            bad_pages.push(BadPage {
                pgno: pgno as u64,
                error: error.clone(),
            });
        }
    }
    // Read in large chunks: the check is bound by the disk, not by the checksum.
    let chunk_pages = (4 * 1024 * 1024 / page_size) as u64;
    let mut chunk = vec![0u8; chunk_pages as usize * page_size];
    let mut flush = flushmap::Verifier::new(&header);
    // A batch a crash interrupted, sealed in the doublewrite file: the file may hold part of
    // it, which the next read-write open finishes. Until then the map (which describes the
    // batch whole) cannot judge the pages.
    let pending = matches!(
        crate::store::doublewrite::recover(vfs, path, &*file, &header, false),
        Err(err) if err.kind() == ErrorKind::DatabaseDirtyShutdown
    );
    // The map's own pages first: a stale one would make every page it describes look stale,
    // so it is reported once, and the pages are then checked only for what they hold.
    let flush_failed = pending
        || match flushmap::check_digest(&*file, &header) {
            Ok(()) => false,
            Err(error) => {
                bad_pages.push(BadPage {
                    pgno: u64::from(flushmap::FIRST_MAP),
                    error,
                });
                true
            }
        };
    let mut pgno = 2u64;
    while pgno < file_pages {
        let n = chunk_pages.min(file_pages - pgno);
        let buf = &mut chunk[..n as usize * page_size];
        file.read_exact_at(buf, pgno * page_size as u64)
            .map_err(|err| JetError::io(format!("{}: read page {pgno}", path.display()), &err))?;
        for (i, page) in buf.chunks(page_size).enumerate() {
            let this = pgno + i as u64;
            // Past the page count: unused space — blank, or fresh pages of a batch a crash
            // cut off before its seal (torn, perhaps), which the next read-write open cuts
            // off. Only a batch still pending names them.
            let past_count = this >= u64::from(header.page_count);
            if past_count && (!pending || crate::base::codec::is_zero(page)) {
                continue;
            }
            let checked = u32::try_from(this)
                .map_err(|_| {
                    JetError::new(ErrorKind::DatabaseCorrupted, "page number beyond 32 bits")
                })
                .and_then(|p| node::validate(page, p).map(|_| p));
            let checked = match checked {
                Ok(p) if !flush_failed => flush.check(p, page),
                other => other.map(drop),
            };
            if let Err(error) = checked {
                bad_pages.push(BadPage { pgno: this, error });
            }
        }
        pgno += n;
    }
    let slack = !pending && file_pages >= u64::from(header.page_count);
    if !len.is_multiple_of(page_size as u64) && !slack {
        let error = JetError::new(
            ErrorKind::DatabaseCorrupted,
            format!(
                "the file ends with a partial page of {} bytes",
                len % page_size as u64
            ),
        );
        bad_pages.push(BadPage {
            pgno: file_pages,
            error,
        });
    }
    let missing_pages = file_pages.min(u64::from(header.page_count))..u64::from(header.page_count);
    Ok(ChecksumReport {
        header_copies,
        page_size,
        logical_pages: header.page_count,
        file_pages,
        bad_pages,
        missing_pages,
    })
}
