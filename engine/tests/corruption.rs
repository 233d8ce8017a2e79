//! Bad input: a database file that is truncated, zeroed, bit-flipped or misdirected, page by
//! page and for every page kind, opened by the engine. Every outcome must be the original data
//! or a clear `JetError` — never a panic, never wrong data.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests damage real files on purpose"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jetdb::{Database, DatabaseOptions, Env, ErrorKind};

mod support;

use support::{PAGE, options, read_everything};

/// A change made to a file image.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// A database with every page kind: header copies, catalog, branches, leaves, overflow pages
/// and free pages. Returns its path and content.
fn build(dir: &Path) -> (PathBuf, BTreeMap<Vec<u8>, Vec<u8>>) {
    let env = Env::os();
    let path = dir.join("data.edb");
    let mut db = Database::create(&env, &path, &options()).unwrap();
    let t = db.create_table("t").unwrap();
    let mut model = BTreeMap::new();
    for i in 0u32..3000 {
        let key = format!("key{i:06}").into_bytes();
        let value = if i % 500 == 7 {
            vec![(i % 251) as u8; 20_000]
        } else {
            format!("value{i}").into_bytes()
        };
        db.put(t, &key, &value).unwrap();
        model.insert(key, value);
    }
    // Free some pages: a deleted table and deleted large values.
    let scratch = db.create_table("scratch").unwrap();
    for i in 0u32..400 {
        db.put(scratch, &i.to_be_bytes(), &[1u8; 300]).unwrap();
    }
    db.delete_table("scratch").unwrap();
    db.close().unwrap();
    (path, model)
}

fn page_kind(bytes: &[u8], pgno: usize) -> u8 {
    bytes[pgno * PAGE + 16]
}

#[test]
fn every_page_bit_flipped_zeroed_or_misdirected_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, model) = build(tmp.path());
    let pristine = std::fs::read(&path).unwrap();
    read_everything(&path, &model).unwrap();
    let pages = pristine.len() / PAGE;
    let mut kinds_seen = BTreeMap::new();
    for pgno in 0..pages {
        let kind = page_kind(&pristine, pgno);
        *kinds_seen.entry(kind).or_insert(0) += 1;
        let flip_at = pgno * PAGE + 40 + (pgno * 97) % (PAGE - 40);
        let damages: [(&str, Damage); 3] = [
            (
                "bit flip",
                Box::new(move |b: &mut Vec<u8>| b[flip_at] ^= 0x04),
            ),
            (
                "zeroed",
                Box::new(move |b: &mut Vec<u8>| b[pgno * PAGE..(pgno + 1) * PAGE].fill(0)),
            ),
            ("misdirected", {
                let other = if pgno + 1 < pages { pgno + 1 } else { pgno - 1 };
                let copy = pristine[other * PAGE..(other + 1) * PAGE].to_vec();
                Box::new(move |b: &mut Vec<u8>| {
                    b[pgno * PAGE..(pgno + 1) * PAGE].copy_from_slice(&copy)
                })
            }),
        ];
        for (what, damage) in &damages {
            let mut bytes = pristine.clone();
            damage(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();
            let outcome = read_everything(&path, &model);
            match (pgno, outcome) {
                // One bad header copy: the other one serves.
                (0 | 1, outcome) => assert!(outcome.is_ok(), "page {pgno} {what}: {outcome:?}"),
                (_, Ok(())) => panic!("page {pgno} (kind {kind}) {what}: damage went unnoticed"),
                (_, Err(err)) => {
                    let expected = match *what {
                        "bit flip" => ErrorKind::ReadVerifyFailure,
                        "zeroed" => ErrorKind::PageNotInitialized,
                        _ => ErrorKind::ReadPgnoVerifyFailure,
                    };
                    assert_eq!(
                        err.kind(),
                        expected,
                        "page {pgno} (kind {kind}) {what}: {err}"
                    );
                }
            }
        }
    }
    std::fs::write(&path, &pristine).unwrap();
    // Every page kind was damaged at least once: header, leaf, branch, overflow, free.
    for kind in 1u8..=5 {
        assert!(
            kinds_seen.get(&kind).copied().unwrap_or(0) > 0,
            "no page of kind {kind}: {kinds_seen:?}"
        );
    }
}

