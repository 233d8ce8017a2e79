//! The pager: the database file seen as numbered pages, through a cache of page frames.
//!
//! The cache holds each page as its bytes (`node` reads and changes them in place). It hands
//! out pages ([`Pager::page`] to read, [`Pager::page_mut`] to change), allocates and
//! frees them (a free list threaded through the free pages), and writes changed pages back.
//!
//! Changed pages reach the file only in batches ([`Pager::write_batch`]): every changed page
//! and the header describing them, through the doublewrite file (see `doublewrite`), so the
//! file always holds one whole state of the trees — what a log of operations replays onto.
//! A batch is written by [`Pager::flush`], by the instance (a checkpoint, cache pressure), and
//! without a log when the cache is full of changed pages.
//!
//! Every change stamps the page with a new dbtime, so a page's dbtime only grows. Each batch
//! records the dbtime it writes every page with in the flush map (see `flushmap`), which the
//! pager holds whole in memory, and a page read back with another dbtime is refused
//! (`JET_errReadLostFlushVerifyFailure`): a write lost or misplaced is never data. A batch
//! written between flushes records the state `DirtyShutdown`; only a flush that ends with
//! `CleanShutdown` marks the file consistent again.

use std::collections::{BTreeMap, BTreeSet};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;

use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::limits;
use crate::base::vfs::{Vfs, VfsFile};
use crate::store::doublewrite::{self, BatchWriter};
use crate::store::flushmap;
use crate::store::frames::{FrameId, Frames};
use crate::store::header::{CATALOG_ROOT, DbHeader, DbState, HEADER_PGNO, Lgpos, SHADOW_PGNO};
use crate::store::node;
use crate::store::page::{self, PageHeader, PageKind, Pgno};

/// Writes of consecutive pages are gathered into one of at most this many bytes.
const WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// A batch being written a piece at a time ([`Pager::begin_round`]).
struct Round {
    /// The header the batch installs.
    image: DbHeader,
    /// Its pages, ascending, map pages included.
    pages: Vec<Pgno>,
    /// Its map pages.
    maps: Vec<Pgno>,
    /// The frozen images of its pages changed since it began.
    copies: FxHashMap<Pgno, Box<[u8]>>,
    /// Whether it goes through the doublewrite file (not when it has no pages, or the
    /// doublewrite file is skipped).
    doublewrite: bool,
    /// Its writer into the doublewrite file, once started and until sealed.
    writer: Option<BatchWriter>,
    /// Whether its pages and seal are durable in the doublewrite file.
    sealed: bool,
    /// Pages written into the doublewrite file, then into place (of `pages[..fresh_from]`).
    written: usize,
    placed: usize,
    /// Where its fresh pages begin in `pages` (its length without the doublewrite file):
    /// past the end of the file's durable state, which no durable header names, so a torn
    /// write of one harms no state a crash could return to. They go straight into place,
    /// durable before the seal, and need no second copy.
    fresh_from: usize,
    /// Fresh pages written into place (`pages[fresh_from..fresh_placed]`), and whether
    /// they are durable.
    fresh_placed: usize,
    fresh_synced: bool,
}

impl Round {
    /// The bytes the batch writes for `pgno`: its frozen image.
    fn image_of<'a>(&'a self, frames: &'a Frames, pgno: Pgno) -> &'a [u8] {
        match self.copies.get(&pgno) {
            Some(copy) => copy,
            None => {
                let frame = frames.find(pgno).expect("a page of the batch stays cached");
                debug_assert!(
                    frames.slot(frame).frozen,
                    "a page of the batch changed without a copy"
                );
                frames.bytes(frame)
            }
        }
    }
}

/// What an online backup needs of the file as it was when the backup began: before the pager
/// overwrites a page the backup has not copied yet, it saves the page's content here
/// (copy-before-write), so the backup copies the file exactly as it stood at its begin, while
/// the instance goes on writing.
///
/// The fence has a lock of its own, shared by the pager (which saves pages into it under the
/// instance lock) and the backup job (which takes them out without it): a writer that holds
/// the instance lock commit after commit then never holds up the backup's bookkeeping.
/// Lock order: the instance lock before the fence's.
#[derive(Debug, Default)]
pub(crate) struct CopyFence {
    /// The backup copies pages `[0, end)`: the file's length when it began.
    pub(crate) end: Pgno,
    /// Pages below this are copied.
    pub(crate) copied_below: Pgno,
    /// Pages at or above `copied_below` whose begin-time content is already saved (or was
    /// copied ahead of the cursor): they are not saved again.
    pub(crate) secured: BTreeSet<Pgno>,
    /// Begin-time content of pages overwritten since, for the backup to copy.
    pub(crate) saved: BTreeMap<Pgno, Vec<u8>>,
    /// A read that failed while saving a page: the backup fails with it.
    pub(crate) failed: Option<JetError>,
}

/// A backup's fence, as the pager and the job share it.
pub(crate) type SharedFence = Arc<Mutex<CopyFence>>;

impl CopyFence {
    /// Locks a shared fence. A panic while it was held is a broken invariant elsewhere; the
    /// fence itself is whole enough to fail the backup from.
    pub(crate) fn lock(fence: &SharedFence) -> MutexGuard<'_, CopyFence> {
        fence.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether the job has taken every page: the fence then needs nothing more.
    pub(crate) fn is_done(&self) -> bool {
        self.copied_below >= self.end
    }

    fn needs(&self, pgno: Pgno) -> bool {
        self.failed.is_none()
            && pgno >= self.copied_below
            && pgno < self.end
            && !self.secured.contains(&pgno)
    }
}

