//! `verify_backup`: a backup directory verified whole. Each test plants one problem in a copy of
//! a good backup set — a full backup and two incremental ones — and checks it is reported, as
//! exactly the problems it causes (nothing it does not); a good set reports nothing, and
//! several problems at once are all reported.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use jetdb::manifest::{self, MANIFEST_NAME, Manifest};
use jetdb::verify::{BAD_PAGES_LISTED, SetFile, SignatureOf};
use jetdb::{
    BackupFlags, BackupReport, CommitMode, ErrorKind, Instance, InstanceParams, MemVfs, Problem,
    Vfs, verify_backup,
};

mod support;

use rand::{Rng, SeedableRng};
use support::{Hook, HookedVfs, backup_params, env, env_with, key, read_all, write_all};

type Tree = BTreeMap<String, Option<Vec<u8>>>;

const BK: &str = "bk";

/// Puts records `range` into table `t` (created if missing), 50 to a transaction.
fn load(inst: &Instance, range: std::ops::Range<u32>, mode: CommitMode) {
    load_by(inst, range, mode, 50);
}

/// Puts records `range` into table `t` (created if missing), `per` to a transaction.
fn load_by(inst: &Instance, range: std::ops::Range<u32>, mode: CommitMode, per: u32) {
    let mut s = inst.begin_session().unwrap();
    let t = support::open_or_create_table(&mut s, "t");
    let mut i = range.start;
    while i < range.end {
        s.begin_transaction().unwrap();
        for j in i..(i + per).min(range.end) {
            s.put(t, &key(j), &[b'a' + (j % 26) as u8; 150]).unwrap();
        }
        s.commit_transaction(mode).unwrap();
        i += per;
    }
}

/// A full backup of records 0..1500, written to the database file, into `dir` (copied as it stands to `at_full`, if given),
/// then two incremental ones, their logs written by durable commits; the instance terminated.
fn backup_set(inst: &Instance, dir: &str, at_full: Option<(&MemVfs, &str)>) {
    inst.init().unwrap();
    load(inst, 0..1500, CommitMode::Lazy);
    // (Else the pages are all in the cache and the log: the copy would be the empty file.)
    inst.checkpoint().unwrap();
    inst.backup(Some(Path::new(dir)), BackupFlags::NONE, None)
        .unwrap();
    if let Some((mem, to)) = at_full {
        plant(mem, &support::tree(mem, Path::new(dir)), to);
    }
    load(inst, 1500..2500, CommitMode::Durable);
    inst.backup(Some(Path::new(dir)), BackupFlags::INCREMENTAL, None)
        .unwrap();
    load(inst, 2500..3000, CommitMode::Durable);
    inst.backup(Some(Path::new(dir)), BackupFlags::INCREMENTAL, None)
        .unwrap();
    inst.term().unwrap();
}

/// Writes `tree` under `to`.
fn plant(mem: &MemVfs, tree: &Tree, to: &str) {
    mem.create_dir_all(Path::new(to)).unwrap();
    for (rel, content) in tree {
        let path = Path::new(to).join(rel);
        match content {
            None => mem.create_dir_all(&path).unwrap(),
            Some(bytes) => write_all(mem, &path, bytes),
        }
    }
}

/// The file systems every test starts from, made once: the instance `inst` (terminated) and
/// its backup set in `bk`; another instance's (another seed: other signatures) in `other-bk`;
/// and `fork-bk`, a backup of a fork of the same log set — `bk`'s full backup restored
/// elsewhere at another time and run on, so its later generations have `bk`'s signatures and
/// numbers but another history; and `twin-bk`, a full backup of a twin of `inst` (the same
/// seed and clock: the same signatures and creation times) that committed in other groups.
fn base() -> &'static Tree {
    static BASE: OnceLock<Tree> = OnceLock::new();
    BASE.get_or_init(|| {
        let mem = MemVfs::new();
        backup_set(
            &Instance::new(env(mem.clone()), backup_params("inst")),
            BK,
            Some((&mem, "bk-full")),
        );
        backup_set(
            &Instance::new(env_with(mem.clone(), 2, 1), backup_params("other")),
            "other-bk",
            None,
        );
        let fork = Instance::new(env_with(mem.clone(), 1, 5_000_000), backup_params("fork"));
        fork.restore(Path::new("bk-full"), None).unwrap();
        fork.init().unwrap();
        load(&fork, 5000..6500, CommitMode::Durable);
        fork.backup(Some(Path::new("fork-bk")), BackupFlags::NONE, None)
            .unwrap();
        fork.term().unwrap();
        let twin = Instance::new(env(mem.clone()), backup_params("twin"));
        twin.init().unwrap();
        load_by(&twin, 0..3000, CommitMode::Durable, 30);
        twin.backup(Some(Path::new("twin-bk")), BackupFlags::NONE, None)
            .unwrap();
        twin.term().unwrap();
        let all = support::tree(&mem, Path::new(""));
        assert!(verify(&mem, BK).is_ok(), "{}", verify(&mem, BK).summary());
        all
    })
}

