//! The external backup API (ESE's JetBeginExternalBackup … JetEndExternalBackup) and streamed
//! backups: a reader that reads slowly while commits go on restores exactly the begin; every
//! call out of order is refused with ESE's error and changes nothing; an abort, a stop, a
//! damaged page or a dropped handle fails the backup leaving nothing recorded and nothing
//! truncated; a truncation records the backup and an incremental follows it; a stream round-trips,
//! and a damaged or cut stream is refused, leaving nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtOrd};

use jetdb::manifest::{MANIFEST_NAME, Manifest};
use jetdb::{
    BackupEnd, BackupFlags, CommitMode, ErrorKind, EventLog, ExternalBackup, Instance,
    InstanceParams, MemVfs, RestoreOptions, RestorePoint, Vfs,
};

mod support;

use support::{
    Contents, Hook, HookedVfs, PAGE, backup_params, contents, env, key, loaded, read_all, write_all,
};

/// Commits `n` changes: overwrites of the first records, and new ones.
fn churn(inst: &Instance, from: u32, n: u32) {
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in from..from + n {
        s.begin_transaction().unwrap();
        s.put(t, &key(i % 3000), &[b'z'; 150]).unwrap();
        s.put(t, &key(100_000 + i), b"new").unwrap();
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
}

/// Reads `file` whole through `buf`, calling `between` after every read (the slow reader's
/// other work: commits).
fn read_whole(
    backup: &mut ExternalBackup,
    path: &Path,
    buf_len: usize,
    mut between: impl FnMut(),
) -> Vec<u8> {
    let file = backup.open_file(path).unwrap();
    let mut buf = vec![0u8; buf_len];
    let mut bytes = Vec::new();
    loop {
        let n = backup.read_file(file, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        between();
    }
    assert_eq!(bytes.len() as u64, file.size(), "{}", path.display());
    backup.close_file(file).unwrap();
    bytes
}

/// Reads every file of `backup` (the database in reads of `db_buf` bytes, the logs in reads of
/// `log_buf`), calling `between` after every read; returns them by name.
fn read_all_files(
    backup: &mut ExternalBackup,
    db_buf: usize,
    log_buf: usize,
    mut between: impl FnMut(),
) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    if backup.kind() == jetdb::BackupKind::Full {
        for path in backup.attach_info().unwrap() {
            let bytes = read_whole(backup, &path, db_buf, &mut between);
            files.push((name(&path), bytes));
        }
    }
    for path in backup.log_info().unwrap() {
        let bytes = read_whole(backup, &path, log_buf, &mut between);
        files.push((name(&path), bytes));
    }
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Writes what an external backup read as a backup directory `dir`, as an application would
/// that keeps backups the way JetBackup does: the set's files, then its manifest.
fn write_backup_dir(vfs: &MemVfs, dir: &str, manifest: &Manifest, files: &[(String, Vec<u8>)]) {
    let set_dir = manifest.set_dir(Path::new(dir));
    if !vfs.exists(Path::new(dir)).unwrap() {
        vfs.create_dir(Path::new(dir)).unwrap();
    }
    if !vfs.exists(&set_dir).unwrap() {
        vfs.create_dir(&set_dir).unwrap();
    }
    for (name, bytes) in files {
        write_all(vfs, set_dir.join(name), bytes);
    }
    write_all(vfs, Path::new(dir).join(MANIFEST_NAME), &manifest.encode());
}

/// What the backup directory `dir` restores to.
fn restored(vfs: &MemVfs, dir: &str, into: &str) -> jetdb::Result<Contents> {
    support::restore_contents(env(vfs.clone()), backup_params(into), dir)
}

/// The live logs' file names.
fn live_logs(vfs: &MemVfs) -> Vec<String> {
    let mut logs: Vec<String> = vfs
        .list(Path::new("inst"))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    logs.sort();
    logs
}

/// The backups the live database's header records: (full, incremental) generation ranges.
fn recorded(vfs: &MemVfs) -> ((u32, u32), (u32, u32)) {
    let copies = jetdb::read_header_copies(vfs, Path::new("inst/data.edb")).unwrap();
    let h = copies.iter().flatten().max_by_key(|h| h.sequence).unwrap();
    (
        (h.backup_full.gen_low, h.backup_full.gen_high),
        (h.backup_incremental.gen_low, h.backup_incremental.gen_high),
    )
}

fn kind<T: std::fmt::Debug>(result: jetdb::Result<T>) -> ErrorKind {
    result.expect_err("refused").kind()
}

/// A reader that reads a page at a time, committing between every read (so the copy-before-
/// write fence saves pages ahead of it), gets the database as it stood at the begin; the set
/// it makes restores to exactly that, whatever the buffer sizes. A JetBackup and a second
/// external backup meanwhile are refused with -505.
#[test]
fn a_slow_reader_between_commits_restores_exactly_the_begin() {
    for (db_buf, log_buf) in [(PAGE, 1000), (16 * PAGE, 64 * 1024), (PAGE * 300, 1 << 20)] {
        let vfs = MemVfs::new();
        let inst = loaded(&vfs, 3000);
        inst.checkpoint().unwrap(); // the pages in the file, for the fence to keep
        let mut open = inst.begin_session().unwrap();
        let t = open.open_table("t").unwrap();
        open.begin_transaction().unwrap();
        open.put(t, b"open-at-begin", b"x").unwrap();
        let at_begin = contents(&inst);
        let mut backup = inst.begin_external_backup(BackupFlags::NONE).unwrap();
        open.commit_transaction(CommitMode::Durable).unwrap();
        assert_eq!(
            kind(inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)),
            ErrorKind::BackupInProgress
        );
        assert_eq!(
            kind(inst.begin_external_backup(BackupFlags::NONE)),
            ErrorKind::BackupInProgress
        );
        let mut n = 0;
        let files = read_all_files(&mut backup, db_buf, log_buf, || {
            churn(&inst, n, 1);
            n += 1;
            if n % 50 == 0 {
                inst.checkpoint().unwrap();
            }
        });
        assert!(n >= 2, "read in pieces: {n} reads");
        assert!(files[0].1.len() > 100 * PAGE, "the database is in the file");
        let manifest = backup.manifest(None).unwrap();
        let summary = backup.end(BackupEnd::Normal).unwrap();
        assert_eq!(summary.sequence, manifest.backups[0].sequence);
        write_backup_dir(&vfs, "bk", &manifest, &files);
        assert_eq!(restored(&vfs, "bk", "r").unwrap(), at_begin);
        // A copy backup (ended without a truncation): nothing recorded.
        assert_eq!(recorded(&vfs).0, (0, 0));
        inst.term().unwrap();
    }
}

/// Every call out of its order is refused with ESE's error, and the backup goes on after it
/// to a set that restores.
#[test]
fn calls_out_of_order_are_refused_and_change_nothing() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 1000);
    let at_begin = contents(&inst);
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let db = b.attach_info().unwrap().remove(0);
    assert_eq!(db, PathBuf::from("inst/data.edb"));
    let seq = ErrorKind::InvalidBackupSequence;
    // Incomplete: no manifest, no truncation.
    assert_eq!(kind(b.manifest(None)), seq);
    assert_eq!(kind(b.truncate_log()), seq);
    // A log before the logs are listed; a file that is not the backup's.
    let log1 = PathBuf::from("inst/edb00000001.log");
    assert_eq!(kind(b.open_file(&log1)), seq);
    assert_eq!(
        kind(b.open_file(Path::new("inst/other.edb"))),
        ErrorKind::InvalidParameter
    );
    let file = b.open_file(&db).unwrap();
    assert_eq!(file.size() % PAGE as u64, 0);
    // One file at a time; whole pages; the open handle only.
    assert_eq!(kind(b.open_file(&db)), seq);
    let mut odd = vec![0u8; PAGE + 1];
    assert_eq!(
        kind(b.read_file(file, &mut odd)),
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        kind(b.read_file(file, &mut [])),
        ErrorKind::InvalidParameter
    );
    assert_eq!(kind(b.log_info()), seq, "a file is open");
    b.close_file(file).unwrap();
    assert_eq!(
        kind(b.read_file(file, &mut vec![0u8; PAGE])),
        ErrorKind::InvalidParameter
    );
    // The database is read once: it was opened.
    assert_eq!(kind(b.open_file(&db)), seq);
    b.end(BackupEnd::Abort).unwrap();

    // Again, read whole this time, with a misstep in each phase.
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let db_bytes = read_whole(&mut b, &db, 8 * PAGE, || {});
    let logs = b.log_info().unwrap();
    assert_eq!(b.log_info().unwrap(), logs, "listed again, the same");
    assert_eq!(kind(b.attach_info()), seq);
    assert_eq!(kind(b.open_file(&db)), seq);
    // A log read part way, closed: not read whole.
    let file = b.open_file(&logs[0]).unwrap();
    assert!(b.read_file(file, &mut [0u8; 100]).unwrap() == 100);
    b.close_file(file).unwrap();
    assert_eq!(kind(b.truncate_log()), ErrorKind::LogFileNotCopied);
    assert_eq!(kind(b.manifest(None)), ErrorKind::LogFileNotCopied);
    let mut files = vec![(name(&db), db_bytes)];
    for log in &logs {
        files.push((name(log), read_whole(&mut b, log, 777, || {})));
    }
    // A full backup's manifest extends no other.
    let manifest = b.manifest(None).unwrap();
    assert_eq!(
        kind(b.manifest(Some(&manifest))),
        ErrorKind::InvalidParameter
    );
    let deleted = b.truncate_log().unwrap();
    assert_eq!(kind(b.open_file(&logs[0])), seq, "nothing to read after");
    assert_eq!(kind(b.truncate_log()), seq);
    b.end(BackupEnd::Normal).unwrap();
    write_backup_dir(&vfs, "bk", &manifest, &files);
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), at_begin);
    let (low, high) = (manifest.backups[0].gen_low, manifest.backups[0].gen_high);
    assert_eq!(recorded(&vfs).0, (low, high));
    if let Some((_, last)) = deleted {
        assert!(last < high + 1);
    }
    // An incremental has no database phase.
    let mut inc = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    assert_eq!(kind(inc.attach_info()), seq);
    assert_eq!(kind(inc.open_file(&db)), seq);
    // A handle of the backup before is refused, though this one has a file open under the
    // same number (its second).
    let inc_logs = inc.log_info().unwrap();
    let first = inc.open_file(&inc_logs[0]).unwrap();
    inc.close_file(first).unwrap();
    let second = inc.open_file(&inc_logs[0]).unwrap();
    assert_eq!(
        kind(inc.read_file(file, &mut [0u8; 100])),
        ErrorKind::InvalidParameter
    );
    assert_eq!(inc.read_file(second, &mut [0u8; 100]).unwrap(), 100);
    // Flags that name no external option.
    drop(inc);
    assert_eq!(
        kind(inst.begin_external_backup(BackupFlags::ATOMIC)),
        ErrorKind::InvalidGrbit
    );
    inst.term().unwrap();
}

