//! The public `Database` API: contracts, errors, durability on real files, determinism, page
//! reuse, and the latch after a failed write.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jetdb::{Database, DatabaseOptions, DbState, Env, ErrorKind, MemVfs, SeekMode};
use support::{Hook, HookedVfs, env_over, env_with, options, read_all};

mod support;

#[test]
fn content_survives_close_and_reopen_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::os();
    let path = tmp.path().join("data.edb");
    let mut db = Database::create(&env, &path, &options()).unwrap();
    let a = db.create_table("a").unwrap();
    let b = db.create_table("b").unwrap();
    for i in 0u32..5000 {
        db.put(a, &i.to_be_bytes(), format!("a{i}").as_bytes())
            .unwrap();
        if i % 3 == 0 {
            db.put(
                b,
                &i.to_le_bytes(),
                &vec![i as u8; (i as usize * 13) % 9000],
            )
            .unwrap();
        }
    }
    db.close().unwrap();
    let mut db = Database::open(
        &env,
        &path,
        &DatabaseOptions {
            read_only: true,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(db.table_names(), vec!["a".to_string(), "b".to_string()]);
    let (a, b) = (db.open_table("a").unwrap(), db.open_table("b").unwrap());
    for i in 0u32..5000 {
        assert_eq!(
            db.get(a, &i.to_be_bytes()).unwrap(),
            Some(format!("a{i}").into_bytes())
        );
        let expected = (i % 3 == 0).then(|| vec![i as u8; (i as usize * 13) % 9000]);
        assert_eq!(db.get(b, &i.to_le_bytes()).unwrap(), expected);
    }
    let report = db.check_integrity().unwrap();
    assert_eq!(report.tables["a"].records, 5000);
    assert!(report.tables["a"].depth >= 2);
    assert!(report.tables["b"].overflow_pages > 0);
    assert_eq!(db.header().state, DbState::CleanShutdown);
}

#[test]
fn mass_deletes_shrink_the_tree_and_freed_pages_are_reused() {
    let env = Env::memory(1);
    let path = Path::new("d.edb");
    let mut db = Database::create(&env, path, &options()).unwrap();
    let t = db.create_table("t").unwrap();
    let fill = |db: &mut Database| {
        for i in 0u32..20_000 {
            db.put(t, &i.to_be_bytes(), &[7u8; 100]).unwrap();
        }
    };
    fill(&mut db);
    let full = db.check_integrity().unwrap();
    assert!(full.tables["t"].depth >= 3, "{full:?}");
    for i in 0u32..20_000 {
        assert!(db.delete(t, &i.to_be_bytes()).unwrap());
    }
    let empty = db.check_integrity().unwrap();
    assert_eq!(empty.tables["t"].depth, 1);
    assert_eq!(empty.tables["t"].tree_pages, 1);
    assert_eq!(
        empty.free_pages,
        full.page_count - 4 - full.map_pages,
        "all but the headers, catalog, root and flush map are free"
    );
    fill(&mut db);
    assert_eq!(
        db.header().page_count,
        full.page_count,
        "refilling reuses the freed pages"
    );
    db.check_integrity().unwrap();
}

#[test]
fn ascending_inserts_fill_their_pages() {
    let env = Env::memory(1);
    let mut db = Database::create(&env, Path::new("d.edb"), &options()).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0u32..20_000 {
        db.put(t, &i.to_be_bytes(), &[7u8; 100]).unwrap();
    }
    let report = db.check_integrity().unwrap();
    // 20,000 entries of 110 bytes in 4 KiB pages need 540 full leaves; half-full ones would
    // need twice that.
    assert!(report.tables["t"].tree_pages < 600, "{report:?}");
}

#[test]
fn api_errors_carry_ese_codes() {
    let env = Env::memory(1);
    let path = Path::new("d.edb");
    let mut db = Database::create(&env, path, &options()).unwrap();
    let t = db.create_table("t").unwrap();
    let kind = |r: jetdb::Result<()>| r.unwrap_err().kind();
    assert_eq!(kind(db.put(t, &[0u8; 256], b"v")), ErrorKind::KeyTooBig);
    db.put(t, &[0u8; 255], b"v").unwrap();
    assert_eq!(
        kind(db.put(t, b"k", &vec![0u8; jetdb::limits::VALUE_LEN_MAX + 1])),
        ErrorKind::ColumnTooBig
    );
    db.put(t, b"k", &vec![0u8; jetdb::limits::VALUE_LEN_MAX])
        .unwrap();
    assert_eq!(
        kind(db.create_table("t").map(drop)),
        ErrorKind::TableDuplicate
    );
    assert_eq!(kind(db.create_table("").map(drop)), ErrorKind::InvalidName);
    assert_eq!(
        kind(db.create_table(&"x".repeat(65)).map(drop)),
        ErrorKind::InvalidName
    );
    assert_eq!(
        kind(db.open_table("nope").map(drop)),
        ErrorKind::ObjectNotFound
    );
    assert_eq!(kind(db.delete_table("nope")), ErrorKind::ObjectNotFound);
    let gone = db.create_table("gone").unwrap();
    db.delete_table("gone").unwrap();
    assert_eq!(kind(db.put(gone, b"k", b"v")), ErrorKind::InvalidTableId);
    {
        let mut cursor = db.cursor(t).unwrap();
        assert_eq!(cursor.key().unwrap_err().kind(), ErrorKind::NoCurrentRecord);
        assert_eq!(
            cursor.move_next().unwrap_err().kind(),
            ErrorKind::NoCurrentRecord
        );
        assert!(!cursor.seek(b"zzz", SeekMode::Eq).unwrap());
        assert!(cursor.move_last().unwrap());
        assert!(!cursor.move_next().unwrap(), "past the last record");
        assert_eq!(
            cursor.value().unwrap_err().kind(),
            ErrorKind::NoCurrentRecord
        );
    }
    db.close().unwrap();
    assert_eq!(
        kind(Database::create(&env, path, &options()).map(drop)),
        ErrorKind::DatabaseDuplicate
    );
    assert_eq!(
        kind(Database::create(&env, Path::new("no/such/dir/d.edb"), &options()).map(drop)),
        ErrorKind::InvalidPath
    );
    let odd = DatabaseOptions {
        page_size: 6000,
        ..options()
    };
    assert_eq!(
        kind(Database::create(&env, Path::new("e.edb"), &odd).map(drop)),
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        kind(Database::open(&env, Path::new("missing.edb"), &options()).map(drop)),
        ErrorKind::FileNotFound
    );
    let mut ro = Database::open(
        &env,
        path,
        &DatabaseOptions {
            read_only: true,
            ..options()
        },
    )
    .unwrap();
    let t = ro.open_table("t").unwrap();
    assert_eq!(kind(ro.put(t, b"a", b"b")), ErrorKind::DatabaseFileReadOnly);
    assert_eq!(
        kind(ro.delete(t, b"k").map(drop)),
        ErrorKind::DatabaseFileReadOnly
    );
    assert_eq!(
        kind(ro.create_table("x").map(drop)),
        ErrorKind::DatabaseFileReadOnly
    );
    assert_eq!(
        ro.get(t, b"k").unwrap().map(|v| v.len()),
        Some(jetdb::limits::VALUE_LEN_MAX)
    );
}

#[test]
fn a_database_dropped_with_written_changes_is_dirty() {
    let env = Env::memory(1);
    let path = Path::new("d.edb");
    // The smallest cache: changes reach the file by eviction before any flush.
    let small = DatabaseOptions {
        cache_size: 0,
        ..options()
    };
    let mut db = Database::create(&env, path, &small).unwrap();
    let t = db.create_table("t").unwrap();
    for i in 0u32..5000 {
        db.put(t, &i.to_be_bytes(), &[1u8; 200]).unwrap();
    }
    assert!(db.dirty_pages() > 0);
    drop(db);
    let err = Database::open(&env, path, &small).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DatabaseDirtyShutdown, "{err}");
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let image = |seed: u64| -> Vec<u8> {
        let vfs = MemVfs::new();
        let env = env_with(vfs.clone(), seed, 1_700_000_000_000);
        let mut db = Database::create(&env, Path::new("d.edb"), &options()).unwrap();
        let t = db.create_table("t").unwrap();
        for i in 0u32..3000 {
            db.put(
                t,
                &(i.wrapping_mul(2_654_435_761)).to_be_bytes(),
                &vec![i as u8; (i % 50) as usize * 100],
            )
            .unwrap();
        }
        for i in (0u32..3000).step_by(3) {
            db.delete(t, &(i.wrapping_mul(2_654_435_761)).to_be_bytes())
                .unwrap();
        }
        db.close().unwrap();
        read_all(&vfs, "d.edb")
    };
    let a = image(5);
    assert_eq!(a, image(5), "same seed, same bytes");
    assert_ne!(a, image(6), "the seed reaches the signatures");
}

