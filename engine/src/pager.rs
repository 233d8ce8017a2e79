//! The pager: the database file seen as numbered pages, through a cache of decoded nodes.
//!
//! It hands out pages ([`Pager::node`] to read, [`Pager::node_mut`] to change), allocates and
//! frees them (a free list threaded through the free pages), and writes changed pages back:
//! on [`Pager::flush`], or when the cache is over its size and must evict.
//!
//! Every change stamps the page with a new dbtime, so a page's dbtime only grows. Before the
//! first changed page reaches the file, the header is marked `DirtyShutdown` and synced; only a
//! flush that ends with the state `CleanShutdown` marks the file consistent again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::catalog::CATALOG_ROOT;
use crate::delta::{self, PageImage};
use crate::error::{ErrorKind, JetError, Result, bail};
use crate::header::{DbHeader, DbState, HEADER_PGNO, SHADOW_PGNO};
use crate::limits;
use crate::node::Node;
use crate::page::Pgno;
use crate::vfs::VfsFile;

/// Writes of consecutive pages are gathered into one of at most this many bytes.
const WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;

struct Frame {
    node: Node,
    dbtime: u64,
    dirty: bool,
    used: u64,
    /// With logging on: the log position after the record group holding this page's latest
    /// image. The page may reach the file only once the log is durable up to here.
    lsn: u64,
    /// With logging on: the page's last logged image and its dbtime, if logged since the last
    /// checkpoint — the base of the next delta.
    base: Option<(u64, Box<[u8]>)>,
}

/// What an online backup needs of the file as it was when the backup began: before the pager
/// overwrites a page the backup has not copied yet, it saves the page's content here
/// (copy-before-write), so the backup copies the file exactly as it stood at its begin, while
/// the instance goes on writing.
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

impl CopyFence {
    fn needs(&self, pgno: Pgno) -> bool {
        self.failed.is_none()
            && pgno >= self.copied_below
            && pgno < self.end
            && !self.secured.contains(&pgno)
    }
}

pub(crate) struct Pager {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    page_size: usize,
    writable: bool,
    /// The header as it will next be written; `page_count`, the free list and dbtime live here.
    header: DbHeader,
    /// The state the header on disk records.
    disk_state: DbState,
    /// Whether `header` differs from the copies on disk.
    header_dirty: bool,
    /// Whether pages were written since the last fsync: the header is never written before
    /// the pages it describes are durable.
    unsynced: bool,
    /// Pages written to the file since it was opened (header copies included).
    pages_written: u64,
    /// The first failed write or fsync. After it the file's state is unknown (a failed fsync
    /// may have dropped written pages), so the pager writes nothing more.
    poisoned: Option<JetError>,
    cache: BTreeMap<Pgno, Frame>,
    cache_pages_max: usize,
    /// A logical clock for least-recently-used eviction.
    tick: u64,
    scratch: Vec<u8>,
    /// Whether a write-ahead log covers this file (see [`Pager::capture`]).
    logging: bool,
    /// With logging on: pages changed since their last image was captured for the log. They
    /// stay in the cache until logged.
    unlogged: BTreeSet<Pgno>,
    /// With logging on: how far the log is durable. No page with a later `lsn` is written.
    wal_durable: u64,
    /// While an online backup copies the file: its copy-before-write fence.
    fence: Option<CopyFence>,
}

impl Pager {
    /// A pager over `file`, whose header (already read and validated) is `header`.
    pub(crate) fn new(
        file: Box<dyn VfsFile>,
        path: &Path,
        header: DbHeader,
        writable: bool,
        cache_size: usize,
    ) -> Pager {
        let page_size = header.page_size as usize;
        assert!(limits::page_size_valid(page_size));
        Pager {
            file,
            path: path.to_path_buf(),
            page_size,
            writable,
            disk_state: header.state,
            header,
            header_dirty: false,
            unsynced: false,
            pages_written: 0,
            poisoned: None,
            cache: BTreeMap::new(),
            cache_pages_max: (cache_size / page_size).max(limits::CACHE_PAGES_MIN),
            tick: 0,
            scratch: vec![0u8; page_size],
            logging: false,
            unlogged: BTreeSet::new(),
            wal_durable: 0,
            fence: None,
        }
    }

