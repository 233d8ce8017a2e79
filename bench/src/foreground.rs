//! `foreground`: what a full online backup costs the commits it runs beside (issue 13: durable
//! commit p99 ≤ 2 × the same workload without a backup, and no commit waiting more than 50 ms,
//! on a database of at least 1 GiB).
//!
//! A database of 128 KiB values (as `backup` builds it) is loaded on the OS file system, with a
//! 512 MiB cache (`--cache`). Then, in each round, one writer commits single durable puts
//! (24-byte random keys, 150-byte values, a table of their own) at `--rate` a second, open
//! loop (100 unless told; each commit's latency counts from its slot, so a commit held up
//! counts against the ones behind it), or with `--rate 0` as fast as it can, closed loop:
//! - for `--secs` seconds with no backup (*before*),
//! - while a full backup into a fresh directory runs in another thread (*during*),
//! - for `--secs` seconds after it (*after*);
//!
//! then, with no writer, `cp` + fsync of the database file into a fresh directory: the disk's
//! speed for the same bytes, which the backup's speed is reported against. With `--max-rate
//! MIB`, each round runs a second, rate-limited backup after the first (with its own *during*).
//! With `--cold`, the OS page cache is dropped before each backup (root only).
//!
//! The baseline a round's *during* is held against is its *before* and *after* together.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jetdb::{BackupFlags, BackupOptions, CommitMode, Session, Table};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backup::{self, MIB, Series};

/// A commit slower than this is a stall (the bound).
const STALL_SECS: f64 = 0.050;

/// What the command line asked for.
pub struct Options {
    size_mib: u64,
    rounds: usize,
    secs: f64,
    max_rate_mib: Option<u64>,
    cold: bool,
    /// Commits a second the writer aims at (0: as fast as it can, closed loop).
    rate: u64,
    cache_mib: u64,
}

impl Options {
    /// `foreground [SIZE_MIB] [--rounds N] [--secs S] [--max-rate MIB] [--cold] [--rate N]
    /// [--cache MIB]`.
    pub fn parse(args: &[String]) -> Options {
        let mut options = Options {
            size_mib: 1024,
            rounds: 3,
            secs: 5.0,
            max_rate_mib: None,
            cold: false,
            rate: 100,
            cache_mib: 512,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |what: &str| -> String {
                args.next()
                    .cloned()
                    .unwrap_or_else(|| panic!("{arg} needs {what}"))
            };
            match arg.as_str() {
                "--rounds" => options.rounds = value("a count").parse().expect("a count"),
                "--secs" => options.secs = value("seconds").parse().expect("seconds"),
                "--max-rate" => {
                    options.max_rate_mib = Some(value("MiB/s").parse().expect("MiB/s"));
                }
                "--cold" => options.cold = true,
                "--rate" => options.rate = value("commits/s").parse().expect("commits/s"),
                "--cache" => options.cache_mib = value("MiB").parse().expect("MiB"),
                size => options.size_mib = size.parse().expect("a database size in MiB"),
            }
        }
        assert!(options.rounds >= 1, "--rounds must be at least 1");
        options
    }
}

/// Commit latencies of one stretch, in seconds, and how long it ran.
#[derive(Default)]
struct Stretch {
    latencies: Vec<f64>,
    secs: f64,
    /// When each commit slower than half a stall began, how long it took, and what it did
    /// besides: database pages written, checkpoints, log rolls.
    slow: Vec<(Instant, f64, [u64; 3])>,
}

