//! The instance on real files: durability of commits across a crash (the instance dropped
//! without term), transactions, recovery from torn and damaged logs, and the lifecycle errors.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "these tests cut, copy and damage real log files"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetdb::log::{SEGMENT_SIZE, archive_name};
use jetdb::{
    CommitMode, Env, ErrorKind, Instance, InstanceParams, MemVfs, OsVfs, SeededEntropy, Session,
    SystemClock,
};

mod support;

use support::numbered::{commit_each, key, value};
use support::{HookedVfs, base_params, env, env_with, read_all, reseal_block};

fn os_env(seed: u64) -> Env {
    Env::new(
        Arc::new(OsVfs),
        Arc::new(SystemClock),
        Arc::new(SeededEntropy::new(seed)),
    )
}

fn start(dir: &Path) -> Instance {
    let instance = Instance::new(os_env(1), base_params(dir));
    instance.init().unwrap();
    instance
}

fn try_start(dir: &Path) -> jetdb::Result<Instance> {
    let instance = Instance::new(os_env(2), base_params(dir));
    instance.init()?;
    Ok(instance)
}

fn contents(instance: &Instance, name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut session = instance.begin_session().unwrap();
    let t = session.open_table(name).unwrap();
    session.begin_transaction().unwrap();
    session
        .range(t, .., false)
        .unwrap()
        .collect::<jetdb::Result<BTreeMap<_, _>>>()
        .unwrap()
}

fn expected(ids: impl IntoIterator<Item = u32>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    ids.into_iter().map(|i| (key(i), value(i))).collect()
}

/// How many of keys 1..=n the contents hold, checking they are exactly a prefix.
fn prefix_len(contents: &BTreeMap<Vec<u8>, Vec<u8>>, n: u32) -> u32 {
    let k = contents.len() as u32;
    assert!(k <= n);
    assert_eq!(*contents, expected(1..=k), "not a prefix of the commits");
    k
}

fn big(i: u32) -> Vec<u8> {
    let mut v = value(i);
    v.resize(300, b'.');
    v
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A crashed instance directory: `n` single-put commits on table "t", the instance dropped
/// without term.
fn crashed(dir: &Path, n: u32, mode: impl Fn(u32) -> CommitMode) {
    fs::create_dir_all(dir).unwrap();
    let instance = start(dir);
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    for i in 1..=n {
        session.begin_transaction().unwrap();
        session.put(t, &key(i), &value(i)).unwrap();
        session.commit_transaction(mode(i)).unwrap();
    }
}

#[test]
fn durable_commits_survive_a_drop_without_term() {
    let tmp = tempfile::tempdir().unwrap();
    crashed(tmp.path(), 60, |_| CommitMode::Durable);
    let instance = start(tmp.path());
    let report = instance.recovery_report().unwrap().unwrap();
    assert_eq!(
        report.commits_replayed, 61,
        "60 commits and the table creation"
    );
    assert!(report.pages_written > 0);
    assert_eq!(contents(&instance, "t"), expected(1..=60));
    assert!(instance.check_integrity().unwrap().page_count > 3);
    instance.term().unwrap();

    // After a clean shutdown nothing is replayed.
    let instance = start(tmp.path());
    let report = instance.recovery_report().unwrap().unwrap();
    assert_eq!(report.commits_replayed, 0);
    assert!(!report.was_dirty);
    assert_eq!(contents(&instance, "t"), expected(1..=60));
    instance.term().unwrap();
}

#[test]
fn uncommitted_and_rolled_back_work_vanishes() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let instance = start(tmp.path());
        let mut s1 = instance.begin_session().unwrap();
        let mut s2 = instance.begin_session().unwrap();
        let t = s1.create_table("t").unwrap();
        commit_each(&mut s1, t, [1], CommitMode::Durable);
        s1.begin_transaction().unwrap();
        s1.put(t, &key(2), &value(2)).unwrap();
        s1.delete(t, &key(1)).unwrap();
        s1.rollback().unwrap();
        s1.begin_transaction().unwrap();
        s1.put(t, &key(3), &value(3)).unwrap();
        s1.rollback().unwrap();
        // Still open at the crash, while another session commits durably.
        s1.begin_transaction().unwrap();
        s1.put(t, &key(4), &value(4)).unwrap();
        s1.delete(t, &key(1)).unwrap();
        commit_each(&mut s2, t, [5], CommitMode::Durable);
        assert_eq!(contents(&instance, "t"), expected([1, 5]));
        // The transaction of s1 is open at the crash.
    }
    let instance = start(tmp.path());
    assert_eq!(contents(&instance, "t"), expected([1, 5]));
    let stats = instance.stats().unwrap();
    assert_eq!(stats.durable_commits, 0, "a fresh instance counts afresh");
    instance.term().unwrap();
}

#[test]
fn a_log_cut_at_every_segment_boundary_recovers_a_prefix_of_the_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Lazy commits with a durable one every 4th: the log holds whole and partial segments.
    crashed(&src, 40, |i| {
        if i % 4 == 0 {
            CommitMode::Durable
        } else {
            CommitMode::Lazy
        }
    });
    let log_len = fs::metadata(src.join("edb.log")).unwrap().len();
    let used = {
        let bytes = fs::read(src.join("edb.log")).unwrap();
        (1..bytes.len() / SEGMENT_SIZE)
            .take_while(|&i| {
                bytes[i * SEGMENT_SIZE..(i + 1) * SEGMENT_SIZE]
                    .iter()
                    .any(|&b| b != 0)
            })
            .count()
    };
    assert!(used > 10, "the commits span many segments ({used})");
    let mut last = 0;
    for cut in 1..=used + 1 {
        let dir = tmp.path().join(format!("cut{cut}"));
        copy_dir(&src, &dir);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("edb.log"))
            .unwrap();
        f.set_len((cut * SEGMENT_SIZE) as u64).unwrap();
        drop(f);
        let instance = start(&dir);
        // The table creation is the first commit; before it there is no table.
        let got = if instance.begin_session().unwrap().open_table("t").is_ok() {
            contents(&instance, "t")
        } else {
            BTreeMap::new()
        };
        let n = prefix_len(&got, 40);
        assert!(n >= last, "a longer log never recovers less ({n} < {last})");
        last = n;
        // The recovered instance goes on working, and a second crash loses nothing.
        let mut session = instance.begin_session().unwrap();
        let t = match session.open_table("t") {
            Ok(t) => t,
            Err(_) => session.create_table("t").unwrap(),
        };
        commit_each(&mut session, t, [1000], CommitMode::Durable);
        drop(session);
        drop(instance);
        let instance = start(&dir);
        let mut want = expected(1..=n);
        want.insert(key(1000), value(1000));
        assert_eq!(contents(&instance, "t"), want, "cut at segment {cut}");
        instance.term().unwrap();
    }
    assert_eq!(last, 40, "the whole log recovers every commit");
    assert!(log_len >= (used * SEGMENT_SIZE) as u64);
}

