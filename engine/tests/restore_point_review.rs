//! Review tests (restore to a point): a chosen backup of a set, a log position or a commit time, and a roll
//! forward through the live instance's logs. Each restore is compared with what the instance
//! held right after the commit it must land on: the tests keep a snapshot of every commit,
//! stamped by a clock that moves 10 ms before each, so a time names one commit exactly.

use std::path::Path;
use std::sync::Arc;

use jetdb::log::{self as jetlog, Record};
use jetdb::{
    BackupFlags, Clock, CommitMode, Env, ErrorKind, Instance, Lgpos, ManualClock, MemVfs,
    RestoreOptions, RestorePoint, RestoreSummary, SeededEntropy, Vfs,
};

mod support;

use support::{Contents, backup_params, contents, key, read_all, tree, write_all};

const TICK_NANOS: u64 = 10_000_000;

/// A running instance whose every commit is remembered: when it was stamped, and what the
/// instance held right after it.
struct History {
    vfs: MemVfs,
    clock: Arc<ManualClock>,
    inst: Instance,
    /// (commit time in ms, contents after it), in commit order.
    commits: Vec<(u64, Contents)>,
    /// Each backup's begin time, in order.
    backups: Vec<u64>,
}

impl History {
    fn new() -> History {
        let vfs = MemVfs::new();
        let clock = Arc::new(ManualClock::new(1_000));
        let inst = Instance::new(env(&vfs, &clock), backup_params("inst"));
        inst.init().unwrap();
        let mut history = History {
            vfs,
            clock,
            inst,
            commits: Vec::new(),
            backups: Vec::new(),
        };
        history.clock.advance(TICK_NANOS);
        let mut s = history.inst.begin_session().unwrap();
        s.create_table("t").unwrap();
        history.remember();
        history
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn remember(&mut self) {
        let now = self.now();
        self.commits.push((now, contents(&self.inst)));
    }

    /// `n` commits, each a few puts and a delete, each durable (so each seals a segment and
    /// the log rolls every thirty or so).
    fn commit(&mut self, n: u32) {
        let mut s = self.inst.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        for _ in 0..n {
            let i = self.commits.len() as u32;
            self.clock.advance(TICK_NANOS);
            s.begin_transaction().unwrap();
            for j in 0..4 {
                s.put(t, &key(i * 3 + j), format!("v{i}-{j}").as_bytes())
                    .unwrap();
            }
            s.delete(t, &key(i)).unwrap();
            s.commit_transaction(CommitMode::Durable).unwrap();
            self.remember();
        }
    }

    fn backup(&mut self, flags: BackupFlags) {
        self.clock.advance(TICK_NANOS / 2);
        self.backups.push(self.now());
        self.inst
            .backup(Some(Path::new("bk")), flags, None)
            .unwrap();
    }

    /// What the instance held after the last commit stamped at or before `millis`.
    fn at(&self, millis: u64) -> &Contents {
        &self
            .commits
            .iter()
            .rev()
            .find(|(at, _)| *at <= millis)
            .expect("a commit before")
            .1
    }

    /// A full backup, then `incrementals` incremental ones, with commits before and between,
    /// and more after the last.
    fn with_backups(incrementals: usize) -> History {
        let mut h = History::new();
        h.commit(40);
        h.backup(BackupFlags::NONE);
        for _ in 0..incrementals {
            h.commit(45);
            h.backup(BackupFlags::INCREMENTAL);
        }
        h.commit(50);
        h
    }

    /// Restores the backup into a new place `to` with `options`: the summary and what the
    /// restored instance holds (checked whole), or the error.
    fn restore(
        &self,
        to: &str,
        options: &RestoreOptions,
    ) -> jetdb::Result<(RestoreSummary, Contents)> {
        let inst = Instance::new(env(&self.vfs, &self.clock), backup_params(to));
        let summary = inst.restore_with(Path::new("bk"), options, None)?;
        inst.init()?;
        inst.check_integrity()?;
        let held = contents(&inst);
        inst.term()?;
        Ok((summary, held))
    }

    /// Copies the live instance's log files to `dir`, as they are now: what survives of a
    /// server whose database is lost.
    fn save_live_logs(&self, dir: &str) {
        self.vfs.create_dir_all(Path::new(dir)).unwrap();
        for name in self.vfs.list(Path::new("inst")).unwrap() {
            if name.ends_with(".log") {
                let bytes = read_all(&self.vfs, Path::new("inst").join(&name));
                write_all(&self.vfs, Path::new(dir).join(&name), &bytes);
            }
        }
    }

    /// The commit records of the backup set's logs: where each begins, its time.
    fn set_commits(&self) -> Vec<(Lgpos, u64)> {
        let set = Path::new("bk").join("set-00000001");
        let mut names = self.vfs.list(&set).unwrap();
        names.sort();
        let mut out = Vec::new();
        for name in names.iter().filter(|n| n.ends_with(".log")) {
            let bytes = read_all(&self.vfs, set.join(name));
            let scan = jetlog::scan(&bytes, name).unwrap();
            for (at, record) in scan.records {
                if let Record::Commit(c) = record {
                    out.push((at, c.millis));
                }
            }
        }
        out
    }
}

fn env(vfs: &MemVfs, clock: &Arc<ManualClock>) -> Env {
    Env::new(
        Arc::new(vfs.clone()),
        clock.clone(),
        Arc::new(SeededEntropy::new(1)),
    )
}

fn until(point: RestorePoint) -> RestoreOptions {
    RestoreOptions {
        until: Some(point),
        ..RestoreOptions::default()
    }
}

fn kind<T: std::fmt::Debug>(result: jetdb::Result<T>) -> ErrorKind {
    result.expect_err("refused").kind()
}

/// Every file under `dir`, directories left out.
fn files(vfs: &MemVfs, dir: &str) -> Vec<String> {
    tree(vfs, Path::new(dir))
        .into_iter()
        .filter(|(_, content)| content.is_some())
        .map(|(name, _)| name)
        .collect()
}


impl History {
    /// The time of the last commit at or before `millis`.
    fn at_time(&self, millis: u64) -> u64 {
        self.commits
            .iter()
            .rev()
            .find(|(at, _)| *at <= millis)
            .expect("a commit before")
            .0
    }

