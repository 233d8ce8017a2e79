//! Regressions from the first review of the storage core: hand-built files, each page sealed
//! with a correct checksum, whose structure is wrong in one precise way. Every case must end in
//! a `JetError` — not a panic, not a hang, not a wrong answer.

#![allow(
    clippy::disallowed_methods,
    reason = "a hang must fail the test, so cases run under a timeout thread"
)]

use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetdb::page::{PageHeader, PageKind, seal};
use support::{Hook, HookedVfs, PAGE, env_holding, env_over, options};

mod support;
use jetdb::{
    Database, DatabaseOptions, DbHeader, DbState, Env, ErrorKind, JetError, MemVfs, OpenMode,
    SeekMode, Vfs,
};

/// The cases below number their pages as if page 3 were theirs; it is the flush map's
/// first page, so each page number they name (and link to) moves one on past it.
fn phys(pgno: u32) -> u32 {
    if pgno >= 3 { pgno + 1 } else { pgno }
}

/// Every hand-built page is written with dbtime 1, and the flush map says so.
const DBTIME: u64 = 1;

fn sealed(pgno: u32, kind: PageKind, body: &[u8]) -> Vec<u8> {
    sealed_at(phys(pgno), kind, body)
}

fn sealed_at(pgno: u32, kind: PageKind, body: &[u8]) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    page[32..32 + body.len()].copy_from_slice(body);
    seal(
        &mut page,
        PageHeader {
            pgno,
            dbtime: DBTIME,
            kind,
        },
    );
    page
}

/// The flush map's page 3 for a file of `page_count` pages: every page at `DBTIME`.
fn map_page(page_count: u32) -> Vec<u8> {
    let mut body = vec![0u8; PAGE - 32];
    for pgno in 4..page_count {
        let slot = (pgno - 3) as usize;
        body[slot * 8..slot * 8 + 8].copy_from_slice(&DBTIME.to_le_bytes());
    }
    sealed_at(3, PageKind::Map, &body)
}

/// A slotted tree page (layout in node.rs): records packed from the page's end, their offsets
/// in order after the 12-byte tree header.
fn tree(pgno: u32, kind: PageKind, leftmost: u32, records: &[Vec<u8>]) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    let mut at = PAGE;
    let mut offsets = Vec::new();
    for record in records {
        at -= record.len();
        page[at..at + record.len()].copy_from_slice(record);
        offsets.push(at as u16);
    }
    page[32..34].copy_from_slice(&(records.len() as u16).to_le_bytes());
    page[34..36].copy_from_slice(&(at as u16).to_le_bytes());
    page[40..44].copy_from_slice(&leftmost.to_le_bytes());
    for (i, offset) in offsets.iter().enumerate() {
        page[44 + 2 * i..46 + 2 * i].copy_from_slice(&offset.to_le_bytes());
    }
    sealed(pgno, kind, &page[32..])
}

/// A leaf page of inline entries.
fn leaf(pgno: u32, entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let records: Vec<Vec<u8>> = entries
        .iter()
        .map(|(key, value)| {
            let mut r = vec![key.len() as u8];
            r.extend(*key);
            r.push(0);
            r.extend((value.len() as u16).to_le_bytes());
            r.extend(*value);
            r
        })
        .collect();
    tree(pgno, PageKind::Leaf, 0, &records)
}

/// A branch page.
fn branch(pgno: u32, keys: &[Vec<u8>], children: &[u32]) -> Vec<u8> {
    assert_eq!(children.len(), keys.len() + 1);
    let records: Vec<Vec<u8>> = keys
        .iter()
        .zip(&children[1..])
        .map(|(key, child)| {
            let mut r = vec![key.len() as u8];
            r.extend(key);
            r.extend(phys(*child).to_le_bytes());
            r
        })
        .collect();
    tree(pgno, PageKind::Branch, phys(children[0]), &records)
}