#[test]
fn a_zeroed_or_garbage_tail_recovers_and_logging_goes_on_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    crashed(&src, 30, |i| {
        if i % 3 == 0 {
            CommitMode::Durable
        } else {
            CommitMode::Lazy
        }
    });
    let bytes = fs::read(src.join("edb.log")).unwrap();
    let used = (1..bytes.len() / SEGMENT_SIZE)
        .take_while(|&i| {
            bytes[i * SEGMENT_SIZE..(i + 1) * SEGMENT_SIZE]
                .iter()
                .any(|&b| b != 0)
        })
        .count();
    for (name, fill) in [("zero", 0u8), ("garbage", 0xA5)] {
        for from in [used, used - 1, used - 3] {
            let dir = tmp.path().join(format!("{name}{from}"));
            copy_dir(&src, &dir);
            let mut damaged = bytes.clone();
            // Damage from the middle of segment `from` to the end of the file.
            let at = from * SEGMENT_SIZE + 1000;
            for (i, b) in damaged[at..].iter_mut().enumerate() {
                *b = if fill == 0 { 0 } else { fill ^ (i as u8) };
            }
            fs::write(dir.join("edb.log"), &damaged).unwrap();
            let instance = start(&dir);
            let report = instance.recovery_report().unwrap().unwrap();
            assert!(report.torn_tail.is_some() || fill == 0, "{report:?}");
            let n = prefix_len(&contents(&instance, "t"), 30);
            assert!(n > 0);
            let mut session = instance.begin_session().unwrap();
            let t = session.open_table("t").unwrap();
            commit_each(&mut session, t, [2000, 2001], CommitMode::Durable);
            drop(session);
            drop(instance);
            // The debris was cleared: the new commits recover, nothing stale comes back.
            let instance = start(&dir);
            let mut want = expected(1..=n);
            want.insert(key(2000), value(2000));
            want.insert(key(2001), value(2001));
            assert_eq!(contents(&instance, "t"), want, "{name} from segment {from}");
            instance.term().unwrap();
        }
    }
}

/// A crashed directory whose log rolled through several generations.
fn crashed_over_generations(dir: &Path) -> u32 {
    crashed(dir, 120, |_| CommitMode::Durable);
    let archived = fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("edb0") && name.ends_with(".log")
        })
        .count() as u32;
    assert!(
        archived >= 3,
        "the log rolled ({archived} archived generations)"
    );
    archived
}

#[test]
fn a_bit_flip_in_an_archived_log_is_log_file_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    crashed_over_generations(&src);
    for offset in [100usize, 3 * SEGMENT_SIZE + 517] {
        let dir = tmp.path().join(format!("flip{offset}"));
        copy_dir(&src, &dir);
        let path = dir.join(archive_name("edb", 2));
        let mut bytes = fs::read(&path).unwrap();
        bytes[offset] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let err = try_start(&dir).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    }
    // The undamaged copy recovers everything.
    let instance = start(&src);
    assert_eq!(contents(&instance, "t"), expected(1..=120));
    instance.term().unwrap();
}

#[test]
fn a_deleted_archived_log_is_missing_log_file_naming_the_generation() {
    let tmp = tempfile::tempdir().unwrap();
    crashed_over_generations(tmp.path());
    fs::remove_file(tmp.path().join(archive_name("edb", 2))).unwrap();
    let err = try_start(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingLogFile, "{err}");
    assert!(err.to_string().contains("edb00000002.log"), "{err}");
}

#[test]
fn a_log_of_this_set_naming_another_database_is_bad_log_signature() {
    // The header's database signature (bytes 40..56) changed and its checksum made whole: the
    // log set matches, the database does not.
    let tmp = tempfile::tempdir().unwrap();
    crashed_over_generations(tmp.path());
    let path = tmp.path().join(archive_name("edb", 2));
    let mut bytes = fs::read(&path).unwrap();
    bytes[40] ^= 1;
    reseal_block(&mut bytes, 0);
    fs::write(&path, &bytes).unwrap();
    let err = try_start(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadLogSignature, "{err}");
    assert!(err.to_string().contains("database"), "{err}");
}

#[test]
fn a_log_copied_in_from_another_instance_is_bad_log_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    crashed_over_generations(&a);
    crashed_over_generations(&b);
    let name = archive_name("edb", 2);
    fs::copy(b.join(&name), a.join(&name)).unwrap();
    let err = try_start(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadLogSignature, "{err}");
    // The current log of another instance too.
    copy_dir(&b, &tmp.path().join("b2"));
    fs::copy(b.join("edb.log"), a.join("edb.log")).unwrap();
    fs::copy(b.join(&name), a.join(&name)).unwrap();
    fs::copy(tmp.path().join("b2").join(&name), a.join(&name)).unwrap();
    let err = try_start(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadLogSignature, "{err}");
}

