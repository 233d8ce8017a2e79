//! `backup`: online backup and restore against `cp` + fsync of the same bytes, in the same run
//! (the targets of `backup-anchors.md`: a full backup ≤ 1.25 × C, an incremental backup ≤
//! 1.2 × C(new logs) + 10 ms whatever the database size, a restore's file copy ≤ 1.25 × C).
//!
//! For each database size: a database of 128 KiB values (stored out of line) loaded in 32 MiB
//! transactions on the OS file system, then a checkpoint and a log truncation (a backup with no
//! path), so a full backup copies mainly the database. Then, alternating the order at each
//! repetition, with a `sync` and a read of every source file before each timed run (page cache
//! hot for both sides):
//! - a full backup into a fresh directory against `cp` of the database file and the logs the
//!   previous full backup copied (the same generations, the same sizes), then fsync of each
//!   copy and of the directory;
//! - a restore of the full backup into a fresh directory against `cp` + fsync of the set's files;
//! - incremental backups after committing the same new data at every size (the sizes taking
//!   turns), against `cp` + fsync of just the log generations the incremental backup copies;
//!   each also once more after an untimed checkpoint, which shows what the checkpoint that the
//!   backup's log truncation takes costs it.
//!
//! Phases come from the backup's own event log and status callback, stamped as they arrive.
//!
//! On a VM that returns freed memory to its host, whole runs of either side stall on first
//! writes to page cache (1.5–2.5 s/GiB more): each run's line shows its chunk pace and system
//! CPU, and the tables give minima beside the medians.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jetdb::{
    BackupFlags, BackupSummary, CommitMode, Env, Event, EventLog, Instance, InstanceParams,
    RestoreSummary, Session, Status, Table,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub(crate) const MIB: u64 = 1024 * 1024;
const VALUE_BYTES: usize = 128 * 1024;
const TXN_BYTES: u64 = 32 * MIB;
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What the command line asked for.
pub struct Options {
    sizes_mib: Vec<u64>,
    reps: usize,
    new_mib: u64,
    log_mib: u64,
}

impl Options {
    /// `backup [SIZE_MIB ...] [--reps N] [--new MIB] [--log MIB]`.
    pub fn parse(args: &[String]) -> Options {
        let mut options = Options {
            sizes_mib: Vec::new(),
            reps: 7,
            new_mib: 16,
            log_mib: 5,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |what: &str| -> u64 {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{arg} needs {what}"))
            };
            match arg.as_str() {
                "--reps" => options.reps = value("a count") as usize,
                "--new" => options.new_mib = value("MiB"),
                "--log" => options.log_mib = value("MiB"),
                size => options
                    .sizes_mib
                    .push(size.parse().expect("a database size in MiB")),
            }
        }
        if options.sizes_mib.is_empty() {
            options.sizes_mib.push(1024);
        }
        assert!(options.reps >= 1, "--reps must be at least 1");
        options
    }
}

/// A point the engine reported, stamped when it arrived.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mark {
    Progress,
    Begin,
    DbCopied,
    LogCopied,
    Done,
}

type Trace = Arc<Mutex<Vec<(Instant, Mark)>>>;

fn push(trace: &Trace, mark: Mark) {
    trace
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((Instant::now(), mark));
}

fn event_log(trace: &Trace) -> EventLog {
    let trace = Arc::clone(trace);
    EventLog::new(move |record| {
        let mark = match &record.event {
            Event::BackupBegin { .. } | Event::RestoreBegin { .. } => Mark::Begin,
            Event::FileCopied { to, .. } => {
                if to.extension().is_some_and(|e| e == "log") {
                    Mark::LogCopied
                } else {
                    Mark::DbCopied
                }
            }
            Event::BackupSucceeded { .. } | Event::RestoreSucceeded { .. } => Mark::Done,
            _ => return,
        };
        push(&trace, mark);
    })
}

/// Medians, minima and maxima of repeated timings.
#[derive(Clone, Default)]
pub(crate) struct Series(pub(crate) Vec<f64>);