    /// Puts the pager under a write-ahead log: changed pages are kept until
    /// [`Pager::capture`] takes their images, and written only once the log is durable past
    /// them ([`Pager::set_wal_durable`]).
    pub(crate) fn enable_logging(&mut self) {
        self.logging = true;
    }

    /// Takes the after-images of every page changed since the last capture, in page order:
    /// whole for a page's first capture since the last checkpoint (or since it was read),
    /// after that as a delta from its previous image when the delta is smaller than half a
    /// page. [`Pager::logged`] must follow once they
    /// are appended to the log.
    pub(crate) fn capture(&mut self) -> Vec<(Pgno, PageImage)> {
        assert!(self.logging);
        let page_size = self.page_size;
        let mut images = Vec::with_capacity(self.unlogged.len());
        for &pgno in &self.unlogged {
            let frame = self
                .cache
                .get_mut(&pgno)
                .expect("unlogged pages stay cached");
            let mut page = vec![0u8; page_size];
            frame.node.encode_into(&mut page, pgno, frame.dbtime);
            let image = match &frame.base {
                Some((base_dbtime, base)) => {
                    let splice = delta::diff(base, &page);
                    if delta::worth_it(&splice, page_size) {
                        PageImage::Delta {
                            base_dbtime: *base_dbtime,
                            splice,
                        }
                    } else {
                        PageImage::Full(page.clone())
                    }
                }
                None => PageImage::Full(page.clone()),
            };
            frame.base = Some((frame.dbtime, page.into_boxed_slice()));
            images.push((pgno, image));
        }
        images
    }

    /// Forgets every page's last logged image: after a checkpoint, each page's next image is
    /// logged whole, so recovery from the checkpoint never needs an image from before it.
    pub(crate) fn forget_logged_images(&mut self) {
        for frame in self.cache.values_mut() {
            frame.base = None;
        }
    }

    /// Records that the images from the last [`Pager::capture`] are in the log, in records
    /// that end at `lsn`.
    pub(crate) fn logged(&mut self, lsn: u64) {
        for pgno in std::mem::take(&mut self.unlogged) {
            let frame = self
                .cache
                .get_mut(&pgno)
                .expect("unlogged pages stay cached");
            debug_assert!(lsn >= frame.lsn, "log positions only grow");
            frame.lsn = lsn;
        }
    }

    /// How many pages were changed since the last capture.
    pub(crate) fn unlogged_pages(&self) -> usize {
        self.unlogged.len()
    }

    /// Records that the log is durable up to `lsn`.
    pub(crate) fn set_wal_durable(&mut self, lsn: u64) {
        debug_assert!(lsn >= self.wal_durable, "the durable log only grows");
        self.wal_durable = lsn;
    }

    /// How many pages the cache holds.
    pub(crate) fn cached_pages(&self) -> usize {
        self.cache.len()
    }

    /// The cache's size, in pages.
    pub(crate) fn cache_pages_max(&self) -> usize {
        self.cache_pages_max
    }

    /// How many cached pages may not be evicted now (changed, their log not durable).
    pub(crate) fn pinned_pages(&self) -> usize {
        self.cache
            .iter()
            .filter(|(pgno, f)| f.dirty && !self.writable_now(**pgno, f))
            .count()
    }

    /// Whether the cache holds more pages than its size (pages waiting for the log).
    pub(crate) fn over_capacity(&self) -> bool {
        self.cache.len() > self.cache_pages_max
    }

