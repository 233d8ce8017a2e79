//! Backup, restore and init on real files whose paths the OS refuses: a path through a
//! regular file (ENOTDIR) is `JET_errInvalidPath` (-1023) wherever it is found, a destination
//! the OS will not write (EROFS, EPERM, EACCES) is `JET_errFileAccessDenied` (-1032), and a
//! missing directory is what it always was. Each refusal leaves the instance working and the
//! file in the way untouched.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests put regular files where directories should be"
)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetdb::{
    BackupFlags, CommitMode, Env, ErrorKind, Instance, InstanceParams, JetError, OsVfs,
    RestoreSummary, SeededEntropy, SystemClock,
};

mod support;

use support::numbered::{commit_each, key, value};
use support::{base_params, in_read_only_mount, sysfs_missing};

const RECORDS: u32 = 100;

fn os_env() -> Env {
    Env::new(
        Arc::new(OsVfs),
        Arc::new(SystemClock),
        Arc::new(SeededEntropy::new(7)),
    )
}

fn params(dir: &Path, create: bool) -> InstanceParams {
    InstanceParams {
        create_path_if_not_exist: create,
        ..base_params(dir)
    }
}

/// A started instance in `dir` (which must exist unless `create`) holding the numbered
/// records `0..RECORDS` in table `t`.
fn loaded(dir: &Path, create: bool) -> Instance {
    let instance = Instance::new(os_env(), params(dir, create));
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    commit_each(&mut s, t, 0..RECORDS, CommitMode::Durable);
    instance
}

/// Commits one more record and reads a first one back: the instance still works.
fn still_works(instance: &Instance, i: u32) {
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    commit_each(&mut s, t, [RECORDS + i], CommitMode::Durable);
    s.begin_transaction().unwrap();
    assert_eq!(s.get(t, &key(0)).unwrap(), Some(value(0)));
    s.rollback().unwrap();
}

/// Starts the restored instance in `dir` and checks it holds records `0..RECORDS`.
fn holds_the_records(dir: &Path) {
    let instance = Instance::new(os_env(), params(dir, false));
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in [0, RECORDS / 2, RECORDS - 1] {
        assert_eq!(s.get(t, &key(i)).unwrap(), Some(value(i)), "record {i}");
    }
    s.rollback().unwrap();
    drop(s);
    instance.term().unwrap();
}

fn restore(into: InstanceParams, backup: &Path) -> jetdb::Result<RestoreSummary> {
    Instance::new(os_env(), into).restore(backup, None)
}

#[track_caller]
fn refused<T>(result: jetdb::Result<T>, kind: ErrorKind, what: &str) -> JetError {
    let Err(err) = result else {
        panic!("{what}: succeeded, expected {kind}");
    };
    assert_eq!(err.kind(), kind, "{what}: {err}");
    err
}

/// A regular file at `path`: the file in the way.
fn regular_file(path: &Path) -> Vec<u8> {
    let bytes = b"a regular file, not a directory".to_vec();
    fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn a_backup_path_through_a_regular_file_is_invalid_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    let bytes = regular_file(&file);
    // Found by the lookup of the directory (ENOTDIR), without create_path; found while
    // creating it, with create_path; and the file itself as the directory.
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    for (instance, create) in [
        (loaded(&plain, false), false),
        (loaded(&tmp.path().join("creating"), true), true),
    ] {
        // A full backup first, so that an incremental one is refused for its path alone.
        let good = tmp.path().join(format!("good-{create}"));
        fs::create_dir(&good).unwrap();
        instance
            .backup(Some(&good), BackupFlags::NONE, None)
            .unwrap();
        for (dest, flags) in [
            (file.join("bk"), BackupFlags::NONE),
            (file.join("bk"), BackupFlags::ATOMIC),
            (file.join("a/b"), BackupFlags::NONE),
            (file.join("bk"), BackupFlags::INCREMENTAL),
            (file.clone(), BackupFlags::NONE),
        ] {
            let what = format!(
                "backup into {} ({flags:?}, create_path {create})",
                dest.display()
            );
            let err = refused(
                instance.backup(Some(&dest), flags, None),
                ErrorKind::InvalidPath,
                &what,
            );
            assert_eq!(err.code(), -1023);
            assert!(
                err.message().contains("Not a directory") || err.message().contains("is a file"),
                "{what}: {err}"
            );
        }
        still_works(&instance, u32::from(create));
        // And the backup set in a good place goes on as ever.
        instance
            .backup(Some(&good), BackupFlags::INCREMENTAL, None)
            .unwrap();
        instance.term().unwrap();
    }
    assert_eq!(
        fs::read(&file).unwrap(),
        bytes,
        "the file in the way is untouched"
    );
}

