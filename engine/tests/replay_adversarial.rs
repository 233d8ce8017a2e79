//! Replay in sorted batches (`wal/replay.rs`) against adversarial keys and shapes that the
//! sort, the `head` fast compare and the last-change-only dedup must get right; crashes in
//! the middle of replay, twice in a row; and where a failure says replay was. (From the
//! review of the change that sorted replay.)

use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{CommitMode, Instance, InstanceParams, MemVfs, Vfs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod support;

use support::crash_disk::CrashVfs;
use support::{PAGE, base_params, env_with};

const TABLES: [&str; 3] = ["a", "b", "c"];

/// A cache of 256 pages: while replay runs the pages keep 128 and a batch gets 128 pages'
/// worth (512 KiB); the checkpoint never moves.
fn params() -> InstanceParams {
    InstanceParams {
        cache_size: 256 * PAGE,
        checkpoint_depth: 1 << 30,
        ..base_params("inst")
    }
}

type State = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Keys that are prefixes of one another, hold zero bytes, share their first eight bytes,
/// are empty or as long as a key may be.
fn nasty_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0, 0],
        vec![0; 8],
        vec![0; 9],
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"a\0\0".to_vec(),
        b"abcdefgh".to_vec(),
        b"abcdefgh\0".to_vec(),
        b"abcdefgh\x01".to_vec(),
        b"abcdefghi".to_vec(),
        b"abcdefgg\xff".to_vec(),
        vec![0xFF; 255],
        vec![0; 255],
        [b"abcdefgh".as_slice(), &[0; 247]].concat(),
    ];
    for i in 0..8u8 {
        keys.push(vec![1, 2, 3, 4, 5, 6, 7, 8, i]);
    }
    keys
}

