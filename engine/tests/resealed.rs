//! Damage that a checksum cannot see: bytes changed inside pages whose checksums are then
//! recomputed, as a bug that wrote nonsense would leave them. The structure checks must turn
//! every such page into a `JetError` or a consistent result — never a panic, never a hang.

use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{Database, DatabaseOptions, MemVfs};
use proptest::prelude::*;
use support::{PAGE, env_holding, env_over, options, read_all};

mod support;

/// A database image and the content it holds.
type Image = (Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>);

/// Built once: a three-level table with large values, and a deleted table's free pages.
fn pristine() -> Image {
    static PRISTINE: std::sync::OnceLock<Image> = std::sync::OnceLock::new();
    PRISTINE.get_or_init(build).clone()
}

fn build() -> Image {
    let vfs = MemVfs::new();
    let env = env_over(vfs.clone());
    let mut db = Database::create(&env, Path::new("d.edb"), &options()).unwrap();
    let t = db.create_table("t").unwrap();
    let mut model = BTreeMap::new();
    for i in 0u32..6_000 {
        let value = if i % 1000 == 1 {
            vec![i as u8; 9000]
        } else {
            vec![i as u8; (i % 90) as usize]
        };
        // Long keys keep separators long, so the tree grows three levels deep.
        let key = format!("{i:0>100}").into_bytes();
        db.put(t, &key, &value).unwrap();
        model.insert(key, value);
    }
    let s = db.create_table("s").unwrap();
    for i in 0u32..3000 {
        db.put(s, &i.to_le_bytes(), b"x").unwrap();
    }
    db.delete_table("s").unwrap();
    db.close().unwrap();
    (read_all(&vfs, "d.edb"), model)
}

/// Everything an application might do with a damaged database; errors are fine, panics not.
fn exercise(bytes: &[u8], model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let env = env_holding(bytes);
    let options = DatabaseOptions {
        page_size: PAGE,
        cache_size: 0,
        ..Default::default()
    };
    let _ = jetdb::verify_file(&*env.vfs, Path::new("d.edb"));
    let Ok(mut db) = Database::open(&env, Path::new("d.edb"), &options) else {
        return;
    };
    let _ = db.check_integrity();
    let Ok(t) = db.open_table("t") else { return };
    if let Ok(range) = db.range(t, .., false) {
        for record in range.take(model.len() + 10) {
            if record.is_err() {
                break;
            }
        }
    }
    if let Ok(range) = db.range(t, .., true) {
        range.take(model.len() + 10).for_each(drop);
    }
    for key in model.keys().step_by(37) {
        let _ = db.get(t, key);
    }
    for i in 0u32..400 {
        let key = (i * 7).to_be_bytes();
        let result = if i % 3 == 0 {
            db.delete(t, &key).map(drop)
        } else {
            db.put(t, &key, &[9u8; 700])
        };
        if result.is_err() {
            break;
        }
    }
    let _ = db.create_table("new");
    let _ = db.delete_table("t");
    let _ = db.check_integrity();
    let _ = db.close();
}

fn reseal(bytes: &mut [u8], page: usize) {
    let page = &mut bytes[page * PAGE..(page + 1) * PAGE];
    let sum = jetdb::page::checksum(page);
    page[0..4].copy_from_slice(&sum.to_le_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn resealed_damage_never_panics(
        edits in proptest::collection::vec((any::<u32>(), any::<u8>(), 0usize..3), 1..6),
    ) {
        let (mut bytes, model) = pristine();
        let pages = bytes.len() / PAGE;
        for (at, xor, how) in edits {
            let page = at as usize % pages;
            // Favour the page header and the start of the body, where the structure lives.
            let offset = match how {
                0 => 4 + at as usize % 60,
                1 => 32 + at as usize % 64,
                _ => 4 + at as usize % (PAGE - 4),
            };
            bytes[page * PAGE + offset] ^= xor.max(1);
            reseal(&mut bytes, page);
        }
        exercise(&bytes, &model);
    }
}

#[test]
fn the_pristine_database_is_sound() {
    let (bytes, model) = pristine();
    exercise(&bytes, &model);
}

/// Opens the damaged image and runs the integrity check.
fn integrity(bytes: &[u8]) -> jetdb::Result<jetdb::IntegrityReport> {
    let env = env_holding(bytes);
    Database::open(
        &env,
        Path::new("d.edb"),
        &DatabaseOptions {
            read_only: true,
            ..Default::default()
        },
    )?
    .check_integrity()
}

#[test]
fn links_to_fixed_shared_or_missing_pages_are_caught() {
    let (bytes, model) = pristine();
    let pages = bytes.len() / PAGE;
    let branches: Vec<usize> = (3..pages).filter(|&p| bytes[p * PAGE + 16] == 3).collect();
    assert!(branches.len() >= 2, "the pristine table has branch pages");
    // Branch body: count u16, first child u32, then (key length u8, key, child u32)...
    let first_child = |page: usize| {
        let at = page * PAGE + 34;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
    };
    let mut cases = 0;
    for &branch in &branches {
        let own_child = first_child(branch);
        let sibling = branches.iter().copied().find(|&b| b != branch).unwrap();
        // The header copy, the catalog root, the page itself, another branch, a page beyond the end.
        for target in [1usize, 2, branch, sibling, own_child + 1, pages + 5] {
            if target == own_child {
                continue;
            }
            let mut damaged = bytes.clone();
            damaged[branch * PAGE + 34..branch * PAGE + 38]
                .copy_from_slice(&(target as u32).to_le_bytes());
            reseal(&mut damaged, branch);
            let verdict = integrity(&damaged);
            assert!(
                verdict.is_err(),
                "branch {branch} -> page {target} went unnoticed: {verdict:?}"
            );
            exercise(&damaged, &model);
            cases += 1;
        }
    }
    assert!(cases >= 10);
}

#[test]
fn a_page_dropped_from_the_free_list_is_reported_leaked() {
    let (mut bytes, _) = pristine();
    let field = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    // Header body: free list head at offset 100, free page count at 104 (see header.rs).
    let head = field(&bytes, 100) as usize;
    let count = field(&bytes, 104);
    assert!(count >= 2, "the pristine image has free pages");
    let next = field(&bytes, head * PAGE + 32);
    for copy in 0..2 {
        let base = copy * PAGE;
        bytes[base + 100..base + 104].copy_from_slice(&next.to_le_bytes());
        bytes[base + 104..base + 108].copy_from_slice(&(count - 1).to_le_bytes());
        reseal(&mut bytes, copy);
    }
    let err = integrity(&bytes).unwrap_err();
    assert_eq!(err.kind(), jetdb::ErrorKind::DatabaseCorrupted);
    assert!(
        err.message()
            .contains(&format!("page {head} is used by nothing")),
        "{err}"
    );
}