pub(crate) struct Pager {
    vfs: Arc<dyn Vfs>,
    file: Box<dyn VfsFile>,
    /// The doublewrite file, opened at the first batch.
    doublewrite: Option<Box<dyn VfsFile>>,
    path: PathBuf,
    page_size: usize,
    writable: bool,
    /// The header as it will next be written; `page_count`, the free list and dbtime live here.
    header: DbHeader,
    /// The state the header on disk records.
    /// The header the file holds: what the last batch installed.
    disk: DbHeader,
    /// Whether `header` differs from the copies on disk.
    header_dirty: bool,
    /// Pages written to the file since it was opened (header copies included).
    pages_written: u64,
    /// The first failed write or fsync. After it the file's state is unknown (a failed fsync
    /// may have dropped written pages), so the pager writes nothing more.
    poisoned: Option<JetError>,
    /// The cached pages, each as its bytes: its envelope's dbtime and kind are current; its
    /// page number and checksum are sealed only when it is written.
    cache: Frames,
    cache_pages_max: usize,
    /// The most pages the cache held since [`Pager::reset_cached_peak`].
    cached_peak: usize,
    /// The changed pages, in the order first changed: the next batch.
    dirty: Vec<Pgno>,
    /// A buffer lent to the tree for encoding records, so a put allocates none.
    buffer: Vec<u8>,
    /// A logical clock for least-recently-used eviction.
    tick: u64,
    /// Whether a write-ahead log covers this file: changed pages then wait in the cache for
    /// the instance to write a batch (it flushes the log first).
    logging: bool,
    /// With logging on: the end of the log records whose changes the cache holds.
    logged_through: u64,
    /// With logging on: how far the log is durable. No batch is written before the log is
    /// durable past every change it holds (`logged_through`).
    wal_durable: u64,
    /// While an online backup copies the file: its copy-before-write fence.
    fence: Option<SharedFence>,
    /// `PlantedBug::BatchSkipsDoublewrite`.
    skip_doublewrite: bool,
    /// `PlantedBug::CheckpointSkipsCacheBound`.
    keep_frozen: bool,
    /// The batch being written a piece at a time, if any.
    round: Option<Round>,
    /// The flush map: for each page, the dbtime its last write gave it (0 for the header
    /// copies and pages never written); a map page's entry is its own dbtime.
    stamps: Vec<u64>,
    /// Whether a page read from the file has its checksum checked
    /// (`PlantedBug::PageChecksumUnchecked` clears it).
    check_checksums: bool,
    /// Whether a page read from the file is checked against the flush map
    /// (`PlantedBug::FlushMapUnchecked` clears it).
    check_flush: bool,
}

impl Pager {
    /// A pager over `file`, whose header (already read and validated) is `header`.
    pub(crate) fn new(
        vfs: Arc<dyn Vfs>,
        file: Box<dyn VfsFile>,
        path: &Path,
        header: DbHeader,
        writable: bool,
        cache_size: usize,
    ) -> Pager {
        let page_size = header.page_size as usize;
        assert!(limits::page_size_valid(page_size));
        Pager {
            vfs,
            file,
            doublewrite: None,
            path: path.to_path_buf(),
            page_size,
            writable,
            disk: header.clone(),
            header,
            header_dirty: false,
            pages_written: 0,
            poisoned: None,
            cache: Frames::new(
                page_size,
                (cache_size / page_size).max(limits::CACHE_PAGES_MIN),
            ),
            cache_pages_max: (cache_size / page_size).max(limits::CACHE_PAGES_MIN),
            cached_peak: 0,
            dirty: Vec::new(),
            buffer: Vec::new(),
            tick: 0,
            logging: false,
            logged_through: 0,
            wal_durable: 0,
            fence: None,
            skip_doublewrite: false,
            keep_frozen: false,
            round: None,
            stamps: Vec::new(),
            check_checksums: true,
            check_flush: true,
        }
    }

    /// Plants `PlantedBug::PageChecksumUnchecked` or `PlantedBug::FlushMapUnchecked` (each
    /// when its flag is set).
    pub(crate) fn weaken_checks(&mut self, checksum: bool, flush: bool) {
        self.check_checksums = !checksum;
        self.check_flush = !flush;
    }

    /// Reads the flush map's pages and checks them against the header's digest: a map page
    /// that lost a write, or any map page damaged, makes the file unreadable as a whole
    /// (every page's check would rest on it).
    pub(crate) fn load_flush_map(&mut self) -> Result<()> {
        let count = self.header.page_count;
        let mut stamps = vec![0u64; count as usize];
        stamps[CATALOG_ROOT as usize] = self.header.catalog_stamp;
        let mut page = vec![0u8; self.page_size];
        let mut dbtimes = Vec::new();
        let slots = flushmap::slots(self.page_size);
        for map in flushmap::map_pages(count, self.page_size) {
            let offset = u64::from(map) * self.page_size as u64;
            self.file.read_exact_at(&mut page, offset).map_err(|err| {
                JetError::io(
                    format!("{}: read flush map page {map}", self.path.display()),
                    &err,
                )
            })?;
            let (kind, dbtime) = node::validate_with(&page, map, self.check_checksums)
                .map_err(|err| err.context(self.path.display()))?;
            if kind != PageKind::Map || dbtime > self.header.dbtime {
                bail!(
                    DatabaseCorrupted,
                    "{}: page {map} should be a page of the flush map, at most dbtime {}, but is a {kind:?} page of dbtime {dbtime}",
                    self.path.display(),
                    self.header.dbtime
                );
            }
            dbtimes.push(dbtime);
            stamps[map as usize] = dbtime;
            for slot in 1..slots {
                let Some(stamp) = stamps.get_mut((map + slot) as usize) else {
                    break;
                };
                *stamp = flushmap::entry(&page, slot as usize);
            }
        }
        let found = flushmap::digest(dbtimes.into_iter());
        if found != self.header.map_digest && self.check_flush {
            return Err(
                flushmap::stale_map(self.header.map_digest, found).context(self.path.display())
            );
        }
        self.stamps = stamps;
        Ok(())
    }

