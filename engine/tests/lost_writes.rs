//! Lost writes: a page the disk acknowledged writing but still holds as it was (or holds
//! at another place) is an older page with a valid checksum and its own number. The flush
//! map (engine/src/store/flushmap.rs) must refuse it wherever it is read — a read, a file
//! check, a backup, a restore — with `JET_errReadLostFlushVerifyFailure`, never return it as
//! data.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the database-level cases damage real files on purpose"
)]

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jetdb::{
    BackupFlags, CommitMode, Database, DatabaseOptions, Env, ErrorKind, Instance, MemVfs, OpenMode,
    Vfs, verify_file,
};

mod support;

use support::{
    Hook, HookedVfs, PAGE, env, env_with, open_or_create_table, options, params, read_all,
    read_everything,
};

const CATALOG_ROOT: usize = 2;
/// The flush map's first page (engine/src/store/flushmap.rs).
const FIRST_MAP: usize = 3;
const KIND_MAP: u8 = 6;

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

/// Writes `n` records (every 97th a value spanning overflow pages) with values derived from
/// `round`, and returns the model.
fn fill(db: &mut Database, n: u32, round: u8) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let t = db.open_table("t").unwrap();
    let mut model = BTreeMap::new();
    for i in 0..n {
        let len = if i % 97 == 5 { 9_000 } else { 40 };
        let value = vec![round.wrapping_add(i as u8); len];
        db.put(t, &key(i), &value).unwrap();
        model.insert(key(i), value);
    }
    model
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// A database file in two versions: `before`, then `after` a second round of writes over the
/// same keys (and more). Returns the path, both images and the model of `after`.
fn two_versions(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>, Model) {
    let path = dir.join("data.edb");
    let mut db = Database::create(&Env::os(), &path, &options()).unwrap();
    db.create_table("t").unwrap();
    fill(&mut db, 1500, 1);
    db.close().unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut db = Database::open(&Env::os(), &path, &options()).unwrap();
    let model = fill(&mut db, 2500, 2);
    db.close().unwrap();
    let after = std::fs::read(&path).unwrap();
    (path, before, after, model)
}

/// What a file check reported: each bad page with its error.
fn bad_pages(report: &jetdb::ChecksumReport) -> Vec<(u64, ErrorKind)> {
    report
        .bad_pages
        .iter()
        .map(|b| (b.pgno, b.error.kind()))
        .collect()
}

/// Page `pgno` of a database image.
fn page(image: &[u8], pgno: usize) -> &[u8] {
    &image[pgno * PAGE..(pgno + 1) * PAGE]
}

/// Writes `bytes` over page `pgno` of the file at `path`.
fn write_page(vfs: &MemVfs, path: &str, pgno: usize, bytes: &[u8]) {
    let file = vfs.open(Path::new(path), OpenMode::ReadWrite).unwrap();
    file.write_all_at(bytes, (pgno * PAGE) as u64).unwrap();
}

#[test]
fn a_page_that_lost_its_last_write_is_refused_wherever_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, before, after, model) = two_versions(dir.path());
    read_everything(&path, &model).expect("the file as written reads back whole");
    let mut refused = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for pgno in 2..before.len() / PAGE {
        let (old, new) = (page(&before, pgno), page(&after, pgno));
        if old == new || new[16] == KIND_MAP {
            continue;
        }
        // The write of `new` was lost: the disk still holds `old`, whole and in its place.
        let mut lost = after.clone();
        lost[pgno * PAGE..(pgno + 1) * PAGE].copy_from_slice(old);
        std::fs::write(&path, &lost).unwrap();
        let report = verify_file(&*Env::os().vfs, &path).unwrap();
        let found = bad_pages(&report);
        assert_eq!(
            found,
            vec![(pgno as u64, ErrorKind::ReadLostFlushVerifyFailure)],
            "page {pgno}: the file check names the stale page"
        );
        let err = read_everything(&path, &model).expect_err("a stale page went unnoticed");
        assert_eq!(
            err.kind(),
            ErrorKind::ReadLostFlushVerifyFailure,
            "page {pgno}: {err}"
        );
        refused += 1;
        kinds.insert(old[16]);
    }
    assert!(refused > 20, "only {refused} pages were rewritten");
    // Leaves, branches, overflow pages and the catalog root are among them.
    assert!(kinds.len() >= 3, "page kinds tried: {kinds:?}");
}