/// An abort, an end in the database phase, a stop, a dropped handle, a damaged page: each
/// fails the backup, records nothing, truncates nothing, and frees the instance for the next
/// backup; later calls answer with the error that failed it.
#[test]
fn a_backup_given_up_records_nothing_and_truncates_nothing() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 1500);
    // A full backup recorded, so truncations have something to go by.
    inst.backup(Some(Path::new("bk0")), BackupFlags::NONE, None)
        .unwrap();
    churn(&inst, 0, 300);
    inst.checkpoint().unwrap();
    // (Each begin finishes the current generation: new logs come, none may go.)
    let before = (recorded(&vfs), live_logs(&vfs));
    let unchanged = |why: &str| {
        assert_eq!(recorded(&vfs), before.0, "{why}");
        let now = live_logs(&vfs);
        assert!(before.1.iter().all(|l| now.contains(l)), "{why}: {now:?}");
    };
    let ready = || {
        // The instance takes the next backup.
        let b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
        b.end(BackupEnd::Abort).unwrap();
    };
    // Aborted after everything was read.
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    read_all_files(&mut b, 64 * PAGE, 1 << 16, || {});
    b.end(BackupEnd::Abort).unwrap();
    unchanged("abort");
    ready();
    // Ended normally in the database phase: given up.
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let db = b.attach_info().unwrap().remove(0);
    let f = b.open_file(&db).unwrap();
    b.read_file(f, &mut vec![0u8; PAGE]).unwrap();
    assert_eq!(
        kind(b.end(BackupEnd::Normal)),
        ErrorKind::InvalidBackupSequence
    );
    unchanged("end in the database phase");
    ready();
    // Stopped by the server.
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    b.attach_info().unwrap();
    assert!(inst.stop_backup());
    assert_eq!(kind(b.log_info()), ErrorKind::BackupAbortByServer);
    assert_eq!(kind(b.attach_info()), ErrorKind::BackupAbortByServer);
    assert_eq!(
        kind(b.end(BackupEnd::Normal)),
        ErrorKind::BackupAbortByServer
    );
    unchanged("stop");
    ready();
    // Dropped.
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    b.log_info().unwrap();
    drop(b);
    unchanged("drop");
    ready();
    // A damaged page of the live file (clean in the cache): -1018, and the backup is failed.
    inst.checkpoint().unwrap();
    let path = Path::new("inst/data.edb");
    let bytes = read_all(&vfs, path);
    let pgno = (2..bytes.len() / PAGE)
        .rev()
        .find(|&p| jetdb::page::verify(&bytes[p * PAGE..(p + 1) * PAGE], p as u32).is_ok())
        .expect("a used page");
    let mut damaged = bytes.clone();
    damaged[pgno * PAGE + PAGE / 2] ^= 0x5A;
    write_all(&vfs, path, &damaged);
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let db = b.attach_info().unwrap().remove(0);
    let f = b.open_file(&db).unwrap();
    let mut buf = vec![0u8; 16 * PAGE];
    let err = loop {
        match b.read_file(f, &mut buf) {
            Ok(0) => panic!("the damaged page was read without complaint"),
            Ok(_) => {}
            Err(err) => break err,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ReadVerifyFailure, "{err}");
    assert_eq!(kind(b.read_file(f, &mut buf)), ErrorKind::ReadVerifyFailure);
    assert_eq!(kind(b.log_info()), ErrorKind::ReadVerifyFailure);
    assert_eq!(kind(b.end(BackupEnd::Normal)), ErrorKind::ReadVerifyFailure);
    write_all(&vfs, path, &bytes);
    unchanged("damaged page");
    ready();
    inst.term().unwrap();
}