fn free(pgno: u32, next: u32) -> Vec<u8> {
    let next = if next == 0 { 0 } else { phys(next) };
    sealed(pgno, PageKind::Free, &next.to_le_bytes())
}

/// The catalog leaf (page 2) naming table "t" rooted at `root`.
fn catalog(root: u32) -> Vec<u8> {
    leaf(2, &[(b"t", &phys(root).to_le_bytes())])
}

/// A catalog entry's value: a table rooted at `root`.
fn root(root: u32) -> [u8; 4] {
    phys(root).to_le_bytes()
}

fn header(page_count: u32, free_head: u32, free_count: u32) -> DbHeader {
    let page_count = phys(page_count);
    let free_head = if free_head == 0 { 0 } else { phys(free_head) };
    DbHeader {
        format_version: jetdb::header::FORMAT_VERSION,
        page_size: PAGE as u32,
        sequence: 1,
        db_signature: Default::default(),
        log_signature: Default::default(),
        state: DbState::CleanShutdown,
        dbtime: 10,
        page_count,
        free_head,
        free_count,
        consistent_lgpos: Default::default(),
        consistent_millis: 0,
        backup_full: Default::default(),
        backup_incremental: Default::default(),
        log_through: Default::default(),
        catalog_stamp: DBTIME,
        map_digest: crc32fast::hash(&DBTIME.to_le_bytes()),
    }
}

/// A file image: both header copies, then `pages` from page 2 on, the flush map's page
/// after the first.
fn image(header: &DbHeader, pages: Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = header.encode(0);
    out.extend(header.encode(1));
    for (i, page) in pages.into_iter().enumerate() {
        if i == 1 {
            out.extend(map_page(header.page_count));
        }
        out.extend(page);
    }
    assert_eq!(out.len(), header.page_count as usize * PAGE);
    out
}

fn open(bytes: &[u8]) -> jetdb::Result<Database> {
    let env = env_holding(bytes);
    Database::open(&env, Path::new("d.edb"), &options())
}

/// Runs `f` on another thread and fails the test if it does not finish within five seconds.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the call hung")
}

/// Root: separator "m" over leaves ["a"] and ["b"]; "b" sorts below "m" but sits on the right.
fn b_misplaced_right_of_m() -> Vec<u8> {
    image(
        &header(6, 0, 0),
        vec![
            catalog(3),
            branch(3, &[b"m".to_vec()], &[4, 5]),
            leaf(4, &[(b"a", b"1")]),
            leaf(5, &[(b"b", b"2")]),
        ],
    )
}

fn corrupted<T: std::fmt::Debug>(result: jetdb::Result<T>) -> JetError {
    let err = result.expect_err("corruption went unnoticed");
    assert_eq!(err.kind(), ErrorKind::DatabaseCorrupted, "{err}");
    err
}

#[test]
fn a_key_misplaced_across_leaves_is_an_error_not_a_wrong_answer() {
    let img = b_misplaced_right_of_m();
    let mut db = open(&img).unwrap();
    let t = db.open_table("t").unwrap();
    // Seeking past "a" lands in the right leaf on "b", which is not >= "c".
    corrupted(db.cursor(t).unwrap().seek(b"c", SeekMode::Ge));
    // A scan ends with an error instead of returning "b" for ever.
    let results: Vec<_> = within_5s(move || db.range(t, .., false).unwrap().take(10).collect());
    assert!(
        results.len() <= 3,
        "the scan did not end: {} records",
        results.len()
    );
    assert_eq!(
        results.last().unwrap().as_ref().unwrap_err().kind(),
        ErrorKind::DatabaseCorrupted
    );
}

#[test]
fn a_catalog_with_misplaced_keys_does_not_hang_open() {
    let root = root(5);
    let img = image(
        &header(6, 0, 0),
        vec![
            branch(2, &[b"m".to_vec()], &[3, 4]),
            leaf(3, &[(b"a", &root)]),
            leaf(4, &[(b"b", &root)]),
            leaf(5, &[]),
        ],
    );
    corrupted(within_5s(move || open(&img).map(drop)));
}

