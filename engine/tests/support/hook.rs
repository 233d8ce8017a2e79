//! A `Vfs` wrapper whose every operation first goes to a [`Hook`] the test sets, to watch it,
//! fail it, or lose a write; and two hooks that serve many tests: [`FailFiles`] and [`Script`].

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetdb::{MemVfs, OpenMode, Vfs, VfsFile};

/// What a test does at each operation on any file: watch it, fail it, or lose a write. Every
/// method lets the operation through by default.
pub trait Hook: Send + Sync + Debug + 'static {
    /// Called before a write of `len` bytes at `offset`; an error fails the write.
    fn write(&self, offset: u64, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Called before an fsync; an error fails it.
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    /// Called before a write to the file at `path`; by default, [`Hook::write`].
    fn write_to(&self, path: &Path, offset: u64, len: usize) -> io::Result<()> {
        let _ = path;
        self.write(offset, len)
    }
    /// Called for a write that [`Hook::write_to`] let through: `true` loses it (the write is
    /// acknowledged but never made). By default, `false`.
    fn loses_write(&self, path: &Path, offset: u64, len: usize) -> bool {
        let _ = (path, offset, len);
        false
    }
    /// Called before a read of the file at `path`; an error fails it.
    fn read_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
    /// Called before a read of `len` bytes at `offset` of the file at `path`; by default,
    /// [`Hook::read_of`].
    fn read_from(&self, path: &Path, offset: u64, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        self.read_of(path)
    }
    /// Called before a rename; an error fails it.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Ok(())
    }
    /// Called before an fsync of the file at `path`; by default, [`Hook::sync`].
    fn sync_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        self.sync()
    }
    /// Called before an fsync of directory `path`; an error fails it. By default, nothing.
    fn sync_dir_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
    /// Called before a directory is created; an error fails it. By default, nothing.
    fn create_dir_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
    /// Called before a file is opened with a mode that may create it; an error fails the
    /// open. By default, nothing.
    fn create_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
    /// Called before a file is removed; an error fails the removal. By default, nothing.
    fn remove_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
    /// Called before a file's length is set; an error fails it. By default, nothing.
    fn set_len_of(&self, path: &Path, len: u64) -> io::Result<()> {
        let _ = (path, len);
        Ok(())
    }
}

/// A `MemVfs` whose files call a [`Hook`] at every operation.
#[derive(Debug)]
pub struct HookedVfs<H: Hook> {
    /// The file system beneath, which sees nothing of the hook.
    pub inner: MemVfs,
    /// What the test does at each operation.
    pub hook: Arc<H>,
}

impl<H: Hook> HookedVfs<H> {
    /// A fresh, empty file system whose operations go through `hook`.
    pub fn new(hook: Arc<H>) -> HookedVfs<H> {
        HookedVfs {
            inner: MemVfs::new(),
            hook,
        }
    }
}

#[derive(Debug)]
struct HookedFile<H: Hook> {
    inner: Box<dyn VfsFile>,
    hook: Arc<H>,
    path: PathBuf,
}

impl<H: Hook> Vfs for HookedVfs<H> {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        if matches!(mode, OpenMode::CreateNew | OpenMode::CreateTruncate) {
            self.hook.create_of(path)?;
        }
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(HookedFile {
            inner,
            hook: Arc::clone(&self.hook),
            path: path.to_path_buf(),
        }))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_dir(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.hook.remove_of(path)?;
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.hook.rename(from, to)?;
        self.inner.rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.hook.create_dir_of(path)?;
        self.inner.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.hook.sync_dir_of(path)?;
        self.inner.sync_dir(path)
    }
}

impl<H: Hook> VfsFile for HookedFile<H> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.hook.read_from(&self.path, offset, buf.len())?;
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.hook.write_to(&self.path, offset, buf.len())?;
        if self.hook.loses_write(&self.path, offset, buf.len()) {
            return Ok(());
        }
        self.inner.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.hook.sync_of(&self.path)?;
        self.inner.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.hook.set_len_of(&self.path, len)?;
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl<H: Hook> Clone for HookedVfs<H> {
    fn clone(&self) -> Self {
        HookedVfs {
            inner: self.inner.clone(),
            hook: Arc::clone(&self.hook),
        }
    }
}

/// A hook that fails every read of one file, or every write to one, while set.
#[derive(Debug, Default)]
pub struct FailFiles {
    pub fail_reads_of: std::sync::Mutex<Option<PathBuf>>,
    pub fail_writes_to: std::sync::Mutex<Option<PathBuf>>,
}