#[test]
fn a_flush_map_page_that_lost_its_write_makes_the_file_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, before, after, _) = two_versions(dir.path());
    assert_eq!(page(&after, FIRST_MAP)[16], KIND_MAP);
    assert_ne!(page(&before, FIRST_MAP), page(&after, FIRST_MAP));
    let mut lost = after.clone();
    lost[FIRST_MAP * PAGE..(FIRST_MAP + 1) * PAGE].copy_from_slice(page(&before, FIRST_MAP));
    std::fs::write(&path, &lost).unwrap();
    let err = Database::open(&Env::os(), &path, &options())
        .map(drop)
        .expect_err("a stale map would vouch for stale pages");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    let report = verify_file(&*Env::os().vfs, &path).unwrap();
    assert_eq!(
        report
            .bad_pages
            .iter()
            .map(|b| b.error.kind())
            .collect::<Vec<_>>(),
        vec![ErrorKind::ReadLostFlushVerifyFailure]
    );
}

#[test]
fn a_page_image_written_at_another_place_is_refused_by_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, after, model) = two_versions(dir.path());
    // Page 5's image lands on page 6 (a misdirected write): 6 holds a whole page, not its own.
    let mut misdirected = after.clone();
    misdirected.copy_within(5 * PAGE..6 * PAGE, 6 * PAGE);
    std::fs::write(&path, &misdirected).unwrap();
    let report = verify_file(&*Env::os().vfs, &path).unwrap();
    assert_eq!(report.bad_pages.len(), 1, "{:?}", report.bad_pages);
    assert_eq!(report.bad_pages[0].pgno, 6);
    assert_eq!(
        report.bad_pages[0].error.kind(),
        ErrorKind::ReadPgnoVerifyFailure
    );
    let err = read_everything(&path, &model).expect_err("a misplaced page went unnoticed");
    assert_eq!(err.kind(), ErrorKind::ReadPgnoVerifyFailure, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Backup and restore, on an instance.

fn commit_round(inst: &Instance, round: u8) {
    let mut s = inst.begin_session().unwrap();
    let t = open_or_create_table(&mut s, "t");
    s.begin_transaction().unwrap();
    for i in 0..1500u32 {
        s.put(t, &key(i), &[round.wrapping_add(i as u8); 60])
            .unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
}

/// The first page past the map's that differs between two images of a database.
fn changed_page(old: &[u8], new: &[u8]) -> usize {
    (FIRST_MAP + 1..old.len().min(new.len()) / PAGE)
        .find(|&p| page(old, p) != page(new, p) && page(new, p)[16] != KIND_MAP)
        .expect("a page the second round rewrote")
}

#[test]
fn a_backup_refuses_a_page_that_lost_its_write_and_leaves_nothing() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    commit_round(&inst, 1);
    inst.checkpoint().unwrap();
    let db = "inst/data.edb";
    let old = read_all(&vfs, db);
    commit_round(&inst, 2);
    inst.checkpoint().unwrap();
    let new = read_all(&vfs, db);
    let pgno = changed_page(&old, &new);
    // Under the running instance, the disk loses that page's last write.
    write_page(&vfs, db, pgno, page(&old, pgno));
    let err = inst
        .backup(Some(Path::new("bk")), BackupFlags::default(), None)
        .expect_err("a backup copied a stale page");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    let left: Vec<_> = vfs.list(Path::new("bk")).unwrap_or_default();
    assert!(left.is_empty(), "the failed backup left {left:?}");
}

#[test]
fn a_restore_refuses_a_set_whose_page_is_an_older_copy_of_itself() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    commit_round(&inst, 1);
    inst.checkpoint().unwrap();
    inst.backup(Some(Path::new("bk1")), BackupFlags::default(), None)
        .unwrap();
    commit_round(&inst, 2);
    inst.checkpoint().unwrap();
    inst.backup(Some(Path::new("bk2")), BackupFlags::default(), None)
        .unwrap();
    inst.term().unwrap();
    let set_db = |bk: &str| -> String {
        let set = vfs
            .list(Path::new(bk))
            .unwrap()
            .into_iter()
            .find(|name| name.starts_with("set-"))
            .expect("a set directory");
        format!("{bk}/{set}/data.edb")
    };
    let (old_path, new_path) = (set_db("bk1"), set_db("bk2"));
    let (old, new) = (read_all(&vfs, &old_path), read_all(&vfs, &new_path));
    let pgno = changed_page(&old, &new);
    write_page(&vfs, &new_path, pgno, page(&old, pgno));
    let target = Instance::new(env(vfs.clone()), params("restored"));
    let err = target
        .restore(Path::new("bk2"), None)
        .expect_err("a restore took a stale page");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
}