impl Series {
    pub(crate) fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    pub(crate) fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    pub(crate) fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    pub(crate) fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    pub(crate) fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// Where a backup's or restore's time went, in seconds (one run).
#[derive(Default)]
struct Phases {
    /// From the call to the Begin event (backup: directory checks, log roll, fence, set
    /// directory; restore: manifest read, destination checks).
    begin: f64,
    /// Begin to the database copy made durable (backup), or the logs copied to the database
    /// copy made durable (restore).
    db: f64,
    /// Of `db`: the phase less its 1 MiB chunks at their typical pace (the final fsync, about).
    db_fsync: f64,
    /// The typical (median) time of one 1 MiB chunk of the database copy: read, verify, write.
    chunk: f64,
    /// Of `db`: the time the chunks took beyond their typical pace, less the final fsync.
    stalls: f64,
    /// The log copies (each verified and fsynced).
    logs: f64,
    /// After the last copy to the Done event (backup: directory fsyncs, manifest, header,
    /// truncation with its checkpoint; restore: checkpoint file, rename, replay, shutdown).
    finish: f64,
    /// After Done until the call returned.
    tail: f64,
    /// CPU seconds (user, system) and minor page faults of the call.
    cpu: Cpu,
}

fn phases(
    start: Instant,
    end: Instant,
    trace: &[(Instant, Mark)],
    restore: bool,
    db_bytes: u64,
) -> Phases {
    let at = |want: fn(&Mark) -> bool| trace.iter().filter(move |(_, m)| want(m)).map(|(t, _)| *t);
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    if std::env::var("TRACE").is_ok() {
        for (t, m) in trace {
            eprintln!("{:.6} {m:?}", secs(start, *t));
        }
    }
    let begin = at(|m| matches!(m, Mark::Begin)).next().unwrap_or(start);
    let db = at(|m| matches!(m, Mark::DbCopied)).next_back();
    let last_log = at(|m| matches!(m, Mark::LogCopied)).next_back();
    let done = at(|m| matches!(m, Mark::Done)).next_back().unwrap_or(end);
    let mut p = Phases {
        begin: secs(start, begin),
        tail: secs(done, end),
        ..Phases::default()
    };
    // The order of the copies: a backup copies the database then the logs, a restore the
    // logs then the database.
    let (db_from, copies_end) = if restore {
        let logs_end = last_log.unwrap_or(begin);
        p.logs = secs(begin, logs_end);
        p.db = db.map_or(0.0, |d| secs(logs_end, d));
        (logs_end, db.unwrap_or(logs_end))
    } else {
        let db_end = db.unwrap_or(begin);
        p.db = db.map_or(0.0, |d| secs(begin, d));
        p.logs = last_log.map_or(0.0, |l| secs(db_end, l));
        (begin, last_log.unwrap_or(db_end))
    };
    p.finish = secs(copies_end, done);
    // The database is copied in 1 MiB chunks, each reported. The final fsync is in the span
    // from the second-last report to the end less a typical chunk (a backup reports its last
    // chunk after the fsync, a restore before it); what the chunks took beyond their typical
    // pace is stalls (waiting for memory, or for writeback).
    if let Some(db_end) = db {
        let ticks: Vec<Instant> = trace
            .iter()
            .filter(|(t, m)| matches!(m, Mark::Progress) && *t >= db_from && *t <= db_end)
            .map(|(t, _)| *t)
            .fold(Vec::new(), |mut ticks: Vec<Instant>, t| {
                // A restore reports each chunk twice, at once: one tick.
                if ticks.last().is_none_or(|&last| secs(last, t) > 5e-6) {
                    ticks.push(t);
                }
                ticks
            });
        if ticks.len() >= 3 {
            let gaps = Series(ticks.windows(2).map(|w| secs(w[0], w[1])).collect());
            p.chunk = gaps.median();
            let chunks = db_bytes.div_ceil(MIB) as f64;
            let tail = secs(ticks[ticks.len() - 2], db_end);
            p.db_fsync = (tail - p.chunk).max(0.0);
            p.stalls = (p.db - chunks * p.chunk - p.db_fsync).max(0.0);
        }
    }
    p
}

#[derive(Default)]
struct PhaseSeries {
    begin: Series,
    db: Series,
    db_fsync: Series,
    chunk: Series,
    stalls: Series,
    logs: Series,
    finish: Series,
    tail: Series,
    user: Series,
    sys: Series,
    faults: Series,
}

impl PhaseSeries {
    fn push(&mut self, p: &Phases) {
        self.begin.push(p.begin);
        self.db.push(p.db);
        self.db_fsync.push(p.db_fsync);
        self.chunk.push(p.chunk);
        self.stalls.push(p.stalls);
        self.logs.push(p.logs);
        self.finish.push(p.finish);
        self.tail.push(p.tail);
        self.user.push(p.cpu.user);
        self.sys.push(p.cpu.sys);
        self.faults.push(p.cpu.faults);
    }
    fn line(&self) -> String {
        let db = if self.db.median() > 0.0 {
            format!(
                "database {:.3} (1 MiB chunks at {:.2} ms each = {:.0} MiB/s, stalls {:.3}, final fsync ≈ {:.3}), ",
                self.db.median(),
                self.chunk.median() * 1e3,
                1.0 / self.chunk.median(),
                self.stalls.median(),
                self.db_fsync.median()
            )
        } else {
            String::new()
        };
        format!(
            "begin {:.4}, {db}logs {:.4}, finish {:.4}, after {:.4}; CPU user {:.2} s, system {:.2} s, {:.0} minor faults",
            self.begin.median(),
            self.logs.median(),
            self.finish.median(),
            self.tail.median(),
            self.user.median(),
            self.sys.median(),
            self.faults.median()
        )
    }
}

/// CPU seconds of this thread and of the children it waited for, and its minor page faults,
/// from `/proc/thread-self/stat` (ticks of 10 ms).
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    user: f64,
    sys: f64,
    children: f64,
    faults: f64,
}