#[test]
fn write_conflicts_and_snapshot_isolation() {
    let tmp = tempfile::tempdir().unwrap();
    let instance = start(tmp.path());
    let mut s1 = instance.begin_session().unwrap();
    let mut s2 = instance.begin_session().unwrap();
    let mut s3 = instance.begin_session().unwrap();
    let t = s1.create_table("t").unwrap();
    commit_each(&mut s1, t, [1, 2, 3], CommitMode::Durable);

    s3.begin_transaction().unwrap();
    s1.begin_transaction().unwrap();
    s1.put(t, &key(1), b"a's").unwrap();
    s1.delete(t, &key(2)).unwrap();
    s1.put(t, &key(9), b"new").unwrap();
    // Two open transactions writing one key: the second is refused.
    s2.begin_transaction().unwrap();
    let err = s2.put(t, &key(1), b"b's").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteConflict);
    let err = s2.delete(t, &key(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteConflict);
    // Own writes are visible to the writer only.
    assert_eq!(s1.get(t, &key(1)).unwrap(), Some(b"a's".to_vec()));
    assert_eq!(s1.get(t, &key(2)).unwrap(), None);
    assert_eq!(s2.get(t, &key(1)).unwrap(), Some(value(1)));
    let seen: Vec<Vec<u8>> = s1
        .range(t, .., false)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(seen, vec![key(1), key(3), key(9)]);
    s1.commit_transaction(CommitMode::Lazy).unwrap();
    // s2 began before s1 committed: still refused after it (first committer wins).
    let err = s2.put(t, &key(1), b"b's").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteConflict);
    s2.put(t, &key(3), b"b's").unwrap();
    s2.commit_transaction(CommitMode::Durable).unwrap();
    // s3 still reads the state as of its begin, by get and by range, both ways.
    assert_eq!(s3.get(t, &key(1)).unwrap(), Some(value(1)));
    assert_eq!(s3.get(t, &key(2)).unwrap(), Some(value(2)));
    assert_eq!(s3.get(t, &key(9)).unwrap(), None);
    let snapshot: Vec<(Vec<u8>, Vec<u8>)> =
        s3.range(t, .., true).unwrap().map(|r| r.unwrap()).collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = expected(1..=3).into_iter().rev().collect();
    assert_eq!(snapshot, want);
    s3.rollback().unwrap();
    // A new transaction sees both commits.
    s3.begin_transaction().unwrap();
    assert_eq!(s3.get(t, &key(1)).unwrap(), Some(b"a's".to_vec()));
    assert_eq!(s3.get(t, &key(3)).unwrap(), Some(b"b's".to_vec()));
    assert_eq!(s3.get(t, &key(2)).unwrap(), None);
    s3.put(t, &key(1), b"later").unwrap();
    s3.commit_transaction(CommitMode::Durable).unwrap();
    let stats = instance.stats().unwrap();
    assert_eq!(stats.write_conflicts, 3);
    assert_eq!(stats.lazy_commits, 1);
    instance.term().unwrap();
}

#[test]
fn the_lifecycle_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let instance = Instance::new(os_env(3), base_params(tmp.path()));
    assert_eq!(
        instance.begin_session().unwrap_err().kind(),
        ErrorKind::NotInitialized
    );
    assert_eq!(
        instance.term().unwrap_err().kind(),
        ErrorKind::NotInitialized
    );
    instance.init().unwrap();
    assert_eq!(
        instance.init().unwrap_err().kind(),
        ErrorKind::AlreadyInitialized
    );
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    session.begin_transaction().unwrap();
    session.put(t, b"k", b"v").unwrap();
    session.commit_transaction(CommitMode::Durable).unwrap();
    instance.stop_service().unwrap();
    assert_eq!(
        instance.begin_session().unwrap_err().kind(),
        ErrorKind::ClientRequestToStopJetService
    );
    assert_eq!(
        session.begin_transaction().unwrap_err().kind(),
        ErrorKind::ClientRequestToStopJetService
    );
    instance.term().unwrap();
    assert_eq!(
        session.begin_transaction().unwrap_err().kind(),
        ErrorKind::NotInitialized
    );
    // A new init of the same instance works again.
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.open_table("t").unwrap();
    session.begin_transaction().unwrap();
    assert_eq!(session.get(t, b"k").unwrap(), Some(b"v".to_vec()));
    session.rollback().unwrap();
    instance.term().unwrap();
}

#[test]
fn missing_directories_are_invalid_path_unless_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let instance = Instance::new(os_env(4), base_params(&dir));
    assert_eq!(instance.init().unwrap_err().kind(), ErrorKind::InvalidPath);
    let mut p = base_params(&dir);
    p.create_path_if_not_exist = true;
    let instance = Instance::new(os_env(4), p);
    instance.init().unwrap();
    instance.term().unwrap();
    assert!(dir.join("data.edb").is_file());
    assert!(dir.join("edb.log").is_file());
    assert!(dir.join("edb.chk").is_file());
}

#[test]
fn bad_parameters_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for change in [
        (|p: &mut InstanceParams| p.base_name = "edbx".into()) as fn(&mut InstanceParams),
        |p| p.log_file_size = 64 * 1024,
        |p| p.log_file_size = 128 * 1024 + 1,
        |p| p.page_size = 3000,
    ] {
        let mut p = base_params(tmp.path());
        change(&mut p);
        let instance = Instance::new(os_env(5), p);
        assert_eq!(
            instance.init().unwrap_err().kind(),
            ErrorKind::InvalidParameter
        );
    }
}

#[test]
fn circular_logging_deletes_the_generations_the_checkpoint_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.circular_logging = true;
    p.checkpoint_depth = 256 * 1024;
    let instance = Instance::new(os_env(6), p.clone());
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    commit_each(&mut session, t, 1..=400, CommitMode::Durable);
    let stats = instance.stats().unwrap();
    assert!(stats.log_rolls >= 10, "{stats:?}");
    assert!(stats.checkpoints >= 2, "{stats:?}");
    assert!(stats.logs_deleted > 0, "{stats:?}");
    let archived = fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("edb0")
        })
        .count();
    assert!(archived <= 4, "{archived} archived generations kept");
    drop(session);
    drop(instance);
    // What is left recovers everything.
    let instance = Instance::new(os_env(6), p);
    instance.init().unwrap();
    assert_eq!(contents(&instance, "t"), expected(1..=400));
    instance.term().unwrap();
}

