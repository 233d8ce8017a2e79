//! Power loss after process crashes: a `Vfs` that remembers what each file held at its last
//! fsync, so a test can throw away every unsynced write (directory entries are kept) — and can
//! make the process "die" at the log's next fsync. Each test here was found by review and shown
//! to fail on the engine before its fix.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jetdb::log::{Record, SEGMENT_SIZE};
use jetdb::{CommitMode, Env, ErrorKind, Instance, InstanceParams, MemVfs, OpenMode, Vfs, VfsFile};
use rand::{Rng, SeedableRng};

mod support;

use support::numbered::{commit_each, key, value};
use support::{base_params, env_with, read_all, reseal_block};

#[derive(Debug, Clone, Default)]
struct SyncVfs {
    inner: MemVfs,
    durable: Arc<Mutex<BTreeMap<PathBuf, Vec<u8>>>>,
    /// The process "dies" at the next fsync of edb.log: the fsync never happens.
    die_at_log_sync: Arc<AtomicBool>,
    /// The same for edb.chk.
    die_at_chk_sync: Arc<AtomicBool>,
}

#[derive(Debug)]
struct SyncFile {
    die: Arc<AtomicBool>,
    die_chk: Arc<AtomicBool>,
    inner: Box<dyn VfsFile>,
    path: PathBuf,
    durable: Arc<Mutex<BTreeMap<PathBuf, Vec<u8>>>>,
}

impl Vfs for SyncVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(SyncFile {
            die: self.die_at_log_sync.clone(),
            die_chk: self.die_at_chk_sync.clone(),
            inner,
            path: path.to_path_buf(),
            durable: self.durable.clone(),
        }))
    }
    fn exists(&self, p: &Path) -> io::Result<bool> {
        self.inner.exists(p)
    }
    fn is_dir(&self, p: &Path) -> io::Result<bool> {
        self.inner.is_dir(p)
    }
    fn remove(&self, p: &Path) -> io::Result<()> {
        self.durable.lock().unwrap().remove(p);
        self.inner.remove(p)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)?;
        let mut d = self.durable.lock().unwrap();
        match d.remove(from) {
            Some(v) => {
                d.insert(to.to_path_buf(), v);
            }
            None => {
                d.remove(to);
            }
        }
        Ok(())
    }
    fn list(&self, d: &Path) -> io::Result<Vec<String>> {
        self.inner.list(d)
    }
    fn create_dir(&self, p: &Path) -> io::Result<()> {
        self.inner.create_dir(p)
    }
    fn remove_dir(&self, p: &Path) -> io::Result<()> {
        self.inner.remove_dir(p)
    }
    fn sync_dir(&self, p: &Path) -> io::Result<()> {
        self.inner.sync_dir(p)
    }
}

