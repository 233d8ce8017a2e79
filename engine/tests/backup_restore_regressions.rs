//! Bugs a review of issue 13's change found, each a test that failed before its fix: a
//! truncation outliving its instance deleted the next instance's logs; a restore marker whose
//! removal was not durable came back over a live instance (and a retry wiped its commits); a
//! retry with other paths took another instance's files for its debris. And one found sound:
//! an incremental backup begun during a truncation keeps its logs.

#![allow(
    clippy::disallowed_methods,
    reason = "an incremental backup begun by another thread between two removals"
)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jetdb::{BackupFlags, CommitMode, ErrorKind, Instance, Vfs};

mod support;

use support::{Hook, HookedVfs, backup_params, env, key};

type Action = Box<dyn FnMut() + Send>;

/// Runs an action once, at the first fsync of directory `inst` after it is armed (by the
/// rename of the backup's manifest, the backup's commit point).
#[derive(Default)]
struct AfterCommit {
    armed: AtomicBool,
    action: Mutex<Option<Action>>,
}

impl std::fmt::Debug for AfterCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterCommit")
    }
}

impl Hook for AfterCommit {
    fn rename(&self, from: &Path, _: &Path) -> std::io::Result<()> {
        if from.ends_with("jetbackup.manifest.tmp") {
            self.armed.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
    fn sync_dir_of(&self, path: &Path) -> std::io::Result<()> {
        if path == Path::new("inst") && self.armed.swap(false, Ordering::SeqCst) {
            let taken = self.action.lock().unwrap().take();
            if let Some(mut action) = taken {
                action();
            }
        }
        Ok(())
    }
}

fn load(inst: &Instance, tag: u8) {
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").or_else(|_| s.create_table("t")).unwrap();
    for batch in 0..30u32 {
        s.begin_transaction().unwrap();
        for i in batch * 100..batch * 100 + 100 {
            s.put(t, &key(i), &[tag; 150]).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
}

fn logs_in(vfs: &jetdb::MemVfs) -> Vec<String> {
    let mut v: Vec<String> = vfs
        .list(Path::new("inst"))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

/// A backup's truncation removes its generations one at a time outside the lock, the lock
/// taken for each. If the instance is terminated and initialised again meanwhile (here: on
/// a fresh log set, after the place was emptied), the rest of the old truncation's list is
/// removed from the *new* instance: generations its crash recovery needs.
#[test]
fn a_truncation_outliving_its_instance_leaves_the_next_instances_logs() {
    let hook = Arc::new(AfterCommit::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let mem = vfs.inner.clone();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    load(&inst, b'a');
    inst.checkpoint().unwrap();

    let other = inst.clone();
    let mem2 = mem.clone();
    let new_logs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&new_logs);
    *hook.action.lock().unwrap() = Some(Box::new(move || {
        // Between two removals of the truncation: term, empty the place, a new instance.
        other.term().unwrap();
        for name in mem2.list(Path::new("inst")).unwrap() {
            mem2.remove(&Path::new("inst").join(name)).unwrap();
        }
        other.init().unwrap();
        load(&other, b'b');
        *seen.lock().unwrap() = logs_in(&mem2);
    }));
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let before = new_logs.lock().unwrap().clone();
    let after = logs_in(&mem);
    // A crash of the new instance now: its recovery needs every generation from its
    // checkpoint on.
    drop(inst);
    let again = Instance::new(env(vfs.clone()), backup_params("inst"));
    let recovered = again.init();
    assert_eq!(
        before, after,
        "the old instance's truncation deleted the new instance's logs (recovery: {recovered:?})"
    );
    recovered.unwrap();
    let _ = ErrorKind::MissingLogFile;
}

mod marker {
    use std::path::Path;

    use jetdb::{BackupFlags, ErrorKind, Instance, MemVfs, Vfs};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::support::crash_disk::CrashVfs;
    use crate::support::{backup_params, contents, env, key};

    /// A full backup on a `MemVfs`, in `bk`.
    fn backup_set() -> MemVfs {
        let vfs = MemVfs::new();
        let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
        inst.init().unwrap();
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        for i in 0..300 {
            s.put(t, &key(i), &[b'a'; 120]).unwrap();
        }
        inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
            .unwrap();
        inst.term().unwrap();
        vfs
    }

    /// A restore killed (the process only) between the removal of its marker and the fsync
    /// that makes the removal durable. The place looks whole: init opens it, and the
    /// instance takes durable commits. Nothing the instance does fsyncs the directory, so a
    /// power loss later brings the marker back: init then refuses (-544), and the restore it
    /// tells the user to run "clears what the first one left" — the commits made since.
    #[test]
    fn a_marker_whose_removal_was_not_durable_never_comes_back_over_a_live_instance() {
        let files = backup_set();
        let disk = CrashVfs::holding(&files, Path::new("bk"));
        let before = disk.used();
        Instance::new(env(disk.clone()), backup_params("r"))
            .restore(Path::new("bk"), None)
            .unwrap();
        let operations = disk.used() - before;
        let marker = Path::new("r/edb.restoring");
        let (mut found, mut opened) = (false, 0);
        for kill_at in (operations.saturating_sub(12)..operations).rev() {
            let disk = CrashVfs::holding(&files, Path::new("bk"));
            disk.refuel(kill_at);
            let killed =
                Instance::new(env(disk.clone()), backup_params("r")).restore(Path::new("bk"), None);
            assert!(killed.is_err() && disk.dead());
            disk.revive();
            if disk.exists(marker).unwrap() || !disk.exists(Path::new("r/data.edb")).unwrap() {
                continue;
            }
            // The process is gone, the place looks whole: the user opens it and commits.
            let inst = Instance::new(env(disk.clone()), backup_params("r"));
            inst.init().unwrap();
            let mut s = inst.begin_session().unwrap();
            let t = s.open_table("t").unwrap();
            s.put(t, b"committed-after-the-restore", b"durable")
                .unwrap();
            drop(s);
            let committed = contents(&inst);
            opened += 1;
            drop(inst); // a crash of that instance, or not: nothing below needs it.
            for seed in 0..64 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let (vfs, notes) = disk.power_loss(&mut rng, false);
                if !vfs.exists(marker).unwrap() {
                    continue;
                }
                found = true;
                let err = Instance::new(env(vfs.clone()), backup_params("r"))
                    .init()
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::SoftRecoveryOnBackupDatabase);
                // What the error message says to do:
                let again = Instance::new(env(vfs.clone()), backup_params("r"));
                let summary = again.restore(Path::new("bk"), None).unwrap();
                again.init().unwrap();
                let now = contents(&again);
                again.term().unwrap();
                assert!(
                    now == committed,
                    "killed at operation {kill_at} of {operations}, power lost after a durable commit (undone: {notes:?}): the marker came back, init refused, and the restore removed {:?}",
                    summary.debris_removed
                );
                let _ = &committed;
            }
        }
        // With init making the marker's absence durable, no power loss brings it back.
        assert!(opened > 0, "no kill point left a place that looked whole");
        assert!(
            !found,
            "a power loss brought the marker back over a live instance"
        );
    }
}

/// The marker says only "a restore began here", not where it wrote. A retry whose log path
/// (or database path) differs from the crashed attempt's takes whatever it finds under the
/// *new* names for debris: here the logs of another, finished instance, which a restore
/// without the marker refuses to touch (`JET_errDatabaseDuplicate`).
/// A marker names the paths its restore wrote to: a retry with other paths (a typo, a changed
/// `--log-dir`) is refused as the place would be without a marker, and removes nothing.
#[test]
fn a_retry_with_another_log_path_is_refused_and_removes_nothing() {
    use jetdb::InstanceParams;
    let vfs = jetdb::MemVfs::new();
    // A backup to restore.
    let src = Instance::new(env(vfs.clone()), backup_params("src"));
    src.init().unwrap();
    load(&src, b's');
    src.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    src.term().unwrap();
    // Another instance, finished, whose logs live in "logs-b".
    let b_params = InstanceParams {
        log_path: "logs-b".into(),
        system_path: "sys-b".into(),
        database_path: "db-b/data.edb".into(),
        ..backup_params("unused")
    };
    let b = Instance::new(env(vfs.clone()), b_params.clone());
    b.init().unwrap();
    load(&b, b'b');
    b.term().unwrap();
    let b_logs: Vec<String> = vfs.list(Path::new("logs-b")).unwrap();
    // A restore into "sys"/"logs-a"/"db" killed just after its marker was written.
    let crashed = InstanceParams {
        log_path: "logs-a".into(),
        system_path: "sys".into(),
        database_path: "db/data.edb".into(),
        ..backup_params("unused")
    };
    let mut first = None;
    let mut kill = |s: &jetdb::Status| {
        if s.kind == jetdb::StatusKind::Begin {
            // (The marker is durable by now; copy it as the killed process left it.)
            first = Some(support::read_all(&vfs, "sys/edb.restoring"));
        }
        Err(jetdb::JetError::new(ErrorKind::BackupAbortByCaller, "stop"))
    };
    let _ = Instance::new(env(vfs.clone()), crashed).restore(Path::new("bk"), Some(&mut kill));
    support::write_all(
        &vfs,
        "sys/edb.restoring",
        &first.expect("the restore began"),
    );
    // Retried with the log directory pointed elsewhere.
    let retry = InstanceParams {
        log_path: "logs-b".into(),
        system_path: "sys".into(),
        database_path: "db/data.edb".into(),
        ..backup_params("unused")
    };
    let refused = Instance::new(env(vfs.clone()), retry)
        .restore(Path::new("bk"), None)
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::DatabaseDuplicate, "{refused}");
    assert!(refused.message().contains("other paths"), "{refused}");
    assert_eq!(vfs.list(Path::new("logs-b")).unwrap(), b_logs);
    let b_again = Instance::new(env(vfs.clone()), b_params);
    b_again.init().unwrap();
    b_again.term().unwrap();
}

/// (Expected sound.) An incremental backup that begins between two removals of a truncation
/// holds its generations: the rest of the truncation skips them, and the incremental succeeds
/// and restores.
#[test]
fn an_incremental_begun_during_a_truncation_keeps_its_logs() {
    let hook = Arc::new(AfterCommit::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let mem = vfs.inner.clone();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    load(&inst, b'a');
    inst.backup(Some(Path::new("bk1")), BackupFlags::NONE, None)
        .unwrap();
    load(&inst, b'b');
    inst.checkpoint().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (began_tx, began_rx) = std::sync::mpsc::channel::<Option<(u32, u32)>>();
    let go_rx = Arc::new(Mutex::new(Some(go_rx)));
    let runner = inst.clone();
    let handle: Arc<Mutex<Option<std::thread::JoinHandle<jetdb::Result<jetdb::BackupSummary>>>>> =
        Arc::new(Mutex::new(None));
    let h2 = Arc::clone(&handle);
    *hook.action.lock().unwrap() = Some(Box::new(move || {
        let go = go_rx.lock().unwrap().take().unwrap();
        let runner = runner.clone();
        let began = began_tx.clone();
        let t = std::thread::spawn(move || {
            let job = runner.begin_backup(Some(Path::new("bk1")), BackupFlags::INCREMENTAL, None);
            let mut job = match job {
                Ok(job) => {
                    began.send(job.logs()).unwrap();
                    job
                }
                Err(e) => {
                    began.send(None).unwrap();
                    return Err(e);
                }
            };
            go.recv().unwrap();
            while job.step()? {}
            job.finish()
        });
        assert!(
            began_rx.recv().unwrap().is_some(),
            "the incremental began between two removals"
        );
        *h2.lock().unwrap() = Some(t);
    }));
    inst.backup(Some(Path::new("bk2")), BackupFlags::NONE, None)
        .unwrap();
    go_tx.send(()).unwrap();
    let t = handle.lock().unwrap().take().expect("the hook ran");
    let incremental = t.join().unwrap();
    incremental.unwrap();
    let expected = support::contents(&inst);
    inst.term().unwrap();
    let got = support::restore_contents(env(mem.clone()), backup_params("r"), "bk1").unwrap();
    assert!(
        got == expected,
        "bk1 restores to the state at the incremental's begin"
    );
}