    /// The commit records of the log files in `dir`: where each begins, its time.
    fn commits_in(&self, dir: &str) -> Vec<(Lgpos, u64)> {
        let mut names = self.vfs.list(Path::new(dir)).unwrap();
        names.retain(|n| n.ends_with(".log") && n != "edbtmp.log");
        let mut out = Vec::new();
        for name in names {
            let bytes = read_all(&self.vfs, Path::new(dir).join(&name));
            let scan = jetlog::scan(&bytes, &name).unwrap();
            for (at, record) in scan.records {
                if let Record::Commit(c) = record {
                    out.push((at, c.millis));
                }
            }
        }
        out.sort();
        out
    }
}

fn roll(dir: &str, until: Option<RestorePoint>) -> RestoreOptions {
    RestoreOptions {
        until,
        roll_forward: Some(dir.into()),
        ..RestoreOptions::default()
    }
}

/// The live instance shut down cleanly (its edb.log's blank tail released): a roll forward
/// reaches its last commit, and a point inside its edb.log lands where it should.
#[test]
fn review_roll_forward_through_a_cleanly_shut_down_instance() {
    let mut h = History::with_backups(1);
    h.commit(70);
    h.inst.term().unwrap();
    h.save_live_logs("live");
    let last = h.commits.last().unwrap().clone();
    let (summary, held) = h.restore("rf", &roll("live", None)).unwrap();
    assert_eq!(held, last.1);
    assert_eq!(summary.commit_millis, Some(last.0));
    for (i, back) in [2usize, 5, 30].into_iter().enumerate() {
        let t = h.commits[h.commits.len() - back].0;
        let (summary, held) = h
            .restore(&format!("rft{i}"), &roll("live", Some(RestorePoint::Time(t))))
            .unwrap();
        assert_eq!(&held, h.at(t), "until {t}");
        assert_eq!(summary.commit_millis, Some(t));
    }
    // Every live commit position, and the byte after the last one's record.
    let live = h.commits_in("live");
    for (i, (at, millis)) in live.iter().rev().take(12).enumerate() {
        let (summary, held) = h
            .restore(&format!("rfp{i}"), &roll("live", Some(RestorePoint::Lgpos(*at))))
            .unwrap();
        assert_eq!(&held, h.at(*millis), "until {at}");
        assert_eq!(summary.position, Some(*at));
    }
}

/// A point in a live generation that holds no commit (the log just rolled): it lands on the
/// last commit of the generation before.
#[test]
fn review_a_point_in_a_live_generation_without_commits() {
    let mut h = History::with_backups(0);
    h.commit(45);
    // A backup elsewhere rolls the live log: its edb.log is a new generation, empty.
    h.inst
        .backup(Some(Path::new("elsewhere")), BackupFlags::NONE, None)
        .unwrap();
    h.save_live_logs("live");
    let last = h.commits.last().unwrap().clone();
    let current = jetlog::scan(&read_all(&h.vfs, "live/edb.log"), "edb.log").unwrap();
    let g = current.header.generation;
    let live = h.commits_in("live");
    assert!(live.iter().all(|(at, _)| at.generation < g));
    let (summary, held) = h.restore("none", &roll("live", None)).unwrap();
    assert_eq!(held, last.1);
    assert_eq!(summary.commit_millis, Some(last.0));
    for (i, offset) in [0u32, 0x1020, current.end.offset].into_iter().enumerate() {
        let p = Lgpos { generation: g, offset };
        let (summary, held) = h
            .restore(&format!("p{i}"), &roll("live", Some(RestorePoint::Lgpos(p))))
            .unwrap_or_else(|e| panic!("until {p}: {e}"));
        assert_eq!(held, last.1, "until {p}");
        assert_eq!(summary.commit_millis, Some(last.0), "until {p}");
    }
    // A time after the last commit but with no commit past it: -553.
    let t = last.0 + 1;
    assert_eq!(
        kind(h.restore("t", &roll("live", Some(RestorePoint::Time(t))))),
        ErrorKind::EndingRestoreLogTooLow
    );
    assert_eq!(files(&h.vfs, "t"), Vec::<String>::new());
}

/// A full backup whose point came before the set's first generation (a checkpoint right
/// after a roll): a point between its point and the first commit after lands on it.
#[test]
fn review_a_point_on_a_full_backup_whose_last_commit_precedes_its_logs() {
    let mut h = History::new();
    h.commit(30);
    // Roll the log (a backup elsewhere), then checkpoint: the checkpoint is at the start of a
    // generation that holds no commit.
    h.clock.advance(TICK_NANOS);
    h.inst
        .backup(Some(Path::new("elsewhere")), BackupFlags::NONE, None)
        .unwrap();
    h.clock.advance(TICK_NANOS);
    h.inst.checkpoint().unwrap();
    let chk = h.inst.checkpoint_position().unwrap().unwrap();
    h.backup(BackupFlags::NONE);
    let full_last = h.commits.last().unwrap().clone();
    h.commit(30);
    h.backup(BackupFlags::INCREMENTAL);
    h.commit(10);
    let set = h.set_commits();
    assert!(
        set.first().unwrap().1 > full_last.0,
        "checkpoint {chk}, first commit of the set {:?}, full point {}",
        set.first(),
        full_last.0
    );
    let first_gen = {
        let setdir = Path::new("bk").join("set-00000001");
        h.vfs
            .list(&setdir)
            .unwrap()
            .iter()
            .filter_map(|n| jetlog::parse_archive_name("edb", n))
            .min()
            .unwrap()
    };
    // Lgpos: the first generation's start.
    let p = Lgpos { generation: first_gen, offset: 0 };
    let (summary, held) = h
        .restore("lg", &until(RestorePoint::Lgpos(p)))
        .unwrap_or_else(|e| panic!("until {p}: {e}"));
    assert_eq!(held, full_last.1);
    assert_eq!(summary.position, None);
    // Times between the full backup's point and the first commit after it.
    // (The first generation's creation time itself: the boundary `find_landing` takes.)
    let first_created = jetlog::scan(
        &read_all(&h.vfs, Path::new("bk").join("set-00000001").join(jetlog::archive_name("edb", first_gen))),
        "first",
    )
    .unwrap()
    .header
    .created_millis;
    assert!(first_created > full_last.0 && first_created < set[0].1);
    for (i, t) in [first_created, h.backups[0], set[0].1 - 1]
        .into_iter()
        .enumerate()
    {
        let r = h.restore(&format!("t{i}"), &until(RestorePoint::Time(t)));
        match r {
            Ok((_, held)) => assert_eq!(held, full_last.1, "until {t}"),
            Err(e) => panic!("until {t} (full point {}, set first commit {}): {e}", full_last.0, set[0].1),
        }
    }
}

/// A restore to a point with a roll forward, its every operation on the destination (and
/// every read) failed in turn: each failure is an error (not a panic) and leaves nothing in
/// the destination; a restore into it then gives the point's contents.
#[test]
fn review_a_failure_at_any_step_of_a_restore_to_a_point_leaves_nothing() {
    use support::{HookedVfs, Op, Script};
    let mut h = History::with_backups(1);
    h.commit(40);
    h.save_live_logs("live");
    let live = h.commits_in("live");
    let current_gen = jetlog::scan(&read_all(&h.vfs, "live/edb.log"), "edb.log")
        .unwrap()
        .header
        .generation;
    // A point in the live edb.log (cut), and one in the set.
    let in_current = live
        .iter()
        .rev()
        .find(|(at, _)| at.generation == current_gen)
        .copied()
        .expect("a commit in the live edb.log");
    let in_set = h.set_commits()[h.set_commits().len() - 5];
    for (which, (at, millis)) in [in_current, in_set].into_iter().enumerate() {
        let options = roll("live", Some(RestorePoint::Lgpos(at)));
        let script = Arc::new(Script::default());
        let hooked = HookedVfs {
            inner: h.vfs.clone(),
            hook: script.clone(),
        };
        let env = Env::new(
            Arc::new(hooked),
            h.clock.clone(),
            Arc::new(SeededEntropy::new(1)),
        );
        let mut n = 0usize;
        loop {
            let to = format!("f{which}");
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let c = count.clone();
            script.set(move |op: &Op| {
                let i = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i == n {
                    Err(std::io::Error::other(format!("injected at {op:?}")))
                } else {
                    Ok(())
                }
            });
            let inst = Instance::new(env.clone(), backup_params(&to));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inst.restore_with(Path::new("bk"), &options, None)
            }));
            script.clear();
            let result = result.unwrap_or_else(|_| panic!("op {n}: a panic"));
            let ops = count.load(std::sync::atomic::Ordering::SeqCst);
            match result {
                Ok(_) => {
                    assert!(ops <= n, "op {n} of {ops} failed, and the restore succeeded");
                    break;
                }
                Err(err) => {
                    let left = files(&h.vfs, &to);
                    assert_eq!(left, Vec::<String>::new(), "op {n} failed ({err}): left {left:?}");
                }
            }
            // And a restore into it afterwards gives the point.
            if n % 25 == 0 {
                let (_, held) = h
                    .restore(&to, &options)
                    .unwrap_or_else(|e| panic!("after op {n}: {e}"));
                assert_eq!(&held, h.at(millis));
                for name in files(&h.vfs, &to) {
                    h.vfs.remove(&Path::new(&to).join(name)).unwrap();
                }
            }
            n += 1;
        }
        assert!(n > 30, "{n} operations");
    }
}