#[test]
fn without_logging_a_crash_leaves_the_database_dirty() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.recovery = false;
    p.cache_size = 64 * 4096;
    let instance = Instance::new(os_env(7), p.clone());
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    commit_each(&mut session, t, 1..=5, CommitMode::Durable);
    instance.term().unwrap();
    assert!(!tmp.path().join("edb.log").exists());
    let instance = Instance::new(os_env(7), p.clone());
    instance.init().unwrap();
    assert_eq!(contents(&instance, "t"), expected(1..=5));
    // Enough changes that pages are written back, then a crash.
    let mut session = instance.begin_session().unwrap();
    session.begin_transaction().unwrap();
    for i in 0..3000 {
        session.put(t, &key(i), &[7; 300]).unwrap();
    }
    session.commit_transaction(CommitMode::Durable).unwrap();
    instance.checkpoint().unwrap();
    commit_each(&mut session, t, [9], CommitMode::Durable);
    session.begin_transaction().unwrap();
    for i in 0..3000 {
        session.delete(t, &key(i)).unwrap();
    }
    session.commit_transaction(CommitMode::Durable).unwrap();
    drop(session);
    drop(instance);
    let instance = Instance::new(os_env(7), p);
    let err = instance.init().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DatabaseDirtyShutdown, "{err}");
}

#[test]
fn pages_written_under_cache_pressure_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.cache_size = 64 * 4096;
    let instance = Instance::new(os_env(8), p.clone());
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    // Lazy commits of many pages with a cache of 64: pages must wait for the log.
    for batch in 0..20u32 {
        session.begin_transaction().unwrap();
        for i in 0..100 {
            session
                .put(t, &key(batch * 100 + i), &big(batch * 100 + i))
                .unwrap();
        }
        session.commit_transaction(CommitMode::Lazy).unwrap();
    }
    // Pages were written back before the crash (under the WAL rule).
    let written = fs::metadata(tmp.path().join("data.edb")).unwrap().len() / 4096;
    assert!(written > 64, "{written} pages in the file");
    instance.flush_log().unwrap();
    drop(session);
    drop(instance);
    let instance = Instance::new(os_env(8), p);
    instance.init().unwrap();
    let want: BTreeMap<Vec<u8>, Vec<u8>> = (0..2000).map(|i| (key(i), big(i))).collect();
    assert_eq!(contents(&instance, "t"), want);
    let report = instance.check_integrity().unwrap();
    assert!(report.page_count > 64);
    instance.term().unwrap();
}

#[test]
fn tables_are_created_and_deleted_durably() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let instance = start(tmp.path());
        let mut s = instance.begin_session().unwrap();
        let a = s.create_table("a").unwrap();
        s.create_table("b").unwrap();
        assert_eq!(
            s.create_table("a").unwrap_err().kind(),
            ErrorKind::TableDuplicate
        );
        commit_each(&mut s, a, [1], CommitMode::Durable);
        let mut s2 = instance.begin_session().unwrap();
        s2.begin_transaction().unwrap();
        s2.put(a, b"x", b"y").unwrap();
        assert_eq!(
            s.delete_table("a").unwrap_err().kind(),
            ErrorKind::TableInUse
        );
        s2.rollback().unwrap();
        s.delete_table("b").unwrap();
        assert_eq!(s.table_names().unwrap(), vec!["a".to_string()]);
    }
    let instance = start(tmp.path());
    let mut s = instance.begin_session().unwrap();
    assert_eq!(s.table_names().unwrap(), vec!["a".to_string()]);
    assert_eq!(contents(&instance, "a"), expected([1]));
    instance.term().unwrap();
}

/// An in-memory instance directory for tests that fail chosen writes.
fn mem_params() -> InstanceParams {
    InstanceParams {
        create_path_if_not_exist: true,
        ..base_params("inst")
    }
}

#[derive(Debug, Default)]
struct FailLog {
    armed: std::sync::atomic::AtomicBool,
    fail_rename_to_current: std::sync::atomic::AtomicBool,
}

