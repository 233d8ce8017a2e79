//! Benchmarks jetdb against baselines measured in the same run, on the same machine and disk:
//! SQLite (WAL, synchronous=FULL, a WITHOUT ROWID table) and redb, each with a 64 MiB cache; and
//! for whole-file verification, a plain read of the file.
//!
//! Run: `cargo run --release --manifest-path bench/Cargo.toml -- [RECORDS] [VALUE_SIZE]`.
//! Reports seconds and the ratio jetdb / baseline (below 1: jetdb is faster).
//!
//! `… -- txn [SINGLE_COMMITS] [BATCHES]` times durable transactions instead: single-put
//! commits against SQLite's and against the bare cost of a 4 KiB write and fsync, and
//! transactions of 1,000 puts against SQLite (WAL, synchronous=FULL).
//!
//! `… -- core [--records N] [--cache MIB] [--rounds R]` runs redb's workload (bulk load,
//! batches, random gets, removals, single durable commits) on jetdb, SQLite and redb with 1 GiB
//! caches, the engines in turns for R rounds (3 unless told), and prints the table of the
//! storage-core issue with jetdb / best peer, medians of the rounds (see `core.rs`).
//!
//! `… -- backup [SIZE_MIB ...] [--reps N] [--new MIB] [--log MIB]` times online full and
//! incremental backups and restore against `cp` + fsync of the same files (see `backup.rs`).
//!
//! `… -- foreground [SIZE_MIB] [--rounds N] [--secs S] [--max-rate MIB] [--cold]` times durable
//! single-put commits before, during and after a full online backup, and the backup's speed
//! against `cp` + fsync of the database file (see `foreground.rs`).
//!
//! `… -- restore [SIZE_MIB] [--reps N] [--records N]` times restore + recovery against `cp` +
//! fsync of the backup set, and log replay against the rate the log was written (see
//! `restore.rs`).

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a benchmark times real files"
)]

mod backup;
mod core;
mod foreground;
mod restore;

use std::path::Path;
use std::time::Instant;

use jetdb::{Database, DatabaseOptions, Env};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CACHE_BYTES: usize = 64 * 1024 * 1024;
const READS: usize = 200_000;

struct Timings {
    load: f64,
    reads: f64,
    scan: f64,
}

fn records(n: usize, value_size: usize) -> (Vec<[u8; 24]>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let keys: Vec<[u8; 24]> = (0..n)
        .map(|_| {
            let mut k = [0u8; 24];
            rng.fill_bytes(&mut k);
            k
        })
        .collect();
    let mut value = vec![0u8; value_size];
    rng.fill_bytes(&mut value);
    (keys, value)
}

fn read_order(n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    (0..READS).map(|_| rng.random_range(0..n)).collect()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn jetdb(dir: &Path, keys: &[[u8; 24]], value: &[u8], order: &[usize]) -> Timings {
    let env = Env::os();
    let options = DatabaseOptions {
        cache_size: CACHE_BYTES,
        ..Default::default()
    };
    let path = dir.join("data.edb");
    let (_, load) = timed(|| {
        let mut db = Database::create(&env, &path, &options).unwrap();
        let t = db.create_table("t").unwrap();
        for key in keys {
            db.put(t, key, value).unwrap();
        }
        db.close().unwrap();
    });
    let mut db = Database::open(&env, &path, &options).unwrap();
    let t = db.open_table("t").unwrap();
    let (_, reads) = timed(|| {
        for &i in order {
            assert_eq!(
                db.get(t, &keys[i]).unwrap().map(|v| v.len()),
                Some(value.len())
            );
        }
    });
    let (count, scan) = timed(|| {
        db.range(t, .., false)
            .unwrap()
            .try_fold(0usize, |n, r| r.map(|_| n + 1))
            .unwrap()
    });
    assert_eq!(count, keys.len());
    Timings { load, reads, scan }
}

fn sqlite(dir: &Path, keys: &[[u8; 24]], value: &[u8], order: &[usize]) -> Timings {
    let path = dir.join("sqlite.db");
    let open = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-{};",
            CACHE_BYTES / 1024
        ))
        .unwrap();
        conn
    };
    let (_, load) = timed(|| {
        let mut conn = open();
        conn.execute_batch("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
            .unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare("INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)")
                .unwrap();
            for key in keys {
                insert.execute(rusqlite::params![&key[..], value]).unwrap();
            }
        }
        tx.commit().unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    });
    let conn = open();
    let (_, reads) = timed(|| {
        let mut get = conn.prepare("SELECT v FROM t WHERE k = ?1").unwrap();
        for &i in order {
            let v: Vec<u8> = get.query_row([&keys[i][..]], |row| row.get(0)).unwrap();
            assert_eq!(v.len(), value.len());
        }
    });
    let (count, scan) = timed(|| {
        let mut all = conn.prepare("SELECT k, v FROM t ORDER BY k").unwrap();
        let mut rows = all
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .unwrap();
        rows.try_fold(0usize, |n, r| r.map(|_| n + 1)).unwrap()
    });
    assert_eq!(count, keys.len());
    Timings { load, reads, scan }
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("t");

