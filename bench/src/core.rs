//! `core`: the storage core against redb and SQLite on redb's own workload, one engine per child
//! process (so each one's peak memory is its own), with the same settings for all three: a
//! 1 GiB cache, durable commits, 24-byte random keys and 150-byte values.
//!
//! Phases, in order, in one database per engine:
//! 1. bulk load: `N` puts in one transaction (peak memory measured here, above the input);
//! 2. 100 transactions of 1,000 puts of new random keys (and the slowest of them: a stall);
//! 3. 100 transactions of 1,000 puts of ascending keys (into a second table);
//! 4. `N` random gets of loaded keys;
//! 5. `N/2` removals in one transaction;
//! 6. 2,000 durable single-put commits, each timed (p50, p99), against a 4 KiB overwrite +
//!    fdatasync of a file on the same disk, timed beside the commits (in turns) by the same
//!    child, the floors that follow another floor the reference;
//! 7. the disk space (allocated blocks) the engine's directory takes at the end, after it
//!    closed; for jetdb also without its archived log generations (what circular logging or a
//!    backup's truncation removes), against SQLite's whole directory.
//!
//! jetdb also reports the log bytes written per byte of key+value committed in phases 2 and 3
//! (from its log position before and after), the log-volume targets.
//!
//! The engines run in turns, `--rounds` times, the order rotating each round (jetdb, SQLite,
//! redb; SQLite, redb, jetdb; ...), and each figure is the median of its rounds; each ratio is
//! the median of the rounds' ratios, printed with their range. One child per engine moves by
//! about 15% from the next (memory latency and the disk's fsync latency drift over minutes on
//! this VM), more than some phases' margins, and turns spread the drift over every engine
//! alike.
//!
//! Run: `cargo run --release --manifest-path bench/Cargo.toml -- core [--records N] [--cache MIB]
//! [--engines jetdb,sqlite,redb] [--rounds R]`. `JET_PAGE_SIZE` sets jetdb's page size (its
//! default, 8 KiB, unless set), `JET_CHECKPOINT_DEPTH_MIB` its checkpoint depth.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCHES: usize = 100;
const BATCH: usize = 1000;
const SINGLES: usize = 2000;
const VALUE: usize = 150;
/// Passes of the random gets; the median is the phase's figure.
const GET_PASSES: usize = 3;

/// What the command line asked for.
pub struct Options {
    records: usize,
    cache_mib: usize,
    engines: Vec<String>,
    rounds: usize,
}

impl Options {
    /// `core [--records N] [--cache MIB] [--engines a,b,c] [--rounds R]`.
    pub fn parse(args: &[String]) -> Options {
        let mut options = Options {
            records: 1_000_000,
            cache_mib: 1024,
            engines: vec!["jetdb".into(), "sqlite".into(), "redb".into()],
            rounds: 3,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().expect("a value after the flag").clone();
            match arg.as_str() {
                "--records" => options.records = value().parse().expect("--records N"),
                "--cache" => options.cache_mib = value().parse().expect("--cache MIB"),
                "--engines" => options.engines = value().split(',').map(String::from).collect(),
                "--rounds" => {
                    options.rounds = value().parse().expect("--rounds R");
                    assert!(options.rounds > 0, "--rounds is at least 1");
                }
                other => panic!("unknown argument {other}"),
            }
        }
        options
    }
}

/// The input every engine gets: the same keys in the same order.
struct Input {
    load: Vec<[u8; 24]>,
    batches: Vec<[u8; 24]>,
    ascending: Vec<[u8; 24]>,
    gets: Vec<usize>,
    singles: Vec<[u8; 24]>,
    value: Vec<u8>,
}