impl support::Hook for FailLog {
    fn sync_of(&self, path: &Path) -> std::io::Result<()> {
        if self.armed.load(std::sync::atomic::Ordering::SeqCst) && path.ends_with("edb.log") {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if self
            .fail_rename_to_current
            .load(std::sync::atomic::Ordering::SeqCst)
            && from.ends_with("edbtmp.log")
            && to.ends_with("edb.log")
        {
            return Err(std::io::Error::other("injected rename failure"));
        }
        Ok(())
    }
}

fn hooked() -> (MemVfs, Arc<FailLog>, Env) {
    let hook = Arc::new(FailLog::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    (vfs.inner.clone(), hook, env_with(vfs, 9, 1000))
}

fn mem_env(vfs: &MemVfs) -> Env {
    env_with(vfs.clone(), 10, 5000)
}

#[test]
fn a_failed_log_fsync_stops_the_instance_and_a_new_init_recovers() {
    let (vfs, hook, env) = hooked();
    let instance = Instance::new(env, mem_params());
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    commit_each(&mut s, t, 1..=3, CommitMode::Durable);
    hook.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    s.begin_transaction().unwrap();
    s.put(t, &key(4), &value(4)).unwrap();
    let err = s.commit_transaction(CommitMode::Durable).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogWriteFail, "{err}");
    assert_eq!(
        s.begin_transaction().unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    assert_eq!(
        instance.checkpoint().unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    assert_eq!(
        instance.term().unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    drop(s);
    let instance = Instance::new(mem_env(&vfs), mem_params());
    instance.init().unwrap();
    let got = contents(&instance, "t");
    // Commit 4 was never acknowledged: either outcome is allowed, but 1..=3 must be there.
    assert!(got == expected(1..=3) || got == expected(1..=4), "{got:?}");
    instance.term().unwrap();
}

#[test]
fn a_crash_in_the_middle_of_a_roll_is_finished_by_recovery() {
    let (vfs, hook, env) = hooked();
    let instance = Instance::new(env, mem_params());
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    hook.fail_rename_to_current
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = 0;
    for i in 1..=100 {
        s.begin_transaction().unwrap();
        s.put(t, &key(i), &value(i)).unwrap();
        match s.commit_transaction(CommitMode::Durable) {
            Ok(()) => acknowledged = i,
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::LogWriteFail, "{err}");
                break;
            }
        }
    }
    assert!(acknowledged > 5, "the roll came after some commits");
    drop(s);
    drop(instance);
    let names = jetdb::Vfs::list(&vfs, Path::new("inst")).unwrap();
    assert!(!names.contains(&"edb.log".to_string()), "{names:?}");
    assert!(names.contains(&"edbtmp.log".to_string()), "{names:?}");
    let instance = Instance::new(mem_env(&vfs), mem_params());
    instance.init().unwrap();
    let report = instance.recovery_report().unwrap().unwrap();
    assert!(report.finished_roll, "{report:?}");
    let got = contents(&instance, "t");
    assert!(
        got == expected(1..=acknowledged) || got == expected(1..=acknowledged + 1),
        "{} records",
        got.len()
    );
    instance.term().unwrap();
    let names = jetdb::Vfs::list(&vfs, Path::new("inst")).unwrap();
    assert!(names.contains(&"edb.log".to_string()), "{names:?}");
}

#[test]
fn a_database_without_its_logs_is_refused_unless_it_was_shut_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    crashed(tmp.path(), 5, |_| CommitMode::Durable);
    // Dirty with logs gone: refused. (Nothing was written back, so make it dirty first.)
    {
        let mut p = base_params(tmp.path());
        p.cache_size = 64 * 4096;
        let instance = Instance::new(os_env(11), p);
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        s.begin_transaction().unwrap();
        for i in 0..2000 {
            s.put(t, &key(i), &[1; 200]).unwrap();
        }
        s.commit_transaction(CommitMode::Durable).unwrap();
    }
    let logs: Vec<PathBuf> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    let saved = tmp.path().join("saved");
    fs::create_dir(&saved).unwrap();
    for log in &logs {
        fs::rename(log, saved.join(log.file_name().unwrap())).unwrap();
    }
    let err = try_start(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RequiredLogFilesMissing, "{err}");
    assert!(err.to_string().contains("needs log generation 0x"), "{err}");
    for log in &logs {
        fs::rename(saved.join(log.file_name().unwrap()), log).unwrap();
    }
    // With the logs back it recovers; after a clean shutdown the logs may go.
    let instance = start(tmp.path());
    assert_eq!(contents(&instance, "t").len(), 2000);
    instance.term().unwrap();
    for log in fs::read_dir(tmp.path()).unwrap() {
        let path = log.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            fs::remove_file(path).unwrap();
        }
    }
    let instance = start(tmp.path());
    assert!(instance.recovery_report().unwrap().unwrap().new_log_set);
    assert_eq!(contents(&instance, "t").len(), 2000);
    instance.term().unwrap();
}

#[test]
fn a_hole_in_unacknowledged_segments_is_a_torn_tail_whose_debris_never_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut p = base_params(&src);
    p.log_file_size = 4 * 1024 * 1024;
    {
        let instance = Instance::new(os_env(12), p.clone());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 1..=5, CommitMode::Durable);
        // Lazy commits: their segments are written behind, never fsynced.
        commit_each(&mut s, t, 6..=3000, CommitMode::Lazy);
    }
    let bytes = fs::read(src.join("edb.log")).unwrap();
    let seg = |i: usize| &bytes[i * SEGMENT_SIZE..(i + 1) * SEGMENT_SIZE];
    let used = (1..bytes.len() / SEGMENT_SIZE)
        .take_while(|&i| seg(i).iter().any(|&b| b != 0))
        .count();
    let durable = (1..=used)
        .map(|i| u32::from_le_bytes(seg(i)[16..20].try_into().unwrap()) as usize)
        .max()
        .unwrap();
    assert!(
        used > durable + 8,
        "segments written behind: {durable}..{used}"
    );
    // Lose one segment in the middle of what was written behind; later ones survive.
    let hole = durable + 3;
    let dir = tmp.path().join("hole");
    copy_dir(&src, &dir);
    let mut damaged = bytes.clone();
    damaged[hole * SEGMENT_SIZE..(hole + 1) * SEGMENT_SIZE].fill(0);
    fs::write(dir.join("edb.log"), &damaged).unwrap();
    p.log_path = dir.clone();
    p.system_path = dir.clone();
    p.database_path = dir.join("data.edb");
    let instance = Instance::new(os_env(12), p.clone());
    instance.init().unwrap();
    assert!(
        instance
            .recovery_report()
            .unwrap()
            .unwrap()
            .torn_tail
            .is_some()
    );
    let n = prefix_len(&contents(&instance, "t"), 3000);
    assert!((5..3000).contains(&n), "{n}");
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    commit_each(&mut s, t, [9000], CommitMode::Durable);
    drop(s);
    drop(instance);
    let instance = Instance::new(os_env(12), p);
    instance.init().unwrap();
    let mut want = expected(1..=n);
    want.insert(key(9000), value(9000));
    assert_eq!(contents(&instance, "t"), want);
    instance.term().unwrap();
}