    /// Evicts pages until the cache is within its size, as far as the log allows.
    pub(crate) fn trim(&mut self) -> Result<()> {
        while self.cache.len() >= self.cache_pages_max {
            let before = self.cache.len();
            self.make_room()?;
            if self.cache.len() == before {
                break;
            }
        }
        Ok(())
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
    pub(crate) fn node(&mut self, pgno: Pgno) -> Result<&Node> {
        self.load(pgno)?;
        let frame = self.cache.get_mut(&pgno).expect("loaded");
        frame.used = self.tick;
        Ok(&frame.node)
    }

    /// The page `pgno`, to change: it is stamped with a new dbtime and will be written back.
    pub(crate) fn node_mut(&mut self, pgno: Pgno) -> Result<&mut Node> {
        assert!(self.writable, "a read-only pager is never changed");
        self.load(pgno)?;
        let dbtime = self.next_dbtime()?;
        let frame = self.cache.get_mut(&pgno).expect("loaded");
        assert!(dbtime > frame.dbtime, "page dbtimes only grow");
        frame.dbtime = dbtime;
        frame.dirty = true;
        frame.used = self.tick;
        if self.logging {
            self.unlogged.insert(pgno);
        }
        Ok(&mut frame.node)
    }

    /// A new page holding `node`: the head of the free list, or a page past the end.
    pub(crate) fn alloc(&mut self, node: Node) -> Result<Pgno> {
        assert!(self.writable);
        let pgno = if self.header.free_head != 0 {
            let head = self.header.free_head;
            let Node::Free(next) = *self.node(head)? else {
                bail!(
                    DatabaseCorrupted,
                    "{}: page {head} is on the free list but is not free",
                    self.path.display()
                );
            };
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
            if u64::from(self.header.page_count) >= limits::PAGE_COUNT_MAX {
                bail!(
                    OutOfDatabaseSpace,
                    "{} holds the most pages a database can",
                    self.path.display()
                );
            }
            self.make_room()?;
            let pgno = self.header.page_count;
            self.header.page_count += 1;
            self.cache.insert(
                pgno,
                Frame {
                    node: Node::Free(0),
                    dbtime: 0,
                    dirty: true,
                    used: self.tick,
                    lsn: 0,
                    base: None,
                },
            );
            pgno
        };
        self.header_dirty = true;
        *self.node_mut(pgno)? = node;
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
        if let Node::Free(_) = self.node(pgno)? {
            bail!(
                DatabaseCorrupted,
                "{}: page {pgno} is freed twice (linked from two places)",
                self.path.display()
            );
        }
        let head = self.header.free_head;
        *self.node_mut(pgno)? = Node::Free(head);
        self.header.free_head = pgno;
        self.header.free_count += 1;
        self.header_dirty = true;
        Ok(())
    }

    /// Writes every changed page and then the header, each followed by an fsync.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        self.check_not_poisoned()?;
        let dirty: Vec<Pgno> = self
            .cache
            .iter()
            .filter(|(_, f)| f.dirty)
            .map(|(&pgno, _)| pgno)
            .collect();
        if !dirty.is_empty() {
            self.write_back(&dirty)?;
        }
        // Pages written by eviction since the last fsync are made durable too: a flush is a
        // promise that everything before it is in the file.
        if self.unsynced {
            self.sync()?;
        }
        if self.header_dirty {
            self.write_header()?;
        }
        Ok(())
    }

    /// How many changed pages wait in the cache.
    /// Pages written to the file since it was opened (header copies included).
    pub(crate) fn pages_written(&self) -> u64 {
        self.pages_written
    }

