//! Crashes at every kind of I/O point. A `Vfs` keeps each file's content as of its last fsync
//! and the writes made since, and each directory's entries as of its last fsync and the
//! creates, renames and removes made since. It kills the process at the Nth write or fsync
//! (every later call fails), then loses power: each unsynced write is applied, dropped or torn
//! sector by sector, and each directory's unsynced operations are kept as a random prefix (an
//! ordered journal) or a random subset. Recovery must then leave a sound database holding a
//! prefix of the commits that includes every commit acknowledged durable — across log rolls,
//! circular deletion, database and checkpoint creation, and several init/term cycles.
//!
//! Planted bugs it catches: a log flush without its fsync, a page written before its log is
//! durable, redo that trusts any valid page, a roll without its directory fsync, a checkpoint
//! that does not force whole page images. Its saved failure is a term after a fatal error
//! that answered `Ok`, as if the shutdown had been clean.
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jetdb::{
    CommitMode, Env, Instance, InstanceParams, MemVfs, OpenMode, Vfs, VfsFile, parent_dir,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod support;

use support::{PAGE, base_params, env_with};

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
    dead: bool,
    log: Vec<String>,
}

fn dead() -> io::Error {
    io::Error::other("the process has crashed")
}

impl Disk {
    fn spend(&mut self) -> io::Result<()> {
        if self.dead || self.fuel == 0 {
            self.dead = true;
            return Err(dead());
        }
        self.fuel -= 1;
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

#[derive(Debug, Clone)]
pub struct DirCrashVfs {
    inner: MemVfs,
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug)]
struct DFile {
    inner: Box<dyn VfsFile>,
    ino: u64,
    disk: Arc<Mutex<Disk>>,
}

impl Vfs for DirCrashVfs {
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
        Ok(Box::new(DFile {
            inner,
            ino,
            disk: Arc::clone(&self.disk),
        }))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
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
        self.inner.list(dir)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
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

impl VfsFile for DFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.disk.lock().unwrap().dead {
            return Err(dead());
        }
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

impl DirCrashVfs {
    pub fn new(fuel: u64) -> DirCrashVfs {
        let inner = MemVfs::new();
        inner.create_dir(Path::new("inst")).unwrap();
        DirCrashVfs {
            inner,
            disk: Arc::new(Mutex::new(Disk {
                fuel,
                ..Disk::default()
            })),
        }
    }