impl VfsFile for SyncFile {
    fn read_at(&self, b: &mut [u8], o: u64) -> io::Result<usize> {
        self.inner.read_at(b, o)
    }
    fn write_all_at(&self, b: &[u8], o: u64) -> io::Result<()> {
        self.inner.write_all_at(b, o)
    }
    fn sync(&self) -> io::Result<()> {
        let chk = self
            .path
            .extension()
            .is_some_and(|e| e == "chk" || e == "tmp");
        if (self.path.ends_with("edb.log") && self.die.load(Ordering::SeqCst))
            || (chk && self.die_chk.load(Ordering::SeqCst))
        {
            return Err(io::Error::other("the process dies here"));
        }
        let len = self.inner.len()? as usize;
        let mut bytes = vec![0u8; len];
        self.inner.read_exact_at(&mut bytes, 0)?;
        self.durable
            .lock()
            .unwrap()
            .insert(self.path.clone(), bytes);
        Ok(())
    }
    fn set_len(&self, l: u64) -> io::Result<()> {
        self.inner.set_len(l)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl SyncVfs {
    /// Power loss: every file holds what it held at its last fsync (directory entries are kept).
    fn power_loss(&self, dir: &Path) -> SyncVfs {
        let out = SyncVfs::default();
        out.inner.create_dir(dir).unwrap();
        let d = self.durable.lock().unwrap();
        for name in self.inner.list(dir).unwrap() {
            let p = dir.join(&name);
            let bytes = d.get(&p).cloned().unwrap_or_default();
            out.inner
                .open(&p, OpenMode::CreateNew)
                .unwrap()
                .write_all_at(&bytes, 0)
                .unwrap();
            out.durable.lock().unwrap().insert(p, bytes);
        }
        out
    }
}

fn env(vfs: &SyncVfs) -> Env {
    env_with(vfs.clone(), 3, 1000)
}

/// [`base_params`] in `inst`, created if missing, with 4 MiB log files.
fn params() -> InstanceParams {
    InstanceParams {
        create_path_if_not_exist: true,
        log_file_size: 4 * 1024 * 1024,
        ..base_params("inst")
    }
}

fn count(instance: &Instance, table: &str) -> usize {
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table(table).unwrap();
    s.range(t, .., false).unwrap().count()
}

fn start(vfs: &SyncVfs, p: &InstanceParams) -> Instance {
    let instance = Instance::new(env(vfs), p.clone());
    instance.init().unwrap();
    instance
}

/// Lazy commits written behind (never fsynced), a process crash, recovery, and a power loss
/// before the recovered instance's first log fsync: the durable commits are all there.
#[test]
fn power_loss_after_recovery_of_written_behind_segments() {
    for recovered_commits_lazily in [false, true] {
        let vfs = SyncVfs::default();
        {
            let inst = start(&vfs, &params());
            let mut s = inst.begin_session().unwrap();
            let t = s.create_table("t").unwrap();
            commit_each(&mut s, t, 1..=5, CommitMode::Durable);
            commit_each(&mut s, t, 6..=200, CommitMode::Lazy);
        }
        {
            let inst = start(&vfs, &params());
            if recovered_commits_lazily {
                let mut s = inst.begin_session().unwrap();
                let t = s.open_table("t").unwrap();
                commit_each(&mut s, t, 300..=500, CommitMode::Lazy);
            }
        }
        let after = vfs.power_loss(Path::new("inst"));
        let inst = start(&after, &params());
        assert!(count(&inst, "t") >= 5);
        inst.check_integrity().unwrap();
    }
}

/// The process dies inside a durable commit's log fsync (the segment is in the OS cache only);
/// recovery replays it and moves the checkpoint past it, so it must fsync the log first.
#[test]
fn recovery_fsyncs_the_log_it_replayed() {
    let vfs = SyncVfs::default();
    {
        let inst = start(&vfs, &params());
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 1..=5, CommitMode::Durable);
        vfs.die_at_log_sync.store(true, Ordering::SeqCst);
        s.begin_transaction().unwrap();
        s.put(t, &key(6), &value(6)).unwrap();
        assert!(s.commit_transaction(CommitMode::Durable).is_err());
        vfs.die_at_log_sync.store(false, Ordering::SeqCst);
    }
    {
        let inst = start(&vfs, &params());
        assert_eq!(
            count(&inst, "t"),
            6,
            "the unacknowledged commit was in the log"
        );
    }
    let after = vfs.power_loss(Path::new("inst"));
    let inst = start(&after, &params());
    // Recovery made commit 6 durable before it moved the checkpoint past it.
    assert_eq!(count(&inst, "t"), 6);
}

/// A crash while edb.chk is created: its directory entry durable, its contents not.
#[test]
fn a_checkpoint_file_is_never_left_empty() {
    let vfs = SyncVfs::default();
    {
        let inst = start(&vfs, &params());
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 1..=3, CommitMode::Durable);
    }
    // The checkpoint lost, and the process dies while it is made again.
    vfs.remove(Path::new("inst/edb.chk")).unwrap();
    vfs.die_at_chk_sync.store(true, Ordering::SeqCst);
    assert!(Instance::new(env(&vfs), params()).init().is_err());
    vfs.die_at_chk_sync.store(false, Ordering::SeqCst);
    // Power is lost: directory entries survive, unsynced contents do not. A checkpoint file
    // made in place would now be empty, and refused at every init.
    let after = vfs.power_loss(Path::new("inst"));
    let inst = start(&after, &params());
    assert_eq!(count(&inst, "t"), 3);
}

/// The first eviction after a clean open happens in the middle of a commit: it must not write
/// a header holding that commit's page count before the commit is in the log.
#[test]
fn no_header_holds_an_unlogged_commit() {
    let vfs = SyncVfs::default();
    let mut p = params();
    p.cache_size = 64 * 4096;
    {
        let inst = start(&vfs, &p);
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        s.begin_transaction().unwrap();
        for i in 0..40u32 {
            s.put(t, &key(i), &[1u8; 1500]).unwrap();
        }
        s.commit_transaction(CommitMode::Durable).unwrap();
        // A big lazy commit whose application evicts pages; the process dies at the log's
        // next fsync, so it is never durable.
        vfs.die_at_log_sync.store(true, Ordering::SeqCst);
        s.begin_transaction().unwrap();
        for i in 1000..1400u32 {
            s.put(t, &key(i), &[2u8; 1500]).unwrap();
        }
        let _ = s.commit_transaction(CommitMode::Lazy);
        vfs.die_at_log_sync.store(false, Ordering::SeqCst);
    }
    let after = vfs.power_loss(Path::new("inst"));
    let inst = start(&after, &p);
    assert_eq!(count(&inst, "t"), 40);
    let report = inst.check_integrity().unwrap();
    assert_eq!(
        report.page_count,
        inst.database_header().unwrap().page_count
    );
}