/// A fresh file system holding [`base`], and `bk`'s manifest.
fn world() -> (MemVfs, Manifest) {
    let mem = MemVfs::new();
    plant(&mem, base(), "");
    let m = manifest::read(&mem, Path::new(BK)).unwrap().unwrap();
    (mem, m)
}

fn verify(vfs: &dyn Vfs, dir: &str) -> BackupReport {
    verify_backup(vfs, Path::new(dir)).unwrap()
}

/// The file `name` of `dir`'s current set.
fn set_file(m: &Manifest, dir: &str, name: &str) -> PathBuf {
    m.set_dir(Path::new(dir)).join(name)
}

fn log_path(m: &Manifest, generation: u32) -> PathBuf {
    set_file(m, BK, &m.log_name(generation))
}

fn db_path(m: &Manifest) -> PathBuf {
    set_file(m, BK, &m.db_name)
}

/// Each problem in brief: its class, its error and its path.
fn brief(report: &BackupReport) -> Vec<(&'static str, ErrorKind, PathBuf)> {
    report
        .problems
        .iter()
        .map(|p| (p.what(), p.kind(), p.path().to_path_buf()))
        .collect()
}

/// The generations of the set, and a middle one (neither the first nor the last).
fn middle(m: &Manifest) -> u32 {
    let gens: Vec<u32> = m.logs.iter().map(|l| l.generation).collect();
    assert!(gens.len() >= 3, "{gens:?}");
    gens[gens.len() / 2]
}

fn flip(mem: &MemVfs, path: &Path, at: usize) {
    let mut bytes = read_all(mem, path);
    bytes[at] ^= 0x10;
    write_all(mem, path, &bytes);
}

/// Replaces `dir`'s manifest with `m` (its CRC32 made anew: a manifest that agrees with what
/// it describes).
fn rewrite_manifest(mem: &MemVfs, dir: &str, m: &Manifest) {
    write_all(mem, Path::new(dir).join(MANIFEST_NAME), &m.encode());
}

/// The pages of the database copy that pass their checks and are not blank, past the fixed
/// ones (header copies, catalog root, first map page).
fn used_pages(mem: &MemVfs, m: &Manifest) -> Vec<usize> {
    let bytes = read_all(mem, db_path(m));
    let page = m.page_size as usize;
    (4..bytes.len() / page)
        .filter(|&p| jetdb::page::verify(&bytes[p * page..(p + 1) * page], p as u32).is_ok())
        .collect()
}

#[test]
fn a_good_backup_reports_nothing_and_reads_every_file() {
    let (mem, m) = world();
    let report = verify(&mem, BK);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.manifest.as_ref(), Some(&m));
    assert_eq!(report.logs_read, m.logs.len() as u64);
    assert_eq!(report.pages_read, m.db_len / u64::from(m.page_size));
    let total: u64 = m.logs.iter().map(|l| l.len).sum::<u64>() + m.db_len;
    assert_eq!(report.bytes_read, total);
    let summary = report.summary();
    assert!(
        summary.starts_with("bk: the backup is whole: set 1, 3 backups"),
        "{summary}"
    );
    // The fork's backup and the other instance's are whole too: each is a backup of its own.
    assert!(verify(&mem, "fork-bk").is_ok());
    assert!(verify(&mem, "other-bk").is_ok());
}

#[test]
fn a_missing_log_or_database_copy_is_reported() {
    let (mem, m) = world();
    let g = middle(&m);
    mem.remove(&log_path(&m, g)).unwrap();
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [(
            "missing",
            ErrorKind::MissingRestoreLogFiles,
            log_path(&m, g)
        )]
    );
    assert!(matches!(
        report.problems[0],
        Problem::Missing { file: SetFile::Log(x), .. } if x == g
    ));
    let error = report.problems[0].to_error();
    assert_eq!(
        (
            error.code(),
            error.message().starts_with("bk/set-00000001/edb")
        ),
        (-557, true),
        "{error}"
    );
    let line = report.problems[0].to_string();
    assert!(
        line.starts_with("JET_errMissingRestoreLogFiles (-557) bk/set-00000001/edb")
            && line.contains(&format!("expected log generation {g:#X}; found nothing")),
        "{line}"
    );

    let (mem, m) = world();
    mem.remove(&db_path(&m)).unwrap();
    assert_eq!(
        brief(&verify(&mem, BK)),
        [("missing", ErrorKind::FileNotFound, db_path(&m))]
    );

    // A directory in a log's place.
    let (mem, m) = world();
    let g = middle(&m);
    mem.remove(&log_path(&m, g)).unwrap();
    mem.create_dir(&log_path(&m, g)).unwrap();
    assert_eq!(
        verify(&mem, BK).problems,
        [Problem::WrongType {
            path: log_path(&m, g),
            expected_dir: false
        }]
    );

    // The set's directory gone: every file it held is missing.
    let (mem, m) = world();
    for name in mem.list(&m.set_dir(Path::new(BK))).unwrap() {
        mem.remove(&set_file(&m, BK, &name)).unwrap();
    }
    mem.remove_dir(&m.set_dir(Path::new(BK))).unwrap();
    let report = verify(&mem, BK);
    assert_eq!(
        report.problems.len(),
        m.logs.len() + 2,
        "{:?}",
        report.problems
    );
    assert!(report.problems.iter().all(|p| p.what() == "missing"));
}

