//! The B+tree against a model: long random sequences of operations run against both a table
//! and a `BTreeMap`, compared after every step, with integrity checks, reopens and mass deletes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use jetdb::{Database, DatabaseOptions, Env, SeekMode, Table};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: Vec<u8>,
        len: usize,
        fill: u8,
    },
    Delete {
        key: Vec<u8>,
    },
    Get {
        key: Vec<u8>,
    },
    Seek {
        key: Vec<u8>,
        mode: SeekMode,
    },
    /// A bounded scan, compared with the model's range (bounds: 0 unbounded, 1 included, 2
    /// excluded).
    Range {
        from: Vec<u8>,
        to: Vec<u8>,
        bounds: (u8, u8),
        reverse: bool,
        limit: usize,
    },
    /// Deletes every key in `[from, from + span)` of the model's sorted keys.
    DeleteRun {
        from: usize,
        span: usize,
    },
    Reopen,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Short keys from a small alphabet: many collisions and shared prefixes.
        4 => proptest::collection::vec(0u8..4, 0..6),
        // Sequential-looking big-endian numbers.
        4 => (0u32..5000).prop_map(|n| n.to_be_bytes().to_vec()),
        // Long keys, up to the maximum.
        1 => proptest::collection::vec(any::<u8>(), 200..=255),
    ]
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => 0usize..300,
        3 => 300usize..3000,
        2 => 3000usize..40_000,
        1 => Just(jetdb::limits::VALUE_LEN_MAX),
    ]
}

fn mode_strategy() -> impl Strategy<Value = SeekMode> {
    prop_oneof![
        Just(SeekMode::Eq),
        Just(SeekMode::Ge),
        Just(SeekMode::Gt),
        Just(SeekMode::Le),
        Just(SeekMode::Lt)
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (key_strategy(), len_strategy(), any::<u8>()).prop_map(|(key, len, fill)| Op::Put { key, len, fill }),
        15 => key_strategy().prop_map(|key| Op::Delete { key }),
        10 => key_strategy().prop_map(|key| Op::Get { key }),
        10 => (key_strategy(), mode_strategy()).prop_map(|(key, mode)| Op::Seek { key, mode }),
        2 => (0usize..2000, 1usize..3000).prop_map(|(from, span)| Op::DeleteRun { from, span }),
        4 => (key_strategy(), key_strategy(), (0u8..3, 0u8..3), any::<bool>(), 0usize..300).prop_map(
            |(from, to, bounds, reverse, limit)| Op::Range { from, to, bounds, reverse, limit }
        ),
        1 => Just(Op::Reopen),
    ]
}

fn value_of(len: usize, fill: u8, key: &[u8]) -> Vec<u8> {
    // Distinct bytes per position and key, so a value stitched from the wrong pages shows.
    (0..len)
        .map(|i| {
            fill.wrapping_add((i % 251) as u8)
                .wrapping_add(key.len() as u8)
        })
        .collect()
}

fn model_seek(model: &BTreeMap<Vec<u8>, Vec<u8>>, key: &[u8], mode: SeekMode) -> Option<Vec<u8>> {
    let k = key.to_vec();
    let found = match mode {
        SeekMode::Eq => model.get_key_value(&k),
        SeekMode::Ge => model.range((Bound::Included(k), Bound::Unbounded)).next(),
        SeekMode::Gt => model.range((Bound::Excluded(k), Bound::Unbounded)).next(),
        SeekMode::Le => model
            .range((Bound::Unbounded, Bound::Included(k)))
            .next_back(),
        SeekMode::Lt => model
            .range((Bound::Unbounded, Bound::Excluded(k)))
            .next_back(),
    };
    found.map(|(k, _)| k.clone())
}

fn compare_whole(db: &mut Database, table: Table, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let forward: Vec<(Vec<u8>, Vec<u8>)> = db
        .range(table, .., false)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(forward.len(), expected.len(), "record count");
    assert!(forward == expected, "forward scan differs from the model");
    let mut backward: Vec<Vec<u8>> = db
        .range(table, .., true)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    backward.reverse();
    assert!(
        backward.iter().eq(model.keys()),
        "backward scan differs from the model"
    );
    let report = db.check_integrity().unwrap();
    assert_eq!(report.tables["t"].records, model.len() as u64);
}

