//! Every error the JetBackup and JetRestore contract names, each provoked for real (a second
//! backup while one runs, a backup from inside init, term and restore through a VFS hook, a
//! failed log roll, failed writes and fsyncs in the destination, a flipped byte in a live page
//! or log, a damaged, incomplete or mixed-up backup set), and each checked to return exactly
//! that error and to change nothing it must not:
//!
//! - the destination holds no file of the failed backup (listed recursively: the manifest
//!   `jetbackup.manifest` and the set directories `set-XXXXXXXX/`);
//! - the backup the destination held before still restores, to exactly its snapshot;
//! - no live log generation is gone (nothing truncated);
//! - the database header's backup records are as they were;
//! - the live instance still works and holds every committed record.
//!
//! A refused call (one the contract names for a state or a parameter) must change nothing at
//! all: the whole file system is compared byte for byte. After a failed restore the
//! destination holds nothing the restore wrote, and the same instance then restores the good
//! backup into the same place.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use jetdb::log::LogTail;
use jetdb::manifest::{self, MANIFEST_NAME, Manifest};
use jetdb::{
    BackupFlags, BackupInfo, CommitMode, Env, ErrorKind, Instance, JetError, MemVfs, Status,
    StatusKind, Vfs,
};

mod support;

use support::{
    Contents, HookedVfs, Op, Script, backup_params, contents, copy_tree, env, env_with, key,
    open_or_create_table, read_all, restore_contents, scripted_vfs, tree, write_all,
};

type Tree = BTreeMap<String, Option<Vec<u8>>>;

const INST: &str = "inst";
const BK: &str = "bk";

// ---------------------------------------------------------------------------------------------
// The world: a scripted file system for the instance under test, the plain one beneath it.

struct World {
    vfs: HookedVfs<Script>,
    mem: MemVfs,
}

impl World {
    fn new() -> World {
        let (vfs, mem) = scripted_vfs();
        World { vfs, mem }
    }

    fn script(&self) -> &Script {
        &self.vfs.hook
    }

    /// An environment over the scripted file system.
    fn env(&self) -> Env {
        env(self.vfs.clone())
    }

    /// An environment over the plain file system (the script sees nothing of it).
    fn plain_env(&self, seed: u64, millis: u64) -> Env {
        env_with(self.mem.clone(), seed, millis)
    }

    fn tree(&self, dir: &str) -> Tree {
        tree(&self.mem, Path::new(dir))
    }

    /// Everything on the file system.
    fn everything(&self) -> Tree {
        tree(&self.mem, Path::new(""))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A script may hold an instance whose environment holds the script.
        self.script().clear();
    }
}

/// Puts records `range` into table `t` (created if missing), 50 to a transaction.
fn load(inst: &Instance, range: std::ops::Range<u32>, mode: CommitMode) {
    let mut s = inst.begin_session().unwrap();
    let t = open_or_create_table(&mut s, "t");
    let ids: Vec<u32> = range.collect();
    for batch in ids.chunks(50) {
        s.begin_transaction().unwrap();
        for &i in batch {
            s.put(t, &key(i), &[b'a' + (i % 26) as u8; 300]).unwrap();
        }
        s.commit_transaction(mode).unwrap();
    }
}

/// A directory name never used before in this process.
fn fresh(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Restores `backup` into a fresh directory (over the plain file system) and returns what the
/// restored database holds, checked whole.
fn restores(mem: &MemVfs, backup: &str) -> jetdb::Result<Contents> {
    let dir = fresh("restored");
    restore_contents(env_with(mem.clone(), 77, 1), backup_params(&dir), backup)
}

/// The log generations present in the live log directory (the current one included; the
/// half-made `edbtmp.log` of a roll not).
fn live_generations(mem: &MemVfs, dir: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for name in mem.list(Path::new(dir)).unwrap() {
        if !name.starts_with("edb") || !name.ends_with(".log") || name == "edbtmp.log" {
            continue;
        }
        let bytes = read_all(mem, Path::new(dir).join(&name));
        let scan = jetdb::log::scan(&bytes, &name).unwrap();
        out.insert(scan.header.generation);
    }
    out
}

/// A tree in brief, for comparisons whose failure must stay readable: each file's length and a
/// hash of its bytes.
fn brief(tree: &Tree) -> BTreeMap<String, String> {
    tree.iter()
        .map(|(name, content)| {
            let what = match content {
                None => "dir".to_string(),
                Some(bytes) => {
                    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                    format!("{} bytes #{hash:016x}", bytes.len())
                }
            };
            (name.clone(), what)
        })
        .collect()
}

fn backup_records(inst: &Instance) -> (BackupInfo, BackupInfo) {
    let h = inst.database_header().unwrap();
    (h.backup_full, h.backup_incremental)
}

#[track_caller]
fn expect_err<T: std::fmt::Debug>(
    result: jetdb::Result<T>,
    kind: ErrorKind,
    code: i32,
) -> JetError {
    let err = result.expect_err("the call must fail");
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.code(), code, "{err}");
    err
}

// ---------------------------------------------------------------------------------------------
// The fixture: a running instance with a full backup in `bk` and more committed since.

struct Fixture {
    w: World,
    inst: Instance,
    /// What the backup in `bk` restores to.
    backed_up: Contents,
    /// What the instance holds.
    committed: Contents,
}

fn fixture() -> Fixture {
    let w = World::new();
    let inst = Instance::new(w.env(), backup_params(INST));
    inst.init().unwrap();
    load(&inst, 0..1500, CommitMode::Lazy);
    inst.backup(Some(Path::new(BK)), BackupFlags::NONE, None)
        .unwrap();
    let backed_up = contents(&inst);
    load(&inst, 1500..3000, CommitMode::Durable);
    let committed = contents(&inst);
    Fixture {
        w,
        inst,
        backed_up,
        committed,
    }
}

/// What must survive a failed or refused backup, taken before it.
struct Before {
    bk: Tree,
    dest: String,
    dest_tree: Tree,
    generations: BTreeSet<u32>,
    records: (BackupInfo, BackupInfo),
    everything: Tree,
}

impl Fixture {
    fn before(&self, dest: &str) -> Before {
        Before {
            bk: self.w.tree(BK),
            dest: dest.to_string(),
            dest_tree: self.w.tree(dest),
            generations: live_generations(&self.w.mem, INST),
            records: backup_records(&self.inst),
            everything: self.w.everything(),
        }
    }

    /// The guarantees of a failed backup, `inst` being the instance running now (the
    /// fixture's, or the one that replaced it after a fatal error).
    #[track_caller]
    fn check_failed(&self, before: &Before, inst: &Instance) {
        assert_eq!(
            brief(&self.w.tree(BK)),
            brief(&before.bk),
            "the backup directory is as it was"
        );
        assert_eq!(
            brief(&self.w.tree(&before.dest)),
            brief(&before.dest_tree),
            "the failed backup left nothing in {}",
            before.dest
        );
        self.check_failed_but_trees(before, inst);
    }

    /// The guarantees of a backup that failed after its manifest was in place and could not
    /// make the previous one durable again (the directory's fsync kept failing): the manifest
    /// reads as before, but the disk may keep either, so the new set's files stay beside the
    /// old ones — debris the next backup sweeps once the directory is durable.
    #[track_caller]
    fn check_failed_keeping_files(&self, before: &Before, inst: &Instance) {
        for (now, was, dir) in [
            (self.w.tree(BK), &before.bk, BK),
            (
                self.w.tree(&before.dest),
                &before.dest_tree,
                before.dest.as_str(),
            ),
        ] {
            let (now, was) = (brief(&now), brief(was));
            for (name, what) in &was {
                assert_eq!(now.get(name), Some(what), "{dir}/{name} is as it was");
            }
            for name in now.keys().filter(|n| !was.contains_key(*n)) {
                assert!(
                    name.starts_with("set-"),
                    "only the new set's files stay in {dir}, not {name}"
                );
            }
        }
        self.check_failed_but_trees(before, inst);
    }

    #[track_caller]
    fn check_failed_but_trees(&self, before: &Before, inst: &Instance) {
        assert_eq!(
            restores(&self.w.mem, BK).expect("the previous backup still restores"),
            self.backed_up
        );
        let now = live_generations(&self.w.mem, INST);
        assert!(
            before.generations.is_subset(&now),
            "no live log generation was removed: before {:?}, after {now:?}",
            before.generations
        );
        assert_eq!(
            backup_records(inst),
            before.records,
            "the header's backup records are as they were"
        );
        assert_eq!(
            contents(inst),
            self.committed,
            "the committed data is all there"
        );
        // And the instance still takes work (undone after, so the fixture holds as it was).
        let mut s = inst.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        s.begin_transaction().unwrap();
        s.put(t, b"still-works", b"yes").unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
        assert_eq!(
            s.get(t, b"still-works").unwrap().as_deref(),
            Some(&b"yes"[..])
        );
        s.begin_transaction().unwrap();
        s.delete(t, b"still-works").unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
    }

    /// A refused call changed nothing at all, and everything still holds.
    #[track_caller]
    fn check_refused(&self, before: &Before) {
        assert_eq!(
            brief(&self.w.everything()),
            brief(&before.everything),
            "a refused call changes nothing on disk"
        );
        self.check_failed(before, &self.inst);
    }
}

// =============================================================================================
// JetBackup

