//! The doublewrite file: every write-back of the database is one atomic batch.
//!
//! The log holds operations (a put, a delete), not page images, so recovery replays them
//! through the B+tree, and the tree on disk must be whole: never some pages of one state and
//! some of another, never a page torn. So changed pages reach the database file only in
//! batches — all the pages changed since the last batch, and the header that describes them —
//! and each batch is first written whole to this file beside the database (InnoDB's
//! doublewrite buffer, made atomic for the whole batch):
//!
//! 1. the header image and the pages, at offsets `page_size × (1 + i)`; fsync;
//! 2. the batch header at offset 0 (what it holds, with a CRC32 over it all); fsync;
//! 3. the pages at their places in the database file; fsync;
//! 4. the database header's two copies, each followed by an fsync.
//!
//! A crash before step 2 is durable leaves the database file untouched (the batch header is
//! torn, or an older batch's). A crash after it leaves a batch whose header image names the
//! update sequence after the database header's own: recovery writes every page of it into
//! place again, then the header (`recover`), so the file holds the whole batch. After step 4
//! the database header's sequence has caught up and the batch is history.
//!
//! ```text
//! batch header (page 0): magic u32 "JDWB" | version u32 | page size u32 | pages u32 |
//!                        database signature (16) | sequence u64 | crc32 of pages 1.. u32 |
//!                        crc32 of the fields before u32
//! page 1:                the database header this batch installs (encoded as page 0)
//! pages 2..:             the batch's pages, sealed, in page-number order
//! ```
//!
//! The file is the database's name with `.jdw` added (`data.edb` → `data.edb.jdw`), so no two
//! databases share one; a database may not itself be named `*.jdw`. Restore removes it: a
//! batch belongs to the file it was written for.
//!
//! *Limit:* damage to the batch header after step 2 and before step 4 (bit rot inside that
//! window) cannot be told from a torn step 2: the batch is then ignored.

use std::path::{Path, PathBuf};

use crate::base::codec::{Reader, Writer};
use crate::base::error::{JetError, Result, bail};
use crate::base::vfs::{OpenMode, Vfs, VfsFile, parent_dir};
use crate::store::header::{DbHeader, HEADER_PGNO, Signature};
use crate::store::page::{self, Pgno};

const MAGIC: u32 = 0x4244_574A; // "JDWB"
const VERSION: u32 = 1;
const FIELDS_LEN: usize = 4 + 4 + 4 + 4 + 16 + 8 + 4;

/// The doublewrite file of the database at `db`: its name with `.jdw` added.
pub fn path_for(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(".jdw");
    PathBuf::from(path)
}

/// Refuses a database named like a doublewrite file (`*.jdw`): another database's batches
/// could land in it (`JET_errInvalidPath`).
pub(crate) fn check_database_path(db: &Path) -> Result<()> {
    if db
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jdw"))
    {
        bail!(
            InvalidPath,
            "{}: a database may not be named *.jdw, the name of a doublewrite file",
            db.display()
        );
    }
    Ok(())
}

/// What a batch header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchHeader {
    page_size: u32,
    pages: u32,
    db_signature: Signature,
    /// The update sequence of the database header the batch installs.
    sequence: u64,
    crc: u32,
}

impl BatchHeader {
    fn encode(&self, page_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(page_size);
        let mut w = Writer::new(&mut out);
        w.u32(MAGIC);
        w.u32(VERSION);
        w.u32(self.page_size);
        w.u32(self.pages);
        w.u64(self.db_signature.random);
        w.u64(self.db_signature.created_millis);
        w.u64(self.sequence);
        w.u32(self.crc);
        debug_assert_eq!(out.len(), FIELDS_LEN);
        let check = crc32fast::hash(&out);
        out.extend_from_slice(&check.to_le_bytes());
        out.resize(page_size, 0);
        out
    }

    /// The header in `page`, if it is whole and of this format.
    fn decode(page: &[u8]) -> Option<BatchHeader> {
        let fields = page.get(..FIELDS_LEN)?;
        let stored = page.get(FIELDS_LEN..FIELDS_LEN + 4)?;
        if crc32fast::hash(fields).to_le_bytes() != stored {
            return None;
        }
        let mut r = Reader::new(fields);
        if r.u32().ok()? != MAGIC || r.u32().ok()? != VERSION {
            return None;
        }
        Some(BatchHeader {
            page_size: r.u32().ok()?,
            pages: r.u32().ok()?,
            db_signature: Signature {
                random: r.u64().ok()?,
                created_millis: r.u64().ok()?,
            },
            sequence: r.u64().ok()?,
            crc: r.u32().ok()?,
        })
    }
}

