//! The manifest of a backup set: the commit record of a backup.
//!
//! A backup directory holds one file `jetbackup.manifest` and one subdirectory per backup set
//! (`set-00000001`, …): the database copy and the log generations of a full backup and of the
//! incremental backups that extend it. The manifest names the current set, lists every file of
//! it with its length and CRC32, and records the backup point. It is written last — as a
//! temporary file, fsynced, renamed into place, its directory fsynced — so a backup exists
//! exactly when its manifest does: a crash before leaves the previous manifest (and set)
//! untouched, and files no manifest lists are debris that the next backup removes and restore
//! never reads.
//!
//! Layout (little-endian; the CRC32 in the first 4 bytes covers the rest):
//!
//! ```text
//!  0  4 CRC32              4  8 magic "JETBKSET"   12 4 format version
//! 16  4 set number        20 16 log signature      36 16 database signature
//! 52  4 page size         56  8 database file length
//! 64  4 the database copy's digest: CRC32 of its pages' checksums in page order
//! 68  8 checkpoint position (generation, offset)   76 8 the checkpoint's last commit
//! 84  1 base name length, the base name; 1 database file name length, the name
//!     then: a count (u32) of backups in the set, each
//!        1 kind (1 full, 2 incremental), 8 mark, 8 time, 8 last commit, 4 + 4 generations
//!     then: a count (u32) of log files, each 4 generation, 8 length, 4 CRC32
//! ```

use std::path::{Path, PathBuf};

use crate::base::codec::{Reader, Writer, crc_holds, seal_crc};
use crate::base::error::{JetError, Result, bail};
use crate::base::vfs::{OpenMode, Vfs, parent_dir};
use crate::store::header::{Lgpos, Signature};
use crate::txn::event::BackupKind;
use crate::wal::log;

/// The manifest's file name in a backup directory.
pub const MANIFEST_NAME: &str = "jetbackup.manifest";
const MAGIC: &[u8; 8] = b"JETBKSET";
const VERSION: u32 = 1;

/// One backup recorded in a set: the full backup that began it or an incremental one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetBackup {
    /// Full or incremental.
    pub kind: BackupKind,
    /// The log position at which it began: its identity.
    pub mark: Lgpos,
    /// When it began (milliseconds since the epoch).
    pub millis: u64,
    /// The last commit it holds: restoring it gives exactly the commits up to this one.
    pub sequence: u64,
    /// The lowest log generation it copied.
    pub gen_low: u32,
    /// The highest log generation it copied.
    pub gen_high: u32,
}

/// One log file of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetLog {
    /// Its generation.
    pub generation: u32,
    /// Its length in bytes.
    pub len: u64,
    /// The CRC32 of the whole file.
    pub crc: u32,
}

/// What a backup directory holds: its current backup set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The set's number: its subdirectory is `set-` and this in eight hex digits.
    pub set: u32,
    /// The log set the backup belongs to.
    pub log_signature: Signature,
    /// The database backed up.
    pub db_signature: Signature,
    /// The database's page size.
    pub page_size: u32,
    /// The length of the database copy.
    pub db_len: u64,
    /// The database copy's digest ([`page_digest`] of its pages): restore refuses a copy
    /// that is not this backup's, though each of its pages is whole.
    pub db_digest: u32,
    /// Where restore starts replaying: the checkpoint when the full backup began.
    pub checkpoint: Lgpos,
    /// The last commit before the checkpoint.
    pub checkpoint_last_commit: u64,
    /// The base name of the log files (`edb`).
    pub base_name: String,
    /// The database file's name.
    pub db_name: String,
    /// The full backup, then each incremental one, in order.
    pub backups: Vec<SetBackup>,
    /// Every log file of the set, by ascending generation, without gaps.
    pub logs: Vec<SetLog>,
}

impl Manifest {
    /// The set's subdirectory name.
    pub fn set_dir_name(set: u32) -> String {
        format!("set-{set:08X}")
    }

    /// The set's subdirectory in backup directory `dir`.
    pub fn set_dir(&self, dir: &Path) -> PathBuf {
        dir.join(Manifest::set_dir_name(self.set))
    }

    /// The last backup of the set: restoring the set gives its snapshot.
    pub fn last(&self) -> &SetBackup {
        self.backups.last().expect("a set has a full backup")
    }

    /// The lowest and highest log generation of the set.
    pub fn log_range(&self) -> (u32, u32) {
        (
            self.logs.first().map_or(0, |l| l.generation),
            self.logs.last().map_or(0, |l| l.generation),
        )
    }

    /// The name of log generation `generation` in the set.
    pub fn log_name(&self, generation: u32) -> String {
        log::archive_name(&self.base_name, generation)
    }