    /// The flush map: for each page, the dbtime its last write gave it.
    pub(crate) fn stamps(&self) -> &[u64] {
        &self.stamps
    }

    /// Plants `PlantedBug::BatchSkipsDoublewrite`.
    pub(crate) fn skip_doublewrite(&mut self) {
        self.skip_doublewrite = true;
    }

    /// Plants `PlantedBug::CheckpointSkipsCacheBound`.
    pub(crate) fn keep_frozen(&mut self) {
        self.keep_frozen = true;
    }

    /// Puts the pager under a write-ahead log: changed pages wait in the cache until the
    /// instance writes a batch, once the log holding their changes is durable
    /// ([`Pager::logged`], [`Pager::set_wal_durable`]).
    pub(crate) fn enable_logging(&mut self) {
        self.logging = true;
    }

    /// Records that the log records of the changes the cache holds end at `lsn`.
    pub(crate) fn logged(&mut self, lsn: u64) {
        debug_assert!(lsn >= self.logged_through, "log positions only grow");
        self.logged_through = lsn;
    }

    /// Records that the log is durable up to `lsn`.
    pub(crate) fn set_wal_durable(&mut self, lsn: u64) {
        debug_assert!(lsn >= self.wal_durable, "the durable log only grows");
        self.wal_durable = lsn;
    }

    /// How many pages the cache holds (the running batch's copies of pages changed since it
    /// began included).
    pub(crate) fn cached_pages(&self) -> usize {
        self.cache.len() + self.round.as_ref().map_or(0, |r| r.copies.len())
    }

    /// The cache's size, in pages.
    pub(crate) fn cache_pages_max(&self) -> usize {
        self.cache_pages_max
    }

    /// The most pages the cache held since [`Pager::reset_cached_peak`] (or since it opened).
    pub(crate) fn cached_peak(&self) -> usize {
        self.cached_peak
    }

    /// Starts watching [`Pager::cached_peak`] from now.
    pub(crate) fn reset_cached_peak(&mut self) {
        self.cached_peak = self.cached_pages();
    }

    /// Sets the cache's size, in pages (at least the least a cache holds); a smaller one
    /// takes effect as pages are evicted.
    pub(crate) fn set_cache_pages_max(&mut self, pages: usize) {
        self.cache_pages_max = pages.max(limits::CACHE_PAGES_MIN);
    }

    /// How many cached pages may not be evicted now: every changed page (it waits for the
    /// next batch), and every page of the batch being written (a frozen page, or its copy).
    pub(crate) fn pinned_pages(&self) -> usize {
        self.dirty_pages() + self.round.as_ref().map_or(0, |r| r.pages.len())
    }

    /// Whether a batch is being written a piece at a time.
    pub(crate) fn round_running(&self) -> bool {
        self.round.is_some()
    }

    /// Whether the cache holds more pages than its size (changed pages waiting for a batch).
    pub(crate) fn over_capacity(&self) -> bool {
        self.cached_pages() > self.cache_pages_max
    }

    /// Evicts unchanged pages until the cache is within its size, as far as it can.
    pub(crate) fn trim(&mut self) -> Result<()> {
        while self.cached_pages() >= self.cache_pages_max {
            let before = self.cache.len();
            self.make_room()?;
            if self.cache.len() == before {
                break;
            }
        }
        // The frames of pages evicted past the cache's size go back too.
        self.cache.shrink(self.cache_pages_max);
        Ok(())
    }

    /// How many page frames the cache holds memory for, bound to a page or free.
    pub(crate) fn frames_allocated(&self) -> usize {
        self.cache.allocated()
    }

    /// Sets the state the next header write records.
    pub(crate) fn set_state(&mut self, state: DbState) {
        if self.header.state != state {
            self.header.state = state;
            self.header_dirty = true;
        }
    }