#[test]
fn an_extra_file_is_reported_in_the_directory_and_in_the_set() {
    let (mem, m) = world();
    write_all(&mem, Path::new("bk/notes.txt"), b"mine");
    write_all(&mem, set_file(&m, BK, "edb.log"), b"stray");
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [
            (
                "extra",
                ErrorKind::BackupDirectoryNotEmpty,
                PathBuf::from("bk/notes.txt")
            ),
            (
                "extra",
                ErrorKind::BackupDirectoryNotEmpty,
                set_file(&m, BK, "edb.log")
            ),
        ]
    );
    // A file in the set is debris the next backup removes; anything else, nothing removes.
    assert!(matches!(
        report.problems[..],
        [
            Problem::Extra {
                dir: false,
                debris: false,
                ..
            },
            Problem::Extra {
                dir: false,
                debris: true,
                ..
            }
        ]
    ));
    assert!(report.problems[0].to_string().contains("none removes it"));
    assert!(
        report.problems[1]
            .to_string()
            .contains("the next backup into this directory removes it")
    );
    assert!(
        report.summary().starts_with("bk: 2 problems (2 extra)"),
        "{}",
        report.summary()
    );
}

#[test]
fn an_extra_directory_is_reported_in_the_directory_and_in_the_set() {
    let (mem, m) = world();
    mem.create_dir(Path::new("bk/old")).unwrap();
    write_all(&mem, Path::new("bk/old/data.edb"), b"x");
    mem.create_dir(&set_file(&m, BK, "sub")).unwrap();
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [
            (
                "extra",
                ErrorKind::BackupDirectoryNotEmpty,
                PathBuf::from("bk/old")
            ),
            (
                "extra",
                ErrorKind::BackupDirectoryNotEmpty,
                set_file(&m, BK, "sub")
            ),
        ]
    );
    assert!(matches!(
        report.problems[..],
        [
            Problem::Extra {
                dir: true,
                debris: false,
                ..
            },
            Problem::Extra {
                dir: true,
                debris: true,
                ..
            }
        ]
    ));
}

/// A set directory no manifest names — a backup that never finished — is debris, and the next
/// backup does remove it, as the report says: after it, the directory verifies clean.
#[test]
fn a_stray_set_directory_is_reported_and_the_next_backup_removes_it() {
    let (mem, m) = world();
    let stray = Path::new(BK).join(Manifest::set_dir_name(m.set + 1));
    mem.create_dir(&stray).unwrap();
    write_all(&mem, stray.join(&m.db_name), &read_all(&mem, db_path(&m)));
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [("extra", ErrorKind::BackupDirectoryNotEmpty, stray.clone())]
    );
    assert!(matches!(
        report.problems[0],
        Problem::Extra {
            dir: true,
            debris: true,
            ..
        }
    ));
    let inst = Instance::new(env(mem.clone()), backup_params("inst"));
    inst.init().unwrap();
    load(&inst, 3000..3100, CommitMode::Durable);
    inst.backup(Some(Path::new(BK)), BackupFlags::INCREMENTAL, None)
        .unwrap();
    inst.term().unwrap();
    let report = verify(&mem, BK);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.manifest.unwrap().backups.len(), 4);
}

#[test]
fn a_leftover_temporary_manifest_is_reported() {
    let (mem, _) = world();
    let tmp = Path::new(BK).join(format!("{MANIFEST_NAME}.tmp"));
    write_all(&mem, &tmp, b"half a manifest");
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [("extra", ErrorKind::BackupDirectoryNotEmpty, tmp)]
    );
    assert!(matches!(
        report.problems[0],
        Problem::Extra { debris: true, .. }
    ));
}

#[test]
fn a_resized_file_is_reported() {
    let (mem, m) = world();
    let g = middle(&m);
    let log = log_path(&m, g);
    let mut bytes = read_all(&mem, &log);
    bytes.extend_from_slice(&[0; 4096]);
    write_all(&mem, &log, &bytes);
    let entry = m.logs.iter().find(|l| l.generation == g).unwrap();
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [(
            "resized",
            ErrorKind::LogCorruptDuringHardRestore,
            log.clone()
        )]
    );
    assert_eq!(
        report.problems[0],
        Problem::Resized {
            path: log,
            file: SetFile::Log(g),
            expected: entry.len,
            found: entry.len + 4096,
        }
    );

    // The database copy a page short: the pages it holds are still checked (and pass).
    let (mem, m) = world();
    let db = db_path(&m);
    let bytes = read_all(&mem, &db);
    write_all(&mem, &db, &[]);
    write_all(&mem, &db, &bytes[..bytes.len() - m.page_size as usize]);
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [("resized", ErrorKind::BadBackupDatabaseSize, db)]
    );
    assert_eq!(
        report.pages_read,
        m.db_len / u64::from(m.page_size) - 1,
        "the pages there were read"
    );
}

