//! Replay applies committed changes in batches sorted by table and key, each key's last
//! change only (`wal/replay.rs`). These tests hold it to the log's order: whatever the
//! changes, after a crash recovery leaves every table as the commits applied one by one
//! would, with batches ending at table creations and deletions and whenever a batch holds
//! half the cache; and a crash in the middle of replay, after some of a batch reached the
//! file, recovers to the same end.

use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{CommitMode, Instance, InstanceParams, MemVfs, Vfs};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod support;

use support::crash_disk::CrashVfs;
use support::{PAGE, base_params, env_with};

/// A cache of 256 pages (while replay runs, 128 for pages and batches of 512 KiB), and a
/// checkpoint that does not move on its own: the whole workload is replayed.
fn params() -> InstanceParams {
    InstanceParams {
        cache_size: 256 * PAGE,
        checkpoint_depth: 1 << 30,
        ..base_params("inst")
    }
}

/// Every table's records.
type State = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Commits a random workload on `vfs` with durable commits and leaves without a term (a
/// crash): puts over a small key space (keys changed many times in a batch), random keys,
/// values too large for one log record, deletes, and now and then a table deleted and
/// created again (with `remake`). Returns what the tables hold.
fn workload(vfs: impl Vfs + 'static, seed: u64, remake: bool) -> State {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let instance = Instance::new(env_with(vfs, seed, 1), params());
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let names = ["a", "b"];
    let mut state = State::new();
    for name in names {
        s.create_table(name).unwrap();
        state.insert(name.to_owned(), BTreeMap::new());
    }
    for _ in 0..rng.random_range(40..160) {
        if remake && rng.random_bool(0.05) {
            // A table deleted and made again: what it held is gone, and the changes after it
            // in the batch go into the new one (a durable commit follows).
            let name = names[rng.random_range(0..2)];
            s.delete_table(name).unwrap();
            s.create_table(name).unwrap();
            state.insert(name.to_owned(), BTreeMap::new());
        }
        s.begin_transaction().unwrap();
        for _ in 0..rng.random_range(1..60) {
            let name = names[rng.random_range(0..2)];
            let t = s.open_table(name).unwrap();
            let key = if rng.random_bool(0.5) {
                format!("k{:03}", rng.random_range(0..200)).into_bytes()
            } else {
                let mut key = vec![0u8; rng.random_range(1..40)];
                rng.fill(&mut key[..]);
                key
            };
            let records = state.get_mut(name).unwrap();
            if rng.random_bool(0.8) {
                let len = if rng.random_bool(0.05) {
                    rng.random_range(9_000..40_000)
                } else {
                    rng.random_range(0..300)
                };
                let value = vec![rng.random::<u8>(); len];
                s.put(t, &key, &value).unwrap();
                records.insert(key, value);
            } else {
                s.delete(t, &key).unwrap();
                records.remove(&key);
            }
        }
        s.commit_transaction(CommitMode::Durable).unwrap();
    }
    drop(s);
    drop(instance);
    state
}

/// What `instance`'s tables hold.
fn contents(instance: &Instance) -> State {
    let mut s = instance.begin_session().unwrap();
    let mut state = State::new();
    for name in ["a", "b"] {
        let t = s.open_table(name).unwrap();
        let records = s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<BTreeMap<_, _>>>()
            .unwrap();
        state.insert(name.to_owned(), records);
    }
    state
}

fn recover(vfs: impl Vfs + 'static) -> (Instance, jetdb::RecoveryReport) {
    let instance = Instance::new(env_with(vfs, 7, 1_000), params());
    instance.init().unwrap();
    let report = instance.recovery_report().unwrap().expect("a recovery");
    (instance, report)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
    ))]
    /// Sorted batches end where the commits applied one by one do.
    #[test]
    fn replay_in_sorted_batches_ends_as_the_log_in_order(seed in any::<u64>()) {
        let vfs = MemVfs::new();
        vfs.create_dir(Path::new("inst")).unwrap();
        let expected = workload(vfs.clone(), seed, true);
        let (instance, report) = recover(vfs);
        prop_assert!(report.commits_replayed > 0, "{report:?}");
        prop_assert_eq!(contents(&instance), expected, "{:?}", report);
        instance.check_integrity().unwrap();
        instance.term().unwrap();
    }
}

