//! Restore to a point: a chosen backup of a set, a log position or a commit time, and a roll
//! forward through the live instance's logs. Each restore is compared with what the instance
//! held right after the commit it must land on: the tests keep a snapshot of every commit,
//! stamped by a clock that moves 10 ms before each, so a time names one commit exactly.

use std::path::Path;
use std::sync::Arc;

use jetdb::log::{self as jetlog, Record};
use jetdb::{
    BackupFlags, CommitMode, Env, ErrorKind, Instance, Lgpos, MemVfs, RestoreOptions, RestorePoint,
    SeededEntropy, Vfs,
};

mod support;

use support::history::{History, TICK_NANOS, env, files, kind, until};
use support::{backup_params, contents, key, read_all, tree, write_all};

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
    let inst = h.write_on("p", b"after", 40);
    let mut expected = held.clone();
    expected.insert(
        ("t".into(), b"after".to_vec()),
        39u32.to_le_bytes().to_vec(),
    );
    assert_eq!(contents(&inst), expected);
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
    let h = History::with_backups(1);
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
    h.write_on("p", b"fork", 70).term().unwrap();
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
fn roll_forward_through_a_cleanly_shut_down_instance() {
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
            .restore(
                &format!("rft{i}"),
                &roll("live", Some(RestorePoint::Time(t))),
            )
            .unwrap();
        assert_eq!(&held, h.at(t), "until {t}");
        assert_eq!(summary.commit_millis, Some(t));
    }
    // Every live commit position, and the byte after the last one's record.
    let live = h.commits_in("live");
    for (i, (at, millis)) in live.iter().rev().take(12).enumerate() {
        let (summary, held) = h
            .restore(
                &format!("rfp{i}"),
                &roll("live", Some(RestorePoint::Lgpos(*at))),
            )
            .unwrap();
        assert_eq!(&held, h.at(*millis), "until {at}");
        assert_eq!(summary.position, Some(*at));
    }
}

/// A point in a live generation that holds no commit (the log just rolled): it lands on the
/// last commit of the generation before.
#[test]
fn a_point_in_a_live_generation_without_commits() {
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
        let p = Lgpos {
            generation: g,
            offset,
        };
        let (summary, held) = h
            .restore(
                &format!("p{i}"),
                &roll("live", Some(RestorePoint::Lgpos(p))),
            )
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
fn a_point_on_a_full_backup_whose_last_commit_precedes_its_logs() {
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
    let p = Lgpos {
        generation: first_gen,
        offset: 0,
    };
    let (summary, held) = h
        .restore("lg", &until(RestorePoint::Lgpos(p)))
        .unwrap_or_else(|e| panic!("until {p}: {e}"));
    assert_eq!(held, full_last.1);
    assert_eq!(summary.position, None);
    // Times between the full backup's point and the first commit after it.
    // (The first generation's creation time itself: the boundary `find_landing` takes.)
    let first_created = jetlog::scan(
        &read_all(
            &h.vfs,
            Path::new("bk")
                .join("set-00000001")
                .join(jetlog::archive_name("edb", first_gen)),
        ),
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
            Err(e) => panic!(
                "until {t} (full point {}, set first commit {}): {e}",
                full_last.0, set[0].1
            ),
        }
    }
}

