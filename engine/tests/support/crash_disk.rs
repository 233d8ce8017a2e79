//! A disk that loses power, for the crash tests. It keeps each file's content as of its last
//! fsync and the writes made since, and each directory's entries as of its last fsync and the
//! creates, renames and removes made since. It kills the process at the Nth write, fsync,
//! directory fsync, create, rename or remove (every later call fails), then loses power:
//! each unsynced write is applied, dropped or torn sector by sector, and each directory's
//! unsynced operations are kept as a random prefix (an ordered journal) or a random subset.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jetdb::{MemVfs, OpenMode, Vfs, VfsFile, parent_dir};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const SECTOR: usize = 512;

#[derive(Debug, Clone)]
enum DirOp {
    Create(PathBuf, u64),
    Rename(PathBuf, PathBuf, u64),
    Remove(PathBuf, u64),
}

#[derive(Debug, Clone)]
enum W {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Truncate,
}

#[derive(Debug, Default)]
struct Disk {
    ns: BTreeMap<PathBuf, u64>,
    durable_ns: BTreeMap<PathBuf, u64>,
    dir_ops: BTreeMap<PathBuf, Vec<DirOp>>,
    durable: BTreeMap<u64, Vec<u8>>,
    pending: BTreeMap<u64, Vec<W>>,
    next_ino: u64,
    fuel: u64,
    used: u64,
    dead: bool,
    /// The directory operations and directory fsyncs, in order, for messages.
    log: Vec<String>,
}

fn dead() -> io::Error {
    io::Error::other("the process has crashed")
}

/// Every call fails once the process has died.
fn alive(disk: &Mutex<Disk>) -> io::Result<()> {
    match disk.lock().unwrap().dead {
        true => Err(dead()),
        false => Ok(()),
    }
}

impl Disk {
    fn spend(&mut self) -> io::Result<()> {
        if self.dead || self.fuel == 0 {
            self.dead = true;
            return Err(dead());
        }
        self.fuel -= 1;
        self.used += 1;
        Ok(())
    }
    fn push(&mut self, dir: &Path, op: DirOp) {
        self.log.push(format!("{op:?}"));
        self.dir_ops.entry(dir.to_path_buf()).or_default().push(op);
    }
}

fn apply(ns: &mut BTreeMap<PathBuf, u64>, op: &DirOp) {
    match op {
        DirOp::Create(p, ino) => {
            ns.insert(p.clone(), *ino);
        }
        DirOp::Rename(from, to, ino) => {
            if ns.get(from) == Some(ino) {
                ns.remove(from);
                ns.insert(to.clone(), *ino);
            }
        }
        DirOp::Remove(p, ino) => {
            if ns.get(p) == Some(ino) {
                ns.remove(p);
            }
        }
    }
}

/// A disk that loses power: see the module's documentation.
#[derive(Debug, Clone)]
pub struct CrashVfs {
    inner: MemVfs,
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug)]
struct CFile {
    inner: Box<dyn VfsFile>,
    ino: u64,
    disk: Arc<Mutex<Disk>>,
}

impl Vfs for CrashVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut disk = self.disk.lock().unwrap();
        if disk.dead {
            return Err(dead());
        }
        let creating = matches!(mode, OpenMode::CreateNew | OpenMode::CreateTruncate);
        if creating {
            disk.spend()?;
        }
        let inner = self.inner.open(path, mode)?;
        let ino = match disk.ns.get(path) {
            Some(&ino) => {
                if mode == OpenMode::CreateTruncate {
                    disk.pending.entry(ino).or_default().push(W::Truncate);
                }
                ino
            }
            None => {
                assert!(creating);
                disk.next_ino += 1;
                let ino = disk.next_ino;
                disk.ns.insert(path.to_path_buf(), ino);
                disk.push(parent_dir(path), DirOp::Create(path.to_path_buf(), ino));
                ino
            }
        };
        Ok(Box::new(CFile {
            inner,
            ino,
            disk: Arc::clone(&self.disk),
        }))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        alive(&self.disk)?;
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        alive(&self.disk)?;
        self.inner.is_dir(path)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.remove(path)?;
        let ino = disk.ns.remove(path).expect("tracked");
        disk.push(parent_dir(path), DirOp::Remove(path.to_path_buf(), ino));
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.rename(from, to)?;
        let ino = disk.ns.remove(from).expect("tracked");
        disk.ns.insert(to.to_path_buf(), ino);
        assert_eq!(parent_dir(from), parent_dir(to));
        disk.push(
            parent_dir(from),
            DirOp::Rename(from.to_path_buf(), to.to_path_buf(), ino),
        );
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        alive(&self.disk)?;
        self.inner.list(dir)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        alive(&self.disk)?;
        self.inner.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        disk.log.push(format!("sync_dir {}", dir.display()));
        let ops = disk.dir_ops.remove(dir).unwrap_or_default();
        for op in &ops {
            apply(&mut disk.durable_ns, op);
        }
        Ok(())
    }
}