#[test]
fn a_session_has_one_transaction_and_works_outside_one() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let instance = start(tmp.path());
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        assert_eq!(
            s.commit_transaction(CommitMode::Durable)
                .unwrap_err()
                .kind(),
            ErrorKind::NotInTransaction
        );
        assert_eq!(
            s.rollback().unwrap_err().kind(),
            ErrorKind::NotInTransaction
        );
        s.begin_transaction().unwrap();
        assert!(s.in_transaction());
        assert_eq!(
            s.begin_transaction().unwrap_err().kind(),
            ErrorKind::InTransaction
        );
        s.rollback().unwrap();
        // Outside a transaction each write is its own durable commit.
        s.put(t, &key(1), &value(1)).unwrap();
        assert!(s.delete(t, &key(1)).unwrap());
        s.put(t, &key(2), &value(2)).unwrap();
        assert_eq!(s.get(t, &key(2)).unwrap(), Some(value(2)));
        assert!(!s.in_transaction());
        assert_eq!(instance.stats().unwrap().durable_commits, 3);
        // A session dropped with an open transaction rolls it back and frees its locks.
        let mut s2 = instance.begin_session().unwrap();
        s2.begin_transaction().unwrap();
        s2.put(t, &key(3), &value(3)).unwrap();
        drop(s2);
        s.put(t, &key(3), &value(3)).unwrap();
    }
    let instance = start(tmp.path());
    assert_eq!(contents(&instance, "t"), expected([2, 3]));
    instance.term().unwrap();
}

#[test]
fn sessions_work_from_several_threads() {
    fn shared<T: Send + Sync>() {}
    fn sendable<T: Send>() {}
    shared::<Instance>();
    sendable::<Session>();
    let tmp = tempfile::tempdir().unwrap();
    let instance = start(tmp.path());
    let t = instance.begin_session().unwrap().create_table("t").unwrap();
    let threads: Vec<_> = (0..4u32)
        .map(|n| {
            let mut session = instance.begin_session().unwrap();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let mode = if i % 10 == 0 {
                        CommitMode::Durable
                    } else {
                        CommitMode::Lazy
                    };
                    session.begin_transaction().unwrap();
                    session.put(t, &key(n * 1000 + i), &value(i)).unwrap();
                    session.commit_transaction(mode).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(contents(&instance, "t").len(), 400);
    instance.term().unwrap();
}

/// Calls into the instance from inside its own term, at the database's fsync.
#[derive(Debug, Default)]
struct CallDuringTerm {
    instance: std::sync::Mutex<Option<Instance>>,
    seen: std::sync::Mutex<Vec<ErrorKind>>,
}

impl support::Hook for CallDuringTerm {
    fn sync_of(&self, path: &Path) -> std::io::Result<()> {
        if path.ends_with("data.edb")
            && let Some(instance) = self.instance.lock().unwrap().as_ref()
        {
            let err = instance.begin_session().unwrap_err();
            self.seen.lock().unwrap().push(err.kind());
        }
        Ok(())
    }
}

#[test]
fn calls_during_term_get_term_in_progress() {
    let hook = Arc::new(CallDuringTerm::default());
    let env = env(HookedVfs::new(Arc::clone(&hook)));
    let instance = Instance::new(env, mem_params());
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.put(t, b"k", b"v").unwrap();
    *hook.instance.lock().unwrap() = Some(instance.clone());
    instance.term().unwrap();
    hook.instance.lock().unwrap().take();
    let seen = hook.seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "term fsyncs the database");
    assert!(
        seen.iter().all(|&k| k == ErrorKind::TermInProgress),
        "{seen:?}"
    );
    assert_eq!(
        s.get(t, b"k").unwrap_err().kind(),
        ErrorKind::NotInitialized
    );
}

/// Every file an instance writes, by name.
fn files_of(vfs: &MemVfs) -> BTreeMap<String, Vec<u8>> {
    use jetdb::Vfs;
    vfs.list(Path::new("inst"))
        .unwrap()
        .into_iter()
        .map(|name| {
            let bytes = read_all(vfs, Path::new("inst").join(&name));
            (name, bytes)
        })
        .collect()
}

#[test]
fn the_same_seed_writes_the_same_files() {
    let run = |seed: u64| {
        let vfs = MemVfs::new();
        let env = env_with(vfs.clone(), seed, 1_000_000);
        let instance = Instance::new(env, mem_params());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        for i in 0..300u32 {
            s.begin_transaction().unwrap();
            s.put(t, &key(i % 97), &value(i)).unwrap();
            let mode = if i % 3 == 0 {
                CommitMode::Durable
            } else {
                CommitMode::Lazy
            };
            s.commit_transaction(mode).unwrap();
            if i % 100 == 50 {
                instance.checkpoint().unwrap();
            }
        }
        drop(s);
        drop(instance); // a crash, then recovery
        let env = env_with(vfs.clone(), seed + 1, 2_000_000);
        let instance = Instance::new(env, mem_params());
        instance.init().unwrap();
        instance.term().unwrap();
        files_of(&vfs)
    };
    let a = run(5);
    assert!(a.len() >= 4, "{:?}", a.keys());
    assert_eq!(a, run(5), "the same seed, the same bytes in every file");
    assert_ne!(a, run(6), "another seed, another log signature");
}

/// The checkpoint file gone: recovery replays from generation 1 when the whole history is
/// there, so new commits continue the commit sequence (a backup's point never goes back); with
/// the first generations truncated away it cannot tell where to start nor the last commit, and
/// refuses (-542). Before, a clean database started at its consistent point with the
/// sequence at 0, and commits reused the numbers of earlier ones.
#[test]
fn a_missing_checkpoint_file_recovers_from_generation_1_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bk = dir.path().join("bk");
    fs::create_dir(&bk).unwrap();
    let inst = start(dir.path());
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    commit_each(&mut s, t, 0..5, CommitMode::Durable);
    drop(s);
    inst.term().unwrap();
    fs::remove_file(dir.path().join("edb.chk")).unwrap();

    let inst = start(dir.path());
    assert_eq!(contents(&inst, "t"), expected(0..5));
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    commit_each(&mut s, t, 5..6, CommitMode::Durable);
    drop(s);
    let first = inst
        .backup(Some(&bk), jetdb::BackupFlags::NONE, None)
        .unwrap();
    // The table's creation and six puts: the sequence went on from the logs' last commit.
    assert_eq!(first.sequence, 7, "{first:?}");
    // Past generation 1 with the checkpoint, then truncated: generation 1 goes.
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in 6..600 {
        s.begin_transaction().unwrap();
        s.put(t, &key(i), &big(i)).unwrap();
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
    drop(s);
    inst.checkpoint().unwrap();
    inst.backup(None, jetdb::BackupFlags::NONE, None).unwrap();
    inst.checkpoint().unwrap();
    inst.backup(None, jetdb::BackupFlags::NONE, None).unwrap();
    inst.term().unwrap();
    assert!(!dir.path().join(archive_name("edb", 1)).exists());
    fs::remove_file(dir.path().join("edb.chk")).unwrap();
    let Err(err) = try_start(dir.path()) else {
        panic!("recovered without its checkpoint file, the logs truncated");
    };
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::CheckpointFileNotFound, -542),
        "{err}"
    );
}