/// The workload of a fixed seed spans several batches within the cache's memory, and the
/// pages get the whole cache back. (No table is deleted: that one change touches every page
/// of the table.)
#[test]
fn a_long_log_is_replayed_in_several_batches_within_the_cache() {
    let vfs = MemVfs::new();
    vfs.create_dir(Path::new("inst")).unwrap();
    let expected = workload(vfs.clone(), 11, false);
    let (instance, report) = recover(vfs);
    assert!(report.replay_batches >= 4, "{report:?}");
    assert_eq!(contents(&instance), expected);
    let stats = instance.stats().unwrap();
    assert_eq!(
        stats.cache_pages_max, 256,
        "the pages get the whole cache back"
    );
    assert!(stats.cache_pages <= stats.cache_pages_max, "{stats:?}");
    // Half the cache for pages, and what one change touches: a large value's pages, and a
    // split on the way.
    assert!(
        report.replay_cache_pages_peak <= 128 + 16,
        "replay held {} pages",
        report.replay_cache_pages_peak
    );
    assert!(
        report.pages_written > 2 * 128,
        "pages were written as replay filled the cache: {report:?}"
    );
    instance.term().unwrap();
}

/// A crash at every few of replay's writes, some batches on the file and not others, then a
/// power loss: recovery run again over that file ends where the log does.
#[test]
fn a_crash_in_the_middle_of_replay_recovers_to_the_same_end() {
    let source = MemVfs::new();
    source.create_dir(Path::new("inst")).unwrap();
    let expected = workload(source.clone(), 11, true);
    // How many writes and fsyncs a whole recovery makes.
    let whole = CrashVfs::holding(&source, Path::new("inst"));
    let (instance, report) = recover(whole.clone());
    assert!(report.replay_batches >= 4, "{report:?}");
    drop(instance);
    let used = whole.used();
    assert!(used > 20, "recovery wrote {used} times");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut died = 0;
    for fuel in (0..used).step_by((used / 40).max(1) as usize) {
        let disk = CrashVfs::holding(&source, Path::new("inst"));
        disk.refuel(fuel);
        let instance = Instance::new(env_with(disk.clone(), 7, 1_000), params());
        if instance.init().is_ok() {
            continue;
        }
        drop(instance);
        died += 1;
        let (after, notes) = disk.power_loss(&mut rng, false);
        let instance = Instance::new(env_with(after, 9, 2_000), params());
        instance
            .init()
            .unwrap_or_else(|err| panic!("fuel {fuel}: recovery again failed: {err} ({notes:?})"));
        assert_eq!(contents(&instance), expected, "fuel {fuel}: {notes:?}");
        instance.check_integrity().unwrap();
        instance.term().unwrap();
    }
    assert!(died >= 20, "only {died} recoveries died part-way");
}

/// Keys alike in their first eight bytes (the part of a key the sort compares as a number)
/// are still told apart: each keeps its own last change. Among them a key that is another's
/// prefix, keys that differ only past a zero byte, and the same keys in both tables (the last
/// of one table next to the first of the other in the sorted batch).
#[test]
fn keys_alike_in_their_first_eight_bytes_each_keep_their_last_change() {
    let vfs = MemVfs::new();
    vfs.create_dir(Path::new("inst")).unwrap();
    let mut keys: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("customer-{i:04}").into_bytes())
        .collect();
    keys.extend([
        b"customer".to_vec(),
        b"customer\0".to_vec(),
        b"customer\0\0".to_vec(),
        b"customer-".to_vec(),
        b"cust".to_vec(),
        b"cust\0\0\0\0".to_vec(),
        b"cust\0\0\0\0\x01".to_vec(),
    ]);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut expected = State::new();
    {
        let instance = Instance::new(env_with(vfs.clone(), 3, 1), params());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        for name in ["a", "b"] {
            s.create_table(name).unwrap();
            expected.insert(name.to_owned(), BTreeMap::new());
        }
        // Every key changed in many commits, none of which fills a batch: one sorted batch.
        for round in 0..12u32 {
            s.begin_transaction().unwrap();
            for key in &keys {
                for name in ["a", "b"] {
                    if rng.random_bool(0.4) {
                        continue;
                    }
                    let t = s.open_table(name).unwrap();
                    let records = expected.get_mut(name).unwrap();
                    if rng.random_bool(0.2) {
                        s.delete(t, key).unwrap();
                        records.remove(key);
                    } else {
                        let value = format!("{name} {round} {}", rng.random::<u32>()).into_bytes();
                        s.put(t, key, &value).unwrap();
                        records.insert(key.clone(), value);
                    }
                }
            }
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        drop(s);
        // A crash: dropped without its term.
    }
    let (instance, report) = recover(vfs);
    assert_eq!(report.commits_replayed, 14, "{report:?}");
    assert_eq!(
        report.replay_batches, 1,
        "the table creations and every change in one batch: {report:?}"
    );
    assert_eq!(contents(&instance), expected, "{report:?}");
    instance.check_integrity().unwrap();
    instance.term().unwrap();
}
