//! The seed corpus: a few small inputs per target, chosen to reach the deep paths (a restore of
//! a whole backup set and its refusals, a resealed log segment that passes its checksum and
//! reaches replay, a lost page write, plans with backups, crashes during them and restores).
//! `cargo run -p jetsim --example fuzz-corpus` writes them to `fuzz/corpus/<target>/`;
//! `sim/tests/fuzz_corpus.rs` checks the checked-in files are these, so regenerate after
//! changing an input format.

use std::path::Path;

use crate::config::{Config, CorruptZone};
use crate::workload::{BACKUP_DIRS, BackupMode, LiveDamage, Plan, Step, Tamper};

use super::btree_ops::{Input, Key, Op};
use super::{damaged_backup, damaged_database, damaged_log, encode};

/// One seed input: its target, its file name, its bytes.
pub type Seed = (&'static str, &'static str, Vec<u8>);

/// Every seed input, target by target.
pub fn seeds() -> Vec<Seed> {
    let mut all = btree_ops();
    all.extend(damaged_backup());
    all.extend(damaged_database());
    all.extend(damaged_log());
    all.extend(sim_plan());
    all
}

fn btree_ops() -> Vec<Seed> {
    let key = |i: u16| Key(i, (i % 7) as u8 * 5);
    let put = |i: u16, len: u16| Op::Put {
        key: key(i),
        len,
        fill: i as u8,
    };
    let mut splits: Vec<Op> = (0..400).map(|i| put(i * 37 % 500, 40 + i % 300)).collect();
    splits.extend((0..100).map(|i| Op::Delete { key: key(i * 5) }));
    splits.extend((0..10).map(|i| Op::Seek {
        key: key(i * 53),
        mode: i as u8,
    }));
    splits.push(Op::Reopen);
    splits.extend((0..20).map(|i| Op::Get { key: key(i * 25) }));
    let long = vec![
        Op::PutLarge {
            key: key(1),
            pages: 3,
        },
        Op::PutLarge {
            key: key(2),
            pages: 39,
        },
        put(3, 5000),
        Op::Reopen,
        Op::Get { key: key(2) },
        Op::PutLarge {
            key: key(2),
            pages: 0,
        },
        Op::Delete { key: key(1) },
        Op::Seek {
            key: key(0),
            mode: 1,
        },
        Op::Seek {
            key: key(9),
            mode: 3,
        },
    ];
    let small = vec![
        put(1, 10),
        Op::Get { key: key(1) },
        Op::Delete { key: key(1) },
        Op::Get { key: key(1) },
    ];
    let mut big_pages: Vec<Op> = (0..150).map(|i| put(i * 3, 200 + i * 20)).collect();
    big_pages.extend([
        Op::Reopen,
        Op::Seek {
            key: key(100),
            mode: 4,
        },
        Op::Seek {
            key: key(100),
            mode: 2,
        },
    ]);
    let input = |page_shift: u8, tiny_cache: bool, ops: Vec<Op>| {
        encode::btree_ops(&Input {
            page_shift,
            tiny_cache,
            ops,
        })
    };
    vec![
        ("btree_ops", "empty", input(0, false, vec![])),
        ("btree_ops", "put-get-delete", input(0, false, small)),
        (
            "btree_ops",
            "splits-deletes-seeks-reopen",
            input(0, false, splits.clone()),
        ),
        ("btree_ops", "splits-without-cache", input(0, true, splits)),
        (
            "btree_ops",
            "long-values-reopen",
            input(0, false, long.clone()),
        ),
        ("btree_ops", "long-values-32k-pages", input(3, true, long)),
        ("btree_ops", "16k-pages-reopen", input(2, false, big_pages)),
    ]
}

/// The index of the first pristine file whose name satisfies `f`.
fn find<T>(names: impl Iterator<Item = T>, f: impl Fn(&T) -> bool) -> u8 {
    let i = names
        .enumerate()
        .find(|(_, n)| f(n))
        .map(|(i, _)| i)
        .expect("the file is in the set");
    u8::try_from(i).expect("few files")
}