impl Input {
    fn new(records: usize) -> Input {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut random = |n: usize| -> Vec<[u8; 24]> {
            (0..n)
                .map(|_| {
                    let mut k = [0u8; 24];
                    rng.fill_bytes(&mut k);
                    k
                })
                .collect()
        };
        let load = random(records);
        let batches = random(BATCHES * BATCH);
        let singles = random(SINGLES);
        let ascending = (0..(BATCHES * BATCH) as u64)
            .map(|i| {
                let mut k = [0u8; 24];
                k[..8].copy_from_slice(&i.to_be_bytes());
                k
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let gets = (0..records)
            .map(|_| (rng.next_u64() % records as u64) as usize)
            .collect();
        let mut value = vec![0u8; VALUE];
        rng.fill_bytes(&mut value);
        Input {
            load,
            batches,
            ascending,
            gets,
            singles,
            value,
        }
    }

    fn bytes(&self) -> usize {
        [&self.load, &self.batches, &self.ascending, &self.singles]
            .iter()
            .map(|v| v.len() * 24)
            .sum::<usize>()
            + self.gets.len() * 8
    }
}

/// One engine under the workload. Tables are "t" (random keys) and "asc" (ascending keys).
trait Engine {
    fn put_all(&mut self, table: &str, keys: &[[u8; 24]], value: &[u8]);
    fn get_all(&mut self, keys: &[[u8; 24]], order: &[usize], value_len: usize);
    fn remove_all(&mut self, keys: &[[u8; 24]]);
    fn put_one(&mut self, key: &[u8; 24], value: &[u8]) {
        self.put_all("t", std::slice::from_ref(key), value);
    }
    /// Log bytes and database pages written so far (jetdb only).
    fn written(&self) -> Option<(u64, u64)> {
        None
    }
    fn close(self: Box<Self>);
}

struct Jet {
    instance: jetdb::Instance,
    session: Option<jetdb::Session>,
    tables: BTreeMap<String, jetdb::Table>,
}

impl Jet {
    fn open(dir: &Path, cache: usize) -> Jet {
        let mut params = jetdb::InstanceParams::in_directory(dir);
        params.cache_size = cache;
        if let Some(size) = std::env::var("JET_PAGE_SIZE")
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        {
            params.page_size = size;
        }
        if let Some(depth) = std::env::var("JET_CHECKPOINT_DEPTH_MIB")
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
        {
            params.checkpoint_depth = depth << 20;
        }
        let instance = jetdb::Instance::new(jetdb::Env::os(), params);
        instance.init().unwrap();
        let mut session = instance.begin_session().unwrap();
        let mut tables = BTreeMap::new();
        for name in ["t", "asc"] {
            tables.insert(name.to_string(), session.create_table(name).unwrap());
        }
        Jet {
            instance,
            session: Some(session),
            tables,
        }
    }
}

impl Engine for Jet {
    fn put_all(&mut self, table: &str, keys: &[[u8; 24]], value: &[u8]) {
        let t = self.tables[table];
        let s = self.session.as_mut().unwrap();
        s.begin_transaction().unwrap();
        for key in keys {
            s.put(t, key, value).unwrap();
        }
        s.commit_transaction(jetdb::CommitMode::Durable).unwrap();
    }
    fn get_all(&mut self, keys: &[[u8; 24]], order: &[usize], value_len: usize) {
        let t = self.tables["t"];
        let s = self.session.as_mut().unwrap();
        s.begin_transaction().unwrap();
        for &i in order {
            assert_eq!(
                s.get(t, &keys[i]).unwrap().map(|v| v.len()),
                Some(value_len)
            );
        }
        s.commit_transaction(jetdb::CommitMode::Durable).unwrap();
    }
    fn remove_all(&mut self, keys: &[[u8; 24]]) {
        let t = self.tables["t"];
        let s = self.session.as_mut().unwrap();
        s.begin_transaction().unwrap();
        for key in keys {
            s.delete(t, key).unwrap();
        }
        s.commit_transaction(jetdb::CommitMode::Durable).unwrap();
    }
    fn written(&self) -> Option<(u64, u64)> {
        let stats = self.instance.stats().unwrap();
        Some((stats.log_bytes_written, stats.database_pages_written))
    }
    fn close(mut self: Box<Self>) {
        drop(self.session.take());
        self.instance.term().unwrap();
    }
}

struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    fn open(dir: &Path, cache: usize) -> Sqlite {
        let conn = rusqlite::Connection::open(dir.join("sqlite.db")).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-{};
             CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;
             CREATE TABLE asc (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;",
            cache / 1024
        ))
        .unwrap();
        Sqlite { conn }
    }
}

