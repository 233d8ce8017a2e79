//! The checkpoint file `edb.chk`: the log position from which crash recovery starts.
//!
//! The file holds two 4 KiB slots. Each write goes to the slot the previous one did not use and
//! is followed by an fsync, so a torn write damages only the slot being written and the other
//! still holds the previous checkpoint — which is safe to start from, because the logs it needs
//! are deleted only after a newer checkpoint is durable. On read, the valid slot with the
//! higher sequence wins.
//!
//! ```text
//! slot: crc32 of [4..4096] | magic u32 | version u32 | sequence u64 | checkpoint generation u32 |
//!       offset u32 | log signature (u64, u64) | db signature (u64, u64) | written millis u64 |
//!       last commit sequence u64
//! ```
//!
//! A new checkpoint file is written whole under a temporary name, fsynced, and renamed into
//! place, so a crash never leaves an empty or partial `edb.chk`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::codec::{Reader, Writer, crc_holds, seal_crc};
use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::vfs::{OpenMode, Vfs, VfsFile};
use crate::store::header::{Lgpos, Signature};

const SLOT_SIZE: usize = 4096;
const MAGIC: u32 = 0x4A45_4350;
const VERSION: u32 = 1;

/// The name of the checkpoint file for base name `base`: `edb.chk`.
pub fn checkpoint_name(base: &str) -> String {
    format!("{base}.chk")
}

/// The contents of the checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Raised by one on each write; the valid slot with the higher one wins.
    pub sequence: u64,
    /// Recovery replays the log from here: every change logged before it is in the database.
    pub position: Lgpos,
    /// The log set the checkpoint belongs to.
    pub log_signature: Signature,
    /// The database the checkpoint belongs to.
    pub db_signature: Signature,
    /// When the checkpoint was written.
    pub millis: u64,
    /// The sequence number of the last commit before `position`: the next commit logged after
    /// it is numbered one higher.
    pub last_commit: u64,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SLOT_SIZE);
        let mut w = Writer::new(&mut out);
        w.u32(0);
        w.u32(MAGIC);
        w.u32(VERSION);
        w.u64(self.sequence);
        w.u32(self.position.generation);
        w.u32(self.position.offset);
        for sig in [self.log_signature, self.db_signature] {
            w.u64(sig.random);
            w.u64(sig.created_millis);
        }
        w.u64(self.millis);
        w.u64(self.last_commit);
        out.resize(SLOT_SIZE, 0);
        seal_crc(&mut out);
        out
    }

    fn decode(slot: &[u8]) -> Option<Checkpoint> {
        if slot.len() < SLOT_SIZE {
            return None;
        }
        if !crc_holds(&slot[..SLOT_SIZE]) {
            return None;
        }
        let mut r = Reader::new(&slot[4..SLOT_SIZE]);
        if r.u32().ok()? != MAGIC || r.u32().ok()? != VERSION {
            return None;
        }
        // Counters at their limits could never be advanced: such a slot is not trusted.
        let sequence = r.u64().ok().filter(|&s| s < u64::MAX / 2)?;
        let position = Lgpos {
            generation: r.u32().ok()?,
            offset: r.u32().ok()?,
        };
        let mut sig = || -> Option<Signature> {
            Some(Signature {
                random: r.u64().ok()?,
                created_millis: r.u64().ok()?,
            })
        };
        let log_signature = sig()?;
        let db_signature = sig()?;
        Some(Checkpoint {
            sequence,
            position,
            log_signature,
            db_signature,
            millis: r.u64().ok()?,
            last_commit: r.u64().ok().filter(|&c| c < u64::MAX / 2)?,
        })
    }
}

/// Decodes both slots of a checkpoint file's bytes: each is `None` if it is not whole.
pub fn decode_slots(bytes: &[u8]) -> [Option<Checkpoint>; 2] {
    let slot = |i: usize| bytes.get(i * SLOT_SIZE..).and_then(Checkpoint::decode);
    [slot(0), slot(1)]
}