/// A checkpoint after evictions wrote every dirty page (unsynced) must still fsync the
/// database before it moves past the commits those pages hold.
#[test]
fn a_checkpoint_fsyncs_pages_that_eviction_wrote() {
    let vfs = SyncVfs::default();
    let mut p = params();
    p.cache_size = 64 * 4096;
    {
        let inst = start(&vfs, &p);
        let mut s = inst.begin_session().unwrap();
        let big = s.create_table("big").unwrap();
        s.create_table("t").unwrap();
        s.begin_transaction().unwrap();
        for i in 0..1000u32 {
            s.put(big, &key(i), &[9u8; 1000]).unwrap();
        }
        s.commit_transaction(CommitMode::Durable).unwrap();
        drop(s);
        inst.term().unwrap();
    }
    {
        let inst = start(&vfs, &p);
        let mut s = inst.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        let big = s.open_table("big").unwrap();
        commit_each(&mut s, t, 1..=20, CommitMode::Durable);
        // Reads only: every dirty page is evicted (written, not fsynced).
        for _ in 0..2 {
            assert_eq!(s.range(big, .., false).unwrap().count(), 1000);
        }
        inst.checkpoint().unwrap();
    }
    let after = vfs.power_loss(Path::new("inst"));
    let inst = start(&after, &p);
    assert_eq!(count(&inst, "t"), 20, "durable commits lost");
}

/// Inverted ranges, and ranges whose bounds meet with one excluded, are empty — never a panic
/// (with own writes and kept versions in play).
#[test]
fn inverted_and_empty_ranges_are_empty() {
    let vfs = SyncVfs::default();
    let inst = start(&vfs, &params());
    let mut s = inst.begin_session().unwrap();
    let mut other = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    other.begin_transaction().unwrap();
    commit_each(&mut s, t, [1, 2], CommitMode::Durable);
    s.begin_transaction().unwrap();
    s.put(t, b"m", b"v").unwrap();
    for session in [&mut s, &mut other] {
        for (lo, hi) in [
            (Bound::Included(&b"z"[..]), Bound::Excluded(&b"a"[..])),
            (Bound::Excluded(&b"m"[..]), Bound::Excluded(&b"m"[..])),
            (Bound::Included(&b"m"[..]), Bound::Excluded(&b"m"[..])),
            (Bound::Excluded(&b"m"[..]), Bound::Included(&b"m"[..])),
        ] {
            for reverse in [false, true] {
                assert_eq!(session.range(t, (lo, hi), reverse).unwrap().count(), 0);
            }
        }
    }
}

/// A clean shutdown, another session, and edb.chk lost: recovery starts where the database
/// was consistent, and commit sequences run on across sessions.
#[test]
fn a_lost_checkpoint_of_a_clean_database_is_survived() {
    let vfs = SyncVfs::default();
    for round in 0..2u32 {
        let inst = start(&vfs, &params());
        let mut s = inst.begin_session().unwrap();
        let t = if round == 0 {
            s.create_table("t").unwrap()
        } else {
            s.open_table("t").unwrap()
        };
        commit_each(&mut s, t, round * 10..round * 10 + 3, CommitMode::Durable);
        drop(s);
        inst.term().unwrap();
    }
    vfs.inner.remove(Path::new("inst/edb.chk")).unwrap();
    let inst = start(&vfs, &params());
    assert_eq!(count(&inst, "t"), 6);
    drop(inst);
    // A crash after both sessions' commits, with the checkpoint lost: replay from generation 1
    // crosses both sessions.
    let vfs = SyncVfs::default();
    for round in 0..2u32 {
        let inst = start(&vfs, &params());
        let mut s = inst.begin_session().unwrap();
        let t = s.open_table("t").or_else(|_| s.create_table("t")).unwrap();
        commit_each(&mut s, t, round * 10..round * 10 + 3, CommitMode::Durable);
    }
    vfs.inner.remove(Path::new("inst/edb.chk")).unwrap();
    let inst = start(&vfs, &params());
    assert_eq!(count(&inst, "t"), 6);
}

