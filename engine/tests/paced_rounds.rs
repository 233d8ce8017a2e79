//! The checkpoint written in pieces after commits (the pager's rounds), under crashes: a
//! workload built to keep rounds running while everything else happens — many small commits
//! with a shallow checkpoint depth, the smallest cache, values in overflow chains, range
//! deletes that merge and free frozen pages, pages freed while frozen and allocated again,
//! tables created and deleted, backups begun, stepped and finished between the commits of a
//! round, explicit checkpoints, log flushes, term and init again.
//!
//! The process is killed at the Nth write, fsync, rename, create or remove (every later call
//! fails), then power is lost (each unsynced write applied, dropped or torn sector by sector;
//! each directory's unsynced entries kept as a prefix or a random subset). Recovery must then
//! hold a prefix of the commits that includes every one acknowledged durable, the database
//! whole, and every backup that finished before the crash must restore to exactly the
//! commits before its begin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jetdb::{BackupFlags, CommitMode, Instance, InstanceParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod support;

use support::crash_disk::CrashVfs;
use support::{PAGE, base_params, env_with};

// --- the workload ---

/// Every table's records.
type State = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Clone, Copy, Debug)]
struct Shape {
    circular: bool,
    depth: u64,
    cycles: u64,
    page: usize,
    log_file: u64,
}

fn params(shape: Shape) -> InstanceParams {
    InstanceParams {
        page_size: shape.page,
        log_file_size: shape.log_file,
        cache_size: 64 * shape.page,
        checkpoint_depth: shape.depth,
        circular_logging: shape.circular,
        create_path_if_not_exist: true,
        ..base_params("inst")
    }
}

fn key(rng: &mut ChaCha8Rng) -> Vec<u8> {
    format!("k{:04}", rng.random_range(0..1500)).into_bytes()
}

fn value(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = match rng.random_range(0..20) {
        0 => rng.random_range(3000..12000),
        1..=8 => rng.random_range(400..1000),
        _ => rng.random_range(1..200),
    };
    let b: u8 = rng.random();
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

/// A backup that finished: its directory and the commits it holds.
#[derive(Debug)]
struct Finished {
    dir: String,
    state: State,
}

struct Outcome {
    history: Vec<State>,
    durable: usize,
    maybe: Option<State>,
    backups: Vec<Finished>,
}

/// `result`'s value; an error only when the disk has stopped (the crash explains it), else
/// the test fails: nothing else in the workload may fail.
fn ok<T>(vfs: &CrashVfs, result: jetdb::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            assert!(vfs.dead(), "an error with no crash to explain it: {err}");
            None
        }
    }
}

