//! Deterministic randomized attacks on the slotted B+tree and the transaction write set (from
//! the breaker's run against the slotted pages; `BREAKER_SEEDS=N` runs more seeds):
//! key lengths 0..=255, values straddling the inline limit and overflow-page boundaries, long
//! shared-prefix keys (long separators: branch splits and redistributions), ascending,
//! descending and random orders, mass deletes, cursors both ways, integrity after each batch.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use jetdb::{CommitMode, Database, DatabaseOptions, Env, Instance, MemVfs, SeekMode, Table};

mod support;

use support::{PAGE, env_with, model_params};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// (PAGE - 44) / 4
const INLINE_MAX: usize = (PAGE - 44) / 4;
/// PAGE - 32 - 8
const OVF_CAP: usize = PAGE - 40;

fn gen_key(rng: &mut Rng, style: usize) -> Vec<u8> {
    match style % 5 {
        // tiny alphabet, short: many shared prefixes and the empty key
        0 => (0..rng.below(5)).map(|_| rng.below(3) as u8).collect(),
        // long keys with a long shared prefix: separators stay long
        1 => {
            let len = 240 + rng.below(16);
            let mut k = vec![0x55u8; len];
            let n = rng.below(4000) as u32;
            let at = len - 4;
            k[at..].copy_from_slice(&n.to_be_bytes());
            k
        }
        // any length 0..=255, random bytes
        2 => (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
        // big-endian counters
        3 => (rng.below(3000) as u32).to_be_bytes().to_vec(),
        // max-length keys differing only in the last byte or two
        _ => {
            let mut k = vec![0xffu8; 255];
            k[253] = rng.below(256) as u8;
            k[254] = rng.below(4) as u8;
            k
        }
    }
}

fn gen_len(rng: &mut Rng, key_len: usize) -> usize {
    // the largest inline value for this key: 2 + 1 + k + 1 + 2 + v <= INLINE_MAX
    let vmax = INLINE_MAX - 6 - key_len;
    match rng.below(10) {
        0..=3 => (vmax + rng.below(7)).saturating_sub(3), // around the inline limit
        4 => rng.below(40),
        5 => rng.below(vmax + 1),
        6 => [
            OVF_CAP - 1,
            OVF_CAP,
            OVF_CAP + 1,
            2 * OVF_CAP,
            2 * OVF_CAP + 1,
        ][rng.below(5)],
        7 => vmax + 1 + rng.below(3 * OVF_CAP),
        8 => 0,
        _ => INLINE_MAX - 6 + rng.below(8), // inline-limit of the empty key, any key
    }
}

fn value_of(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (seed as usize)
                .wrapping_mul(31)
                .wrapping_add(i * 7 + i / 251) as u8
        })
        .collect()
}

fn check(db: &mut Database, t: Table, model: &Model, deep: bool) {
    // forward cursor walk
    {
        let mut c = db.cursor(t).unwrap();
        let mut got = Vec::new();
        if c.move_first().unwrap() {
            loop {
                got.push(c.key().unwrap().to_vec());
                if deep {
                    assert_eq!(&c.value().unwrap(), &model[&got[got.len() - 1]]);
                }
                if !c.move_next().unwrap() {
                    break;
                }
            }
        }
        assert!(got.iter().eq(model.keys()), "forward cursor walk differs");
    }
    // backward cursor walk
    {
        let mut c = db.cursor(t).unwrap();
        let mut got = Vec::new();
        if c.move_last().unwrap() {
            loop {
                got.push(c.key().unwrap().to_vec());
                if !c.move_prev().unwrap() {
                    break;
                }
            }
        }
        got.reverse();
        assert!(got.iter().eq(model.keys()), "backward cursor walk differs");
    }
    if deep {
        let all: Vec<(Vec<u8>, Vec<u8>)> = db
            .range(t, .., false)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            all.iter().map(|(k, v)| (k, v)).eq(model.iter()),
            "range scan differs"
        );
        let rev: Vec<Vec<u8>> = db
            .range(t, .., true)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert!(
            rev.iter().eq(model.keys().rev()),
            "reverse range scan differs"
        );
    }
    let report = db.check_integrity().unwrap();
    assert_eq!(report.tables["t"].records, model.len() as u64);
}

