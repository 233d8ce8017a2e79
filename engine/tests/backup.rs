//! Online backup and restore: the backup point, online copying under a stream of commits,
//! incremental chains, atomic replacement, truncation, and what restore refuses; and the bugs
//! a review found (a database copy of another backup restored silently, a job outliving its
//! instance, a crafted manifest panicking restore, a failed put-back of the previous manifest
//! deleting the files the directory names, an atomic backup replacing another database's).

use std::path::Path;

use jetdb::{
    BackupFlags, CommitMode, ErrorKind, Event, EventLog, Instance, MemVfs, Status, StatusKind, Vfs,
};

mod support;

use support::{
    Contents, backup_params, contents, env, env_with, key, loaded, read_all, restore_contents,
    write_all,
};

/// An instance initialised in `inst` on a disk whose operations a test script may fail, the
/// script's handle, and the disk beneath it.
fn scripted_instance() -> (support::HookedVfs<support::Script>, MemVfs, Instance) {
    let (hooked, mem) = support::scripted_vfs();
    let inst = Instance::new(env(hooked.clone()), backup_params("inst"));
    inst.init().unwrap();
    (hooked, mem, inst)
}

/// Restores `backup` into directory `dir` and returns what the restored database holds.
fn restored(vfs: &MemVfs, backup: &str, dir: &str) -> jetdb::Result<Contents> {
    restore_contents(env(vfs.clone()), backup_params(dir), backup)
}

/// The backup holds exactly what was committed before it began, though commits, checkpoints
/// and page write-backs go on between its steps (the copy-before-write fence keeps the pages
/// it has not copied yet as they were), and a transaction open at the begin commits later.
#[test]
fn a_full_backup_restores_exactly_the_state_at_its_begin() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 3000);
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    let mut open = inst.begin_session().unwrap();
    open.begin_transaction().unwrap();
    open.put(t, b"open-at-begin", b"x").unwrap();
    let expected = contents(&inst);

    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    job.set_step_size(4096 * 3);
    open.commit_transaction(CommitMode::Durable).unwrap();
    let mut round = 0u32;
    while job.step().unwrap() {
        s.begin_transaction().unwrap();
        for i in (round * 37..3000).step_by(50) {
            s.put(t, &key(i), &round.to_le_bytes()).unwrap();
        }
        s.delete(t, &key(round)).unwrap();
        s.commit_transaction(CommitMode::Lazy).unwrap();
        if round.is_multiple_of(3) {
            inst.checkpoint().unwrap(); // writes the changed pages over the file
        }
        round += 1;
    }
    let summary = job.finish().unwrap();
    assert!(round > 20, "the copy ran over many steps ({round})");
    let after = contents(&inst);
    assert_ne!(after, expected);
    assert_eq!(summary.sequence, {
        let h = inst.database_header().unwrap();
        assert_eq!(h.backup_full.gen_high, summary.logs.unwrap().1);
        summary.sequence
    });
    inst.term().unwrap();

    assert_eq!(restored(&vfs, "bk", "r1").unwrap(), expected);
    // The live instance lost nothing either.
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    assert_eq!(contents(&inst), after);
    inst.term().unwrap();
}

/// Incremental backups add only the new logs; the set restores to the last one's begin.
#[test]
fn an_incremental_chain_restores_to_its_last_backup() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 500);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    let mut states = Vec::new();
    for round in 0..3u32 {
        for i in 0..40 {
            s.put(t, &key(1000 + round * 40 + i), b"incremental")
                .unwrap();
        }
        s.delete(t, &key(round)).unwrap();
        states.push(contents(&inst));
        let summary = inst
            .backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None)
            .unwrap();
        assert_eq!(
            summary.database_bytes, 0,
            "an incremental copies no database"
        );
        assert!(summary.log_bytes > 0);
        s.put(t, b"after", &round.to_le_bytes()).unwrap();
    }
    let header = inst.database_header().unwrap();
    assert!(header.backup_incremental.is_set());
    assert!(header.backup_full.is_set());
    inst.term().unwrap();
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), states[2]);
}

