//! Restore to a point: a chosen backup of a set, a log position or a commit time, and a roll
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

#[test]
fn each_backup_of_a_chain_restores_to_its_own_point() {
    let h = History::with_backups(2);
    for k in 0..3 {
        let options = RestoreOptions {
            backups: Some(k),
            ..RestoreOptions::default()
        };
        let (summary, held) = h.restore(&format!("r{k}"), &options).unwrap();
        assert_eq!(&held, h.at(h.backups[k]), "backup {k}");
        assert_eq!(summary.backups, k + 1);
        assert_eq!(summary.commit_millis, Some(h.at_time(h.backups[k])));
    }
    // The default is the whole chain.
    let (_, held) = h.restore("all", &RestoreOptions::default()).unwrap();
    assert_eq!(&held, h.at(h.backups[2]));
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
}

#[test]
fn a_time_lands_on_the_last_commit_at_or_before_it() {
    let h = History::with_backups(1);
    let (full, last) = (h.backups[0], h.backups[1]);
    // Every commit time from the full backup's last commit to the last backup, and a time
    // between each two commits.
    let times: Vec<u64> = h
        .commits
        .iter()
        .map(|(at, _)| *at)
        .filter(|&at| at >= h.at_time(full) && at < last)
        .flat_map(|at| [at, at + 5])
        .filter(|&t| t < last)
        .collect();
    assert!(times.len() > 80, "{} times", times.len());
    for (i, &t) in times.iter().enumerate().step_by(7) {
        let (summary, held) = h
            .restore(&format!("t{i}"), &until(RestorePoint::Time(t)))
            .unwrap();
        assert_eq!(&held, h.at(t), "until {t} ms");
        assert_eq!(summary.commit_millis, Some(h.at_time(t)), "until {t} ms");
    }
}

#[test]
fn a_log_position_lands_on_the_last_commit_beginning_at_or_before_it() {
    let h = History::with_backups(1);
    let full = h.at_time(h.backups[0]);
    let commits: Vec<(Lgpos, u64)> = h
        .set_commits()
        .into_iter()
        .filter(|&(_, millis)| millis >= full)
        .collect();
    assert!(commits.len() > 40);
    for (i, w) in commits.windows(2).enumerate().step_by(5) {
        let ((at, millis), (next, _)) = (w[0], w[1]);
        // At the commit's own record, and just before the next one's: both land on it.
        let before_next = Lgpos {
            offset: next.offset.wrapping_sub(1),
            ..next
        };
        for (j, point) in [at, before_next].into_iter().enumerate() {
            if point.generation != next.generation && j == 1 {
                continue;
            }
            let (summary, held) = h
                .restore(&format!("p{i}-{j}"), &until(RestorePoint::Lgpos(point)))
                .unwrap();
            assert_eq!(&held, h.at(millis), "until {point}");
            assert_eq!(summary.position, Some(at));
        }
    }
}

#[test]
fn a_point_outside_what_the_set_covers_is_refused_and_leaves_nothing() {
    let h = History::with_backups(1);
    let cases = [
        (RestorePoint::Time(0), ErrorKind::StartingRestoreLogTooHigh),
        (
            RestorePoint::Time(h.at_time(h.backups[0]) - 5),
            ErrorKind::StartingRestoreLogTooHigh,
        ),
        (
            RestorePoint::Time(h.backups[1]),
            ErrorKind::EndingRestoreLogTooLow,
        ),
        (
            RestorePoint::Time(u64::MAX),
            ErrorKind::EndingRestoreLogTooLow,
        ),
        (
            RestorePoint::Lgpos(Lgpos {
                generation: 0x1000,
                offset: 0,
            }),
            ErrorKind::EndingRestoreLogTooLow,
        ),
        (
            RestorePoint::Lgpos(Lgpos {
                generation: 1,
                offset: 0,
            }),
            ErrorKind::StartingRestoreLogTooHigh,
        ),
    ];
    for (i, (point, expected)) in cases.into_iter().enumerate() {
        let dir = format!("x{i}");
        assert_eq!(
            kind(h.restore(&dir, &until(point))),
            expected,
            "until {point:?}"
        );
        assert_eq!(files(&h.vfs, &dir), Vec::<String>::new(), "until {point:?}");
    }
    for (options, what) in [
        (
            RestoreOptions {
                backups: Some(2),
                ..RestoreOptions::default()
            },
            "a backup the set does not hold",
        ),
        (
            RestoreOptions {
                backups: Some(0),
                roll_forward: Some("live".into()),
                ..RestoreOptions::default()
            },
            "a chosen backup with a roll forward",
        ),
    ] {
        assert_eq!(
            kind(h.restore("y", &options)),
            ErrorKind::InvalidParameter,
            "{what}"
        );
    }
}