/// A truncation records the full backup and deletes the logs below the checkpoint; an
/// incremental external backup then copies the logs after it, and the chain restores to the
/// incremental's begin. An incremental with no full backup recorded is -560.
#[test]
fn a_truncated_full_backup_is_followed_by_an_incremental() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 1500);
    assert_eq!(
        kind(inst.begin_external_backup(BackupFlags::INCREMENTAL)),
        ErrorKind::MissingFullBackup
    );
    churn(&inst, 0, 200);
    inst.checkpoint().unwrap();
    let mut full = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let files = read_all_files(&mut full, 32 * PAGE, 1 << 20, || {});
    let manifest = full.manifest(None).unwrap();
    inst.checkpoint().unwrap();
    let logs_before = live_logs(&vfs);
    let deleted = full.truncate_log().unwrap();
    let summary = full.end(BackupEnd::Normal).unwrap();
    assert_eq!(summary.truncated, deleted);
    let point = manifest.backups[0];
    assert_eq!(recorded(&vfs).0, (point.gen_low, point.gen_high));
    let (low, high) = deleted.expect("logs below the checkpoint went");
    assert!(high <= point.gen_high);
    for g in low..=high {
        let name = format!("edb{g:08X}.log");
        assert!(logs_before.contains(&name) && !live_logs(&vfs).contains(&name));
    }
    write_backup_dir(&vfs, "bk", &manifest, &files);

    churn(&inst, 200, 400);
    let at_inc = contents(&inst);
    let mut inc = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    assert_eq!(inc.backup_point().gen_low, point.gen_high + 1);
    let inc_files = read_all_files(&mut inc, PAGE, 4096, || churn(&inst, 900, 1));
    assert_eq!(kind(inc.manifest(None)), ErrorKind::MissingFullBackup);
    let chained = inc.manifest(Some(&manifest)).unwrap();
    assert_eq!(chained.backups.len(), 2);
    inc.truncate_log().unwrap();
    inc.end(BackupEnd::Normal).unwrap();
    write_backup_dir(&vfs, "bk", &chained, &inc_files);
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), at_inc);
    // The incremental is recorded; the full record stays.
    let inc_point = chained.backups[1];
    assert_eq!(
        recorded(&vfs),
        (
            (point.gen_low, point.gen_high),
            (inc_point.gen_low, inc_point.gen_high)
        )
    );
    // A manifest of another chain is not extended.
    let mut other = manifest.clone();
    other.backups[0].gen_high += 5;
    let mut inc2 = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    read_all_files(&mut inc2, PAGE, 4096, || {});
    assert_eq!(kind(inc2.manifest(Some(&other))), ErrorKind::InvalidBackup);
    inc2.end(BackupEnd::Abort).unwrap();
    inst.term().unwrap();
}

