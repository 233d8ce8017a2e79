//! Backup and restore bugs a review found, each test failing on the engine before its fix: a
//! database copy of another backup restored silently, a job outliving its instance, a crafted
//! manifest panicking restore, a failed put-back of the previous manifest deleting the files
//! the directory names, an atomic backup replacing another database's backup.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jetdb::{
    BackupFlags, CommitMode, Env, Instance, InstanceParams, ManualClock, MemVfs, OpenMode,
    SeededEntropy, Vfs,
};

type Contents = BTreeMap<(String, Vec<u8>), Vec<u8>>;

fn env(vfs: &Arc<MemVfs>) -> Env {
    Env::new(
        Arc::clone(vfs) as Arc<dyn Vfs>,
        Arc::new(ManualClock::new(1)),
        Arc::new(SeededEntropy::new(1)),
    )
}

fn params(dir: &str) -> InstanceParams {
    let mut p = InstanceParams::in_directory(dir);
    p.create_path_if_not_exist = true;
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p.cache_size = 32 * 4096;
    p
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn contents(inst: &Instance) -> Contents {
    let mut s = inst.begin_session().unwrap();
    let mut out = Contents::new();
    for name in s.table_names().unwrap() {
        let t = s.open_table(&name).unwrap();
        let rows: Vec<_> = s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<Vec<_>>>()
            .unwrap();
        for (k, v) in rows {
            out.insert((name.clone(), k), v);
        }
    }
    out
}

fn restored(vfs: &Arc<MemVfs>, backup: &str, dir: &str) -> jetdb::Result<Contents> {
    let inst = Instance::new(env(vfs), params(dir));
    inst.restore(Path::new(backup), None)?;
    inst.init()?;
    inst.check_integrity()?;
    let out = contents(&inst);
    inst.term()?;
    Ok(out)
}

fn read(vfs: &MemVfs, p: &Path) -> Vec<u8> {
    let f = vfs.open(p, OpenMode::Read).unwrap();
    let mut b = vec![0u8; f.len().unwrap() as usize];
    f.read_exact_at(&mut b, 0).unwrap();
    b
}

fn write(vfs: &MemVfs, p: &Path, b: &[u8]) {
    let f = vfs.open(p, OpenMode::CreateTruncate).unwrap();
    f.write_all_at(b, 0).unwrap();
    f.sync().unwrap();
}

fn set_db(vfs: &MemVfs, dir: &str) -> std::path::PathBuf {
    let m = jetdb::manifest::read(vfs, Path::new(dir)).unwrap().unwrap();
    m.set_dir(Path::new(dir)).join(&m.db_name)
}

/// Restore takes a database copy from another backup of the same database (same signatures,
/// same length) without a word, and gives a state that is neither backup's snapshot.
#[test]
fn restore_refuses_the_database_copy_of_another_backup() {
    let vfs = Arc::new(MemVfs::new());
    let inst = Instance::new(env(&vfs), params("inst"));
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
    let (da, db) = (read(&vfs, &a), read(&vfs, &b));
    assert_eq!(
        da.len(),
        db.len(),
        "same length: the size check cannot tell"
    );
    write(&vfs, &a, &db);
    let err = restored(&vfs, "a", "r").expect_err("a swapped database copy is refused");
    assert_eq!(
        err.kind(),
        jetdb::ErrorKind::RestoreOfNonBackupDatabase,
        "{err}"
    );
    // Put back, it restores again.
    write(&vfs, &a, &da);
    assert_eq!(restored(&vfs, "a", "r2").unwrap(), first);
    assert_eq!(restored(&vfs, "b", "r3").unwrap(), second);
}

/// A job that outlives a term and a new init of its instance.
#[test]
fn a_job_across_term_and_init_fails_and_leaves_nothing() {
    let vfs = Arc::new(MemVfs::new());
    let inst = Instance::new(env(&vfs), params("inst"));
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
    let err = loop {
        match job.step() {
            Ok(true) => {}
            Ok(false) => break job.finish().unwrap_err(),
            Err(e) => break e,
        }
    };
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
    let vfs = Arc::new(MemVfs::new());
    let inst = Instance::new(env(&vfs), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.put(t, b"a", b"b").unwrap();
    drop(s);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
    let mut m = jetdb::manifest::read(&*vfs, Path::new("bk"))
        .unwrap()
        .unwrap();
    m.logs[0].len = u64::MAX;
    write(
        &vfs,
        &Path::new("bk").join(jetdb::manifest::MANIFEST_NAME),
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

mod support;

/// An atomic backup whose commit fails at the directory fsync after the manifest's rename,
/// on a disk that is then full: the clean-up cannot put the previous manifest back. It must
/// then keep the new set's files, which the manifest in place names: the directory restores
/// to one of the two backups' snapshots, never to nothing.
#[test]
fn a_failed_commit_whose_manifest_cannot_be_put_back_keeps_a_restorable_directory() {
    use support::{Op, scripted_vfs};
    let (hooked, mem) = scripted_vfs();
    let mem = Arc::new(mem);
    let henv = Env::new(
        Arc::new(hooked.clone()) as Arc<dyn Vfs>,
        Arc::new(ManualClock::new(1)),
        Arc::new(SeededEntropy::new(1)),
    );
    let inst = Instance::new(henv, params("inst"));
    inst.init().unwrap();
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
    let vfs = Arc::new(MemVfs::new());
    for (dir, n) in [("one", 10u32), ("two", 20)] {
        // Another entropy seed: another database, with its own signatures.
        let env = Env::new(
            Arc::clone(&vfs) as Arc<dyn Vfs>,
            Arc::new(ManualClock::new(1)),
            Arc::new(SeededEntropy::new(u64::from(n))),
        );
        let inst = Instance::new(env, params(dir));
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