    /// The header to be written, for changes recovery and shutdown make to it.
    pub(crate) fn header_mut(&mut self) -> &mut DbHeader {
        self.header_dirty = true;
        &mut self.header
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    pub(crate) fn header(&self) -> &DbHeader {
        &self.header
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The page `pgno`, read from the file if it is not cached.
    pub(crate) fn page(&mut self, pgno: Pgno) -> Result<&[u8]> {
        let frame = self.load(pgno)?;
        self.cache.slot_mut(frame).used = self.tick;
        Ok(self.cache.bytes(frame))
    }

    /// The kind of page `pgno`.
    pub(crate) fn kind(&mut self, pgno: Pgno) -> Result<PageKind> {
        let page = self.page(pgno)?;
        Ok(node::kind(page).expect("cached pages have a known kind"))
    }

    /// The page `pgno`, to change: it is stamped with a new dbtime and will be written back.
    pub(crate) fn page_mut(&mut self, pgno: Pgno) -> Result<&mut [u8]> {
        assert!(self.writable, "a read-only pager is never changed");
        let frame = self.load(pgno)?;
        let dbtime = self.next_dbtime()?;
        assert!(
            dbtime > page::dbtime_of(self.cache.bytes(frame)),
            "page dbtimes only grow"
        );
        if self.cache.slot(frame).frozen {
            // The running batch writes this page as it was when it began.
            match self.round.as_mut() {
                Some(round) => {
                    round.copies.insert(pgno, self.cache.bytes(frame).into());
                }
                None => assert!(
                    self.keep_frozen,
                    "a frozen page belongs to the running batch"
                ),
            }
            self.cache.slot_mut(frame).frozen = false;
        }
        let tick = self.tick;
        let slot = self.cache.slot_mut(frame);
        slot.used = tick;
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(pgno);
        }
        let page = self.cache.bytes_mut(frame);
        page::set_dbtime(page, dbtime);
        Ok(page)
    }

    /// A new page, made what `init` makes of it: the head of the free list, or a page past
    /// the end.
    pub(crate) fn alloc(&mut self, init: impl FnOnce(&mut [u8])) -> Result<Pgno> {
        assert!(self.writable);
        let pgno = if self.header.free_head != 0 {
            let head = self.header.free_head;
            if self.kind(head)? != PageKind::Free {
                bail!(
                    DatabaseCorrupted,
                    "{}: page {head} is on the free list but is not free",
                    self.path.display()
                );
            }
            let next = node::next(self.page(head)?);
            if next != 0 && (next <= CATALOG_ROOT || next >= self.header.page_count) {
                bail!(
                    DatabaseCorrupted,
                    "{}: free page {head} links to page {next}",
                    self.path.display()
                );
            }
            if (next == 0) != (self.header.free_count == 1) {
                bail!(
                    DatabaseCorrupted,
                    "{}: the free list ends at page {head} but the header counts {} free pages",
                    self.path.display(),
                    self.header.free_count
                );
            }
            self.header.free_head = next;
            self.header.free_count -= 1;
            head
        } else {
            // (Two pages when the next number is a map page's.)
            if u64::from(self.header.page_count) + 2 > limits::PAGE_COUNT_MAX {
                bail!(
                    OutOfDatabaseSpace,
                    "{} holds the most pages a database can",
                    self.path.display()
                );
            }
            self.make_room()?;
            if flushmap::is_map(self.header.page_count, self.page_size) {
                // A new group of pages starts with its map page, written at the next batch.
                let map = self.header.page_count;
                let frame = self.cache.vacant();
                let page = self.cache.bytes_mut(frame);
                page.fill(0);
                flushmap::fill(page, map, &self.stamps);
                self.bind(frame, map, true);
                self.dirty.push(map);
                self.stamps.push(0);
                self.header.page_count += 1;
            }
            let pgno = self.header.page_count;
            self.header.page_count += 1;
            self.stamps.push(0);
            // Zeroed whole: a new page's dbtime starts at 0 (a read fills the frame instead).
            let frame = self.cache.vacant();
            let page = self.cache.bytes_mut(frame);
            page.fill(0);
            node::init_free(page, 0);
            self.bind(frame, pgno, true);
            self.dirty.push(pgno);
            pgno
        };
        self.header_dirty = true;
        init(self.page_mut(pgno)?);
        Ok(pgno)
    }

    /// Puts page `pgno` on the free list.
    pub(crate) fn free(&mut self, pgno: Pgno) -> Result<()> {
        // A sound tree never frees a fixed page; only a corrupt link can name one.
        if pgno <= CATALOG_ROOT || pgno >= self.header.page_count {
            bail!(
                DatabaseCorrupted,
                "{}: a link to page {pgno}, which cannot be freed",
                self.path.display()
            );
        }
        if self.kind(pgno)? == PageKind::Free {
            bail!(
                DatabaseCorrupted,
                "{}: page {pgno} is freed twice (linked from two places)",
                self.path.display()
            );
        }
        let head = self.header.free_head;
        node::init_free(self.page_mut(pgno)?, head);
        self.header.free_head = pgno;
        self.header.free_count += 1;
        self.header_dirty = true;
        Ok(())
    }

    /// The pager's spare buffer (empty), lent out; [`Pager::give_buffer`] returns it.
    pub(crate) fn take_buffer(&mut self) -> Vec<u8> {
        mem::take(&mut self.buffer)
    }

    /// Returns a buffer lent by [`Pager::take_buffer`].
    pub(crate) fn give_buffer(&mut self, mut buffer: Vec<u8>) {
        buffer.clear();
        self.buffer = buffer;
    }

    /// Binds `frame`, filled, to page `pgno`, changed (`dirty`) or as the file holds it.
    fn bind(&mut self, frame: FrameId, pgno: Pgno, dirty: bool) {
        self.cache.bind(frame, pgno, dirty, self.tick);
        self.cached_peak = self.cached_peak.max(self.cached_pages());
    }

    /// Writes every changed page and the header as one batch, its state the header's.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        let state = self.header.state;
        self.write_batch(state)
    }

    /// How many changed pages wait in the cache.
    /// Pages written to the file since it was opened (header copies included).
    pub(crate) fn pages_written(&self) -> u64 {
        self.pages_written
    }

    pub(crate) fn dirty_pages(&self) -> usize {
        self.dirty.len()
    }

    fn next_dbtime(&mut self) -> Result<u64> {
        let Some(next) = self.header.dbtime.checked_add(1) else {
            bail!(
                DatabaseCorrupted,
                "{}: the header's dbtime is at its maximum",
                self.path.display()
            );
        };
        self.header.dbtime = next;
        self.header_dirty = true;
        Ok(next)
    }

    /// The first failed write or fsync, if any.
    pub(crate) fn poisoned(&self) -> Option<&JetError> {
        self.poisoned.as_ref()
    }

    /// Records a failed write or fsync and returns its error.
    fn io_failed(&mut self, what: String, err: &std::io::Error) -> JetError {
        let err = JetError::io(format!("{}: {what}", self.path.display()), err);
        self.poisoned.get_or_insert_with(|| err.clone());
        err
    }