/// A stream written while commits go on restores to exactly its begin, also to a point
/// within it; the staging directory is gone after.
#[test]
fn a_stream_round_trips_and_restores_to_a_point() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 2000);
    let at_begin = contents(&inst);
    let mut stream = Vec::new();
    let summary = inst.backup_to_stream(&mut stream, None).unwrap();
    assert_eq!(recorded(&vfs).0, (0, 0), "a copy backup records nothing");
    assert!(summary.database_bytes > 0 && summary.log_bytes > 0);
    // Blank blocks (the generation the begin finished is mostly blank) are not stored.
    let files = summary.database_bytes + summary.log_bytes;
    assert!((stream.len() as u64) < files, "{} of {files}", stream.len());
    assert_eq!(&stream[..8], b"JETDBSTR");
    churn(&inst, 0, 50);
    inst.term().unwrap();

    let restore = |into: &str, options: &RestoreOptions| -> jetdb::Result<Contents> {
        let r = Instance::new(env(vfs.clone()), backup_params(into));
        let staging = PathBuf::from(format!("{into}-staging"));
        let result = r.restore_stream(&mut &stream[..], &staging, options, None);
        assert!(
            !vfs.exists(&staging).unwrap(),
            "the staging directory is removed"
        );
        result?;
        r.init()?;
        let out = contents(&r);
        r.term()?;
        Ok(out)
    };
    assert_eq!(restore("r1", &RestoreOptions::default()).unwrap(), at_begin);
    // To a point: the last commit at or before the time of the first one (the table's).
    let early = restore(
        "r2",
        &RestoreOptions {
            until: Some(RestorePoint::Time(0)),
            ..RestoreOptions::default()
        },
    );
    match early {
        Ok(c) => assert!(c.len() < at_begin.len()),
        Err(err) => assert_eq!(err.kind(), ErrorKind::StartingRestoreLogTooHigh, "{err}"),
    }
}