/// Writes pages into a doublewrite file as one batch, in chunks (each call names the file:
/// a batch may be written a piece at a time, between other work).
pub(crate) struct BatchWriter {
    page_size: usize,
    next: u64,
    crc: crc32fast::Hasher,
    pages: u32,
}

impl BatchWriter {
    /// Starts a batch that installs `header` (its update sequence already the new one).
    pub(crate) fn start(file: &dyn VfsFile, header: &DbHeader) -> std::io::Result<BatchWriter> {
        let page_size = header.page_size as usize;
        let mut writer = BatchWriter {
            page_size,
            next: 1,
            crc: crc32fast::Hasher::new(),
            pages: 0,
        };
        writer.write(file, &header.encode(HEADER_PGNO))?;
        Ok(writer)
    }

    /// Appends sealed pages (a whole number of them).
    pub(crate) fn write(&mut self, file: &dyn VfsFile, pages: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(pages.len() % self.page_size, 0);
        let offset = self.next * self.page_size as u64;
        file.write_all_at(pages, offset)?;
        // A hint, as for the pages in place (`Pager::advance`): the seal's fsync stalls less.
        let _ = file.start_writeback(offset, pages.len() as u64);
        self.crc.update(pages);
        let count = (pages.len() / self.page_size) as u64;
        self.next += count;
        self.pages += count as u32;
        Ok(())
    }

    /// Makes the pages durable, then writes the batch header and makes it durable: from here
    /// on, recovery installs the batch.
    pub(crate) fn seal(self, file: &dyn VfsFile, header: &DbHeader) -> std::io::Result<()> {
        file.sync()?;
        let batch = BatchHeader {
            page_size: header.page_size,
            // The header image counts as a page of the batch.
            pages: self.pages,
            db_signature: header.db_signature,
            sequence: header.sequence,
            crc: self.crc.finalize(),
        };
        file.write_all_at(&batch.encode(self.page_size), 0)?;
        file.sync()
    }
}

/// The copy recovery makes of a batch before installing it (see [`recover`]).
fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Opens (creating if need be, its directory then fsynced) the doublewrite file of `db`.
pub(crate) fn open(vfs: &dyn Vfs, db: &Path) -> Result<Box<dyn VfsFile>> {
    let path = path_for(db);
    let exists = vfs
        .exists(&path)
        .map_err(|err| JetError::io(format!("look up {}", path.display()), &err))?;
    let mode = if exists {
        OpenMode::ReadWrite
    } else {
        OpenMode::CreateNew
    };
    let file = vfs
        .open(&path, mode)
        .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
    if !exists {
        // A batch in a file whose name is not durable could vanish after the database
        // file took some of its pages.
        let dir = parent_dir(&path);
        vfs.sync_dir(dir)
            .map_err(|err| JetError::io(format!("fsync {}", dir.display()), &err))?;
    }
    Ok(file)
}

/// What [`recover`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Installed {
    /// Pages written into the database file (the header's copies not counted).
    pub(crate) pages: u64,
}