fn damaged_backup() -> Vec<Seed> {
    use damaged_backup::Damage;
    let names = || damaged_backup::pristine().0.keys();
    let manifest = find(names(), |p| p.extension().is_some_and(|e| e == "manifest"));
    let db = find(names(), |p| p.extension().is_some_and(|e| e == "edb"));
    let full_log = find(names(), |p| p.ends_with("edb00000001.log"));
    let incremental_log = find(names(), |p| p.ends_with("edb00000002.log"));
    let d = |name: &'static str, damage: &[Damage]| {
        ("damaged_backup", name, encode::damaged_backup(damage))
    };
    let xor = |file: u8, at: u32, reseal: bool| Damage::Xor {
        file,
        at,
        mask: 0x10,
        reseal,
    };
    vec![
        d("whole", &[]),
        d("manifest-rot", &[xor(manifest, 40, false)]),
        d("manifest-resealed", &[xor(manifest, 40, true)]),
        d(
            "manifest-truncated",
            &[Damage::Truncate {
                file: manifest,
                len: 100,
            }],
        ),
        d("manifest-removed", &[Damage::Remove { file: manifest }]),
        d("database-copy-rot", &[xor(db, 5000, false)]),
        d(
            "database-copy-truncated",
            &[Damage::Truncate {
                file: db,
                len: 8192,
            }],
        ),
        d("full-log-rot", &[xor(full_log, 4096 + 300, false)]),
        d(
            "full-log-segment-resealed",
            &[xor(full_log, 4096 + 300, true)],
        ),
        d(
            "incremental-log-segment-resealed",
            &[xor(incremental_log, 4096 + 64, true)],
        ),
        d(
            "incremental-log-removed",
            &[Damage::Remove {
                file: incremental_log,
            }],
        ),
        d(
            "incremental-log-truncated",
            &[Damage::Truncate {
                file: incremental_log,
                len: 6000,
            }],
        ),
    ]
}

fn damaged_database() -> Vec<Seed> {
    use damaged_database::Damage;
    let changed = damaged_database::changed_pages();
    let stale = |i: usize| changed[i * changed.len() / 4] as u16;
    let d = |name: &'static str, damage: &[Damage]| {
        ("damaged_database", name, encode::damaged_database(damage))
    };
    let page = |p: u32| p * 4096;
    vec![
        d("sound", &[]),
        d("lost-write", &[Damage::Stale { page: stale(1) }]),
        d(
            "lost-writes",
            &[
                Damage::Stale { page: stale(2) },
                Damage::Stale { page: stale(3) },
            ],
        ),
        d(
            "page-rot",
            &[Damage::Xor {
                at: page(40) + 1000,
                mask: 1,
                reseal: false,
            }],
        ),
        d(
            "page-forged",
            &[Damage::Xor {
                at: page(40) + 1000,
                mask: 1,
                reseal: true,
            }],
        ),
        d("page-zeroed", &[Damage::ZeroPage { page: 30 }]),
        d(
            "page-copied-resealed",
            &[Damage::CopyPage {
                from: 20,
                to: 50,
                reseal: true,
            }],
        ),
        d("header-zeroed", &[Damage::ZeroPage { page: 0 }]),
        d("truncated", &[Damage::Truncate { len: page(60) }]),
    ]
}

fn damaged_log() -> Vec<Seed> {
    use damaged_log::Damage;
    let names = || damaged_log::pristine().keys();
    let db = find(names(), |n| n.ends_with(".edb"));
    let chk = find(names(), |n| n.ends_with(".chk"));
    let current = find(names(), |n| *n == "edb.log");
    let first = find(names(), |n| *n == "edb00000001.log");
    let d =
        |name: &'static str, damage: &[Damage]| ("damaged_log", name, encode::damaged_log(damage));
    let xor = |file: u8, at: u32, reseal: bool| Damage::Xor {
        file,
        at,
        mask: 0x04,
        reseal,
    };
    vec![
        d("crashed", &[]),
        d("archived-log-rot", &[xor(first, 4096 + 200, false)]),
        d(
            "archived-log-segment-resealed",
            &[xor(first, 4096 + 200, true)],
        ),
        d("archived-log-header-rot", &[xor(first, 100, false)]),
        d(
            "current-log-segment-resealed",
            &[xor(current, 4096 + 40, true)],
        ),
        d(
            "current-log-torn-tail",
            &[Damage::Truncate {
                file: current,
                len: 4096 * 3 + 100,
            }],
        ),
        d("checkpoint-removed", &[Damage::Remove { file: chk }]),
        d("checkpoint-rot", &[xor(chk, 30, false)]),
        d(
            "first-generation-removed",
            &[Damage::Remove { file: first }],
        ),
        d(
            "database-truncated",
            &[Damage::Truncate {
                file: db,
                len: 4096,
            }],
        ),
    ]
}

