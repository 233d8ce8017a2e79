//! Crashes at every kind of I/O point. A `Vfs` keeps each file's content as of its last fsync
//! and the writes made since, and each directory's entries as of its last fsync and the
//! creates, renames and removes made since. It kills the process at the Nth write or fsync
//! (every later call fails), then loses power: each unsynced write is applied, dropped or torn
//! sector by sector, and each directory's unsynced operations are kept as a random prefix (an
//! ordered journal) or a random subset. Recovery must then leave a sound database holding a
//! prefix of the commits that includes every commit acknowledged durable — across log rolls,
//! circular deletion, database and checkpoint creation, and several init/term cycles.
//!
//! Planted bugs it catches: a log flush without its fsync, a page written before its log is
//! durable, redo that trusts any valid page, a roll without its directory fsync, a checkpoint
//! that does not force whole page images. Its saved failure is a term after a fatal error
//! that answered `Ok`, as if the shutdown had been clean.
use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{CommitMode, Env, Instance, InstanceParams, Vfs};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod support;

use support::crash_disk::CrashVfs as DirCrashVfs;
use support::{PAGE, base_params, env_with};

/// [`base_params`] (the directory is not created: the disk has it) with pages of `PAGE_SIZE`
/// bytes if that is set, a cache of 64 of them, and a checkpoint depth of 100 KiB.
fn params(circular: bool) -> InstanceParams {
    let page_size = std::env::var("PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PAGE);
    InstanceParams {
        page_size,
        cache_size: 64 * page_size,
        checkpoint_depth: 100 * 1024,
        circular_logging: circular,
        ..base_params("inst")
    }
}

/// An environment over `vfs` whose entropy and clock both start from `seed`.
fn env(vfs: impl Vfs + 'static, seed: u64) -> Env {
    env_with(vfs, seed, seed)
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn run(seed: u64, fuel: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vfs = DirCrashVfs::new(fuel);
    let circular = rng.random_bool(0.5);
    let mut history: Vec<State> = vec![State::new()];
    let mut durable = 0usize;
    let mut table_durable = false;
    let mut maybe: Option<State> = None;
    let big = rng.random_bool(0.5);
    let (ops_max, lazy) = if big { (80, 0.9) } else { (12, 0.5) };
    // A second init/term cycle exercises recovery-time directory work too.
    let cycles = rng.random_range(1..=3);
    'work: for cycle in 0..cycles {
        let instance = Instance::new(env(vfs.clone(), 1 + cycle), params(circular));
        if instance.init().is_err() {
            break 'work;
        }
        let Ok(mut s) = instance.begin_session() else {
            break 'work;
        };
        let t = if cycle == 0 {
            let Ok(t) = s.create_table("t") else {
                break 'work;
            };
            table_durable = true;
            t
        } else {
            s.open_table("t").unwrap()
        };
        for _ in 0..rng.random_range(20..120) {
            let mut state = history.last().unwrap().clone();
            if s.begin_transaction().is_err() {
                break 'work;
            }
            for _ in 0..rng.random_range(1..ops_max) {
                let k = format!("k{:04}", rng.random_range(0..1000)).into_bytes();
                if rng.random_bool(0.8) {
                    let len = if rng.random_bool(0.1) {
                        5000
                    } else {
                        rng.random_range(1..900)
                    };
                    let v = vec![rng.random::<u8>(); len];
                    if s.put(t, &k, &v).is_err() {
                        break 'work;
                    }
                    state.insert(k, v);
                } else {
                    if s.delete(t, &k).is_err() {
                        break 'work;
                    }
                    state.remove(&k);
                }
            }
            let mode = if rng.random_bool(lazy) {
                CommitMode::Lazy
            } else {
                CommitMode::Durable
            };
            if s.commit_transaction(mode).is_err() {
                maybe = Some(state);
                break 'work;
            }
            history.push(state);
            if mode == CommitMode::Durable {
                durable = history.len() - 1;
            }
            if rng.random_bool(0.05) && instance.checkpoint().is_err() {
                break 'work;
            }
        }
        drop(s);
        if instance.term().is_ok() {
            durable = history.len() - 1;
        } else {
            break 'work;
        }
    }
    if let Some(state) = maybe {
        history.push(state);
    }
    let (after, notes) = vfs.power_loss(&mut rng, false);
    let files = after.list(Path::new("inst")).unwrap();
    let ctx = format!("seed {seed} fuel {fuel} circular {circular}: files {files:?}, {notes:?}");
    let instance = Instance::new(env(after, 9), params(circular));
    if let Err(err) = instance.init() {
        panic!("{ctx}: recovery failed: {err}");
    }
    let mut s = instance.begin_session().unwrap();
    let got: State = match s.open_table("t") {
        Ok(t) => s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<State>>()
            .unwrap_or_else(|err| panic!("{ctx}: reading after recovery: {err}")),
        Err(_) => {
            assert!(!table_durable, "{ctx}: the table is gone");
            State::new()
        }
    };
    let n = (durable..history.len()).find(|&n| history[n] == got);
    assert!(
        n.is_some(),
        "{ctx}: after recovery the table ({} keys) is no prefix of the commits from {durable} (of {})",
        got.len(),
        history.len() - 1
    );
    instance.check_integrity().unwrap();
    drop(s);
    instance.term().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
    ))]
    #[test]
    fn directory_entries_lost_at_power_loss(seed in any::<u64>(), fuel in 0u64..3000) {
        run(seed, fuel);
    }
}

/// Deterministic sweep of every crash point of a short run.
#[test]
fn sweep_small() {
    for fuel in 0..600 {
        for seed in 0..4 {
            run(seed * 7919 + fuel, fuel);
        }
    }
}

/// A full run exercises what the model is for: renames (log rolls, creations) and removes
/// (circular logging).
#[test]
fn a_full_run_renames_and_removes() {
    for seed in 0..5u64 {
        let vfs = DirCrashVfs::new(u64::MAX / 2);
        // mimic run() without a crash
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let _ = &mut rng;
        let v2 = vfs.clone();
        let instance = Instance::new(env(v2, 1), params(true));
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        for i in 0..100u32 {
            s.begin_transaction().unwrap();
            for j in 0..40u32 {
                s.put(
                    t,
                    format!("k{:04}", (i * 37 + j) % 1000).as_bytes(),
                    &[i as u8; 700],
                )
                .unwrap();
            }
            s.commit_transaction(CommitMode::Lazy).unwrap();
        }
        drop(s);
        instance.term().unwrap();
        let used = vfs.used();
        let log = vfs.dir_log();
        let renames = log.iter().filter(|l| l.starts_with("Rename")).count();
        let removes = log.iter().filter(|l| l.starts_with("Remove")).count();
        assert!(used > 100, "seed {seed}: {used} writes and fsyncs");
        assert!(renames >= 3, "seed {seed}: {renames} renames");
        assert!(removes >= 1, "seed {seed}: {removes} removes");
    }
}