fn seek_check(db: &mut Database, t: Table, model: &Model, rng: &mut Rng) {
    for _ in 0..8 {
        let st = rng.below(5);
        let key = gen_key(rng, st);
        let mode = [
            SeekMode::Eq,
            SeekMode::Ge,
            SeekMode::Gt,
            SeekMode::Le,
            SeekMode::Lt,
        ][rng.below(5)];
        let k = key.clone();
        let want = match mode {
            SeekMode::Eq => model.get_key_value(&k).map(|(k, _)| k.clone()),
            SeekMode::Ge => model.range(k..).next().map(|(k, _)| k.clone()),
            SeekMode::Gt => model
                .range((Bound::Excluded(k), Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone()),
            SeekMode::Le => model.range(..=k).next_back().map(|(k, _)| k.clone()),
            SeekMode::Lt => model.range(..k).next_back().map(|(k, _)| k.clone()),
        };
        let mut c = db.cursor(t).unwrap();
        assert_eq!(c.seek(&key, mode).unwrap(), want.is_some(), "seek {mode:?}");
        if let Some(w) = want {
            assert_eq!(c.key().unwrap(), &w[..]);
            let prev = model.range(..w.clone()).next_back().map(|(k, _)| k.clone());
            assert_eq!(c.move_prev().unwrap(), prev.is_some());
            if let Some(p) = prev {
                assert_eq!(c.key().unwrap(), &p[..]);
                assert!(c.move_next().unwrap());
                assert_eq!(c.key().unwrap(), &w[..]);
            }
        }
    }
}

fn db_campaign(seed: u64, cache_size: usize) {
    let mut rng = Rng(seed);
    let env = Env::memory(seed);
    let path = Path::new("b.edb");
    let options = DatabaseOptions {
        page_size: PAGE,
        cache_size,
        read_only: false,
    };
    let mut db = Database::create(&env, path, &options).unwrap();
    let mut t = db.create_table("t").unwrap();
    let mut model = Model::new();
    for round in 0..14 {
        let style = rng.below(5);
        let order = rng.below(3); // 0 ascending, 1 descending, 2 random
        let n = 50 + rng.below(400);
        let mut keys: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let st = if rng.chance(80) { style } else { rng.below(5) };
                gen_key(&mut rng, st)
            })
            .collect();
        match order {
            0 => keys.sort(),
            1 => {
                keys.sort();
                keys.reverse()
            }
            _ => {}
        }
        for k in keys {
            let len = gen_len(&mut rng, k.len());
            let v = value_of(len, rng.next());
            db.put(t, &k, &v).unwrap();
            model.insert(k, v);
        }
        check(&mut db, t, &model, round % 3 == 0);
        seek_check(&mut db, t, &model, &mut rng);
        // overwrite some with different sizes (grow/shrink in place, inline <-> overflow)
        let existing: Vec<Vec<u8>> = model.keys().cloned().collect();
        for _ in 0..rng.below(200) {
            if existing.is_empty() {
                break;
            }
            let k = existing[rng.below(existing.len())].clone();
            let len = gen_len(&mut rng, k.len());
            let v = value_of(len, rng.next());
            db.put(t, &k, &v).unwrap();
            model.insert(k, v);
        }
        check(&mut db, t, &model, false);
        // deletes: a run, ascending/descending/random, leaving a fraction
        let mut doomed: Vec<Vec<u8>> = model.keys().cloned().collect();
        let keep_pct = [0, 5, 30, 60][rng.below(4)];
        match rng.below(4) {
            0 => {}
            1 => doomed.reverse(),
            2 => {
                for i in (1..doomed.len()).rev() {
                    doomed.swap(i, rng.below(i + 1));
                }
            }
            _ => {
                // every other key, then the rest: many underfull leaves
                let (a, b): (Vec<_>, Vec<_>) = doomed
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| i % 2 == 0);
                doomed = a.into_iter().chain(b).map(|(_, k)| k).collect();
            }
        }
        let cut = doomed.len() * (100 - keep_pct) / 100;
        for (j, k) in doomed[..cut].iter().enumerate() {
            assert!(db.delete(t, k).unwrap(), "delete of a present key");
            model.remove(k);
            if j % 97 == 0 {
                assert!(!db.delete(t, k).unwrap());
                db.check_integrity().unwrap();
            }
        }
        check(&mut db, t, &model, true);
        seek_check(&mut db, t, &model, &mut rng);
        if rng.chance(40) {
            db.close().unwrap();
            db = Database::open(&env, path, &options).unwrap();
            t = db.open_table("t").unwrap();
            check(&mut db, t, &model, true);
        }
    }
    db.close().unwrap();
    let mut db = Database::open(&env, path, &options).unwrap();
    let t = db.open_table("t").unwrap();
    check(&mut db, t, &model, true);
}