/// Reseals log segment `seg`, if the log holds all of it.
fn reseal(bytes: &mut [u8], seg: usize) {
    let s = seg * SEGMENT_SIZE;
    if s + SEGMENT_SIZE <= bytes.len() {
        reseal_block(bytes, s);
    }
}

/// The whole content of file `name` of the instance directory.
fn read(v: &SyncVfs, name: &str) -> Vec<u8> {
    read_all(&v.inner, Path::new("inst").join(name))
}

/// A checksum-valid commit record with an absurd sequence, or a put whose key runs past its
/// record: an error, not a panic.
#[test]
fn crafted_commit_records_are_log_file_corrupt() {
    let base = SyncVfs::default();
    {
        let inst = start(&base, &params());
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 1..=6, CommitMode::Durable);
    }
    let log = read(&base, "edb.log");
    let scan = jetdb::log::scan(&log, "edb.log").unwrap();
    let commits: Vec<u32> = scan
        .records
        .iter()
        .filter_map(|(pos, r)| matches!(r, Record::Commit(_)).then_some(pos.offset))
        .collect();
    let puts: Vec<u32> = scan
        .records
        .iter()
        .filter_map(|(pos, r)| matches!(r, Record::Put { .. }).then_some(pos.offset))
        .collect();
    // (offset of the field, the bytes to put there)
    let sequence_at = commits[..commits.len() - 1]
        .iter()
        .map(|&o| o as usize + 5 + 8)
        .find(|&a| a / SEGMENT_SIZE == (a + 8) / SEGMENT_SIZE)
        .unwrap();
    let key_len_at = puts[0] as usize + 5;
    for (at, bytes) in [
        (sequence_at, u64::MAX.to_le_bytes().to_vec()),
        (key_len_at, vec![0xFF]),
    ] {
        let vfs = SyncVfs::default();
        vfs.inner.create_dir(Path::new("inst")).unwrap();
        for name in base.inner.list(Path::new("inst")).unwrap() {
            let mut b = read(&base, &name);
            if name == "edb.log" {
                b[at..at + bytes.len()].copy_from_slice(&bytes);
                reseal(&mut b, at / SEGMENT_SIZE);
            }
            let f = vfs
                .inner
                .open(&Path::new("inst").join(&name), OpenMode::CreateNew)
                .unwrap();
            f.write_all_at(&b, 0).unwrap();
        }
        let err = Instance::new(env(&vfs), params()).init().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    }
}

/// Mutated and re-checksummed logs: scan and recovery give errors, never panic.
#[test]
fn mutated_logs_never_panic() {
    let base = SyncVfs::default();
    let mut p = params();
    p.log_file_size = 128 * 1024;
    {
        let inst = start(&base, &p);
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 1..=12, CommitMode::Durable);
        commit_each(&mut s, t, 13..=16, CommitMode::Lazy);
        inst.flush_log().unwrap();
    }
    let log = read(&base, "edb.log");
    let names = base.inner.list(Path::new("inst")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..400 {
        let mut b = log.clone();
        let kind = rng.random_range(0..6);
        let seg = rng.random_range(0..(b.len() / SEGMENT_SIZE).min(20));
        let base_at = seg * SEGMENT_SIZE;
        match kind {
            0 => b[base_at + rng.random_range(4..SEGMENT_SIZE)] = rng.random(),
            1 => b[base_at + rng.random_range(4..32)] = rng.random(),
            2 => b[base_at + 32 + rng.random_range(0..16)] = rng.random(),
            3 => b.truncate(rng.random_range(0..b.len())),
            4 => b[rng.random_range(4..80)] = rng.random(),
            _ => {
                let at = base_at + rng.random_range(32..SEGMENT_SIZE - 4);
                b[at..at + 4].copy_from_slice(&rng.random::<u32>().to_le_bytes());
            }
        }
        if kind != 3 {
            reseal(&mut b, seg);
        }
        let _ = jetdb::log::scan(&b, "edb.log");
        let vfs = SyncVfs::default();
        vfs.inner.create_dir(Path::new("inst")).unwrap();
        for name in &names {
            let bytes = if name == "edb.log" {
                b.clone()
            } else {
                read(&base, name)
            };
            let f = vfs
                .inner
                .open(&Path::new("inst").join(name), OpenMode::CreateNew)
                .unwrap();
            f.write_all_at(&bytes, 0).unwrap();
        }
        let inst = Instance::new(env(&vfs), p.clone());
        if inst.init().is_ok() {
            let mut s = inst.begin_session().unwrap();
            if let Ok(t) = s.open_table("t") {
                let _ = s.range(t, .., false).map(|r| r.count());
            }
        }
    }
}