/// A byte changed in a log: resealed, so that every segment passes its checksum, only the
/// manifest's CRC32 catches it; left as it is, the scan finds the damaged segment too.
#[test]
fn a_modified_log_is_reported() {
    let (mem, m) = world();
    let g = middle(&m);
    let log = log_path(&m, g);
    let mut bytes = read_all(&mem, &log);
    // The reserved word of the first data segment's header: no check reads it.
    let seg = jetdb::log::SEGMENT_SIZE;
    bytes[seg + 29] ^= 1;
    support::reseal_block(&mut bytes, seg);
    write_all(&mem, &log, &bytes);
    let entry = m.logs.iter().find(|l| l.generation == g).unwrap();
    let report = verify(&mem, BK);
    assert_eq!(
        report.problems,
        [Problem::Modified {
            path: log.clone(),
            expected: entry.crc,
            found: crc32fast::hash(&bytes),
        }]
    );
    assert_eq!(report.problems[0].kind().code(), -573);

    // Not resealed: the segment is damaged, and a later one vouches for it.
    let (mem, _) = world();
    flip(&mem, &log, seg + 100);
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [
            (
                "damaged log",
                ErrorKind::LogCorruptDuringHardRestore,
                log.clone()
            ),
            (
                "modified",
                ErrorKind::LogCorruptDuringHardRestore,
                log.clone()
            ),
        ]
    );
    assert!(
        report.problems[0].found().contains("corrupt segment 1"),
        "{}",
        report.problems[0]
    );
}

/// A log cut short: torn (as a copy that never finished), and short.
#[test]
fn a_torn_log_is_reported() {
    let (mem, m) = world();
    let g = middle(&m);
    let log = log_path(&m, g);
    let bytes = read_all(&mem, &log);
    write_all(&mem, &log, &[]);
    write_all(&mem, &log, &bytes[..3 * jetdb::log::SEGMENT_SIZE + 100]);
    assert_eq!(
        brief(&verify(&mem, BK)),
        [
            (
                "damaged log",
                ErrorKind::LogTornWriteDuringHardRestore,
                log.clone()
            ),
            ("resized", ErrorKind::LogCorruptDuringHardRestore, log),
        ]
    );
}

/// A page of the database copy damaged: each bad page is reported by number, and nothing
/// else (the digest covers the checksums the pages carry, which a flipped byte leaves).
#[test]
fn every_bad_page_is_reported_by_number() {
    let (mem, m) = world();
    let used = used_pages(&mem, &m);
    assert!(used.len() > 10, "{used:?}");
    let page = m.page_size as usize;
    let bad = [used[0], used[used.len() / 2], used[used.len() - 1]];
    for pgno in bad {
        flip(&mem, &db_path(&m), pgno * page + 200);
    }
    let report = verify(&mem, BK);
    let found: Vec<(u64, ErrorKind)> = report
        .problems
        .iter()
        .map(|p| match p {
            Problem::BadPage { pgno, error, .. } => (*pgno, error.kind()),
            other => panic!("{other}"),
        })
        .collect();
    let expected: Vec<(u64, ErrorKind)> = bad
        .iter()
        .map(|&p| (p as u64, ErrorKind::ReadVerifyFailure))
        .collect();
    assert_eq!(found, expected);
    assert!(
        report.problems[0]
            .to_string()
            .starts_with("JET_errReadVerifyFailure (-1018) bk/set-00000001/data.edb: bad page"),
        "{}",
        report.problems[0]
    );
}

/// A page replaced by another valid page — its body changed and its checksum made anew, its
/// number and dbtime kept, so it passes its own checks and the flush map's — is caught by the
/// digest alone: the copy is not the one the backup made.
#[test]
fn a_page_replaced_by_another_valid_page_is_caught_by_the_digest() {
    let (mem, m) = world();
    let used = used_pages(&mem, &m);
    let page = m.page_size as usize;
    let pgno = used[used.len() / 2];
    let db = db_path(&m);
    let mut bytes = read_all(&mem, &db);
    let p = &mut bytes[pgno * page..(pgno + 1) * page];
    p[page - 1] ^= 0x55;
    let sum = jetdb::page::checksum(p);
    p[..4].copy_from_slice(&sum.to_le_bytes());
    jetdb::page::verify(p, pgno as u32).expect("a valid page");
    write_all(&mem, &db, &bytes);
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [("modified", ErrorKind::RestoreOfNonBackupDatabase, db)]
    );
    assert!(matches!(
        report.problems[0],
        Problem::DigestMismatch { expected, found, .. } if expected == m.db_digest && found != expected
    ));
}