    /// The frame holding page `pgno`, read from the file if it is not cached.
    fn load(&mut self, pgno: Pgno) -> Result<FrameId> {
        self.tick += 1;
        if let Some(frame) = self.cache.find(pgno) {
            // A map page is cached only while a batch is due to write it: a link to it is
            // corrupt (checked here by its kind, one byte of a frame already at hand).
            if self.cache.bytes(frame)[16] == PageKind::Map as u8 {
                bail!(
                    DatabaseCorrupted,
                    "{}: a link to page {pgno}, a page of the flush map",
                    self.path.display()
                );
            }
            return Ok(frame);
        }
        if pgno < CATALOG_ROOT || pgno >= self.header.page_count {
            bail!(
                DatabaseCorrupted,
                "{}: a link to page {pgno}, outside the database's {} pages",
                self.path.display(),
                self.header.page_count
            );
        }
        if flushmap::is_map(pgno, self.page_size) {
            bail!(
                DatabaseCorrupted,
                "{}: a link to page {pgno}, a page of the flush map",
                self.path.display()
            );
        }
        self.make_room()?;
        let offset = u64::from(pgno) * self.page_size as u64;
        let frame = self.cache.vacant();
        let page = self.cache.bytes_mut(frame);
        let checked = match self.file.read_exact_at(page, offset) {
            Ok(()) => node::validate_with(page, pgno, self.check_checksums)
                .map_err(|err| err.context(self.path.display())),
            // A page the map says was written, past the file's end: the write that would
            // have grown the file was lost.
            Err(err)
                if err.kind() == std::io::ErrorKind::UnexpectedEof
                    && self.stamps[pgno as usize] != 0 =>
            {
                Err(flushmap::lost_flush(pgno, 0, self.stamps[pgno as usize])
                    .context(format!("{} (past the file's end)", self.path.display())))
            }
            Err(err) => Err(JetError::io(
                format!("{}: read page {pgno}", self.path.display()),
                &err,
            )),
        };
        let (kind, dbtime) = match checked {
            Ok(checked) => checked,
            Err(err) => {
                self.cache.discard(frame);
                return Err(err);
            }
        };
        if dbtime > self.header.dbtime || kind == PageKind::Map {
            self.cache.discard(frame);
            bail!(
                DatabaseCorrupted,
                "{}: page {pgno} is a {kind:?} page of dbtime {dbtime} (the database's is {})",
                self.path.display(),
                self.header.dbtime
            );
        }
        // The flush map: the page must be the one its last write left.
        let expected = self.stamps[pgno as usize];
        if dbtime != expected && self.check_flush {
            self.cache.discard(frame);
            return Err(flushmap::lost_flush(pgno, dbtime, expected).context(self.path.display()));
        }
        self.bind(frame, pgno, false);
        Ok(frame)
    }

    /// Without a log, between changes: when changed pages keep the cache over its size,
    /// writes them as a batch (the file is then marked not consistent on its own until the
    /// next flush) and evicts.
    pub(crate) fn relieve_unlogged(&mut self) -> Result<()> {
        if self.logging || !self.writable || !self.over_capacity() {
            return Ok(());
        }
        self.trim()?;
        if self.over_capacity() {
            self.write_batch(DbState::DirtyShutdown)?;
            self.trim()?;
        }
        Ok(())
    }

    /// Evicts the least recently used quarter of the cache when it is full. Only unchanged
    /// pages are evicted: when changed pages fill it, the cache grows past its size until a
    /// batch is written between changes (by the instance, or [`Pager::relieve_unlogged`]).
    fn make_room(&mut self) -> Result<()> {
        if self.cache.len() < self.cache_pages_max {
            return Ok(());
        }
        let want = self.cache_pages_max / 4 + 1;
        let mut by_age: Vec<(u64, Pgno)> = self
            .cache
            .iter()
            .filter(|(_, f)| !f.dirty && !f.frozen)
            .map(|(pgno, f)| (f.used, pgno))
            .collect();
        by_age.sort_unstable();
        for &(_, pgno) in by_age.iter().take(want) {
            assert!(self.cache.remove(pgno), "listed");
        }
        Ok(())
    }

    /// Starts a backup's copy-before-write fence over the pages the file holds now; returns
    /// how many pages that is, and the fence for the job to take its pages from.
    pub(crate) fn set_fence(&mut self) -> Result<(Pgno, SharedFence)> {
        assert!(
            self.fence
                .as_ref()
                .is_none_or(|f| CopyFence::lock(f).is_done()),
            "one backup at a time"
        );
        assert!(
            self.round.is_none(),
            "a backup begins between batches: the file holds one whole"
        );
        let len = self
            .file
            .len()
            .map_err(|err| JetError::io(format!("{}: length", self.path.display()), &err))?;
        let end = Pgno::try_from(len / self.page_size as u64).unwrap_or(Pgno::MAX);
        let fence = Arc::new(Mutex::new(CopyFence {
            end,
            ..CopyFence::default()
        }));
        self.fence = Some(Arc::clone(&fence));
        Ok((end, fence))
    }

    /// Ends the backup's fence.
    pub(crate) fn clear_fence(&mut self) {
        self.fence = None;
    }

    /// Saves, for a running backup, the content of pages `first..first + count` that it still
    /// needs as they were when it began — just before they are overwritten.
    ///
    /// The pages are read without the fence's lock, so the job never waits for this read.
    /// What makes the copy right is the choice under the lock: a page is read only while the
    /// fence still needs it, before it is overwritten. If the job takes a range holding it
    /// meanwhile, the job read that range before taking it, and this page is not overwritten
    /// until after, so the job's copy is already the begin's: the page read here would only
    /// rewrite the same bytes, and is dropped to free its memory.
    fn save_for_backup(&mut self, first: Pgno, count: u32) {
        let Some(shared) = &self.fence else {
            return;
        };
        let wanted: Vec<Pgno> = {
            let fence = CopyFence::lock(shared);
            if fence.is_done() {
                drop(fence);
                self.fence = None;
                return;
            }
            (first..first + count).filter(|&p| fence.needs(p)).collect()
        };
        for pgno in wanted {
            let mut page = vec![0u8; self.page_size];
            let read = self
                .file
                .read_exact_at(&mut page, u64::from(pgno) * self.page_size as u64);
            let mut fence = CopyFence::lock(shared);
            if !fence.needs(pgno) {
                // Taken by the job meanwhile (or the fence failed): nothing to keep, and a
                // read that failed fails no backup.
                continue;
            }
            match read {
                Ok(()) => {
                    fence.secured.insert(pgno);
                    fence.saved.insert(pgno, page);
                }
                Err(err) => {
                    fence.failed = Some(JetError::io(
                        format!(
                            "{}: read page {pgno} to keep it for the running backup",
                            self.path.display()
                        ),
                        &err,
                    ));
                    return;
                }
            }
        }
    }