#[test]
fn a_restore_from_or_into_a_path_through_a_regular_file_is_invalid_path() {
    let tmp = tempfile::tempdir().unwrap();
    let bk = tmp.path().join("bk");
    let instance = loaded(&tmp.path().join("inst"), true);
    instance.backup(Some(&bk), BackupFlags::NONE, None).unwrap();
    instance.term().unwrap();
    let file = tmp.path().join("file");
    let bytes = regular_file(&file);

    // The backup directory: under the file (its manifest is looked up through it), or the
    // file itself.
    for from in [file.join("bk"), file.clone()] {
        let what = format!("restore from {}", from.display());
        let into = params(&tmp.path().join("r0"), true);
        refused(restore(into, &from), ErrorKind::InvalidPath, &what);
    }
    // The target: under the file, whether the restore may create it or not; the file itself.
    for (to, create) in [
        (file.join("r"), false),
        (file.join("r"), true),
        (file.join("r/s"), true),
        (file.clone(), true),
    ] {
        let what = format!("restore into {} (create_path {create})", to.display());
        refused(
            restore(params(&to, create), &bk),
            ErrorKind::InvalidPath,
            &what,
        );
    }
    // Only the log directory through the file: refused before anything is made.
    let r1 = tmp.path().join("r1");
    let into = InstanceParams {
        log_path: file.join("logs"),
        ..params(&r1, true)
    };
    refused(
        restore(into, &bk),
        ErrorKind::InvalidPath,
        "restore with its logs under a file",
    );
    assert!(
        !r1.exists(),
        "a refused restore made its database directory"
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        bytes,
        "the file in the way is untouched"
    );

    // The same backup into a good place restores.
    let good = tmp.path().join("good");
    restore(params(&good, true), &bk).unwrap();
    holds_the_records(&good);
}

#[test]
fn an_instance_directory_through_a_regular_file_is_invalid_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    regular_file(&file);
    let inst = tmp.path().join("inst");
    for create in [false, true] {
        let p = InstanceParams {
            log_path: file.join("logs"),
            ..params(&inst, create)
        };
        let err = Instance::new(os_env(), p).init().unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidPath,
            "create_path {create}: {err}"
        );
    }
}

#[test]
fn a_missing_directory_gives_what_it_always_gave() {
    let tmp = tempfile::tempdir().unwrap();
    let inst = tmp.path().join("inst");
    fs::create_dir(&inst).unwrap();
    let instance = loaded(&inst, false);
    let missing = tmp.path().join("missing/bk");
    let err = refused(
        instance.backup(Some(&missing), BackupFlags::NONE, None),
        ErrorKind::InvalidPath,
        "a full backup into a missing directory",
    );
    assert!(err.message().contains("does not exist"), "{err}");
    refused(
        instance.backup(Some(&missing), BackupFlags::INCREMENTAL, None),
        ErrorKind::MissingFullBackup,
        "an incremental backup into a missing directory",
    );
    let bk = tmp.path().join("bk");
    fs::create_dir(&bk).unwrap();
    instance.backup(Some(&bk), BackupFlags::NONE, None).unwrap();
    instance.term().unwrap();

    let err = refused(
        restore(params(&tmp.path().join("r"), true), &missing),
        ErrorKind::FileNotFound,
        "a restore from a missing directory",
    );
    assert_eq!(err.code(), -1811);
    let err = refused(
        restore(params(&tmp.path().join("missing/r"), false), &bk),
        ErrorKind::InvalidPath,
        "a restore into a missing directory it may not create",
    );
    assert!(err.message().contains("does not exist"), "{err}");
    // A missing file among the paths is not found, as ever (ENOENT).
    let io = JetError::io("open x", &io::Error::from_raw_os_error(2));
    assert_eq!(io.kind(), ErrorKind::FileNotFound);
}

