//! The file-system seam: every file and directory operation the engine makes goes through a
//! [`Vfs`], so the simulator can run the engine over a disk it controls.
//!
//! Two implementations live in this crate: [`OsVfs`](crate::OsVfs) over the real file system
//! (with real fsync of files and directories) and [`MemVfs`], an in-memory file system whose
//! writes are durable at once, for tests and fuzzing. The simulator's `SimVfs` adds crashes
//! and faults on top of the same trait.
//!
//! Durability contract, which every caller in the engine follows: data written to a file is
//! durable only after [`VfsFile::sync`]; a create, rename or remove is durable only after
//! [`Vfs::sync_dir`] of the directory that holds the entry.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// How [`Vfs::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for reading only.
    Read,
    /// An existing file, for reading and writing.
    ReadWrite,
    /// A new file, for reading and writing; fails with `AlreadyExists` if it exists.
    CreateNew,
    /// A file for reading and writing, created empty if absent, emptied if present.
    CreateTruncate,
}

impl OpenMode {
    /// Whether the file may be written through this handle.
    pub fn writable(self) -> bool {
        !matches!(self, OpenMode::Read)
    }
}

/// A file system: files and directories by path.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Opens the file at `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames the file `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The names of the entries of directory `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates directory `path`; its parent must exist.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Creates `path` and every missing ancestor, syncing each parent whose entries changed.
    /// A file where a directory should be fails it with `NotADirectory`, as the OS fails a
    /// path that runs through a file.
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if path.as_os_str().is_empty() || self.is_dir(path)? {
            return Ok(());
        }
        let parent = parent_dir(path);
        self.create_dir_all(parent)?;
        match self.create_dir(path) {
            Ok(()) => {}
            // A directory made meanwhile (by another process) will do; a file will not.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                if !self.is_dir(path)? {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is a file, not a directory", path.display()),
                    ));
                }
            }
            Err(err) => return Err(err),
        }
        self.sync_dir(parent)
    }
}