#[test]
fn a_dag_of_empty_leaves_neither_overflows_the_stack_nor_hangs() {
    let keys: Vec<Vec<u8>> = (0..500u32).map(|i| vec![(i >> 8) as u8, i as u8]).collect();
    let img = image(
        &header(7, 0, 0),
        vec![
            catalog(3),
            branch(3, &keys, &[4; 501]),
            branch(4, &keys, &[5; 501]),
            branch(5, &keys, &[6; 501]),
            leaf(6, &[]),
        ],
    );
    let err = within_5s(move || {
        let mut db = open(&img).unwrap();
        let t = db.open_table("t").unwrap();
        db.cursor(t).unwrap().move_first().map(drop)
    });
    corrupted(err);
}

#[test]
fn deleting_a_table_whose_tree_shares_pages_is_an_error() {
    let keys: Vec<Vec<u8>> = (0..300u32).map(|i| vec![(i >> 8) as u8, i as u8]).collect();
    let mut pages = vec![catalog(3)];
    for pgno in 3..12u32 {
        pages.push(branch(pgno, &keys, &[pgno + 1; 301]));
    }
    pages.push(leaf(12, &[]));
    let img = image(&header(13, 0, 0), pages);
    corrupted(within_5s(move || open(&img).unwrap().delete_table("t")));
}

#[test]
fn counters_at_their_limits_are_errors_not_overflows() {
    let pages = || vec![catalog(3), leaf(3, &[(b"a", b"1")])];
    let dbtime_max = DbHeader {
        dbtime: u64::MAX,
        ..header(4, 0, 0)
    };
    let mut db = open(&image(&dbtime_max, pages())).unwrap();
    let t = db.open_table("t").unwrap();
    corrupted(db.put(t, b"b", b"2"));

    let sequence_max = DbHeader {
        sequence: u64::MAX,
        ..header(4, 0, 0)
    };
    let mut db = open(&image(&sequence_max, pages())).unwrap();
    let t = db.open_table("t").unwrap();
    db.put(t, b"b", b"2").unwrap();
    corrupted(db.flush());

    // The header counts one free page; the list holds two.
    let img = image(
        &header(7, 4, 1),
        vec![
            catalog(3),
            leaf(3, &[]),
            free(4, 5),
            free(5, 0),
            leaf(6, &[]),
        ],
    );
    let mut db = open(&img).unwrap();
    corrupted(db.create_table("x").map(drop));
}

#[test]
fn a_page_shared_by_an_ancestor_is_an_error_not_an_index_panic() {
    // Root Q (page 3) has 270 keys; its last child C (4) has children D (5) and Q itself.
    let q_keys: Vec<Vec<u8>> = (0..270u32)
        .map(|i| format!("k{i:09}").into_bytes())
        .collect();
    let mut q_children = vec![7u32; 270];
    q_children.push(4);
    let img = image(
        &header(8, 0, 0),
        vec![
            catalog(3),
            branch(3, &q_keys, &q_children),
            branch(4, &[b"zzzzzzzzzz".to_vec()], &[5, 3]),
            branch(5, &[b"z5".to_vec()], &[6, 7]),
            leaf(6, &[(b"z1", b"v")]),
            leaf(7, &[(b"z6", b"v")]),
        ],
    );
    let mut db = open(&img).unwrap();
    let t = db.open_table("t").unwrap();
    corrupted(db.delete(t, b"z1"));
}

