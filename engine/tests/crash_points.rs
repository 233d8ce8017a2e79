//! Crashes at every kind of I/O point, with torn writes: a `Vfs` that keeps each file's
//! content as of its last fsync and the writes made since, kills the process at the Nth write
//! or fsync (every later call fails), then loses power — each unsynced write is applied, dropped
//! or torn sector by sector, by seeded choice. Recovery must then hold a prefix of the commits
//! that includes every commit acknowledged durable, and a sound database.
//!
//! Directory operations are durable at once here; losing unsynced directory entries is the
//! simulator's job.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jetdb::{
    CommitMode, Env, Instance, InstanceParams, ManualClock, MemVfs, OpenMode, SeededEntropy, Vfs,
    VfsFile,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SECTOR: usize = 512;

#[derive(Debug, Default)]
struct Disk {
    /// Each file as of its last fsync.
    durable: BTreeMap<PathBuf, Vec<u8>>,
    /// Writes since the last fsync, in order: (offset, bytes); `None` offset for a set_len.
    pending: BTreeMap<PathBuf, Vec<(u64, Vec<u8>)>>,
    /// Writes and fsyncs left before the process dies.
    fuel: u64,
    dead: bool,
}

#[derive(Debug, Clone)]
struct CrashVfs {
    inner: MemVfs,
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug)]
struct CrashFile {
    inner: Box<dyn VfsFile>,
    path: PathBuf,
    disk: Arc<Mutex<Disk>>,
}

fn dead() -> io::Error {
    io::Error::other("the process has crashed")
}

impl Disk {
    /// Spends one unit of fuel; fails once the process is dead.
    fn spend(&mut self) -> io::Result<()> {
        if self.dead || self.fuel == 0 {
            self.dead = true;
            return Err(dead());
        }
        self.fuel -= 1;
        Ok(())
    }
}