impl Hook for FailFiles {
    fn write_to(&self, path: &Path, _: u64, _: usize) -> io::Result<()> {
        if self.fail_writes_to.lock().unwrap().as_deref() == Some(path) {
            return Err(io::Error::other("injected EIO on write"));
        }
        Ok(())
    }
    fn read_of(&self, path: &Path) -> io::Result<()> {
        if self.fail_reads_of.lock().unwrap().as_deref() == Some(path) {
            return Err(io::Error::other("injected EIO on read"));
        }
        Ok(())
    }
}

/// A `MemVfs` whose reads of one file or writes to another can be failed at will.
pub fn failing_vfs() -> HookedVfs<FailFiles> {
    HookedVfs::new(Arc::new(FailFiles::default()))
}

/// One file-system operation a [`Script`] sees, before it is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A write to a file.
    Write(PathBuf),
    /// An fsync of a file.
    Sync(PathBuf),
    /// A read of a file.
    Read(PathBuf),
    /// A rename (from, to).
    Rename(PathBuf, PathBuf),
    /// An fsync of a directory.
    SyncDir(PathBuf),
    /// The creation of a directory.
    CreateDir(PathBuf),
    /// An open that may create the file.
    Create(PathBuf),
    /// A change of a file's length.
    SetLen(PathBuf),
}

impl Op {
    /// The path the operation acts on (a rename's source).
    pub fn path(&self) -> &Path {
        match self {
            Op::Rename(p, _)
            | Op::Write(p)
            | Op::Sync(p)
            | Op::Read(p)
            | Op::SyncDir(p)
            | Op::CreateDir(p)
            | Op::Create(p)
            | Op::SetLen(p) => p,
        }
    }

    /// Whether the operation touches `dir` or anything under it (either name of a rename).
    pub fn under(&self, dir: &Path) -> bool {
        match self {
            Op::Rename(from, to) => from.starts_with(dir) || to.starts_with(dir),
            _ => self.path().starts_with(dir),
        }
    }

    /// The operation's kind, without its paths.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Write(_) => "write",
            Op::Sync(_) => "fsync",
            Op::Read(_) => "read",
            Op::Rename(..) => "rename",
            Op::SyncDir(_) => "fsync-dir",
            Op::CreateDir(_) => "mkdir",
            Op::Create(_) => "create",
            Op::SetLen(_) => "set-len",
        }
    }
}

/// What a [`Script`] runs at each operation: `Err` fails the operation.
pub type ScriptFn = Box<dyn FnMut(&Op) -> io::Result<()> + Send>;

/// A hook that hands every operation to a closure the test sets (and may replace or clear at
/// any time). The closure may call back into the engine: while it runs, the operations those
/// calls make pass through unseen.
#[derive(Default)]
pub struct Script {
    f: std::sync::Mutex<Option<ScriptFn>>,
}

impl Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

impl Script {
    /// Runs `f` at every operation from now on.
    pub fn set(&self, f: impl FnMut(&Op) -> io::Result<()> + Send + 'static) {
        *self.f.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// Lets every operation through unseen.
    pub fn clear(&self) {
        self.f.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn run(&self, op: Op) -> io::Result<()> {
        // Taken out while it runs, so that a call back into the engine from inside it neither
        // deadlocks nor sees its own operations.
        let taken = self.f.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut f) = taken else {
            return Ok(());
        };
        let result = f(&op);
        let mut slot = self.f.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(f);
        }
        result
    }
}

impl Hook for Script {
    fn write_to(&self, path: &Path, _: u64, _: usize) -> io::Result<()> {
        self.run(Op::Write(path.to_path_buf()))
    }
    fn read_of(&self, path: &Path) -> io::Result<()> {
        self.run(Op::Read(path.to_path_buf()))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(Op::Rename(from.to_path_buf(), to.to_path_buf()))
    }
    fn sync_of(&self, path: &Path) -> io::Result<()> {
        self.run(Op::Sync(path.to_path_buf()))
    }
    fn sync_dir_of(&self, path: &Path) -> io::Result<()> {
        self.run(Op::SyncDir(path.to_path_buf()))
    }
    fn create_dir_of(&self, path: &Path) -> io::Result<()> {
        self.run(Op::CreateDir(path.to_path_buf()))
    }
    fn create_of(&self, path: &Path) -> io::Result<()> {
        self.run(Op::Create(path.to_path_buf()))
    }
    fn set_len_of(&self, path: &Path, _: u64) -> io::Result<()> {
        self.run(Op::SetLen(path.to_path_buf()))
    }
}

/// A `MemVfs` whose every operation goes through a [`Script`], and the `MemVfs` beneath it
/// (which shares its files and sees nothing of the script).
pub fn scripted_vfs() -> (HookedVfs<Script>, MemVfs) {
    let vfs = HookedVfs::new(Arc::new(Script::default()));
    let inner = vfs.inner.clone();
    (vfs, inner)
}