/// The database copy of another backup (of another database): its header's signatures, and
/// its digest.
#[test]
fn another_databases_copy_is_reported() {
    let (mem, m) = world();
    let other = manifest::read(&mem, Path::new("other-bk"))
        .unwrap()
        .unwrap();
    let theirs = read_all(&mem, set_file(&other, "other-bk", &other.db_name));
    let db = db_path(&m);
    write_all(&mem, &db, &[]);
    write_all(&mem, &db, &theirs);
    let report = verify(&mem, BK);
    let mut classes: Vec<&str> = report.problems.iter().map(Problem::what).collect();
    classes.dedup();
    let expected: &[&str] = if theirs.len() as u64 == m.db_len {
        &["foreign database", "modified"]
    } else {
        &["resized", "foreign database"]
    };
    assert_eq!(classes, expected, "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| matches!(
        p,
        Problem::ForeignDatabase { of: SignatureOf::Database, expected, found, .. }
            if *expected == m.db_signature && *found == other.db_signature
    )));
}

#[test]
fn a_damaged_manifest_is_reported_and_the_rest_listed_as_unverifiable() {
    let (mem, m) = world();
    flip(&mem, &Path::new(BK).join(MANIFEST_NAME), 30);
    write_all(&mem, Path::new("bk/jetbackup.manifest.tmp"), b"x");
    let report = verify(&mem, BK);
    let set_dir = m.set_dir(Path::new(BK));
    assert_eq!(
        brief(&report),
        [
            (
                "damaged manifest",
                ErrorKind::LogCorruptDuringHardRestore,
                Path::new(BK).join(MANIFEST_NAME)
            ),
            (
                "extra",
                ErrorKind::BackupDirectoryNotEmpty,
                PathBuf::from("bk/jetbackup.manifest.tmp")
            ),
            (
                "unverifiable",
                ErrorKind::LogCorruptDuringHardRestore,
                set_dir
            ),
        ]
    );
    assert!(report.manifest.is_none());
    assert!(
        report.problems[0].found().contains("checksum"),
        "{}",
        report.problems[0]
    );

    // Cut short: the same.
    let (mem, _) = world();
    let path = Path::new(BK).join(MANIFEST_NAME);
    let bytes = read_all(&mem, &path);
    write_all(&mem, &path, &[]);
    write_all(&mem, &path, &bytes[..bytes.len() - 7]);
    let report = verify(&mem, BK);
    assert_eq!(report.problems.len(), 2);
    assert_eq!(report.problems[0].what(), "damaged manifest");
}

#[test]
fn a_missing_manifest_is_reported_and_the_sets_are_debris() {
    let (mem, m) = world();
    mem.remove(&Path::new(BK).join(MANIFEST_NAME)).unwrap();
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [
            (
                "no manifest",
                ErrorKind::FileNotFound,
                Path::new(BK).join(MANIFEST_NAME)
            ),
            (
                "extra",
                ErrorKind::BackupDirectoryNotEmpty,
                m.set_dir(Path::new(BK))
            ),
        ]
    );
    assert!(matches!(
        report.problems[1],
        Problem::Extra { debris: true, .. }
    ));
    // An empty directory: no backup.
    mem.create_dir(Path::new("empty")).unwrap();
    assert_eq!(
        brief(&verify(&mem, "empty")),
        [(
            "no manifest",
            ErrorKind::FileNotFound,
            Path::new("empty").join(MANIFEST_NAME)
        )]
    );
    // No directory at all, or a file in its place: nothing to verify.
    let err = verify_backup(&mem, Path::new("nowhere")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FileNotFound);
    write_all(&mem, Path::new("afile"), b"x");
    let err = verify_backup(&mem, Path::new("afile/bk")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidPath);
}