    /// Writes every changed page and the header (recording `state`) as one atomic batch:
    /// through the doublewrite file, then into place, then the header's two copies (see
    /// `doublewrite`). Afterwards no page is changed and the file holds this state whole. A
    /// batch still running ([`Pager::begin_round`]) is finished first.
    pub(crate) fn write_batch(&mut self, state: DbState) -> Result<()> {
        self.finish_round()?;
        self.begin_round(state)?;
        self.finish_round()
    }

    /// Freezes every changed page and the header (recording `state`) as the next batch, to be
    /// written by [`Pager::advance_round`] a piece at a time while changes go on. A frozen
    /// page stays cached until the batch is written; changed again meanwhile, its frozen image
    /// is copied aside first (copy-on-write), so the batch holds the state at its start.
    pub(crate) fn begin_round(&mut self, state: DbState) -> Result<()> {
        assert!(self.round.is_none(), "one batch at a time");
        self.check_not_poisoned()?;
        // The WAL rule: no change reaches the file before the log records holding it are
        // durable.
        assert!(
            !self.logging || self.logged_through <= self.wal_durable,
            "a batch written before its log records are durable"
        );
        if self.dirty.is_empty() && !self.header_dirty && self.disk.state == state {
            return Ok(());
        }
        // What can fail comes before any state changes: a batch refused here leaves the
        // changed pages waiting, as they were.
        let Some(sequence) = self.header.sequence.checked_add(1) else {
            bail!(
                DatabaseCorrupted,
                "{}: the header's update sequence is at its maximum",
                self.path.display()
            );
        };
        // (Opened for any batch of pages: whether it is needed is known only once the map
        // pages are stamped, below, and opening is what may fail.)
        if !self.dirty.is_empty() && !self.skip_doublewrite && self.doublewrite.is_none() {
            let file = doublewrite::open(&*self.vfs, &self.path)?;
            self.doublewrite = Some(file);
        }
        let maps = if self.dirty.is_empty() {
            Vec::new()
        } else {
            self.stamp_batch()?
        };
        let mut pages = mem::take(&mut self.dirty);
        pages.sort_unstable();
        // Pages at or past the durable header's page count are fresh (`Round::fresh_from`);
        // the others, map pages included, go through the doublewrite file.
        let doublewrite =
            !self.skip_doublewrite && pages.first().is_some_and(|&p| p < self.disk.page_count);
        let fresh_from = match doublewrite {
            true => pages.partition_point(|&pgno| pgno < self.disk.page_count),
            false => pages.len(),
        };
        // Sealed once here: the doublewrite file and the file's place get the same bytes.
        for &pgno in &pages {
            let frame = self.cache.find(pgno).expect("listed");
            let page = self.cache.bytes_mut(frame);
            let header = PageHeader {
                pgno,
                dbtime: page::dbtime_of(page),
                kind: node::kind(page).expect("cached pages have a known kind"),
            };
            page::seal(page, header);
            let slot = self.cache.slot_mut(frame);
            slot.dirty = false;
            slot.frozen = true;
        }
        let mut image = self.header.clone();
        image.state = state;
        image.sequence = sequence;
        if self.logging {
            // The file will hold every change logged so far: a log that later ends before
            // this lost what it had made durable (`recovery::run` refuses it).
            let through = Lgpos {
                generation: (self.logged_through >> 32) as u32,
                offset: self.logged_through as u32,
            };
            image.log_through = image.log_through.max(through);
            self.header.log_through = image.log_through;
        }
        self.header.sequence = sequence;
        self.header_dirty = self.header.state != state;
        self.round = Some(Round {
            image,
            pages,
            maps,
            copies: FxHashMap::default(),
            doublewrite,
            writer: None,
            sealed: false,
            written: 0,
            placed: 0,
            fresh_from,
            fresh_placed: fresh_from,
            fresh_synced: false,
        });
        Ok(())
    }

    /// Whether a batch is being written ([`Pager::begin_round`]), and how far: its pieces
    /// (each page once into the doublewrite file, once into place) and how many are done.
    pub(crate) fn round_progress(&self) -> Option<(usize, usize)> {
        self.round.as_ref().map(|round| {
            // The pages through the doublewrite file count twice, the fresh ones once.
            let total = round.pages.len() + round.fresh_from * usize::from(round.doublewrite);
            let fresh = round.fresh_placed - round.fresh_from;
            (total, round.written + round.placed + fresh)
        })
    }

    /// Writes up to `budget` more pieces of the running batch; whether it is now complete
    /// (every page in place, the header's copies written, the frozen pages released).
    pub(crate) fn advance_round(&mut self, budget: usize) -> Result<bool> {
        if self.round.is_none() {
            return Ok(true);
        }
        // After a failed write the file's state is unknown: nothing more goes to it.
        self.check_not_poisoned()?;
        let mut round = self.round.take().expect("checked");
        match self.advance(&mut round, budget) {
            Ok(true) => {
                for &pgno in &round.pages {
                    if let Some(frame) = self.cache.find(pgno) {
                        self.cache.slot_mut(frame).frozen = self.keep_frozen;
                    }
                }
                // Map pages are rebuilt from `stamps` at each batch, never read: no use
                // caching them.
                for &map in &round.maps {
                    let frame = self.cache.find(map).expect("a written map page");
                    debug_assert!(!self.cache.slot(frame).dirty);
                    self.cache.remove(map);
                }
                Ok(true)
            }
            Ok(false) => {
                self.round = Some(round);
                Ok(false)
            }
            Err(err) => {
                // (The pager is poisoned: nothing more is written, the frozen pages stay.)
                self.round = Some(round);
                Err(err)
            }
        }
    }

