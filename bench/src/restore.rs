//! `restore`: restore + recovery against `cp` + fsync of the backup set, and log replay
//! against the rate the log was written (issue 13: restore + recovery ≤ 1.25 × `cp` + fsync,
//! median of 5, on a gibibyte; replay at least twice the rate the log was written).
//!
//! A database of 128 KiB values (as `backup` builds it) gets a full backup, restored `--reps`
//! times (little to replay: the copy's speed). Then `--records` small records (24-byte keys,
//! 150-byte values) are committed in durable transactions of 1,000, timed (the rate the log
//! was written), an incremental backup adds their logs to the set, and the set is restored
//! `--reps` times again (replay's speed). Each time, alternating the order at each repetition, with a `sync` and the set read
//! into the page cache before each: a restore of the set into a fresh directory (copy, replay
//! of the small records' logs, clean shutdown), and `cp` of the set's files into a fresh
//! directory with an fsync of each and of the directory. Replay's share of a restore is the
//! time from the last file copied to the end (`Done`), checkpoint file and rename included.

use std::time::Instant;

use jetdb::{BackupFlags, CommitMode, Env, Instance, InstanceParams, RestoreSummary};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backup::{self, MIB, Series};

/// What the command line asked for.
pub struct Options {
    size_mib: u64,
    reps: usize,
    records: u64,
}

impl Options {
    /// `restore [SIZE_MIB] [--reps N] [--records N]`.
    pub fn parse(args: &[String]) -> Options {
        let mut options = Options {
            size_mib: 1024,
            reps: 5,
            records: 400_000,
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
                "--records" => options.records = value("a count"),
                size => options.size_mib = size.parse().expect("a database size in MiB"),
            }
        }
        assert!(options.reps >= 1, "--reps must be at least 1");
        options
    }
}

pub fn main(options: &Options) {
    println!(
        "restore: a {} MiB database backed up full, then {} records of 150 bytes in durable transactions of 1,000 and an incremental backup; {} restores against cp + fsync of the set",
        options.size_mib, options.records, options.reps
    );
    println!("load average at the start: {}", backup::load_average());
    let mut db = backup::build(options.size_mib, 5);
    let root = db.root.clone();
    let bk = root.join("bk");
    std::fs::create_dir(&bk).unwrap();
    db.instance
        .backup(Some(&bk), BackupFlags::NONE, None)
        .unwrap();
    // The full backup alone: restore + recovery (little to replay) against cp + fsync.
    let full = reps(&root, &bk, options.reps, None);
    // The log the replay will read, written and timed.
    let table = db.session.create_table("small").unwrap();
    let before = db.instance.stats().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut key = [0u8; 24];
    let value = [7u8; 150];
    let start = Instant::now();
    let mut done = 0;
    while done < options.records {
        db.session.begin_transaction().unwrap();
        for _ in 0..1000.min(options.records - done) {
            rng.fill_bytes(&mut key);
            db.session.put(table, &key, &value).unwrap();
            done += 1;
        }
        db.session.commit_transaction(CommitMode::Durable).unwrap();
    }
    let ingest_secs = start.elapsed().as_secs_f64();
    let log_written = db.instance.stats().unwrap().log_bytes_written - before.log_bytes_written;
    let summary = db
        .instance
        .backup(Some(&bk), BackupFlags::INCREMENTAL, None)
        .unwrap();
    let ingest_rate = log_written as f64 / ingest_secs;
    println!(
        "  {} records committed in {ingest_secs:.2} s: {:.1} MiB of log at {:.1} MiB/s; the incremental backup copied {:.1} MiB",
        options.records,
        log_written as f64 / MIB as f64,
        ingest_rate / MIB as f64,
        summary.log_bytes as f64 / MIB as f64
    );
    db.instance.term().unwrap();
    let chain = reps(&root, &bk, options.reps, Some((log_written, ingest_rate)));
    println!(
        "medians over {} repetitions (range in brackets):",
        options.reps
    );
    let show = |s: &Series| format!("{:.2} [{:.2}–{:.2}]", s.median(), s.min(), s.max());
    println!(
        "  the full backup: restore + recovery ÷ cp + fsync of the set: {}   (target ≤ 1.25)",
        show(&full.ratio)
    );
    println!(
        "  the full and the incremental: restore + recovery ÷ cp + fsync of the set: {}",
        show(&chain.ratio)
    );
    println!(
        "  log replay rate ÷ the rate it was written: {}   (target ≥ 2)",
        show(&chain.replay)
    );
}

/// The figures of repeated restores of one set.
#[derive(Default)]
struct Reps {
    ratio: Series,
    replay: Series,
}

/// Restores the set in `bk` `reps` times against cp + fsync of its files, in turns. With
/// `log`, the bytes of log replay reads and the rate they were written at.
fn reps(
    root: &std::path::Path,
    bk: &std::path::Path,
    reps: usize,
    log: Option<(u64, f64)>,
) -> Reps {
    let manifest = jetdb::manifest::read(&jetdb::OsVfs, bk)
        .unwrap()
        .expect("a finished backup");
    let set_dir = manifest.set_dir(bk);
    let set_files = backup::files_in(&set_dir, "");
    let set_bytes = backup::bytes_of(&set_files);
    println!(
        "  the set: {} files, {:.0} MiB",
        set_files.len(),
        set_bytes as f64 / MIB as f64
    );
    let mut out = Reps::default();
    for i in 0..reps {
        let restore = || {
            let dest = root.join("restored");
            backup::remove(&dest);
            backup::settle();
            backup::warm(&set_files);
            let copied_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
            let seen = std::sync::Arc::clone(&copied_at);
            let mut params = InstanceParams::in_directory(&dest);
            params.create_path_if_not_exist = true;
            params.event_log = jetdb::EventLog::new(move |record| {
                if matches!(record.event, jetdb::Event::FileCopied { .. }) {
                    *seen.lock().unwrap() = Some(Instant::now());
                }
            });
            let instance = Instance::new(Env::os(), params);
            let start = Instant::now();
            let summary: RestoreSummary = instance.restore(bk, None).unwrap();
            let end = Instant::now();
            let replay = copied_at
                .lock()
                .unwrap()
                .map_or(f64::NAN, |t| (end - t).as_secs_f64());
            drop(instance);
            backup::remove(&dest);
            (summary, (end - start).as_secs_f64(), replay)
        };
        let baseline = || {
            let dest = root.join("cp");
            backup::remove(&dest);
            let (c, _, _) = backup::cp_fsync(&set_files, &dest);
            backup::remove(&dest);
            c
        };
        let ((summary, t, replay), c) = if i % 2 == 0 {
            let r = restore();
            (r, baseline())
        } else {
            let c = baseline();
            (restore(), c)
        };
        let rate = log.map_or(String::new(), |(bytes, _)| {
            format!(": {:.1} MiB/s of log", bytes as f64 / replay / MIB as f64)
        });
        println!(
            "  rep {i}: restore {t:.3} s ({} commits replayed in {replay:.3} s{rate}), cp + fsync {c:.3} s, ratio {:.2}",
            summary.commits_replayed,
            t / c
        );
        out.ratio.push(t / c);
        if let Some((bytes, ingest)) = log {
            out.replay.push(bytes as f64 / replay / ingest);
        }
    }
    out
}