/// A stream damaged anywhere — a flipped byte in its header, a page, a log, its manifest or
/// its end; cut short; with bytes after its end — is refused, and leaves nothing: no staging
/// directory, nothing in the destination.
#[test]
fn a_damaged_or_cut_stream_is_refused_and_leaves_nothing() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 500);
    inst.checkpoint().unwrap(); // the pages in the file, so a page is in the stream
    let mut stream = Vec::new();
    inst.backup_to_stream(&mut stream, None).unwrap();
    inst.term().unwrap();
    let try_restore = |bytes: &[u8]| -> ErrorKind {
        let r = Instance::new(env(vfs.clone()), backup_params("r"));
        let err = r
            .restore_stream(
                &mut &bytes[..],
                Path::new("staging"),
                &RestoreOptions::default(),
                None,
            )
            .expect_err("a damaged stream is refused");
        assert!(!vfs.exists(Path::new("staging")).unwrap());
        let left: Vec<String> = vfs.list(Path::new("r")).unwrap_or_default();
        assert!(left.is_empty(), "the destination holds {left:?}");
        err.kind()
    };
    let len = stream.len();
    // The header, the database's record head, a page in it, deep in a log, the manifest,
    // the end's CRC.
    let db_at = 20 + 1 + 2 + "data.edb".len() + 8;
    for (at, want) in [
        (3, ErrorKind::RestoreOfNonBackupDatabase),
        (9, ErrorKind::RestoreOfNonBackupDatabase),
        (db_at + 3 * PAGE + 100, ErrorKind::ReadVerifyFailure),
        (len - 5_000, ErrorKind::LogCorruptDuringHardRestore),
        (len - 40, ErrorKind::LogCorruptDuringHardRestore),
        (len - 2, ErrorKind::RestoreOfNonBackupDatabase),
    ] {
        let mut bad = stream.clone();
        bad[at] ^= 0x10;
        let got = try_restore(&bad);
        // (A flip in a log's blank tail is a CRC mismatch of the log record all the same.)
        assert_eq!(got, want, "a byte flipped at {at} of {len}");
    }
    for cut in [0, 5, db_at + 10, len / 2, len - 1] {
        let got = try_restore(&stream[..cut]);
        assert_eq!(got, ErrorKind::FileIOBeyondEOF, "cut at {cut} of {len}");
    }
    let mut longer = stream.clone();
    longer.push(0);
    assert_eq!(try_restore(&longer), ErrorKind::RestoreOfNonBackupDatabase);
    // Crafted records: chunks past the file's end, an empty chunk, a vast length, a name
    // with a directory in it. (Each with a right CRC: only the framing is wrong.)
    let record = |name: &str, len: u64, chunks: &[u32]| -> Vec<u8> {
        let mut bytes = stream[..20].to_vec();
        let mut item = vec![b'D'];
        item.extend((name.len() as u16).to_le_bytes());
        item.extend(name.as_bytes());
        item.extend(len.to_le_bytes());
        for &word in chunks {
            item.extend(word.to_le_bytes());
        }
        let crc = crc32fast::hash(&item);
        bytes.extend(item);
        bytes.extend(crc.to_le_bytes());
        bytes
    };
    for (why, bytes) in [
        (
            "zeros past the end",
            record("data.edb", 4096, &[0x8000_0000 | 8192]),
        ),
        ("an empty chunk", record("data.edb", 4096, &[0])),
        (
            "a vast file",
            record("data.edb", u64::MAX / 2, &[0x8000_0000 | 4096]),
        ),
        ("a path", record("../data.edb", 4096, &[0x8000_0000 | 4096])),
        ("a hidden name", record(".x", 4096, &[0x8000_0000 | 4096])),
    ] {
        assert_eq!(
            try_restore(&bytes),
            ErrorKind::RestoreOfNonBackupDatabase,
            "{why}"
        );
    }
    assert!(!vfs.exists(Path::new("data.edb")).unwrap());
    // A version this engine does not read.
    let mut v2 = stream.clone();
    v2[8] = 2;
    let crc = crc32fast::hash(&v2[..16]);
    v2[16..20].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(try_restore(&v2), ErrorKind::InvalidDatabaseVersion);
    // A staging directory that exists is refused before anything is read.
    vfs.create_dir(Path::new("staging")).unwrap();
    let r = Instance::new(env(vfs.clone()), backup_params("r"));
    let err = r
        .restore_stream(
            &mut &stream[..],
            Path::new("staging"),
            &RestoreOptions::default(),
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidPath, "{err}");
    // And the undamaged stream restores.
    vfs.remove_dir(Path::new("staging")).unwrap();
    r.restore_stream(
        &mut &stream[..],
        Path::new("staging"),
        &RestoreOptions::default(),
        None,
    )
    .unwrap();
}