#[test]
fn a_big_transaction_leaves_the_cache_within_its_size() {
    // A transaction of far more pages than the cache holds (its changes wait in the version
    // store; its commit changes the pages, which stay cached until the log takes them): the
    // work after the commit — here a checkpoint too, the log being past the checkpoint depth —
    // brings the cache back within its size.
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.cache_size = 64 * 4096;
    p.checkpoint_depth = 256 * 1024;
    let instance = Instance::new(os_env(9), p);
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    session.begin_transaction().unwrap();
    for i in 0..2000 {
        session.put(t, &key(i), &[5; 300]).unwrap();
    }
    session.commit_transaction(CommitMode::Durable).unwrap();
    let after = instance.stats().unwrap();
    assert!(after.checkpoints > 0, "{after:?}");
    assert_eq!(after.cache_pages_pinned, 0);
    assert!(after.cache_pages <= after.cache_pages_max, "{after:?}");
    let want: BTreeMap<Vec<u8>, Vec<u8>> = (0..2000).map(|i| (key(i), vec![5; 300])).collect();
    assert_eq!(contents(&instance, "t"), want);
    drop(session);
    instance.term().unwrap();
}

#[test]
fn the_stats_count_log_bytes_and_database_pages_written() {
    let tmp = tempfile::tempdir().unwrap();
    let instance = start(tmp.path());
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    let before = instance.stats().unwrap();
    // Table creation is a durable group of its own: at least one segment written.
    assert!(before.log_bytes_written >= SEGMENT_SIZE as u64);
    s.begin_transaction().unwrap();
    for i in 0..200u32 {
        s.put(t, &i.to_be_bytes(), &[7u8; 100]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    let after = instance.stats().unwrap();
    // The log holds at least the keys and values committed, in whole segments.
    let logged = after.log_bytes_written - before.log_bytes_written;
    assert!(logged >= 200 * 104, "{logged} bytes logged");
    assert_eq!(logged % SEGMENT_SIZE as u64, 0);
    let pages = after.database_pages_written;
    instance.checkpoint().unwrap();
    // The checkpoint writes the changed pages back, and the header's two copies.
    assert!(instance.stats().unwrap().database_pages_written >= pages + 3);
    drop(s);
    instance.term().unwrap();
}

#[test]
fn a_log_of_the_old_format_is_refused_with_bad_log_version() {
    let tmp = tempfile::tempdir().unwrap();
    crashed(tmp.path(), 5, |_| CommitMode::Durable);
    // Version 1 logged page images: a log of it is refused, never replayed as operations.
    let path = tmp.path().join("edb.log");
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    reseal_block(&mut bytes, 0);
    fs::write(&path, &bytes).unwrap();
    let err = try_start(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadLogVersion, "{err}");
}

/// Replay starts at the checkpoint, but batches written under cache pressure since have put a
/// later state in the file: replaying operations onto it must still give exactly the commits,
/// a table deleted and created again under its name included.
#[test]
fn replay_from_an_older_checkpoint_onto_a_later_file_gives_the_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.cache_size = 64 * 4096; // batches under pressure
    p.checkpoint_depth = 1 << 40; // and no checkpoint after the first
    let mut want_u = BTreeMap::new();
    {
        let instance = Instance::new(os_env(21), p.clone());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 1..=10, CommitMode::Durable);
        instance.checkpoint().unwrap();
        let before = instance.stats().unwrap().database_pages_written;
        // Enough to fill the cache several times over: batches go to the file.
        for chunk in (11..3000u32).collect::<Vec<_>>().chunks(100) {
            s.begin_transaction().unwrap();
            for &i in chunk {
                s.put(t, &key(i), &[7u8; 120]).unwrap();
            }
            s.commit_transaction(CommitMode::Lazy).unwrap();
        }
        // The table goes, and comes back under its name with other records.
        s.delete_table("t").unwrap();
        let t = s.create_table("t").unwrap();
        commit_each(&mut s, t, 5..=8, CommitMode::Durable);
        let u = s.create_table("u").unwrap();
        for chunk in (0..3000u32).collect::<Vec<_>>().chunks(100) {
            s.begin_transaction().unwrap();
            for &i in chunk {
                s.put(u, &key(i), &i.to_le_bytes()).unwrap();
                want_u.insert(key(i), i.to_le_bytes().to_vec());
            }
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        let stats = instance.stats().unwrap();
        assert!(stats.database_pages_written > before + 100, "{stats:?}");
        assert_eq!(stats.checkpoints, 1, "{stats:?}");
        // A crash: the file holds a batch's state well past the checkpoint.
    }
    let instance = Instance::new(os_env(21), p);
    instance.init().unwrap();
    let report = instance.recovery_report().unwrap().unwrap();
    assert!(report.commits_replayed > 60, "{report:?}");
    assert_eq!(contents(&instance, "t"), expected(5..=8));
    assert_eq!(contents(&instance, "u"), want_u);
    assert!(instance.check_integrity().is_ok());
    instance.term().unwrap();
}

/// The database file holds changes logged through a position (written by every batch): a log
/// that ends before it lost records it had made durable — damage to its last flush taken for
/// a torn one — and replaying what is left onto the file would mix two states.
#[test]
fn a_log_ending_before_what_the_database_holds_is_log_file_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.cache_size = 64 * 4096; // batches under cache pressure,
    p.checkpoint_depth = 1 << 40; // and the checkpoint left at the start
    {
        let instance = Instance::new(os_env(23), p.clone());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        let mut i = 0u32;
        while instance.database_header().unwrap().log_through.offset == 0 {
            s.begin_transaction().unwrap();
            for _ in 0..50 {
                i += 1;
                s.put(t, &key(i), &[7u8; 200]).unwrap();
            }
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        assert!(instance.database_header().unwrap().log_through > Default::default());
    }
    // The log loses its last durable segments (zeroed: they read as never written).
    let path = tmp.path().join("edb.log");
    let mut bytes = fs::read(&path).unwrap();
    let used = (1..bytes.len() / SEGMENT_SIZE)
        .take_while(|&i| {
            bytes[i * SEGMENT_SIZE..(i + 1) * SEGMENT_SIZE]
                .iter()
                .any(|&b| b != 0)
        })
        .count();
    bytes[(used - 2) * SEGMENT_SIZE..].fill(0);
    fs::write(&path, &bytes).unwrap();
    let err = Instance::new(os_env(23), p).init().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    assert!(err.to_string().contains("logged through"), "{err}");
}

/// A transaction larger than the cache goes to the file in batches as it is applied; each
/// batch leaves the cache within its size, so the next writes into pages it holds do not
/// call for a batch each.
#[test]
fn a_transaction_larger_than_the_cache_writes_few_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.cache_size = 64 * 4096;
    p.checkpoint_depth = 1 << 40;
    let instance = Instance::new(os_env(24), p);
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in 0..6000u32 {
        s.put(t, &key(i), &[5u8; 100]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    // Then every record changed in place, in key order: after each batch, the next writes
    // land in the leaf the cache already holds.
    let before = instance.stats().unwrap().database_pages_written;
    s.begin_transaction().unwrap();
    for i in 0..6000u32 {
        s.put(t, &key(i), &[6u8; 100]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    let written = instance.stats().unwrap().database_pages_written - before;
    let pages = u64::from(instance.check_integrity().unwrap().page_count);
    // Every page goes out about once, twice written (doublewrite file, then its place), with
    // two header copies per batch: a batch per write would be far more.
    assert!(pages > 150, "{pages} pages");
    assert!(
        written < 4 * pages,
        "{written} pages written for a {pages}-page database"
    );
    drop(s);
    instance.term().unwrap();
}

#[test]
fn the_checkpoint_advances_a_share_at_a_time_after_each_commit() {
    // Single-put durable commits of scattered keys: each half depth of log dirties hundreds
    // of pages. The batch that takes them to the file is written a share after each commit,
    // paced by the log's growth, so no commit waits for a whole batch.
    let tmp = tempfile::tempdir().unwrap();
    let mut p = base_params(tmp.path());
    p.cache_size = 64 * 1024 * 1024;
    // (A durable commit of one put writes a log segment: 4 KiB of log each.)
    p.checkpoint_depth = 4 * 1024 * 1024;
    let instance = Instance::new(os_env(3), p);
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    let scattered = |i: u32| key(i.wrapping_mul(2_654_435_761) % 100_000);
    session.begin_transaction().unwrap();
    for i in 0..20_000 {
        session.put(t, &scattered(i), &[1; 100]).unwrap();
    }
    session.commit_transaction(CommitMode::Lazy).unwrap();
    instance.checkpoint().unwrap();
    let start = instance.stats().unwrap();
    let mut written = start.database_pages_written;
    let mut most = 0;
    for i in 0..6_000u32 {
        session.begin_transaction().unwrap();
        session.put(t, &scattered(i * 7 + 3), &[2; 100]).unwrap();
        session.commit_transaction(CommitMode::Durable).unwrap();
        let now = instance.stats().unwrap().database_pages_written;
        most = most.max(now - written);
        written = now;
    }
    let end = instance.stats().unwrap();
    let checkpoints = end.checkpoints - start.checkpoints;
    assert!(checkpoints >= 3, "{end:?}");
    // Pages written per checkpoint: each page of a batch twice, and the header's copies.
    let per_batch = (end.database_pages_written - start.database_pages_written) / checkpoints;
    assert!(per_batch >= 200, "batches of {per_batch} page writes");
    assert!(
        most * 10 <= per_batch,
        "one commit wrote {most} pages of a batch of {per_batch}"
    );
    drop(session);
    instance.term().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_clean_shutdown_gives_back_the_blank_log_tail_and_init_takes_it_again() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let params = || InstanceParams {
        log_file_size: 1024 * 1024,
        ..base_params(tmp.path())
    };
    let log = tmp.path().join("edb.log");
    // (size, bytes allocated)
    let on_disk = || {
        let meta = std::fs::metadata(&log).unwrap();
        (meta.len(), meta.blocks() * 512)
    };
    let instance = Instance::new(os_env(1), params());
    instance.init().unwrap();
    assert!(
        on_disk().1 >= on_disk().0,
        "a new generation is allocated whole"
    );
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    commit_each(&mut session, t, 1..=20, CommitMode::Durable);
    drop(session);
    instance.term().unwrap();
    let (size, allocated) = on_disk();
    assert_eq!(size, 1024 * 1024, "the generation keeps its size");
    assert!(
        allocated < size / 4,
        "after a clean shutdown {allocated} of the log's {size} bytes are still allocated"
    );
    // Init allocates the tail again (commits then overwrite allocated blocks), and nothing
    // logged was given back.
    let instance = Instance::new(os_env(1), params());
    instance.init().unwrap();
    let (size, allocated) = on_disk();
    assert!(
        allocated >= size,
        "after init only {allocated} of the log's {size} bytes are allocated"
    );
    assert_eq!(contents(&instance, "t"), expected(1..=20));
    let mut session = instance.begin_session().unwrap();
    let t = session.open_table("t").unwrap();
    commit_each(&mut session, t, 21..=40, CommitMode::Durable);
    drop(session);
    instance.term().unwrap();
    let instance = Instance::new(os_env(1), params());
    instance.init().unwrap();
    assert_eq!(contents(&instance, "t"), expected(1..=40));
    instance.term().unwrap();
}