#[test]
fn a_catalog_entry_outside_its_leaf_range_is_found_at_open() {
    let root = root(5);
    let img = image(
        &header(6, 0, 0),
        vec![
            branch(2, &[b"m".to_vec()], &[3, 4]),
            leaf(3, &[(b"a", &root), (b"x", &root)]),
            leaf(4, &[(b"n", &root)]),
            leaf(5, &[]),
        ],
    );
    // "x" sits left of "m", outside its leaf's range: the catalog scan refuses it, so no entry
    // can hide behind it (as "n" would: a point lookup for "n" finds it, a scan past "x" not).
    let err = corrupted(open(&img).map(drop));
    assert!(err.message().contains("outside the range"), "{err}");
}

#[test]
fn a_root_shared_by_two_tables_is_an_error_on_the_second_delete() {
    // Table "t" and table "u" share their root page 3: deleting "u" after "t" would free the
    // page twice. (The walk of the tree meets the freed page first; `Pager::free` also refuses
    // a page that is already free, as a second line.)
    let img = image(
        &header(4, 0, 0),
        vec![leaf(2, &[(b"t", &root(3)), (b"u", &root(3))]), leaf(3, &[])],
    );
    let mut db = open(&img).unwrap();
    db.delete_table("t").unwrap();
    corrupted(db.delete_table("u"));
}

#[test]
fn a_stale_table_handle_is_refused_even_when_its_pages_are_reused() {
    let env = Env::memory(1);
    let mut db = Database::create(&env, Path::new("d.edb"), &DatabaseOptions::default()).unwrap();
    let a = db.create_table("a").unwrap();
    db.delete_table("a").unwrap();
    let b = db.create_table("b").unwrap();
    assert_eq!(
        a.root(),
        b.root(),
        "the new table reuses the freed root page"
    );
    db.put(b, b"k", b"from b").unwrap();
    assert_eq!(
        db.get(a, b"k").unwrap_err().kind(),
        ErrorKind::InvalidTableId
    );
    assert_eq!(
        db.put(a, b"k", b"x").unwrap_err().kind(),
        ErrorKind::InvalidTableId
    );
    assert_eq!(db.open_table("b").unwrap(), b);
}

#[test]
fn after_a_failed_change_nothing_is_written_and_nothing_panics() {
    // The free list names a live leaf: the allocation in the middle of a root split fails,
    // leaving an overfull root in the cache. Nothing may write it out afterwards.
    let vfs = MemVfs::new();
    let env = env_over(vfs.clone());
    let options = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        ..Default::default()
    };
    let mut db = Database::create(&env, Path::new("d.edb"), &options).unwrap();
    let big = db.create_table("big").unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0u8..4 {
        db.put(t, &[i], &[7u8; 900]).unwrap();
    }
    for i in 0u32..3000 {
        db.put(big, &i.to_be_bytes(), &[1u8; 100]).unwrap();
    }
    db.close().unwrap();
    let file = vfs.open(Path::new("d.edb"), OpenMode::ReadWrite).unwrap();
    let mut page = vec![0u8; PAGE];
    file.read_exact_at(&mut page, 0).unwrap();
    let header = DbHeader::decode(&page, 0).unwrap();
    let lying = DbHeader {
        free_head: 4,
        free_count: 1,
        sequence: header.sequence + 1,
        ..header
    };
    file.write_all_at(&lying.encode(0), 0).unwrap();
    file.write_all_at(&lying.encode(1), PAGE as u64).unwrap();
    drop(file);
    let mut db = Database::open(&env, Path::new("d.edb"), &options).unwrap();
    let (t, big) = (db.open_table("t").unwrap(), db.open_table("big").unwrap());
    corrupted(db.put(t, &[9], &[7u8; 900]));
    assert_eq!(
        db.range(big, .., false).map(drop).unwrap_err().kind(),
        ErrorKind::DatabaseUnavailable
    );
    assert_eq!(
        db.flush().unwrap_err().kind(),
        ErrorKind::DatabaseUnavailable
    );
}

/// Records every write (the header, or pages) and every fsync.
#[derive(Debug, Default)]
struct Recorder {
    log: Mutex<Vec<&'static str>>,
}