/// On real files (the OS `Vfs`): an external backup read while commits go on, and a stream
/// round trip, restore exactly the begin.
#[test]
fn a_stream_on_real_files_restores_its_begin() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let env = jetdb::Env::os();
    let inst = Instance::new(env.clone(), backup_params(root.join("inst")));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in 0..2000 {
        s.put(t, &key(i), &[b'q'; 100]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    let at_begin = contents(&inst);
    let mut stream = Vec::new();
    inst.backup_to_stream(&mut stream, None).unwrap();
    s.put(t, b"after", b"x").unwrap();
    drop(s);
    inst.term().unwrap();
    let r = Instance::new(env, backup_params(root.join("r")));
    r.restore_stream(
        &mut &stream[..],
        &root.join("staging"),
        &RestoreOptions::default(),
        None,
    )
    .unwrap();
    assert!(!jetdb::OsVfs.exists(&root.join("staging")).unwrap());
    r.init().unwrap();
    assert_eq!(contents(&r), at_begin);
    r.term().unwrap();
}

// The attacks of the review of the external API and streams: each failed before its fix.

/// A database whose file name has a space (ESE's "Mailbox Database 0123.edb"): a stream that
/// reports success restores. (The reader once refused every name but `[A-Za-z0-9._-]`.)
#[test]
fn a_stream_of_a_database_named_with_a_space_restores() {
    let vfs = MemVfs::new();
    let p = InstanceParams {
        database_path: PathBuf::from("inst/Mailbox Database.edb"),
        ..backup_params("inst")
    };
    let inst = Instance::new(env(vfs.clone()), p);
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.put(t, b"k", b"v").unwrap();
    drop(s);
    let at_begin = contents(&inst);
    let mut stream = Vec::new();
    let summary = inst.backup_to_stream(&mut stream, None);
    inst.term().unwrap();
    summary.expect("the backup reports success");
    let r = Instance::new(
        env(vfs.clone()),
        InstanceParams {
            database_path: PathBuf::from("r/Mailbox Database.edb"),
            ..backup_params("r")
        },
    );
    let restored = r.restore_stream(
        &mut &stream[..],
        Path::new("r-staging"),
        &RestoreOptions::default(),
        None,
    );
    restored.expect("a backup that reported success restores");
    r.init().unwrap();
    assert_eq!(contents(&r), at_begin);
    r.term().unwrap();
}

/// A handle dropped after `truncate_log` (the backup recorded, its logs deleted) reports a
/// success, not a failure.
#[test]
fn a_handle_dropped_after_the_truncation_reports_a_success() {
    let vfs = MemVfs::new();
    let (log, events) = EventLog::collect();
    let p = InstanceParams {
        event_log: log,
        ..backup_params("inst")
    };
    let inst = Instance::new(env(vfs.clone()), p);
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for i in 0..500u32 {
        s.put(t, &key(i), &[b'a'; 150]).unwrap();
    }
    drop(s);
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    read_all_files(&mut b, PAGE * 4, 4096, || {});
    b.truncate_log().unwrap();
    drop(b);
    let evs: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|r| format!("{:?}", r.event))
        .collect();
    let last_backup = evs.iter().rev().find(|e| e.starts_with("Backup")).unwrap();
    inst.term().unwrap();
    assert!(
        last_backup.starts_with("BackupSucceeded"),
        "a recorded, truncated backup is reported as {last_backup}"
    );
}

