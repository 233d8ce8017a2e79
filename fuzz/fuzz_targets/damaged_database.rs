//! A sound database image damaged by the fuzzer — bytes changed, pages zeroed, truncated,
//! copied onto another or given back their older version (a lost write), optionally
//! re-checksummed so the damage passes the checksum — then opened and used. Every outcome must
//! be an error or a result; a panic or a hang is a bug. Unless a byte was changed under a new
//! checksum (which no check can see), every record read must be the one last written: a stale
//! page is refused by the flush map, never returned as data.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use jetdb::{Database, DatabaseOptions, Env, ManualClock, MemVfs, OpenMode, SeededEntropy, Vfs};
use libfuzzer_sys::fuzz_target;

const PAGE: usize = 4096;

#[derive(Arbitrary, Debug)]
enum Damage {
    Xor { at: u32, mask: u8, reseal: bool },
    ZeroPage { page: u16 },
    CopyPage { from: u16, to: u16, reseal: bool },
    Truncate { len: u32 },
    /// The page's last write lost: it holds its version from before the second round.
    Stale { page: u16 },
}

/// The image after a first round of writes, the image after a second (overwriting a third of
/// the keys), and what the second holds in table "t".
struct Pristine {
    old: Vec<u8>,
    new: Vec<u8>,
    model: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn key(i: u32) -> Vec<u8> {
    format!("{i:0>60}").into_bytes()
}

fn image(vfs: &MemVfs) -> Vec<u8> {
    let file = vfs.open(Path::new("d.edb"), OpenMode::Read).unwrap();
    let mut bytes = vec![0u8; file.len().unwrap() as usize];
    file.read_exact_at(&mut bytes, 0).unwrap();
    bytes
}

fn pristine() -> &'static Pristine {
    static IMAGE: OnceLock<Pristine> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let vfs = MemVfs::new();
        let env = Env::new(Arc::new(vfs.clone()), Arc::new(ManualClock::new(0)), Arc::new(SeededEntropy::new(1)));
        let options = DatabaseOptions { page_size: PAGE, ..Default::default() };
        let mut db = Database::create(&env, Path::new("d.edb"), &options).unwrap();
        let t = db.create_table("t").unwrap();
        let mut model = BTreeMap::new();
        for i in 0u32..2500 {
            let value = if i % 700 == 3 { vec![i as u8; 10_000] } else { vec![i as u8; (i % 80) as usize] };
            db.put(t, &key(i), &value).unwrap();
            model.insert(key(i), value);
        }
        let s = db.create_table("s").unwrap();
        for i in 0u32..200 {
            db.put(s, &i.to_le_bytes(), b"x").unwrap();
        }
        db.delete_table("s").unwrap();
        db.close().unwrap();
        let old = image(&vfs);
        let mut db = Database::open(&env, Path::new("d.edb"), &options).unwrap();
        for i in (0u32..2500).step_by(3) {
            let value = vec![!(i as u8); (i % 90) as usize];
            db.put(t, &key(i), &value).unwrap();
            model.insert(key(i), value);
        }
        db.close().unwrap();
        Pristine { old, new: image(&vfs), model }
    })
}

fn reseal(bytes: &mut [u8], page: usize) {
    if let Some(page) = bytes.get_mut(page * PAGE..(page + 1) * PAGE) {
        let sum = jetdb::page::checksum(page);
        page[0..4].copy_from_slice(&sum.to_le_bytes());
    }
}

fuzz_target!(|damages: Vec<Damage>| {
    let pristine = pristine();
    let mut bytes = pristine.new.clone();
    // A byte changed under a new checksum is data no check can refuse.
    let mut forged = false;
    for damage in damages.iter().take(8) {
        let pages = bytes.len() / PAGE;
        if pages == 0 {
            break;
        }
        match *damage {
            Damage::Xor { at, mask, reseal: again } => {
                let at = at as usize % bytes.len();
                bytes[at] ^= mask.max(1);
                if again {
                    reseal(&mut bytes, at / PAGE);
                    forged = true;
                }
            }
            Damage::ZeroPage { page } => {
                let page = page as usize % pages;
                bytes[page * PAGE..(page + 1) * PAGE].fill(0);
            }
            Damage::CopyPage { from, to, reseal: again } => {
                let (from, to) = (from as usize % pages, to as usize % pages);
                let copy = bytes[from * PAGE..(from + 1) * PAGE].to_vec();
                bytes[to * PAGE..(to + 1) * PAGE].copy_from_slice(&copy);
                if again {
                    // Re-stamp the page number too, so the page passes as its new self.
                    bytes[to * PAGE + 4..to * PAGE + 8].copy_from_slice(&(to as u32).to_le_bytes());
                    reseal(&mut bytes, to);
                }
            }
            Damage::Truncate { len } => bytes.truncate(len as usize % (bytes.len() + 1)),
            Damage::Stale { page } => {
                let page = page as usize % pages;
                if let Some(old) = pristine.old.get(page * PAGE..(page + 1) * PAGE) {
                    bytes[page * PAGE..(page + 1) * PAGE].copy_from_slice(old);
                }
            }
        }
    }
    let vfs = MemVfs::new();
    vfs.open(Path::new("d.edb"), OpenMode::CreateNew).unwrap().write_all_at(&bytes, 0).unwrap();
    let env = Env::new(Arc::new(vfs), Arc::new(ManualClock::new(0)), Arc::new(SeededEntropy::new(1)));
    let _ = jetdb::verify_file(&*env.vfs, Path::new("d.edb"));
    let options = DatabaseOptions { page_size: PAGE, cache_size: 0, ..Default::default() };
    let Ok(mut db) = Database::open(&env, Path::new("d.edb"), &options) else { return };
    let _ = db.check_integrity();
    let Ok(t) = db.open_table("t") else { return };
    if let Ok(range) = db.range(t, .., false) {
        for record in range.take(5000) {
            if let (Ok((key, value)), false) = (&record, forged) {
                assert_eq!(pristine.model.get(key), Some(value), "a scan returned a record never written last");
            }
        }
    }
    if !forged {
        for (key, value) in pristine.model.iter().step_by(7) {
            match db.get(t, key) {
                Ok(got) => assert_eq!(got.as_ref(), Some(value), "a read returned what was not written last"),
                Err(_) => {}
            }
        }
    }
    for i in 0u32..300 {
        let key = format!("{:0>60}", i * 11);
        let result = if i % 3 == 0 { db.delete(t, key.as_bytes()).map(drop) } else { db.put(t, key.as_bytes(), &[7u8; 500]) };
        if result.is_err() {
            break;
        }
    }
    let _ = db.delete_table("t");
    let _ = db.close();
});