/// Fails every write after a budget of bytes, with the given error.
#[derive(Debug)]
struct WriteBudget {
    bytes_left: AtomicU64,
    error: io::ErrorKind,
}

impl Hook for WriteBudget {
    fn write(&self, _offset: u64, len: usize) -> io::Result<()> {
        let left = self.bytes_left.load(Ordering::SeqCst);
        if left < len as u64 {
            return Err(io::Error::from(self.error));
        }
        self.bytes_left.store(left - len as u64, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_failed_write_latches_the_database_and_the_file_keeps_its_last_flush() {
    for (error, expected) in [
        (io::ErrorKind::StorageFull, ErrorKind::DiskFull),
        (io::ErrorKind::Other, ErrorKind::DiskIO),
    ] {
        let hook = Arc::new(WriteBudget {
            bytes_left: AtomicU64::new(u64::MAX),
            error,
        });
        let budget = &hook.bytes_left;
        let env = env_over(HookedVfs::new(Arc::clone(&hook)));
        let path = Path::new("d.edb");
        let mut db = Database::create(&env, path, &options()).unwrap();
        let t = db.create_table("t").unwrap();
        for i in 0u32..1000 {
            db.put(t, &i.to_be_bytes(), &[3u8; 100]).unwrap();
        }
        db.flush().unwrap();
        // The disk fills up: the next write-back fails.
        budget.store(3 * 4096, Ordering::SeqCst);
        let mut failure = None;
        for i in 1000u32..100_000 {
            if let Err(err) = db
                .put(t, &i.to_be_bytes(), &[3u8; 100])
                .and_then(|()| db.flush())
            {
                failure = Some((err, i));
                break;
            }
        }
        let (failure, at) = failure.expect("the disk filled up");
        assert_eq!(failure.kind(), expected, "{failure}");
        // After the failure every call is refused, reads too: the pages in memory may be
        // half-changed, and a read could evict and write them.
        for refused in [
            db.put(t, b"x", b"y").map(drop),
            db.flush(),
            db.get(t, &5u32.to_be_bytes()).map(drop),
            db.cursor(t).map(drop),
            db.check_integrity().map(drop),
        ] {
            assert_eq!(refused.unwrap_err().kind(), ErrorKind::DatabaseUnavailable);
        }
        drop(db);
        // Reopened with room on the disk, the file holds exactly what the last flush wrote,
        // or what the failed one would have (its batch was whole in the doublewrite file),
        // or says it is dirty; never a mixture.
        budget.store(u64::MAX, Ordering::SeqCst);
        match Database::open(&env, path, &options()) {
            Ok(mut db) => {
                let t = db.open_table("t").unwrap();
                let records = db.check_integrity().unwrap().tables["t"].records;
                assert!(
                    records == u64::from(at) || records == u64::from(at) + 1,
                    "{records}"
                );
                for i in 0..records as u32 {
                    assert_eq!(db.get(t, &i.to_be_bytes()).unwrap(), Some(vec![3u8; 100]));
                }
            }
            Err(err) => assert_eq!(err.kind(), ErrorKind::DatabaseDirtyShutdown, "{err}"),
        }
    }
}