/// -505: a second backup, of any kind, while one runs; the running one is unharmed.
#[test]
fn a_backup_while_one_runs_is_backup_in_progress() {
    let fx = fixture();
    fx.w.mem.create_dir(Path::new("second")).unwrap();
    let mut job = fx
        .inst
        .begin_backup(Some(Path::new("second")), BackupFlags::NONE, None)
        .unwrap();
    job.set_step_size(4096);
    assert!(job.step().unwrap(), "the job is under way");
    let before = fx.before("second");
    let position = fx.inst.log_position().unwrap();
    for (path, flags) in [
        (Some(BK), BackupFlags::ATOMIC),
        (Some(BK), BackupFlags::INCREMENTAL),
        (Some("second"), BackupFlags::NONE),
        (Some("third"), BackupFlags::NONE),
        (None, BackupFlags::NONE),
    ] {
        let result = fx.inst.backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::BackupInProgress, -505);
        let result = fx.inst.begin_backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::BackupInProgress, -505);
    }
    assert_eq!(
        brief(&fx.w.everything()),
        brief(&before.everything),
        "the refused calls changed nothing"
    );
    assert_eq!(
        fx.inst.log_position().unwrap(),
        position,
        "no log roll either"
    );
    // The running backup goes on and holds exactly its begin.
    while job.step().unwrap() {}
    job.finish().unwrap();
    assert_eq!(restores(&fx.w.mem, "second").unwrap(), fx.committed);
    assert_eq!(restores(&fx.w.mem, BK).unwrap(), fx.backed_up);
    assert!(!fx.w.everything().contains_key("third"));
}

/// From inside the next file operation (once): backups of every kind on the instance in
/// `slot`, their errors recorded in `seen`; then `also`. The operation itself goes on.
fn call_from_inside(
    w: &World,
    slot: &Arc<Mutex<Option<Instance>>>,
    seen: &Arc<Mutex<Vec<JetError>>>,
    mut also: impl FnMut() + Send + 'static,
) {
    let slot = Arc::clone(slot);
    let seen = Arc::clone(seen);
    w.script().set(move |_op| {
        if let Some(inst) = slot.lock().unwrap().take() {
            let mut seen = seen.lock().unwrap();
            for (path, flags) in [
                (Some(BK), BackupFlags::ATOMIC),
                (Some(BK), BackupFlags::INCREMENTAL),
                (Some("inside"), BackupFlags::NONE),
                (None, BackupFlags::NONE),
            ] {
                seen.push(
                    inst.backup(path.map(Path::new), flags, None)
                        .expect_err("a backup from inside must be refused"),
                );
            }
            drop(seen);
            also();
        }
        Ok(())
    });
}

#[track_caller]
fn all_are(seen: &Arc<Mutex<Vec<JetError>>>, kind: ErrorKind, code: i32) {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "the hook ran the backups: {seen:?}");
    for err in seen.iter() {
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.code(), code);
    }
}

/// -523: a backup called while the instance initialises (from inside its init, at its first
/// file operation) is not allowed yet; init itself goes on. Once after a clean term, once
/// while crash recovery replays the log.
#[test]
fn a_backup_during_init_is_backup_not_allowed_yet() {
    let fx = fixture();
    let before = fx.before("inside");
    let records = before.records;
    fx.inst.term().unwrap();
    let generations = live_generations(&fx.w.mem, INST);
    let bk = fx.w.tree(BK);
    let slot = Arc::new(Mutex::new(Some(fx.inst.clone())));
    let seen = Arc::new(Mutex::new(Vec::new()));
    call_from_inside(&fx.w, &slot, &seen, || {});
    fx.inst.init().unwrap();
    fx.w.script().clear();
    all_are(&seen, ErrorKind::BackupNotAllowedYet, -523);
    assert_eq!(brief(&fx.w.tree(BK)), brief(&bk));
    assert!(fx.w.tree("inside").is_empty());
    assert!(generations.is_subset(&live_generations(&fx.w.mem, INST)));
    assert_eq!(backup_records(&fx.inst), records);
    let before = Before {
        generations,
        ..before
    };
    fx.check_failed(&before, &fx.inst);

    // A crash (the instance dropped, never terminated), then init from inside recovery.
    let Fixture {
        w,
        inst,
        backed_up,
        committed,
    } = fx;
    drop(inst);
    let inst = Instance::new(w.env(), backup_params(INST));
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        // At the first read of a log generation: recovery is replaying.
        let seen = Arc::clone(&seen);
        let inst = inst.clone();
        w.script().set(move |op| {
            let reads_log = matches!(op, Op::Read(p) if p.to_string_lossy().ends_with(".log"));
            let mut seen = seen.lock().unwrap();
            if reads_log && seen.is_empty() {
                for (path, flags) in [
                    (Some(BK), BackupFlags::ATOMIC),
                    (Some(BK), BackupFlags::INCREMENTAL),
                    (Some("inside"), BackupFlags::NONE),
                    (None, BackupFlags::NONE),
                ] {
                    seen.push(inst.backup(path.map(Path::new), flags, None).unwrap_err());
                }
            }
            Ok(())
        });
    }
    inst.init().unwrap();
    w.script().clear();
    let report = inst.recovery_report().unwrap().expect("logging is on");
    assert!(
        report.was_dirty && report.commits_replayed > 0,
        "{report:?}"
    );
    all_are(&seen, ErrorKind::BackupNotAllowedYet, -523);
    let fx = Fixture {
        w,
        inst,
        backed_up,
        committed,
    };
    fx.check_failed(&before, &fx.inst);
}

/// -1000: a backup called while the instance shuts down (from inside its term).
#[test]
fn a_backup_during_term_is_term_in_progress() {
    let fx = fixture();
    let before = fx.before("inside");
    let slot = Arc::new(Mutex::new(Some(fx.inst.clone())));
    let seen = Arc::new(Mutex::new(Vec::new()));
    call_from_inside(&fx.w, &slot, &seen, || {});
    fx.inst.term().unwrap();
    fx.w.script().clear();
    all_are(&seen, ErrorKind::TermInProgress, -1000);
    assert!(fx.w.tree("inside").is_empty());
    fx.inst.init().unwrap();
    fx.check_failed(&before, &fx.inst);
}

/// -506: a backup of an instance called while a restore into it runs (from inside the
/// restore); so are a second restore and an init. The restore goes on and succeeds.
#[test]
fn a_backup_during_restore_is_restore_in_progress() {
    let fx = fixture();
    let before = fx.before("inside");
    let target = Instance::new(fx.w.env(), backup_params("target"));
    let slot = Arc::new(Mutex::new(Some(target.clone())));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let others = Arc::new(Mutex::new(Vec::new()));
    {
        let target = target.clone();
        let others = Arc::clone(&others);
        call_from_inside(&fx.w, &slot, &seen, move || {
            let mut others = others.lock().unwrap();
            others.push(target.restore(Path::new(BK), None).unwrap_err());
            others.push(target.init().unwrap_err());
        });
    }
    target.restore(Path::new(BK), None).unwrap();
    fx.w.script().clear();
    all_are(&seen, ErrorKind::RestoreInProgress, -506);
    let others = others.lock().unwrap().clone();
    assert_eq!(others.len(), 2);
    for err in &others {
        assert_eq!(
            (err.kind(), err.code()),
            (ErrorKind::RestoreInProgress, -506),
            "{err}"
        );
    }
    assert!(fx.w.tree("inside").is_empty());
    target.init().unwrap();
    assert_eq!(contents(&target), fx.backed_up);
    target.term().unwrap();
    fx.check_failed(&before, &fx.inst);
}

/// -1029: a backup of an instance never initialised, or terminated.
#[test]
fn a_backup_of_an_uninitialised_instance_is_not_initialized() {
    let fx = fixture();
    let never = Instance::new(fx.w.env(), backup_params("never"));
    let before = fx.before("dest");
    for (path, flags) in [
        (Some("dest"), BackupFlags::NONE),
        (Some(BK), BackupFlags::INCREMENTAL),
        (None, BackupFlags::NONE),
    ] {
        let result = never.backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::NotInitialized, -1029);
    }
    assert_eq!(brief(&fx.w.everything()), brief(&before.everything));
    fx.inst.term().unwrap();
    let after_term = fx.w.everything();
    for (path, flags) in [
        (Some("dest"), BackupFlags::NONE),
        (Some(BK), BackupFlags::ATOMIC),
        (Some(BK), BackupFlags::INCREMENTAL),
        (None, BackupFlags::NONE),
    ] {
        let result = fx.inst.backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::NotInitialized, -1029);
    }
    assert_eq!(
        brief(&fx.w.everything()),
        brief(&after_term),
        "the refused calls changed nothing"
    );
    fx.inst.init().unwrap();
    fx.check_failed(&before, &fx.inst);
}

/// -516: an instance without logging has nothing to back up.
#[test]
fn a_backup_without_logging_is_logging_disabled() {
    let w = World::new();
    let mut p = backup_params("nolog");
    p.recovery = false;
    let inst = Instance::new(w.env(), p);
    inst.init().unwrap();
    load(&inst, 0..200, CommitMode::Durable);
    let committed = contents(&inst);
    w.mem.create_dir(Path::new("dest")).unwrap();
    let everything = w.everything();
    let records = backup_records(&inst);
    for (path, flags) in [
        (Some("dest"), BackupFlags::NONE),
        (Some("dest"), BackupFlags::ATOMIC),
        (Some("dest"), BackupFlags::INCREMENTAL),
        (None, BackupFlags::NONE),
    ] {
        let result = inst.backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::LoggingDisabled, -516);
    }
    assert_eq!(
        brief(&w.everything()),
        brief(&everything),
        "the refused calls changed nothing"
    );
    assert_eq!(backup_records(&inst), records);
    assert_eq!(contents(&inst), committed);
    load(&inst, 200..210, CommitMode::Durable);
    inst.term().unwrap();
}