fn run(ops: &[Op], page_size: usize, cache_size: usize) {
    let env = Env::memory(3);
    let path = Path::new("model.edb");
    let options = DatabaseOptions {
        page_size,
        cache_size,
        read_only: false,
    };
    let mut db = Database::create(&env, path, &options).unwrap();
    let mut table = db.create_table("t").unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put { key, len, fill } => {
                let value = value_of(*len, *fill, key);
                db.put(table, key, &value).unwrap();
                model.insert(key.clone(), value);
            }
            Op::Delete { key } => {
                assert_eq!(db.delete(table, key).unwrap(), model.remove(key).is_some());
            }
            Op::Get { key } => {
                assert_eq!(db.get(table, key).unwrap().as_ref(), model.get(key));
            }
            Op::Seek { key, mode } => {
                let expected = model_seek(&model, key, *mode);
                let mut cursor = db.cursor(table).unwrap();
                let found = cursor.seek(key, *mode).unwrap();
                assert_eq!(found, expected.is_some());
                if let Some(expected) = expected {
                    assert_eq!(cursor.key().unwrap(), expected.as_slice());
                    assert_eq!(&cursor.value().unwrap(), &model[&expected]);
                    // One step each way from a seek lands on the model's neighbours.
                    let next = model
                        .range((Bound::Excluded(expected.clone()), Bound::Unbounded))
                        .next();
                    assert_eq!(cursor.move_next().unwrap(), next.is_some());
                    if let Some((k, _)) = next {
                        assert_eq!(cursor.key().unwrap(), k.as_slice());
                        assert!(cursor.move_prev().unwrap());
                        assert_eq!(cursor.key().unwrap(), expected.as_slice());
                    }
                }
            }
            Op::Range {
                from,
                to,
                bounds,
                reverse,
                limit,
            } => {
                let bound = |kind: u8, key: &Vec<u8>| match kind {
                    0 => Bound::Unbounded,
                    1 => Bound::Included(key.clone()),
                    _ => Bound::Excluded(key.clone()),
                };
                let (start, end) = (bound(bounds.0, from), bound(bounds.1, to));
                // BTreeMap panics on an inverted or empty-excluded range; such a range holds nothing.
                let empty = match (&start, &end) {
                    (
                        Bound::Included(a) | Bound::Excluded(a),
                        Bound::Included(b) | Bound::Excluded(b),
                    ) => a > b || (a == b && (bounds.0 == 2 || bounds.1 == 2)),
                    _ => false,
                };
                let expected: Vec<Vec<u8>> = if empty {
                    Vec::new()
                } else if *reverse {
                    model
                        .range((start.clone(), end.clone()))
                        .rev()
                        .take(*limit)
                        .map(|(k, _)| k.clone())
                        .collect()
                } else {
                    model
                        .range((start.clone(), end.clone()))
                        .take(*limit)
                        .map(|(k, _)| k.clone())
                        .collect()
                };
                let as_slices = (
                    start.as_ref().map(Vec::as_slice),
                    end.as_ref().map(Vec::as_slice),
                );
                let got: Vec<(Vec<u8>, Vec<u8>)> = db
                    .range(table, as_slices, *reverse)
                    .unwrap()
                    .take(*limit)
                    .map(Result::unwrap)
                    .collect();
                assert!(
                    got.iter().map(|(k, _)| k).eq(expected.iter()),
                    "range {start:?}..{end:?} reverse={reverse}"
                );
                for (k, v) in &got {
                    assert_eq!(v, &model[k]);
                }
            }
            Op::DeleteRun { from, span } => {
                let doomed: Vec<Vec<u8>> = model.keys().skip(*from).take(*span).cloned().collect();
                for key in doomed {
                    assert!(db.delete(table, &key).unwrap());
                    model.remove(&key);
                }
                db.check_integrity().unwrap();
            }
            Op::Reopen => {
                db.close().unwrap();
                db = Database::open(&env, path, &options).unwrap();
                table = db.open_table("t").unwrap();
            }
        }
    }
    compare_whole(&mut db, table, &model);
    db.close().unwrap();
    let mut db = Database::open(&env, path, &options).unwrap();
    let table = db.open_table("t").unwrap();
    compare_whole(&mut db, table, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tree_matches_model_small_pages(ops in proptest::collection::vec(op_strategy(), 1..1500)) {
        run(&ops, 4096, 8 * 1024 * 1024);
    }

    #[test]
    fn tree_matches_model_with_a_tiny_cache(ops in proptest::collection::vec(op_strategy(), 1..800)) {
        // A cache of the minimum size: pages are evicted and reread all the time.
        run(&ops, 8192, 0);
    }

    #[test]
    fn tree_matches_model_any_page_size(
        shift in 0u32..4,
        ops in proptest::collection::vec(op_strategy(), 1..600),
    ) {
        run(&ops, 4096 << shift, 8 * 1024 * 1024);
    }
}