fn redb(dir: &Path, keys: &[[u8; 24]], value: &[u8], order: &[usize]) -> Timings {
    use redb::{ReadableDatabase, ReadableTable};
    let path = dir.join("redb.db");
    let (_, load) = timed(|| {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(REDB_TABLE).unwrap();
            for key in keys {
                table.insert(&key[..], value).unwrap();
            }
        }
        tx.commit().unwrap();
    });
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .open(&path)
        .unwrap();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(REDB_TABLE).unwrap();
    let (_, reads) = timed(|| {
        for &i in order {
            assert_eq!(
                table.get(&keys[i][..]).unwrap().map(|v| v.value().len()),
                Some(value.len())
            );
        }
    });
    let (count, scan) = timed(|| {
        table
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .count()
    });
    assert_eq!(count, keys.len());
    Timings { load, reads, scan }
}

/// Durable transactions: `singles` one-put commits, then `batches` commits of 1,000 puts.
fn transactions(singles: usize, batches: usize, value_size: usize) {
    use jetdb::{CommitMode, Instance, InstanceParams};
    let tmp = tempfile::tempdir().unwrap();
    let (keys, value) = records(singles + batches * 1000, value_size);
    let (single_keys, batch_keys) = keys.split_at(singles);

    // The floor: a 4 KiB append and an fsync, as a commit of one small page would cost.
    let path = tmp.path().join("fsync.bin");
    let file = std::fs::File::create(&path).unwrap();
    let block = vec![7u8; 4096];
    let (_, fsyncs) = timed(|| {
        use std::io::Write;
        let mut f = &file;
        for _ in 0..singles {
            f.write_all(&block).unwrap();
            file.sync_data().unwrap();
        }
    });

    let dir = tmp.path().join("jet");
    std::fs::create_dir(&dir).unwrap();
    let mut params = InstanceParams::in_directory(&dir);
    params.cache_size = CACHE_BYTES;
    // SQLite's page size: both log the pages a commit changes, so page size sets the volume.
    params.page_size = std::env::var("JET_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let page_size = params.page_size;
    let instance = Instance::new(Env::os(), params);
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let t = session.create_table("t").unwrap();
    let (_, jet_single) = timed(|| {
        for key in single_keys {
            session.begin_transaction().unwrap();
            session.put(t, key, &value).unwrap();
            session.commit_transaction(CommitMode::Durable).unwrap();
        }
    });
    let (_, jet_batch) = timed(|| {
        for chunk in batch_keys.chunks(1000) {
            session.begin_transaction().unwrap();
            for key in chunk {
                session.put(t, key, &value).unwrap();
            }
            session.commit_transaction(CommitMode::Durable).unwrap();
        }
    });
    let stats = instance.stats().unwrap();
    drop(session);
    instance.term().unwrap();
    let log_bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();

    let conn = rusqlite::Connection::open(tmp.path().join("sqlite.db")).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-{};
         CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;",
        CACHE_BYTES / 1024
    ))
    .unwrap();
    let mut conn = conn;
    let (_, sql_single) = timed(|| {
        for key in single_keys {
            let tx = conn.transaction().unwrap();
            tx.execute(
                "INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)",
                rusqlite::params![&key[..], &value],
            )
            .unwrap();
            tx.commit().unwrap();
        }
    });
    let (_, sql_batch) = timed(|| {
        for chunk in batch_keys.chunks(1000) {
            let tx = conn.transaction().unwrap();
            {
                let mut insert = tx
                    .prepare_cached("INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)")
                    .unwrap();
                for key in chunk {
                    insert.execute(rusqlite::params![&key[..], &value]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
    });
    println!(
        "durable transactions, 24-byte random keys, {value_size}-byte values, {} KiB pages; SQLite in WAL with synchronous=FULL",
        page_size / 1024
    );
    println!(
        "{singles} single-put commits: jetdb {:.1} µs each, SQLite {:.1} µs, 4 KiB write+fsync {:.1} µs; jetdb/SQLite {:.2}, jetdb/fsync {:.2}",
        jet_single / singles as f64 * 1e6,
        sql_single / singles as f64 * 1e6,
        fsyncs / singles as f64 * 1e6,
        jet_single / sql_single,
        jet_single / fsyncs
    );
    println!(
        "{batches} commits of 1,000 puts: jetdb {:.3} s, SQLite {:.3} s; jetdb/SQLite {:.2}",
        jet_batch,
        sql_batch,
        jet_batch / sql_batch
    );
    println!(
        "jetdb: {} log generations, {} checkpoints, {:.1} MiB of log files left",
        stats.log_rolls,
        stats.checkpoints,
        log_bytes as f64 / 1048576.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "backup") {
        backup::main(&backup::Options::parse(&args[2..]));
        return;
    }
    if args.get(1).is_some_and(|a| a == "restore") {
        restore::main(&restore::Options::parse(&args[2..]));
        return;
    }
    if args.get(1).is_some_and(|a| a == "foreground") {
        foreground::main(&foreground::Options::parse(&args[2..]));
        return;
    }
    if args.get(1).is_some_and(|a| a == "core") {
        core::main(&core::Options::parse(&args[2..]));
        return;
    }
    if args.get(1).is_some_and(|a| a == "core-child") {
        core::child(&args[2..]);
        return;
    }
    if args.get(1).is_some_and(|a| a == "txn") {
        let singles = args
            .get(2)
            .map_or(2000, |a| a.parse().expect("SINGLE_COMMITS"));
        let batches = args.get(3).map_or(200, |a| a.parse().expect("BATCHES"));
        transactions(singles, batches, 150);
        return;
    }
    let n: usize = args
        .get(1)
        .map_or(1_000_000, |a| a.parse().expect("RECORDS"));
    let value_size: usize = args.get(2).map_or(150, |a| a.parse().expect("VALUE_SIZE"));
    let tmp = tempfile::tempdir().unwrap();
    let (keys, value) = records(n, value_size);
    let order = read_order(n);
    println!(
        "{n} records, 24-byte random keys, {value_size}-byte values; {READS} random reads; 64 MiB caches"
    );
    let j = jetdb(tmp.path(), &keys, &value, &order);
    let s = sqlite(tmp.path(), &keys, &value, &order);
    let r = redb(tmp.path(), &keys, &value, &order);
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>13} {:>13}",
        "phase", "jetdb s", "sqlite s", "redb s", "jetdb/sqlite", "jetdb/redb"
    );
    for (name, jv, sv, rv) in [
        ("load (one durable batch)", j.load, s.load, r.load),
        ("random point reads", j.reads, s.reads, r.reads),
        ("full ordered scan", j.scan, s.scan, r.scan),
    ] {
        println!(
            "{name:<28} {jv:>9.3} {sv:>9.3} {rv:>9.3} {:>13.2} {:>13.2}",
            jv / sv,
            jv / rv
        );
    }

    // Whole-file verification against the plain cost of reading the file.
    let path = tmp.path().join("data.edb");
    let bytes = std::fs::metadata(&path).unwrap().len();
    let (_, read) = timed(|| std::fs::read(&path).unwrap().len());
    let (report, verify) = timed(|| jetdb::verify_file(&jetdb::OsVfs, &path).unwrap());
    assert_eq!(report.bad_count(), 0);
    println!(
        "verify every page of {:.0} MiB: {verify:.3} s; plain read: {read:.3} s; ratio {:.2} (file in the OS cache)",
        bytes as f64 / 1048576.0,
        verify / read
    );
    for (name, file) in [
        ("jetdb", "data.edb"),
        ("sqlite", "sqlite.db"),
        ("redb", "redb.db"),
    ] {
        let size = std::fs::metadata(tmp.path().join(file)).unwrap().len();
        println!("{name} file: {:.1} MiB", size as f64 / 1048576.0);
    }
}