impl VfsFile for CFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        alive(&self.disk)?;
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.write_all_at(buf, offset)?;
        disk.pending
            .entry(self.ino)
            .or_default()
            .push(W::Write(offset, buf.to_vec()));
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        let len = self.inner.len()? as usize;
        let mut bytes = vec![0u8; len];
        self.inner.read_exact_at(&mut bytes, 0)?;
        disk.durable.insert(self.ino, bytes);
        disk.pending.remove(&self.ino);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.set_len(len)?;
        disk.pending
            .entry(self.ino)
            .or_default()
            .push(W::SetLen(len));
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl CrashVfs {
    /// A disk holding the directory `inst`, whose process dies at its `fuel`-th write, fsync,
    /// directory fsync, create, rename or remove.
    pub fn new(fuel: u64) -> CrashVfs {
        let inner = MemVfs::new();
        inner.create_dir(Path::new("inst")).unwrap();
        CrashVfs {
            inner,
            disk: Arc::new(Mutex::new(Disk {
                fuel,
                ..Disk::default()
            })),
        }
    }

    /// A disk holding every file of `dir` on `vfs` (at the same paths), durably, whose process
    /// has all the fuel it wants.
    pub fn holding(vfs: &MemVfs, dir: &Path) -> CrashVfs {
        let disk = CrashVfs::new(u64::MAX);
        for (rel, bytes) in crate::support::tree(vfs, dir) {
            let Some(bytes) = bytes else { continue };
            let path = dir.join(rel);
            let parent = parent_dir(&path);
            disk.create_dir_all(parent).unwrap();
            let file = disk.open(&path, OpenMode::CreateNew).unwrap();
            file.write_all_at(&bytes, 0).unwrap();
            file.sync().unwrap();
            disk.sync_dir(parent).unwrap();
        }
        disk
    }

    /// Gives the process `more` operations from now before it dies.
    pub fn refuel(&self, more: u64) {
        self.disk.lock().unwrap().fuel = more;
    }

    /// The process restarts after it died: the page cache (every write and directory
    /// operation not yet durable) survives, as after kill -9; it has all the fuel it wants.
    pub fn revive(&self) {
        let mut disk = self.disk.lock().unwrap();
        disk.dead = false;
        disk.fuel = u64::MAX;
    }

    /// How many operations spent fuel so far.
    pub fn used(&self) -> u64 {
        self.disk.lock().unwrap().used
    }

    /// Whether the process has died (its fuel ran out).
    pub fn dead(&self) -> bool {
        self.disk.lock().unwrap().dead
    }

    /// The directory operations and directory fsyncs so far, in order.
    pub fn dir_log(&self) -> Vec<String> {
        self.disk.lock().unwrap().log.clone()
    }

    /// What survives a power loss now, and the directory operations it undid. `clean` keeps
    /// every write (a process crash only).
    pub fn power_loss(&self, rng: &mut ChaCha8Rng, clean: bool) -> (MemVfs, Vec<String>) {
        let disk = self.disk.lock().unwrap();
        let mut notes = Vec::new();
        let mut ns = disk.durable_ns.clone();
        let subset = rng.random_bool(0.5);
        for ops in disk.dir_ops.values() {
            let keep = rng.random_range(0..=ops.len());
            for (i, op) in ops.iter().enumerate() {
                let applied = clean
                    || if subset {
                        rng.random_bool(0.5)
                    } else {
                        i < keep
                    };
                if applied {
                    apply(&mut ns, op);
                } else {
                    notes.push(format!("undone: {op:?}"));
                }
            }
        }
        let out = MemVfs::new();
        out.create_dir(Path::new("inst")).unwrap();
        for (path, ino) in &ns {
            let mut bytes = disk.durable.get(ino).cloned().unwrap_or_default();
            for w in disk.pending.get(ino).into_iter().flatten() {
                match w {
                    W::Truncate => {
                        if clean || rng.random_bool(0.5) {
                            bytes.clear();
                        }
                    }
                    W::SetLen(len) => {
                        if clean || rng.random_bool(0.5) {
                            bytes.resize(*len as usize, 0);
                        }
                    }
                    W::Write(offset, data) => {
                        let choice = if clean { 0 } else { rng.random_range(0..3) };
                        for (i, sector) in data.chunks(SECTOR).enumerate() {
                            let a = match choice {
                                0 => true,
                                1 => false,
                                _ => rng.random_bool(0.5),
                            };
                            if a {
                                let at = *offset as usize + i * SECTOR;
                                if bytes.len() < at + sector.len() {
                                    bytes.resize(at + sector.len(), 0);
                                }
                                bytes[at..at + sector.len()].copy_from_slice(sector);
                            }
                        }
                    }
                }
            }
            let dir = parent_dir(path);
            if !dir.as_os_str().is_empty() {
                out.create_dir_all(dir).unwrap();
            }
            let f = out.open(path, OpenMode::CreateNew).unwrap();
            f.write_all_at(&bytes, 0).unwrap();
        }
        (out, notes)
    }
}

// --- the workload ---