impl Stretch {
    fn add(&mut self, other: &Stretch) {
        self.latencies.extend_from_slice(&other.latencies);
        self.secs += other.secs;
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    fn max(&self) -> f64 {
        self.latencies.iter().copied().fold(0.0, f64::max)
    }

    fn stalls(&self) -> usize {
        self.latencies.iter().filter(|&&l| l > STALL_SECS).count()
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.secs
    }

    /// The slow commits: when each began (milliseconds after `start`), how long it took, and
    /// the pages it wrote, the checkpoint it moved, the log it rolled.
    fn slow_list(&self, start: Instant) -> String {
        let ms = |t: Instant| t.saturating_duration_since(start).as_secs_f64() * 1e3;
        let slow: Vec<String> = self
            .slow
            .iter()
            .map(|(t, took, [pages, checkpoints, rolls])| {
                let mut did = String::new();
                if *pages > 0 {
                    did += &format!(" {pages}p");
                }
                if *checkpoints > 0 {
                    did += " ckpt";
                }
                if *rolls > 0 {
                    did += " roll";
                }
                format!("+{:.0} ({:.0} ms{did})", ms(*t), took * 1e3)
            })
            .collect();
        if slow.is_empty() {
            "none".into()
        } else {
            slow.join(" ")
        }
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<7} {:>7} commits {:>6.0}/s  p50 {:>6.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  max {:>7.1} ms  >50 ms: {}",
            self.latencies.len(),
            self.rate(),
            self.quantile(0.50) * 1e3,
            self.quantile(0.99) * 1e3,
            self.quantile(0.999) * 1e3,
            self.max() * 1e3,
            self.stalls()
        )
    }
}

/// The closed-loop writer: single durable puts until `stop` says so (or `secs` pass).
struct Writer {
    instance: jetdb::Instance,
    /// Commits a second (0: closed loop).
    rate: u64,
    session: Session,
    table: Table,
    rng: ChaCha8Rng,
    value: Vec<u8>,
}

impl Writer {
    fn run(&mut self, secs: Option<f64>, stop: &AtomicBool) -> Stretch {
        let start = Instant::now();
        let mut stretch = Stretch::default();
        let mut key = [0u8; 24];
        let mut n = 0u64;
        loop {
            // Open loop: each commit is due at its slot, and its latency counts from the slot
            // (a commit held up delays the ones behind it, and they count it).
            let due = if self.rate > 0 {
                let due = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                Some(due)
            } else {
                None
            };
            n += 1;
            let elapsed = start.elapsed().as_secs_f64();
            match secs {
                Some(secs) if elapsed >= secs => break,
                None if stop.load(Ordering::Acquire) => break,
                _ => {}
            }
            self.rng.fill_bytes(&mut key);
            let stats = self.instance.stats().unwrap();
            let t = due.unwrap_or_else(Instant::now);
            self.session.begin_transaction().unwrap();
            self.session.put(self.table, &key, &self.value).unwrap();
            self.session
                .commit_transaction(CommitMode::Durable)
                .unwrap();
            let took = t.elapsed().as_secs_f64();
            stretch.latencies.push(took);
            if took > STALL_SECS / 2.0 {
                let now = self.instance.stats().unwrap();
                let did = [
                    now.database_pages_written - stats.database_pages_written,
                    now.checkpoints - stats.checkpoints,
                    now.log_rolls - stats.log_rolls,
                ];
                stretch.slow.push((t, took, did));
            }
        }
        stretch.secs = start.elapsed().as_secs_f64();
        stretch
    }
}

/// Drops the OS page cache (root only), so a backup reads from the disk.
fn drop_caches() {
    backup::settle();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .expect("--cold drops the page cache: it needs root");
}