#[test]
fn both_header_copies_bad_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = build(tmp.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    bytes[PAGE + 100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = Database::open(&Env::os(), &path, &DatabaseOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadVerifyFailure, "{err}");
    assert!(err.message().contains("both header copies"), "{err}");
}

#[test]
fn a_torn_header_write_leaves_the_other_copy() {
    // A write of page 0 that tore half way: its first half is new garbage.
    let tmp = tempfile::tempdir().unwrap();
    let (path, model) = build(tmp.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[PAGE / 2..PAGE].fill(0xAB);
    std::fs::write(&path, &bytes).unwrap();
    read_everything(&path, &model).unwrap();
    // Opening for writing and closing rewrites both copies.
    let db = Database::open(
        &Env::os(),
        &path,
        &DatabaseOptions {
            page_size: PAGE,
            ..Default::default()
        },
    )
    .unwrap();
    db.close().unwrap();
    let copies = jetdb::read_header_copies(&jetdb::OsVfs, &path).unwrap();
    assert!(copies[0].is_ok() && copies[1].is_ok());
}

#[test]
fn truncated_and_garbage_files_give_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = build(tmp.path());
    let pristine = std::fs::read(&path).unwrap();
    let env = Env::os();
    let open = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        Database::open(&env, &path, &DatabaseOptions::default()).map(|_| ())
    };
    for len in [0, 1, 100, PAGE, 2 * PAGE - 1] {
        let err = open(&pristine[..len]).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::DatabaseCorrupted,
            "length {len}: {err}"
        );
    }
    for len in [
        2 * PAGE,
        3 * PAGE,
        pristine.len() / 2,
        pristine.len() - PAGE,
        pristine.len() - 1,
    ] {
        let err = open(&pristine[..len]).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::DatabaseCorrupted,
            "length {len}: {err}"
        );
        assert!(err.message().contains("truncated"), "{err}");
    }
    let garbage: Vec<u8> = (0..pristine.len())
        .map(|i| (i * 7919 % 251) as u8)
        .collect();
    let err = open(&garbage).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ReadVerifyFailure | ErrorKind::DatabaseCorrupted
        ),
        "{err}"
    );
    let err = open(&vec![0u8; pristine.len()]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PageNotInitialized, "{err}");
    // A database of a newer format is refused by version, not misread.
    let mut newer = pristine.clone();
    for pgno in 0..2 {
        let page = &mut newer[pgno * PAGE..(pgno + 1) * PAGE];
        page[36] = 9;
        let sum = jetdb::page::checksum(page);
        page[0..4].copy_from_slice(&sum.to_le_bytes());
    }
    assert_eq!(
        open(&newer).unwrap_err().kind(),
        ErrorKind::InvalidDatabaseVersion
    );
}

#[test]
fn verify_file_lists_every_bad_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = build(tmp.path());
    let report = jetdb::verify_file(&jetdb::OsVfs, &path).unwrap();
    assert_eq!(report.bad_count(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / PAGE;
    bytes[5 * PAGE + 1000] ^= 0x80;
    bytes[(pages - 2) * PAGE..(pages - 1) * PAGE].fill(0);
    bytes[PAGE + 50] ^= 1; // header copy 1
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let report = jetdb::verify_file(&jetdb::OsVfs, &path).unwrap();
    let bad: Vec<(u64, ErrorKind)> = report
        .bad_pages
        .iter()
        .map(|b| (b.pgno, b.error.kind()))
        .collect();
    assert_eq!(
        bad,
        vec![
            (1, ErrorKind::ReadVerifyFailure),
            (5, ErrorKind::ReadVerifyFailure),
            (pages as u64 - 2, ErrorKind::PageNotInitialized),
            (pages as u64 - 1, ErrorKind::DatabaseCorrupted),
        ]
    );
    assert_eq!(report.missing_pages, pages as u64 - 1..pages as u64);
    assert_eq!(report.bad_count(), 5);
}