impl Vfs for CrashVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut disk = self.disk.lock().unwrap();
        if disk.dead {
            return Err(dead());
        }
        let inner = self.inner.open(path, mode)?;
        if matches!(mode, OpenMode::CreateNew | OpenMode::CreateTruncate) {
            // Creation is durable at once (directory entries are not modelled); its content
            // is empty until written and synced.
            disk.durable.insert(path.to_path_buf(), Vec::new());
            disk.pending.remove(path);
        }
        Ok(Box::new(CrashFile {
            inner,
            path: path.to_path_buf(),
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
        disk.durable.remove(path);
        disk.pending.remove(path);
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.rename(from, to)?;
        for map in [0, 1] {
            if map == 0 {
                if let Some(v) = disk.durable.remove(from) {
                    disk.durable.insert(to.to_path_buf(), v);
                }
            } else if let Some(v) = disk.pending.remove(from) {
                disk.pending.insert(to.to_path_buf(), v);
            } else {
                disk.pending.remove(to);
            }
        }
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
    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        self.disk.lock().unwrap().spend()
    }
}

impl VfsFile for CrashFile {
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
            .entry(self.path.clone())
            .or_default()
            .push((offset, buf.to_vec()));
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        let len = self.inner.len()? as usize;
        let mut bytes = vec![0u8; len];
        self.inner.read_exact_at(&mut bytes, 0)?;
        disk.durable.insert(self.path.clone(), bytes);
        disk.pending.remove(&self.path);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        disk.spend()?;
        self.inner.set_len(len)?;
        // Growing a file only adds zeros; shrinking is not used by the engine's log.
        disk.pending
            .entry(self.path.clone())
            .or_default()
            .push((len, Vec::new()));
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl CrashVfs {
    fn new(fuel: u64) -> CrashVfs {
        CrashVfs {
            inner: MemVfs::new(),
            disk: Arc::new(Mutex::new(Disk {
                fuel,
                ..Disk::default()
            })),
        }
    }

    /// Power loss: every file holds its durable content plus, for each write since its last
    /// fsync, the write applied whole, dropped, or torn (a random subset of its sectors).
    fn power_loss(&self, rng: &mut ChaCha8Rng) -> MemVfs {
        let disk = self.disk.lock().unwrap();
        let out = MemVfs::new();
        out.create_dir(Path::new("inst")).unwrap();
        for (path, durable) in &disk.durable {
            let mut bytes = durable.clone();
            for (offset, data) in disk.pending.get(path).into_iter().flatten() {
                if data.is_empty() {
                    // A set_len: the size may or may not have reached the disk.
                    if rng.random_bool(0.5) && bytes.len() < *offset as usize {
                        bytes.resize(*offset as usize, 0);
                    }
                    continue;
                }
                let choice = rng.random_range(0..3);
                for (i, sector) in data.chunks(SECTOR).enumerate() {
                    let apply = match choice {
                        0 => true,
                        1 => false,
                        _ => rng.random_bool(0.5),
                    };
                    if apply {
                        let at = *offset as usize + i * SECTOR;
                        if bytes.len() < at + sector.len() {
                            bytes.resize(at + sector.len(), 0);
                        }
                        bytes[at..at + sector.len()].copy_from_slice(sector);
                    }
                }
            }
            let f = out.open(path, OpenMode::CreateNew).unwrap();
            f.write_all_at(&bytes, 0).unwrap();
        }
        out
    }
}

fn params() -> InstanceParams {
    let mut p = InstanceParams::in_directory("inst");
    p.create_path_if_not_exist = true;
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p.cache_size = 64 * 4096;
    p.checkpoint_depth = 200 * 1024;
    p
}

fn env(vfs: impl Vfs + 'static, seed: u64) -> Env {
    Env::new(
        Arc::new(vfs),
        Arc::new(ManualClock::new(seed)),
        Arc::new(SeededEntropy::new(seed)),
    )
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn run(seed: u64, fuel: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vfs = CrashVfs::new(fuel);
    // The committed states in order; `durable` indexes the last one acknowledged durable.
    let mut history: Vec<State> = vec![State::new()];
    let mut durable = 0usize;
    let mut table_durable = false;
    let mut maybe: Option<State> = None;
    // Half the runs make big, mostly lazy transactions: more pages wait for the log than the
    // cache holds, which is where the WAL rule is tested.
    let big = rng.random_bool(0.5);
    let (ops_max, lazy) = if big { (80, 0.9) } else { (12, 0.5) };
    'work: {
        let instance = Instance::new(env(vfs.clone(), 1), params());
        if instance.init().is_err() {
            break 'work;
        }
        let Ok(mut s) = instance.begin_session() else {
            break 'work;
        };
        let Ok(t) = s.create_table("t") else {
            break 'work;
        };
        table_durable = true;
        for _ in 0..200 {
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
                // Not acknowledged: it may or may not survive.
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
        }
    }
    if let Some(state) = maybe {
        history.push(state);
    }
    let after = vfs.power_loss(&mut rng);
    let instance = Instance::new(env(after, 2), params());
    if let Err(err) = instance.init() {
        panic!("fuel {fuel}: recovery failed: {err}");
    }
    let mut s = instance.begin_session().unwrap();
    let got: State = match s.open_table("t") {
        Ok(t) => s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<State>>()
            .unwrap_or_else(|err| panic!("fuel {fuel}: reading after recovery: {err}")),
        Err(_) => {
            assert!(!table_durable, "fuel {fuel}: the table is gone");
            State::new()
        }
    };
    let n = (durable..history.len()).find(|&n| history[n] == got);
    assert!(
        n.is_some(),
        "fuel {fuel}: after recovery the table ({} keys) is no prefix of the commits from {durable} (of {})",
        got.len(),
        history.len() - 1
    );
    instance.check_integrity().unwrap();
    drop(s);
    instance.term().unwrap();
}

proptest! {
    // PROPTEST_CASES overrides the count for longer runs.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
    ))]

    #[test]
    fn a_crash_at_any_io_point_keeps_a_prefix_with_every_durable_commit(
        seed in any::<u64>(),
        fuel in 0u64..1500,
    ) {
        run(seed, fuel);
    }
}