#[test]
fn slotted_tree_against_model_default_cache() {
    let seeds: u64 = std::env::var("BREAKER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        db_campaign(seed, 8 * 1024 * 1024);
    }
}

#[test]
fn slotted_tree_against_model_tiny_cache() {
    let seeds: u64 = std::env::var("BREAKER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 100..100 + seeds {
        db_campaign(seed, 0);
    }
}

/// Every key length 0..=255 with the largest inline value and one byte more.
#[test]
fn every_key_length_at_the_inline_limit() {
    let env = Env::memory(7);
    let options = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        read_only: false,
    };
    let mut db = Database::create(&env, Path::new("e.edb"), &options).unwrap();
    let t = db.create_table("t").unwrap();
    let mut model = Model::new();
    for round in 0..3u8 {
        for klen in 0..=255usize {
            let key: Vec<u8> = (0..klen).map(|i| (i as u8) ^ round).collect();
            let vmax = INLINE_MAX - 6 - klen;
            let len = vmax + (klen + round as usize) % 2;
            let v = value_of(len, klen as u64);
            db.put(t, &key, &v).unwrap();
            model.insert(key, v);
        }
        check(&mut db, t, &model, true);
    }
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            db.delete(t, k).unwrap();
            model.remove(k);
        }
    }
    check(&mut db, t, &model, true);
    db.close().unwrap();
    let mut db = Database::open(&env, Path::new("e.edb"), &options).unwrap();
    check(&mut db, t, &model, true);
}

// ---------------------------------------------------------------- transactions

fn start(vfs: &MemVfs, seed: u64) -> Instance {
    let instance = Instance::new(env_with(vfs.clone(), seed, seed), model_params());
    instance.init().unwrap();
    instance
}

fn bound(rng: &mut Rng, key: Vec<u8>) -> Bound<Vec<u8>> {
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

fn model_range(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>, reverse: bool) -> Vec<Vec<u8>> {
    let empty = match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    };
    if empty {
        return Vec::new();
    }
    let mut v: Vec<Vec<u8>> = m
        .range((lo.clone(), hi.clone()))
        .map(|(k, _)| k.clone())
        .collect();
    if reverse {
        v.reverse();
    }
    v
}