    /// Writes the running batch to its end.
    pub(crate) fn finish_round(&mut self) -> Result<()> {
        if self.round.is_some() {
            let done = self.advance_round(usize::MAX)?;
            debug_assert!(done);
        }
        Ok(())
    }

    /// The steps of a batch, `budget` pieces at a time. Through the doublewrite file: its
    /// fresh pages into place and an fsync; its other pages into the doublewrite file, then
    /// its seal; those pages into place. Then an fsync and the header's two copies. Runs of
    /// consecutive pages are gathered into one write each.
    fn advance(&mut self, round: &mut Round, mut budget: usize) -> Result<bool> {
        let count = round.pages.len();
        let per_write = (WRITE_BATCH_BYTES_MAX / self.page_size).max(1);
        let mut buf: Vec<u8> = Vec::new();
        if round.doublewrite && !round.sealed {
            // Fresh pages first, durable before the seal: a batch recovery installs from
            // the doublewrite file finds them in place.
            let mut fresh = round.fresh_placed;
            self.place(round, &mut fresh, count, &mut budget, &mut buf)?;
            round.fresh_placed = fresh;
            if round.fresh_placed < count {
                return Ok(false);
            }
            if !round.fresh_synced {
                if round.fresh_from < count {
                    self.sync()?;
                }
                round.fresh_synced = true;
            }
            if round.writer.is_none() {
                let dw = self
                    .doublewrite
                    .as_deref()
                    .expect("opened at the batch's begin");
                match BatchWriter::start(dw, &round.image) {
                    Ok(writer) => round.writer = Some(writer),
                    Err(err) => return Err(self.doublewrite_failed(&err)),
                }
            }
            let old = round.fresh_from;
            while round.written < old && budget > 0 {
                let n = per_write.min(old - round.written).min(budget);
                buf.clear();
                for pgno in &round.pages[round.written..round.written + n] {
                    buf.extend_from_slice(round.image_of(&self.cache, *pgno));
                }
                let dw = self.doublewrite.as_deref().expect("opened");
                let writer = round.writer.as_mut().expect("checked");
                if let Err(err) = writer.write(dw, &buf) {
                    return Err(self.doublewrite_failed(&err));
                }
                round.written += n;
                budget -= n;
                self.pages_written += n as u64;
            }
            if round.written < old {
                return Ok(false);
            }
            let writer = round.writer.take().expect("checked");
            let dw = self.doublewrite.as_deref().expect("opened");
            if let Err(err) = writer.seal(dw, &round.image) {
                return Err(self.doublewrite_failed(&err));
            }
            round.sealed = true;
        }
        let mut placed = round.placed;
        self.place(round, &mut placed, round.fresh_from, &mut budget, &mut buf)?;
        round.placed = placed;
        if round.placed < round.fresh_from {
            return Ok(false);
        }
        if count > 0 {
            self.sync()?;
        }
        self.write_header_copies(&round.image)?;
        if round.image.state == DbState::CleanShutdown
            && let Some(dw) = &self.doublewrite
        {
            // The file is consistent on its own: the last batch is history, and its room in
            // the doublewrite file is given back. (Not synced: a batch left there is older
            // than the header, never installed again.)
            let path = doublewrite::path_for(&self.path);
            if let Err(err) = dw.set_len(0) {
                return Err(self.io_failed(format!("empty {}", path.display()), &err));
            }
        }
        Ok(true)
    }

    /// Writes the batch's pages `round.pages[*at..end]` into place, up to `budget` of them,
    /// moving `at` past those written.
    fn place(
        &mut self,
        round: &Round,
        at: &mut usize,
        end: usize,
        budget: &mut usize,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let per_write = (WRITE_BATCH_BYTES_MAX / self.page_size).max(1);
        while *at < end && *budget > 0 {
            let start = *at;
            let mut stop = start + 1;
            while stop < end
                && stop - start < (*budget).min(per_write)
                && round.pages[stop] == round.pages[stop - 1] + 1
            {
                stop += 1;
            }
            buf.clear();
            for pgno in &round.pages[start..stop] {
                buf.extend_from_slice(round.image_of(&self.cache, *pgno));
            }
            let first = round.pages[start];
            let offset = u64::from(first) * self.page_size as u64;
            self.save_for_backup(first, (stop - start) as u32);
            if let Err(err) = self.file.write_all_at(buf, offset) {
                let what = format!("write pages {first}..={}", round.pages[stop - 1]);
                return Err(self.io_failed(what, &err));
            }
            // On their way now, so the batch's closing fsync does not wait for them all at
            // once (a stall of the commit that closes it). Only a hint: the fsync still
            // makes them durable, or reports their failure. (Run by run: a hint over the
            // span between runs would also drop the clean pages between them from the
            // system's cache.)
            let _ = self.file.start_writeback(offset, buf.len() as u64);
            self.pages_written += (stop - start) as u64;
            *at = stop;
            *budget -= stop - start;
        }
        Ok(())
    }

    /// Records a failed write or fsync of the doublewrite file and returns its error.
    fn doublewrite_failed(&mut self, err: &std::io::Error) -> JetError {
        let path = doublewrite::path_for(&self.path);
        self.io_failed(format!("write the batch into {}", path.display()), err)
    }