/// An atomic full backup that fails leaves the previous one restorable and writes nothing of
/// its own; a non-atomic one into a directory holding a backup is refused.
#[test]
fn an_atomic_backup_keeps_the_previous_one_when_it_fails() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 800);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let first = contents(&inst);
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.put(t, b"later", b"1").unwrap();
    let listing = |vfs: &MemVfs| {
        let mut all = vfs.list(Path::new("bk")).unwrap();
        for name in all.clone() {
            if let Ok(inner) = vfs.list(&Path::new("bk").join(&name)) {
                all.extend(inner.into_iter().map(|n| format!("{name}/{n}")));
            }
        }
        all.sort();
        all
    };
    let before = listing(&vfs);

    let err = inst
        .backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackupDirectoryNotEmpty);

    // The status callback stops the atomic backup half-way.
    let mut calls = Vec::new();
    let mut callback = |status: &Status| {
        calls.push(status.kind);
        if status.kind == StatusKind::Progress {
            return Err(jetdb::JetError::new(ErrorKind::BackupAbortByCaller, "stop"));
        }
        Ok(())
    };
    let mut job = inst
        .begin_backup(
            Some(Path::new("bk")),
            BackupFlags::ATOMIC,
            Some(&mut callback),
        )
        .unwrap();
    job.set_step_size(4096);
    let err = loop {
        match job.step() {
            Ok(true) => {}
            Ok(false) => panic!("the callback should have stopped it"),
            Err(err) => break err,
        }
    };
    drop(job);
    assert_eq!(err.kind(), ErrorKind::BackupAbortByCaller);
    assert_eq!(
        calls,
        [StatusKind::Begin, StatusKind::Progress, StatusKind::Fail]
    );
    assert_eq!(listing(&vfs), before, "the failed backup left nothing");
    inst.term().unwrap();
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), first);

    // A successful atomic backup replaces it.
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let now = contents(&inst);
    inst.backup(Some(Path::new("bk")), BackupFlags::ATOMIC, None)
        .unwrap();
    assert_eq!(
        listing(&vfs)
            .iter()
            .filter(|n| n.starts_with("set-") && !n.contains('/'))
            .count(),
        1,
        "the replaced set is removed"
    );
    inst.term().unwrap();
    assert_eq!(restored(&vfs, "bk", "r2").unwrap(), now);
}

/// Truncation deletes the logs below the checkpoint and the last backup, never one the next
/// incremental backup needs, and the instance still recovers after it. (It takes no
/// checkpoint of its own: what the checkpoint has not passed goes at a later truncation.)
#[test]
fn truncation_keeps_what_recovery_and_the_next_incremental_need() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 4000);
    let gens = |vfs: &MemVfs| -> Vec<String> {
        let mut names: Vec<String> = vfs
            .list(Path::new("inst"))
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("edb0"))
            .collect();
        names.sort();
        names
    };
    assert!(gens(&vfs).len() >= 2, "{:?}", gens(&vfs));
    // Without a backup recorded, nothing goes.
    let before = gens(&vfs);
    assert_eq!(
        inst.backup(None, BackupFlags::NONE, None)
            .unwrap()
            .truncated,
        None
    );
    assert_eq!(gens(&vfs), before);
    inst.checkpoint().unwrap();
    let checkpoint = inst.checkpoint_position().unwrap().unwrap().generation;
    let full = inst
        .backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let (low, high) = full.truncated.expect("the full backup truncated its logs");
    // Everything below the checkpoint went; the backup's own generations stay until the
    // checkpoint passes them.
    assert_eq!((low, high), (1, checkpoint - 1));
    let (copied_low, copied_high) = full.logs.unwrap();
    assert_eq!(copied_low, checkpoint);
    assert_eq!(
        gens(&vfs).len() as u32,
        copied_high - copied_low + 1,
        "{:?}",
        gens(&vfs)
    );
    inst.checkpoint().unwrap();
    let later = inst.backup(None, BackupFlags::NONE, None).unwrap();
    assert_eq!(later.truncated, Some((copied_low, copied_high)));
    assert!(gens(&vfs).is_empty(), "{:?}", gens(&vfs));
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in 0..1500 {
        s.put(t, &key(i), b"after the full backup").unwrap();
    }
    // A truncation with no backup since keeps every log after the last backup.
    let before = gens(&vfs);
    assert!(!before.is_empty());
    let none = inst.backup(None, BackupFlags::NONE, None).unwrap();
    assert_eq!(none.truncated, None);
    assert_eq!(gens(&vfs), before);
    let expected = contents(&inst);
    inst.backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None)
        .unwrap();
    drop(s);
    drop(inst); // a crash: recovery still works after the truncations
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    assert_eq!(contents(&inst), expected);
    inst.term().unwrap();
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), expected);
}