/// `/sys` makes no directory and no file for anyone, root included: a real EPERM (mkdir) and
/// EACCES (create), or EROFS where it is mounted read-only.
#[test]
fn a_destination_the_os_does_not_permit_is_access_denied() {
    if let Some(why) = sysfs_missing() {
        println!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let instance = loaded(&tmp.path().join("inst"), true);
    let refused_dir = PathBuf::from(format!("/sys/jetdb-test-{}", std::process::id()));
    let dest = refused_dir.join("bk");
    let err = refused(
        instance.backup(Some(&dest), BackupFlags::NONE, None),
        ErrorKind::FileAccessDenied,
        "a backup into /sys",
    );
    assert_eq!(err.code(), -1032);
    still_works(&instance, 0);
    let bk = tmp.path().join("bk");
    instance.backup(Some(&bk), BackupFlags::NONE, None).unwrap();
    instance.term().unwrap();
    refused(
        restore(params(&refused_dir, true), &bk),
        ErrorKind::FileAccessDenied,
        "a restore into /sys",
    );
    assert!(!refused_dir.exists());
}

/// Set in the copy of this test that runs inside the read-only mount: the test's directory.
const READ_ONLY_ROOT: &str = "JETDB_TEST_READ_ONLY_ROOT";
/// What that copy prints when every check ran.
const CHECKED: &str = "the read-only destination was checked";

/// A read-only file system (EROFS): this test runs again inside a mount namespace where its
/// directory `ro` is a read-only bind mount (root ignores file modes, not a read-only mount).
#[test]
fn a_read_only_destination_is_access_denied() {
    if let Some(root) = std::env::var_os(READ_ONLY_ROOT) {
        return on_a_read_only_mount(Path::new(&root));
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let instance = loaded(&root.join("inst"), true);
    let ro = root.join("ro");
    fs::create_dir(&ro).unwrap();
    // A backup that will lie on the read-only file system: it must still restore.
    instance
        .backup(Some(&ro.join("bk")), BackupFlags::NONE, None)
        .unwrap();
    instance.term().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut copy = match in_read_only_mount(&ro, &exe) {
        Ok(command) => command,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let out = copy
        .args(["--exact", "a_read_only_destination_is_access_denied"])
        .args(["--nocapture", "--test-threads=1"])
        .env(READ_ONLY_ROOT, root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(CHECKED),
        "the checks did not run: {stdout}\n{stderr}"
    );
    // The mount was the copy's alone.
    fs::write(ro.join("writable"), b"again").unwrap();
}

/// The checks, in the mount namespace where `root/ro` is read-only.
fn on_a_read_only_mount(root: &Path) {
    let ro = root.join("ro");
    let err = fs::write(ro.join("probe"), b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ReadOnlyFilesystem, "{err}");
    let denied = |result: jetdb::Result<()>, what: &str| {
        let err = refused(result, ErrorKind::FileAccessDenied, what);
        assert!(err.message().contains("(os error 30)"), "{what}: {err}");
    };
    // (May create directories: what refuses them is the file system.)
    let instance = Instance::new(os_env(), params(&root.join("inst"), true));
    instance.init().unwrap();
    for (dest, flags) in [
        (ro.join("new"), BackupFlags::NONE),
        (ro.clone(), BackupFlags::NONE),
        (ro.join("bk"), BackupFlags::INCREMENTAL),
        (ro.join("bk"), BackupFlags::ATOMIC),
    ] {
        let what = format!("backup into {} ({flags:?})", dest.display());
        denied(instance.backup(Some(&dest), flags, None).map(drop), &what);
        still_works(&instance, 0);
    }
    instance.term().unwrap();
    // Restore reads its backup on the read-only mount and writes elsewhere.
    let restored = root.join("restored");
    restore(params(&restored, true), &ro.join("bk")).unwrap();
    holds_the_records(&restored);
    for to in [ro.join("r"), ro.clone()] {
        let what = format!("restore into {}", to.display());
        denied(restore(params(&to, true), &ro.join("bk")).map(drop), &what);
    }
    println!("{CHECKED}");
}