    pub(crate) fn dirty_pages(&self) -> usize {
        self.cache.values().filter(|f| f.dirty).count()
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

    fn load(&mut self, pgno: Pgno) -> Result<()> {
        self.tick += 1;
        if self.cache.contains_key(&pgno) {
            return Ok(());
        }
        if pgno < CATALOG_ROOT || pgno >= self.header.page_count {
            bail!(
                DatabaseCorrupted,
                "{}: a link to page {pgno}, outside the database's {} pages",
                self.path.display(),
                self.header.page_count
            );
        }
        self.make_room()?;
        let offset = u64::from(pgno) * self.page_size as u64;
        self.file
            .read_exact_at(&mut self.scratch, offset)
            .map_err(|err| {
                JetError::io(format!("{}: read page {pgno}", self.path.display()), &err)
            })?;
        let (node, dbtime) =
            Node::decode(&self.scratch, pgno).map_err(|err| err.context(self.path.display()))?;
        if dbtime > self.header.dbtime {
            bail!(
                DatabaseCorrupted,
                "{}: page {pgno} has dbtime {dbtime}, newer than the database's {}",
                self.path.display(),
                self.header.dbtime
            );
        }
        self.cache.insert(
            pgno,
            Frame {
                node,
                dbtime,
                dirty: false,
                used: self.tick,
                lsn: 0,
                base: None,
            },
        );
        Ok(())
    }

    /// Evicts the least recently used quarter of the cache when it is full, writing back the
    /// changed pages among them.
    fn make_room(&mut self) -> Result<()> {
        if self.cache.len() < self.cache_pages_max {
            return Ok(());
        }
        // Under a log, a changed page waits until its image is durable in the log.
        let mut by_age: Vec<(u64, Pgno)> = self
            .cache
            .iter()
            .filter(|(pgno, f)| !f.dirty || self.writable_now(**pgno, f))
            .map(|(&pgno, f)| (f.used, pgno))
            .collect();
        by_age.sort_unstable();
        let evict: Vec<Pgno> = by_age
            .iter()
            .take(self.cache_pages_max / 4 + 1)
            .map(|&(_, pgno)| pgno)
            .collect();
        let mut dirty: Vec<Pgno> = evict
            .iter()
            .copied()
            .filter(|pgno| self.cache[pgno].dirty)
            .collect();
        if !dirty.is_empty() {
            dirty.sort_unstable();
            self.write_back(&dirty)?;
        }
        for pgno in evict {
            let frame = self.cache.remove(&pgno).expect("present");
            debug_assert!(!frame.dirty);
        }
        Ok(())
    }

    /// Starts a backup's copy-before-write fence over the pages the file holds now; returns
    /// how many pages that is.
    pub(crate) fn set_fence(&mut self) -> Result<Pgno> {
        assert!(self.fence.is_none(), "one backup at a time");
        let len = self
            .file
            .len()
            .map_err(|err| JetError::io(format!("{}: length", self.path.display()), &err))?;
        let end = Pgno::try_from(len / self.page_size as u64).unwrap_or(Pgno::MAX);
        self.fence = Some(CopyFence {
            end,
            ..CopyFence::default()
        });
        Ok(end)
    }

    /// The running backup's fence.
    pub(crate) fn fence_mut(&mut self) -> Option<&mut CopyFence> {
        self.fence.as_mut()
    }

    /// Ends the backup's fence.
    pub(crate) fn clear_fence(&mut self) {
        self.fence = None;
    }

    /// Reads `buf.len() / page_size` pages from the file as it is, from page `first` on
    /// (for a backup; nothing is verified or cached).
    pub(crate) fn read_raw(&self, first: Pgno, buf: &mut [u8]) -> Result<()> {
        let offset = u64::from(first) * self.page_size as u64;
        self.file.read_exact_at(buf, offset).map_err(|err| {
            JetError::io(
                format!(
                    "{}: read from page {first} for a backup",
                    self.path.display()
                ),
                &err,
            )
        })
    }

    /// Saves, for a running backup, the content of pages `first..first + count` that it still
    /// needs as they were when it began — just before they are overwritten.
    fn save_for_backup(&mut self, first: Pgno, count: u32) {
        let Some(fence) = &mut self.fence else {
            return;
        };
        for pgno in first..first + count {
            if !fence.needs(pgno) {
                continue;
            }
            let mut page = vec![0u8; self.page_size];
            match self
                .file
                .read_exact_at(&mut page, u64::from(pgno) * self.page_size as u64)
            {
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

    /// Whether the WAL rule lets the changed page `pgno` reach the file now.
    fn writable_now(&self, pgno: Pgno, frame: &Frame) -> bool {
        !self.logging || (!self.unlogged.contains(&pgno) && frame.lsn <= self.wal_durable)
    }

    /// Writes the pages `pgnos` (ascending, all dirty), gathering runs of consecutive pages.
    fn write_back(&mut self, pgnos: &[Pgno]) -> Result<()> {
        debug_assert!(pgnos.windows(2).all(|w| w[0] < w[1]));
        for pgno in pgnos {
            // The WAL rule: no page reaches the file before the log records that changed it
            // are durable.
            assert!(
                self.writable_now(*pgno, &self.cache[pgno]),
                "page {pgno} written before its log records are durable"
            );
        }
        self.check_not_poisoned()?;
        self.mark_dirty_on_disk()?;
        let mut batch: Vec<u8> = Vec::new();
        let mut page = vec![0u8; self.page_size];
        let mut start = 0usize;
        while start < pgnos.len() {
            let mut end = start + 1;
            while end < pgnos.len()
                && pgnos[end] == pgnos[end - 1] + 1
                && (end - start + 1) * self.page_size <= WRITE_BATCH_BYTES_MAX
            {
                end += 1;
            }
            batch.clear();
            for &pgno in &pgnos[start..end] {
                let frame = &self.cache[&pgno];
                frame.node.encode_into(&mut page, pgno, frame.dbtime);
                batch.extend_from_slice(&page);
            }
            let offset = u64::from(pgnos[start]) * self.page_size as u64;
            self.save_for_backup(pgnos[start], (end - start) as u32);
            self.unsynced = true;
            if let Err(err) = self.file.write_all_at(&batch, offset) {
                let what = format!("write pages {}..={}", pgnos[start], pgnos[end - 1]);
                return Err(self.io_failed(what, &err));
            }
            self.pages_written += (end - start) as u64;
            for pgno in &pgnos[start..end] {
                self.cache.get_mut(pgno).expect("present").dirty = false;
            }
            start = end;
        }
        Ok(())
    }

    /// Before the first changed page reaches the file, records durably that the file is no
    /// longer consistent on its own.
    fn mark_dirty_on_disk(&mut self) -> Result<()> {
        if self.disk_state == DbState::CleanShutdown {
            let final_state = self.header.state;
            self.header.state = DbState::DirtyShutdown;
            self.write_header()?;
            self.header.state = final_state;
            self.header_dirty = final_state != DbState::DirtyShutdown;
        }
        Ok(())
    }

    /// Writes the header as it stands now (both copies, after syncing any page writes), without
    /// writing changed pages: for a record that must be durable at once, such as a backup's.
    /// Between commits only: the header then describes a committed state, whose pages recovery
    /// rebuilds from the log if they never reach the file.
    pub(crate) fn write_header_now(&mut self) -> Result<()> {
        self.header_dirty = true;
        self.write_header()
    }

    /// Writes both header copies, each followed by an fsync, so one is whole at every instant.
    fn write_header(&mut self) -> Result<()> {
        self.check_not_poisoned()?;
        // Under a log, the header describes a committed state: never one half-way through a
        // commit whose pages are not captured yet.
        assert!(
            self.unlogged.is_empty(),
            "a header write in the middle of a commit"
        );
        if self.unsynced {
            // The header must never describe pages that are not yet durable.
            self.sync()?;
        }
        let Some(sequence) = self.header.sequence.checked_add(1) else {
            bail!(
                DatabaseCorrupted,
                "{}: the header's update sequence is at its maximum",
                self.path.display()
            );
        };
        self.header.sequence = sequence;
        for pgno in [HEADER_PGNO, SHADOW_PGNO] {
            let page = self.header.encode(pgno);
            let offset = u64::from(pgno) * self.page_size as u64;
            self.save_for_backup(pgno, 1);
            if let Err(err) = self.file.write_all_at(&page, offset) {
                return Err(self.io_failed(format!("write header copy {pgno}"), &err));
            }
            self.pages_written += 1;
            self.sync()?;
        }
        self.disk_state = self.header.state;
        self.header_dirty = false;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Err(err) = self.file.sync() {
            return Err(self.io_failed("fsync".to_string(), &err));
        }
        self.unsynced = false;
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