/// A restore to a point with a roll forward, its every operation on the destination (and
/// every read) failed in turn: each failure is an error (not a panic) and leaves nothing in
/// the destination; a restore into it then gives the point's contents.
#[test]
fn a_failure_at_any_step_of_a_restore_to_a_point_leaves_nothing() {
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
                    assert!(
                        ops <= n,
                        "op {n} of {ops} failed, and the restore succeeded"
                    );
                    break;
                }
                Err(err) => {
                    let left = files(&h.vfs, &to);
                    assert_eq!(
                        left,
                        Vec::<String>::new(),
                        "op {n} failed ({err}): left {left:?}"
                    );
                }
            }
            // And a restore into it afterwards gives the point.
            if n.is_multiple_of(25) {
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
fn a_point_at_the_full_backups_commit_a_generation_before_its_last() {
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
    for (i, point) in [
        RestorePoint::Time(millis),
        RestorePoint::Lgpos(at),
        RestorePoint::Time(h.backups[0]),
    ]
    .into_iter()
    .enumerate()
    {
        let (summary, held) = h
            .restore(&format!("p{i}"), &until(point))
            .unwrap_or_else(|e| panic!("until {point:?}: {e}"));
        assert_eq!(held, full_last.1, "until {point:?}");
        assert_eq!(summary.position, Some(at), "until {point:?}");
        // And it goes on as an instance, and restarts.
        let inst = h.write_on(&format!("p{i}"), b"after", 50);
        inst.term().unwrap();
        inst.init().unwrap();
        inst.term().unwrap();
    }
}

/// The live instance went on with another log file size: a roll forward through generations
/// of both sizes, to its end and to points in each, into an instance of a third size.
#[test]
fn roll_forward_through_live_logs_of_another_size() {
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
    let restore = |to: &str, options: &RestoreOptions| h.restore_into(third(to), options);
    let (_, held) = restore("rf", &roll("live", None)).unwrap();
    assert_eq!(held, last.1);
    let full = h.at_time(h.backups[0]);
    let live: Vec<_> = h
        .commits_in("live")
        .into_iter()
        .filter(|(_, m)| *m >= full)
        .collect();
    assert!(live.len() > 80);
    for (i, (at, millis)) in live.iter().rev().step_by(9).enumerate() {
        let (summary, held) = restore(
            &format!("p{i}"),
            &roll("live", Some(RestorePoint::Lgpos(*at))),
        )
        .unwrap_or_else(|e| panic!("until {at}: {e}"));
        assert_eq!(&held, h.at(*millis), "until {at}");
        assert_eq!(summary.position, Some(*at));
    }
}

/// The live instance crashed with its last group torn, recovered (a restart segment) and went
/// on: a roll forward to every commit around the restart lands on it.
#[test]
fn points_around_a_restart_segment_in_the_live_log() {
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
                s.put(t, &key(10_000 + round * 10 + j), &vec![b'x'; 1500])
                    .unwrap();
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
        scan.records
            .iter()
            .map(|(at, r)| (at.offset, matches!(r, Record::Commit(_))))
            .collect::<Vec<_>>(),
        scan.header.generation
    );
    h.inst.term().unwrap();
    h.inst = Instance::new(env(&h.vfs, &h.clock), backup_params("inst2"));
    h.inst.init().unwrap();
    assert_eq!(
        contents(&h.inst),
        h.commits.last().unwrap().1,
        "the torn group is gone"
    );
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
        .flat_map(|n| {
            jetlog::scan(&read_all(&h.vfs, Path::new("live").join(n)), n)
                .unwrap()
                .restarts
        })
        .collect();
    assert!(!restarts.is_empty(), "a restart segment");
    let full = h.at_time(h.backups[0]);
    let live: Vec<_> = h
        .commits_in("live")
        .into_iter()
        .filter(|(_, m)| *m >= full)
        .collect();
    for (i, (at, millis)) in live.iter().rev().take(16).enumerate() {
        for (j, point) in [RestorePoint::Lgpos(*at), RestorePoint::Time(*millis)]
            .into_iter()
            .enumerate()
        {
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

/// A known limitation (a false refusal, -554; see ARCHITECTURE.md, "A time names commits"): a full backup whose last commit came before the set's first
/// generation; a time at that commit (or between it and the first generation's creation) names
/// exactly the full backup's state, yet is refused as "before the full backup's point", whose
/// message then gives the backup's begin time as the point's. A time at the full backup's
/// commit is accepted when that commit is inside the set's logs.
#[test]
#[ignore = "finding: a time at the full backup's point is refused when its commit precedes the set's logs"]
fn a_time_at_the_full_backups_commit_before_its_logs_lands_on_it() {
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
            .unwrap_or_else(|e| {
                panic!(
                    "until {t} (the full backup's last commit at {}): {e}",
                    full_last.0
                )
            });
        assert!(held == full_last.1, "until {t}");
        assert_eq!(summary.position, None);
    }
}