/// One backup with the writer beside it: the writer's stretch and the backup's seconds.
fn backup_beside(
    db: &backup::Db,
    writer: &mut Writer,
    dest: &Path,
    options: BackupOptions,
    cold: bool,
) -> (Stretch, f64, u64) {
    backup::remove(dest);
    std::fs::create_dir(dest).unwrap();
    backup::settle();
    if cold {
        drop_caches();
    }
    let done = Arc::new(AtomicBool::new(false));
    db.clear_trace();
    let start = Instant::now();
    let instance = db.instance.clone();
    let flag = Arc::clone(&done);
    let to = dest.to_path_buf();
    let backup = std::thread::spawn(move || {
        let start = Instant::now();
        let summary = instance
            .backup_with(Some(&to), BackupFlags::NONE, &options, None)
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        flag.store(true, Ordering::Release);
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
        (secs, summary.database_bytes + summary.log_bytes)
    });
    let stretch = writer.run(None, &done);
    let (secs, bytes) = backup.join().unwrap();
    backup::remove(dest);
    // Where the slow commits fell among the backup's phases (milliseconds from its call).
    let ms = |t: Instant| t.saturating_duration_since(start).as_secs_f64() * 1e3;
    let mut marks: Vec<String> = db
        .trace()
        .iter()
        .filter(|(_, m)| !matches!(m, backup::Mark::Progress | backup::Mark::LogCopied))
        .map(|(t, m)| format!("{m:?} +{:.0}", ms(*t)))
        .collect();
    if let Some((t, _)) = db
        .trace()
        .iter()
        .rev()
        .find(|(_, m)| matches!(m, backup::Mark::LogCopied))
    {
        marks.push(format!("last log +{:.0}", ms(*t)));
    }
    println!(
        "    backup: {}; commits over {:.0} ms began at: {}",
        marks.join(", "),
        STALL_SECS * 1e3 / 2.0,
        stretch.slow_list(start)
    );
    (stretch, secs, bytes)
}

/// The figures of one round.
struct Round {
    baseline: Stretch,
    during: Stretch,
    backup_secs: f64,
    backup_bytes: u64,
    limited: Option<(Stretch, f64)>,
    cp_secs: f64,
    db_bytes: u64,
}