#[test]
fn a_backup_refuses_a_file_cut_short_of_written_pages_and_the_next_backup_runs() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    commit_round(&inst, 1);
    inst.checkpoint().unwrap();
    let db = "inst/data.edb";
    let whole = read_all(&vfs, db);
    // The write that grew the file by its last page was lost.
    let file = vfs.open(Path::new(db), OpenMode::ReadWrite).unwrap();
    file.set_len((whole.len() - PAGE) as u64).unwrap();
    let err = inst
        .backup(Some(Path::new("bk")), BackupFlags::default(), None)
        .expect_err("a backup copied a file missing a written page");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    assert!(err.message().contains("past the file's end"), "{err}");
    // Refused at its begin, it holds nothing: the next backup (the file mended) runs.
    file.write_all_at(&whole, 0).unwrap();
    inst.backup(Some(Path::new("bk")), BackupFlags::default(), None)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Recovery's copy of an interrupted batch (from the cold review): a disk that drops one write
// of the copy must not cost the batch.

/// What a lossy disk does: drop the `nth` write to a file whose path ends with a name
/// (acknowledged, never written), and fail with EIO writes at or past an offset of another.
#[derive(Debug, Default)]
struct Rules {
    drop: Option<(String, usize)>,
    drop_seen: usize,
    fail: Option<(String, u64)>,
}