/// Events name each step; a restore into a place holding a database is refused.
#[test]
fn events_report_each_step_and_restore_refuses_a_taken_place() {
    let vfs = MemVfs::new();
    let (log, events) = EventLog::collect();
    let mut p = backup_params("inst");
    p.event_log = log;
    let inst = Instance::new(env(vfs.clone()), p);
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.put(t, b"a", b"1").unwrap();
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let kinds: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            format!("{:?}", r.event)
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("BackupBegin"));
    assert!(kinds.iter().any(|k| k == "LogRange"));
    assert!(kinds.iter().filter(|k| *k == "FileCopied").count() >= 2);
    assert_eq!(kinds.last().map(String::as_str), Some("BackupSucceeded"));
    let err = inst.restore(Path::new("bk"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AfterInitialization);
    inst.term().unwrap();
    let err = inst.restore(Path::new("bk"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DatabaseDuplicate);
    assert!(matches!(
        events.lock().unwrap().last().map(|r| &r.event),
        Some(Event::RestoreFailed { .. })
    ));
    // The refused restore removed nothing of the live instance.
    inst.init().unwrap();
    assert_eq!(contents(&inst).len(), 1);
    inst.term().unwrap();
}

// Bugs a review found, each test failing on the engine before its fix.

fn set_db(vfs: &MemVfs, dir: &str) -> std::path::PathBuf {
    let m = jetdb::manifest::read(vfs, Path::new(dir)).unwrap().unwrap();
    m.set_dir(Path::new(dir)).join(&m.db_name)
}

/// Restore takes a database copy from another backup of the same database (same signatures,
/// same length) without a word, and gives a state that is neither backup's snapshot.
#[test]
fn restore_refuses_the_database_copy_of_another_backup() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in 0..600 {
        s.put(t, &key(i), &[b'a'; 150]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    inst.checkpoint().unwrap();
    let first = contents(&inst);
    inst.backup(Some(Path::new("a")), BackupFlags::NONE, None)
        .unwrap();
    // Same keys, new values: the file keeps its length.
    s.begin_transaction().unwrap();
    for i in 0..600 {
        s.put(t, &key(i), &[b'b'; 150]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    inst.checkpoint().unwrap();
    let second = contents(&inst);
    inst.backup(Some(Path::new("b")), BackupFlags::NONE, None)
        .unwrap();
    drop(s);
    inst.term().unwrap();

    let (a, b) = (set_db(&vfs, "a"), set_db(&vfs, "b"));
    let (da, db) = (read_all(&vfs, &a), read_all(&vfs, &b));
    assert_eq!(
        da.len(),
        db.len(),
        "same length: the size check cannot tell"
    );
    write_all(&vfs, &a, &db);
    let err = restored(&vfs, "a", "r").expect_err("a swapped database copy is refused");
    assert_eq!(
        err.kind(),
        jetdb::ErrorKind::RestoreOfNonBackupDatabase,
        "{err}"
    );
    // Put back, it restores again.
    write_all(&vfs, &a, &da);
    assert_eq!(restored(&vfs, "a", "r2").unwrap(), first);
    assert_eq!(restored(&vfs, "b", "r3").unwrap(), second);
}

/// A job that outlives a term and a new init of its instance.
#[test]
fn a_job_across_term_and_init_fails_and_leaves_nothing() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in 0..600 {
        s.put(t, &key(i), &[b'a'; 150]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    drop(s);
    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    job.set_step_size(4096);
    assert!(job.step().unwrap());
    inst.term().unwrap();
    inst.init().unwrap();
    // At its very next step (its database copy is not done): the new init's pager knows
    // nothing of the job's fence, so nothing it copied from here on would be the begin's.
    let err = job.step().unwrap_err();
    assert_eq!(err.kind(), jetdb::ErrorKind::BackupAbortByServer, "{err}");
    let left: Vec<String> = vfs.list(Path::new("bk")).unwrap();
    assert!(left.is_empty(), "left {left:?}");
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
}

/// A manifest with a valid CRC but absurd lengths panics the restore (debug builds).
#[test]
fn a_crafted_manifest_does_not_panic_restore() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.put(t, b"a", b"b").unwrap();
    drop(s);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
    let mut m = jetdb::manifest::read(&vfs, Path::new("bk"))
        .unwrap()
        .unwrap();
    m.logs[0].len = u64::MAX;
    write_all(
        &vfs,
        Path::new("bk").join(jetdb::manifest::MANIFEST_NAME),
        &m.encode(),
    );
    let r = std::panic::catch_unwind(|| restored(&vfs, "bk", "r").map(|_| ()));
    let err = r
        .expect("restore does not panic on a crafted manifest")
        .unwrap_err();
    assert_eq!(
        err.kind(),
        jetdb::ErrorKind::LogCorruptDuringHardRestore,
        "{err}"
    );
}

/// An atomic backup whose commit fails at the directory fsync after the manifest's rename,
/// on a disk that is then full: the clean-up cannot put the previous manifest back. It must
/// then keep the new set's files, which the manifest in place names: the directory restores
/// to one of the two backups' snapshots, never to nothing.
#[test]
fn a_failed_commit_whose_manifest_cannot_be_put_back_keeps_a_restorable_directory() {
    use support::Op;
    let (hooked, mem, inst) = scripted_instance();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for i in 0..200 {
        s.put(t, &key(i), &[b'a'; 100]).unwrap();
    }
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let first = contents(&inst);
    s.put(t, b"later", b"x").unwrap();
    let second = contents(&inst);
    let manifest = Path::new("bk").join(jetdb::manifest::MANIFEST_NAME);
    let mut renamed = false;
    let mut dead = false;
    hooked.hook.set(move |op| {
        if !op.under(Path::new("bk")) {
            return Ok(());
        }
        match op {
            Op::Rename(_, to) if *to == manifest && !renamed => {
                renamed = true;
                Ok(())
            }
            Op::SyncDir(_) if renamed && !dead => {
                dead = true;
                Err(std::io::Error::other("injected EIO on the directory fsync"))
            }
            Op::Create(_) | Op::Write(_) if dead => {
                Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
            }
            _ => Ok(()),
        }
    });
    let err = inst
        .backup(Some(Path::new("bk")), BackupFlags::ATOMIC, None)
        .unwrap_err();
    hooked.hook.clear();
    assert_eq!(err.kind(), jetdb::ErrorKind::DiskIO, "{err}");
    drop(s);
    inst.term().unwrap();
    match restored(&mem, "bk", "r") {
        Ok(got) => assert!(
            got == first || got == second,
            "bk restores to a backup's snapshot"
        ),
        Err(e) => panic!("after the failed atomic backup, bk no longer restores: {e}"),
    }
}

/// The rustdoc of `Instance::backup` promises JET_errInvalidBackup for a backup "into a
/// directory holding another database's backup"; an atomic full backup replaces it instead.
#[test]
fn an_atomic_backup_over_another_databases_backup_is_invalid_backup() {
    let vfs = MemVfs::new();
    for (dir, n) in [("one", 10u32), ("two", 20)] {
        // Another entropy seed: another database, with its own signatures.
        let env = env_with(vfs.clone(), u64::from(n), 1);
        let inst = Instance::new(env, backup_params(dir));
        inst.init().unwrap();
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        for i in 0..n {
            s.put(t, &key(i), b"v").unwrap();
        }
        drop(s);
        if dir == "one" {
            inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
                .unwrap();
        } else {
            let r = inst.backup(Some(Path::new("bk")), BackupFlags::ATOMIC, None);
            assert!(
                r.as_ref()
                    .is_err_and(|e| e.kind() == jetdb::ErrorKind::InvalidBackup),
                "another database's backup in bk: {r:?}"
            );
            // The other database's backup is intact.
            assert_eq!(restored(&vfs, "bk", "r").unwrap().len(), 10);
        }
        inst.term().unwrap();
    }
}

/// A job that outlives a term and init of its instance fails even when a new backup of the
/// new life holds the instance: the hold it checks is its own.
#[test]
fn a_job_across_term_and_init_does_not_ride_on_a_new_backup() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for i in 0..300 {
        s.put(t, &key(i), &[b'a'; 150]).unwrap();
    }
    drop(s);
    let mut old = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    old.set_step_size(4096);
    assert!(old.step().unwrap());
    inst.term().unwrap();
    inst.init().unwrap();
    let mut new = inst
        .begin_backup(Some(Path::new("bk2")), BackupFlags::NONE, None)
        .unwrap();
    let err = loop {
        match old.step() {
            Ok(true) => {}
            Ok(false) => break old.finish().unwrap_err(),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), jetdb::ErrorKind::BackupAbortByServer, "{err}");
    while new.step().unwrap() {}
    new.finish().unwrap();
    inst.term().unwrap();
    assert!(restored(&vfs, "bk2", "r").is_ok());
}

/// A backup removes the debris in its directory only once the directory is durable: the
/// manifest it read is then the one a power loss keeps. With the directory's fsync failing,
/// the begin fails and removes nothing.
#[test]
fn a_begin_removes_no_debris_before_its_directory_is_durable() {
    use support::Op;
    let (hooked, mem, inst) = scripted_instance();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.put(t, b"k", b"v").unwrap();
    drop(s);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    // Debris: a set directory no manifest names, as a failed backup may leave.
    let stray = Path::new("bk/set-00000009");
    mem.create_dir(stray).unwrap();
    mem.open(&stray.join("data.edb"), jetdb::OpenMode::CreateNew)
        .unwrap()
        .write_all_at(b"debris", 0)
        .unwrap();
    let bk = Path::new("bk").to_path_buf();
    hooked.hook.set(move |op| match op {
        Op::SyncDir(dir) if *dir == bk => Err(std::io::Error::other("injected EIO")),
        _ => Ok(()),
    });
    let err = inst
        .backup(Some(Path::new("bk")), BackupFlags::ATOMIC, None)
        .unwrap_err();
    hooked.hook.clear();
    assert_eq!(err.kind(), jetdb::ErrorKind::DiskIO, "{err}");
    assert!(
        mem.exists(&stray.join("data.edb")).unwrap(),
        "debris removed before the directory was durable"
    );
    inst.term().unwrap();
}

/// Every read of a file, by path and length.
#[derive(Debug, Default)]
struct Reads(std::sync::Mutex<Vec<(std::path::PathBuf, usize)>>);

impl Reads {
    /// The largest read of a log file under `dir` since the last call, and how many there were.
    fn of_logs_under(&self, dir: &str) -> (usize, usize) {
        let reads = std::mem::take(&mut *self.0.lock().unwrap());
        let logs: Vec<usize> = reads
            .iter()
            .filter(|(p, _)| p.starts_with(dir) && p.extension().is_some_and(|e| e == "log"))
            .map(|&(_, n)| n)
            .collect();
        (logs.iter().copied().max().unwrap_or(0), logs.len())
    }
}

impl support::Hook for Reads {
    fn read_from(&self, path: &Path, _: u64, len: usize) -> std::io::Result<()> {
        self.0.lock().unwrap().push((path.to_path_buf(), len));
        Ok(())
    }
}

/// A log generation of several MiB is checked and copied by the backup, and checked by the
/// restore, a piece (1 MiB) at a time — no read of a log is larger, whatever the log file
/// size — and damage deep in it, past the first piece, is still refused by both, leaving no
/// copy behind.
#[test]
fn a_large_log_generation_is_checked_and_copied_a_piece_at_a_time() {
    const PIECE: usize = 1 << 20;
    let reads = std::sync::Arc::new(Reads::default());
    let vfs = support::HookedVfs::new(std::sync::Arc::clone(&reads));
    let mem = vfs.inner.clone();
    let params = jetdb::InstanceParams {
        log_file_size: 8 << 20,
        ..backup_params("inst")
    };
    let inst = Instance::new(env(vfs.clone()), params.clone());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for i in 0..24u32 {
        s.put(t, &key(i), &vec![i as u8; 200_000]).unwrap();
    }
    let expected = contents(&inst);
    reads.of_logs_under("inst");
    let summary = inst
        .backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let (largest, count) = reads.of_logs_under("inst");
    assert_eq!(summary.logs, Some((1, 1)));
    assert_eq!(summary.log_bytes, 8 << 20);
    assert!(largest <= PIECE, "a read of {largest} bytes of a log");
    assert!(count >= 5, "the 5 MB of records in {count} reads");

    // The restore's checks read the set's copy in pieces too.
    let restored = Instance::new(env(vfs.clone()), backup_params("r"));
    restored.restore(Path::new("bk"), None).unwrap();
    let (largest, count) = reads.of_logs_under("bk");
    assert!(
        largest <= PIECE && count >= 5,
        "{count} reads, the largest {largest} bytes"
    );
    restored.init().unwrap();
    assert_eq!(contents(&restored), expected);
    restored.term().unwrap();

    // A bit flipped 3 MiB into the set's copy: the restore refuses it, and keeps nothing.
    let set_log = support::tree(&mem, Path::new("bk"))
        .into_keys()
        .find(|name| name.ends_with(".log"))
        .expect("the backup holds its log");
    let set_log = Path::new("bk").join(set_log);
    let mut bytes = read_all(&mem, &set_log);
    bytes[(3 << 20) + 100] ^= 1;
    write_all(&mem, &set_log, &bytes);
    let err = restored_into(&vfs, "r2").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogCorruptDuringHardRestore, "{err}");
    assert!(err.message().contains("corrupt segment 768"), "{err}");
    assert!(
        support::tree(&mem, Path::new("r2")).is_empty(),
        "the restore left files"
    );

    // And the same damage in the live generation: the next backup refuses it, and its
    // directory holds no copy of it.
    let live = Path::new("inst").join("edb00000001.log");
    let mut bytes = read_all(&mem, &live);
    bytes[(3 << 20) + 100] ^= 1;
    write_all(&mem, &live, &bytes);
    let err = inst
        .backup(Some(Path::new("bk2")), BackupFlags::NONE, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogReadVerifyFailure, "{err}");
    assert!(err.message().ends_with("(found by the backup)"), "{err}");
    assert!(err.message().contains("corrupt segment 768"), "{err}");
    let left: Vec<String> = support::tree(&mem, Path::new("bk2"))
        .into_keys()
        .filter(|name| name.ends_with(".log"))
        .collect();
    assert!(left.is_empty(), "the failed backup left {left:?}");
    drop(s);
    inst.term().unwrap();
}

/// Restores `backup` into directory `dir` of `vfs`, and returns what it holds.
fn restored_into(vfs: &support::HookedVfs<Reads>, dir: &str) -> jetdb::Result<Contents> {
    restore_contents(env(vfs.clone()), backup_params(dir), "bk")
}
