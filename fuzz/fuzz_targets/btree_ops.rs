//! Operations on a table against a `BTreeMap` model: after every step and at the end (also
//! after a reopen) the table must agree with the model, and the integrity check must pass.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::Arbitrary;
use jetdb::{Database, DatabaseOptions, Env, SeekMode};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Put { key: Key, len: u16, fill: u8 },
    PutLarge { key: Key, pages: u8 },
    Delete { key: Key },
    Get { key: Key },
    Seek { key: Key, mode: u8 },
    Reopen,
}

/// Keys from a small space, so operations collide.
#[derive(Arbitrary, Debug)]
struct Key(u16, u8);

impl Key {
    fn bytes(&self) -> Vec<u8> {
        let mut key = self.0.to_be_bytes().to_vec();
        key.resize(2 + (self.1 % 40) as usize, self.1);
        key
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    page_shift: u8,
    tiny_cache: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let env = Env::memory(0);
    let path = Path::new("f.edb");
    let page_size = 4096 << (input.page_shift % 4);
    let cache_size = if input.tiny_cache { 0 } else { 4 << 20 };
    let options = DatabaseOptions { page_size, cache_size, read_only: false };
    let mut db = Database::create(&env, path, &options).unwrap();
    let mut t = db.create_table("t").unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in input.ops.iter().take(2000) {
        match op {
            Op::Put { key, len, fill } => {
                let value = vec![*fill; (*len % 6000) as usize];
                db.put(t, &key.bytes(), &value).unwrap();
                model.insert(key.bytes(), value);
            }
            Op::PutLarge { key, pages } => {
                let value: Vec<u8> = (0..(*pages as usize % 40) * 4000).map(|i| i as u8).collect();
                db.put(t, &key.bytes(), &value).unwrap();
                model.insert(key.bytes(), value);
            }
            Op::Delete { key } => assert_eq!(db.delete(t, &key.bytes()).unwrap(), model.remove(&key.bytes()).is_some()),
            Op::Get { key } => assert_eq!(db.get(t, &key.bytes()).unwrap().as_ref(), model.get(&key.bytes())),
            Op::Seek { key, mode } => {
                let k = key.bytes();
                let (mode, expected) = match mode % 5 {
                    0 => (SeekMode::Eq, model.get_key_value(&k).map(|(k, _)| k.clone())),
                    1 => (SeekMode::Ge, model.range(k.clone()..).next().map(|(k, _)| k.clone())),
                    2 => (SeekMode::Gt, model.range(k.clone()..).find(|(x, _)| **x != k).map(|(k, _)| k.clone())),
                    3 => (SeekMode::Le, model.range(..=k.clone()).next_back().map(|(k, _)| k.clone())),
                    _ => (SeekMode::Lt, model.range(..k.clone()).next_back().map(|(k, _)| k.clone())),
                };
                let mut cursor = db.cursor(t).unwrap();
                assert_eq!(cursor.seek(&k, mode).unwrap(), expected.is_some());
                if let Some(expected) = expected {
                    assert_eq!(cursor.key().unwrap(), expected.as_slice());
                }
            }
            Op::Reopen => {
                db.close().unwrap();
                db = Database::open(&env, path, &options).unwrap();
                t = db.open_table("t").unwrap();
            }
        }
    }
    let all: Vec<(Vec<u8>, Vec<u8>)> = db.range(t, .., false).unwrap().map(Result::unwrap).collect();
    assert!(all.iter().map(|(k, v)| (k, v)).eq(model.iter()));
    assert_eq!(db.check_integrity().unwrap().tables["t"].records, model.len() as u64);
    db.close().unwrap();
});