/// The full backup's point commit in a generation before the backup's last (the log rolled
/// in between, with no commit): a point at that commit lands on it.
#[test]
fn review_a_point_at_the_full_backups_commit_a_generation_before_its_last() {
    let mut h = History::new();
    h.commit(30);
    h.clock.advance(TICK_NANOS);
    h.inst
        .backup(Some(Path::new("elsewhere")), BackupFlags::NONE, None)
        .unwrap();
    h.clock.advance(TICK_NANOS);
    h.backup(BackupFlags::NONE);
    let full_last = h.commits.last().unwrap().clone();
    h.commit(30);
    h.backup(BackupFlags::INCREMENTAL);
    h.commit(10);
    let set = h.set_commits();
    let (at, millis) = *set.iter().find(|(_, m)| *m == full_last.0).unwrap();
    for (i, point) in [RestorePoint::Time(millis), RestorePoint::Lgpos(at), RestorePoint::Time(h.backups[0])]
        .into_iter()
        .enumerate()
    {
        let (summary, held) = h
            .restore(&format!("p{i}"), &until(point))
            .unwrap_or_else(|e| panic!("until {point:?}: {e}"));
        assert_eq!(held, full_last.1, "until {point:?}");
        assert_eq!(summary.position, Some(at), "until {point:?}");
        // And it goes on as an instance, and restarts.
        let inst = Instance::new(env(&h.vfs, &h.clock), backup_params(format!("p{i}")));
        inst.init().unwrap();
        let mut s = inst.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        for k in 0..50u32 {
            h.clock.advance(TICK_NANOS);
            s.begin_transaction().unwrap();
            s.put(t, b"after", &k.to_le_bytes()).unwrap();
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        drop(s);
        inst.term().unwrap();
        inst.init().unwrap();
        inst.term().unwrap();
    }
}

/// The live instance went on with another log file size: a roll forward through generations
/// of both sizes, to its end and to points in each, into an instance of a third size.
#[test]
fn review_roll_forward_through_live_logs_of_another_size() {
    let mut h = History::with_backups(0);
    h.commit(20);
    h.inst.term().unwrap();
    let bigger = jetdb::InstanceParams {
        log_file_size: 256 * 1024,
        ..backup_params("inst")
    };
    h.inst = Instance::new(env(&h.vfs, &h.clock), bigger);
    h.inst.init().unwrap();
    h.commit(80);
    h.save_live_logs("live");
    let last = h.commits.last().unwrap().clone();
    let third = |to: &str| jetdb::InstanceParams {
        log_file_size: 192 * 1024,
        ..backup_params(to)
    };
    let restore = |to: &str, options: &RestoreOptions| -> jetdb::Result<(RestoreSummary, Contents)> {
        let inst = Instance::new(env(&h.vfs, &h.clock), third(to));
        let summary = inst.restore_with(Path::new("bk"), options, None)?;
        inst.init()?;
        inst.check_integrity()?;
        let held = contents(&inst);
        inst.term()?;
        Ok((summary, held))
    };
    let (_, held) = restore("rf", &roll("live", None)).unwrap();
    assert_eq!(held, last.1);
    let full = h.at_time(h.backups[0]);
    let live: Vec<_> = h.commits_in("live").into_iter().filter(|(_, m)| *m >= full).collect();
    assert!(live.len() > 80);
    for (i, (at, millis)) in live.iter().rev().step_by(9).enumerate() {
        let (summary, held) = restore(&format!("p{i}"), &roll("live", Some(RestorePoint::Lgpos(*at))))
            .unwrap_or_else(|e| panic!("until {at}: {e}"));
        assert_eq!(&held, h.at(*millis), "until {at}");
        assert_eq!(summary.position, Some(*at));
    }
}

/// The live instance crashed with its last group torn, recovered (a restart segment) and went
/// on: a roll forward to every commit around the restart lands on it.
#[test]
fn review_points_around_a_restart_segment_in_the_live_log() {
    let mut h = History::with_backups(0);
    h.commit(8);
    // A group spanning segments, durable, then the crash image with its last segment torn:
    // groups until the last one begins a segment before its commit record, in edb.log.
    for round in 0..20u32 {
        {
            let mut s = h.inst.begin_session().unwrap();
            let t = s.open_table("t").unwrap();
            h.clock.advance(TICK_NANOS);
            s.begin_transaction().unwrap();
            for j in 0..4u32 {
                s.put(t, &key(10_000 + round * 10 + j), &vec![b'x'; 1500]).unwrap();
            }
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        h.remember();
        let scan = jetlog::scan(&read_all(&h.vfs, "inst/edb.log"), "edb.log").unwrap();
        let n = scan.records.len();
        if n >= 5 && scan.records[n - 5].0.offset / 4096 < scan.records[n - 1].0.offset / 4096 {
            break;
        }
    }
    h.commits.pop(); // the torn one
    h.vfs.create_dir_all(Path::new("inst2")).unwrap();
    for (name, bytes) in tree(&h.vfs, Path::new("inst")) {
        if let Some(bytes) = bytes {
            write_all(&h.vfs, Path::new("inst2").join(&name), &bytes);
        }
    }
    let log = Path::new("inst2").join("edb.log");
    let mut bytes = read_all(&h.vfs, &log);
    let scan = jetlog::scan(&bytes, "edb.log").unwrap();
    let last_commit = scan.records.last().unwrap().0.offset as usize / 4096;
    let used = scan.segments_used as usize;
    assert!(last_commit <= used);
    bytes[last_commit * 4096..(used + 1) * 4096].fill(0);
    write_all(&h.vfs, &log, &bytes);
    let torn = jetlog::scan(&bytes, "edb.log").unwrap();
    assert!(
        matches!(torn.tail, jetlog::LogTail::Torn { .. }),
        "{:?} used {used} records {:?} gen {}",
        torn.tail,
        scan.records.iter().map(|(at, r)| (at.offset, matches!(r, Record::Commit(_)))).collect::<Vec<_>>(),
        scan.header.generation
    );
    h.inst.term().unwrap();
    h.inst = Instance::new(env(&h.vfs, &h.clock), backup_params("inst2"));
    h.inst.init().unwrap();
    assert_eq!(contents(&h.inst), h.commits.last().unwrap().1, "the torn group is gone");
    h.commit(12);
    h.vfs.create_dir_all(Path::new("live")).unwrap();
    for name in h.vfs.list(Path::new("inst2")).unwrap() {
        if name.ends_with(".log") {
            let bytes = read_all(&h.vfs, Path::new("inst2").join(&name));
            write_all(&h.vfs, Path::new("live").join(&name), &bytes);
        }
    }
    let restarts: Vec<Lgpos> = h
        .vfs
        .list(Path::new("live"))
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".log"))
        .flat_map(|n| jetlog::scan(&read_all(&h.vfs, Path::new("live").join(n)), n).unwrap().restarts)
        .collect();
    assert!(!restarts.is_empty(), "a restart segment");
    let full = h.at_time(h.backups[0]);
    let live: Vec<_> = h.commits_in("live").into_iter().filter(|(_, m)| *m >= full).collect();
    for (i, (at, millis)) in live.iter().rev().take(16).enumerate() {
        for (j, point) in [RestorePoint::Lgpos(*at), RestorePoint::Time(*millis)].into_iter().enumerate() {
            if j == 1 && i == 0 {
                continue;
            }
            let (summary, held) = h
                .restore(&format!("p{i}-{j}"), &roll("live", Some(point)))
                .unwrap_or_else(|e| panic!("until {point:?}: {e}"));
            assert!(&held == h.at(*millis), "until {point:?}: other contents");
            assert_eq!(summary.position, Some(*at));
        }
    }
    let (_, held) = h.restore("all", &roll("live", None)).unwrap();
    assert!(held == h.commits.last().unwrap().1);
}