impl Hook for Recorder {
    fn write(&self, offset: u64, _len: usize) -> io::Result<()> {
        let what = if offset < 2 * PAGE as u64 {
            "header"
        } else {
            "pages"
        };
        self.log.lock().unwrap().push(what);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.log.lock().unwrap().push("sync");
        Ok(())
    }
}

#[test]
fn the_header_is_never_written_while_page_writes_are_unsynced() {
    let recorder = Arc::new(Recorder::default());
    let env = env_over(HookedVfs::new(Arc::clone(&recorder)));
    let options = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        ..Default::default()
    };
    let mut db = Database::create(&env, Path::new("d.edb"), &options).unwrap();
    let (a, b) = (db.create_table("a").unwrap(), db.create_table("b").unwrap());
    for i in 0u32..20_000 {
        db.put(b, &i.to_be_bytes(), &[1u8; 100]).unwrap();
    }
    db.flush().unwrap();
    // One change, written back by the evictions of a long scan, then a flush that finds no
    // dirty page left: it must still sync those writes before the header says "clean".
    db.put(a, b"k", b"v").unwrap();
    db.range(b, .., false)
        .unwrap()
        .for_each(|r| drop(r.unwrap()));
    db.flush().unwrap();
    db.close().unwrap();
    let log = recorder.log.lock().unwrap();
    let mut unsynced = false;
    for (i, op) in log.iter().enumerate() {
        match *op {
            "sync" => unsynced = false,
            "header" => assert!(
                !unsynced,
                "step {i}: a header write while page writes were unsynced: {:?}",
                &log[i.saturating_sub(5)..=i]
            ),
            _ => unsynced = true,
        }
    }
}

// From the second review.

#[test]
fn a_separator_outside_its_branch_range_cannot_widen_the_keys_below() {
    // Root 3: "m" over leaf 4 ["a"] and branch 5; branch 5: "c" (below "m"!) over leaf 6 ["n"]
    // and leaf 7 ["d"]. "d" may not be returned: a point lookup cannot find it.
    let img = image(
        &header(8, 0, 0),
        vec![
            catalog(3),
            branch(3, &[b"m".to_vec()], &[4, 5]),
            leaf(4, &[(b"a", b"1")]),
            branch(5, &[b"c".to_vec()], &[6, 7]),
            leaf(6, &[(b"n", b"2")]),
            leaf(7, &[(b"d", b"3")]),
        ],
    );
    let mut db = open(&img).unwrap();
    let t = db.open_table("t").unwrap();
    assert_eq!(
        db.get(t, b"d").unwrap(),
        None,
        "the point lookup goes by the separators"
    );
    corrupted(db.cursor(t).unwrap().seek(b"z", SeekMode::Le));
    corrupted(db.cursor(t).unwrap().move_last());
    let reverse: Vec<_> = db
        .range(
            t,
            (
                std::ops::Bound::Included(&b"d"[..]),
                std::ops::Bound::Unbounded,
            ),
            true,
        )
        .unwrap()
        .collect();
    assert_eq!(reverse.len(), 1, "{reverse:?}");
    corrupted(reverse.into_iter().next().unwrap());
}