/// -510 then -1090: the log roll that fixes the backup point fails (every write, fsync,
/// create, rename and directory fsync of the log files it makes, one at a time). The backup
/// fails with `LogWriteFail`, the instance is then unavailable to every call, and after a
/// new init it holds every durable commit; the backup directory is untouched.
#[test]
fn a_failed_log_roll_at_begin_is_log_write_fail_then_instance_unavailable() {
    let is_log = |op: &Op| {
        op.under(Path::new(INST))
            && !matches!(op, Op::Read(_))
            && match op {
                Op::Rename(from, _) => from.to_string_lossy().ends_with(".log"),
                Op::SyncDir(_) => true,
                Op::Write(p) | Op::Sync(p) | Op::Create(p) | Op::SetLen(p) => {
                    p.to_string_lossy().ends_with(".log")
                }
                _ => false,
            }
    };
    // What the begin does to the log.
    let fx = fixture();
    load(&fx.inst, 5000..5010, CommitMode::Lazy); // something to flush
    let ops = Arc::new(Mutex::new(Vec::new()));
    {
        let ops = Arc::clone(&ops);
        fx.w.script().set(move |op| {
            if is_log(op) {
                ops.lock().unwrap().push(op.clone());
            }
            Ok(())
        });
    }
    let job = fx
        .inst
        .begin_backup(Some(Path::new(BK)), BackupFlags::ATOMIC, None)
        .unwrap();
    fx.w.script().clear();
    drop(job);
    let ops = ops.lock().unwrap().clone();
    let kinds: BTreeSet<&str> = ops.iter().map(Op::kind).collect();
    for kind in ["write", "fsync", "create", "rename", "fsync-dir"] {
        assert!(kinds.contains(kind), "the roll does a {kind}: {ops:?}");
    }
    drop(fx);

    for (i, op) in ops.iter().enumerate() {
        let fx = fixture();
        load(&fx.inst, 5000..5010, CommitMode::Lazy);
        let lazy = contents(&fx.inst);
        let before = fx.before("dest");
        let mut n = 0usize;
        let hit = Arc::new(Mutex::new(None));
        {
            let hit = Arc::clone(&hit);
            fx.w.script().set(move |op| {
                if !is_log(op) {
                    return Ok(());
                }
                n += 1;
                if n == i + 1 {
                    *hit.lock().unwrap() = Some(op.clone());
                    return Err(io::Error::other("injected failure of the log"));
                }
                Ok(())
            });
        }
        let result = fx
            .inst
            .begin_backup(Some(Path::new(BK)), BackupFlags::ATOMIC, None);
        fx.w.script().clear();
        assert_eq!(hit.lock().unwrap().as_ref(), Some(op), "failed {op:?}");
        expect_err(result, ErrorKind::LogWriteFail, -510);
        // Logging is gone: the instance refuses everything now.
        for result in [
            fx.inst
                .backup(Some(Path::new(BK)), BackupFlags::ATOMIC, None)
                .map(|_| ()),
            fx.inst.backup(None, BackupFlags::NONE, None).map(|_| ()),
            fx.inst
                .backup(Some(Path::new("dest")), BackupFlags::NONE, None)
                .map(|_| ()),
            fx.inst.begin_session().map(|_| ()),
            fx.inst.database_header().map(|_| ()),
        ] {
            expect_err(result, ErrorKind::InstanceUnavailable, -1090);
        }
        assert_eq!(
            brief(&fx.w.tree(BK)),
            brief(&before.bk),
            "{op:?}: the backup directory is untouched"
        );
        assert!(fx.w.tree("dest").is_empty());
        expect_err(fx.inst.term(), ErrorKind::InstanceUnavailable, -1090);
        // A new init recovers: every durable commit is there (the lazy ones may be).
        let inst = Instance::new(fx.w.env(), backup_params(INST));
        inst.init()
            .unwrap_or_else(|e| panic!("{op:?}: recovery failed: {e}"));
        let now = contents(&inst);
        assert!(
            now == fx.committed || now == lazy,
            "{op:?}: recovered {} records",
            now.len()
        );
        let fx = Fixture {
            committed: now,
            ..fx
        };
        fx.check_failed(&before, &inst);
        inst.term().unwrap();
    }
}

/// -1090: an instance stopped by a fatal error outside any backup (its log write failed
/// during a durable commit) refuses every backup; the backup directory is untouched and a new
/// init recovers every durable commit.
#[test]
fn a_backup_of_a_failed_instance_is_instance_unavailable() {
    let fx = fixture();
    let before = fx.before("dest");
    fx.w.script().set(|op| match op {
        Op::Write(p) if p.ends_with("edb.log") => Err(io::Error::other("injected EIO")),
        _ => Ok(()),
    });
    let mut s = fx.inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    s.put(t, b"doomed", b"x").unwrap();
    let err = s.commit_transaction(CommitMode::Durable).unwrap_err();
    fx.w.script().clear();
    assert_eq!(err.kind(), ErrorKind::LogWriteFail, "{err}");
    drop(s);
    let everything = fx.w.everything();
    for (path, flags) in [
        (Some("dest"), BackupFlags::NONE),
        (Some(BK), BackupFlags::ATOMIC),
        (Some(BK), BackupFlags::INCREMENTAL),
        (None, BackupFlags::NONE),
    ] {
        let result = fx.inst.backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::InstanceUnavailable, -1090);
        let result = fx.inst.begin_backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::InstanceUnavailable, -1090);
    }
    assert_eq!(
        brief(&fx.w.everything()),
        brief(&everything),
        "the refused calls changed nothing"
    );
    expect_err(fx.inst.term(), ErrorKind::InstanceUnavailable, -1090);
    let inst = Instance::new(fx.w.env(), backup_params(INST));
    inst.init().unwrap();
    fx.check_failed(&before, &inst);
    inst.term().unwrap();
}

/// -1329: after stop_service, every backup is refused.
#[test]
fn a_backup_after_stop_service_is_client_request_to_stop() {
    let fx = fixture();
    let before = fx.before("dest");
    fx.inst.stop_service().unwrap();
    for (path, flags) in [
        (Some("dest"), BackupFlags::NONE),
        (Some(BK), BackupFlags::ATOMIC),
        (Some(BK), BackupFlags::INCREMENTAL),
        (None, BackupFlags::NONE),
    ] {
        let result = fx.inst.backup(path.map(Path::new), flags, None);
        expect_err(result, ErrorKind::ClientRequestToStopJetService, -1329);
    }
    assert_eq!(
        brief(&fx.w.everything()),
        brief(&before.everything),
        "the refused calls changed nothing"
    );
    fx.inst.term().unwrap();
    fx.inst.init().unwrap();
    fx.check_failed(&before, &fx.inst);
}

/// -900: bits that name no option.
#[test]
fn unknown_flags_are_invalid_grbit() {
    let fx = fixture();
    let before = fx.before("dest");
    for bits in [0x2, 0x8, 0x3, 0x6, 0x7, 0x10, 0x8000_0000, u32::MAX] {
        for path in [Some(BK), Some("dest"), None] {
            let result = fx
                .inst
                .backup(path.map(Path::new), BackupFlags::from_bits(bits), None);
            expect_err(result, ErrorKind::InvalidGrbit, -900);
        }
    }
    fx.check_refused(&before);
}