#[test]
fn a_restored_point_goes_on_as_an_instance_and_backs_up_again() {
    let mut h = History::with_backups(1);
    let t = h.commits[60].0;
    let (summary, held) = h.restore("p", &until(RestorePoint::Time(t))).unwrap();
    assert_eq!(&held, h.at(t));
    assert_eq!(summary.commit_millis, Some(t));
    // The instance writes on in the generation it stopped in, past the cut.
    let inst = Instance::new(env(&h.vfs, &h.clock), backup_params("p"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let tb = s.open_table("t").unwrap();
    for i in 0..40u32 {
        h.clock.advance(TICK_NANOS);
        s.begin_transaction().unwrap();
        s.put(tb, b"after", &i.to_le_bytes()).unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
    }
    let mut expected = held.clone();
    expected.insert(
        ("t".into(), b"after".to_vec()),
        39u32.to_le_bytes().to_vec(),
    );
    assert_eq!(contents(&inst), expected);
    drop(s);
    inst.term().unwrap();
    // Recovery of it again (its log holds the cut generation and those after it), and a
    // backup of it that restores.
    inst.init().unwrap();
    assert_eq!(contents(&inst), expected);
    inst.backup(Some(Path::new("bk2")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
    let again = Instance::new(env(&h.vfs, &h.clock), backup_params("p2"));
    again.restore(Path::new("bk2"), None).unwrap();
    again.init().unwrap();
    assert_eq!(contents(&again), expected);
    again.term().unwrap();
    h.commit(1);
}

#[test]
fn a_roll_forward_reaches_the_last_durable_commit_of_the_live_logs() {
    let mut h = History::with_backups(1);
    h.commit(70); // several generations past the set
    h.save_live_logs("live");
    let last = h.commits.last().unwrap().clone();
    let options = RestoreOptions {
        roll_forward: Some("live".into()),
        ..RestoreOptions::default()
    };
    let (summary, held) = h.restore("rf", &options).unwrap();
    assert_eq!(held, last.1);
    assert_eq!(summary.commit_millis, Some(last.0));
    let (low, high) = summary.rolled_forward.expect("live generations replayed");
    assert!(high >= low + 2, "{low:#X}..{high:#X}");
    // And to a point among the live logs, or in the set, with the live logs at hand.
    for (i, back) in [3usize, 40, 100, 150].into_iter().enumerate() {
        let t = h.commits[h.commits.len() - back].0 + 5;
        let options = RestoreOptions {
            until: Some(RestorePoint::Time(t)),
            roll_forward: Some("live".into()),
            ..RestoreOptions::default()
        };
        let (summary, held) = h.restore(&format!("rft{i}"), &options).unwrap();
        assert_eq!(&held, h.at(t), "until {t}");
        assert_eq!(summary.commit_millis, Some(t - 5));
    }
    // A torn tail of the current file, as a crash leaves it, is dropped: what was durable
    // before it is replayed.
    let current = Path::new("live").join("edb.log");
    let mut bytes = read_all(&h.vfs, &current);
    let scan = jetlog::scan(&bytes, "edb.log").unwrap();
    let used = scan.segments_used as usize;
    bytes[(used + 1) * 4096 + 100] ^= 0xFF; // a segment past the end, never acknowledged
    write_all(&h.vfs, &current, &bytes);
    let options = RestoreOptions {
        roll_forward: Some("live".into()),
        ..RestoreOptions::default()
    };
    let (_, held) = h.restore("rf-torn", &options).unwrap();
    assert_eq!(held, last.1);
}

/// The generations of the live copy in `dir` past the set, ascending (edb.log left out).
fn live_archived(h: &History, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = h
        .vfs
        .list(Path::new(dir))
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("edb0"))
        .collect();
    names.sort();
    names
}

#[test]
fn live_logs_damaged_missing_foreign_or_out_of_order_are_refused_and_leave_nothing() {
    let mut h = History::with_backups(0);
    h.commit(90);
    let roll = |dir: &str| RestoreOptions {
        roll_forward: Some(dir.into()),
        ..RestoreOptions::default()
    };
    // The set's last generation: the live ones after it are what a roll forward reads.
    let set_high = h
        .vfs
        .list(&Path::new("bk").join("set-00000001"))
        .unwrap()
        .iter()
        .filter_map(|n| jetlog::parse_archive_name("edb", n))
        .max()
        .unwrap();
    let after = |h: &History, dir: &str| -> Vec<String> {
        live_archived(h, dir)
            .into_iter()
            .filter(|n| jetlog::parse_archive_name("edb", n).unwrap() > set_high)
            .collect()
    };
    type Damage = fn(&MemVfs, &Path, &[String]);
    let cases: [(&str, Damage, ErrorKind); 6] = [
        (
            "a generation missing",
            |vfs, dir, names| vfs.remove(&dir.join(&names[1])).unwrap(),
            ErrorKind::MissingCurrentLogFiles,
        ),
        (
            "damage a later segment shows was durable",
            |vfs, dir, names| {
                let path = dir.join(&names[0]);
                let mut bytes = read_all(vfs, &path);
                bytes[2 * 4096 + 64] ^= 0x01;
                write_all(vfs, &path, &bytes);
            },
            ErrorKind::LogCorruptDuringHardRecovery,
        ),
        (
            "an archived generation cut short",
            |vfs, dir, names| {
                let path = dir.join(&names[1]);
                let mut bytes = read_all(vfs, &path);
                let scan = jetlog::scan(&bytes, "x").unwrap();
                let from = scan.segments_used as usize * 4096;
                bytes[from..].fill(0);
                write_all(vfs, &path, &bytes);
            },
            ErrorKind::LogTornWriteDuringHardRecovery,
        ),
        (
            "a generation under another's name",
            |vfs, dir, names| {
                let bytes = read_all(vfs, dir.join(&names[2]));
                write_all(vfs, dir.join(&names[1]), &bytes);
            },
            ErrorKind::ExistingLogFileIsNotContiguous,
        ),
        (
            "a generation that does not follow the one before",
            |vfs, dir, names| {
                let path = dir.join(&names[1]);
                let mut bytes = read_all(vfs, &path);
                bytes[64] ^= 0x01; // its previous generation's creation time
                support::reseal_block(&mut bytes, 0);
                write_all(vfs, &path, &bytes);
            },
            ErrorKind::ExistingLogFileIsNotContiguous,
        ),
        (
            "the current file missing after its predecessor",
            |vfs, dir, names| {
                for name in &names[1..] {
                    vfs.remove(&dir.join(name)).unwrap();
                }
            },
            ErrorKind::MissingCurrentLogFiles,
        ),
    ];
    for (i, (what, damage, expected)) in cases.into_iter().enumerate() {
        let dir = format!("live{i}");
        h.save_live_logs(&dir);
        let names = after(&h, &dir);
        assert!(names.len() >= 3, "{names:?}");
        damage(&h.vfs, Path::new(&dir), &names);
        let to = format!("r{i}");
        assert_eq!(kind(h.restore(&to, &roll(&dir))), expected, "{what}");
        assert_eq!(files(&h.vfs, &to), Vec::<String>::new(), "{what}");
    }
    // Another database's logs, and a directory with no logs past the set.
    let other = Instance::new(env(&h.vfs, &h.clock), backup_params("other"));
    other.init().unwrap();
    other.term().unwrap();
    assert_eq!(
        kind(h.restore("f", &roll("other"))),
        ErrorKind::ExistingLogFileHasBadSignature
    );
    h.vfs.create_dir_all(Path::new("empty")).unwrap();
    assert_eq!(
        kind(h.restore("e", &roll("empty"))),
        ErrorKind::MissingCurrentLogFiles
    );
    assert_eq!(
        kind(h.restore("n", &roll("nowhere"))),
        ErrorKind::FileNotFound
    );
}

/// A restore to a point starts a history of its own: the generation it was cut in gets a new
/// creation time, so the restored instance's later generations are never taken for the
/// original's by a roll forward (the original's backup rolled forward through the restored
/// instance's logs is refused, not spliced).
#[test]
fn the_history_after_a_point_is_never_spliced_onto_the_original() {
    let mut h = History::with_backups(1);
    let commits = h.set_commits();
    let last_gen = commits.last().unwrap().0.generation;
    let in_last: Vec<_> = commits
        .iter()
        .filter(|(at, _)| at.generation == last_gen)
        .collect();
    assert!(
        in_last.len() >= 3,
        "{} commits in the last generation",
        in_last.len()
    );
    let (at, millis) = *in_last[in_last.len() / 2];
    let (_, held) = h.restore("p", &until(RestorePoint::Lgpos(at))).unwrap();
    assert_eq!(&held, h.at(millis));
    let inst = Instance::new(env(&h.vfs, &h.clock), backup_params("p"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in 0..70u32 {
        h.clock.advance(TICK_NANOS);
        s.begin_transaction().unwrap();
        s.put(t, b"fork", &i.to_le_bytes()).unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
    }
    drop(s);
    inst.term().unwrap();
    let roll = RestoreOptions {
        roll_forward: Some("p".into()),
        ..RestoreOptions::default()
    };
    assert_eq!(
        kind(h.restore("spliced", &roll)),
        ErrorKind::ExistingLogFileIsNotContiguous
    );
    assert_eq!(files(&h.vfs, "spliced"), Vec::<String>::new());
}