/// Reads the checkpoint file at `path`: `None` if there is none, `JET_errCheckpointCorrupt`
/// if neither slot is whole.
pub fn read(vfs: &dyn Vfs, path: &Path) -> Result<Option<Checkpoint>> {
    let exists = vfs
        .exists(path)
        .map_err(|err| JetError::io(format!("look up {}", path.display()), &err))?;
    if !exists {
        return Ok(None);
    }
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
    let len = file
        .len()
        .map_err(|err| JetError::io(format!("{}: size", path.display()), &err))?;
    let mut bytes = vec![0u8; (len as usize).min(2 * SLOT_SIZE)];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|err| JetError::io(format!("read {}", path.display()), &err))?;
    let best = decode_slots(&bytes)
        .into_iter()
        .flatten()
        .max_by_key(|c| c.sequence);
    match best {
        Some(checkpoint) => Ok(Some(checkpoint)),
        None => bail!(
            CheckpointCorrupt,
            "{}: neither copy of the checkpoint is whole",
            path.display()
        ),
    }
}

/// Writes checkpoints to `edb.chk`, alternating between its two slots.
pub(crate) struct CheckpointFile {
    path: PathBuf,
    file: Box<dyn VfsFile>,
    current: Checkpoint,
    /// Whether both slots hold the current position (true once this process has written a
    /// checkpoint); before, the other slot may hold an older one.
    mirrored: bool,
}

impl std::fmt::Debug for CheckpointFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointFile")
            .field("path", &self.path)
            .field("current", &self.current)
            .finish()
    }
}

fn chk_io(path: &Path, what: &str, err: &std::io::Error) -> JetError {
    JetError::io(format!("{}: {what}", path.display()), err)
}

impl CheckpointFile {
    /// Opens the checkpoint file at `path`, creating it (and fsyncing its directory) if it does
    /// not exist; `current` is the checkpoint it holds or is to hold.
    pub(crate) fn open(vfs: &Arc<dyn Vfs>, path: &Path, current: Checkpoint) -> Result<Self> {
        let exists = vfs
            .exists(path)
            .map_err(|err| chk_io(path, "look up", &err))?;
        if !exists {
            write_new_file(&**vfs, path, &[current])?;
        }
        let file = vfs
            .open(path, OpenMode::ReadWrite)
            .map_err(|err| chk_io(path, "open", &err))?;
        // A slot written before a crash whose fsync failed may still be pending: make it
        // durable before the other slot is written, so the two are never torn together.
        file.sync().map_err(|err| chk_io(path, "fsync", &err))?;
        Ok(CheckpointFile {
            path: path.to_path_buf(),
            file,
            current,
            mirrored: false,
        })
    }

    /// Replaces the checkpoint file at `path` with a new one whose two slots both hold
    /// `checkpoint`'s position (under the next two sequence numbers): written as a temporary
    /// file, fsynced, renamed into place, its directory fsynced.
    ///
    /// For recovery after a dirty shutdown: the file was read through the page cache, and a
    /// slot written before the crash may not be durable (its fsync failed); writing the other
    /// slot in place would leave two slots that a power loss could tear together.
    pub(crate) fn replace(vfs: &Arc<dyn Vfs>, path: &Path, checkpoint: Checkpoint) -> Result<Self> {
        let first = Checkpoint {
            sequence: checkpoint.sequence + 1,
            ..checkpoint
        };
        let current = Checkpoint {
            sequence: checkpoint.sequence + 2,
            ..checkpoint
        };
        write_new_file(&**vfs, path, &[first, current])?;
        let mut file = CheckpointFile::open(vfs, path, current)?;
        file.mirrored = true;
        Ok(file)
    }

    /// The checkpoint last written.
    pub(crate) fn current(&self) -> &Checkpoint {
        &self.current
    }

    /// The oldest position either slot may hold: where a reader that finds one slot damaged
    /// starts. `None` until this process has written a checkpoint (the other slot's position
    /// is not known before).
    pub(crate) fn oldest(&self) -> Option<Lgpos> {
        self.mirrored.then_some(self.current.position)
    }