/// A seed whose swarm configuration keeps backups meaningful: archived logs (no circular
/// logging) and backup directories created on demand.
fn backup_seed() -> u64 {
    (1..)
        .find(|&s| {
            let c = Config::swarm(s);
            !c.circular_logging && c.create_backup_dirs && c.faults.is_empty() && c.sessions >= 2
        })
        .expect("some seed")
}

fn sim_plan() -> Vec<Seed> {
    let seed = backup_seed();
    let config = Config::swarm(seed);
    // A transaction of `n` puts; `v` numbers the values as `from_bytes` does, from 2 in each plan.
    let transaction = |v: &mut u32, n: u16, durable: bool| {
        let mut steps = vec![Step::Begin { s: 0 }];
        for i in 0..n {
            *v += 1;
            steps.push(Step::Put {
                s: 0,
                t: 0,
                k: (i * 7) % config.keys.min(256),
                v: *v,
                len: 20 + u32::from(i % 90),
            });
        }
        steps.push(Step::Commit { s: 0, durable });
        steps
    };
    let step_all = || vec![Step::BackupStep { pages: 8 }; 12];
    let mut v = 1;
    let mut writes = |n, durable| transaction(&mut v, n, durable);
    let mut full_incremental_restore = writes(30, true);
    full_incremental_restore.push(Step::BackupBegin {
        dir: 0,
        mode: BackupMode::Full,
    });
    full_incremental_restore.extend(step_all());
    full_incremental_restore.push(Step::BackupFinish { abandon: false });
    full_incremental_restore.extend(writes(20, true));
    full_incremental_restore.push(Step::BackupBegin {
        dir: 0,
        mode: BackupMode::Incremental,
    });
    full_incremental_restore.extend(step_all());
    full_incremental_restore.push(Step::BackupFinish { abandon: false });
    full_incremental_restore.extend(writes(5, true));
    let mut tampered = full_incremental_restore.clone();
    full_incremental_restore.push(Step::Restore { dir: 0 });
    // The live log set (a target past the backup directories) given a foreign checkpoint.
    tampered.push(Step::Tamper {
        target: BACKUP_DIRS,
        kind: Tamper::ForeignCheckpoint,
        pick: 3,
    });
    tampered.push(Step::Restore { dir: 0 });
    let mut rolled = full_incremental_restore.clone();
    rolled.pop();
    rolled.extend(writes(8, true));
    rolled.push(Step::RollForward {
        dir: 0,
        damage: LiveDamage::DRAWN[0],
        until: false,
        pick: 9,
    });
    let mut v = 1;
    let mut writes = |n, durable| transaction(&mut v, n, durable);
    let mut crash_in_backup = writes(40, true);
    crash_in_backup.push(Step::BackupBegin {
        dir: 1,
        mode: BackupMode::Atomic,
    });
    crash_in_backup.push(Step::BackupStep { pages: 2 });
    crash_in_backup.extend(writes(10, true));
    crash_in_backup.push(Step::Crash {
        power_loss: true,
        recovery_crash: None,
    });
    crash_in_backup.extend(writes(10, false));
    crash_in_backup.push(Step::BackupBegin {
        dir: 1,
        mode: BackupMode::Full,
    });
    crash_in_backup.extend(step_all());
    crash_in_backup.push(Step::BackupFinish { abandon: false });
    crash_in_backup.push(Step::RestoreCrash {
        dir: 1,
        pick: 40,
        power_loss: true,
    });
    let mut v = 1;
    let mut writes = |n, durable| transaction(&mut v, n, durable);
    let mut rot_in_backup = writes(60, true);
    rot_in_backup.push(Step::Checkpoint);
    rot_in_backup.push(Step::Corrupt {
        zone: CorruptZone::DatabasePage,
        pick: 5,
        now: true,
    });
    rot_in_backup.push(Step::BackupBegin {
        dir: 2,
        mode: BackupMode::Full,
    });
    rot_in_backup.extend(step_all());
    rot_in_backup.push(Step::BackupFinish { abandon: false });
    let mut v = 1;
    let mut writes = |n, durable| transaction(&mut v, n, durable);
    let mut crashes = writes(30, true);
    crashes.push(Step::CrashAt {
        points: 7,
        power_loss: true,
    });
    crashes.extend(writes(10, true));
    crashes.push(Step::Crash {
        power_loss: false,
        recovery_crash: Some(3),
    });
    crashes.push(Step::Restart);
    let plan = |name: &'static str, steps: Vec<Step>| {
        let mut config = config.clone();
        config.steps = steps.len() as u32;
        let plan = Plan { config, steps };
        let bytes = plan
            .to_bytes()
            .expect("the seed plans are within from_bytes's range");
        assert_eq!(
            Plan::from_bytes(&bytes),
            plan,
            "{name}: the bytes decode to the plan"
        );
        ("sim_plan", name, bytes)
    };
    vec![
        plan("full-incremental-restore", full_incremental_restore),
        plan("live-log-set-tampered-restore", tampered),
        plan("roll-forward", rolled),
        plan("crash-during-backup-restore-crash", crash_in_backup),
        plan("rot-met-by-backup", rot_in_backup),
        plan("crashes-and-recovery-crash", crashes),
    ]
}