/// The rules, as the hook of a lossy disk.
impl Hook for Mutex<Rules> {
    fn write_to(&self, path: &Path, offset: u64, _: usize) -> io::Result<()> {
        let rules = self.lock().unwrap();
        if let Some((name, at)) = &rules.fail
            && path.to_string_lossy().ends_with(name.as_str())
            && offset >= *at
        {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }
    fn loses_write(&self, path: &Path, _: u64, _: usize) -> bool {
        let mut rules = self.lock().unwrap();
        if let Some((name, nth)) = rules.drop.clone()
            && path.to_string_lossy().ends_with(&name)
        {
            let seen = rules.drop_seen;
            rules.drop_seen += 1;
            return seen == nth;
        }
        false
    }
}

/// A lossy disk over a fresh in-memory one: the disk beneath, its rules, and an environment
/// over it.
fn lossy_env() -> (MemVfs, Arc<Mutex<Rules>>, Env) {
    let rules = Arc::new(Mutex::new(Rules::default()));
    let vfs = HookedVfs::new(Arc::clone(&rules));
    (vfs.inner.clone(), rules, env_with(vfs, 7, 1))
}

#[test]
fn a_lost_write_in_recoverys_copy_of_a_batch_costs_nothing_but_a_retry() {
    let (mem, rules, env) = lossy_env();
    let path = Path::new("c.edb");
    let mut db = Database::create(&env, path, &options()).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..300 {
        db.put(t, &key(i), &[1; 200]).unwrap();
    }
    db.close().unwrap();
    let mut db = Database::open(&env, path, &options()).unwrap();
    let t = db.open_table("t").unwrap();
    for i in 0..300 {
        db.put(t, &key(i), &[2; 200]).unwrap();
    }
    // The batch is sealed in the doublewrite file; its writes into place fail.
    rules.lock().unwrap().fail = Some(("c.edb".into(), 2 * PAGE as u64));
    db.flush().expect_err("the writes into place fail");
    drop(db);
    rules.lock().unwrap().fail = None;
    let pages = mem
        .open(Path::new("c.edb.jdw"), OpenMode::Read)
        .unwrap()
        .len()
        .unwrap()
        / PAGE as u64
        - 1;
    // The next open copies the batch before finishing it, and the disk drops the copy's
    // last page: the copy is refused before it replaces the original.
    rules.lock().unwrap().drop = Some(("c.edb.jdw.tmp".into(), (pages - 1) as usize));
    let err = Database::open(&env, path, &options())
        .map(drop)
        .expect_err("a damaged copy is not installed");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    // On a sound disk the next open finishes the batch from the original.
    rules.lock().unwrap().drop = None;
    let mut db = Database::open(&env, path, &options()).unwrap();
    let t = db.open_table("t").unwrap();
    for i in 0..300 {
        assert_eq!(db.get(t, &key(i)).unwrap(), Some(vec![2; 200]));
    }
    db.check_integrity().unwrap();
}

#[test]
fn a_file_check_does_not_call_an_interrupted_batch_lost_writes() {
    let (_, rules, env) = lossy_env();
    let path = Path::new("v.edb");
    let options = DatabaseOptions {
        cache_size: 64 << 20,
        ..options()
    };
    let mut db = Database::create(&env, path, &options).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..3000 {
        db.put(t, &key(i), &[1; 900]).unwrap();
    }
    db.close().unwrap();
    let mut db = Database::open(&env, path, &options).unwrap();
    let t = db.open_table("t").unwrap();
    for i in 0..3000 {
        db.put(t, &key(i), &[2; 900]).unwrap();
    }
    // The first megabyte of the batch lands in place, then the writes fail: a crash there.
    rules.lock().unwrap().fail = Some(("v.edb".into(), 300 * PAGE as u64));
    db.flush().expect_err("cut short");
    drop(db);
    rules.lock().unwrap().fail = None;
    let before = verify_file(&*env.vfs, path).unwrap();
    assert!(
        before.bad_pages.is_empty(),
        "a recoverable file reported damaged: {:?}",
        before.bad_pages
    );
    Database::open(&env, path, &options)
        .unwrap()
        .close()
        .unwrap();
    assert!(verify_file(&*env.vfs, path).unwrap().bad_pages.is_empty());
}

// ---------------------------------------------------------------------------------------------
// From the breaker: the cases its mutants of the flush map got past (the catalog root's entry,
// a second map group, a zero entry, a stale page the fence saves, a read past the file's end),
// and crafted map states that must be errors, not panics.

/// The catalog root (page 2) loses its last write: a table created since is missing from the
/// stale page. Reads (the catalog is read at open) and the file check must refuse it.
#[test]
fn a_catalog_root_that_lost_its_write_is_refused_at_open_and_by_the_file_check() {
    let vfs = MemVfs::new();
    let env = env(vfs.clone());
    let path = "d.edb";
    let mut db = Database::create(&env, Path::new(path), &options()).unwrap();
    let a = db.create_table("a").unwrap();
    db.put(a, b"k", b"v").unwrap();
    db.close().unwrap();
    let before = read_all(&vfs, path);
    let mut db = Database::open(&env, Path::new(path), &options()).unwrap();
    db.create_table("b").unwrap();
    db.close().unwrap();
    let after = read_all(&vfs, path);
    assert_ne!(page(&before, CATALOG_ROOT), page(&after, CATALOG_ROOT));
    write_page(&vfs, path, CATALOG_ROOT, page(&before, CATALOG_ROOT));

    let report = verify_file(&*env.vfs, Path::new(path)).unwrap();
    let found = bad_pages(&report);
    assert_eq!(
        found,
        vec![(CATALOG_ROOT as u64, ErrorKind::ReadLostFlushVerifyFailure)]
    );
    let err = Database::open(&env, Path::new(path), &options())
        .map(drop)
        .expect_err("a stale catalog root was taken as data");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
}

/// A page that lost its write is rewritten while a backup runs: the fence saves the stale
/// copy from the file before the new write, and the backup must refuse that copy too.
#[test]
fn a_stale_page_the_fence_saves_for_a_running_backup_is_refused() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    commit_round(&inst, 1);
    inst.checkpoint().unwrap();
    let db = "inst/data.edb";
    let old = read_all(&vfs, db);
    commit_round(&inst, 2);
    inst.checkpoint().unwrap();
    let new = read_all(&vfs, db);
    let pgno = (FIRST_MAP + 1..old.len().min(new.len()) / PAGE)
        .find(|&p| page(&old, p) != page(&new, p) && page(&new, p)[16] != KIND_MAP)
        .expect("a page the second round rewrote");
    // The disk loses that page's last write.
    write_page(&vfs, db, pgno, page(&old, pgno));
    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::default(), None)
        .unwrap();
    // Before the backup copies anything, the page is written again: the fence saves what the
    // file holds, the stale page.
    commit_round(&inst, 3);
    inst.checkpoint().unwrap();
    assert_ne!(
        page(&read_all(&vfs, db), pgno),
        page(&new, pgno),
        "round 3 rewrote the page"
    );
    let outcome = loop {
        match job.step() {
            Ok(true) => continue,
            Ok(false) => break job.finish().map(drop),
            Err(err) => break Err(err),
        }
    };
    let err = outcome.expect_err("the backup copied a stale page the fence saved");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
}