/// A generation of the fork (the same log set, numbers and signatures, another history) in
/// place of the set's own, the manifest rewritten to agree with it (its length and CRC32): no
/// file is damaged and the manifest is whole, but the chain of previous-generation times
/// breaks on both sides of it, and its commits are not the set's.
#[test]
fn another_runs_generation_in_the_set_is_a_gap_though_the_manifest_agrees() {
    let (mem, m) = world();
    let fm = manifest::read(&mem, Path::new("fork-bk")).unwrap().unwrap();
    assert_eq!(fm.log_signature, m.log_signature);
    let full_high = m.backups[0].gen_high;
    let last = m.log_range().1;
    // A generation the fork wrote after its first, which the set has with one after it.
    let g = fm
        .logs
        .iter()
        .map(|l| l.generation)
        .find(|&g| g > full_high + 1 && g < last)
        .expect("a forked generation inside the set");
    let theirs = read_all(&mem, set_file(&fm, "fork-bk", &fm.log_name(g)));
    write_all(&mem, log_path(&m, g), &theirs);
    let mut agreeing = m.clone();
    let entry = agreeing
        .logs
        .iter_mut()
        .find(|l| l.generation == g)
        .unwrap();
    entry.len = theirs.len() as u64;
    entry.crc = crc32fast::hash(&theirs);
    rewrite_manifest(&mem, BK, &agreeing);

    let report = verify(&mem, BK);
    let gaps: Vec<&Problem> = report
        .problems
        .iter()
        .filter(|p| p.what() == "log gap")
        .collect();
    assert_eq!(gaps.len(), 2, "{:?}", report.problems);
    assert_eq!(gaps[0].path(), log_path(&m, g));
    assert_eq!(gaps[1].path(), log_path(&m, g + 1));
    assert!(
        gaps[0]
            .to_string()
            .starts_with("JET_errGivenLogFileIsNotContiguous (-556)")
    );
    // Nothing is damaged, resized or modified; the rest is about the commits.
    for p in &report.problems {
        assert!(
            ["log gap", "commits missing", "backup point"].contains(&p.what()),
            "{p}"
        );
    }
}

/// A generation of the twin (the same signatures, numbers and creation times: its header is
/// the set's own) in place of the set's, the manifest agreeing: only the commit numbers tell
/// it apart — they jump where it begins and where it ends (a restore would find it only by
/// replaying, and fail there).
#[test]
fn a_twins_generation_in_the_set_is_found_by_its_commits() {
    let (mem, m) = world();
    let tm = manifest::read(&mem, Path::new("twin-bk")).unwrap().unwrap();
    assert_eq!(
        (tm.log_signature, tm.db_signature),
        (m.log_signature, m.db_signature)
    );
    // The last generation of the first incremental backup, inside the set.
    let g = m.backups[1].gen_high;
    assert!(g > m.log_range().0 && g < m.log_range().1, "{m:?}");
    assert!(tm.logs.iter().any(|l| l.generation == g));
    let name = m.log_name(g);
    let theirs = read_all(&mem, set_file(&tm, "twin-bk", &name));
    let ours = read_all(&mem, log_path(&m, g));
    let header = |bytes: &[u8]| jetdb::log::scan(bytes, "log").unwrap().header;
    assert_eq!(header(&theirs), header(&ours), "the same header");
    assert_ne!(theirs, ours);
    write_all(&mem, log_path(&m, g), &theirs);
    let mut agreeing = m.clone();
    let entry = agreeing
        .logs
        .iter_mut()
        .find(|l| l.generation == g)
        .unwrap();
    entry.len = theirs.len() as u64;
    entry.crc = crc32fast::hash(&theirs);
    rewrite_manifest(&mem, BK, &agreeing);

    // The twin committed in groups of another size: its commit numbers are not the set's
    // where the generation begins, where the next begins, and at the backup point.
    let report = verify(&mem, BK);
    assert_eq!(
        brief(&report),
        [
            (
                "commits missing",
                ErrorKind::GivenLogFileIsNotContiguous,
                log_path(&m, g)
            ),
            (
                "commits missing",
                ErrorKind::GivenLogFileIsNotContiguous,
                log_path(&m, g + 1)
            ),
            (
                "backup point",
                ErrorKind::LogCorruptDuringHardRestore,
                Path::new(BK).join(MANIFEST_NAME)
            ),
        ]
    );
    assert!(matches!(
        report.problems[2],
        Problem::BackupPointMismatch { backup: 1, generation, expected, found, .. }
            if generation == g && expected == m.backups[1].sequence && found != expected
    ));
}

/// A generation removed from the set and from the manifest (rewritten whole): the manifest's
/// own shape check refuses logs that skip a generation. The last generation removed and the
/// last backup made to end before it: then the logs end before that backup's point.
#[test]
fn a_generation_removed_with_the_manifest_agreeing_is_still_a_gap() {
    let (mem, m) = world();
    let g = middle(&m);
    mem.remove(&log_path(&m, g)).unwrap();
    let mut agreeing = m.clone();
    agreeing.logs.retain(|l| l.generation != g);
    rewrite_manifest(&mem, BK, &agreeing);
    let report = verify(&mem, BK);
    assert_eq!(report.problems[0].what(), "damaged manifest");
    assert!(
        report.problems[0].found().contains("not contiguous"),
        "{}",
        report.problems[0]
    );

    // The manifest's second backup claims one commit more than its logs hold.
    let (mem, m) = world();
    let mut lying = m.clone();
    lying.backups[1].sequence += 1;
    assert!(lying.backups[1].sequence < lying.backups[2].sequence);
    rewrite_manifest(&mem, BK, &lying);
    let report = verify(&mem, BK);
    assert_eq!(
        report.problems,
        [Problem::BackupPointMismatch {
            path: Path::new(BK).join(MANIFEST_NAME),
            backup: 1,
            generation: m.backups[1].gen_high,
            expected: m.backups[1].sequence + 1,
            found: m.backups[1].sequence,
        }]
    );
    // And a chain whose second backup does not begin where the first ended.
    let (mem, m) = world();
    let mut broken = m.clone();
    broken.backups[1].gen_low += 1;
    rewrite_manifest(&mem, BK, &broken);
    assert_eq!(
        brief(&verify(&mem, BK)),
        [(
            "broken chain",
            ErrorKind::LogCorruptDuringHardRestore,
            Path::new(BK).join(MANIFEST_NAME)
        )]
    );
}