impl Cpu {
    fn now() -> Cpu {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        // `rest` starts at field 3 (the state).
        let field = |n: usize| -> f64 {
            rest.split_whitespace()
                .nth(n - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Cpu {
            faults: field(10),
            user: field(14) / 100.0,
            sys: field(15) / 100.0,
            children: (field(16) + field(17)) / 100.0,
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            sys: self.sys - before.sys,
            children: self.children - before.children,
            faults: self.faults - before.faults,
        }
    }
}

/// `cp` then fsync of every copy and of the directory: the baseline C. Returns (total, cp,
/// CPU seconds of cp and of the fsyncs).
pub(crate) fn cp_fsync(files: &[PathBuf], dest: &Path) -> (f64, f64, f64) {
    std::fs::create_dir(dest).unwrap();
    settle();
    warm(files);
    let cpu = Cpu::now();
    let start = Instant::now();
    let status = Command::new("cp").args(files).arg(dest).status().unwrap();
    assert!(status.success(), "cp failed");
    let copied = start.elapsed().as_secs_f64();
    for file in files {
        File::open(dest.join(file.file_name().unwrap()))
            .unwrap()
            .sync_all()
            .unwrap();
    }
    File::open(dest).unwrap().sync_all().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = Cpu::now().since(cpu);
    (elapsed, copied, cpu.user + cpu.sys + cpu.children)
}

/// The median latency of a 4 KiB append and fdatasync (F), over 50 of them, in `dir`.
pub(crate) fn fsync_latency(dir: &Path) -> f64 {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = File::create(&path).unwrap();
    let block = [7u8; 4096];
    let mut times = Series::default();
    for _ in 0..50 {
        let start = Instant::now();
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        times.push(start.elapsed().as_secs_f64());
    }
    std::fs::remove_file(&path).unwrap();
    times.median()
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Flushes what earlier steps left dirty (deletions included), so each timed run starts clean.
pub(crate) fn settle() {
    let status = Command::new("sync").status().unwrap();
    assert!(status.success());
}

/// Reads every file whole, so the timed run finds it in the page cache.
pub(crate) fn warm(files: &[PathBuf]) {
    let mut buf = vec![0u8; MIB as usize];
    for path in files {
        let mut file = File::open(path).unwrap();
        while file.read(&mut buf).unwrap() > 0 {}
    }
}

pub(crate) fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

pub(crate) fn bytes_of(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

pub(crate) fn remove(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The set directory of the backup in `dir`, and its log files (by the manifest).
pub(crate) fn set_logs(dir: &Path, generations: Option<(u32, u32)>) -> (PathBuf, Vec<PathBuf>) {
    let manifest = jetdb::manifest::read(&jetdb::OsVfs, dir)
        .unwrap()
        .expect("a finished backup");
    let set = manifest.set_dir(dir);
    let logs = manifest
        .logs
        .iter()
        .filter(|l| generations.is_none_or(|(lo, hi)| (lo..=hi).contains(&l.generation)))
        .map(|l| set.join(manifest.log_name(l.generation)))
        .collect();
    (set, logs)
}

/// Keeps a copy of the log files of the backup in `dir` in `stash` (sparse, as they are).
fn stash_logs(dir: &Path, stash: &Path) {
    remove(stash);
    std::fs::create_dir(stash).unwrap();
    let (_, logs) = set_logs(dir, None);
    let status = Command::new("cp")
        .arg("--sparse=always")
        .args(&logs)
        .arg(stash)
        .status()
        .unwrap();
    assert!(status.success(), "cp failed");
}

pub(crate) struct Db {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) instance: Instance,
    pub(crate) session: Session,
    table: Table,
    next_key: u64,
    value: Vec<u8>,
    trace: Trace,
}

impl Db {
    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("data.edb")
    }

    /// Commits `bytes` of new values in transactions of 32 MiB, each durable.
    fn load(&mut self, bytes: u64) {
        let mut done = 0u64;
        while done < bytes {
            self.session.begin_transaction().unwrap();
            let mut in_txn = 0u64;
            while in_txn < TXN_BYTES && done < bytes {
                let key = self.next_key.to_be_bytes();
                self.value[..8].copy_from_slice(&key);
                self.session.put(self.table, &key, &self.value).unwrap();
                self.next_key += 1;
                in_txn += self.value.len() as u64;
                done += self.value.len() as u64;
            }
            self.session
                .commit_transaction(CommitMode::Durable)
                .unwrap();
        }
    }

    /// The files a backup reads: the database and the logs.
    pub(crate) fn sources(&self) -> Vec<PathBuf> {
        let mut files = vec![self.data()];
        files.extend(files_in(&self.dir, ".log"));
        files
    }

    pub(crate) fn clear_trace(&self) {
        self.trace.lock().unwrap().clear();
    }

    pub(crate) fn trace(&self) -> Vec<(Instant, Mark)> {
        self.trace.lock().unwrap().clone()
    }

    /// A timed backup into `dest` (which exists): summary, seconds, phases.
    fn backup(&self, dest: &Path, flags: BackupFlags) -> (BackupSummary, f64, Phases) {
        settle();
        warm(&self.sources());
        self.clear_trace();
        let trace = Arc::clone(&self.trace);
        let mut status = |_: &Status| {
            push(&trace, Mark::Progress);
            Ok(())
        };
        let cpu = Cpu::now();
        let start = Instant::now();
        let summary = self
            .instance
            .backup(Some(dest), flags, Some(&mut status))
            .unwrap();
        let end = Instant::now();
        let mut p = phases(start, end, &self.trace(), false, summary.database_bytes);
        p.cpu = Cpu::now().since(cpu);
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
        (summary, (end - start).as_secs_f64(), p)
    }
}

pub(crate) fn build(size_mib: u64, log_mib: u64) -> Db {
    build_with_cache(size_mib, log_mib, CACHE_BYTES)
}

/// [`build`] with a cache of `cache_bytes`.
pub(crate) fn build_with_cache(size_mib: u64, log_mib: u64, cache_bytes: usize) -> Db {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let dir = root.join("db");
    std::fs::create_dir(&dir).unwrap();
    let trace: Trace = Arc::default();
    let mut params = InstanceParams::in_directory(&dir);
    params.cache_size = cache_bytes;
    params.log_file_size = log_mib * MIB;
    params.event_log = event_log(&trace);
    let instance = Instance::new(Env::os(), params);
    instance.init().unwrap();
    let mut session = instance.begin_session().unwrap();
    let table = session.create_table("t").unwrap();
    let mut value = vec![0u8; VALUE_BYTES];
    ChaCha8Rng::seed_from_u64(3).fill_bytes(&mut value);
    let mut db = Db {
        _tmp: tmp,
        root,
        dir,
        instance,
        session,
        table,
        next_key: 0,
        value,
        trace,
    };
    let start = Instant::now();
    db.load(size_mib * MIB);
    let loaded = start.elapsed().as_secs_f64();
    let logs_before = files_in(&db.dir, ".log");
    let log_bytes = bytes_of(&logs_before);
    db.instance.checkpoint().unwrap();
    let truncated = db.instance.backup(None, BackupFlags::NONE, None).unwrap();
    println!(
        "  loaded {} values of {} KiB in {loaded:.1} s ({:.0} MiB/s); {} log files ({:.0} MiB); checkpoint + truncation deleted generations {:?} in {:.1} s",
        db.next_key,
        VALUE_BYTES / 1024,
        size_mib as f64 / loaded,
        logs_before.len(),
        log_bytes as f64 / MIB as f64,
        truncated.truncated,
        start.elapsed().as_secs_f64() - loaded
    );
    db
}

/// The figures of one database size.
struct Run {
    size_mib: u64,
    db_file: u64,
    full: Series,
    full_cp: Series,
    full_cp_only: Series,
    full_cp_cpu: Series,
    full_ratio: Series,
    full_bytes: u64,
    full_cp_bytes: u64,
    full_phases: PhaseSeries,
    restore: Series,
    restore_cp: Series,
    restore_cp_cpu: Series,
    restore_ratio: Series,
    restore_bytes: u64,
    restore_phases: PhaseSeries,
    restore_replayed: u64,
    /// Incremental backups as they come, then with a checkpoint just before each (untimed).
    incr: [Incr; 2],
}

/// The figures of incremental backups.
#[derive(Default)]
struct Incr {
    t: Series,
    cp: Series,
    cp_cpu: Series,
    ratio: Series,
    bytes: Series,
    logs: Series,
    phases: PhaseSeries,
}

fn run(size_mib: u64, options: &Options) -> (Run, Db, PathBuf) {
    println!(
        "database of {size_mib} MiB ({} KiB values, {} MiB log files, 8 KiB pages, {} MiB cache):",
        VALUE_BYTES / 1024,
        options.log_mib,
        CACHE_BYTES as u64 / MIB
    );
    let db = build(size_mib, options.log_mib);
    println!(
        "  4 KiB append + fdatasync: median {:.3} ms; load average {}",
        fsync_latency(&db.root) * 1e3,
        load_average()
    );
    let db_file = std::fs::metadata(db.data()).unwrap().len();
    let mut r = Run {
        size_mib,
        db_file,
        full: Series::default(),
        full_cp: Series::default(),
        full_cp_only: Series::default(),
        full_cp_cpu: Series::default(),
        full_ratio: Series::default(),
        full_bytes: 0,
        full_cp_bytes: 0,
        full_phases: PhaseSeries::default(),
        restore: Series::default(),
        restore_cp: Series::default(),
        restore_cp_cpu: Series::default(),
        restore_ratio: Series::default(),
        restore_bytes: 0,
        restore_phases: PhaseSeries::default(),
        restore_replayed: 0,
        incr: Default::default(),
    };

    // This VM reports freed memory to its host (free page reporting), and the first write to
    // such a page stalls in the host: page cache filled from it costs 1.5–2.5 s/GiB more,
    // for `cp` and backup alike (perf puts 90% of the slow pwrites in
    // copy_folio_from_iter_atomic). Each timed run follows the deletion of the previous run's
    // output; that does not stop the stall from hitting one side or the other in whole runs
    // (see each run's chunk pace and system CPU), so compare minima, or the runs without it.

    // A warm-up pair, untimed: the first writes to new space are the slowest on this disk.
    let stash = db.root.join("logs-stash");
    let mut prev = db.root.join("full-warm");
    std::fs::create_dir(&prev).unwrap();
    db.backup(&prev, BackupFlags::NONE);
    stash_logs(&prev, &stash);
    let files: Vec<PathBuf> = [db.data()]
        .into_iter()
        .chain(files_in(&stash, ".log"))
        .collect();
    cp_fsync(&files, &db.root.join("cp-warm"));
    remove(&db.root.join("cp-warm"));

    // Full backups against cp + fsync of the database and of the logs a full backup copies
    // (those the previous one copied, kept aside: the same generations, the same sizes).
    for i in 0..options.reps {
        let cp_dest = db.root.join(format!("cp-{i}"));
        let dest = db.root.join(format!("full-{i}"));
        std::fs::create_dir(&dest).unwrap();
        let baseline = || {
            let files: Vec<PathBuf> = [db.data()]
                .into_iter()
                .chain(files_in(&stash, ".log"))
                .collect();
            let c = cp_fsync(&files, &cp_dest);
            remove(&cp_dest);
            (c, bytes_of(&files))
        };
        let backup = || {
            let b = db.backup(&dest, BackupFlags::NONE);
            remove(&prev);
            stash_logs(&dest, &stash);
            b
        };
        let ((summary, t, p), ((c, only, cp_cpu), cp_bytes)) = if i % 2 == 0 {
            let b = backup();
            (b, baseline())
        } else {
            let c = baseline();
            (backup(), c)
        };
        prev = dest;
        r.full_bytes = summary.database_bytes + summary.log_bytes;
        r.full_cp_bytes = cp_bytes;
        r.full.push(t);
        r.full_cp.push(c);
        r.full_cp_only.push(only);
        r.full_cp_cpu.push(cp_cpu);
        r.full_ratio.push(t / c);
        r.full_phases.push(&p);
        println!(
            "  full {i}: backup {t:.3} s ({:.1} MiB db + {:.1} MiB logs; chunks {:.2} ms/MiB, stalls {:.3} s, db fsync {:.3} s, CPU sys {:.2} s), cp+fsync {c:.3} s (cp {only:.3}, CPU {cp_cpu:.2} s), T/C {:.2}",
            summary.database_bytes as f64 / MIB as f64,
            summary.log_bytes as f64 / MIB as f64,
            p.chunk * 1e3,
            p.stalls,
            p.db_fsync,
            p.cpu.sys,
            t / c
        );
    }
    let full_dir = prev;
    remove(&stash);

    // Restores of the last full backup against cp + fsync of its set's files.
    let (set, _) = set_logs(&full_dir, None);
    let set_files = files_in(&set, "");
    r.restore_bytes = bytes_of(&set_files);
    for i in 0..options.reps {
        let dest = db.root.join(format!("restore-{i}"));
        let cp_dest = db.root.join(format!("restore-cp-{i}"));
        std::fs::create_dir(&dest).unwrap();
        let restore = || {
            let mut params = InstanceParams::in_directory(&dest);
            params.cache_size = CACHE_BYTES;
            params.event_log = event_log(&db.trace);
            let instance = Instance::new(Env::os(), params);
            settle();
            warm(&set_files);
            db.clear_trace();
            let trace = Arc::clone(&db.trace);
            let mut status = |_: &Status| {
                push(&trace, Mark::Progress);
                Ok(())
            };
            let cpu = Cpu::now();
            let start = Instant::now();
            let summary: RestoreSummary = instance.restore(&full_dir, Some(&mut status)).unwrap();
            let end = Instant::now();
            let mut p = phases(start, end, &db.trace(), true, summary.database_bytes);
            p.cpu = Cpu::now().since(cpu);
            if i == 0 {
                // Untimed: the restored database holds every value.
                instance.init().unwrap();
                let mut session = instance.begin_session().unwrap();
                let table = session.open_table("t").unwrap();
                let count = session
                    .range(table, .., false)
                    .unwrap()
                    .try_fold(0usize, |n, r| r.map(|_| n + 1))
                    .unwrap();
                assert_eq!(
                    count as u64, db.next_key,
                    "the restored database holds every value"
                );
                drop(session);
                instance.term().unwrap();
            }
            drop(instance);
            remove(&dest);
            (summary, (end - start).as_secs_f64(), p)
        };
        let baseline = || {
            let (c, _, cpu) = cp_fsync(&set_files, &cp_dest);
            remove(&cp_dest);
            (c, cpu)
        };
        let ((summary, t, p), (c, cp_cpu)) = if i % 2 == 0 {
            let t = restore();
            (t, baseline())
        } else {
            let c = baseline();
            (restore(), c)
        };
        r.restore_replayed = summary.commits_replayed;
        r.restore.push(t);
        r.restore_cp.push(c);
        r.restore_cp_cpu.push(cp_cpu);
        r.restore_ratio.push(t / c);
        r.restore_phases.push(&p);
        println!(
            "  restore {i}: {t:.3} s ({:.1} MiB db + {:.1} MiB logs, {} commits replayed; chunks {:.2} ms/MiB, stalls {:.3} s, db fsync {:.3} s, finish {:.3} s, CPU sys {:.2} s), cp+fsync {c:.3} s (CPU {cp_cpu:.2} s), ratio {:.2}",
            summary.database_bytes as f64 / MIB as f64,
            summary.log_bytes as f64 / MIB as f64,
            summary.commits_replayed,
            p.chunk * 1e3,
            p.stalls,
            p.db_fsync,
            p.finish,
            p.cpu.sys,
            t / c
        );
    }

    (r, db, full_dir)
}

/// One incremental backup of `db` into `full_dir` after `new_mib` MiB of new commits, against
/// `cp` + fsync, just before it, of the log files it is about to copy: the archived
/// generations after the set's last one and the current `edb.log`, which the backup finishes
/// (an end record) and copies under its archived name. With `checkpoint_first`, a checkpoint
/// (untimed) writes the new pages first: the backup's own truncation then has none to write.
fn incremental(
    db: &mut Db,
    full_dir: &Path,
    r: &mut Run,
    i: usize,
    new_mib: u64,
    checkpoint_first: bool,
) {
    db.load(new_mib * MIB);
    if checkpoint_first {
        db.instance.checkpoint().unwrap();
    }
    let manifest = jetdb::manifest::read(&jetdb::OsVfs, full_dir)
        .unwrap()
        .expect("a finished backup");
    let low = manifest.log_range().1 + 1;
    let mut files: Vec<PathBuf> = (low..)
        .map(|g| db.dir.join(jetdb::log::archive_name("edb", g)))
        .take_while(|f| f.exists())
        .collect();
    files.push(db.dir.join(jetdb::log::current_name("edb")));
    let cp_dest = db.root.join(format!("incr-cp-{i}"));
    let (c, _, cp_cpu) = cp_fsync(&files, &cp_dest);
    remove(&cp_dest);
    let (summary, t, p) = db.backup(full_dir, BackupFlags::INCREMENTAL);
    let (lo, high) = summary.logs.expect("an incremental backup copies logs");
    assert_eq!(
        (lo, high - lo + 1),
        (low, files.len() as u32),
        "the baseline copied the generations the backup copied"
    );
    let x = &mut r.incr[usize::from(checkpoint_first)];
    x.t.push(t);
    x.cp.push(c);
    x.cp_cpu.push(cp_cpu);
    x.ratio.push(t / c);
    x.bytes.push(summary.log_bytes as f64);
    x.logs.push(files.len() as f64);
    x.phases.push(&p);
    println!(
        "  {} MiB database, incremental {i}{}: {t:.4} s ({} logs, {:.1} MiB), cp+fsync of those logs {c:.4} s, T/C {:.2}",
        r.size_mib,
        if checkpoint_first {
            " after a checkpoint"
        } else {
            ""
        },
        files.len(),
        summary.log_bytes as f64 / MIB as f64,
        t / c
    );
}

/// Where a single thread's CPU goes in the work a backup does per byte, page cache hot: the
/// engine's own verification functions timed alone on the files just backed up.
fn diagnose(db_file: &Path, logs: &[PathBuf]) {
    use std::hint::black_box;
    use std::os::unix::fs::FileExt;
    let file = File::open(db_file).unwrap();
    let len = file.metadata().unwrap().len();
    let page_size = jetdb::limits::PAGE_SIZE_DEFAULT;
    let chunk = MIB as usize;
    let gib = len as f64 / (1u64 << 30) as f64;
    // Each step timed alone per 1 MiB chunk; the best of three passes.
    let (mut read, mut alloc, mut verify, mut zeros) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let mut buf = vec![0u8; chunk];
    for _ in 0..3 {
        let (mut r, mut a, mut v, mut z) = (0.0, 0.0, 0.0, 0.0);
        let mut offset = 0;
        while offset < len {
            let n = (len - offset).min(chunk as u64) as usize;
            let t = Instant::now();
            file.read_exact_at(&mut buf[..n], offset).unwrap();
            r += t.elapsed().as_secs_f64();
            let t = Instant::now();
            black_box(vec![0u8; chunk]);
            a += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for (i, page) in buf[..n].chunks(page_size).enumerate() {
                let pgno = (offset / page_size as u64) as u32 + i as u32;
                let _ = black_box(jetdb::page::verify(page, pgno));
            }
            v += t.elapsed().as_secs_f64();
            // The blank-page test alone, on blank pages (its worst case: every byte).
            buf[..n].fill(0);
            let t = Instant::now();
            for page in buf[..n].chunks(page_size) {
                black_box(black_box(page).iter().all(|&b| b == 0));
            }
            z += t.elapsed().as_secs_f64();
            offset += chunk as u64;
        }
        read = read.min(r / gib);
        alloc = alloc.min(a / gib);
        verify = verify.min(v / gib);
        zeros = zeros.min(z / gib);
    }
    println!(
        "  one thread, hot cache, per GiB of database: pread in 1 MiB chunks {read:.3} s, a fresh zeroed 1 MiB buffer per chunk {alloc:.3} s, page::verify of every page {verify:.3} s (all-zero test alone, on blank pages {zeros:.3} s)"
    );
    let (mut t_read, mut t_scan, mut t_crc, mut t_blank, mut bytes) = (0.0, 0.0, 0.0, 0.0, 0u64);
    for path in logs {
        let start = Instant::now();
        let data = jetdb::log::read_file(&jetdb::OsVfs, path).unwrap();
        t_read += start.elapsed().as_secs_f64();
        let start = Instant::now();
        black_box(jetdb::log::scan(&data, "log").unwrap());
        t_scan += start.elapsed().as_secs_f64();
        let start = Instant::now();
        black_box(crc32fast::hash(&data));
        t_crc += start.elapsed().as_secs_f64();
        let start = Instant::now();
        black_box(
            data.chunks(4096)
                .rev()
                .take_while(|s| s.iter().all(|&b| b == 0))
                .count(),
        );
        t_blank += start.elapsed().as_secs_f64();
        bytes += data.len() as u64;
    }
    let n = logs.len().max(1) as f64;
    println!(
        "  per log file ({} of {:.1} MiB each, from the last incremental): read_file {:.2} ms, log::scan {:.2} ms, CRC32 of the file {:.2} ms, blank-tail scan {:.2} ms",
        logs.len(),
        bytes as f64 / n / MIB as f64,
        t_read / n * 1e3,
        t_scan / n * 1e3,
        t_crc / n * 1e3,
        t_blank / n * 1e3
    );
}

fn row(name: &str, s: &Series, note: &str) {
    println!(
        "  {name:<36} {:>9.4} {:>9.4} {:>9.4}  {note}",
        s.median(),
        s.min(),
        s.max()
    );
}

/// Runs the benchmark for every size asked and prints the figures.
pub fn main(options: &Options) {
    println!(
        "backup benchmark: {} repetitions of each, alternating with the baseline; before every timed run `sync` and a read of each source file (page cache hot for both); cp is coreutils `cp`, then fsync of each copy and the directory",
        options.reps
    );
    let mut runs = Vec::new();
    let mut dbs = Vec::new();
    for &size in &options.sizes_mib {
        let (r, db, full_dir) = run(size, options);
        runs.push(r);
        dbs.push((db, full_dir));
    }
    // Incremental backups after the same new data at every size, the sizes interleaved so
    // the machine's state is the same for each.
    println!(
        "incremental backups, {} MiB of new values before each, the database sizes in turn:",
        options.new_mib
    );
    for i in 0..options.reps {
        for ((db, full_dir), r) in dbs.iter_mut().zip(runs.iter_mut()) {
            incremental(db, full_dir, r, i, options.new_mib, false);
            incremental(db, full_dir, r, i, options.new_mib, true);
        }
    }
    println!(
        "  4 KiB append + fdatasync: median {:.3} ms; load average {}",
        fsync_latency(&dbs[0].0.root) * 1e3,
        load_average()
    );
    println!("CPU costs of the steps, measured alone:");
    for ((db, full_dir), r) in dbs.iter().zip(&runs) {
        let manifest = jetdb::manifest::read(&jetdb::OsVfs, full_dir)
            .unwrap()
            .expect("a finished backup");
        let last = r.incr[1].logs.0.last().copied().unwrap_or(0.0) as usize;
        let logs = manifest.logs[manifest.logs.len() - last..]
            .iter()
            .map(|l| {
                manifest
                    .set_dir(full_dir)
                    .join(manifest.log_name(l.generation))
            })
            .collect::<Vec<_>>();
        println!(" {} MiB database:", r.size_mib);
        diagnose(&db.data(), &logs);
    }
    for (db, _) in dbs {
        let Db {
            instance, session, ..
        } = db;
        drop(session);
        instance.term().unwrap();
    }
    for r in &runs {
        println!();
        println!(
            "database {} MiB (file {:.1} MiB); seconds: {:>9} {:>9} {:>9}",
            r.size_mib,
            r.db_file as f64 / MIB as f64,
            "median",
            "min",
            "max"
        );
        let mib = |b: u64| b as f64 / MIB as f64;
        row(
            "full backup T",
            &r.full,
            &format!("{:.1} MiB copied (db + logs)", mib(r.full_bytes)),
        );
        row(
            "cp + fsync C",
            &r.full_cp,
            &format!("{:.1} MiB (logs: apparent size)", mib(r.full_cp_bytes)),
        );
        row("  of which cp", &r.full_cp_only, "");
        row("T/C (per pair)", &r.full_ratio, "target ≤ 1.25");
        println!(
            "  ratio of medians T/C {:.2}; of minima {:.2}",
            r.full.median() / r.full_cp.median(),
            r.full.min() / r.full_cp.min()
        );
        println!("  full backup phases (medians): {}", r.full_phases.line());
        println!(
            "  CPU of cp + fsync (median): {:.2} s",
            r.full_cp_cpu.median()
        );
        row(
            "restore",
            &r.restore,
            &format!(
                "{:.1} MiB in the set, {} commits replayed",
                mib(r.restore_bytes),
                r.restore_replayed
            ),
        );
        row("cp + fsync of the set", &r.restore_cp, "");
        row("restore / C (per pair)", &r.restore_ratio, "target ≤ 1.25");
        println!(
            "  ratio of medians {:.2}; of minima {:.2}",
            r.restore.median() / r.restore_cp.median(),
            r.restore.min() / r.restore_cp.min()
        );
        println!("  restore phases (medians): {}", r.restore_phases.line());
        println!(
            "  CPU of cp + fsync (median): {:.2} s",
            r.restore_cp_cpu.median()
        );
        for (x, how) in r.incr.iter().zip(["", ", ckpt first"]) {
            row(
                &format!("incremental ({} MiB new{how})", options.new_mib),
                &x.t,
                &format!(
                    "{:.0} logs, {:.1} MiB (median)",
                    x.logs.median(),
                    x.bytes.median() / MIB as f64
                ),
            );
            row(
                "cp + fsync of the new logs",
                &x.cp,
                "the same generations, copied from the log directory just before",
            );
            row("T/C (per pair)", &x.ratio, "target ≤ 1.2 (+10 ms on C)");
            println!(
                "  ratio of medians {:.2}; of minima {:.2}; T - 1.2 × C (median) {:+.1} ms (target ≤ +10 ms)",
                x.t.median() / x.cp.median(),
                x.t.min() / x.cp.min(),
                (x.t.median() - 1.2 * x.cp.median()) * 1e3
            );
            println!("  incremental phases (medians): {}", x.phases.line());
            println!("  CPU of cp + fsync (median): {:.2} s", x.cp_cpu.median());
        }
    }
    if runs.len() > 1 {
        println!();
        println!(
            "{:>8} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>6} {:>9} {:>9} {:>6}",
            "DB MiB",
            "full s",
            "C s",
            "T/C",
            "incr s",
            "C s",
            "T/C",
            "incr+ckpt",
            "T/C",
            "restore",
            "C s",
            "R/C"
        );
        for r in &runs {
            println!(
                "{:>8} {:>9.3} {:>9.3} {:>6.2} {:>9.4} {:>9.4} {:>6.2} {:>9.4} {:>6.2} {:>9.3} {:>9.3} {:>6.2}",
                r.size_mib,
                r.full.median(),
                r.full_cp.median(),
                r.full.median() / r.full_cp.median(),
                r.incr[0].t.median(),
                r.incr[0].cp.median(),
                r.incr[0].t.median() / r.incr[0].cp.median(),
                r.incr[1].t.median(),
                r.incr[1].t.median() / r.incr[1].cp.median(),
                r.restore.median(),
                r.restore_cp.median(),
                r.restore.median() / r.restore_cp.median()
            );
        }
    }
}