/// A database of more than one group of pages (a second map page at 3 + S): the file check
/// finds nothing wrong with it whole, and names exactly the page of the second group that
/// lost a write.
#[test]
fn the_file_check_reads_each_group_against_its_own_map_page() {
    let vfs = MemVfs::new();
    let env = env(vfs.clone());
    let path = "d.edb";
    let mut db = Database::create(&env, Path::new(path), &options()).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..8000u32 {
        db.put(t, &key(i), &[1u8; 300]).unwrap();
    }
    db.close().unwrap();
    let before = read_all(&vfs, path);
    let second_map = FIRST_MAP + (PAGE - 32) / 8;
    assert!(before.len() / PAGE > second_map + 50, "two groups of pages");
    assert_eq!(page(&before, second_map)[16], KIND_MAP);
    let report = verify_file(&*env.vfs, Path::new(path)).unwrap();
    assert!(report.bad_pages.is_empty(), "{:?}", report.bad_pages);

    let mut db = Database::open(&env, Path::new(path), &options()).unwrap();
    let t = db.open_table("t").unwrap();
    for i in 0..8000u32 {
        db.put(t, &key(i), &[2u8; 300]).unwrap();
    }
    db.close().unwrap();
    let after = read_all(&vfs, path);
    let pgno = (second_map + 1..before.len() / PAGE)
        .find(|&p| page(&before, p) != page(&after, p))
        .expect("a page of the second group rewritten");
    write_page(&vfs, path, pgno, page(&before, pgno));
    let report = verify_file(&*env.vfs, Path::new(path)).unwrap();
    let found = bad_pages(&report);
    assert_eq!(
        found,
        vec![(pgno as u64, ErrorKind::ReadLostFlushVerifyFailure)]
    );
}

/// A map entry of zero for a page that was written (the map page itself whole: its checksum
/// and dbtime, so the header's digest, hold) does not vouch for any page.
#[test]
fn a_zero_map_entry_does_not_vouch_for_a_written_page() {
    use jetdb::page::{PageHeader, PageKind, seal};
    let vfs = MemVfs::new();
    let env = env(vfs.clone());
    let path = "d.edb";
    let mut db = Database::create(&env, Path::new(path), &options()).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..300u32 {
        db.put(t, &key(i), &[1u8; 100]).unwrap();
    }
    db.close().unwrap();
    let image = read_all(&vfs, path);
    // The table's root, a page past the map: its entry is zeroed.
    let pgno = t.root() as usize;
    assert!(pgno > FIRST_MAP);
    let mut map = page(&image, FIRST_MAP).to_vec();
    let slot = pgno - FIRST_MAP;
    map[32 + slot * 8..32 + slot * 8 + 8].fill(0);
    let dbtime = u64::from_le_bytes(map[8..16].try_into().unwrap());
    seal(
        &mut map,
        PageHeader {
            pgno: FIRST_MAP as u32,
            dbtime,
            kind: PageKind::Map,
        },
    );
    write_page(&vfs, path, FIRST_MAP, &map);
    let mut db = Database::open(&env, Path::new(path), &options()).unwrap();
    let t = db.open_table("t").unwrap();
    let err = db
        .get(t, &key(1))
        .map(drop)
        .expect_err("a page the map has no entry for was read as data");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    let report = verify_file(&*env.vfs, Path::new(path)).unwrap();
    assert_eq!(
        bad_pages(&report),
        vec![(pgno as u64, ErrorKind::ReadLostFlushVerifyFailure)]
    );
}

