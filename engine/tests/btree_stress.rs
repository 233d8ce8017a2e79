//! The slotted B+tree against a model, in the shapes that stress its splits, shares, merges
//! and redistributions: long keys with long shared prefixes (so separators are long and a
//! changed separator can split its parent), values at the inline limit, runs of deletes, and
//! at the end a drain down to a single page. `check_integrity` runs every few operations.
//! (From the review of the slotted pages.)

use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{Database, DatabaseOptions, Env};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn key(rng: &mut Rng, shape: u32) -> Vec<u8> {
    match shape {
        // Long keys sharing a long prefix: long separators, deep trees.
        0 => {
            let mut k = vec![b'p'; 200 + rng.below(56)];
            let n = k.len();
            k[n - 1] = rng.below(256) as u8;
            k[n - 2] = rng.below(64) as u8;
            k
        }
        // Long keys over a tiny alphabet.
        1 => (0..rng.below(255) + 1)
            .map(|_| rng.below(3) as u8)
            .collect(),
        // Short and very long keys mixed.
        2 => {
            let mut k = vec![rng.below(60) as u8];
            if rng.below(3) > 0 {
                k.extend(std::iter::repeat_n(b'z', 200 + rng.below(50)));
                k.push(rng.below(256) as u8);
            }
            k
        }
        // Any length from empty up.
        _ => {
            let mut k = vec![b'q'; rng.below(256)];
            if let Some(last) = k.last_mut() {
                *last = rng.below(256) as u8;
                k[0] = rng.below(256) as u8;
            }
            k
        }
    }
}

fn run(seed: u64, page_size: usize, ops: usize, shape: u32, check_every: usize) {
    let env = Env::memory(3);
    let options = DatabaseOptions {
        page_size,
        cache_size: 64 * page_size,
        read_only: false,
    };
    let mut db = Database::create(&env, Path::new("s.edb"), &options).unwrap();
    let t = db.create_table("t").unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let inline_max = (page_size - 44) / 4;
    for step in 0..ops {
        let k = key(&mut rng, shape);
        let roll = rng.below(100);
        let put_percent = if step < ops / 3 { 100 } else { 50 };
        if roll < put_percent {
            let len = match rng.below(4) {
                0 => rng.below(10),
                1 => rng.below(inline_max),
                // At the inline limit, either side of it.
                2 => (inline_max - 6 - k.len() + rng.below(3)).min(inline_max),
                _ => rng.below(200),
            };
            let v: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_add(step as u8))
                .collect();
            db.put(t, &k, &v).unwrap();
            model.insert(k, v);
        } else if roll < 98 && !model.is_empty() {
            let k = if rng.below(2) == 0 {
                model.keys().nth(rng.below(model.len())).unwrap().clone()
            } else {
                k
            };
            assert_eq!(db.delete(t, &k).unwrap(), model.remove(&k).is_some());
        } else if !model.is_empty() {
            // A run of neighbours: leaves empty out, merges cascade.
            let from = rng.below(model.len());
            let doomed: Vec<_> = model
                .keys()
                .skip(from)
                .take(rng.below(60))
                .cloned()
                .collect();
            for k in doomed {
                assert!(db.delete(t, &k).unwrap());
                model.remove(&k);
            }
        }
        if step % check_every == 0 {
            let report = db
                .check_integrity()
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            assert_eq!(report.tables["t"].records, model.len() as u64);
        }
    }
    let got: Vec<_> = db
        .range(t, .., false)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(
        got == want,
        "seed {seed} shape {shape}: a forward scan differs"
    );
    let got: Vec<_> = db
        .range(t, .., true)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert!(
        got.iter().rev().eq(model.keys()),
        "seed {seed} shape {shape}: a reverse scan differs"
    );
    let keys: Vec<_> = model.keys().cloned().collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(db.delete(t, k).unwrap());
        if i % 37 == 0 {
            db.check_integrity()
                .unwrap_or_else(|e| panic!("seed {seed} drain {i}: {e}"));
        }
    }
    let report = db.check_integrity().unwrap();
    assert_eq!(report.tables["t"].records, 0);
    assert_eq!(
        report.tables["t"].tree_pages, 1,
        "the drained tree is its root"
    );
    db.close().unwrap();
}

#[test]
fn small_pages_in_every_key_shape() {
    for seed in 1..12 {
        for shape in 0..4 {
            run(seed, 4096, 6000, shape, 13);
        }
    }
}

#[test]
fn large_pages() {
    for seed in 1..3 {
        for shape in 0..2 {
            run(seed, 32768, 15000, shape, 97);
        }
    }
}