/// Runs the workload of `seed` on `vfs` until it ends or the disk stops.
fn workload(seed: u64, vfs: &CrashVfs) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = shape_of(seed);
    let mut out = Outcome {
        history: vec![State::new()],
        durable: 0,
        maybe: None,
        backups: Vec::new(),
    };
    let mut backup_no = 0;
    let mut dropped = false;
    'work: for cycle in 0..shape.cycles {
        let instance = Instance::new(env_with(vfs.clone(), 1 + cycle, 1 + cycle), params(shape));
        if ok(vfs, instance.init()).is_none() {
            break 'work;
        }
        if dropped {
            // The last instance was dropped without term: lazy commits since the last flush
            // may be gone. What recovery kept is the history from here.
            let Some(got) = ok(vfs, contents(&instance)) else {
                break 'work;
            };
            let n = (out.durable..out.history.len())
                .find(|&n| out.history[n] == got)
                .unwrap_or_else(|| {
                    panic!(
                        "seed {seed}: recovery after a process crash kept {} (durable {}, last {})",
                        brief(&got),
                        brief(&out.history[out.durable]),
                        brief(out.history.last().unwrap())
                    )
                });
            out.history.truncate(n + 1);
            dropped = false;
        }
        let Some(mut s) = ok(vfs, instance.begin_session()) else {
            break 'work;
        };
        if cycle == 0 {
            if ok(vfs, s.create_table("t")).is_none() {
                out.maybe = Some(State::from([("t".to_string(), BTreeMap::new())]));
                break 'work;
            }
            out.history
                .push(State::from([("t".to_string(), BTreeMap::new())]));
            out.durable = out.history.len() - 1;
            // A load to make the database several times the cache.
            let mut state = out.history.last().unwrap().clone();
            let rows = state.get_mut("t").unwrap();
            let Some(t) = ok(vfs, s.open_table("t")) else {
                break 'work;
            };
            if ok(vfs, s.begin_transaction()).is_none() {
                break 'work;
            }
            for i in 0..600u32 {
                let k = format!("k{:04}", (i * 7) % 1500).into_bytes();
                let v = vec![i as u8; 600 + (i as usize * 13) % 700];
                if ok(vfs, s.put(t, &k, &v)).is_none() {
                    break 'work;
                }
                rows.insert(k, v);
            }
            if ok(vfs, s.commit_transaction(CommitMode::Lazy)).is_none() {
                out.maybe = Some(state);
                break 'work;
            }
            out.history.push(state);
        }
        let mut job: Option<(jetdb::BackupJob<'static>, String, State)> = None;
        for _ in 0..rng.random_range(60..160) {
            let mut state = out.history.last().unwrap().clone();
            let roll = rng.random_range(0..100);
            if roll < 3 {
                // A second table, created or deleted (each its own durable group).
                let exists = state.contains_key("u");
                let result = if exists {
                    state.remove("u");
                    s.delete_table("u")
                } else {
                    state.insert("u".into(), BTreeMap::new());
                    s.create_table("u").map(|_| ())
                };
                if ok(vfs, result).is_none() {
                    out.maybe = Some(state);
                    break 'work;
                }
                out.history.push(state);
                out.durable = out.history.len() - 1;
                continue;
            }
            if roll < 6 && job.is_none() {
                let dir = format!("bk{backup_no}");
                backup_no += 1;
                let snapshot = out.history.last().unwrap().clone();
                match instance.begin_backup(Some(Path::new(&dir)), BackupFlags::NONE, None) {
                    Ok(mut j) => {
                        j.set_step_size(rng.random_range(4..48) * PAGE);
                        // The begin rolled the log: every commit before it is durable.
                        out.durable = out.history.len() - 1;
                        job = Some((j, dir, snapshot));
                    }
                    Err(err) => {
                        ok::<()>(vfs, Err(err));
                        break 'work;
                    }
                }
                continue;
            }
            if roll < 20
                && let Some((j, _, _)) = &mut job
            {
                for _ in 0..rng.random_range(1..4) {
                    match j.step() {
                        Ok(true) => {}
                        Ok(false) => {
                            let (j, dir, state) = job.take().unwrap();
                            match j.finish() {
                                Ok(_) => out.backups.push(Finished { dir, state }),
                                Err(err) => {
                                    ok::<()>(vfs, Err(err));
                                    break 'work;
                                }
                            }
                            break;
                        }
                        Err(err) => {
                            ok::<()>(vfs, Err(err));
                            break 'work;
                        }
                    }
                }
                continue;
            }
            if roll < 22 {
                if ok(vfs, instance.checkpoint()).is_none() {
                    break 'work;
                }
                out.durable = out.history.len() - 1;
                continue;
            }
            if roll < 24 {
                if ok(vfs, instance.flush_log()).is_none() {
                    break 'work;
                }
                out.durable = out.history.len() - 1;
                continue;
            }
            // A transaction.
            let tables: Vec<String> = state.keys().cloned().collect();
            if ok(vfs, s.begin_transaction()).is_none() {
                break 'work;
            }
            let ops = if rng.random_bool(0.1) {
                rng.random_range(20..120)
            } else {
                rng.random_range(1..6)
            };
            for _ in 0..ops {
                let name = &tables[rng.random_range(0..tables.len())];
                let Some(t) = ok(vfs, s.open_table(name)) else {
                    break 'work;
                };
                let rows = state.get_mut(name).unwrap();
                match rng.random_range(0..10) {
                    0 => {
                        // A range of keys deleted: leaves merge, chains and pages freed.
                        let from = key(&mut rng);
                        let doomed: Vec<Vec<u8>> = rows
                            .range(from..)
                            .take(rng.random_range(5..60))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            if ok(vfs, s.delete(t, &k)).is_none() {
                                break 'work;
                            }
                            rows.remove(&k);
                        }
                    }
                    1 | 2 => {
                        let k = key(&mut rng);
                        if ok(vfs, s.delete(t, &k)).is_none() {
                            break 'work;
                        }
                        rows.remove(&k);
                    }
                    _ => {
                        let (k, v) = (key(&mut rng), value(&mut rng));
                        if ok(vfs, s.put(t, &k, &v)).is_none() {
                            break 'work;
                        }
                        rows.insert(k, v);
                    }
                }
            }
            let mode = if rng.random_bool(0.7) {
                CommitMode::Lazy
            } else {
                CommitMode::Durable
            };
            if ok(vfs, s.commit_transaction(mode)).is_none() {
                out.maybe = Some(state);
                break 'work;
            }
            out.history.push(state);
            if mode == CommitMode::Durable {
                out.durable = out.history.len() - 1;
            }
        }
        if let Some((mut j, dir, state)) = job.take() {
            // Finish it, or leave it abandoned.
            if rng.random_bool(0.5) {
                loop {
                    match j.step() {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(err) => {
                            ok::<()>(vfs, Err(err));
                            break 'work;
                        }
                    }
                }
                match j.finish() {
                    Ok(_) => out.backups.push(Finished { dir, state }),
                    Err(err) => {
                        ok::<()>(vfs, Err(err));
                        break 'work;
                    }
                }
            }
        }
        drop(s);
        if std::env::var("PACED_VERBOSE").is_ok()
            && let Ok(stats) = instance.stats()
        {
            let header = instance.database_header().unwrap();
            eprintln!(
                "seed {seed} cycle {cycle}: {} commits, {} backups, {} pages, checkpoints {}, pages written {}, rolls {}, logs deleted {}, cache {}/{} pinned {}",
                out.history.len(),
                out.backups.len(),
                header.page_count,
                stats.checkpoints,
                stats.database_pages_written,
                stats.log_rolls,
                stats.logs_deleted,
                stats.cache_pages,
                stats.cache_pages_max,
                stats.cache_pages_pinned
            );
        }
        if rng.random_bool(0.2) {
            // Dropped without term: a crash of the process, the disk going on.
            drop(instance);
            dropped = true;
            continue;
        }
        if ok(vfs, instance.term()).is_some() {
            out.durable = out.history.len() - 1;
        } else {
            break 'work;
        }
    }
    out
}