    /// Durably records `position` as the checkpoint in both slots, one after the other, each
    /// write followed by an fsync: a torn write leaves the other slot whole, and once this
    /// returns a damaged slot falls back to the same position, so the logs before it can go.
    pub(crate) fn write(&mut self, position: Lgpos, last_commit: u64, millis: u64) -> Result<()> {
        assert!(
            position >= self.current.position,
            "the checkpoint only moves forward"
        );
        // Until both slots are written, the other slot may hold an older position.
        self.mirrored = false;
        for _ in 0..2 {
            let next = Checkpoint {
                sequence: self.current.sequence + 1,
                position,
                millis,
                last_commit,
                ..self.current
            };
            self.file
                .write_all_at(&next.encode(), slot_offset(next.sequence))
                .map_err(|err| chk_io(&self.path, "write", &err))?;
            self.file
                .sync()
                .map_err(|err| chk_io(&self.path, "fsync", &err))?;
            self.current = next;
        }
        self.mirrored = true;
        Ok(())
    }
}

/// Makes `path` a checkpoint file holding `slots` (each in its sequence's slot): written as a
/// temporary file, fsynced, renamed into place, its directory fsynced, so a crash leaves either
/// the old file or the whole new one.
fn write_new_file(vfs: &dyn Vfs, path: &Path, slots: &[Checkpoint]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let made = (|| {
        let file = vfs
            .open(&tmp, OpenMode::CreateTruncate)
            .map_err(|err| chk_io(&tmp, "create", &err))?;
        for slot in slots {
            file.write_all_at(&slot.encode(), slot_offset(slot.sequence))
                .map_err(|err| chk_io(&tmp, "write", &err))?;
        }
        file.sync().map_err(|err| chk_io(&tmp, "fsync", &err))?;
        drop(file);
        vfs.rename(&tmp, path)
            .map_err(|err| chk_io(&tmp, "rename", &err))
    })();
    if let Err(err) = made {
        // Best effort: a half-made copy is no use (the next attempt truncates it anyway).
        let _ = vfs.remove(&tmp);
        return Err(err);
    }
    vfs.sync_dir(crate::base::vfs::parent_dir(path))
        .map_err(|err| chk_io(path, "fsync its directory", &err))
}

fn slot_offset(sequence: u64) -> u64 {
    (sequence % 2) * SLOT_SIZE as u64
}

/// The error for a checkpoint of another log set.
pub(crate) fn check_signature(checkpoint: &Checkpoint, log: &Signature, path: &Path) -> Result<()> {
    if checkpoint.log_signature != *log {
        return Err(JetError::new(
            ErrorKind::BadCheckpointSignature,
            format!(
                "{} belongs to log set {}, the logs to {log}",
                path.display(),
                checkpoint.log_signature
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::vfs::MemVfs;

    #[test]
    fn a_damaged_slot_leaves_the_other() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let path = Path::new("edb.chk");
        let first = Checkpoint {
            sequence: 1,
            position: Lgpos {
                generation: 1,
                offset: 4128,
            },
            log_signature: Signature::default(),
            db_signature: Signature::default(),
            millis: 0,
            last_commit: 0,
        };
        let mut file = CheckpointFile::open(&vfs, path, first).unwrap();
        assert_eq!(file.oldest(), None, "the other slot is not known yet");
        let later = Lgpos {
            generation: 2,
            offset: 4128,
        };
        file.write(later, 0, 1).unwrap();
        assert_eq!(read(&*vfs, path).unwrap().unwrap().position, later);
        assert_eq!(file.oldest(), Some(later), "both slots hold it");
        // Damage the newest slot (sequence 3 lives in slot 1): the other holds the same.
        let f = vfs.open(path, OpenMode::ReadWrite).unwrap();
        f.write_all_at(&[0xAB; 100], SLOT_SIZE as u64 + 200)
            .unwrap();
        let fallback = read(&*vfs, path).unwrap().unwrap();
        assert_eq!((fallback.sequence, fallback.position), (2, later));
        // Both damaged: corrupt.
        f.write_all_at(&[0xAB; 100], 200).unwrap();
        let err = read(&*vfs, path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CheckpointCorrupt);
    }
}