    /// Encodes the manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.u32(0);
        w.bytes(MAGIC);
        w.u32(VERSION);
        w.u32(self.set);
        for sig in [self.log_signature, self.db_signature] {
            w.u64(sig.random);
            w.u64(sig.created_millis);
        }
        w.u32(self.page_size);
        w.u64(self.db_len);
        w.u32(self.db_digest);
        w.u32(self.checkpoint.generation);
        w.u32(self.checkpoint.offset);
        w.u64(self.checkpoint_last_commit);
        for name in [&self.base_name, &self.db_name] {
            assert!(name.len() <= usize::from(u8::MAX), "names are short");
            w.u8(name.len() as u8);
            w.bytes(name.as_bytes());
        }
        w.u32(self.backups.len() as u32);
        for b in &self.backups {
            w.u8(match b.kind {
                BackupKind::Full => 1,
                BackupKind::Incremental => 2,
                BackupKind::Truncate => unreachable!("a truncation is not a backup of a set"),
            });
            w.u32(b.mark.generation);
            w.u32(b.mark.offset);
            w.u64(b.millis);
            w.u64(b.sequence);
            w.u32(b.gen_low);
            w.u32(b.gen_high);
        }
        w.u32(self.logs.len() as u32);
        for l in &self.logs {
            w.u32(l.generation);
            w.u64(l.len);
            w.u32(l.crc);
        }
        seal_crc(&mut out);
        out
    }

    /// Decodes a manifest, checking its CRC and that it describes a well-formed set.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Manifest, String> {
        let manifest = Manifest::decode_fields(bytes)?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Decodes a manifest's fields, checking its CRC but not the set's shape.
    fn decode_fields(bytes: &[u8]) -> std::result::Result<Manifest, String> {
        if bytes.len() < 16 || !crc_holds(bytes) {
            return Err("its checksum does not match".into());
        }
        let f = |err: JetError| err.to_string();
        let mut r = Reader::new(&bytes[4..]);
        if r.bytes(8).map_err(f)? != MAGIC {
            return Err("it is not a backup manifest".into());
        }
        let version = r.u32().map_err(f)?;
        if version != VERSION {
            return Err(format!("format version {version} is not supported"));
        }
        let set = r.u32().map_err(f)?;
        let mut sig = || -> Result<Signature> {
            Ok(Signature {
                random: r.u64()?,
                created_millis: r.u64()?,
            })
        };
        let log_signature = sig().map_err(f)?;
        let db_signature = sig().map_err(f)?;
        let page_size = r.u32().map_err(f)?;
        let db_len = r.u64().map_err(f)?;
        let db_digest = r.u32().map_err(f)?;
        let checkpoint = Lgpos {
            generation: r.u32().map_err(f)?,
            offset: r.u32().map_err(f)?,
        };
        let checkpoint_last_commit = r.u64().map_err(f)?;
        let mut name = || -> std::result::Result<String, String> {
            let len = r.u8().map_err(f)?;
            let raw = r.bytes(usize::from(len)).map_err(f)?;
            String::from_utf8(raw.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
        };
        let base_name = name()?;
        let db_name = name()?;
        if db_name.is_empty() || db_name.contains(['/', '\\']) || db_name == ".." {
            return Err(format!("the database name {db_name:?} is not a file name"));
        }
        let count = r.u32().map_err(f)?;
        let mut backups = Vec::new();
        for _ in 0..count.min(1 << 20) {
            let kind = match r.u8().map_err(f)? {
                1 => BackupKind::Full,
                2 => BackupKind::Incremental,
                other => return Err(format!("backup kind {other} is unknown")),
            };
            backups.push(SetBackup {
                kind,
                mark: Lgpos {
                    generation: r.u32().map_err(f)?,
                    offset: r.u32().map_err(f)?,
                },
                millis: r.u64().map_err(f)?,
                sequence: r.u64().map_err(f)?,
                gen_low: r.u32().map_err(f)?,
                gen_high: r.u32().map_err(f)?,
            });
        }
        let count = r.u32().map_err(f)?;
        let mut logs = Vec::new();
        for _ in 0..count.min(1 << 24) {
            logs.push(SetLog {
                generation: r.u32().map_err(f)?,
                len: r.u64().map_err(f)?,
                crc: r.u32().map_err(f)?,
            });
        }
        let manifest = Manifest {
            set,
            log_signature,
            db_signature,
            page_size,
            db_len,
            db_digest,
            checkpoint,
            checkpoint_last_commit,
            base_name,
            db_name,
            backups,
            logs,
        };
        Ok(manifest)
    }

    /// The shape every manifest must have: a full backup first, then incrementals; logs
    /// contiguous from the checkpoint's generation to the last backup's highest generation.
    fn check(&self) -> std::result::Result<(), String> {
        let Some(first) = self.backups.first() else {
            return Err("it lists no backup".into());
        };
        if first.kind != BackupKind::Full
            || self.backups[1..]
                .iter()
                .any(|b| b.kind != BackupKind::Incremental)
        {
            return Err("it does not begin with one full backup".into());
        }
        if self.logs.is_empty() {
            return Err("it lists no log file".into());
        }
        // Values no backup can have: refused here, so nothing downstream overflows on them.
        if self.logs.iter().any(|l| {
            l.generation == 0
                || l.generation >= log::GENERATION_MAX
                || l.len > log::LOG_FILE_SIZE_MAX
        }) {
            return Err("a log file has an impossible generation or length".into());
        }
        if self.db_len > u64::from(u32::MAX) * 32 * 1024 {
            return Err("the database length is impossible".into());
        }
        if self
            .logs
            .windows(2)
            .any(|w| w[1].generation != w[0].generation + 1)
        {
            return Err("its log generations are not contiguous".into());
        }
        let (low, high) = self.log_range();
        if low != self.checkpoint.generation || high != self.last().gen_high {
            return Err("its log range does not match its backups".into());
        }
        if !self.db_len.is_multiple_of(u64::from(self.page_size.max(1))) {
            return Err("the database length is not a whole number of pages".into());
        }
        Ok(())
    }
}