/// A log of another instance (another log set and database) under the right name.
#[test]
fn a_foreign_log_is_reported() {
    let (mem, m) = world();
    let other = manifest::read(&mem, Path::new("other-bk"))
        .unwrap()
        .unwrap();
    let g = middle(&m);
    assert!(
        other.logs.iter().any(|l| l.generation == g),
        "{:?}",
        other.logs
    );
    let theirs = read_all(&mem, set_file(&other, "other-bk", &other.log_name(g)));
    let log = log_path(&m, g);
    write_all(&mem, &log, &theirs);
    let report = verify(&mem, BK);
    let mut expected = vec![
        (
            "foreign log",
            ErrorKind::GivenLogFileHasBadSignature,
            log.clone(),
        ),
        (
            "foreign log",
            ErrorKind::GivenLogFileHasBadSignature,
            log.clone(),
        ),
    ];
    let ours = m.logs.iter().find(|l| l.generation == g).unwrap();
    expected.push(match theirs.len() as u64 == ours.len {
        true => (
            "modified",
            ErrorKind::LogCorruptDuringHardRestore,
            log.clone(),
        ),
        false => (
            "resized",
            ErrorKind::LogCorruptDuringHardRestore,
            log.clone(),
        ),
    });
    assert_eq!(brief(&report), expected);
    assert!(matches!(
        &report.problems[..2],
        [
            Problem::ForeignLog {
                of: SignatureOf::LogSet,
                ..
            },
            Problem::ForeignLog {
                of: SignatureOf::Database,
                ..
            }
        ]
    ));
}

/// A log holding the next generation, under this one's name.
#[test]
fn a_log_of_another_generation_is_reported() {
    let (mem, m) = world();
    let g = middle(&m);
    let next = read_all(&mem, log_path(&m, g + 1));
    write_all(&mem, log_path(&m, g), &next);
    let report = verify(&mem, BK);
    assert!(
        report.problems.iter().any(|p| *p
            == Problem::WrongGeneration {
                path: log_path(&m, g),
                expected: g,
                found: g + 1,
            }),
        "{:?}",
        report.problems
    );
}

#[test]
fn several_problems_at_once_are_all_reported() {
    let (mem, m) = world();
    let g = middle(&m);
    mem.remove(&log_path(&m, g)).unwrap();
    write_all(&mem, Path::new("bk/stray"), b"x");
    let stray_set = Path::new(BK).join(Manifest::set_dir_name(7));
    mem.create_dir(&stray_set).unwrap();
    let page = m.page_size as usize;
    let pgno = used_pages(&mem, &m)[3];
    flip(&mem, &db_path(&m), pgno * page + 99);
    let first = log_path(&m, m.logs[0].generation);
    let mut bytes = read_all(&mem, &first);
    bytes.push(0);
    write_all(&mem, &first, &bytes);
    let report = verify(&mem, BK);
    let mut found: Vec<(&str, i32, PathBuf)> = report
        .problems
        .iter()
        .map(|p| (p.what(), p.kind().code(), p.path().to_path_buf()))
        .collect();
    found.sort();
    let mut expected = vec![
        ("extra", -504, PathBuf::from("bk/stray")),
        ("extra", -504, stray_set),
        ("resized", -573, first),
        ("missing", -557, log_path(&m, g)),
        ("bad page", -1018, db_path(&m)),
    ];
    expected.sort();
    assert_eq!(found, expected);
    assert!(
        report
            .summary()
            .starts_with("bk: 5 problems (2 extra, 1 resized, 1 missing, 1 bad page)"),
        "{}",
        report.summary()
    );
}

/// A hook that records the largest read and fails every read of one file.
#[derive(Debug, Default)]
struct Reads {
    largest: Mutex<usize>,
    fail: Mutex<Option<PathBuf>>,
}