fn shape_of(seed: u64) -> Shape {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    Shape {
        circular: rng.random_bool(0.5),
        depth: [24, 48, 96, 192][rng.random_range(0..4)] * 1024,
        cycles: rng.random_range(1..=3),
        page: if rng.random_bool(0.75) {
            PAGE
        } else {
            2 * PAGE
        },
        log_file: [128, 128, 256][rng.random_range(0..3)] * 1024,
    }
}

fn contents(instance: &Instance) -> jetdb::Result<State> {
    let mut s = instance.begin_session()?;
    let mut out = State::new();
    for name in s.table_names()? {
        let t = s.open_table(&name)?;
        let rows = s
            .range(t, .., false)?
            .collect::<jetdb::Result<BTreeMap<_, _>>>()?;
        out.insert(name, rows);
    }
    Ok(out)
}

fn brief(state: &State) -> String {
    state
        .iter()
        .map(|(t, rows)| format!("{t}:{}", rows.len()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Crashes the workload of `seed` at I/O operation `fuel`, loses power, recovers, and
/// checks the recovered commits and every finished backup.
fn crash_at(seed: u64, fuel: u64, clean: bool) {
    let vfs = CrashVfs::new(fuel);
    let mut out = workload(seed, &vfs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(fuel));
    let (after, _) = vfs.power_loss(&mut rng, clean);
    let ctx = format!("seed {seed} fuel {fuel} clean {clean} {:?}", shape_of(seed));
    let shape = shape_of(seed);
    let instance = Instance::new(env_with(after.clone(), 99, 99), params(shape));
    if let Err(err) = instance.init() {
        panic!("{ctx}: recovery failed: {err}");
    }
    let got = contents(&instance).unwrap_or_else(|err| panic!("{ctx}: reading: {err}"));
    if let Some(state) = out.maybe.take() {
        out.history.push(state);
    }
    let n = (out.durable..out.history.len()).find(|&n| out.history[n] == got);
    assert!(
        n.is_some(),
        "{ctx}: recovered {} is no prefix of the commits from {} (of {}): durable one {}, last {}",
        brief(&got),
        out.durable,
        out.history.len() - 1,
        brief(&out.history[out.durable]),
        brief(out.history.last().unwrap()),
    );
    instance
        .check_integrity()
        .unwrap_or_else(|err| panic!("{ctx}: integrity: {err}"));
    instance.term().unwrap();
    for (i, backup) in out.backups.iter().enumerate() {
        let dir = format!("restored{i}");
        let p = InstanceParams {
            create_path_if_not_exist: true,
            ..params(shape)
        };
        let p = InstanceParams {
            log_path: PathBuf::from(&dir),
            system_path: PathBuf::from(&dir),
            database_path: Path::new(&dir).join("data.edb"),
            ..p
        };
        let inst = Instance::new(env_with(after.clone(), 7, 7), p);
        inst.restore(Path::new(&backup.dir), None)
            .unwrap_or_else(|err| panic!("{ctx}: restore of {}: {err}", backup.dir));
        inst.init().unwrap();
        let restored = contents(&inst).unwrap();
        assert!(
            restored == backup.state,
            "{ctx}: {} restores {} but was begun at {}",
            backup.dir,
            brief(&restored),
            brief(&backup.state)
        );
        inst.check_integrity().unwrap();
        inst.term().unwrap();
    }
}

/// How many I/O operations the workload of `seed` makes, run to its end without a crash
/// (and checked there like any crash).
fn operations(seed: u64) -> u64 {
    let vfs = CrashVfs::new(u64::MAX / 2);
    workload(seed, &vfs);
    let used = vfs.used();
    crash_at(seed, u64::MAX / 2, true);
    used
}

fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Each seed's workload crashed at random points of its I/O, power lost or not.
#[test]
fn rounds_survive_crashes_anywhere() {
    let seeds = count("PACED_SEEDS", 16);
    let per_seed = count("PACED_CRASHES", 16);
    let first = count("PACED_FIRST", 0);
    for seed in first..first + seeds {
        let total = operations(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..per_seed {
            let fuel = rng.random_range(0..total);
            crash_at(seed, fuel, rng.random_bool(0.25));
        }
    }
}