/// The digest of a database copy: the CRC32 of its pages' stored checksums, in page order.
/// Cheap (each page's checksum is verified anyway) and different for a copy of another backup.
pub fn page_digest(sums: &[u32]) -> u32 {
    let mut h = PageDigest::default();
    for &sum in sums {
        h.add(sum);
    }
    h.finish()
}

/// [`page_digest`] computed a page at a time, as the copy is read: the same memory whatever
/// the database's size.
#[derive(Clone, Debug, Default)]
pub struct PageDigest(crc32fast::Hasher);

impl PageDigest {
    /// Adds the next page's stored checksum ([`crate::page::stored_checksum`]).
    pub fn add(&mut self, sum: u32) {
        self.0.update(&sum.to_le_bytes());
    }

    /// The digest of the pages added.
    pub fn finish(&self) -> u32 {
        self.0.clone().finalize()
    }
}

/// Reads the manifest of backup directory `dir`: `None` if it has none.
pub fn read(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>> {
    read_as(vfs, dir, Manifest::decode)
}

/// [`read`] without the checks of the set's shape: the planted bug
/// [`crate::PlantedBug::RestoreTrustsManifestShape`].
pub(crate) fn read_unchecked(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>> {
    read_as(vfs, dir, Manifest::decode_fields)
}

fn read_as(
    vfs: &dyn Vfs,
    dir: &Path,
    decode: fn(&[u8]) -> std::result::Result<Manifest, String>,
) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_NAME);
    let exists = vfs
        .exists(&path)
        .map_err(|err| JetError::io(format!("look up {}", path.display()), &err))?;
    if !exists {
        return Ok(None);
    }
    let bytes = log::read_file(vfs, &path)?;
    match decode(&bytes) {
        Ok(manifest) => Ok(Some(manifest)),
        Err(why) => bail!(
            LogCorruptDuringHardRestore,
            "the backup manifest {} is damaged: {why}",
            path.display()
        ),
    }
}

/// Makes `manifest` the manifest of `dir`: written as a temporary file, fsynced, renamed into
/// place, the directory fsynced. This is the moment a backup exists.
pub(crate) fn write(vfs: &dyn Vfs, dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST_NAME);
    let tmp = tmp_path(dir);
    let io = |what: &'static str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |err: std::io::Error| JetError::io(what.clone(), &err)
    };
    let file = vfs
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(io("create", &tmp))?;
    file.write_all_at(&manifest.encode(), 0)
        .map_err(io("write", &tmp))?;
    file.sync().map_err(io("fsync", &tmp))?;
    drop(file);
    vfs.rename(&tmp, &path).map_err(io("rename", &tmp))?;
    vfs.sync_dir(dir).map_err(io("fsync", dir))?;
    debug_assert_eq!(parent_dir(&path), dir);
    Ok(())
}

/// The temporary name a manifest is written under.
pub(crate) fn tmp_path(dir: &Path) -> PathBuf {
    dir.join(format!("{MANIFEST_NAME}.tmp"))
}