impl Hook for Reads {
    fn read_from(&self, path: &Path, _: u64, len: usize) -> io::Result<()> {
        let mut largest = self.largest.lock().unwrap();
        *largest = (*largest).max(len);
        if self.fail.lock().unwrap().as_deref() == Some(path) {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }
}

/// A backup of files larger than a read: a database of 15,000 records (over 2 MiB) and logs of
/// 2 MiB. Every read is at most a mebibyte; more bad pages than are listed are counted; a bad
/// map page past the first is reported alone (the pages it describes are not judged by the
/// map before it); an unreadable file is reported and the rest still read.
#[test]
fn large_files_are_read_a_mebibyte_at_a_time_and_every_bad_page_counted() {
    let mem = MemVfs::new();
    let params = InstanceParams {
        log_file_size: 2 << 20,
        ..backup_params("big")
    };
    let inst = Instance::new(env(mem.clone()), params);
    inst.init().unwrap();
    load(&inst, 0..15_000, CommitMode::Lazy);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
    let m = manifest::read(&mem, Path::new(BK)).unwrap().unwrap();
    let page = m.page_size as usize;
    let pages = (m.db_len / page as u64) as usize;
    let second_map = 3 + (page - 32) / 8;
    assert!(
        pages > second_map + 50 && m.db_len > 2 << 20,
        "{pages} pages"
    );
    assert!(m.logs.iter().any(|l| l.len > 1 << 20));

    let reads = Arc::new(Reads::default());
    let hooked = HookedVfs {
        inner: mem.clone(),
        hook: Arc::clone(&reads),
    };
    let report = verify(&hooked, BK);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(*reads.largest.lock().unwrap(), jetdb::log::LOG_PIECE);

    // The second map page damaged: that page alone.
    let pristine = read_all(&mem, db_path(&m));
    flip(&mem, &db_path(&m), second_map * page + 300);
    let report = verify(&mem, BK);
    assert!(
        matches!(
            &report.problems[..],
            [Problem::BadPage { pgno, .. }] if *pgno == second_map as u64
        ),
        "{:?}",
        report.problems
    );

    // Every page from 4 on damaged: the first hundred listed, the rest counted.
    let mut bytes = pristine.clone();
    for p in 4..pages {
        bytes[p * page + 100] ^= 1;
    }
    write_all(&mem, db_path(&m), &bytes);
    let report = verify(&mem, BK);
    let listed = BAD_PAGES_LISTED as usize;
    assert_eq!(report.problems.len(), listed + 1);
    for (i, p) in report.problems[..listed].iter().enumerate() {
        assert!(
            matches!(p, Problem::BadPage { pgno, .. } if *pgno == 4 + i as u64),
            "{p}"
        );
    }
    assert_eq!(
        report.problems[listed],
        Problem::MoreBadPages {
            path: db_path(&m),
            listed: BAD_PAGES_LISTED,
            total: (pages - 4) as u64,
            kind: ErrorKind::ReadVerifyFailure,
        }
    );

    // A log that cannot be read: reported, and the database still read through.
    write_all(&mem, db_path(&m), &pristine);
    let log = log_path(&m, m.logs[0].generation);
    *reads.fail.lock().unwrap() = Some(log.clone());
    let report = verify(&hooked, BK);
    assert_eq!(brief(&report), [("unreadable", ErrorKind::DiskIO, log)]);
    assert_eq!(report.pages_read, pages as u64);
}

/// Whatever restore refuses, verify reports, with restore's error among its problems: damage
/// as bit rot makes it (a byte flipped, a file cut short or removed, in any file of the set,
/// the manifest included), 80 times over. Every such damage is reported.
#[test]
fn whatever_restore_refuses_verify_reports() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let (mem, m) = world();
    let expected = support::restore_contents(env(mem.clone()), backup_params("good"), BK).unwrap();
    let mut files: Vec<PathBuf> = m
        .logs
        .iter()
        .map(|l| log_path(&m, l.generation))
        .chain([db_path(&m), Path::new(BK).join(MANIFEST_NAME)])
        .collect();
    files.sort();
    for case in 0..80 {
        let (mem, _) = world();
        let file = &files[rng.random_range(0..files.len())];
        let mut bytes = read_all(&mem, file);
        let damage = match rng.random_range(0..8) {
            0 => {
                mem.remove(file).unwrap();
                "removed".to_string()
            }
            1 => {
                let len = rng.random_range(0..bytes.len());
                write_all(&mem, file, &[]);
                write_all(&mem, file, &bytes[..len]);
                format!("cut to {len} bytes")
            }
            _ => {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
                write_all(&mem, file, &bytes);
                format!("a bit flipped at {at}")
            }
        };
        let what = format!("case {case}: {} {damage}", file.display());
        let report = verify(&mem, BK);
        assert!(!report.is_ok(), "{what}: nothing reported");
        let inst = Instance::new(env(mem.clone()), backup_params(format!("r{case}")));
        match inst.restore(Path::new(BK), None) {
            Ok(_) => {
                inst.init().unwrap();
                assert_eq!(support::contents(&inst), expected, "{what}");
                inst.term().unwrap();
            }
            Err(err) => assert!(
                report.problems.iter().any(|p| p.kind() == err.kind()),
                "{what}: restore refused it with {err}, verify reported {:?}",
                report.problems
            ),
        }
    }
}