/// Tiny, odd buffers for the logs; odd page multiples for the database; a log read partly,
/// closed, reopened; a log read twice. The set restores, truncation records it, an
/// incremental follows.
#[test]
fn odd_buffers_and_rereads_restore_and_chain() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 2000);
    inst.checkpoint().unwrap();
    let at_begin = contents(&inst);
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let db = b.attach_info().unwrap().remove(0);
    let mut n = 0;
    let dbbytes = read_whole(&mut b, &db, PAGE * 3, || {
        churn(&inst, n, 3);
        n += 1;
    });
    let logs = b.log_info().unwrap();
    assert!(!logs.is_empty());
    // partial read of the first log, then close
    let f = b.open_file(&logs[0]).unwrap();
    let mut buf = [0u8; 7];
    for _ in 0..10 {
        b.read_file(f, &mut buf).unwrap();
    }
    b.close_file(f).unwrap();
    assert_eq!(kind(b.truncate_log()), ErrorKind::LogFileNotCopied);
    let mut files = vec![(name(&db), dbbytes)];
    for (i, l) in logs.iter().enumerate() {
        let bytes = read_whole(&mut b, l, if i == 0 { 7 } else { 4093 }, || {});
        files.push((name(l), bytes));
    }
    // read again, whole, with another size
    let again = read_whole(&mut b, &logs[0], 1 << 20, || {});
    assert_eq!(again, files[1].1);
    // after the end, a read answers 0 again
    let manifest = b.manifest(None).unwrap();
    b.truncate_log().unwrap();
    b.end(BackupEnd::Normal).unwrap();
    write_backup_dir(&vfs, "bk", &manifest, &files);
    churn(&inst, 5000, 30);
    let later = contents(&inst);
    let mut inc = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    let incfiles = read_all_files(&mut inc, PAGE, 1, || {});
    let m2 = inc.manifest(Some(&manifest)).unwrap();
    inc.truncate_log().unwrap();
    inc.end(BackupEnd::Normal).unwrap();
    inst.term().unwrap();
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), at_begin);
    write_backup_dir(&vfs, "bk", &m2, &incfiles);
    assert_eq!(restored(&vfs, "bk", "r2").unwrap(), later);
}

/// A handle from before a term and a new init, dropped or ended while a new backup runs.
#[test]
fn a_stale_handle_after_a_new_init_disturbs_nothing() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 500);
    let mut old = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    let db = old.attach_info().unwrap().remove(0);
    let f = old.open_file(&db).unwrap();
    let mut buf = vec![0u8; PAGE];
    old.read_file(f, &mut buf).unwrap();
    inst.term().unwrap();
    inst.init().unwrap();
    let at_begin = contents(&inst);
    let mut new = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    assert_eq!(
        kind(old.read_file(f, &mut buf)),
        ErrorKind::BackupAbortByServer
    );
    assert_eq!(
        kind(old.end(BackupEnd::Abort)),
        ErrorKind::BackupAbortByServer
    );
    let files = read_all_files(&mut new, PAGE * 8, 4096, || churn(&inst, 0, 1));
    let m = new.manifest(None).unwrap();
    new.truncate_log().unwrap();
    new.end(BackupEnd::Normal).unwrap();
    inst.term().unwrap();
    write_backup_dir(&vfs, "bk", &m, &files);
    assert_eq!(restored(&vfs, "bk", "r").unwrap(), at_begin);
}

/// A staging directory that is the target, or holds it, is refused (it is removed after the
/// restore: it once took the restored instance with it, after a success), and nothing is made.
#[test]
fn a_staging_directory_holding_the_target_is_refused() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 300);
    let at_begin = contents(&inst);
    let mut stream = Vec::new();
    inst.backup_to_stream(&mut stream, None).unwrap();
    inst.term().unwrap();
    for (target, staging) in [("st/r2", "st"), ("r1", "r1")] {
        let r = Instance::new(env(vfs.clone()), backup_params(target));
        let got = r.restore_stream(
            &mut &stream[..],
            Path::new(staging),
            &RestoreOptions::default(),
            None,
        );
        assert_eq!(kind(got), ErrorKind::InvalidPath, "{target} in {staging}");
        assert!(!vfs.exists(Path::new(staging)).unwrap());
    }
    // Inside the target is fine.
    let r = Instance::new(env(vfs.clone()), backup_params("r3"));
    let staging = Path::new("./r3/.jetdb-stream");
    r.restore_stream(&mut &stream[..], staging, &RestoreOptions::default(), None)
        .unwrap();
    r.init().unwrap();
    assert_eq!(contents(&r), at_begin);
    r.term().unwrap();
}

#[derive(Debug, Default)]
struct FailChk(AtomicBool);
impl Hook for FailChk {
    fn write_to(&self, path: &Path, _: u64, _: usize) -> std::io::Result<()> {
        if self.0.load(AtOrd::SeqCst) && path.extension().is_some_and(|e| e == "chk") {
            return Err(std::io::Error::other("injected EIO on the checkpoint"));
        }
        Ok(())
    }
}

