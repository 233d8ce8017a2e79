//! The `damaged_database` target: a sound database image damaged by the input — bytes
//! changed, pages zeroed, truncated, copied onto another or given back their older version (a
//! lost write), optionally re-checksummed so the damage passes the checksum — then opened and
//! used. Every outcome must be an error or a result; a panic or a hang is a bug. Unless a byte
//! was changed under a new checksum (which no check can see), every record read must be the one
//! last written: a stale page is refused by the flush map, never returned as data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use jetdb::{
    Database, DatabaseOptions, Env, ErrorKind, ManualClock, MemVfs, OpenMode, PlantedBug,
    SeededEntropy, Vfs,
};

const PAGE: usize = 4096;

/// One change to the image. Page numbers are taken modulo the pages left.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// XOR a byte (a zero mask flips the lowest bit); `reseal` recomputes its page's checksum.
    Xor {
        /// Where, modulo the image's length.
        at: u32,
        /// The bits flipped.
        mask: u8,
        /// Recompute the page's checksum.
        reseal: bool,
    },
    /// Fill a page with zeros.
    ZeroPage {
        /// Which page.
        page: u16,
    },
    /// Copy a page onto another; `reseal` re-stamps its number and checksum so it passes as
    /// its new self.
    CopyPage {
        /// The page copied.
        from: u16,
        /// The page overwritten.
        to: u16,
        /// Re-stamp the page number and checksum.
        reseal: bool,
    },
    /// Cut the image to `len` modulo its length plus one.
    Truncate {
        /// The new length.
        len: u32,
    },
    /// The page's last write lost: it holds its version from before the second round.
    Stale {
        /// Which page.
        page: u16,
    },
}

/// The path an input took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A byte was changed under a new checksum (then reads are not compared).
    pub forged: bool,
    /// Opening the database failed with this error.
    pub open_refused: Option<ErrorKind>,
    /// The integrity check's result, if the database opened: its error, if it failed.
    pub integrity: Option<Result<(), ErrorKind>>,
    /// Records the scan returned.
    pub records_read: usize,
    /// Reads (scan or point) that failed with an error.
    pub read_errors: usize,
    /// Writes that succeeded after the reads.
    pub writes: usize,
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
        let env = Env::new(
            Arc::new(vfs.clone()),
            Arc::new(ManualClock::new(0)),
            Arc::new(SeededEntropy::new(1)),
        );
        let options = DatabaseOptions {
            page_size: PAGE,
            ..Default::default()
        };
        let mut db = Database::create(&env, Path::new("d.edb"), &options).unwrap();
        let t = db.create_table("t").unwrap();
        let mut model = BTreeMap::new();
        for i in 0u32..2500 {
            let value = if i % 700 == 3 {
                vec![i as u8; 10_000]
            } else {
                vec![i as u8; (i % 80) as usize]
            };
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
        Pristine {
            old,
            new: image(&vfs),
            model,
        }
    })
}

/// The number of pages in the sound image, for choosing damage.
pub fn pristine_pages() -> usize {
    pristine().new.len() / PAGE
}

/// The pages whose last write a [`Damage::Stale`] can lose (they differ between the rounds).
pub fn changed_pages() -> Vec<usize> {
    let p = pristine();
    (0..p.new.len() / PAGE)
        .filter(|&i| {
            p.old
                .get(i * PAGE..(i + 1) * PAGE)
                .is_some_and(|old| old != &p.new[i * PAGE..(i + 1) * PAGE])
        })
        .collect()
}

fn reseal(bytes: &mut [u8], page: usize) {
    if let Some(page) = bytes.get_mut(page * PAGE..(page + 1) * PAGE) {
        let sum = jetdb::page::checksum(page);
        page[0..4].copy_from_slice(&sum.to_le_bytes());
    }
}

/// The target: panics on a finding (see the module's documentation).
pub fn damaged_database(data: &[u8]) {
    damaged_database_with(data, None);
}

/// [`damaged_database`] with `bug` planted in the engine that opens the image, returning the
/// path the input took (`None` if the bytes do not decode, which libFuzzer's harness skips too).
pub fn damaged_database_with(data: &[u8], bug: Option<PlantedBug>) -> Option<Outcome> {
    let damages = Vec::<Damage>::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let pristine = pristine();
    let mut bytes = pristine.new.clone();
    let mut outcome = Outcome::default();
    for damage in damages.iter().take(8) {
        let pages = bytes.len() / PAGE;
        if pages == 0 {
            break;
        }
        match *damage {
            Damage::Xor {
                at,
                mask,
                reseal: again,
            } => {
                let at = at as usize % bytes.len();
                bytes[at] ^= mask.max(1);
                if again {
                    reseal(&mut bytes, at / PAGE);
                    // A byte changed under a new checksum is data no check can refuse.
                    outcome.forged = true;
                }
            }
            Damage::ZeroPage { page } => {
                let page = page as usize % pages;
                bytes[page * PAGE..(page + 1) * PAGE].fill(0);
            }
            Damage::CopyPage {
                from,
                to,
                reseal: again,
            } => {
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
    let forged = outcome.forged;
    let vfs = MemVfs::new();
    vfs.open(Path::new("d.edb"), OpenMode::CreateNew)
        .unwrap()
        .write_all_at(&bytes, 0)
        .unwrap();
    let env = Env::new(
        Arc::new(vfs),
        Arc::new(ManualClock::new(0)),
        Arc::new(SeededEntropy::new(1)),
    )
    .with_planted_bug(bug);
    let _ = jetdb::verify_file(&*env.vfs, Path::new("d.edb"));
    let options = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        ..Default::default()
    };
    let mut db = match Database::open(&env, Path::new("d.edb"), &options) {
        Ok(db) => db,
        Err(err) => {
            outcome.open_refused = Some(err.kind());
            return Some(outcome);
        }
    };
    outcome.integrity = Some(db.check_integrity().map(drop).map_err(|e| e.kind()));
    let Ok(t) = db.open_table("t") else {
        return Some(outcome);
    };
    match db.range(t, .., false) {
        Ok(range) => {
            for record in range.take(5000) {
                match &record {
                    Ok((key, value)) => {
                        outcome.records_read += 1;
                        if !forged {
                            assert_eq!(
                                pristine.model.get(key),
                                Some(value),
                                "a scan returned a record never written last"
                            );
                        }
                    }
                    Err(_) => outcome.read_errors += 1,
                }
            }
        }
        Err(_) => outcome.read_errors += 1,
    }
    if !forged {
        for (key, value) in pristine.model.iter().step_by(7) {
            match db.get(t, key) {
                Ok(got) => assert_eq!(
                    got.as_ref(),
                    Some(value),
                    "a read returned what was not written last"
                ),
                Err(_) => outcome.read_errors += 1,
            }
        }
    }
    for i in 0u32..300 {
        let key = format!("{:0>60}", i * 11);
        let result = if i % 3 == 0 {
            db.delete(t, key.as_bytes()).map(drop)
        } else {
            db.put(t, key.as_bytes(), &[7u8; 500])
        };
        if result.is_err() {
            break;
        }
        outcome.writes += 1;
    }
    let _ = db.delete_table("t");
    let _ = db.close();
    Some(outcome)
}