    /// Records in the flush map the dbtime each changed page is about to be written with,
    /// and rebuilds the map pages that hold those entries as changed pages of the same
    /// batch, each with a new dbtime of its own; then the header's catalog stamp and map
    /// digest. Returns the map pages.
    fn stamp_batch(&mut self) -> Result<Vec<Pgno>> {
        let mut maps = Vec::new();
        for &pgno in &self.dirty {
            if flushmap::is_map(pgno, self.page_size) {
                maps.push(pgno);
                continue;
            }
            let frame = self.cache.find(pgno).expect("a changed page is cached");
            let dbtime = page::dbtime_of(self.cache.bytes(frame));
            debug_assert!(
                dbtime > self.stamps[pgno as usize],
                "page dbtimes only grow"
            );
            self.stamps[pgno as usize] = dbtime;
            if pgno > CATALOG_ROOT {
                maps.push(flushmap::locate(pgno, self.page_size).0);
            }
        }
        maps.sort_unstable();
        maps.dedup();
        for &map in &maps {
            let dbtime = self.next_dbtime()?;
            let (frame, cached) = match self.cache.find(map) {
                Some(frame) => (frame, true),
                None => (self.cache.vacant(), false),
            };
            let page = self.cache.bytes_mut(frame);
            flushmap::fill(page, map, &self.stamps);
            page::set_dbtime(page, dbtime);
            if !cached {
                self.bind(frame, map, false);
            }
            let slot = self.cache.slot_mut(frame);
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(map);
            }
            self.stamps[map as usize] = dbtime;
        }
        self.header.catalog_stamp = self.stamps[CATALOG_ROOT as usize];
        self.header.map_digest = flushmap::digest(
            flushmap::map_pages(self.header.page_count, self.page_size)
                .map(|map| self.stamps[map as usize]),
        );
        self.header_dirty = true;
        Ok(maps)
    }

    /// Makes `update` to the header and writes it at once (both copies) without writing
    /// changed pages: for a record that must be durable now, such as a backup's. The header
    /// written is the one the file holds (the last batch's page count, free list and state),
    /// with `update` made to it: it never describes pages that are not in the file. A batch
    /// being written is finished first (the file then holds it whole, and its header).
    pub(crate) fn write_header_now(&mut self, update: impl Fn(&mut DbHeader)) -> Result<()> {
        self.finish_round()?;
        self.check_not_poisoned()?;
        let Some(sequence) = self.header.sequence.checked_add(1) else {
            bail!(
                DatabaseCorrupted,
                "{}: the header's update sequence is at its maximum",
                self.path.display()
            );
        };
        update(&mut self.header);
        let mut image = self.disk.clone();
        update(&mut image);
        image.sequence = sequence;
        self.write_header_copies(&image)?;
        self.header.sequence = sequence;
        Ok(())
    }

    /// Writes both header copies, each followed by an fsync, so one is whole at every instant.
    fn write_header_copies(&mut self, image: &DbHeader) -> Result<()> {
        for pgno in [HEADER_PGNO, SHADOW_PGNO] {
            let page = image.encode(pgno);
            let offset = u64::from(pgno) * self.page_size as u64;
            self.save_for_backup(pgno, 1);
            if let Err(err) = self.file.write_all_at(&page, offset) {
                return Err(self.io_failed(format!("write header copy {pgno}"), &err));
            }
            self.pages_written += 1;
            self.sync()?;
        }
        self.disk = image.clone();
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Err(err) = self.file.sync() {
            return Err(self.io_failed("fsync".to_string(), &err));
        }
        Ok(())
    }

    fn check_not_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(err) => bail!(
                DatabaseUnavailable,
                "{}: an earlier write failed ({err}); the database must be reopened",
                self.path.display()
            ),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("path", &self.path)
            .field("page_size", &self.page_size)
            .field("pages", &self.header.page_count)
            .field("cached", &self.cache.len())
            .finish()
    }
}

/// Checks that a read-only pager is not asked to change anything.
pub(crate) fn ensure_writable(pager: &Pager) -> Result<()> {
    if pager.writable() {
        Ok(())
    } else {
        Err(JetError::new(
            ErrorKind::DatabaseFileReadOnly,
            format!("{} was opened read-only", pager.path().display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Database, DatabaseOptions, Env};

    #[test]
    fn a_cache_trimmed_after_growing_past_its_size_gives_its_frames_back() {
        // The smallest cache (one arena of its size) grown to three times its size by new
        // pages, which wait changed for a batch; then written, and the cache trimmed.
        let env = Env::memory(1);
        let options = DatabaseOptions {
            cache_size: 0,
            ..DatabaseOptions::default()
        };
        let mut db = Database::create(&env, "d.edb".as_ref(), &options).unwrap();
        let pager = db.pager_mut();
        let max = pager.cache_pages_max();
        let pages: Vec<Pgno> = (0..3 * max)
            .map(|i| {
                pager
                    .alloc(|p| node::init_overflow(p, 0, &(i as u32).to_le_bytes()))
                    .unwrap()
            })
            .collect();
        assert!(
            pager.frames_allocated() >= 3 * max,
            "the cache grew past its size"
        );
        pager.flush().unwrap();
        pager.trim().unwrap();
        assert!(pager.cached_pages() < max);
        // The arenas the cache fits in, and one to spare (arenas are at most its size).
        let frames = pager.frames_allocated();
        assert!(
            frames >= max && frames <= 2 * max,
            "{frames} frames for {max} pages"
        );
        // Every page reads back, from the cache or the file.
        for (i, &pgno) in pages.iter().enumerate() {
            let page = pager.page(pgno).unwrap();
            assert_eq!(node::overflow_data(page), (i as u32).to_le_bytes());
        }
    }
}