    pub fn power_loss(&self, rng: &mut ChaCha8Rng) -> (MemVfs, Vec<String>) {
        let disk = self.disk.lock().unwrap();
        let mut ns = disk.durable_ns.clone();
        let subset = rng.random_bool(0.5);
        let mut notes = Vec::new();
        for ops in disk.dir_ops.values() {
            let keep = rng.random_range(0..=ops.len());
            for (i, op) in ops.iter().enumerate() {
                let applied = if subset {
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
                        if rng.random_bool(0.5) {
                            bytes.clear();
                        }
                    }
                    W::SetLen(len) => {
                        if rng.random_bool(0.5) {
                            bytes.resize(*len as usize, 0);
                        }
                    }
                    W::Write(offset, data) => {
                        let choice = rng.random_range(0..3);
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
            let f = out.open(path, OpenMode::CreateNew).unwrap();
            f.write_all_at(&bytes, 0).unwrap();
        }
        (out, notes)
    }
}

/// [`base_params`] (the directory is not created: the disk has it) with pages of `PAGE_SIZE`
/// bytes if that is set, a cache of 64 of them, and a checkpoint depth of 100 KiB.
fn params(circular: bool) -> InstanceParams {
    let page_size = std::env::var("PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PAGE);
    InstanceParams {
        page_size,
        cache_size: 64 * page_size,
        checkpoint_depth: 100 * 1024,
        circular_logging: circular,
        ..base_params("inst")
    }
}

/// An environment over `vfs` whose entropy and clock both start from `seed`.
fn env(vfs: impl Vfs + 'static, seed: u64) -> Env {
    env_with(vfs, seed, seed)
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn run(seed: u64, fuel: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vfs = DirCrashVfs::new(fuel);
    let circular = rng.random_bool(0.5);
    let mut history: Vec<State> = vec![State::new()];
    let mut durable = 0usize;
    let mut table_durable = false;
    let mut maybe: Option<State> = None;
    let big = rng.random_bool(0.5);
    let (ops_max, lazy) = if big { (80, 0.9) } else { (12, 0.5) };
    // A second init/term cycle exercises recovery-time directory work too.
    let cycles = rng.random_range(1..=3);
    'work: for cycle in 0..cycles {
        let instance = Instance::new(env(vfs.clone(), 1 + cycle), params(circular));
        if instance.init().is_err() {
            break 'work;
        }
        let Ok(mut s) = instance.begin_session() else {
            break 'work;
        };
        let t = if cycle == 0 {
            let Ok(t) = s.create_table("t") else {
                break 'work;
            };
            table_durable = true;
            t
        } else {
            s.open_table("t").unwrap()
        };
        for _ in 0..rng.random_range(20..120) {
            let mut state = history.last().unwrap().clone();
            if s.begin_transaction().is_err() {
                break 'work;
            }
            for _ in 0..rng.random_range(1..ops_max) {
                let k = format!("k{:04}", rng.random_range(0..1000)).into_bytes();
                if rng.random_bool(0.8) {
                    let len = if rng.random_bool(0.1) {
                        5000
                    } else {
                        rng.random_range(1..900)
                    };
                    let v = vec![rng.random::<u8>(); len];
                    if s.put(t, &k, &v).is_err() {
                        break 'work;
                    }
                    state.insert(k, v);
                } else {
                    if s.delete(t, &k).is_err() {
                        break 'work;
                    }
                    state.remove(&k);
                }
            }
            let mode = if rng.random_bool(lazy) {
                CommitMode::Lazy
            } else {
                CommitMode::Durable
            };
            if s.commit_transaction(mode).is_err() {
                maybe = Some(state);
                break 'work;
            }
            history.push(state);
            if mode == CommitMode::Durable {
                durable = history.len() - 1;
            }
            if rng.random_bool(0.05) && instance.checkpoint().is_err() {
                break 'work;
            }
        }
        drop(s);
        if instance.term().is_ok() {
            durable = history.len() - 1;
        } else {
            break 'work;
        }
    }
    if let Some(state) = maybe {
        history.push(state);
    }
    let (after, notes) = vfs.power_loss(&mut rng);
    let files = after.list(Path::new("inst")).unwrap();
    let ctx = format!("seed {seed} fuel {fuel} circular {circular}: files {files:?}, {notes:?}");
    let instance = Instance::new(env(after, 9), params(circular));
    if let Err(err) = instance.init() {
        panic!("{ctx}: recovery failed: {err}");
    }
    let mut s = instance.begin_session().unwrap();
    let got: State = match s.open_table("t") {
        Ok(t) => s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<State>>()
            .unwrap_or_else(|err| panic!("{ctx}: reading after recovery: {err}")),
        Err(_) => {
            assert!(!table_durable, "{ctx}: the table is gone");
            State::new()
        }
    };
    let n = (durable..history.len()).find(|&n| history[n] == got);
    assert!(
        n.is_some(),
        "{ctx}: after recovery the table ({} keys) is no prefix of the commits from {durable} (of {})",
        got.len(),
        history.len() - 1
    );
    instance.check_integrity().unwrap();
    drop(s);
    instance.term().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
    ))]
    #[test]
    fn directory_entries_lost_at_power_loss(seed in any::<u64>(), fuel in 0u64..3000) {
        run(seed, fuel);
    }
}

/// Deterministic sweep of every crash point of a short run.
#[test]
fn sweep_small() {
    for fuel in 0..600 {
        for seed in 0..4 {
            run(seed * 7919 + fuel, fuel);
        }
    }
}

/// A full run exercises what the model is for: renames (log rolls, creations) and removes
/// (circular logging).
#[test]
fn a_full_run_renames_and_removes() {
    for seed in 0..5u64 {
        let vfs = DirCrashVfs::new(u64::MAX / 2);
        // mimic run() without a crash
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let _ = &mut rng;
        let v2 = vfs.clone();
        let instance = Instance::new(env(v2, 1), params(true));
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        for i in 0..100u32 {
            s.begin_transaction().unwrap();
            for j in 0..40u32 {
                s.put(
                    t,
                    format!("k{:04}", (i * 37 + j) % 1000).as_bytes(),
                    &[i as u8; 700],
                )
                .unwrap();
            }
            s.commit_transaction(CommitMode::Lazy).unwrap();
        }
        drop(s);
        instance.term().unwrap();
        let d = vfs.disk.lock().unwrap();
        let used = u64::MAX / 2 - d.fuel;
        let renames = d.log.iter().filter(|l| l.starts_with("Rename")).count();
        let removes = d.log.iter().filter(|l| l.starts_with("Remove")).count();
        assert!(used > 100, "seed {seed}: {used} writes and fsyncs");
        assert!(renames >= 3, "seed {seed}: {renames} renames");
        assert!(removes >= 1, "seed {seed}: {removes} removes");
    }
}