/// Finishes the batch a crash interrupted, if there is one: when the doublewrite file of the
/// database at `db` holds a sealed batch for this database whose header is the one after
/// `current` (the header on disk), writes its pages into `file`, fsyncs, then writes its
/// header's two copies. Returns the header now in force and what was installed.
///
/// A sealed batch that fails its checksum is damage to durable data
/// (`JET_errDatabaseCorrupted`): the database file may hold part of it. Without `install`
/// (a read-only open), a batch to finish is `JET_errDatabaseDirtyShutdown`.
pub(crate) fn recover(
    vfs: &dyn Vfs,
    db: &Path,
    file: &dyn VfsFile,
    current: &DbHeader,
    install: bool,
) -> Result<Option<(DbHeader, Installed)>> {
    let path = path_for(db);
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |err: std::io::Error| JetError::io(what.clone(), &err)
    };
    // A copy a crash cut short (see below): the file it copies is still whole.
    let tmp = tmp_path(&path);
    if install && vfs.exists(&tmp).map_err(io("look up"))? {
        vfs.remove(&tmp).map_err(io("remove"))?;
        vfs.sync_dir(parent_dir(&path))
            .map_err(io("fsync the directory of"))?;
    }
    if !vfs.exists(&path).map_err(io("look up"))? {
        return Ok(None);
    }
    let dw = vfs.open(&path, OpenMode::Read).map_err(io("open"))?;
    let page_size = current.page_size as usize;

    let mut first = vec![0u8; page_size];
    match dw.read_at(&mut first, 0).map_err(io("read"))? {
        n if n == page_size => {}
        _ => return Ok(None),
    }
    let Some(batch) = BatchHeader::decode(&first) else {
        return Ok(None);
    };
    if batch.db_signature != current.db_signature
        || batch.page_size != current.page_size
        || Some(batch.sequence) != current.sequence.checked_add(1)
    {
        return Ok(None);
    }
    let damaged = |why: String| -> JetError {
        JetError::new(
            crate::base::error::ErrorKind::DatabaseCorrupted,
            format!(
                "{}: the batch of database writes a crash interrupted is damaged ({why}); the database file may hold part of it",
                path.display()
            ),
        )
    };
    // Verify it all before writing anything.
    let image = match verify_batch(&*dw, &batch, page_size) {
        Ok(image) => image,
        Err(Fault::Io(err)) => return Err(io("read")(err)),
        Err(Fault::Damaged(why)) => return Err(damaged(why)),
    };
    let mut page = vec![0u8; page_size];
    if !install {
        bail!(
            DatabaseDirtyShutdown,
            "{}: a batch of writes was interrupted; open the database for writing to finish it",
            db.display()
        );
    }
    // What was read may be a write whose fsync failed, seen only through the page cache
    // (Linux's "fsyncgate"). Before any of it goes into place, the batch is copied as read
    // into a new file (pages, then the header), made durable and renamed over this one: a
    // crash from there on finds it sealed. (Written again in place, a torn rewrite could
    // damage the durable copy; a crash during the copy leaves it as it was.)
    let tmp = tmp_path(&path);
    let copy = vfs
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(io("create a copy of"))?;
    for i in (1..=u64::from(batch.pages)).chain([0]) {
        let at = i * page_size as u64;
        dw.read_exact_at(&mut page, at).map_err(io("read"))?;
        copy.write_all_at(&page, at).map_err(io("copy"))?;
        if i == u64::from(batch.pages) || i == 0 {
            copy.sync().map_err(io("fsync the copy of"))?;
        }
    }
    // Read back before it replaces the original: a write of the copy the disk lost would
    // otherwise replace a whole batch with a damaged one. (The original stays for the next
    // open to try again.)
    let copied = match copy.read_at(&mut first, 0) {
        Ok(n) if n == page_size => BatchHeader::decode(&first).filter(|b| *b == batch),
        Ok(_) => None,
        Err(err) => return Err(io("read back the copy of")(err)),
    };
    let checked = match copied {
        Some(_) => verify_batch(&*copy, &batch, page_size),
        None => Err(Fault::Damaged("its header did not read back".into())),
    };
    drop(copy);
    match checked {
        Ok(_) => {}
        Err(Fault::Io(err)) => return Err(io("read back the copy of")(err)),
        Err(Fault::Damaged(why)) => {
            vfs.remove(&tmp).map_err(io("remove the damaged copy of"))?;
            bail!(
                ReadLostFlushVerifyFailure,
                "{}: the copy of the batch a crash interrupted did not read back as written ({why}): a write the disk lost; the batch stays for the next open",
                path.display()
            );
        }
    }
    vfs.rename(&tmp, &path)
        .map_err(io("rename the copy over"))?;
    let dir = parent_dir(&path);
    vfs.sync_dir(dir).map_err(io("fsync the directory of"))?;
    let dw = vfs.open(&path, OpenMode::Read).map_err(io("open"))?;
    let dbio = |what: String| {
        let what = format!("{}: {what}", db.display());
        move |err: std::io::Error| JetError::io(what.clone(), &err)
    };
    let mut installed = Installed::default();
    for i in 1..batch.pages {
        dw.read_exact_at(&mut page, (1 + u64::from(i)) * page_size as u64)
            .map_err(io("read"))?;
        let pgno = page_number(&page).map_err(&damaged)?;
        file.write_all_at(&page, u64::from(pgno) * page_size as u64)
            .map_err(dbio(format!("write page {pgno}")))?;
        installed.pages += 1;
    }
    file.sync().map_err(dbio("fsync".into()))?;
    for pgno in [HEADER_PGNO, crate::store::header::SHADOW_PGNO] {
        file.write_all_at(&image.encode(pgno), u64::from(pgno) * page_size as u64)
            .map_err(dbio(format!("write header copy {pgno}")))?;
        file.sync().map_err(dbio("fsync".into()))?;
    }
    Ok(Some((image, installed)))
}