fn value(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = match rng.random_range(0..20) {
        0 => 0,
        1 => rng.random_range(9_000..70_000),
        _ => rng.random_range(1..200),
    };
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// A workload over the nasty keys, the same keys in every table, changed many times in a
/// transaction and across them, deletes of missing keys, tables deleted and made again, and
/// now and then a transaction much larger than a batch.
fn workload(vfs: impl Vfs + 'static, seed: u64) -> State {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let instance = Instance::new(env_with(vfs, seed, 1), params());
    instance.init().unwrap();
    let mut s = instance.begin_session().unwrap();
    let keys = nasty_keys();
    let mut state = State::new();
    for name in TABLES {
        s.create_table(name).unwrap();
        state.insert(name.to_owned(), BTreeMap::new());
    }
    for _ in 0..rng.random_range(30..90) {
        if rng.random_bool(0.06) {
            let name = TABLES[rng.random_range(0..3)];
            s.delete_table(name).unwrap();
            state.remove(name);
            if rng.random_bool(0.8) {
                s.create_table(name).unwrap();
                state.insert(name.to_owned(), BTreeMap::new());
            }
        }
        // A missing table comes back before the transaction.
        for name in TABLES {
            if !state.contains_key(name) && rng.random_bool(0.5) {
                s.create_table(name).unwrap();
                state.insert(name.to_owned(), BTreeMap::new());
            }
        }
        s.begin_transaction().unwrap();
        let big = rng.random_bool(0.08);
        let n = if big { 400 } else { rng.random_range(1..40) };
        for _ in 0..n {
            let live: Vec<&str> = TABLES
                .iter()
                .copied()
                .filter(|t| state.contains_key(*t))
                .collect();
            if live.is_empty() {
                break;
            }
            let name = live[rng.random_range(0..live.len())];
            let t = s.open_table(name).unwrap();
            let key = keys[rng.random_range(0..keys.len())].clone();
            let records = state.get_mut(name).unwrap();
            if rng.random_bool(0.7) {
                let v = if big {
                    vec![rng.random::<u8>(); 2000]
                } else {
                    value(&mut rng)
                };
                s.put(t, &key, &v).unwrap();
                records.insert(key, v);
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

fn contents(instance: &Instance) -> State {
    let mut s = instance.begin_session().unwrap();
    let mut state = State::new();
    for name in TABLES {
        let Ok(t) = s.open_table(name) else { continue };
        let records = s
            .range(t, .., false)
            .unwrap()
            .collect::<jetdb::Result<BTreeMap<_, _>>>()
            .unwrap();
        state.insert(name.to_owned(), records);
    }
    state
}

#[test]
fn nasty_keys_replay_as_the_log_in_order() {
    for seed in 0..24 {
        let vfs = MemVfs::new();
        vfs.create_dir(Path::new("inst")).unwrap();
        let expected = workload(vfs.clone(), seed);
        let instance = Instance::new(env_with(vfs, 7, 1_000), params());
        instance.init().unwrap();
        let report = instance.recovery_report().unwrap().unwrap();
        assert!(report.commits_replayed > 0, "{report:?}");
        assert!(report.replay_batches > 2, "{report:?}");
        assert!(report.generations.len() > 3, "{report:?}");
        assert_eq!(contents(&instance), expected, "seed {seed}: {report:?}");
        instance.check_integrity().unwrap();
        let stats = instance.stats().unwrap();
        assert_eq!(stats.cache_pages_max, 256);
        instance.term().unwrap();
    }
}

/// A crash part-way through replay, power lost, then a crash part-way through the second
/// recovery too, power lost again: the third recovery ends where the log does.
#[test]
fn two_crashes_in_the_middle_of_replay_recover_to_the_same_end() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (mut died, mut died_twice) = (0, 0);
    for seed in [3u64, 8, 13] {
        let source = MemVfs::new();
        source.create_dir(Path::new("inst")).unwrap();
        let expected = workload(source.clone(), seed);
        let whole = CrashVfs::holding(&source, Path::new("inst"));
        let instance = Instance::new(env_with(whole.clone(), 7, 1_000), params());
        instance.init().unwrap();
        drop(instance);
        let used = whole.used();
        for fuel in (1..used).step_by((used / 30).max(1) as usize) {
            let disk = CrashVfs::holding(&source, Path::new("inst"));
            disk.refuel(fuel);
            let instance = Instance::new(env_with(disk.clone(), 7, 1_000), params());
            if instance.init().is_ok() {
                continue;
            }
            drop(instance);
            died += 1;
            let (after, _) = disk.power_loss(&mut rng, false);
            // The second recovery dies part-way as well.
            let disk2 = CrashVfs::holding(&after, Path::new("inst"));
            let second = rng.random_range(1..used.max(2));
            disk2.refuel(second);
            let instance = Instance::new(env_with(disk2.clone(), 8, 1_500), params());
            let second_ok = instance.init().is_ok();
            died_twice += usize::from(!second_ok);
            drop(instance);
            let (after2, notes) = disk2.power_loss(&mut rng, false);
            let instance = Instance::new(env_with(after2, 9, 2_000), params());
            instance.init().unwrap_or_else(|err| {
                panic!("seed {seed} fuel {fuel}/{second} ({second_ok}): {err} ({notes:?})")
            });
            assert_eq!(
                contents(&instance),
                expected,
                "seed {seed} fuel {fuel}/{second}: {notes:?}"
            );
            instance.check_integrity().unwrap();
            instance.term().unwrap();
        }
    }
    assert!(died >= 20 && died_twice >= 10, "{died} {died_twice}");
}

/// A read of the database failing in the middle of replay: the error keeps its ESE code and
/// names the commit whose change replay was applying.
#[test]
fn a_failed_read_during_replay_names_the_commit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let (vfs, inner) = support::scripted_vfs();
    inner.create_dir(Path::new("inst")).unwrap();
    // The smallest cache, and more records than it holds, so that replay reads pages back.
    let small = |dir: &str| InstanceParams {
        cache_size: 64 * PAGE,
        checkpoint_depth: 1 << 30,
        ..base_params(dir)
    };
    {
        let instance = Instance::new(env_with(inner.clone(), 3, 1), small("inst"));
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("a").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..30 {
            s.begin_transaction().unwrap();
            for _ in 0..100 {
                s.put(t, &rng.random::<[u8; 16]>(), &[7; 200]).unwrap();
            }
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        // A crash: no term.
    }
    // How many reads of the database a whole recovery makes, on a copy.
    support::copy_tree(&inner, Path::new("inst"), Path::new("copy"));
    let reads = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&reads);
    let fail_at = Arc::new(AtomicU32::new(u32::MAX));
    let failing = Arc::clone(&fail_at);
    vfs.hook.set(move |op| match op {
        support::Op::Read(p) if p.extension().is_some_and(|e| e == "edb") => {
            if seen.fetch_add(1, Ordering::SeqCst) == failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("injected"));
            }
            Ok(())
        }
        _ => Ok(()),
    });
    let instance = Instance::new(env_with(vfs.clone(), 7, 1_000), small("copy"));
    instance.init().unwrap();
    drop(instance);
    let whole = reads.swap(0, Ordering::SeqCst);
    assert!(
        whole > 20,
        "a whole recovery read the database {whole} times"
    );
    // The first few read the header and the flush map; the rest are replay's.
    fail_at.store(whole / 2, Ordering::SeqCst);
    let instance = Instance::new(env_with(vfs, 7, 1_000), small("inst"));
    let err = instance.init().unwrap_err();
    assert!(
        err.to_string().contains("replaying the commit at ("),
        "{err}"
    );
    assert_eq!(err.code(), -1022, "{err}");
}
