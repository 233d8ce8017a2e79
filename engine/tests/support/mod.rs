//! Test support shared by the integration tests: an in-memory environment holding a given file
//! image, and a `Vfs` wrapper that lets a test watch or fail every write and fsync.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the support module"
)]

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetdb::{Env, ManualClock, MemVfs, OpenMode, SeededEntropy, Vfs, VfsFile};

/// An in-memory environment whose file `d.edb` holds `bytes`.
pub fn env_holding(bytes: &[u8]) -> Env {
    let vfs = MemVfs::new();
    vfs.open(Path::new("d.edb"), OpenMode::CreateNew)
        .unwrap()
        .write_all_at(bytes, 0)
        .unwrap();
    env_over(vfs)
}

/// A deterministic environment over `vfs`.
pub fn env_over(vfs: impl Vfs + 'static) -> Env {
    Env::new(
        Arc::new(vfs),
        Arc::new(ManualClock::new(0)),
        Arc::new(SeededEntropy::new(1)),
    )
}

/// What a test does at each write and fsync of any file: watch it, or fail it.
pub trait Hook: Send + Sync + Debug + 'static {
    /// Called before a write of `len` bytes at `offset`; an error fails the write.
    fn write(&self, offset: u64, len: usize) -> io::Result<()>;
    /// Called before an fsync; an error fails it.
    fn sync(&self) -> io::Result<()>;
    /// Called before a write to the file at `path`; by default, [`Hook::write`].
    fn write_to(&self, path: &Path, offset: u64, len: usize) -> io::Result<()> {
        let _ = path;
        self.write(offset, len)
    }
    /// Called before a read of the file at `path`; an error fails it.
    fn read_of(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
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
}

/// A `MemVfs` whose files call a [`Hook`] at every write and fsync.
#[derive(Debug)]
pub struct HookedVfs<H: Hook> {
    pub inner: MemVfs,
    pub hook: Arc<H>,
}

#[derive(Debug)]
struct HookedFile<H: Hook> {
    inner: Box<dyn VfsFile>,
    hook: Arc<H>,
    path: PathBuf,
}

impl<H: Hook> Vfs for HookedVfs<H> {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
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
        self.inner.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
}

impl<H: Hook> VfsFile for HookedFile<H> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.hook.read_of(&self.path)?;
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.hook.write_to(&self.path, offset, buf.len())?;
        self.inner.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.hook.sync_of(&self.path)?;
        self.inner.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
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
    fn write(&self, _: u64, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
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
    HookedVfs {
        inner: MemVfs::new(),
        hook: Arc::new(FailFiles::default()),
    }
}