/// Why a batch in a doublewrite file cannot be installed.
enum Fault {
    /// It could not be read.
    Io(std::io::Error),
    /// It is not whole.
    Damaged(String),
}

/// Reads the batch `batch` names from `dw` and checks it whole: its length, its header image
/// (this batch's), every page's checksum and number, and the batch's CRC. Returns the header
/// image.
fn verify_batch(
    dw: &dyn VfsFile,
    batch: &BatchHeader,
    page_size: usize,
) -> std::result::Result<DbHeader, Fault> {
    let len = dw.len().map_err(Fault::Io)?;
    let needed = (1 + u64::from(batch.pages)) * page_size as u64;
    if len < needed || batch.pages == 0 {
        return Err(Fault::Damaged(format!(
            "{} pages named, {len} bytes present",
            batch.pages
        )));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut page = vec![0u8; page_size];
    let mut image: Option<DbHeader> = None;
    for i in 0..batch.pages {
        dw.read_exact_at(&mut page, (1 + u64::from(i)) * page_size as u64)
            .map_err(Fault::Io)?;
        crc.update(&page);
        if let Some(header) = &image {
            let pgno = page_number(&page).map_err(Fault::Damaged)?;
            let end = header.page_count;
            if pgno < crate::store::header::CATALOG_ROOT || pgno >= end {
                return Err(Fault::Damaged(format!(
                    "it holds page {pgno}, outside the {end} pages its header names"
                )));
            }
        } else {
            let header =
                DbHeader::decode(&page, HEADER_PGNO).map_err(|e| Fault::Damaged(e.to_string()))?;
            if header.sequence != batch.sequence || header.db_signature != batch.db_signature {
                return Err(Fault::Damaged("its header image is another batch's".into()));
            }
            image = Some(header);
        }
    }
    if crc.finalize() != batch.crc {
        return Err(Fault::Damaged("its checksum does not match".into()));
    }
    Ok(image.expect("one page at least"))
}

/// The page number a sealed page names, once its checksum holds.
fn page_number(page: &[u8]) -> std::result::Result<Pgno, String> {
    match page::verify_sealed(page) {
        Some(pgno) => Ok(pgno),
        None => Err("a page fails its checksum".into()),
    }
}

/// Removes the doublewrite file of `db` if there is one (restore: a batch belongs to the file
/// it was written for), then fsyncs the directory.
pub(crate) fn remove(vfs: &dyn Vfs, db: &Path) -> Result<()> {
    let path = path_for(db);
    let exists = vfs
        .exists(&path)
        .map_err(|err| JetError::io(format!("look up {}", path.display()), &err))?;
    if exists {
        vfs.remove(&path)
            .map_err(|err| JetError::io(format!("remove {}", path.display()), &err))?;
        let dir = parent_dir(&path);
        vfs.sync_dir(dir)
            .map_err(|err| JetError::io(format!("fsync {}", dir.display()), &err))?;
    }
    Ok(())
}

/// Fails if a batch ever holds no header image: the header is its first page.
const _: () = assert!(FIELDS_LEN + 4 <= crate::base::limits::PAGE_SIZE_MIN);

#[cfg(test)]
mod tests {
    //! `recover` on its own, against a database file and a batch made here: what it installs,
    //! what it counts, what it leaves alone, and in what order it makes its copy durable.

    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::base::env::Env;
    use crate::base::error::ErrorKind;
    use crate::base::vfs::MemVfs;
    use crate::store::database::{Database, DatabaseOptions};
    use crate::store::header::{self, SHADOW_PGNO};

    const PAGE: usize = 4096;

    /// A database `d.edb` of some records, flushed (its last batch installed); returns the
    /// vfs and the header the file holds.
    fn database(vfs: &Arc<dyn Vfs>) -> DbHeader {
        let env = Env::new(
            Arc::clone(vfs),
            Arc::new(crate::base::env::ManualClock::new(0)),
            Arc::new(crate::base::env::SeededEntropy::new(7)),
        );
        let options = DatabaseOptions {
            page_size: PAGE,
            cache_size: 64 * PAGE,
            read_only: false,
        };
        let mut db = Database::create(&env, Path::new("d.edb"), &options).unwrap();
        let t = db.create_table("t").unwrap();
        for i in 0u32..200 {
            db.put(t, &i.to_be_bytes(), &[3; 100]).unwrap();
        }
        db.flush().unwrap();
        drop(db);
        current(vfs)
    }

    fn current(vfs: &Arc<dyn Vfs>) -> DbHeader {
        let file = vfs.open(Path::new("d.edb"), OpenMode::Read).unwrap();
        let copies = header::read_copies(&*file).unwrap();
        header::choose(&copies).unwrap().clone()
    }

    fn read_pages(vfs: &Arc<dyn Vfs>, path: &str) -> Vec<u8> {
        let file = vfs.open(Path::new(path), OpenMode::Read).unwrap();
        let mut bytes = vec![0u8; file.len().unwrap() as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }

    /// Seals in `d.jdw` a batch installing `image` (the current header, one sequence on) with
    /// every page of the file from the catalog root on, then blanks those pages in the
    /// database file, as a crash after the seal and before the pages went into place might
    /// leave them. Returns the database file's content as the batch would leave it.
    fn pending_batch(vfs: &Arc<dyn Vfs>, now: &DbHeader) -> (DbHeader, Vec<u8>) {
        let mut image = now.clone();
        image.sequence += 1;
        image.consistent_millis += 1;
        let before = read_pages(vfs, "d.edb");
        let pages = &before
            [crate::store::header::CATALOG_ROOT as usize * PAGE..now.page_count as usize * PAGE];
        let dw = open(&**vfs, Path::new("d.edb")).unwrap();
        let mut writer = BatchWriter::start(&*dw, &image).unwrap();
        writer.write(&*dw, pages).unwrap();
        writer.seal(&*dw, &image).unwrap();
        let file = vfs.open(Path::new("d.edb"), OpenMode::ReadWrite).unwrap();
        file.write_all_at(
            &vec![0u8; pages.len()],
            crate::store::header::CATALOG_ROOT as u64 * PAGE as u64,
        )
        .unwrap();
        let mut after = before.clone();
        after[..PAGE].copy_from_slice(&image.encode(HEADER_PGNO));
        after[PAGE..2 * PAGE].copy_from_slice(&image.encode(SHADOW_PGNO));
        (image, after)
    }

    fn run_recover(vfs: &Arc<dyn Vfs>, now: &DbHeader) -> Result<Option<(DbHeader, Installed)>> {
        let file = vfs.open(Path::new("d.edb"), OpenMode::ReadWrite).unwrap();
        recover(&**vfs, Path::new("d.edb"), &*file, now, true)
    }

    #[test]
    fn a_pending_batch_is_installed_whole_with_both_header_copies_and_counted() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let now = database(&vfs);
        let (image, expected) = pending_batch(&vfs, &now);
        let pages = (now.page_count - crate::store::header::CATALOG_ROOT) as usize;
        let (installed_header, installed) = run_recover(&vfs, &now).unwrap().expect("installed");
        assert_eq!(installed_header, image);
        assert_eq!(
            installed.pages, pages as u64,
            "every page but the header image"
        );
        assert!(
            read_pages(&vfs, "d.edb") == expected,
            "the file holds the batch whole"
        );
        let file = vfs.open(Path::new("d.edb"), OpenMode::Read).unwrap();
        let copies = header::read_copies(&*file).unwrap();
        assert_eq!(copies[0].as_ref().unwrap(), &image);
        assert_eq!(copies[1].as_ref().unwrap(), &image);
        assert!(
            !vfs.exists(&tmp_path(&path_for(Path::new("d.edb"))))
                .unwrap()
        );
    }

    #[test]
    fn an_installed_batch_is_never_installed_again() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let now = database(&vfs);
        let (image, _) = pending_batch(&vfs, &now);
        run_recover(&vfs, &now).unwrap().expect("installed");
        // The header now names the batch's sequence: history.
        assert_eq!(run_recover(&vfs, &image).unwrap(), None);
        // A header written on its own after it (a clean shutdown's state, a backup's
        // record): the batch must not bring the older header back.
        let mut later = image.clone();
        later.sequence += 1;
        later.state = crate::store::header::DbState::CleanShutdown;
        assert_eq!(run_recover(&vfs, &later).unwrap(), None);
        // Another database's batch, or one of another page size: never installed.
        let mut other = now.clone();
        other.db_signature.random ^= 1;
        assert_eq!(run_recover(&vfs, &other).unwrap(), None);
    }

    #[test]
    fn a_sealed_batch_cut_short_is_corruption_and_nothing_is_written() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let now = database(&vfs);
        pending_batch(&vfs, &now);
        let dw = path_for(Path::new("d.edb"));
        let file = vfs.open(&dw, OpenMode::ReadWrite).unwrap();
        let mut first = vec![0u8; PAGE];
        file.read_exact_at(&mut first, 0).unwrap();
        let batch = BatchHeader::decode(&first).unwrap();
        // One page short of the pages it names.
        file.set_len(u64::from(batch.pages) * PAGE as u64).unwrap();
        let before = read_pages(&vfs, "d.edb");
        let err = run_recover(&vfs, &now).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DatabaseCorrupted, "{err}");
        assert!(read_pages(&vfs, "d.edb") == before, "nothing written");
    }

    /// A file system that records every write, fsync and rename.
    #[derive(Debug)]
    struct Recording {
        inner: MemVfs,
        ops: Arc<Mutex<Vec<String>>>,
    }

    #[derive(Debug)]
    struct RecordingFile {
        inner: Box<dyn VfsFile>,
        path: PathBuf,
        ops: Arc<Mutex<Vec<String>>>,
    }

    impl Vfs for Recording {
        fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
            Ok(Box::new(RecordingFile {
                inner: self.inner.open(path, mode)?,
                path: path.to_path_buf(),
                ops: Arc::clone(&self.ops),
            }))
        }
        fn exists(&self, path: &Path) -> io::Result<bool> {
            self.inner.exists(path)
        }
        fn is_dir(&self, path: &Path) -> io::Result<bool> {
            self.inner.is_dir(path)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            self.inner.remove(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("rename {} {}", from.display(), to.display()));
            self.inner.rename(from, to)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            self.inner.list(dir)
        }
        fn create_dir(&self, path: &Path) -> io::Result<()> {
            self.inner.create_dir(path)
        }
        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            self.inner.remove_dir(path)
        }
        fn sync_dir(&self, path: &Path) -> io::Result<()> {
            self.inner.sync_dir(path)
        }
    }

    impl VfsFile for RecordingFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.inner.read_at(buf, offset)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("write {}", self.path.display()));
            self.inner.write_all_at(buf, offset)
        }
        fn sync(&self) -> io::Result<()> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("sync {}", self.path.display()));
            self.inner.sync()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
    }

    #[test]
    fn the_copy_of_a_pending_batch_is_durable_whole_before_it_replaces_the_batch() {
        let mem = MemVfs::new();
        let plain: Arc<dyn Vfs> = Arc::new(mem.clone());
        let now = database(&plain);
        pending_batch(&plain, &now);
        let ops = Arc::new(Mutex::new(Vec::new()));
        let vfs: Arc<dyn Vfs> = Arc::new(Recording {
            inner: mem,
            ops: Arc::clone(&ops),
        });
        run_recover(&vfs, &now).unwrap().expect("installed");
        let ops = ops.lock().unwrap().clone();
        let rename = ops
            .iter()
            .position(|op| op == "rename d.edb.jdw.tmp d.edb.jdw")
            .expect("the copy replaces the batch");
        let last_write = ops[..rename]
            .iter()
            .rposition(|op| op == "write d.edb.jdw.tmp")
            .expect("the copy is written");
        assert!(
            ops[last_write..rename]
                .iter()
                .any(|op| op == "sync d.edb.jdw.tmp"),
            "the copy's last write (its batch header) is fsynced before the rename: {ops:?}"
        );
        // And nothing goes into the database file before the copy is in place.
        assert!(
            !ops[..rename].iter().any(|op| op == "write d.edb"),
            "{ops:?}"
        );
    }

    #[test]
    fn remove_takes_the_doublewrite_file_away() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let now = database(&vfs);
        pending_batch(&vfs, &now);
        let dw = path_for(Path::new("d.edb"));
        assert!(vfs.exists(&dw).unwrap());
        remove(&*vfs, Path::new("d.edb")).unwrap();
        assert!(!vfs.exists(&dw).unwrap());
        // Nothing to remove is no error.
        remove(&*vfs, Path::new("d.edb")).unwrap();
    }
}
