//! A finished backup set — a full backup taken online and an incremental one — with its files
//! damaged by the fuzzer (bytes changed, files truncated or removed), then restored. Damage as
//! bit rot makes it (changes that no checksum was recomputed for): restore must refuse with a
//! documented error or give exactly the backup's snapshot, never other data. Damage resealed
//! (a log segment's or the manifest's checksum recomputed to pass) may do anything but panic.
//! `verify_backup` runs on the same set first: it must report any damage as bit rot makes it,
//! whatever restore refuses (with restore's error among its problems), and nothing in a set
//! left whole.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use jetdb::{
    BackupFlags, CommitMode, Env, Instance, InstanceParams, ManualClock, MemVfs,
    OpenMode, SeededEntropy, Vfs,
};
use libfuzzer_sys::fuzz_target;

const SEGMENT: usize = 4096;

#[derive(Arbitrary, Debug)]
enum Damage {
    Xor { file: u8, at: u32, mask: u8, reseal: bool },
    Truncate { file: u8, len: u32 },
    Remove { file: u8 },
}

type Records = BTreeMap<Vec<u8>, Vec<u8>>;

fn params(dir: &str) -> InstanceParams {
    let mut p = InstanceParams::in_directory(dir);
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p.create_path_if_not_exist = true;
    p
}

fn env(vfs: &MemVfs) -> Env {
    Env::new(Arc::new(vfs.clone()), Arc::new(ManualClock::new(7)), Arc::new(SeededEntropy::new(3)))
}

fn records(instance: &Instance) -> Records {
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.range(t, .., false).unwrap().map(Result::unwrap).collect()
}

/// The backup directory's files (relative paths) and what a restore of it must hold.
fn pristine() -> &'static (BTreeMap<PathBuf, Vec<u8>>, Records) {
    static SET: OnceLock<(BTreeMap<PathBuf, Vec<u8>>, Records)> = OnceLock::new();
    SET.get_or_init(|| {
        let vfs = MemVfs::new();
        let instance = Instance::new(env(&vfs), params("inst"));
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        let put = |s: &mut jetdb::Session, i: u32| {
            s.begin_transaction().unwrap();
            s.put(t, format!("{i:05}").as_bytes(), &vec![i as u8; 50 + (i as usize % 7) * 300]).unwrap();
            s.commit_transaction(if i % 3 == 0 { CommitMode::Lazy } else { CommitMode::Durable }).unwrap();
        };
        for i in 0..40 {
            put(&mut s, i);
        }
        let mut job = instance.begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None).unwrap();
        job.set_step_size(4096);
        let mut i = 40;
        while job.step().unwrap() {
            put(&mut s, i % 50);
            i += 1;
        }
        job.finish().unwrap();
        for i in 100..130 {
            put(&mut s, i);
        }
        let expected = records(&instance);
        instance.backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None).unwrap();
        put(&mut s, 999);
        drop(s);
        instance.term().unwrap();
        let mut files = BTreeMap::new();
        let mut dirs = vec![PathBuf::from("bk")];
        while let Some(dir) = dirs.pop() {
            for name in vfs.list(&dir).unwrap() {
                let path = dir.join(&name);
                if vfs.is_dir(&path).unwrap() {
                    dirs.push(path);
                    continue;
                }
                let file = vfs.open(&path, OpenMode::Read).unwrap();
                let mut bytes = vec![0u8; file.len().unwrap() as usize];
                file.read_exact_at(&mut bytes, 0).unwrap();
                files.insert(path, bytes);
            }
        }
        assert!(files.len() >= 4, "a manifest, a database copy and logs");
        (files, expected)
    })
}


fuzz_target!(|damage: Vec<Damage>| {
    let (pristine, expected) = pristine();
    let mut files = pristine.clone();
    let mut resealed = false;
    for d in damage.iter().take(4) {
        let names: Vec<PathBuf> = files.keys().cloned().collect();
        if names.is_empty() {
            break;
        }
        let pick = |i: u8| names[i as usize % names.len()].clone();
        match *d {
            Damage::Xor { file, at, mask, reseal } => {
                let name = pick(file);
                let bytes = files.get_mut(&name).unwrap();
                if bytes.is_empty() || mask == 0 {
                    continue;
                }
                let at = at as usize % bytes.len();
                bytes[at] ^= mask;
                if !reseal {
                    continue;
                }
                resealed = true;
                if name.extension().is_some_and(|e| e == "manifest") && bytes.len() >= 4 {
                    let crc = crc32fast::hash(&bytes[4..]);
                    bytes[..4].copy_from_slice(&crc.to_le_bytes());
                } else if name.extension().is_some_and(|e| e == "log") {
                    let seg = at / SEGMENT * SEGMENT;
                    if let Some(seg) = bytes.get_mut(seg..seg + SEGMENT) {
                        let crc = crc32fast::hash(&seg[4..]);
                        seg[..4].copy_from_slice(&crc.to_le_bytes());
                    }
                }
            }
            Damage::Truncate { file, len } => {
                let bytes = files.get_mut(&pick(file)).unwrap();
                let len = len as usize % (bytes.len() + 1);
                bytes.truncate(len);
            }
            Damage::Remove { file } => {
                files.remove(&pick(file));
            }
        }
    }
    let vfs = MemVfs::new();
    for (path, bytes) in &files {
        vfs.create_dir_all(jetdb::parent_dir(path)).unwrap();
        let f = vfs.open(path, OpenMode::CreateNew).unwrap();
        f.write_all_at(bytes, 0).unwrap();
    }
    let report = jetdb::verify_backup(&vfs, Path::new("bk")).expect("the directory is there");
    if &files == pristine {
        assert!(report.is_ok(), "a whole set: {:?}", report.problems);
    } else if !resealed {
        assert!(!report.is_ok(), "damage went unreported");
    }
    let restored = Instance::new(env(&vfs), params("restored"));
    match restored.restore(Path::new("bk"), None) {
        Ok(_) => {
            restored.init().unwrap();
            let got = records(&restored);
            if !resealed {
                assert_eq!(&got, expected, "a damaged backup restored to other data");
            }
            restored.term().unwrap();
        }
        Err(err) => {
            assert!(
                resealed || jetdb::RESTORE_DAMAGE_ERRORS.contains(&err.kind()),
                "restore refused the damaged set with an undocumented error: {err}"
            );
            assert!(
                resealed || report.problems.iter().any(|p| p.kind() == err.kind()),
                "restore refused the set with {err}; verify reported {:?}",
                report.problems
            );
            // A refused restore leaves nothing behind.
            let left = vfs.list(Path::new("restored")).unwrap_or_default();
            assert!(left.is_empty(), "a failed restore left {left:?}");
        }
    }
});