pub fn main(options: &Options) {
    println!(
        "foreground: a full backup of a {} MiB database ({} MiB cache) beside a writer of durable single puts ({}); {} rounds of {:.0} s before and after{}{}",
        options.size_mib,
        options.cache_mib,
        if options.rate > 0 {
            format!("{} a second, open loop", options.rate)
        } else {
            "closed loop".into()
        },
        options.rounds,
        options.secs,
        options.max_rate_mib.map_or(String::new(), |r| format!(
            ", then a backup limited to {r} MiB/s"
        )),
        if options.cold {
            "; page cache dropped before each backup"
        } else {
            "; the database in the page cache"
        }
    );
    println!("load average at the start: {}", backup::load_average());
    let mut db = backup::build_with_cache(options.size_mib, 5, (options.cache_mib * MIB) as usize);
    let table = db.session.create_table("hot").unwrap();
    let session = db.instance.begin_session().unwrap();
    let mut value = vec![0u8; 150];
    ChaCha8Rng::seed_from_u64(5).fill_bytes(&mut value);
    let mut writer = Writer {
        instance: db.instance.clone(),
        rate: options.rate,
        session,
        table,
        rng: ChaCha8Rng::seed_from_u64(11),
        value,
    };
    let db_bytes = std::fs::metadata(db.data()).unwrap().len();
    println!(
        "database file {:.0} MiB; 4 KiB append + fdatasync: median {:.3} ms",
        db_bytes as f64 / MIB as f64,
        backup::fsync_latency(&db.root) * 1e3
    );
    let never = AtomicBool::new(false);
    let dest = db.root.join("backup");
    let mut rounds = Vec::new();
    for round in 0..options.rounds {
        let t = Instant::now();
        let before = writer.run(Some(options.secs), &never);
        println!(
            "    before: commits over 25 ms began at: {}",
            before.slow_list(t)
        );
        let (during, backup_secs, backup_bytes) = backup_beside(
            &db,
            &mut writer,
            &dest,
            BackupOptions::default(),
            options.cold,
        );
        let t = Instant::now();
        let after = writer.run(Some(options.secs), &never);
        println!(
            "    after: commits over 25 ms began at: {}",
            after.slow_list(t)
        );
        let limited = options.max_rate_mib.map(|rate| {
            let limit = BackupOptions {
                max_rate: std::num::NonZeroU64::new(rate * MIB),
            };
            let (stretch, secs, _) = backup_beside(&db, &mut writer, &dest, limit, options.cold);
            (stretch, secs)
        });
        // The disk's speed for the same bytes, with nothing else running.
        let cp_dir = db.root.join("cp");
        backup::remove(&cp_dir);
        if options.cold {
            drop_caches();
        }
        let (cp_secs, _, _) = backup::cp_fsync(&[db.data()], &cp_dir);
        backup::remove(&cp_dir);
        let mut baseline = Stretch::default();
        baseline.add(&before);
        baseline.add(&after);
        println!(
            "round {}: load average {}",
            round + 1,
            backup::load_average()
        );
        println!("  {}", before.line("before"));
        println!("  {}", during.line("during"));
        println!("  {}", after.line("after"));
        println!(
            "  backup {:.2} s ({:.0} MiB, {:.0} MiB/s); cp + fsync of the database file {:.2} s ({:.0} MiB/s)",
            backup_secs,
            backup_bytes as f64 / MIB as f64,
            backup_bytes as f64 / MIB as f64 / backup_secs,
            cp_secs,
            db_bytes as f64 / MIB as f64 / cp_secs
        );
        if let Some((stretch, secs)) = &limited {
            println!("  {}", stretch.line("limited"));
            println!(
                "  limited backup {:.2} s ({:.0} MiB/s)",
                secs,
                backup_bytes as f64 / MIB as f64 / secs
            );
        }
        rounds.push(Round {
            baseline,
            during,
            backup_secs,
            backup_bytes,
            limited,
            cp_secs,
            db_bytes,
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    summary(&rounds);
}

fn summary(rounds: &[Round]) {
    let series = |f: &dyn Fn(&Round) -> f64| Series(rounds.iter().map(f).collect());
    let p99_ratio = series(&|r| r.during.quantile(0.99) / r.baseline.quantile(0.99));
    let p50_ratio = series(&|r| r.during.quantile(0.50) / r.baseline.quantile(0.50));
    let max_during = series(&|r| r.during.max());
    let stalls = rounds.iter().map(|r| r.during.stalls()).sum::<usize>();
    let rate_ratio = series(&|r| r.during.rate() / r.baseline.rate());
    let speed =
        series(&|r| (r.backup_bytes as f64 / r.backup_secs) / (r.db_bytes as f64 / r.cp_secs));
    println!("medians over {} rounds (range in brackets):", rounds.len());
    let show = |s: &Series| format!("{:.2} [{:.2}–{:.2}]", s.median(), s.min(), s.max());
    println!(
        "  commit p99 during ÷ without a backup: {}   (target ≤ 2.0)",
        show(&p99_ratio)
    );
    println!(
        "  commit p50 during ÷ without a backup: {}",
        show(&p50_ratio)
    );
    println!(
        "  slowest commit during a backup: {:.1} ms [{:.1}–{:.1}]; commits over 50 ms in all rounds: {}   (target: none)",
        max_during.median() * 1e3,
        max_during.min() * 1e3,
        max_during.max() * 1e3,
        stalls
    );
    println!(
        "  commits/s during ÷ without a backup: {}",
        show(&rate_ratio)
    );
    println!(
        "  backup speed ÷ cp + fsync speed (writer running ÷ idle disk): {}",
        show(&speed)
    );
    if rounds.iter().all(|r| r.limited.is_some()) {
        let limited_p99 =
            series(&|r| r.limited.as_ref().unwrap().0.quantile(0.99) / r.baseline.quantile(0.99));
        let limited_max = series(&|r| r.limited.as_ref().unwrap().0.max());
        println!(
            "  rate-limited backup: commit p99 ÷ without {}; slowest commit {:.1} ms",
            show(&limited_p99),
            limited_max.max() * 1e3
        );
    }
}