/// -1003: flags without a path, an empty path, and each of the instance's own directories.
#[test]
fn flags_without_a_path_or_the_instance_directory_are_invalid_parameter() {
    let fx = fixture();
    let before = fx.before("dest");
    for flags in [
        BackupFlags::INCREMENTAL,
        BackupFlags::ATOMIC,
        BackupFlags::INCREMENTAL | BackupFlags::ATOMIC,
    ] {
        let result = fx.inst.backup(None, flags, None);
        expect_err(result, ErrorKind::InvalidParameter, -1003);
    }
    for path in [INST, "inst/", ""] {
        for flags in [
            BackupFlags::NONE,
            BackupFlags::ATOMIC,
            BackupFlags::INCREMENTAL,
        ] {
            let result = fx.inst.backup(Some(Path::new(path)), flags, None);
            expect_err(result, ErrorKind::InvalidParameter, -1003);
        }
    }
    fx.check_refused(&before);

    // An instance whose log, system and database directories are three.
    let w = World::new();
    let mut p = backup_params("x");
    p.log_path = "x/logs".into();
    p.system_path = "x/sys".into();
    p.database_path = "x/db/data.edb".into();
    let inst = Instance::new(w.env(), p);
    inst.init().unwrap();
    load(&inst, 0..100, CommitMode::Durable);
    let everything = w.everything();
    for path in ["x/logs", "x/sys", "x/db"] {
        let result = inst.backup(Some(Path::new(path)), BackupFlags::NONE, None);
        expect_err(result, ErrorKind::InvalidParameter, -1003);
    }
    assert_eq!(brief(&w.everything()), brief(&everything));
    inst.backup(Some(Path::new("x/elsewhere")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
}

/// -1023: a destination that does not exist, without create_path_if_not_exist; with it, the
/// directory is made and the backup works.
#[test]
fn a_missing_directory_is_invalid_path_unless_the_instance_creates_paths() {
    let w = World::new();
    w.mem.create_dir(Path::new("strict")).unwrap();
    let mut p = backup_params("strict");
    p.create_path_if_not_exist = false;
    let inst = Instance::new(w.env(), p);
    inst.init().unwrap();
    load(&inst, 0..200, CommitMode::Durable);
    let committed = contents(&inst);
    write_all(&w.mem, Path::new("a-file"), b"not a directory");
    let everything = w.everything();
    let records = backup_records(&inst);
    for path in ["missing", "missing/deeper", "a-file"] {
        for flags in [BackupFlags::NONE, BackupFlags::ATOMIC] {
            let result = inst.backup(Some(Path::new(path)), flags, None);
            expect_err(result, ErrorKind::InvalidPath, -1023);
        }
    }
    assert_eq!(
        brief(&w.everything()),
        brief(&everything),
        "nothing created"
    );
    assert_eq!(backup_records(&inst), records);
    assert_eq!(contents(&inst), committed);
    inst.backup(Some(Path::new("strict-bk")), BackupFlags::NONE, None)
        .expect_err("still missing");
    w.mem.create_dir(Path::new("strict-bk")).unwrap();
    inst.backup(Some(Path::new("strict-bk")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
    assert_eq!(restores(&w.mem, "strict-bk").unwrap(), committed);

    // With create_path_if_not_exist the missing directory (and its parents) are made.
    let fx = fixture();
    assert!(!fx.w.mem.exists(Path::new("made")).unwrap());
    fx.inst
        .backup(Some(Path::new("made/deeper")), BackupFlags::NONE, None)
        .unwrap();
    assert!(fx.w.mem.is_dir(Path::new("made/deeper")).unwrap());
    assert_eq!(restores(&fx.w.mem, "made/deeper").unwrap(), fx.committed);
}

/// -526: an incremental backup with circular logging on; and one into a directory holding
/// another database's backup.
#[test]
fn an_incremental_with_circular_logging_is_invalid_backup() {
    let w = World::new();
    let mut p = backup_params("circ");
    p.circular_logging = true;
    let inst = Instance::new(w.env(), p);
    inst.init().unwrap();
    load(&inst, 0..300, CommitMode::Lazy);
    inst.backup(Some(Path::new("circ-bk")), BackupFlags::NONE, None)
        .unwrap();
    let backed_up = contents(&inst);
    load(&inst, 300..400, CommitMode::Durable);
    let committed = contents(&inst);
    let everything = w.everything();
    let records = backup_records(&inst);
    assert!(records.0.is_set());
    for path in ["circ-bk", "elsewhere"] {
        let result = inst.backup(Some(Path::new(path)), BackupFlags::INCREMENTAL, None);
        expect_err(result, ErrorKind::InvalidBackup, -526);
    }
    assert_eq!(
        brief(&w.everything()),
        brief(&everything),
        "the refused calls changed nothing"
    );
    assert_eq!(backup_records(&inst), records);
    assert_eq!(contents(&inst), committed);
    assert_eq!(restores(&w.mem, "circ-bk").unwrap(), backed_up);
    inst.term().unwrap();

    // Another database's backup cannot be extended by this one.
    let fx = fixture();
    let other = Instance::new(fx.w.plain_env(2, 1), backup_params("other"));
    other.init().unwrap();
    load(&other, 0..100, CommitMode::Durable);
    other
        .backup(Some(Path::new("other-bk")), BackupFlags::NONE, None)
        .unwrap();
    let others = contents(&other);
    other.term().unwrap();
    let before = fx.before("other-bk");
    let result = fx
        .inst
        .backup(Some(Path::new("other-bk")), BackupFlags::INCREMENTAL, None);
    expect_err(result, ErrorKind::InvalidBackup, -526);
    fx.check_refused(&before);
    assert_eq!(restores(&fx.w.mem, "other-bk").unwrap(), others);
}

/// -560: an incremental backup of a database with no full backup recorded; and one into a
/// directory holding no backup.
#[test]
fn an_incremental_without_a_full_backup_is_missing_full_backup() {
    // No full backup in the header (though the directory holds one: another database's).
    let fx = fixture();
    let fresh_inst = Instance::new(fx.w.env(), backup_params("nofull"));
    fresh_inst.init().unwrap();
    load(&fresh_inst, 0..100, CommitMode::Durable);
    assert!(!backup_records(&fresh_inst).0.is_set());
    let everything = fx.w.everything();
    for path in [BK, "empty"] {
        let result = fresh_inst.backup(Some(Path::new(path)), BackupFlags::INCREMENTAL, None);
        expect_err(result, ErrorKind::MissingFullBackup, -560);
    }
    assert_eq!(
        brief(&fx.w.everything()),
        brief(&everything),
        "the refused calls changed nothing"
    );
    assert!(!backup_records(&fresh_inst).0.is_set());
    fresh_inst.term().unwrap();

    // A full backup in the header, but none in this (existing, empty) directory.
    fx.w.mem.create_dir(Path::new("empty")).unwrap();
    fx.w.mem
        .create_dir_all(Path::new("debris/set-00000001"))
        .unwrap();
    write_all(
        &fx.w.mem,
        Path::new("debris/set-00000001/data.edb"),
        b"junk",
    );
    let before = fx.before("empty");
    for path in ["empty", "debris"] {
        let result = fx
            .inst
            .backup(Some(Path::new(path)), BackupFlags::INCREMENTAL, None);
        expect_err(result, ErrorKind::MissingFullBackup, -560);
    }
    fx.check_refused(&before);
}

/// -560: an incremental into a directory whose manifest was copied in from another: it names
/// a set the directory lacks. (Found by the simulator: the backup failed at its end with
/// `JET_errFileNotFound`, creating a log in the missing set.)
#[test]
fn an_incremental_whose_manifest_names_a_missing_set_is_missing_full_backup() {
    let fx = fixture();
    let manifest = Path::new(BK).join(jetdb::manifest::MANIFEST_NAME);
    let bytes = support::read_all(&fx.w.mem, &manifest);
    fx.w.mem.create_dir(Path::new("copied")).unwrap();
    write_all(
        &fx.w.mem,
        Path::new("copied").join(jetdb::manifest::MANIFEST_NAME),
        &bytes,
    );
    // The directory's own set, which the copied manifest does not name: the refusal comes
    // before the clean-up that would take it for debris (a refused call changes nothing).
    fx.w.mem
        .create_dir_all(Path::new("copied/set-00000009"))
        .unwrap();
    write_all(
        &fx.w.mem,
        Path::new("copied/set-00000009/data.edb"),
        b"its own copy",
    );
    let before = fx.before("copied");
    let result = fx
        .inst
        .backup(Some(Path::new("copied")), BackupFlags::INCREMENTAL, None);
    expect_err(result, ErrorKind::MissingFullBackup, -560);
    fx.check_refused(&before);
}

/// -560 into a directory that does not exist: refused, and (a refused call changing nothing)
/// the directory is not made either, though the instance may create paths.
#[test]

fn an_incremental_into_a_missing_directory_creates_nothing() {
    let fx = fixture();
    let before = fx.before("nowhere");
    let result = fx
        .inst
        .backup(Some(Path::new("nowhere")), BackupFlags::INCREMENTAL, None);
    expect_err(result, ErrorKind::MissingFullBackup, -560);
    assert!(!fx.w.mem.exists(Path::new("nowhere")).unwrap());
    fx.check_refused(&before);
}

/// -504: a full backup, not atomic, into a directory holding a backup.
#[test]
fn a_plain_full_backup_over_a_backup_is_backup_directory_not_empty() {
    let fx = fixture();
    let before = fx.before(BK);
    let result = fx.inst.backup(Some(Path::new(BK)), BackupFlags::NONE, None);
    expect_err(result, ErrorKind::BackupDirectoryNotEmpty, -504);
    let result = fx
        .inst
        .begin_backup(Some(Path::new(BK)), BackupFlags::NONE, None);
    expect_err(result, ErrorKind::BackupDirectoryNotEmpty, -504);
    fx.check_refused(&before);
}

// ---------------------------------------------------------------------------------------------
// I/O faults in the destination.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A full atomic backup over the backup in `bk`.
    Atomic,
    /// A full backup into an empty directory.
    IntoEmpty,
    /// An incremental backup extending the backup in `bk`.
    Incremental,
}

impl Mode {
    fn dest(self) -> &'static str {
        match self {
            Mode::Atomic | Mode::Incremental => BK,
            Mode::IntoEmpty => "empty",
        }
    }

    fn flags(self) -> BackupFlags {
        match self {
            Mode::Atomic => BackupFlags::ATOMIC,
            Mode::IntoEmpty => BackupFlags::NONE,
            Mode::Incremental => BackupFlags::INCREMENTAL,
        }
    }
}

/// A fixture with an empty directory `empty` too.
fn fixture_for(_mode: Mode) -> Fixture {
    let fx = fixture();
    fx.w.mem.create_dir(Path::new("empty")).unwrap();
    fx
}

/// Every operation of a backup of `mode` under its destination (reads included), and the
/// index of the last one before it exists (the fsync of the directory after the manifest's
/// rename).
fn destination_ops(mode: Mode) -> (Vec<Op>, usize) {
    let fx = fixture_for(mode);
    let dest = PathBuf::from(mode.dest());
    let ops = Arc::new(Mutex::new(Vec::new()));
    {
        let ops = Arc::clone(&ops);
        let dest = dest.clone();
        fx.w.script().set(move |op| {
            if op.under(&dest) {
                ops.lock().unwrap().push(op.clone());
            }
            Ok(())
        });
    }
    fx.inst.backup(Some(&dest), mode.flags(), None).unwrap();
    fx.w.script().clear();
    let ops = ops.lock().unwrap().clone();
    let manifest = dest.join(MANIFEST_NAME);
    let rename = ops
        .iter()
        .position(|op| matches!(op, Op::Rename(_, to) if *to == manifest))
        .expect("the manifest is renamed into place");
    let commit = rename
        + ops[rename..]
            .iter()
            .position(|op| *op == Op::SyncDir(dest.clone()))
            .expect("and its directory fsynced");
    let kinds: BTreeSet<&str> = ops[..=commit].iter().map(Op::kind).collect();
    for kind in ["write", "fsync", "create", "rename", "fsync-dir"] {
        assert!(kinds.contains(kind), "{mode:?}: a {kind} in {ops:?}");
    }
    (ops, commit)
}

/// Fails the destination operations of a backup of `mode` that `fail` picks (by index among
/// them), and checks the backup fails with `kind` and leaves everything as it was.
fn fail_destination(mode: Mode, index: usize, op: &Op, sticky: bool, kind: ErrorKind, code: i32) {
    let fx = fixture_for(mode);
    let dest = PathBuf::from(mode.dest());
    let before = fx.before(mode.dest());
    let hit = Arc::new(Mutex::new(None));
    {
        let hit = Arc::clone(&hit);
        let dest = dest.clone();
        let target_kind = op.kind();
        let mut n = 0usize;
        let mut failing = false;
        fx.w.script().set(move |op| {
            if !op.under(&dest) {
                return Ok(());
            }
            n += 1;
            if n == index + 1 {
                *hit.lock().unwrap() = Some(op.clone());
                failing = true;
            } else if !(sticky && failing && op.kind() == target_kind) {
                return Ok(());
            }
            Err(if kind == ErrorKind::DiskFull {
                io::Error::from(io::ErrorKind::StorageFull)
            } else {
                io::Error::other("injected EIO")
            })
        });
    }
    let result = fx.inst.backup(Some(&dest), mode.flags(), None);
    fx.w.script().clear();
    assert_eq!(
        hit.lock().unwrap().as_ref(),
        Some(op),
        "{mode:?}: the run reached the same operation"
    );
    let err = result.expect_err("the backup must fail");
    assert_eq!(
        (err.kind(), err.code()),
        (kind, code),
        "{mode:?}, failing {op:?} (#{index}, sticky {sticky}): {err}"
    );
    // A directory fsync failing for good after the manifest's rename leaves the put-back
    // unconfirmed: the new set's files stay.
    if sticky
        && op.kind() == "fsync-dir"
        && brief(&fx.w.tree(mode.dest())) != brief(&before.dest_tree)
    {
        fx.check_failed_keeping_files(&before, &fx.inst);
    } else {
        fx.check_failed(&before, &fx.inst);
    }
    // The next backup of the same kind works (no hold, no debris in the way).
    fx.inst.backup(Some(&dest), mode.flags(), None).unwrap();
    assert_eq!(
        restores(&fx.w.mem, mode.dest()).unwrap(),
        contents(&fx.inst)
    );
}

/// -1022: every destination operation before the manifest is durable — each write, fsync,
/// create, set-length, rename, directory creation and directory fsync, the manifest's own
/// rename and the directory fsync after it — fails once, in turn, for each kind of backup. The
/// backup fails with `JET_errDiskIO` and leaves nothing; the previous backup still restores.
/// A failure after that point is a warning: the backup exists and restores.
#[test]
fn a_failed_destination_operation_is_disk_io_and_leaves_nothing() {
    for mode in [Mode::Atomic, Mode::IntoEmpty, Mode::Incremental] {
        let (ops, commit) = destination_ops(mode);
        for (i, op) in ops.iter().enumerate().take(commit + 1) {
            if matches!(op, Op::Read(_)) {
                continue; // see a_failed_read_of_the_manifest_keeps_the_previous_backup
            }
            fail_destination(mode, i, op, false, ErrorKind::DiskIO, -1022);
        }
        // After the commit point: the backup succeeded, with a warning.
        for (i, op) in ops.iter().enumerate().skip(commit + 1) {
            let fx = fixture_for(mode);
            let dest = PathBuf::from(mode.dest());
            let mut n = 0usize;
            {
                let dest = dest.clone();
                fx.w.script().set(move |op| {
                    if op.under(&dest) {
                        n += 1;
                        if n == i + 1 {
                            return Err(io::Error::other("injected EIO after the commit point"));
                        }
                    }
                    Ok(())
                });
            }
            let summary = fx.inst.backup(Some(&dest), mode.flags(), None);
            fx.w.script().clear();
            let summary = summary.unwrap_or_else(|e| panic!("{mode:?}, {op:?}: {e}"));
            assert!(!summary.warnings.is_empty(), "{mode:?}, {op:?}: a warning");
            assert_eq!(restores(&fx.w.mem, mode.dest()).unwrap(), fx.committed);
        }
    }
}

/// Whether `op` writes the temporary manifest (or renames it into place).
fn on_manifest(op: &Op, dest: &str) -> bool {
    let tmp = PathBuf::from(dest).join(format!("{MANIFEST_NAME}.tmp"));
    match op {
        Op::Write(p) | Op::Sync(p) | Op::Create(p) => *p == tmp,
        Op::Rename(from, _) => *from == tmp,
        _ => false,
    }
}

/// -1808: the disk fills at the first, a middle and the last operation of each kind, and stays
/// full for every later operation of that kind (the clean-up's included). (When the backup
/// replaces a manifest, the operations on the new manifest are left to
/// `a_full_disk_at_the_manifest_leaves_no_temporary_manifest`.)
#[test]
fn a_full_destination_disk_is_disk_full_and_leaves_nothing() {
    for mode in [Mode::Atomic, Mode::IntoEmpty, Mode::Incremental] {
        let (ops, commit) = destination_ops(mode);
        let mut by_kind: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate().take(commit + 1) {
            let replaces = mode != Mode::IntoEmpty;
            let skipped = matches!(op, Op::Read(_)) || (replaces && on_manifest(op, mode.dest()));
            if !skipped {
                by_kind.entry(op.kind()).or_default().push(i);
            }
        }
        for indices in by_kind.values() {
            let picks: BTreeSet<usize> = [
                indices[0],
                indices[indices.len() / 2],
                indices[indices.len() - 1],
            ]
            .into();
            for i in picks {
                fail_destination(mode, i, &ops[i], true, ErrorKind::DiskFull, -1808);
            }
        }
    }
}

/// The disk fills at the new manifest's write, fsync or rename and stays full while the
/// failed backup puts the previous manifest back: the previous backup must still restore and
/// the destination hold nothing new — no `jetbackup.manifest.tmp` either.
#[test]

fn a_full_disk_at_the_manifest_leaves_no_temporary_manifest() {
    for mode in [Mode::Atomic, Mode::Incremental] {
        let (ops, commit) = destination_ops(mode);
        for (i, op) in ops.iter().enumerate().take(commit + 1) {
            if on_manifest(op, mode.dest()) {
                fail_destination(mode, i, op, true, ErrorKind::DiskFull, -1808);
            }
        }
    }
}

/// An atomic backup that cannot read the manifest of the backup it replaces (a transient read
/// error) must not lose that backup: it fails, or it keeps the previous set until the new one
/// is committed. Here the read fails, and then so does a write of the new set.
#[test]

fn a_failed_read_of_the_manifest_keeps_the_previous_backup() {
    let fx = fixture_for(Mode::Atomic);
    let before = fx.before(BK);
    let manifest = PathBuf::from(BK).join(MANIFEST_NAME);
    let reads = Arc::new(Mutex::new(0usize));
    {
        let reads = Arc::clone(&reads);
        fx.w.script().set(move |op| match op {
            Op::Read(p) if *p == manifest => {
                *reads.lock().unwrap() += 1;
                Err(io::Error::other("injected EIO on read"))
            }
            Op::Write(p) if p.starts_with(BK) => Err(io::Error::other("injected EIO")),
            _ => Ok(()),
        });
    }
    let result = fx
        .inst
        .backup(Some(Path::new(BK)), BackupFlags::ATOMIC, None);
    fx.w.script().clear();
    assert!(*reads.lock().unwrap() > 0, "the backup reads the manifest");
    let err = result.expect_err("the backup fails");
    assert_eq!(err.kind(), ErrorKind::DiskIO, "{err}");
    fx.check_failed(&before, &fx.inst);
}

// ---------------------------------------------------------------------------------------------
// Verification of what the backup copies.

/// Flips one byte of `path` at `offset` on the plain file system.
fn flip(mem: &MemVfs, path: &Path, offset: usize) {
    let mut bytes = read_all(mem, path);
    bytes[offset] ^= 0x5A;
    write_all(mem, path, &bytes);
}

/// -1018: a used page of the live database file is damaged on disk (clean in the cache, so
/// the instance itself does not notice). The backup verifies every page it copies and fails.
#[test]
fn a_damaged_database_page_fails_the_backup_with_read_verify_failure() {
    let fx = fixture_for(Mode::Atomic);
    fx.inst.checkpoint().unwrap();
    let db = Path::new(INST).join("data.edb");
    let bytes = read_all(&fx.w.mem, &db);
    let page = 4096;
    let pgno = (2..bytes.len() / page)
        .rev()
        .find(|&p| jetdb::page::verify(&bytes[p * page..(p + 1) * page], p as u32).is_ok())
        .expect("a used page");
    let offset = pgno * page + page / 2;
    for mode in [Mode::Atomic, Mode::IntoEmpty] {
        let before = fx.before(mode.dest());
        flip(&fx.w.mem, &db, offset);
        let result = fx
            .inst
            .backup(Some(Path::new(mode.dest())), mode.flags(), None);
        let err = expect_err(result, ErrorKind::ReadVerifyFailure, -1018);
        assert!(err.message().contains("data.edb"), "{err}");
        // Put the byte back (the backup wrote nothing to the file: the bytes are as they were).
        flip(&fx.w.mem, &db, offset);
        assert_eq!(read_all(&fx.w.mem, &db), bytes);
        fx.check_failed(&before, &fx.inst);
    }
}

/// -612: a byte inside a used segment of an archived live log generation that the backup
/// copies is damaged. The backup verifies every generation it copies and fails.
#[test]
fn a_damaged_archived_log_fails_the_backup_with_log_read_verify_failure() {
    let fx = fixture_for(Mode::Atomic);
    let checkpoint = fx.inst.checkpoint_position().unwrap().unwrap().generation;
    let current = fx.inst.log_position().unwrap().unwrap().generation;
    assert!(
        checkpoint < current,
        "archived generations past the checkpoint: {checkpoint} .. {current}"
    );
    // An archived generation the backup copies whose first two segments are used.
    let used = |bytes: &[u8], segment: usize| {
        let offset = segment * jetdb::log::SEGMENT_SIZE + 1000;
        bytes.len() > offset + 64 && bytes[offset..offset + 64].iter().any(|&b| b != 0)
    };
    let generation = (checkpoint..current)
        .find(|&g| {
            let path = Path::new(INST).join(jetdb::log::archive_name("edb", g));
            let bytes = read_all(&fx.w.mem, &path);
            used(&bytes, 1) && used(&bytes, 2)
        })
        .expect("an archived generation past the checkpoint with used segments");
    for (mode, segment) in [(Mode::Atomic, 1usize), (Mode::IntoEmpty, 2)] {
        let path = Path::new(INST).join(jetdb::log::archive_name("edb", generation));
        let bytes = read_all(&fx.w.mem, &path);
        let offset = segment * jetdb::log::SEGMENT_SIZE + 1000;
        assert!(
            bytes[offset..offset + 64].iter().any(|&b| b != 0),
            "segment {segment} is used"
        );
        let before = fx.before(mode.dest());
        flip(&fx.w.mem, &path, offset);
        let result = fx
            .inst
            .backup(Some(Path::new(mode.dest())), mode.flags(), None);
        let err = expect_err(result, ErrorKind::LogReadVerifyFailure, -612);
        assert!(err.message().contains(&path.display().to_string()), "{err}");
        flip(&fx.w.mem, &path, offset);
        assert_eq!(read_all(&fx.w.mem, &path), bytes);
        fx.check_failed(&before, &fx.inst);
    }
}

/// A status callback that returns an error stops the backup with exactly that error, at
/// Begin or at Progress, cleanly; an error at Complete changes nothing (the backup is done).
#[test]
fn a_status_callback_error_stops_the_backup_cleanly() {
    let stop = |at: StatusKind| {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&calls);
        let callback = move |status: &Status| {
            recorded.lock().unwrap().push(status.kind);
            if status.kind == at {
                return Err(JetError::new(
                    ErrorKind::OutOfMemory,
                    "the caller says stop",
                ));
            }
            Ok(())
        };
        (calls, callback)
    };
    for mode in [Mode::Atomic, Mode::IntoEmpty, Mode::Incremental] {
        for at in [StatusKind::Begin, StatusKind::Progress] {
            let fx = fixture_for(mode);
            let before = fx.before(mode.dest());
            let (calls, mut callback) = stop(at);
            let result = fx.inst.backup(
                Some(Path::new(mode.dest())),
                mode.flags(),
                Some(&mut callback),
            );
            let err = expect_err(
                result,
                ErrorKind::OutOfMemory,
                ErrorKind::OutOfMemory.code(),
            );
            assert_eq!(err.message(), "the caller says stop");
            let calls = calls.lock().unwrap().clone();
            assert_eq!(calls.first(), Some(&StatusKind::Begin));
            assert_eq!(
                calls.last(),
                Some(&StatusKind::Fail),
                "{mode:?} {at:?}: {calls:?}"
            );
            assert!(!calls.contains(&StatusKind::Complete));
            fx.check_failed(&before, &fx.inst);
            // Nothing holds the instance: the same backup now works.
            fx.inst
                .backup(Some(Path::new(mode.dest())), mode.flags(), None)
                .unwrap();
        }
        // At Complete the backup is done: the error is not the caller's to return.
        let fx = fixture_for(mode);
        let (calls, mut callback) = stop(StatusKind::Complete);
        fx.inst
            .backup(
                Some(Path::new(mode.dest())),
                mode.flags(),
                Some(&mut callback),
            )
            .unwrap();
        assert_eq!(calls.lock().unwrap().last(), Some(&StatusKind::Complete));
        assert_eq!(restores(&fx.w.mem, mode.dest()).unwrap(), fx.committed);
    }
}

// =============================================================================================
// JetRestore

/// A backup set of a full backup and two incremental ones (their logs written by durable
/// commits), the instance terminated; returns what it restores to.
fn backup_set(w: &World, env: Env, inst_dir: &str, dir: &str) -> (Contents, Manifest) {
    let inst = Instance::new(env, backup_params(inst_dir));
    inst.init().unwrap();
    load(&inst, 0..1500, CommitMode::Lazy);
    inst.backup(Some(Path::new(dir)), BackupFlags::NONE, None)
        .unwrap();
    load(&inst, 1500..2500, CommitMode::Durable);
    inst.backup(Some(Path::new(dir)), BackupFlags::INCREMENTAL, None)
        .unwrap();
    load(&inst, 2500..3000, CommitMode::Durable);
    inst.backup(Some(Path::new(dir)), BackupFlags::INCREMENTAL, None)
        .unwrap();
    let expected = contents(&inst);
    inst.term().unwrap();
    let manifest = manifest::read(&w.mem, Path::new(dir)).unwrap().unwrap();
    assert_eq!(manifest.backups.len(), 3);
    assert!(manifest.logs.len() >= 3, "{:?}", manifest.logs);
    (expected, manifest)
}

/// Restores `from` into a fresh, empty directory and expects `kind`; then checks the
/// destination holds nothing, and that the same instance restores the good backup there.
#[track_caller]
fn restore_fails(
    w: &World,
    from: &str,
    good: &str,
    expected: &Contents,
    kind: ErrorKind,
    code: i32,
) -> JetError {
    let dest = fresh("dest");
    w.mem.create_dir(Path::new(&dest)).unwrap();
    let inst = Instance::new(w.env(), backup_params(&dest));
    let err = expect_err(inst.restore(Path::new(from), None), kind, code);
    assert_eq!(
        w.tree(&dest),
        Tree::new(),
        "the failed restore left nothing in the destination"
    );
    assert!(
        !w.mem
            .exists(Path::new(&format!("{dest}/data.edb.restore")))
            .unwrap()
    );
    // Nothing in the way, nothing held: the same instance restores the good backup.
    inst.restore(Path::new(good), None).unwrap();
    inst.init().unwrap();
    assert_eq!(&contents(&inst), expected);
    inst.term().unwrap();
    err
}

/// A copy of backup directory `from` to damage.
fn copy(w: &World, from: &str) -> String {
    let to = fresh("copy");
    copy_tree(&w.mem, Path::new(from), Path::new(&to));
    to
}

fn set_file(dir: &str, m: &Manifest, name: &str) -> PathBuf {
    m.set_dir(Path::new(dir)).join(name)
}

/// FileNotFound: no manifest — an empty directory, a missing one, and a backup that never
/// finished (its set written, the manifest not).
#[test]
fn a_backup_without_a_manifest_is_file_not_found() {
    let w = World::new();
    let (expected, _) = backup_set(&w, w.env(), INST, BK);
    w.mem.create_dir(Path::new("empty")).unwrap();
    restore_fails(&w, "empty", BK, &expected, ErrorKind::FileNotFound, -1811);
    restore_fails(&w, "missing", BK, &expected, ErrorKind::FileNotFound, -1811);
    let unfinished = copy(&w, BK);
    w.mem
        .remove(&Path::new(&unfinished).join(MANIFEST_NAME))
        .unwrap();
    restore_fails(
        &w,
        &unfinished,
        BK,
        &expected,
        ErrorKind::FileNotFound,
        -1811,
    );
    // A failed backup leaves the same: nothing to restore.
    let inst = Instance::new(w.env(), backup_params(INST));
    inst.init().unwrap();
    w.mem.create_dir(Path::new("failed")).unwrap();
    w.script().set(|op| match op {
        Op::Rename(_, to) if to.ends_with(MANIFEST_NAME) => Err(io::Error::other("EIO")),
        _ => Ok(()),
    });
    inst.backup(Some(Path::new("failed")), BackupFlags::NONE, None)
        .unwrap_err();
    w.script().clear();
    inst.term().unwrap();
    restore_fails(&w, "failed", BK, &expected, ErrorKind::FileNotFound, -1811);
}

/// A damaged manifest (a flipped byte; cut short) is refused before anything is written.
#[test]
fn a_damaged_manifest_is_refused() {
    let w = World::new();
    let (expected, _) = backup_set(&w, w.env(), INST, BK);
    let flipped = copy(&w, BK);
    flip(&w.mem, &Path::new(&flipped).join(MANIFEST_NAME), 30);
    restore_fails(
        &w,
        &flipped,
        BK,
        &expected,
        ErrorKind::LogCorruptDuringHardRestore,
        -573,
    );
    let cut = copy(&w, BK);
    let path = Path::new(&cut).join(MANIFEST_NAME);
    let bytes = read_all(&w.mem, &path);
    write_all(&w.mem, &path, &[]);
    write_all(&w.mem, &path, &bytes[..bytes.len() - 7]);
    restore_fails(
        &w,
        &cut,
        BK,
        &expected,
        ErrorKind::LogCorruptDuringHardRestore,
        -573,
    );
}

/// -557: a log generation the manifest lists is missing from the set (the first, a middle
/// one, the last).
#[test]
fn a_missing_log_generation_is_missing_restore_log_files() {
    let w = World::new();
    let (expected, m) = backup_set(&w, w.env(), INST, BK);
    let gens: Vec<u32> = m.logs.iter().map(|l| l.generation).collect();
    for generation in [gens[0], gens[gens.len() / 2], gens[gens.len() - 1]] {
        let damaged = copy(&w, BK);
        w.mem
            .remove(&set_file(&damaged, &m, &m.log_name(generation)))
            .unwrap();
        restore_fails(
            &w,
            &damaged,
            BK,
            &expected,
            ErrorKind::MissingRestoreLogFiles,
            -557,
        );
    }
}

/// -555: a generation replaced by the same generation of another instance's log set, taken
/// from that instance's backup.
#[test]
fn a_log_of_another_log_set_is_given_log_file_has_bad_signature() {
    let w = World::new();
    let (expected, m) = backup_set(&w, w.env(), INST, BK);
    // Another instance (another seed: another log signature), the same workload.
    let (_, om) = backup_set(&w, w.plain_env(2, 1), "other", "other-bk");
    assert_ne!(om.log_signature, m.log_signature);
    let ours: BTreeSet<u32> = m.logs.iter().map(|l| l.generation).collect();
    let common: Vec<u32> = om
        .logs
        .iter()
        .map(|l| l.generation)
        .filter(|g| ours.contains(g))
        .collect();
    assert!(
        !common.is_empty(),
        "a generation in both sets: {ours:?} / {:?}",
        om.logs
    );
    for generation in [common[0], common[common.len() - 1]] {
        let damaged = copy(&w, BK);
        let name = m.log_name(generation);
        let theirs = read_all(&w.mem, set_file("other-bk", &om, &name));
        write_all(&w.mem, set_file(&damaged, &m, &name), &theirs);
        restore_fails(
            &w,
            &damaged,
            BK,
            &expected,
            ErrorKind::GivenLogFileHasBadSignature,
            -555,
        );
    }
}

/// -556: a generation that does not follow its predecessor: (1) a file of the set holding
/// another generation of the same set (a copy under the wrong name); (2) a generation of a
/// fork of the same log set — the full backup restored elsewhere and run on there, so its
/// next generations have the same signatures and numbers but another history (tmPrevGen).
#[test]
fn a_generation_out_of_sequence_is_given_log_file_is_not_contiguous() {
    let w = World::new();
    let inst = Instance::new(w.env(), backup_params(INST));
    inst.init().unwrap();
    load(&inst, 0..1500, CommitMode::Lazy);
    inst.backup(Some(Path::new(BK)), BackupFlags::NONE, None)
        .unwrap();
    let at_full = copy(&w, BK);
    load(&inst, 1500..3000, CommitMode::Durable);
    inst.backup(Some(Path::new(BK)), BackupFlags::INCREMENTAL, None)
        .unwrap();
    let expected = contents(&inst);
    inst.term().unwrap();
    let m = manifest::read(&w.mem, Path::new(BK)).unwrap().unwrap();
    let gens: Vec<u32> = m.logs.iter().map(|l| l.generation).collect();
    assert!(gens.len() >= 3, "{gens:?}");

    // (1) Generation g+1's file under g's name.
    let damaged = copy(&w, BK);
    let next = read_all(&w.mem, set_file(&damaged, &m, &m.log_name(gens[2])));
    write_all(&w.mem, set_file(&damaged, &m, &m.log_name(gens[1])), &next);
    restore_fails(
        &w,
        &damaged,
        BK,
        &expected,
        ErrorKind::GivenLogFileIsNotContiguous,
        -556,
    );

    // (2) A fork: the full backup restored elsewhere, at another time, and run on.
    let fork = Instance::new(w.plain_env(1, 5_000_000), backup_params("fork"));
    fork.restore(Path::new(&at_full), None).unwrap();
    fork.init().unwrap();
    load(&fork, 5000..6500, CommitMode::Durable);
    fork.backup(Some(Path::new("fork-bk")), BackupFlags::NONE, None)
        .unwrap();
    fork.term().unwrap();
    let fm = manifest::read(&w.mem, Path::new("fork-bk"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (fm.log_signature, fm.db_signature),
        (m.log_signature, m.db_signature),
        "the fork continues the same log set"
    );
    let full_high = m.backups[0].gen_high;
    let forked: Vec<u32> = fm
        .logs
        .iter()
        .map(|l| l.generation)
        .filter(|g| *g > full_high && gens.contains(g) && *g < *gens.last().unwrap())
        .collect();
    assert!(
        !forked.is_empty(),
        "the fork wrote generations the set has: {fm:?}"
    );
    let mut contiguity_checked = 0;
    for generation in forked {
        let name = m.log_name(generation);
        let theirs = read_all(&w.mem, set_file("fork-bk", &fm, &name));
        let ours = read_all(&w.mem, set_file(BK, &m, &name));
        let (t, o) = (
            jetdb::log::scan(&theirs, "fork").unwrap().header,
            jetdb::log::scan(&ours, "ours").unwrap().header,
        );
        assert_eq!(
            (t.generation, t.log_signature, t.db_signature),
            (o.generation, o.log_signature, o.db_signature)
        );
        assert_ne!(t.created_millis, o.created_millis, "another history");
        let damaged = copy(&w, BK);
        write_all(&w.mem, set_file(&damaged, &m, &name), &theirs);
        if t.prev_created_millis == o.prev_created_millis {
            // The fork's first generation follows the same predecessor: only the manifest's
            // CRC32 of the file tells it apart.
            restore_fails(
                &w,
                &damaged,
                BK,
                &expected,
                ErrorKind::LogCorruptDuringHardRestore,
                -573,
            );
        } else {
            restore_fails(
                &w,
                &damaged,
                BK,
                &expected,
                ErrorKind::GivenLogFileIsNotContiguous,
                -556,
            );
            contiguity_checked += 1;
        }
    }
    assert!(
        contiguity_checked > 0,
        "a forked generation after the fork's first"
    );
}

/// The number of used data segments of a log file.
fn used_segments(bytes: &[u8]) -> usize {
    jetdb::log::scan(bytes, "log").unwrap().segments_used as usize
}

/// -570: a backed-up generation cut short (a copy that never finished), or whose last written
/// segment never reached the disk.
#[test]
fn a_torn_backup_log_is_log_torn_write_during_hard_restore() {
    let w = World::new();
    let (expected, m) = backup_set(&w, w.env(), INST, BK);
    let seg = jetdb::log::SEGMENT_SIZE;
    for (i, entry) in m.logs.iter().enumerate() {
        let name = m.log_name(entry.generation);
        let bytes = read_all(&w.mem, set_file(BK, &m, &name));
        let used = used_segments(&bytes);
        if used < 2 {
            continue;
        }
        // Cut in the middle of a used segment.
        let cut = copy(&w, BK);
        let len = (1 + used / 2) * seg + seg / 3;
        write_all(&w.mem, set_file(&cut, &m, &name), &[]);
        write_all(&w.mem, set_file(&cut, &m, &name), &bytes[..len]);
        let tail = jetdb::log::scan(&bytes[..len], "cut").unwrap().tail;
        assert!(
            !matches!(tail, LogTail::Ended | LogTail::Corrupt { .. }),
            "{tail:?}"
        );
        restore_fails(
            &w,
            &cut,
            BK,
            &expected,
            ErrorKind::LogTornWriteDuringHardRestore,
            -570,
        );
        // The last used segment blank: its write never happened.
        let mut lost = bytes.clone();
        lost[used * seg..(used + 1) * seg].fill(0);
        let tail = jetdb::log::scan(&lost, "lost").unwrap().tail;
        assert!(
            !matches!(tail, LogTail::Ended | LogTail::Corrupt { .. }),
            "{tail:?}"
        );
        let torn = copy(&w, BK);
        write_all(&w.mem, set_file(&torn, &m, &name), &lost);
        restore_fails(
            &w,
            &torn,
            BK,
            &expected,
            ErrorKind::LogTornWriteDuringHardRestore,
            -570,
        );
        if i > 0 {
            return;
        }
    }
    panic!("no generation of the set has two used segments");
}

/// -573: one byte flipped in the middle of a backed-up generation, in a segment a later one
/// vouches for (its durable mark): damage, not a tear.
#[test]
fn a_corrupt_backup_log_is_log_corrupt_during_hard_restore() {
    let w = World::new();
    let (expected, m) = backup_set(&w, w.env(), INST, BK);
    let seg = jetdb::log::SEGMENT_SIZE;
    let mut tried = 0;
    for entry in &m.logs {
        let name = m.log_name(entry.generation);
        let bytes = read_all(&w.mem, set_file(BK, &m, &name));
        let used = used_segments(&bytes);
        for segment in 1..used {
            let mut damaged_bytes = bytes.clone();
            damaged_bytes[segment * seg + seg / 2] ^= 0x10;
            let tail = jetdb::log::scan(&damaged_bytes, "x").unwrap().tail;
            if !matches!(tail, LogTail::Corrupt { .. }) {
                continue;
            }
            let damaged = copy(&w, BK);
            write_all(&w.mem, set_file(&damaged, &m, &name), &damaged_bytes);
            restore_fails(
                &w,
                &damaged,
                BK,
                &expected,
                ErrorKind::LogCorruptDuringHardRestore,
                -573,
            );
            tried += 1;
            break;
        }
    }
    assert!(
        tried >= 2,
        "segments later ones vouch for, in {tried} generations"
    );
}

/// -1018: a used page of the backup's database copy is damaged.
#[test]
fn a_damaged_page_in_the_backup_is_read_verify_failure() {
    let w = World::new();
    let (expected, m) = backup_set(&w, w.env(), INST, BK);
    let damaged = copy(&w, BK);
    let db = set_file(&damaged, &m, &m.db_name);
    let bytes = read_all(&w.mem, &db);
    let page = m.page_size as usize;
    let used: Vec<usize> = (0..bytes.len() / page)
        .filter(|&p| jetdb::page::verify(&bytes[p * page..(p + 1) * page], p as u32).is_ok())
        .collect();
    assert!(used.len() > 3);
    for pgno in [used[2], used[used.len() - 1]] {
        let damaged = copy(&w, BK);
        flip(
            &w.mem,
            &set_file(&damaged, &m, &m.db_name),
            pgno * page + 100,
        );
        restore_fails(
            &w,
            &damaged,
            BK,
            &expected,
            ErrorKind::ReadVerifyFailure,
            -1018,
        );
    }
}

/// -1850: a restore into an instance that runs; nothing of it is touched.
#[test]
fn a_restore_after_init_is_after_initialization() {
    let fx = fixture();
    let before = fx.before("dest");
    let result = fx.inst.restore(Path::new(BK), None);
    expect_err(result, ErrorKind::AfterInitialization, -1850);
    fx.check_refused(&before);
}

/// DatabaseDuplicate: a destination holding a database, a checkpoint, or a log of the
/// instance's names is refused, and nothing there is touched.
#[test]
fn a_restore_over_a_database_is_database_duplicate() {
    let w = World::new();
    let (expected, _) = backup_set(&w, w.env(), INST, BK);
    let inst = Instance::new(w.env(), backup_params("dup"));
    inst.restore(Path::new(BK), None).unwrap();
    let everything = w.everything();
    expect_err(
        inst.restore(Path::new(BK), None),
        ErrorKind::DatabaseDuplicate,
        -1201,
    );
    assert_eq!(
        brief(&w.everything()),
        brief(&everything),
        "nothing touched"
    );
    inst.init().unwrap();
    assert_eq!(contents(&inst), expected);
    inst.term().unwrap();
    // Only one file of an instance's names in the place.
    let restored = w.tree("dup");
    for name in ["edb.chk", "edb.log", "data.edb"] {
        let dir = fresh("one-file");
        w.mem.create_dir(Path::new(&dir)).unwrap();
        let bytes = restored[name].clone().unwrap();
        write_all(&w.mem, Path::new(&dir).join(name), &bytes);
        let everything = w.everything();
        let inst = Instance::new(w.env(), backup_params(&dir));
        expect_err(
            inst.restore(Path::new(BK), None),
            ErrorKind::DatabaseDuplicate,
            -1201,
        );
        assert_eq!(
            brief(&w.everything()),
            brief(&everything),
            "{name}: nothing touched"
        );
    }
    let dir = fresh("one-file");
    w.mem.create_dir(Path::new(&dir)).unwrap();
    let archived = restored
        .keys()
        .find(|n| n.starts_with("edb0"))
        .expect("an archived generation")
        .clone();
    write_all(&w.mem, Path::new(&dir).join(&archived), b"x");
    let everything = w.everything();
    let inst = Instance::new(w.env(), backup_params(&dir));
    expect_err(
        inst.restore(Path::new(BK), None),
        ErrorKind::DatabaseDuplicate,
        -1201,
    );
    assert_eq!(brief(&w.everything()), brief(&everything));
}

/// Every operation a restore of `BK` makes under its destination, reads left out.
fn restore_ops(w: &World) -> Vec<Op> {
    let ops = Arc::new(Mutex::new(Vec::new()));
    {
        let ops = Arc::clone(&ops);
        w.script().set(move |op| {
            if op.under(Path::new("probe")) && !matches!(op, Op::Read(_)) {
                ops.lock().unwrap().push(op.clone());
            }
            Ok(())
        });
    }
    w.mem.create_dir(Path::new("probe")).unwrap();
    Instance::new(w.env(), backup_params("probe"))
        .restore(Path::new(BK), None)
        .unwrap();
    w.script().clear();
    let ops = ops.lock().unwrap().clone();
    let kinds: BTreeSet<&str> = ops.iter().map(Op::kind).collect();
    for kind in ["write", "fsync", "create", "rename", "fsync-dir", "set-len"] {
        assert!(kinds.contains(kind), "a {kind} in {ops:?}");
    }
    ops
}

/// Fails the `index`-th operation of a restore of `BK` into a fresh directory: the restore
/// fails with an I/O error and the destination holds nothing; then the same instance restores
/// there.
fn fail_restore_at(w: &World, index: usize, expected: &Contents) {
    let dest = fresh("dest");
    w.mem.create_dir(Path::new(&dest)).unwrap();
    let hit = Arc::new(Mutex::new(None));
    {
        let hit = Arc::clone(&hit);
        let dir = PathBuf::from(&dest);
        let mut n = 0usize;
        w.script().set(move |op| {
            if op.under(&dir) && !matches!(op, Op::Read(_)) {
                n += 1;
                if n == index + 1 {
                    *hit.lock().unwrap() = Some(op.clone());
                    return Err(io::Error::other("injected EIO"));
                }
            }
            Ok(())
        });
    }
    let inst = Instance::new(w.env(), backup_params(&dest));
    let result = inst.restore(Path::new(BK), None);
    w.script().clear();
    let op = hit
        .lock()
        .unwrap()
        .clone()
        .expect("the run reached the operation");
    let err = result.expect_err("the restore fails");
    // The log's own I/O errors are LogWriteFail, the checkpoint's and the database's DiskIO.
    assert!(
        matches!(err.kind(), ErrorKind::DiskIO | ErrorKind::LogWriteFail),
        "{op:?}: {err}"
    );
    assert_eq!(
        brief(&w.tree(&dest)),
        BTreeMap::new(),
        "{op:?}: the failed restore left nothing"
    );
    inst.restore(Path::new(BK), None).unwrap();
    inst.init().unwrap();
    assert_eq!(&contents(&inst), expected);
    inst.term().unwrap();
}

/// The first, a middle and the last operation of each kind on each file.
fn picks(ops: &[Op]) -> BTreeSet<usize> {
    let mut groups: BTreeMap<(String, &str), Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let name = op
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        groups.entry((name, op.kind())).or_default().push(i);
    }
    groups
        .values()
        .flat_map(|v| [v[0], v[v.len() / 2], v[v.len() - 1]])
        .collect()
}

fn on_checkpoint_tmp(op: &Op) -> bool {
    match op {
        Op::Rename(from, _) => from.ends_with("edb.chk.tmp"),
        Op::Write(p) | Op::Sync(p) | Op::Create(p) => p.ends_with("edb.chk.tmp"),
        _ => false,
    }
}

/// A restore whose destination writes fail — the first, a middle and the last of each kind
/// of operation on each file (the logs, the database copy, the checkpoint, and what recovery
/// writes afterwards), once, in turn — fails with an I/O error and leaves nothing there. (The
/// checkpoint's temporary file is left to
/// `a_failed_checkpoint_write_during_restore_leaves_nothing`.)
#[test]
fn a_failed_restore_write_leaves_nothing_in_the_destination() {
    let w = World::new();
    let (expected, _) = backup_set(&w, w.env(), INST, BK);
    let ops = restore_ops(&w);
    for i in picks(&ops) {
        if !on_checkpoint_tmp(&ops[i]) {
            fail_restore_at(&w, i, &expected);
        }
    }
}

/// The same for the checkpoint the restore writes (as `edb.chk.tmp`, renamed to `edb.chk`):
/// a failed write, fsync or rename of it must not leave `edb.chk.tmp` in the destination.
#[test]

fn a_failed_checkpoint_write_during_restore_leaves_nothing() {
    let w = World::new();
    let (expected, _) = backup_set(&w, w.env(), INST, BK);
    let ops = restore_ops(&w);
    let mut tried = 0;
    for (i, op) in ops.iter().enumerate() {
        if on_checkpoint_tmp(op) {
            fail_restore_at(&w, i, &expected);
            tried += 1;
        }
    }
    assert!(tried >= 3);
}

/// A status callback that returns an error stops the restore with that error, and the
/// destination holds nothing.
#[test]
fn a_status_callback_error_stops_the_restore_cleanly() {
    let w = World::new();
    let (expected, _) = backup_set(&w, w.env(), INST, BK);
    for at in [StatusKind::Begin, StatusKind::Progress] {
        let dest = fresh("dest");
        w.mem.create_dir(Path::new(&dest)).unwrap();
        let inst = Instance::new(w.env(), backup_params(&dest));
        let mut calls = Vec::new();
        let mut callback = |status: &Status| {
            calls.push(status.kind);
            if status.kind == at {
                return Err(JetError::new(ErrorKind::OutOfMemory, "stop the restore"));
            }
            Ok(())
        };
        let err = inst
            .restore(Path::new(BK), Some(&mut callback))
            .expect_err("stopped");
        assert_eq!(
            (err.kind(), err.message()),
            (ErrorKind::OutOfMemory, "stop the restore")
        );
        assert_eq!(calls.last(), Some(&StatusKind::Fail), "{calls:?}");
        assert!(w.tree(&dest).is_empty());
        inst.restore(Path::new(BK), None).unwrap();
        inst.init().unwrap();
        assert_eq!(contents(&inst), expected);
        inst.term().unwrap();
    }
}