/// `truncate_log` fails after it recorded the backup (the checkpoint write of the truncation
/// fails): the backup is recorded, so it has succeeded, and an abort then changes nothing; the
/// next incremental follows it. (It once stayed open, and an abort reported a failure of a
/// backup the header recorded.)
#[test]
fn a_truncation_failing_after_the_record_leaves_a_recorded_success() {
    let hook = Arc::new(FailChk::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let mem = vfs.inner.clone();
    let inst = Instance::new(env(vfs), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for i in 0..500u32 {
        s.put(t, &key(i), &[b'a'; 150]).unwrap();
    }
    drop(s);
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    read_all_files(&mut b, PAGE * 4, 4096, || {});
    hook.0.store(true, AtOrd::SeqCst);
    let point = b.backup_point();
    let t = b.truncate_log();
    hook.0.store(false, AtOrd::SeqCst);
    assert_eq!(kind(t), ErrorKind::DiskIO);
    let summary = b
        .end(BackupEnd::Abort)
        .expect("a recorded backup ends as a success");
    assert_eq!(summary.sequence, point.sequence);
    assert_eq!(recorded(&mem).0, (point.gen_low, point.gen_high));
    let next = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    assert_eq!(next.backup_point().gen_low, point.gen_high + 1);
    drop(next);
    inst.term().unwrap();
}

/// A cut stream restored with the staging directory inside a target that did not exist
/// leaves no target directory.
#[test]
fn a_cut_stream_leaves_no_target_directory() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 300);
    let mut stream = Vec::new();
    inst.backup_to_stream(&mut stream, None).unwrap();
    inst.term().unwrap();
    let r = Instance::new(env(vfs.clone()), backup_params("r"));
    let cut = &stream[..stream.len() / 2];
    let err = r.restore_stream(
        &mut &cut[..],
        Path::new("r/.jetdb-stream"),
        &RestoreOptions::default(),
        None,
    );
    assert_eq!(kind(err), ErrorKind::FileIOBeyondEOF);
    assert!(
        !vfs.exists(Path::new("r")).unwrap(),
        "the failed restore left the target directory r: {:?}",
        vfs.list(Path::new("r"))
    );
}

/// Sequences: drop in the database phase with the fence holding pages ahead; stop after the
/// truncation then end; log_info twice; end Normal with nothing truncated; next begin works.
#[test]
fn drops_stops_and_truncations_free_the_instance() {
    let vfs = MemVfs::new();
    let inst = loaded(&vfs, 2000);
    inst.checkpoint().unwrap();
    {
        let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
        let db = b.attach_info().unwrap().remove(0);
        let f = b.open_file(&db).unwrap();
        let mut buf = vec![0u8; PAGE];
        b.read_file(f, &mut buf).unwrap();
        churn(&inst, 0, 200);
        inst.checkpoint().unwrap();
        b.read_file(f, &mut buf).unwrap();
    }
    let mut b = inst.begin_external_backup(BackupFlags::NONE).unwrap();
    read_all_files(&mut b, PAGE * 5, 999, || {});
    assert_eq!(b.log_info().unwrap().len(), b.log_info().unwrap().len());
    b.truncate_log().unwrap();
    assert!(!inst.stop_backup(), "released at the truncation");
    b.end(BackupEnd::Normal).unwrap();
    let mut b = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    read_all_files(&mut b, PAGE, 1, || {});
    assert!(inst.stop_backup());
    assert_eq!(kind(b.truncate_log()), ErrorKind::BackupAbortByServer);
    assert_eq!(
        kind(b.end(BackupEnd::Normal)),
        ErrorKind::BackupAbortByServer
    );
    let b = inst
        .begin_external_backup(BackupFlags::INCREMENTAL)
        .unwrap();
    b.end(BackupEnd::Abort).unwrap();
    inst.term().unwrap();
}

#[derive(Debug, Default)]
struct FailRemovals(AtomicBool);
impl Hook for FailRemovals {
    fn remove_of(&self, path: &Path) -> std::io::Result<()> {
        // (Once: what removes the staging directory's files after fails no more.)
        if path.starts_with("r/.jetdb-stream") && self.0.swap(false, AtOrd::SeqCst) {
            return Err(std::io::Error::other(
                "injected EIO removing the staging directory",
            ));
        }
        Ok(())
    }
}

/// A restore done is not undone when its staging directory cannot be removed: the error is
/// returned, and the restored instance (in a target the call made) stays whole.
#[test]
fn a_staging_directory_that_cannot_be_removed_keeps_the_restore() {
    let hook = Arc::new(FailRemovals::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let mem = vfs.inner.clone();
    let inst = loaded(&mem, 300);
    let at_begin = contents(&inst);
    let mut stream = Vec::new();
    inst.backup_to_stream(&mut stream, None).unwrap();
    inst.term().unwrap();
    hook.0.store(true, AtOrd::SeqCst);
    let r = Instance::new(env(vfs.clone()), backup_params("r"));
    let staging = Path::new("r/.jetdb-stream");
    let err = r
        .restore_stream(&mut &stream[..], staging, &RestoreOptions::default(), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DiskIO, "{err}");
    assert!(mem.exists(staging).unwrap(), "the staging directory stays");
    r.init().unwrap();
    assert_eq!(contents(&r), at_begin);
    r.term().unwrap();
}
