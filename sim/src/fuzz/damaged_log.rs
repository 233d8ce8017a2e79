//! The `damaged_log` target: a crashed instance — a database, its current log and the
//! archived generations before it, a checkpoint — with its files damaged by the input (bytes
//! changed, optionally with the log segment's checksum recomputed so the damage passes it and
//! reaches replay; a file truncated or removed), then recovered and read.
//!
//! A panic or a hang is a bug. Damage not resealed that recovery accepts must leave a sound
//! database (the integrity check passes, unless the database file itself was damaged) holding
//! exactly the table as it was at some commit: a torn or removed log tail may lose the latest
//! commits, never resurrect deleted records or invent values. Resealed damage may do anything
//! but panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use jetdb::{
    CommitMode, Env, ErrorKind, Instance, InstanceParams, ManualClock, MemVfs, OpenMode,
    PlantedBug, SeededEntropy, Vfs,
};

const SEGMENT: usize = 4096;

/// One change to the instance's files. A `file` picks among the files left, sorted by name,
/// modulo their number.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// XOR a byte; `reseal` recomputes the checksum of the log segment holding it (not of a
    /// log's first segment, its header).
    Xor {
        /// Which file.
        file: u8,
        /// Where, modulo the file's length.
        at: u32,
        /// The bits flipped.
        mask: u8,
        /// Recompute the segment's checksum.
        reseal: bool,
    },
    /// Cut a file to `len` modulo its length plus one.
    Truncate {
        /// Which file.
        file: u8,
        /// The new length.
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
    /// A changed log segment was resealed, so its checksum passes.
    pub resealed: bool,
    /// What init (recovery) did.
    pub init: Result<(), ErrorKind>,
    /// Records read from table "t" after recovery.
    pub records: usize,
    /// The integrity check after recovery, if it ran: its error, if it failed.
    pub integrity: Option<Result<(), ErrorKind>>,
}

fn params() -> InstanceParams {
    let mut p = InstanceParams::in_directory("inst");
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p
}

fn env(vfs: &MemVfs) -> Env {
    Env::new(
        Arc::new(vfs.clone()),
        Arc::new(ManualClock::new(7)),
        Arc::new(SeededEntropy::new(3)),
    )
}

/// A table's records, by key.
pub type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// The files of the crashed instance, by name (sorted). Built once per process.
pub fn pristine() -> &'static BTreeMap<String, Vec<u8>> {
    &crashed().0
}

/// Table "t" as it was after each commit (and empty, just created), in commit order.
pub fn committed_states() -> &'static [Records] {
    &crashed().1
}

/// The crashed instance's files and the table's committed states.
type Crashed = (BTreeMap<String, Vec<u8>>, Vec<Records>);

fn crashed() -> &'static Crashed {
    static CRASHED: OnceLock<Crashed> = OnceLock::new();
    CRASHED.get_or_init(|| {
        let vfs = MemVfs::new();
        vfs.create_dir(Path::new("inst")).unwrap();
        let instance = Instance::new(env(&vfs), params());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        let mut table = Records::new();
        let mut states = vec![table.clone()];
        for i in 0u32..60 {
            s.begin_transaction().unwrap();
            let (key, value) = (
                format!("{i:05}").into_bytes(),
                vec![i as u8; 50 + (i as usize % 7) * 300],
            );
            s.put(t, &key, &value).unwrap();
            table.insert(key, value);
            if i % 9 == 0 {
                let key = format!("{:05}", i / 2).into_bytes();
                s.delete(t, &key).unwrap();
                table.remove(&key);
            }
            let mode = if i % 4 == 0 {
                CommitMode::Lazy
            } else {
                CommitMode::Durable
            };
            s.commit_transaction(mode).unwrap();
            states.push(table.clone());
        }
        drop(s);
        drop(instance); // a crash: no term
        let mut files = BTreeMap::new();
        for name in vfs.list(Path::new("inst")).unwrap() {
            let file = vfs
                .open(&PathBuf::from("inst").join(&name), OpenMode::Read)
                .unwrap();
            let mut bytes = vec![0u8; file.len().unwrap() as usize];
            file.read_exact_at(&mut bytes, 0).unwrap();
            files.insert(name, bytes);
        }
        assert!(
            files.len() >= 4,
            "a database, a checkpoint, the current log and an archived generation"
        );
        (files, states)
    })
}

