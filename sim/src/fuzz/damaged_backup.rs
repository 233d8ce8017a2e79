//! The `damaged_backup` target: a finished backup set — a full backup taken online and an
//! incremental one — with its files damaged by the input (bytes changed, files truncated or
//! removed), then verified and restored.
//!
//! Damage as bit rot makes it (no checksum recomputed): restore must refuse with a documented
//! error ([`jetdb::RESTORE_DAMAGE_ERRORS`]) or give exactly the backup's snapshot, never other
//! data, and `verify_backup` must report the damage, with restore's error among its problems.
//! Damage resealed (a log segment's or the manifest's checksum recomputed to pass) may do
//! anything but panic. A whole set verifies clean; a refused restore leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use jetdb::{
    BackupFlags, CommitMode, Env, ErrorKind, Instance, InstanceParams, ManualClock, MemVfs,
    OpenMode, PlantedBug, SeededEntropy, Vfs,
};

const SEGMENT: usize = 4096;

/// One change to the set. A `file` picks among the files left, sorted by path, modulo their
/// number.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// XOR a byte (a zero mask changes nothing); `reseal` recomputes the checksum of the
    /// manifest or of the log segment holding it (not of a log's first segment, its header;
    /// nothing is recomputed in the database copy).
    Xor {
        /// Which file.
        file: u8,
        /// Where, modulo the file's length.
        at: u32,
        /// The bits flipped.
        mask: u8,
        /// Recompute the checksum over the change.
        reseal: bool,
    },
    /// Cut a file to `len` modulo its length plus one.
    Truncate {
        /// Which file.
        file: u8,
        /// The new length, modulo the old one plus one.
        len: u32,
    },
    /// Remove a file.
    Remove {
        /// Which file.
        file: u8,
    },
}

/// The path an input took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The set was left as it was.
    pub whole: bool,
    /// Some damage was resealed (then anything but a panic is allowed).
    pub resealed: bool,
    /// The kinds of the problems `verify_backup` reported, in order.
    pub verify_problems: Vec<ErrorKind>,
    /// What restore did: restored (the snapshot, if no damage was resealed) or refused.
    pub restore: Result<(), ErrorKind>,
}

/// A table's records, by key.
pub type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// A backup set's files (paths under `bk/`, sorted) and what a restore of it must hold.
pub type Set = (BTreeMap<PathBuf, Vec<u8>>, Records);

fn params(dir: &str) -> InstanceParams {
    let mut p = InstanceParams::in_directory(dir);
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p.create_path_if_not_exist = true;
    p
}

fn env(vfs: &MemVfs) -> Env {
    Env::new(
        Arc::new(vfs.clone()),
        Arc::new(ManualClock::new(7)),
        Arc::new(SeededEntropy::new(3)),
    )
}

fn records(instance: &Instance) -> Records {
    let mut s = instance.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.range(t, .., false).unwrap().map(Result::unwrap).collect()
}

/// The backup directory's files (paths under `bk/`, sorted) and what a restore of it must
/// hold. Built once per process.
pub fn pristine() -> &'static Set {
    static SET: OnceLock<Set> = OnceLock::new();
    SET.get_or_init(|| {
        let vfs = MemVfs::new();
        let instance = Instance::new(env(&vfs), params("inst"));
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        let put = |s: &mut jetdb::Session, i: u32| {
            s.begin_transaction().unwrap();
            s.put(
                t,
                format!("{i:05}").as_bytes(),
                &vec![i as u8; 50 + (i as usize % 7) * 300],
            )
            .unwrap();
            s.commit_transaction(if i.is_multiple_of(3) {
                CommitMode::Lazy
            } else {
                CommitMode::Durable
            })
            .unwrap();
        };
        for i in 0..40 {
            put(&mut s, i);
        }
        let mut job = instance
            .begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)
            .unwrap();
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
        instance
            .backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None)
            .unwrap();
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

/// The target: panics on a finding (see the module's documentation).
pub fn damaged_backup(data: &[u8]) {
    damaged_backup_with(data, None);
}

/// [`damaged_backup`] with `bug` planted in the restoring engine, returning the path the input
/// took (`None` if the bytes do not decode, which libFuzzer's harness skips too).
pub fn damaged_backup_with(data: &[u8], bug: Option<PlantedBug>) -> Option<Outcome> {
    let damage = Vec::<Damage>::arbitrary_take_rest(Unstructured::new(data)).ok()?;
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
            Damage::Xor {
                file,
                at,
                mask,
                reseal,
            } => {
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
                // `resealed` only where a checksum was recomputed: it switches the data and
                // error checks off, so damage left as rot (the database copy, a manifest too
                // short to hold a checksum, a log's header segment or a segment cut short)
                // stays checked.
                if name.extension().is_some_and(|e| e == "manifest") && bytes.len() >= 4 {
                    let crc = crc32fast::hash(&bytes[4..]);
                    bytes[..4].copy_from_slice(&crc.to_le_bytes());
                    resealed = true;
                } else if name.extension().is_some_and(|e| e == "log") && at >= SEGMENT {
                    let seg = at / SEGMENT * SEGMENT;
                    if let Some(seg) = bytes.get_mut(seg..seg + SEGMENT) {
                        let crc = crc32fast::hash(&seg[4..]);
                        seg[..4].copy_from_slice(&crc.to_le_bytes());
                        resealed = true;
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
    // The directory stays when every file in it is removed: an empty set must be refused.
    vfs.create_dir_all(Path::new("bk")).unwrap();
    for (path, bytes) in &files {
        vfs.create_dir_all(jetdb::parent_dir(path)).unwrap();
        let f = vfs.open(path, OpenMode::CreateNew).unwrap();
        f.write_all_at(bytes, 0).unwrap();
    }
    let whole = &files == pristine;
    let report = jetdb::verify_backup(&vfs, Path::new("bk")).expect("the directory is there");
    if whole {
        assert!(report.is_ok(), "a whole set: {:?}", report.problems);
    } else if !resealed {
        assert!(!report.is_ok(), "damage went unreported");
    }
    let restored = Instance::new(env(&vfs).with_planted_bug(bug), params("restored"));
    let restore = match restored.restore(Path::new("bk"), None) {
        Ok(_) => {
            restored.init().unwrap();
            let got = records(&restored);
            if !resealed {
                assert_eq!(&got, expected, "a damaged backup restored to other data");
            }
            restored.term().unwrap();
            Ok(())
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
            Err(err.kind())
        }
    };
    Some(Outcome {
        whole,
        resealed,
        verify_problems: report.problems.iter().map(|p| p.kind()).collect(),
        restore,
    })
}