/// FINDING (false refusal, -554): a full backup whose last commit came before the set's first
/// generation; a time at that commit (or between it and the first generation's creation) names
/// exactly the full backup's state, yet is refused as "before the full backup's point", whose
/// message then gives the backup's begin time as the point's. A time at the full backup's
/// commit is accepted when that commit is inside the set's logs.
#[test]
#[ignore = "finding: a time at the full backup's point is refused when its commit precedes the set's logs"]
fn review_a_time_at_the_full_backups_commit_before_its_logs_lands_on_it() {
    let mut h = History::new();
    h.commit(30);
    h.clock.advance(TICK_NANOS);
    h.inst
        .backup(Some(Path::new("elsewhere")), BackupFlags::NONE, None)
        .unwrap();
    h.clock.advance(TICK_NANOS);
    h.inst.checkpoint().unwrap();
    h.backup(BackupFlags::NONE);
    let full_last = h.commits.last().unwrap().clone();
    h.commit(30);
    h.backup(BackupFlags::INCREMENTAL);
    for (i, t) in [full_last.0, full_last.0 + 5].into_iter().enumerate() {
        let (summary, held) = h
            .restore(&format!("t{i}"), &until(RestorePoint::Time(t)))
            .unwrap_or_else(|e| panic!("until {t} (the full backup's last commit at {}): {e}", full_last.0));
        assert!(held == full_last.1, "until {t}");
        assert_eq!(summary.position, None);
    }
}