/// The target: panics on a finding (see the module's documentation).
pub fn damaged_log(data: &[u8]) {
    damaged_log_with(data, None);
}

/// [`damaged_log`] with `bug` planted in the recovering engine, returning the path the input
/// took (`None` if the bytes do not decode, which libFuzzer's harness skips too, or if every
/// file was removed).
pub fn damaged_log_with(data: &[u8], bug: Option<PlantedBug>) -> Option<Outcome> {
    let damage = Vec::<Damage>::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let mut files = pristine().clone();
    let mut resealed = false;
    // Damage the database file itself may show: the integrity check finds it.
    let mut database_damaged = false;
    for d in damage.iter().take(4) {
        let names: Vec<String> = files.keys().cloned().collect();
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
                if bytes.is_empty() {
                    continue;
                }
                let at = at as usize % bytes.len();
                bytes[at] ^= mask;
                database_damaged |= name.ends_with(".edb") && mask != 0;
                if reseal && name.ends_with(".log") && at >= SEGMENT {
                    let seg = at / SEGMENT * SEGMENT;
                    if let Some(seg) = bytes.get_mut(seg..seg + SEGMENT) {
                        let crc = crc32fast::hash(&seg[4..]);
                        seg[..4].copy_from_slice(&crc.to_le_bytes());
                        resealed |= mask != 0;
                    }
                }
            }
            Damage::Truncate { file, len } => {
                let name = pick(file);
                let bytes = files.get_mut(&name).unwrap();
                let len = len as usize % (bytes.len() + 1);
                database_damaged |= name.ends_with(".edb") && len < bytes.len();
                bytes.truncate(len);
            }
            Damage::Remove { file } => {
                let name = pick(file);
                database_damaged |= name.ends_with(".edb");
                files.remove(&name);
                if files.is_empty() {
                    return None;
                }
            }
        }
    }
    let vfs = MemVfs::new();
    vfs.create_dir(Path::new("inst")).unwrap();
    for (name, bytes) in &files {
        let f = vfs
            .open(&PathBuf::from("inst").join(name), OpenMode::CreateNew)
            .unwrap();
        f.write_all_at(bytes, 0).unwrap();
    }
    let mut outcome = Outcome {
        resealed,
        init: Ok(()),
        records: 0,
        integrity: None,
    };
    let instance = Instance::new(env(&vfs).with_planted_bug(bug), params());
    if let Err(err) = instance.init() {
        outcome.init = Err(err.kind());
        return Some(outcome);
    }
    let Ok(mut s) = instance.begin_session() else {
        return Some(outcome);
    };
    // `None`: the table could not be read through.
    let mut table = Some(Records::new());
    if let Ok(t) = s.open_table("t")
        && let Ok(range) = s.range(t, .., false)
    {
        for record in range {
            let Ok((key, value)) = record else {
                table = None;
                break;
            };
            outcome.records += 1;
            if let Some(table) = &mut table {
                table.insert(key, value);
            }
        }
    }
    let integrity = instance.check_integrity().map(drop).map_err(|e| e.kind());
    outcome.integrity = Some(integrity);
    if !resealed {
        assert!(
            integrity.is_ok() || database_damaged,
            "recovery accepted damage to the log or checkpoint and left an unsound database: \
             {integrity:?}"
        );
        if integrity.is_ok() {
            let table = table.expect("a sound database reads through");
            assert!(
                committed_states().contains(&table),
                "recovery left table t ({} records) as it never was at a commit",
                table.len()
            );
        }
    }
    drop(s);
    let _ = instance.term();
    Some(outcome)
}