impl Engine for Sqlite {
    fn put_all(&mut self, table: &str, keys: &[[u8; 24]], value: &[u8]) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO {table} (k, v) VALUES (?1, ?2)"
                ))
                .unwrap();
            for key in keys {
                insert.execute(rusqlite::params![&key[..], value]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn get_all(&mut self, keys: &[[u8; 24]], order: &[usize], value_len: usize) {
        let mut get = self
            .conn
            .prepare_cached("SELECT v FROM t WHERE k = ?1")
            .unwrap();
        for &i in order {
            let v: Vec<u8> = get.query_row([&keys[i][..]], |row| row.get(0)).unwrap();
            assert_eq!(v.len(), value_len);
        }
    }
    fn remove_all(&mut self, keys: &[[u8; 24]]) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut delete = tx.prepare_cached("DELETE FROM t WHERE k = ?1").unwrap();
            for key in keys {
                delete.execute([&key[..]]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn close(self: Box<Self>) {
        self.conn.close().unwrap();
    }
}

struct Redb {
    db: redb::Database,
}

const REDB_T: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("t");
const REDB_ASC: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("asc");

impl Redb {
    fn open(dir: &Path, cache: usize) -> Redb {
        let db = redb::Builder::new()
            .set_cache_size(cache)
            .create(dir.join("redb.db"))
            .unwrap();
        Redb { db }
    }
}

impl Engine for Redb {
    fn put_all(&mut self, table: &str, keys: &[[u8; 24]], value: &[u8]) {
        let tx = self.db.begin_write().unwrap();
        {
            let def = if table == "t" { REDB_T } else { REDB_ASC };
            let mut t = tx.open_table(def).unwrap();
            for key in keys {
                t.insert(&key[..], value).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn get_all(&mut self, keys: &[[u8; 24]], order: &[usize], value_len: usize) {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().unwrap();
        let t = tx.open_table(REDB_T).unwrap();
        for &i in order {
            assert_eq!(
                t.get(&keys[i][..]).unwrap().map(|v| v.value().len()),
                Some(value_len)
            );
        }
    }
    fn remove_all(&mut self, keys: &[[u8; 24]]) {
        let tx = self.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(REDB_T).unwrap();
            for key in keys {
                t.remove(&key[..]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn close(self: Box<Self>) {}
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// The disk space under `dir`: the blocks its files take (as `du` counts), not their
/// lengths — a preallocated file's blank tail given back, or a sparse file's holes, take none.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            allocated(&meta)
        };
    }
    total
}

fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// The child: one engine through every phase; prints `RESULT name value` lines.
pub fn child(args: &[String]) {
    let engine = args[0].as_str();
    let records: usize = args[1].parse().unwrap();
    let cache: usize = args[2].parse::<usize>().unwrap() * 1024 * 1024;
    let input = Input::new(records);
    let tmp = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or("/tmp".into())).unwrap();
    let dir = tmp.path().join(engine);
    std::fs::create_dir(&dir).unwrap();
    let mut out = BTreeMap::<&str, f64>::new();
    let mut db: Box<dyn Engine> = match engine {
        "jetdb" => Box::new(Jet::open(&dir, cache)),
        "sqlite" => Box::new(Sqlite::open(&dir, cache)),
        "redb" => Box::new(Redb::open(&dir, cache)),
        other => panic!("unknown engine {other}"),
    };
    let value = input.value.clone();
    let kv = (24 + VALUE) as f64;

    // Peak memory above the input: reset the high-water mark, load, read it.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    db.put_all("t", &input.load, &value);
    out.insert("load", seconds(start));
    out.insert(
        "load_peak_mib",
        (status_kib("VmHWM:").saturating_sub(before)) as f64 / 1024.0,
    );

    let log0 = db.written();
    let start = Instant::now();
    let mut slowest = 0f64;
    for chunk in input.batches.chunks(BATCH) {
        let one = Instant::now();
        db.put_all("t", chunk, &value);
        slowest = slowest.max(seconds(one));
    }
    out.insert("batches", seconds(start));
    // A checkpoint written inside one commit shows here as a stall.
    out.insert("batch_max_ms", slowest * 1e3);
    let log1 = db.written();
    for chunk in input.ascending.chunks(BATCH) {
        db.put_all("asc", chunk, &value);
    }
    let log2 = db.written();
    if let (Some(a), Some(b), Some(c)) = (log0, log1, log2) {
        let random = input.batches.len() as f64 * kv;
        let ascending = input.ascending.len() as f64 * kv;
        out.insert("log_random", (b.0 - a.0) as f64 / random);
        out.insert("log_ascending", (c.0 - b.0) as f64 / ascending);
        // Page writes per byte committed: what images at write-back (in the log) or a
        // doublewrite area (beside it) would add.
        out.insert("pages_random", (b.1 - a.1) as f64 * 4096.0 / random);
        out.insert("pages_ascending", (c.1 - b.1) as f64 * 4096.0 / ascending);
    }

    // The gets, in passes over the same keys in the same order; the median counts. Memory
    // latency on a VM moves by a quarter from one second to the next, for every engine, and a
    // single pass read that as the engine's.
    let mut passes = Vec::with_capacity(GET_PASSES);
    for _ in 0..GET_PASSES {
        let start = Instant::now();
        db.get_all(&input.load, &input.gets, VALUE);
        passes.push(seconds(start));
    }
    passes.sort_by(f64::total_cmp);
    out.insert("gets", passes[GET_PASSES / 2]);

    let start = Instant::now();
    db.remove_all(&input.load[..records / 2]);
    out.insert("removals", seconds(start));

    // The floor again, here and now, one overwrite + fdatasync beside each commit, in turns
    // (F C, C F, F C, ...): the disk's fsync latency drifts over a run and from one second to
    // the next, and a floor timed apart from the commits, even just before them, moved the
    // ratio by ±0.1 between runs. The reference is the floors that follow a floor: one that
    // follows a commit may wait on write-back the commit started, which would flatter it.
    let floor = Floor::new(tmp.path());
    let mut lat = Vec::with_capacity(SINGLES);
    let (mut floors, mut floors_after) = (Vec::new(), Vec::new());
    for (i, key) in input.singles.iter().enumerate() {
        if i % 2 == 0 {
            floors.push(floor.time());
        }
        let start = Instant::now();
        db.put_one(key, &value);
        lat.push(seconds(start));
        if i % 2 == 1 {
            floors_after.push(floor.time());
        }
    }
    lat.sort_by(f64::total_cmp);
    floors.sort_by(f64::total_cmp);
    floors_after.sort_by(f64::total_cmp);
    out.insert("floor_p50_us", percentile(&floors, 0.5) * 1e6);
    out.insert("floor_p99_us", percentile(&floors, 0.99) * 1e6);
    out.insert("floor_after_p50_us", percentile(&floors_after, 0.5) * 1e6);
    out.insert("floor_after_p99_us", percentile(&floors_after, 0.99) * 1e6);
    out.insert("single_p50_us", percentile(&lat, 0.5) * 1e6);
    out.insert("single_p99_us", percentile(&lat, 0.99) * 1e6);

    db.close();
    out.insert("disk_mib", dir_bytes(&dir) as f64 / 1048576.0);
    // Where the bytes are, for the reader of the table (on stderr, which the parent shows).
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.metadata().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    let shown: Vec<String> = files
        .iter()
        .take(6)
        .map(|(name, len)| format!("{name} {:.1} MiB", *len as f64 / 1048576.0))
        .collect();
    eprintln!(
        "{engine}: {} files; largest: {}",
        files.len(),
        shown.join(", ")
    );
    // What circular logging, or a backup's truncation, would leave: all but the archived
    // generations (`edbXXXXXXXX.log`).
    let archived: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("edb") && name.ends_with(".log") && name.len() == 15
        })
        .map(|e| allocated(&e.metadata().unwrap()))
        .sum();
    out.insert(
        "disk_truncated_mib",
        (dir_bytes(&dir) - archived) as f64 / 1048576.0,
    );
    out.insert("input_mib", input.bytes() as f64 / 1048576.0);
    for (name, v) in out {
        println!("RESULT {name} {v}");
    }
}

/// The floor for a durable single-put commit: a 4 KiB overwrite + fdatasync of a file.
struct Floor {
    file: std::fs::File,
    block: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Floor {
    /// A 4 KiB file, written and synced, in a new directory under `parent`.
    fn new(parent: &Path) -> Floor {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let file = std::fs::File::create(dir.path().join("floor")).unwrap();
        let block = vec![7u8; 4096];
        file.write_all_at(&block, 0).unwrap();
        file.sync_all().unwrap();
        Floor {
            file,
            block,
            _dir: dir,
        }
    }

    /// One overwrite + fdatasync, in seconds.
    fn time(&self) -> f64 {
        let start = Instant::now();
        self.file.write_all_at(&self.block, 0).unwrap();
        self.file.sync_data().unwrap();
        seconds(start)
    }
}

/// The floor `SINGLES` times on its own: p50 and p99 in µs.
fn fsync_floor() -> (f64, f64) {
    let floor = Floor::new(Path::new(
        &std::env::var("BENCH_DIR").unwrap_or("/tmp".into()),
    ));
    let mut lat: Vec<f64> = (0..SINGLES).map(|_| floor.time()).collect();
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 0.5) * 1e6, percentile(&lat, 0.99) * 1e6)
}

/// One engine's child process: its figures by name.
fn run_child(exe: &Path, engine: &str, options: &Options) -> BTreeMap<String, f64> {
    let output = Command::new(exe)
        .args([
            "core-child",
            engine,
            &options.records.to_string(),
            &options.cache_mib.to_string(),
        ])
        .output()
        .unwrap();
    std::io::stderr().write_all(&output.stderr).unwrap();
    assert!(output.status.success(), "{engine} failed");
    let mut r = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(rest) = line.strip_prefix("RESULT ") {
            let (name, v) = rest.split_once(' ').unwrap();
            r.insert(name.to_string(), v.parse().unwrap());
        }
    }
    r
}

/// Each round's figures, by engine, then by name.
type Round = BTreeMap<String, BTreeMap<String, f64>>;

/// The median of `v` (the mean of the middle two, for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The parent: each engine in a child process, in turns for `--rounds` rounds, then the table
/// with ratios.
pub fn main(options: &Options) {
    let exe = std::env::current_exe().unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} records, 24-byte random keys, {VALUE}-byte values, {} MiB caches, durable commits; load average {}",
        options.records,
        options.cache_mib,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (floor50, floor99) = fsync_floor();
    let mut rounds = Vec::<Round>::new();
    let mut order = options.engines.clone();
    for round in 0..options.rounds {
        let mut results = BTreeMap::new();
        for engine in &order {
            eprintln!("round {} of {}: {engine}", round + 1, options.rounds);
            results.insert(engine.clone(), run_child(&exe, engine, options));
        }
        rounds.push(results);
        // Each engine takes each place in the turns, so no engine always follows the same
        // one (its deleted files, its write-back) or always runs first.
        order.rotate_left(1);
    }
    // Each figure: the median of the rounds' (those that reported it).
    let mut results = BTreeMap::<String, BTreeMap<String, f64>>::new();
    for engine in &options.engines {
        let keys: std::collections::BTreeSet<&String> =
            rounds.iter().flat_map(|r| r[engine].keys()).collect();
        let figures = keys
            .into_iter()
            .map(|k| {
                let mut v: Vec<f64> = rounds
                    .iter()
                    .filter_map(|r| r[engine].get(k).copied())
                    .collect();
                (k.clone(), median(&mut v))
            })
            .collect();
        results.insert(engine.clone(), figures);
    }
    let get = |e: &str, k: &str| results.get(e).and_then(|r| r.get(k)).copied();
    // An engine's figure over a reference, round by round: the median ratio and the range.
    let ratio_of_engine = |engine: &str, key: &str, reference: &dyn Fn(&Round) -> Option<f64>| {
        let mut v: Vec<f64> = rounds
            .iter()
            .filter_map(|r| {
                let j = r.get(engine)?.get(key)?;
                reference(r).map(|b| j / b)
            })
            .collect();
        if v.is_empty() {
            return None;
        }
        let (lo, hi) = (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        );
        Some((median(&mut v), lo, hi))
    };
    let ratio_of = |key: &str, reference: &dyn Fn(&Round) -> Option<f64>| {
        ratio_of_engine("jetdb", key, reference)
    };
    let peers: Vec<&str> = ["sqlite", "redb"]
        .into_iter()
        .filter(|p| results.contains_key(*p))
        .collect();
    println!(
        "{} rounds; each figure the median of the rounds', each ratio the median of the rounds' ratios (their range at the right)",
        options.rounds
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>11} {:>8}  range",
        "phase", "jetdb", "sqlite", "redb", "jetdb/best", "target"
    );
    let range = |r: Option<(f64, f64, f64)>| {
        r.map_or(String::new(), |(_, lo, hi)| format!("{lo:.3}-{hi:.3}"))
    };
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let rows = [
        ("bulk load, one transaction (s)", "load", "1.0"),
        ("100 transactions x 1,000 puts (s)", "batches", "1.0"),
        ("  the slowest of those commits (ms)", "batch_max_ms", "-"),
        ("random gets (s)", "gets", "1.0"),
        ("removals of half, one transaction (s)", "removals", "1.0"),
        ("bytes on disk at the end (MiB)", "disk_mib", "-"),
        (
            "bytes on disk, archived logs gone (MiB)",
            "disk_truncated_mib",
            "sqlite",
        ),
        (
            "peak memory of the load above input (MiB)",
            "load_peak_mib",
            "1.5 sq",
        ),
    ];
    // The gets: each round's figure is the median of its passes; the range over the rounds.
    let spread = |engine: &str| {
        let v: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.get(engine)?.get("gets").copied())
            .collect();
        if v.is_empty() {
            return "-".to_string();
        }
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{lo:.3}-{hi:.3}")
    };
    for (label, key, target) in rows {
        let ratio = match key {
            "load_peak_mib" => ratio_of(key, &|r| r.get("sqlite")?.get(key).copied()),
            "disk_mib" | "disk_truncated_mib" => {
                ratio_of(key, &|r| r.get("sqlite")?.get("disk_mib").copied())
            }
            _ => ratio_of(key, &|r| {
                peers
                    .iter()
                    .filter_map(|p| r.get(*p)?.get(key).copied())
                    .min_by(f64::total_cmp)
            }),
        };
        println!(
            "{label:<44} {:>10} {:>10} {:>10} {:>11} {:>8}  {}",
            fmt(get("jetdb", key)),
            fmt(get("sqlite", key)),
            fmt(get("redb", key)),
            fmt(ratio.map(|r| r.0)),
            target,
            range(ratio)
        );
        if key == "gets" {
            println!(
                "  each round the median of {GET_PASSES} passes; the rounds' range: jetdb {}, sqlite {}, redb {}",
                spread("jetdb"),
                spread("sqlite"),
                spread("redb")
            );
        }
    }
    // jetdb's latency over the floor its own child timed beside its commits.
    let own_floor = |key: &str| get("jetdb", &key.replace("single", "floor"));
    for (label, key, floor, target) in [
        (
            "durable single put p50 (µs) / 4K+fdatasync",
            "single_p50_us",
            floor50,
            "1.2",
        ),
        (
            "durable single put p99 (µs) / 4K+fdatasync",
            "single_p99_us",
            floor99,
            "2.0",
        ),
    ] {
        // Each round's commits over the floor its own child timed beside them.
        let floor_key = key.replace("single", "floor");
        let ratio = ratio_of(key, &|r| {
            r.get("jetdb")?.get(&floor_key).copied().or(Some(floor))
        });
        println!(
            "{label:<44} {:>10} {:>10} {:>10} {:>11} {:>8}  {}",
            fmt(get("jetdb", key)),
            fmt(get("sqlite", key)),
            fmt(get("redb", key)),
            fmt(ratio.map(|r| r.0)),
            target,
            range(ratio)
        );
    }
    println!(
        "4 KiB overwrite + fdatasync: p50 {floor50:.1} µs, p99 {floor99:.1} µs at the start; beside jetdb's commits p50 {} µs, p99 {} µs (after a commit: {} µs, {} µs)",
        fmt(own_floor("single_p50_us")),
        fmt(own_floor("single_p99_us")),
        fmt(get("jetdb", "floor_after_p50_us")),
        fmt(get("jetdb", "floor_after_p99_us"))
    );
    // Every engine over the floor timed beside its own commits, for comparison.
    let over_own = |engine: &str, key: &str| {
        let floor_key = key.replace("single", "floor");
        ratio_of_engine(engine, key, &|r| r.get(engine)?.get(&floor_key).copied()).map(|r| r.0)
    };
    for (label, key) in [("p50", "single_p50_us"), ("p99", "single_p99_us")] {
        println!(
            "  single put {label} / the floor beside it: jetdb {}, sqlite {}, redb {}",
            fmt(over_own("jetdb", key)),
            fmt(over_own("sqlite", key)),
            fmt(over_own("redb", key))
        );
    }
    for (label, key, target) in [
        (
            "jetdb log bytes / key+value bytes, random",
            "log_random",
            "1.5",
        ),
        (
            "jetdb log bytes / key+value bytes, ascending",
            "log_ascending",
            "1.2",
        ),
        (
            "jetdb page bytes written / key+value, random",
            "pages_random",
            "-",
        ),
        (
            "jetdb page bytes written / key+value, asc.",
            "pages_ascending",
            "-",
        ),
    ] {
        println!("{label:<44} {:>10} {:>43}", fmt(get("jetdb", key)), target);
    }
}