/// An open file.
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write to this file durable.
    fn sync(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Gives back the disk space under `len` bytes at `offset` (clamped to the file's
    /// length, which does not change): they read as zeros after, durably once the file is
    /// synced. By default, zeros are written over them.
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        let end = offset.saturating_add(len).min(self.len()?);
        write_zeros(self, offset, end)
    }

    /// Asks that `len` bytes just written at `offset` start on their way to the device now,
    /// without waiting for them: a hint, so that a later [`sync`](VfsFile::sync) finds less
    /// left to write and stalls its caller less. It makes nothing durable, and may drop the
    /// range's pages that are not waiting to be written from the system's cache: hint only
    /// what was just written. By default, nothing.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Writes zeros over `[from, to)`, blank space that is to be overwritten a piece at a
    /// time later (a log generation's segments, each commit's with an fdatasync of its own).
    /// By default, a mebibyte per write; a system whose cache keeps a file in pieces the size
    /// of the writes that filled them writes it in the pieces it will be overwritten in.
    ///
    /// A wrapper that passes every other call through to the file it wraps passes this one
    /// too, or the fill loses its piece size; one that sees each write (fault injection) keeps
    /// the default, so that the fill's writes go through it.
    fn fill_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        write_zeros(self, from, to)
    }

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads exactly `buf.len()` bytes at `offset`; a short file gives `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("read beyond the end of the file at offset {offset}"),
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// Writes zeros over `[from, to)` of `file`, a mebibyte-aligned mebibyte at a time.
pub(crate) fn write_zeros<F: VfsFile + ?Sized>(file: &F, from: u64, to: u64) -> io::Result<()> {
    write_zeros_in(file, from, to, 1 << 20)
}

/// Writes zeros over `[from, to)` of `file` (nothing if `from >= to`), a write for each
/// `piece`-aligned piece of it: one that starts or ends inside a piece writes only its part.
pub(crate) fn write_zeros_in<F: VfsFile + ?Sized>(
    file: &F,
    from: u64,
    to: u64,
    piece: usize,
) -> io::Result<()> {
    assert!(piece > 0);
    let zeros = vec![0u8; (to.saturating_sub(from)).min(piece as u64) as usize];
    let piece = piece as u64;
    let mut at = from;
    while at < to {
        let n = (to - at).min(piece - at % piece) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The directory that holds `path` (`""` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// An in-memory file system whose every write is durable at once.
///
/// For tests, fuzzing and embedders that want a throw-away database. Open handles keep a
/// removed file's data alive, as on Unix. Cloning gives another handle to the same files.
/// Its errors are the kinds the OS gives: `NotFound` for a path through a missing directory,
/// `NotADirectory` for one through a file.
#[derive(Clone, Default)]
pub struct MemVfs {
    entries: Arc<Mutex<BTreeMap<PathBuf, MemEntry>>>,
}

#[derive(Clone)]
enum MemEntry {
    Dir,
    File(Arc<Mutex<Vec<u8>>>),
}

impl MemVfs {
    /// An empty file system.
    pub fn new() -> MemVfs {
        MemVfs::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<PathBuf, MemEntry>> {
        // A poisoned lock means a panic while holding it; the map itself is still whole.
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn check_parent(entries: &BTreeMap<PathBuf, MemEntry>, path: &Path) -> io::Result<()> {
        let parent = parent_dir(path);
        if parent.as_os_str().is_empty() || parent == Path::new("/") {
            return Ok(());
        }
        match entries.get(parent) {
            Some(MemEntry::Dir) => Ok(()),
            Some(MemEntry::File(_)) => Err(not_a_directory(parent)),
            None => Err(missing(entries, parent)),
        }
    }
}

/// The error for `path`, which is not there: `NotADirectory` if one of its ancestors is a
/// file, else `NotFound` — what the OS says of such a path (ENOTDIR, ENOENT).
fn missing(entries: &BTreeMap<PathBuf, MemEntry>, path: &Path) -> io::Error {
    match path
        .ancestors()
        .skip(1)
        .find(|a| matches!(entries.get(*a), Some(MemEntry::File(_))))
    {
        Some(file) => not_a_directory(file),
        None => not_found(path),
    }
}

fn not_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{} is not a directory", path.display()),
    )
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl fmt::Debug for MemVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemVfs")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl Vfs for MemVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut entries = self.lock();
        let data = match (entries.get(path), mode) {
            (Some(MemEntry::Dir), _) => {
                return Err(io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )));
            }
            (Some(MemEntry::File(_)), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            (Some(MemEntry::File(data)), OpenMode::CreateTruncate) => {
                lock_data(data).clear();
                Arc::clone(data)
            }
            (Some(MemEntry::File(data)), _) => Arc::clone(data),
            (None, OpenMode::Read | OpenMode::ReadWrite) => return Err(missing(&entries, path)),
            (None, OpenMode::CreateNew | OpenMode::CreateTruncate) => {
                MemVfs::check_parent(&entries, path)?;
                let data = Arc::new(Mutex::new(Vec::new()));
                entries.insert(path.to_path_buf(), MemEntry::File(Arc::clone(&data)));
                data
            }
        };
        Ok(Box::new(MemFile {
            data,
            writable: mode.writable(),
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().contains_key(path))
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(matches!(self.lock().get(path), Some(MemEntry::Dir)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut entries = self.lock();
        match entries.get(path) {
            Some(MemEntry::File(_)) => {
                entries.remove(path);
                Ok(())
            }
            Some(MemEntry::Dir) => Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            ))),
            None => Err(missing(&entries, path)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut entries = self.lock();
        MemVfs::check_parent(&entries, to)?;
        match entries.get(from) {
            Some(MemEntry::File(_)) => {}
            Some(MemEntry::Dir) => {
                return Err(io::Error::other("renaming directories is not supported"));
            }
            None => return Err(missing(&entries, from)),
        }
        if let Some(MemEntry::Dir) = entries.get(to) {
            return Err(io::Error::other(format!("{} is a directory", to.display())));
        }
        let entry = entries.remove(from).ok_or_else(|| not_found(from))?;
        entries.insert(to.to_path_buf(), entry);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let entries = self.lock();
        if !dir.as_os_str().is_empty() && !matches!(entries.get(dir), Some(MemEntry::Dir)) {
            return Err(missing(&entries, dir));
        }
        Ok(entries
            .keys()
            .filter(|path| parent_dir(path) == dir)
            .filter_map(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .collect())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut entries = self.lock();
        if entries.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        MemVfs::check_parent(&entries, path)?;
        entries.insert(path.to_path_buf(), MemEntry::Dir);
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut entries = self.lock();
        if !matches!(entries.get(path), Some(MemEntry::Dir)) {
            return Err(missing(&entries, path));
        }
        if entries.keys().any(|child| parent_dir(child) == path) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", path.display()),
            ));
        }
        entries.remove(path);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let entries = self.lock();
        if path.as_os_str().is_empty() || matches!(entries.get(path), Some(MemEntry::Dir)) {
            Ok(())
        } else {
            Err(missing(&entries, path))
        }
    }
}

#[derive(Debug)]
struct MemFile {
    data: Arc<Mutex<Vec<u8>>>,
    writable: bool,
}

fn lock_data(data: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    data.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl VfsFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = lock_data(&self.data);
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ));
        }
        let mut data = lock_data(&self.data);
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        let end = start + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        lock_data(&self.data).resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock_data(&self.data).len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that records the offset and length of each write.
    #[derive(Debug, Default)]
    struct Writes(Mutex<Vec<(u64, usize)>>);

    impl VfsFile for Writes {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Ok(0)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            assert!(buf.iter().all(|&b| b == 0), "zeros");
            self.0.lock().unwrap().push((offset, buf.len()));
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn zeros_in_pieces_are_one_write_per_aligned_piece_covering_the_range_exactly() {
        for (from, to, piece, expected) in [
            (0, 12288, 4096, vec![(0, 4096), (4096, 4096), (8192, 4096)]),
            // Unaligned ends write only their part of the piece they fall in.
            (100, 8200, 4096, vec![(100, 3996), (4096, 4096), (8192, 8)]),
            (5000, 6000, 4096, vec![(5000, 1000)]),
            (4096, 4096, 4096, vec![]),
            (9000, 10, 4096, vec![]),
        ] {
            let file = Writes::default();
            write_zeros_in(&file, from, to, piece).unwrap();
            assert_eq!(
                *file.0.lock().unwrap(),
                expected,
                "[{from}, {to}) by {piece}"
            );
        }
        // The default fill: a mebibyte a write.
        let file = Writes::default();
        file.fill_zeros(0, (3 << 20) / 2).unwrap();
        assert_eq!(*file.0.lock().unwrap(), [(0, 1 << 20), (1 << 20, 1 << 19)]);
    }

    #[test]
    fn discarding_in_memory_writes_zeros_within_the_file() {
        let vfs = MemVfs::new();
        let file = vfs.open(Path::new("f"), OpenMode::CreateNew).unwrap();
        file.write_all_at(&[7u8; 100], 0).unwrap();
        file.discard(10, 1000).unwrap();
        assert_eq!(file.len().unwrap(), 100, "never past the end");
        let mut back = [1u8; 100];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back[..10], &[7u8; 10]);
        assert!(back[10..].iter().all(|&b| b == 0));
    }

    /// A path through a file is `NotADirectory` and a path through a missing directory
    /// `NotFound`, as the OS says (`OsVfs`'s test of the same paths is in `os.rs`).
    #[test]
    fn mem_vfs_paths_through_a_file_are_not_a_directory() {
        let vfs = MemVfs::new();
        vfs.create_dir(Path::new("d")).unwrap();
        drop(vfs.open(Path::new("d/f"), OpenMode::CreateNew).unwrap());
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        for path in ["d/f/x", "d/f/x/y"] {
            let path = Path::new(path);
            let open = |mode| vfs.open(path, mode).map(drop);
            assert_eq!(
                kind(open(OpenMode::CreateNew)),
                io::ErrorKind::NotADirectory
            );
            assert_eq!(kind(open(OpenMode::Read)), io::ErrorKind::NotADirectory);
            assert_eq!(kind(vfs.create_dir(path)), io::ErrorKind::NotADirectory);
            assert_eq!(kind(vfs.create_dir_all(path)), io::ErrorKind::NotADirectory);
            assert_eq!(kind(vfs.list(path).map(drop)), io::ErrorKind::NotADirectory);
            assert_eq!(kind(vfs.remove(path)), io::ErrorKind::NotADirectory);
            assert_eq!(
                kind(vfs.rename(Path::new("d/f"), path)),
                io::ErrorKind::NotADirectory
            );
        }
        // The file itself where a directory is to be made.
        assert_eq!(
            kind(vfs.create_dir_all(Path::new("d/f"))),
            io::ErrorKind::NotADirectory
        );
        // Through a missing directory: not found, as before.
        for path in ["d/m/x", "m/x/y"] {
            let path = Path::new(path);
            let open = |mode| vfs.open(path, mode).map(drop);
            assert_eq!(kind(open(OpenMode::CreateNew)), io::ErrorKind::NotFound);
            assert_eq!(kind(open(OpenMode::Read)), io::ErrorKind::NotFound);
            assert_eq!(kind(vfs.create_dir(path)), io::ErrorKind::NotFound);
        }
        assert!(
            vfs.exists(Path::new("d/f")).unwrap(),
            "the file is untouched"
        );
    }

    #[test]
    fn mem_vfs_files_and_dirs() {
        let vfs = MemVfs::new();
        let dir = Path::new("inst");
        assert_eq!(
            vfs.open(&dir.join("a"), OpenMode::CreateNew)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        vfs.create_dir_all(&dir.join("sub")).unwrap();
        assert!(vfs.is_dir(dir).unwrap());
        let file = vfs.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        file.write_all_at(b"hello", 3).unwrap();
        assert_eq!(file.len().unwrap(), 8);
        let mut buf = [0xffu8; 8];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0hello");
        let mut past = [0u8; 4];
        assert_eq!(
            file.read_exact_at(&mut past, 6).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            vfs.list(dir).unwrap(),
            vec!["a".to_string(), "sub".to_string()]
        );
        vfs.rename(&dir.join("a"), &dir.join("b")).unwrap();
        assert!(!vfs.exists(&dir.join("a")).unwrap());
        let reader = vfs.open(&dir.join("b"), OpenMode::Read).unwrap();
        assert_eq!(
            reader.write_all_at(b"x", 0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(
            vfs.remove_dir(dir).is_err(),
            "a directory with entries is not removed"
        );
        vfs.remove(&dir.join("b")).unwrap();
        // The open handle keeps the data of the removed file, as on Unix.
        assert_eq!(file.len().unwrap(), 8);
        vfs.remove_dir(&dir.join("sub")).unwrap();
        vfs.remove_dir(dir).unwrap();
        assert!(!vfs.exists(dir).unwrap());
    }
}