fn tx_campaign(seed: u64) {
    let mut rng = Rng(seed ^ 0xabcdef);
    let vfs = MemVfs::new();
    let mut instance = start(&vfs, seed);
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    let u = s.create_table("u").unwrap();
    let mut committed: [Model; 2] = [Model::new(), Model::new()];
    for round in 0..40 {
        s.begin_transaction().unwrap();
        let mut view = committed.clone();
        let style = rng.below(5);
        let nops = 20 + rng.below(600);
        // a few hot keys overwritten many times
        let hot: Vec<Vec<u8>> = (0..3).map(|_| gen_key(&mut rng, style)).collect();
        for _ in 0..nops {
            let ti = rng.below(2);
            let table = [t, u][ti];
            let key = if rng.chance(30) {
                hot[rng.below(3)].clone()
            } else {
                gen_key(&mut rng, style)
            };
            match rng.below(10) {
                0..=5 => {
                    let len = gen_len(&mut rng, key.len());
                    let v = value_of(len, rng.next());
                    s.put(table, &key, &v).unwrap();
                    view[ti].insert(key, v);
                }
                6 | 7 => {
                    let saw = s.delete(table, &key).unwrap();
                    assert_eq!(saw, view[ti].remove(&key).is_some(), "delete's answer");
                }
                8 => {
                    assert_eq!(
                        s.get(table, &key).unwrap().as_ref(),
                        view[ti].get(&key),
                        "own-writes get"
                    );
                }
                _ => {
                    let k2 = gen_key(&mut rng, style);
                    let lo = bound(&mut rng, key.clone());
                    let hi = bound(&mut rng, k2);
                    let reverse = rng.chance(50);
                    let want = model_range(&view[ti], &lo, &hi, reverse);
                    let got: Vec<(Vec<u8>, Vec<u8>)> = s
                        .range(
                            table,
                            (
                                lo.as_ref().map(Vec::as_slice),
                                hi.as_ref().map(Vec::as_slice),
                            ),
                            reverse,
                        )
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    assert!(
                        got.iter().map(|(k, _)| k).eq(want.iter()),
                        "tx range {lo:?}..{hi:?} rev={reverse}"
                    );
                    for (k, v) in &got {
                        assert_eq!(v, &view[ti][k]);
                    }
                }
            }
        }
        // full range in the tx, both directions, both tables
        for ti in 0..2 {
            let table = [t, u][ti];
            let fwd: Model = s
                .range(table, .., false)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(fwd == view[ti], "tx full range, table {ti}");
            let rev: Vec<Vec<u8>> = s
                .range(table, .., true)
                .unwrap()
                .map(|r| r.unwrap().0)
                .collect();
            assert!(rev.iter().eq(view[ti].keys().rev()));
        }
        match rng.below(4) {
            0 => {
                s.rollback().unwrap();
            }
            1 => {
                s.commit_transaction(CommitMode::Lazy).unwrap();
                committed = view;
            }
            _ => {
                s.commit_transaction(CommitMode::Durable).unwrap();
                committed = view;
            }
        }
        // outside a transaction
        for ti in 0..2 {
            let table = [t, u][ti];
            let all: Model = s
                .range(table, .., false)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                all == committed[ti],
                "committed state, table {ti}, round {round}"
            );
        }
        let report = instance.check_integrity().unwrap();
        assert_eq!(report.tables["t"].records, committed[0].len() as u64);
        assert_eq!(report.tables["u"].records, committed[1].len() as u64);
        if rng.chance(25) {
            // clean shutdown and reopen
            drop(s);
            instance.term().unwrap();
            instance = start(&vfs, seed + round as u64 + 1);
            s = instance.begin_session().unwrap();
        } else if rng.chance(15) {
            // crash: the durable commits (the last was durable only if mode said so) are
            // replayed; flush the log first so every commit is kept.
            instance.flush_log().unwrap();
            drop(s);
            drop(instance);
            instance = start(&vfs, seed + round as u64 + 1000);
            s = instance.begin_session().unwrap();
        }
        for ti in 0..2 {
            let table = [t, u][ti];
            let all: Model = s
                .range(table, .., false)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                all == committed[ti],
                "after reopen, table {ti}, round {round}"
            );
        }
    }
}

#[test]
fn transactions_against_model() {
    let seeds: u64 = std::env::var("BREAKER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        tx_campaign(seed);
    }
}

/// One key overwritten many times in one transaction, deleted, re-put; then the commit, a
/// crash and recovery.
#[test]
fn one_key_rewritten_many_times_in_one_transaction() {
    let vfs = MemVfs::new();
    let instance = start(&vfs, 3);
    let mut s = instance.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    let mut last = None;
    for i in 0..5000usize {
        let k = b"hot".to_vec();
        if i % 7 == 3 {
            s.delete(t, &k).unwrap();
            last = None;
        } else {
            let v = value_of([0, 10, 1007, 1008, 5000, 4056][i % 6], i as u64);
            s.put(t, &k, &v).unwrap();
            last = Some(v);
        }
        assert_eq!(s.get(t, &k).unwrap(), last);
        let r: Vec<_> = s
            .range(t, .., i % 2 == 0)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(r.len(), usize::from(last.is_some()));
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    assert_eq!(s.get(t, b"hot").unwrap(), last);
    drop(s);
    drop(instance);
    let instance = start(&vfs, 4);
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(s.get(t, b"hot").unwrap(), last);
    instance.check_integrity().unwrap();
}
