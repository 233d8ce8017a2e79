//! The `btree_ops` target: operations on a table against a `BTreeMap` model. After every step
//! and at the end (also after a reopen) the table must agree with the model, and the integrity
//! check must pass.

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use jetdb::{Database, DatabaseOptions, Env, PlantedBug, SeekMode};

/// One operation on the table.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Put a value of `len % 6000` bytes of `fill`.
    Put {
        /// The key.
        key: Key,
        /// The value's length, modulo 6,000.
        len: u16,
        /// Its every byte.
        fill: u8,
    },
    /// Put a value of `pages % 40` times 4,000 bytes: a long value across pages.
    PutLarge {
        /// The key.
        key: Key,
        /// The value's length in 4,000-byte units, modulo 40.
        pages: u8,
    },
    /// Delete a key: it must have been there exactly when the model has it.
    Delete {
        /// The key.
        key: Key,
    },
    /// Read a key: the model's value or nothing.
    Get {
        /// The key.
        key: Key,
    },
    /// Seek a cursor: the model's answer for the mode (`mode % 5`: eq, ge, gt, le, lt).
    Seek {
        /// The key sought.
        key: Key,
        /// Which comparison, modulo 5.
        mode: u8,
    },
    /// Close the database and open it again.
    Reopen,
}

/// A key from a small space, so operations collide: two bytes, then padding to
/// `2 + .1 % 40` bytes.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Key(pub u16, pub u8);

impl Key {
    fn bytes(&self) -> Vec<u8> {
        let mut key = self.0.to_be_bytes().to_vec();
        key.resize(2 + (self.1 % 40) as usize, self.1);
        key
    }
}

/// The target's input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The page size is `4096 << (page_shift % 4)`.
    pub page_shift: u8,
    /// No page cache at all (every page read from the file) instead of 4 MiB.
    pub tiny_cache: bool,
    /// The operations (the first 2,000).
    pub ops: Vec<Op>,
}

/// The path an input took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Operations run.
    pub ops: usize,
    /// Reopens among them.
    pub reopens: usize,
    /// Values longer than a page put.
    pub long_values: usize,
    /// The records at the end.
    pub records: u64,
    /// The page size used.
    pub page_size: usize,
}

/// The target: panics if the table and the model disagree or the integrity check fails.
pub fn btree_ops(data: &[u8]) {
    btree_ops_with(data, None);
}

/// [`btree_ops`] with `bug` planted in the engine, returning the path the input took (`None`
/// if the bytes do not decode, which libFuzzer's harness skips too).
pub fn btree_ops_with(data: &[u8], bug: Option<PlantedBug>) -> Option<Outcome> {
    let input = Input::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let env = Env::memory(0).with_planted_bug(bug);
    let path = Path::new("f.edb");
    let page_size = 4096 << (input.page_shift % 4);
    let cache_size = if input.tiny_cache { 0 } else { 4 << 20 };
    let options = DatabaseOptions {
        page_size,
        cache_size,
        read_only: false,
    };
    let mut outcome = Outcome {
        page_size,
        ..Outcome::default()
    };
    let mut db = Database::create(&env, path, &options).unwrap();
    let mut t = db.create_table("t").unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in input.ops.iter().take(2000) {
        outcome.ops += 1;
        match op {
            Op::Put { key, len, fill } => {
                let value = vec![*fill; (*len % 6000) as usize];
                outcome.long_values += usize::from(value.len() > page_size);
                db.put(t, &key.bytes(), &value).unwrap();
                model.insert(key.bytes(), value);
            }
            Op::PutLarge { key, pages } => {
                let value: Vec<u8> = (0..(*pages as usize % 40) * 4000)
                    .map(|i| i as u8)
                    .collect();
                outcome.long_values += usize::from(value.len() > page_size);
                db.put(t, &key.bytes(), &value).unwrap();
                model.insert(key.bytes(), value);
            }
            Op::Delete { key } => {
                assert_eq!(
                    db.delete(t, &key.bytes()).unwrap(),
                    model.remove(&key.bytes()).is_some()
                )
            }
            Op::Get { key } => {
                assert_eq!(
                    db.get(t, &key.bytes()).unwrap().as_ref(),
                    model.get(&key.bytes())
                )
            }
            Op::Seek { key, mode } => {
                let k = key.bytes();
                let (mode, expected) = match mode % 5 {
                    0 => (
                        SeekMode::Eq,
                        model.get_key_value(&k).map(|(k, _)| k.clone()),
                    ),
                    1 => (
                        SeekMode::Ge,
                        model.range(k.clone()..).next().map(|(k, _)| k.clone()),
                    ),
                    2 => (
                        SeekMode::Gt,
                        model
                            .range(k.clone()..)
                            .find(|(x, _)| **x != k)
                            .map(|(k, _)| k.clone()),
                    ),
                    3 => (
                        SeekMode::Le,
                        model
                            .range(..=k.clone())
                            .next_back()
                            .map(|(k, _)| k.clone()),
                    ),
                    _ => (
                        SeekMode::Lt,
                        model.range(..k.clone()).next_back().map(|(k, _)| k.clone()),
                    ),
                };
                let mut cursor = db.cursor(t).unwrap();
                assert_eq!(cursor.seek(&k, mode).unwrap(), expected.is_some());
                if let Some(expected) = expected {
                    assert_eq!(cursor.key().unwrap(), expected.as_slice());
                }
            }
            Op::Reopen => {
                outcome.reopens += 1;
                db.close().unwrap();
                db = Database::open(&env, path, &options).unwrap();
                t = db.open_table("t").unwrap();
            }
        }
    }
    let all: Vec<(Vec<u8>, Vec<u8>)> = db
        .range(t, .., false)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        all.iter().map(|(k, v)| (k, v)).eq(model.iter()),
        "the table differs from the model"
    );
    outcome.records = db.check_integrity().unwrap().tables["t"].records;
    assert_eq!(outcome.records, model.len() as u64);
    db.close().unwrap();
    Some(outcome)
}