/// Hand-damaged flush maps and headers (each page sealed whole): errors, never a panic or a
/// hang.
#[test]
fn crafted_flush_map_states_are_errors_not_panics() {
    use jetdb::DbHeader;
    use jetdb::page::{PageHeader, PageKind, seal};
    let vfs = MemVfs::new();
    let env0 = env(vfs.clone());
    let path = "d.edb";
    let mut db = Database::create(&env0, Path::new(path), &options()).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..3000u32 {
        db.put(t, &key(i), &[1u8; 300]).unwrap();
    }
    db.close().unwrap();
    let image = read_all(&vfs, path);
    let header = DbHeader::decode(page(&image, 0), 0).unwrap();
    let with_header = |h: &DbHeader, img: &mut Vec<u8>| {
        img[..PAGE].copy_from_slice(&h.encode(0));
        img[PAGE..2 * PAGE].copy_from_slice(&h.encode(1));
    };
    let reseal = |p: &mut [u8], pgno: usize, dbtime: u64, kind: PageKind| {
        seal(
            p,
            PageHeader {
                pgno: pgno as u32,
                dbtime,
                kind,
            },
        )
    };
    let map_dbtime = u64::from_le_bytes(page(&image, FIRST_MAP)[8..16].try_into().unwrap());
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // The map page replaced by a free page of the same dbtime.
    let mut img = image.clone();
    {
        let p = &mut img[FIRST_MAP * PAGE..(FIRST_MAP + 1) * PAGE];
        p[32..].fill(0);
        reseal(p, FIRST_MAP, map_dbtime, PageKind::Free);
    }
    cases.push(("map page is a free page", img));
    // Every entry u64::MAX.
    let mut img = image.clone();
    {
        let p = &mut img[FIRST_MAP * PAGE..(FIRST_MAP + 1) * PAGE];
        p[40..].fill(0xFF);
        reseal(p, FIRST_MAP, map_dbtime, PageKind::Map);
    }
    cases.push(("entries at u64::MAX", img));
    // The map page newer than the header, its digest matching.
    let mut img = image.clone();
    {
        let p = &mut img[FIRST_MAP * PAGE..(FIRST_MAP + 1) * PAGE];
        reseal(p, FIRST_MAP, u64::MAX, PageKind::Map);
    }
    let h = DbHeader {
        map_digest: crc32fast::hash(&u64::MAX.to_le_bytes()),
        ..header.clone()
    };
    with_header(&h, &mut img);
    cases.push(("map dbtime past the header's", img));
    // A page count far past the file (a huge map to load), and one just past a map page.
    for page_count in [u32::MAX, 0x7FFF_FFFF, (image.len() / PAGE) as u32 + 1] {
        let mut img = image.clone();
        with_header(
            &DbHeader {
                page_count,
                ..header.clone()
            },
            &mut img,
        );
        cases.push(("page count past the file", img));
    }
    // The free list starting at the map page.
    let mut img = image.clone();
    with_header(
        &DbHeader {
            free_head: FIRST_MAP as u32,
            free_count: 1,
            ..header.clone()
        },
        &mut img,
    );
    cases.push(("free list head on the map page", img));
    // The catalog stamp and digest at their extremes.
    let mut img = image.clone();
    with_header(
        &DbHeader {
            catalog_stamp: u64::MAX,
            map_digest: 0,
            ..header.clone()
        },
        &mut img,
    );
    cases.push(("catalog stamp u64::MAX, digest 0", img));

    for (what, img) in cases {
        let vfs = MemVfs::new();
        let file = vfs.open(Path::new(path), OpenMode::CreateNew).unwrap();
        file.write_all_at(&img, 0).unwrap();
        drop(file);
        let env = env(vfs.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let vfs2 = vfs.clone();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let checked = verify_file(&*env.vfs, Path::new(path)).map(|r| r.bad_pages.len());
                let used = (|| {
                    let mut db = Database::open(&env, Path::new(path), &options())?;
                    let t = db.open_table("t")?;
                    for i in 0..3000u32 {
                        db.get(t, &key(i))?;
                    }
                    db.create_table("u")?;
                    db.put(t, b"new", &[3u8; 5000])?;
                    db.check_integrity()?;
                    db.close()
                })();
                (format!("{checked:?}"), format!("{used:?}"))
            }));
            let _ = tx.send(outcome.map_err(|_| "panicked"));
            drop(vfs2);
        });
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what}: hung"));
        let (checked, used) = outcome.unwrap_or_else(|e| panic!("{what}: {e}"));
        println!("{what}: verify_file {checked}; use {used}");
        assert!(
            used.starts_with("Err"),
            "{what}: used without an error: {used}"
        );
    }
}

/// The write that grew the file by its last page was lost under an open database: reading
/// that page finds the file's end, and the map says it was written — a lost write, not an
/// I/O error.
#[test]
fn a_read_past_the_files_end_of_a_written_page_is_a_lost_write() {
    let vfs = MemVfs::new();
    let env = env(vfs.clone());
    let path = "d.edb";
    let small = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        ..Default::default()
    };
    let mut db = Database::create(&env, Path::new(path), &small).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..20_000u32 {
        db.put(t, &key(i), &[1u8; 100]).unwrap();
    }
    db.flush().unwrap();
    let len = read_all(&vfs, path).len();
    let file = vfs.open(Path::new(path), OpenMode::ReadWrite).unwrap();
    file.set_len((len - PAGE) as u64).unwrap();
    let err = (0..20_000u32)
        .find_map(|i| db.get(t, &key(i)).err())
        .expect("the missing page was read as data");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
    assert!(err.message().contains("past the file's end"), "{err}");
}