/// Inputs that exercise areas of past bugs, for `fuzz/regressions/` (where fuzz findings go
/// after their fix) while no finding is there: one per target. `scenarios` is the repository's
/// `scenarios/regressions/`, whose one plan within `Plan::from_bytes`'s range becomes
/// `sim_plan`'s.
pub fn past_bug_areas(scenarios: &Path) -> std::io::Result<Vec<Seed>> {
    let key = |i: u16| Key(i, 20);
    // The integrity check once read a free page's tree fields before its kind (an underflow).
    let mut ops: Vec<Op> = (0..300)
        .map(|i| Op::Put {
            key: key(i),
            len: 500,
            fill: 1,
        })
        .collect();
    ops.extend((0..300).map(|i| Op::Delete { key: key(i) }));
    ops.extend([
        Op::Reopen,
        Op::Put {
            key: key(7),
            len: 10,
            fill: 2,
        },
    ]);
    let btree = encode::btree_ops(&Input {
        page_shift: 0,
        tiny_cache: false,
        ops,
    });
    // The target itself once resealed a manifest cut below its checksum field (a panic).
    let manifest = find(damaged_backup::pristine().0.keys(), |p| {
        p.extension().is_some_and(|e| e == "manifest")
    });
    let backup = encode::damaged_backup(&[
        damaged_backup::Damage::Truncate {
            file: manifest,
            len: 2,
        },
        damaged_backup::Damage::Xor {
            file: manifest,
            at: 0,
            mask: 1,
            reseal: true,
        },
    ]);
    // A page's lost write once came back as data; the flush map must refuse each.
    let changed = damaged_database::changed_pages();
    let stale: Vec<_> = (0..8)
        .map(|i| damaged_database::Damage::Stale {
            page: changed[i * changed.len() / 8] as u16,
        })
        .collect();
    let database = encode::damaged_database(&stale);
    // A damaged checkpoint slot once sent recovery to a generation already deleted.
    let names = || damaged_log::pristine().keys();
    let chk = find(names(), |n| n.ends_with(".chk"));
    let first = find(names(), |n| *n == "edb00000001.log");
    let log = encode::damaged_log(&[
        damaged_log::Damage::Xor {
            file: chk,
            at: 40,
            mask: 0xff,
            reseal: false,
        },
        damaged_log::Damage::Remove { file: first },
    ]);
    let name = "a-replaced-set-is-removed-durably-file-by-file";
    let scenario: crate::Scenario =
        serde_json::from_slice(&std::fs::read(scenarios.join(format!("{name}.json")))?)
            .map_err(std::io::Error::other)?;
    let plan = scenario
        .plan
        .to_bytes()
        .expect("the scenario's plan is within from_bytes's range");
    assert_eq!(Plan::from_bytes(&plan), scenario.plan);
    Ok(vec![
        ("btree_ops", "integrity-check-over-free-pages", btree),
        (
            "damaged_backup",
            "manifest-cut-below-its-checksum-then-resealed",
            backup,
        ),
        (
            "damaged_database",
            "eight-lost-writes-refused-by-the-flush-map",
            database,
        ),
        (
            "damaged_log",
            "checkpoint-rot-with-the-first-generation-gone",
            log,
        ),
        ("sim_plan", name, plan),
    ])
}

/// Writes every seed to `corpus/<target>/<name>` under `dir` (the repository's `fuzz/`),
/// replacing what the generator wrote before but leaving other files (found by fuzzing) alone;
/// with `regressions`, also the [`past_bug_areas`] to `regressions/<target>/`.
pub fn write(dir: &Path, regressions: bool) -> std::io::Result<usize> {
    let mut all: Vec<(&str, Seed)> = seeds().into_iter().map(|s| ("corpus", s)).collect();
    if regressions {
        let past = past_bug_areas(&dir.join("../scenarios/regressions"))?;
        all.extend(past.into_iter().map(|s| ("regressions", s)));
    }
    for (kind, (target, name, bytes)) in &all {
        let dir = dir.join(kind).join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(all.len())
}