/// Parses a set subdirectory's name.
pub(crate) fn parse_set_dir_name(name: &str) -> Option<u32> {
    let hex = name.strip_prefix("set-")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed set: a full backup of generations 3..=4 and an incremental of 5.
    fn manifest() -> Manifest {
        let backup = |kind, sequence, gen_low, gen_high| SetBackup {
            kind,
            mark: Lgpos {
                generation: gen_high + 1,
                offset: 0,
            },
            millis: 1,
            sequence,
            gen_low,
            gen_high,
        };
        Manifest {
            set: 1,
            log_signature: Signature {
                random: 7,
                created_millis: 1,
            },
            db_signature: Signature {
                random: 9,
                created_millis: 1,
            },
            page_size: 4096,
            db_len: 16 * 4096,
            db_digest: 0xABCD,
            checkpoint: Lgpos {
                generation: 3,
                offset: 0,
            },
            checkpoint_last_commit: 2,
            base_name: "edb".into(),
            db_name: "data.edb".into(),
            backups: vec![
                backup(BackupKind::Full, 10, 3, 4),
                backup(BackupKind::Incremental, 12, 5, 5),
            ],
            logs: (3..=5)
                .map(|generation| SetLog {
                    generation,
                    len: 8192,
                    crc: generation,
                })
                .collect(),
        }
    }

    fn decodes(m: &Manifest) -> bool {
        Manifest::decode(&m.encode()).is_ok()
    }

    #[test]
    fn a_well_formed_manifest_round_trips() {
        let m = manifest();
        assert_eq!(Manifest::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn a_database_name_that_is_a_path_is_refused() {
        for name in ["", "..", "../data.edb", "sub/data.edb", "sub\\data.edb"] {
            let mut m = manifest();
            m.db_name = name.into();
            assert!(!decodes(&m), "{name:?} was taken as a file name");
        }
    }

    #[test]
    fn the_database_length_bound_is_exact() {
        // The largest database ESE allows: 2^32 pages of 32 KiB.
        let max = u64::from(u32::MAX) * 32 * 1024;
        let mut m = manifest();
        m.db_len = max;
        assert!(decodes(&m), "a database of the largest size was refused");
        m.db_len = max + 4096;
        assert!(!decodes(&m), "a database past the largest size was taken");
    }

    /// `m` with its set made of the logs `gens` alone (checkpoint and one full backup to
    /// match).
    fn with_logs(mut m: Manifest, gens: &[u32]) -> Manifest {
        m.logs = gens
            .iter()
            .map(|&generation| SetLog {
                generation,
                len: 8192,
                crc: 1,
            })
            .collect();
        m.checkpoint.generation = gens[0];
        m.backups.truncate(1);
        m.backups[0].gen_low = gens[0];
        m.backups[0].gen_high = *gens.last().unwrap();
        m
    }

    #[test]
    fn impossible_generations_and_lengths_are_refused_as_such() {
        let why = |m: &Manifest| Manifest::decode(&m.encode()).expect_err("refused");
        for gens in [&[0, 1][..], &[log::GENERATION_MAX]] {
            let reason = why(&with_logs(manifest(), gens));
            assert!(reason.contains("impossible"), "{gens:?}: {reason}");
        }
        let mut m = with_logs(manifest(), &[3, 4]);
        m.logs[1].len = log::LOG_FILE_SIZE_MAX + 1;
        assert!(why(&m).contains("impossible"), "{}", why(&m));
        // At the bounds, they are possible.
        assert!(decodes(&with_logs(manifest(), &[log::GENERATION_MAX - 1])));
        m.logs[1].len = log::LOG_FILE_SIZE_MAX;
        assert!(decodes(&m));
    }

    #[test]
    fn the_log_range_must_match_the_checkpoint_and_the_last_backup() {
        let mut m = manifest();
        m.checkpoint.generation = 4;
        assert!(!decodes(&m), "logs from before the checkpoint's generation");
        let mut m = manifest();
        m.backups[1].gen_high = 6;
        assert!(
            !decodes(&m),
            "logs ending before the last backup's generation"
        );
    }

    #[test]
    fn the_page_digest_is_the_crc32_of_the_checksums_whether_given_whole_or_a_page_at_a_time() {
        let sums = [0xDEAD_BEEF, 0, 7, u32::MAX];
        let bytes: Vec<u8> = sums.iter().flat_map(|s: &u32| s.to_le_bytes()).collect();
        assert_eq!(page_digest(&sums), crc32fast::hash(&bytes));
        let mut digest = PageDigest::default();
        for sum in sums {
            digest.add(sum);
        }
        assert_eq!(digest.finish(), page_digest(&sums));
        assert_ne!(page_digest(&sums[..3]), page_digest(&sums));
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused() {
        let mut bytes = manifest().encode();
        bytes[40] ^= 1;
        assert!(Manifest::decode(&bytes).is_err());
        assert!(Manifest::decode(b"JETBKSET").is_err());
    }
}