#[test]
fn a_branch_page_changed_under_a_cursor_is_an_error_not_a_panic() {
    let vfs = MemVfs::new();
    let env = env_over(vfs.clone());
    let path = Path::new("d.edb");
    let key = |i: u32| format!("k{i:05}").into_bytes();
    let writer = DatabaseOptions {
        page_size: PAGE,
        ..Default::default()
    };
    let mut db = Database::create(&env, path, &writer).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0..80 {
        db.put(t, &key(i), &[5u8; 100]).unwrap();
    }
    db.close().unwrap();
    let file = vfs.open(path, OpenMode::ReadWrite).unwrap();
    let root = u64::from(t.root()) * PAGE as u64;
    let mut old_root = vec![0u8; PAGE];
    file.read_exact_at(&mut old_root, root).unwrap();
    let mut db = Database::open(&env, path, &writer).unwrap();
    for i in 80..2000 {
        db.put(t, &key(i), &[5u8; 100]).unwrap();
    }
    db.put(t, b"k01500x", &vec![9u8; 1 << 20]).unwrap();
    db.close().unwrap();
    // A reader with the smallest cache: reading the large value evicts the root.
    let reader = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        read_only: true,
    };
    let mut db = Database::open(&env, path, &reader).unwrap();
    let mut cursor = db.cursor(t).unwrap();
    assert!(cursor.seek(b"k01500x", SeekMode::Eq).unwrap());
    assert_eq!(cursor.value().unwrap().len(), 1 << 20);
    // The file loses the root's later writes under the reader: an older, valid root page.
    // The flush map knows the root's last write: the stale page is refused as such.
    file.write_all_at(&old_root, root).unwrap();
    let outcome = (0..3000)
        .map(|_| cursor.move_prev())
        .find(|step| !matches!(step, Ok(true)));
    let err = outcome
        .expect("the cursor reaches the changed root")
        .expect_err("a stale root is not data");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
}

#[test]
fn a_failed_seek_leaves_the_cursor_on_no_record() {
    let img = b_misplaced_right_of_m();
    let mut db = open(&img).unwrap();
    let t = db.open_table("t").unwrap();
    let mut cursor = db.cursor(t).unwrap();
    assert!(cursor.move_first().unwrap());
    assert_eq!(cursor.key().unwrap(), b"a");
    corrupted(cursor.seek(b"e", SeekMode::Ge));
    assert_eq!(cursor.key().unwrap_err().kind(), ErrorKind::NoCurrentRecord);
    assert_eq!(
        cursor.value_len().unwrap_err().kind(),
        ErrorKind::NoCurrentRecord
    );
}

#[test]
fn seek_keys_and_range_bounds_may_be_longer_than_any_stored_key() {
    let env = Env::memory(1);
    let mut db = Database::create(&env, Path::new("d.edb"), &DatabaseOptions::default()).unwrap();
    let t = db.create_table("t").unwrap();
    let prefix = vec![7u8; 255];
    let mut after = prefix.clone();
    after.push(0xff);
    db.put(t, &prefix, b"p").unwrap();
    db.put(t, &[8u8], b"q").unwrap();
    let mut cursor = db.cursor(t).unwrap();
    assert!(cursor.seek(&after, SeekMode::Ge).unwrap());
    assert_eq!(cursor.key().unwrap(), &[8u8]);
    assert!(cursor.seek(&after, SeekMode::Lt).unwrap());
    assert_eq!(cursor.key().unwrap(), prefix.as_slice());
    let keys: Vec<Vec<u8>> = db
        .range(
            t,
            (
                std::ops::Bound::Excluded(after.as_slice()),
                std::ops::Bound::Unbounded,
            ),
            false,
        )
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(keys, vec![vec![8u8]]);
    // Stored keys stay bounded.
    assert_eq!(
        db.put(t, &after, b"x").unwrap_err().kind(),
        ErrorKind::KeyTooBig
    );
}

#[test]
fn an_integrity_check_reaching_a_free_page_inside_a_tree_is_an_error_not_a_panic() {
    // From the review of the slotted pages: the check read a tree page's fields (record area
    // start, holes) from a free page before looking at its kind, and its `next` field made the
    // arithmetic underflow.
    let img = image(
        &header(6, 0, 0),
        vec![
            catalog(3),
            branch(3, &[b"m".to_vec()], &[4, 5]),
            sealed(4, PageKind::Free, &0xFFFF_0000u32.to_le_bytes()),
            leaf(5, &[(b"x", b"1")]),
        ],
    );
    let mut db = open(&img).unwrap();
    corrupted(db.check_integrity());
}
