//! Streamed backups: a full backup as one self-describing byte stream, written through the
//! external backup API (`jetutil backup --stream > inst.jbk`, or into `zstd`, `aws s3 cp -`,
//! …), and unpacked into a backup directory that restore reads as any other
//! (`jetutil restore - --to DIR < inst.jbk`).
//!
//! **The format** (version 1; every integer little-endian):
//!
//! ```text
//! stream  := header file* manifest end
//! header  := "JETDBSTR" | version u32 (1) | kind u8 (1: full) | 3 zero bytes | crc u32
//! file    := tag u8 ('D' the database, 'L' a log generation) | name_len u16 | name
//!            | len u64 | chunk* | crc u32
//! chunk   := n u32 (1 ..= 2^31 - 1) | bytes[n]           n bytes of the file
//!          | 0x8000_0000 + n u32 (1 ..= 2^31 - 1)        n zero bytes, not stored
//! manifest:= 'M' | name_len u16 (0) | len u64 | the manifest's own encoding | crc u32
//! end     := 'E' | stream_crc u32
//! ```
//!
//! A file's chunks add up to its `len`. Runs of blank 4 KiB blocks go as zero chunks: the
//! generation a backup's begin finishes is mostly blank, and the database's free space may be.
//! Each `crc` is the CRC32 of its item's bytes before it (tag to the last chunk, as stored);
//! `stream_crc` is the CRC32 of every byte of the stream before it. A file's length is known
//! when it is opened, so a record is written as it is read, with nothing buffered; the
//! manifest comes last, as it names what the copy read (the database's digest, each log's
//! length and CRC).
//!
//! **Reading it** checks every item as it arrives: a record's CRC, a name that is a plain
//! file name of the set, lengths and CRCs that match the manifest, nothing missing, nothing
//! after the end. A stream cut short, or whose backup failed (the writer stops before the
//! manifest), is refused. Restore then checks the unpacked set as it checks any: every page,
//! every log, the digest.
//!
//! A streamed backup is a *copy* backup (ESE's term): the engine cannot know when the stream's
//! reader has it safe, so it records nothing in the header and truncates no log.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::backups::external::{BackupEnd, BackupFlags, BackupSummary};
use crate::backups::manifest::{self, Manifest};
use crate::backups::restore::{RestoreOptions, RestoreSummary};
use crate::backups::status::{Reporter, StatusFn, StatusKind};
use crate::base::error::{ErrorKind, JetError, Result, bail, io_err};
use crate::base::vfs::{OpenMode, Vfs, parent_dir};
use crate::txn::event::Operation;
use crate::txn::instance::Instance;

/// The stream's first bytes.
pub const STREAM_MAGIC: &[u8; 8] = b"JETDBSTR";
/// The format version this engine writes and reads.
pub const STREAM_VERSION: u32 = 1;
const KIND_FULL: u8 = 1;
const TAG_DATABASE: u8 = b'D';
const TAG_LOG: u8 = b'L';
const TAG_MANIFEST: u8 = b'M';
const TAG_END: u8 = b'E';
/// How much of a file is read or written at once.
const PIECE: usize = 1024 * 1024;
/// The longest name a record carries.
const MAX_NAME: usize = 255;
/// A chunk's length word with this bit set is a run of zeros.
const ZEROS: u32 = 0x8000_0000;
/// The blocks a writer looks for blank runs in.
const BLOCK: usize = 4096;

/// Writes a stream, keeping the CRC of everything written.
struct Out<'w> {
    out: &'w mut dyn Write,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8], item: &mut crc32fast::Hasher) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|err| JetError::io("write the backup stream", &err))?;
        self.crc.update(bytes);
        item.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// An item's head: tag, name, length.
    fn head(&mut self, tag: u8, name: &str, len: u64) -> Result<crc32fast::Hasher> {
        let mut item = crc32fast::Hasher::new();
        let name_len = u16::try_from(name.len()).expect("names are short");
        self.put(&[tag], &mut item)?;
        self.put(&name_len.to_le_bytes(), &mut item)?;
        self.put(name.as_bytes(), &mut item)?;
        self.put(&len.to_le_bytes(), &mut item)?;
        Ok(item)
    }

    /// `data`, the file's next bytes, as chunks: runs of blank blocks as zero chunks.
    fn chunks(&mut self, data: &[u8], item: &mut crc32fast::Hasher) -> Result<()> {
        let blank = |i: usize| {
            let block = &data[i * BLOCK..((i + 1) * BLOCK).min(data.len())];
            block.iter().all(|&b| b == 0)
        };
        let blocks = data.len().div_ceil(BLOCK);
        let mut i = 0;
        while i < blocks {
            let zeros = blank(i);
            let mut j = i + 1;
            while j < blocks && blank(j) == zeros {
                j += 1;
            }
            let run = &data[i * BLOCK..(j * BLOCK).min(data.len())];
            let n = u32::try_from(run.len()).expect("a read is less than 2 GiB");
            assert!(n > 0 && n < ZEROS);
            if zeros {
                self.put(&(ZEROS | n).to_le_bytes(), item)?;
            } else {
                self.put(&n.to_le_bytes(), item)?;
                self.put(run, item)?;
            }
            i = j;
        }
        Ok(())
    }

    fn seal(&mut self, item: crc32fast::Hasher) -> Result<()> {
        let crc = item.finalize();
        self.put(&crc.to_le_bytes(), &mut crc32fast::Hasher::new())
    }
}

impl Instance {
    /// Writes a full backup of the instance to `out` as one stream (the module docs of
    /// [`crate::stream`] give its format), through the external backup API: the backup point
    /// is this call's begin, every page and log is verified as it is read, and transactions
    /// go on meanwhile. It is a copy backup: nothing is recorded in the header, no log
    /// truncated. A failure stops the stream before its manifest, so no restore accepts it.
    /// `status` is called at Begin, every MiB of Progress, and at Complete or Fail.
    ///
    /// Errors: those of [`Instance::begin_external_backup`] and of the reads, and
    /// `JET_errDiskIO` for a write to `out` that fails.
    pub fn backup_to_stream(
        &self,
        out: &mut dyn Write,
        status: Option<StatusFn<'_>>,
    ) -> Result<BackupSummary> {
        let mut progress = Reporter::new(Operation::Backup, status);
        let result = self.stream_into(out, &mut progress);
        let _ = progress.report(match result {
            Ok(_) => StatusKind::Complete,
            Err(_) => StatusKind::Fail,
        });
        result
    }

    fn stream_into(
        &self,
        out: &mut dyn Write,
        progress: &mut Reporter<'_>,
    ) -> Result<BackupSummary> {
        let mut backup = self.begin_external_backup(BackupFlags::NONE)?;
        progress.total = backup.total_bytes();
        progress.report(StatusKind::Begin)?;
        let mut out = Out {
            out,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        };
        let mut head = crc32fast::Hasher::new();
        out.put(STREAM_MAGIC, &mut head)?;
        out.put(&STREAM_VERSION.to_le_bytes(), &mut head)?;
        out.put(&[KIND_FULL, 0, 0, 0], &mut head)?;
        out.seal(head)?;
        let mut buf = vec![0u8; PIECE];
        let databases = backup.attach_info()?;
        let mut files: Vec<(u8, PathBuf)> =
            databases.into_iter().map(|p| (TAG_DATABASE, p)).collect();
        for phase in 0..2 {
            if phase == 1 {
                files = backup
                    .log_info()?
                    .into_iter()
                    .map(|p| (TAG_LOG, p))
                    .collect();
            }
            for (tag, path) in &files {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !plain_name(&name) {
                    bail!(
                        InvalidName,
                        "{}: a backup stream carries file names of at most {MAX_NAME} bytes, without control characters or a leading dot",
                        path.display()
                    );
                }
                let file = backup.open_file(path)?;
                let mut item = out.head(*tag, &name, file.size())?;
                let mut left = file.size();
                while left > 0 {
                    let n = backup.read_file(file, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    out.chunks(&buf[..n], &mut item)?;
                    left -= n as u64;
                    progress.advance(n as u64)?;
                }
                assert_eq!(left, 0, "a file reads as the size it was opened with");
                out.seal(item)?;
                backup.close_file(file)?;
            }
        }
        let bytes = backup.manifest(None)?.encode();
        let mut item = out.head(TAG_MANIFEST, "", bytes.len() as u64)?;
        out.put(&bytes, &mut item)?;
        out.seal(item)?;
        out.put(&[TAG_END], &mut crc32fast::Hasher::new())?;
        let total = out.crc.clone().finalize();
        out.put(&total.to_le_bytes(), &mut crc32fast::Hasher::new())?;
        out.out
            .flush()
            .map_err(|err| JetError::io("flush the backup stream", &err))?;
        backup.end(BackupEnd::Normal)
    }

    /// Restores from a backup stream (written by [`Instance::backup_to_stream`]): unpacks it
    /// into `staging`, a backup directory the call creates (it must not exist, nor hold any
    /// of the instance's directories: `JET_errInvalidPath`) and removes afterwards (its parent made if missing and the instance's `create_path_if_not_exist` is on),
    /// checking every item as it arrives, then restores from it as
    /// [`Instance::restore_with`] does — to a point, or rolled forward, alike.
    ///
    /// Errors, besides the restore's: `JET_errRestoreOfNonBackupDatabase` (not a backup
    /// stream, or a malformed one), `JET_errInvalidDatabaseVersion` (a format version this
    /// engine does not read), `JET_errReadVerifyFailure` (a damaged database record),
    /// `JET_errLogCorruptDuringHardRestore` (a damaged log record or manifest),
    /// `JET_errFileIOBeyondEOF` (a stream cut short), `JET_errMissingRestoreLogFiles` (a log
    /// the manifest lists is not in the stream), `JET_errInvalidPath` (`staging` exists). A
    /// failure leaves nothing: the directories the call made are removed. (Once the restore
    /// is done, a failure removing `staging` is returned, and the restored instance stays.)
    pub fn restore_stream(
        &self,
        input: &mut dyn Read,
        staging: &Path,
        options: &RestoreOptions,
        status: Option<StatusFn<'_>>,
    ) -> Result<RestoreSummary> {
        let vfs = std::sync::Arc::clone(&self.shared.env.vfs);
        // The staging directory is removed whole afterwards: it must hold none of the
        // instance's directories (inside one, as `.jetdb-stream` in the target, is fine).
        let params = self.params();
        let ours = [
            params.log_path.as_path(),
            params.system_path.as_path(),
            parent_dir(&params.database_path),
        ];
        if let Some(dir) = ours
            .iter()
            .find(|d| lexical(d).starts_with(lexical(staging)))
        {
            bail!(
                InvalidPath,
                "the staging directory {} holds the instance's directory {}, and is removed after the restore: give one apart from it",
                staging.display(),
                dir.display()
            );
        }
        if vfs.exists(staging).map_err(io_err("look up", staging))? {
            bail!(
                InvalidPath,
                "{} exists: a stream is unpacked into a new directory",
                staging.display()
            );
        }
        // Its parent is made as the restore makes its target, if the instance may; what this
        // call made is removed if it fails.
        let parent = parent_dir(staging);
        let made = first_missing(&*vfs, parent)?;
        crate::txn::instance::ensure_dir(
            &self.shared.env,
            parent,
            params.create_path_if_not_exist,
        )?;
        let mut restored = false;
        let result = create_new_dir(&*vfs, staging).and_then(|()| {
            let unpacked = unpack_into(&*vfs, input, staging);
            let result = unpacked.and_then(|_| self.restore_with(staging, options, status));
            restored = result.is_ok();
            let removed = remove_dir_all(&*vfs, staging);
            // (A restore done is not undone for its staging directory, which then stays.)
            result.and_then(|summary| removed.map(|()| summary))
        });
        if result.is_err()
            && !restored
            && let Some(made) = made
        {
            // (Best effort: the error to report is the restore's.)
            let _ = remove_dir_all(&*vfs, &made).and_then(|()| {
                vfs.sync_dir(parent_dir(&made))
                    .map_err(io_err("fsync", parent_dir(&made)))
            });
        }
        result
    }
}

/// Reads a stream, keeping the CRC of everything read.
struct In<'r> {
    input: &'r mut dyn Read,
    crc: crc32fast::Hasher,
}

impl In<'_> {
    fn take(&mut self, buf: &mut [u8], item: &mut crc32fast::Hasher, what: &str) -> Result<()> {
        self.input.read_exact(buf).map_err(|err| {
            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                JetError::new(
                    ErrorKind::FileIOBeyondEOF,
                    format!("the backup stream ends inside {what}: it was cut short"),
                )
            } else {
                JetError::io("read the backup stream", &err)
            }
        })?;
        self.crc.update(buf);
        item.update(buf);
        Ok(())
    }

    fn u32(&mut self, item: &mut crc32fast::Hasher, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b, item, what)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads an item's CRC and compares it.
    fn check(&mut self, item: crc32fast::Hasher, what: &str, kind: ErrorKind) -> Result<()> {
        let want = item.finalize();
        let found = self.u32(&mut crc32fast::Hasher::new(), what)?;
        if found != want {
            return Err(JetError::new(
                kind,
                format!("the backup stream's {what} is damaged (its CRC32 does not match)"),
            ));
        }
        Ok(())
    }
}

fn malformed(why: impl std::fmt::Display) -> JetError {
    JetError::new(
        ErrorKind::RestoreOfNonBackupDatabase,
        format!("not a well-formed backup stream: {why}"),
    )
}

/// Unpacks a backup stream into `dir` (created; it must not exist) as a backup directory:
/// the set's files, each fsynced, then the manifest, written last as a backup writes it.
/// Returns the manifest. On failure `dir` is left for the caller to remove.
pub fn unpack(vfs: &dyn Vfs, input: &mut dyn Read, dir: &Path) -> Result<Manifest> {
    create_new_dir(vfs, dir)?;
    unpack_into(vfs, input, dir)
}

/// Makes directory `dir`, durably; it must not exist.
fn create_new_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    vfs.create_dir(dir).map_err(io_err("create", dir))?;
    vfs.sync_dir(parent_dir(dir)).map_err(io_err("fsync", dir))
}

/// [`unpack`] into `dir`, made already and empty.
fn unpack_into(vfs: &dyn Vfs, input: &mut dyn Read, dir: &Path) -> Result<Manifest> {
    let mut r = In {
        input,
        crc: crc32fast::Hasher::new(),
    };
    let mut head = crc32fast::Hasher::new();
    let mut magic = [0u8; 8];
    r.take(&mut magic, &mut head, "its header")?;
    if &magic != STREAM_MAGIC {
        return Err(malformed("it does not begin with JETDBSTR"));
    }
    let version = r.u32(&mut head, "its header")?;
    let mut kind = [0u8; 4];
    r.take(&mut kind, &mut head, "its header")?;
    r.check(head, "header", ErrorKind::RestoreOfNonBackupDatabase)?;
    if version != STREAM_VERSION {
        bail!(
            InvalidDatabaseVersion,
            "the backup stream is of format version {version}; this engine reads version {STREAM_VERSION}"
        );
    }
    if kind != [KIND_FULL, 0, 0, 0] {
        return Err(malformed(format!(
            "backup kind {} is not a full backup",
            kind[0]
        )));
    }
    let set_dir = dir.join(Manifest::set_dir_name(1));
    vfs.create_dir(&set_dir)
        .map_err(io_err("create", &set_dir))?;
    vfs.sync_dir(dir).map_err(io_err("fsync", dir))?;
    // What the stream held: name → (tag, length, CRC32 of the data).
    let mut files: std::collections::BTreeMap<String, (u8, u64, u32)> = Default::default();
    let mut buf = vec![0u8; PIECE];
    let manifest = loop {
        let mut item = crc32fast::Hasher::new();
        let mut tag = [0u8; 1];
        r.take(&mut tag, &mut item, "a record")?;
        let tag = tag[0];
        if tag == TAG_END {
            return Err(malformed("it ends without a manifest"));
        }
        if ![TAG_DATABASE, TAG_LOG, TAG_MANIFEST].contains(&tag) {
            return Err(malformed(format!("a record of unknown kind {tag:#04x}")));
        }
        let mut len2 = [0u8; 2];
        r.take(&mut len2, &mut item, "a record")?;
        let name_len = usize::from(u16::from_le_bytes(len2));
        if name_len > MAX_NAME {
            return Err(malformed(format!("a name of {name_len} bytes")));
        }
        let mut name = vec![0u8; name_len];
        r.take(&mut name, &mut item, "a record's name")?;
        let name = String::from_utf8(name).map_err(|_| malformed("a name that is not UTF-8"))?;
        let mut len8 = [0u8; 8];
        r.take(&mut len8, &mut item, "a record")?;
        let len = u64::from_le_bytes(len8);
        let what = if name.is_empty() {
            "its manifest".to_string()
        } else {
            format!("record {name}")
        };
        if tag == TAG_MANIFEST {
            if !name.is_empty() || len > 1 << 24 {
                return Err(malformed(
                    "a manifest record with a name, or of many megabytes",
                ));
            }
            let mut bytes = vec![0u8; len as usize];
            r.take(&mut bytes, &mut item, &what)?;
            r.check(item, "manifest", ErrorKind::LogCorruptDuringHardRestore)?;
            let manifest = Manifest::decode(&bytes).map_err(|why| {
                JetError::new(
                    ErrorKind::LogCorruptDuringHardRestore,
                    format!("the backup stream's manifest is damaged: {why}"),
                )
            })?;
            break manifest;
        }
        if !plain_name(&name) || files.contains_key(&name) {
            return Err(malformed(format!(
                "record name {name:?} is not a plain file name, or comes twice"
            )));
        }
        // (A crafted length would make a vast sparse file of zero chunks.)
        let most = match tag {
            TAG_LOG => crate::wal::log::LOG_FILE_SIZE_MAX,
            _ => crate::base::limits::PAGE_COUNT_MAX * crate::base::limits::PAGE_SIZE_MAX as u64,
        };
        if len > most {
            return Err(malformed(format!("{what} claims {len} bytes")));
        }
        let path = set_dir.join(&name);
        let file = vfs
            .open(&path, OpenMode::CreateNew)
            .map_err(io_err("create", &path))?;
        let mut data = crc32fast::Hasher::new();
        let mut at = 0u64;
        while at < len {
            let word = r.u32(&mut item, &what)?;
            let n = u64::from(word & !ZEROS);
            if n == 0 || n > len - at {
                return Err(malformed(format!(
                    "{what}: a chunk of {n} bytes at {at} of {len}"
                )));
            }
            if word & ZEROS != 0 {
                // Not written: the file's length, set at its end, makes them zeros.
                update_zeros(&mut data, n);
                at += n;
                continue;
            }
            let end = at + n;
            while at < end {
                let k = (end - at).min(PIECE as u64) as usize;
                r.take(&mut buf[..k], &mut item, &what)?;
                data.update(&buf[..k]);
                file.write_all_at(&buf[..k], at)
                    .map_err(io_err("write", &path))?;
                at += k as u64;
            }
        }
        file.set_len(len).map_err(io_err("size", &path))?;
        let kind = if tag == TAG_DATABASE {
            ErrorKind::ReadVerifyFailure
        } else {
            ErrorKind::LogCorruptDuringHardRestore
        };
        r.check(item, &what, kind)?;
        file.sync().map_err(io_err("fsync", &path))?;
        files.insert(name, (tag, len, data.finalize()));
    };
    let mut end = [0u8; 1];
    r.take(&mut end, &mut crc32fast::Hasher::new(), "its end")?;
    if end[0] != TAG_END {
        return Err(malformed("its manifest is not followed by its end"));
    }
    let whole = r.crc.clone().finalize();
    let found = r.u32(&mut crc32fast::Hasher::new(), "its end")?;
    if found != whole {
        return Err(malformed("the CRC32 of the whole stream does not match"));
    }
    let mut rest = [0u8; 1];
    match r.input.read(&mut rest) {
        Ok(0) => {}
        Ok(_) => return Err(malformed("bytes follow its end")),
        Err(err) => return Err(JetError::io("read the backup stream", &err)),
    }
    // What the manifest names is what the stream held, and nothing else.
    if manifest.set != 1 {
        return Err(malformed(format!(
            "its manifest names set {}",
            manifest.set
        )));
    }
    match files.get(&manifest.db_name) {
        Some(&(TAG_DATABASE, len, _)) if len == manifest.db_len => {}
        Some(_) => bail!(
            BadBackupDatabaseSize,
            "the backup stream's database {} is not the size its manifest gives ({} bytes)",
            manifest.db_name,
            manifest.db_len
        ),
        None => bail!(
            FileNotFound,
            "the backup stream holds no database {}",
            manifest.db_name
        ),
    }
    for set_log in &manifest.logs {
        let name = manifest.log_name(set_log.generation);
        match files.get(&name) {
            Some(&(TAG_LOG, len, crc)) if len == set_log.len && crc == set_log.crc => {}
            Some(_) => bail!(
                LogCorruptDuringHardRestore,
                "the backup stream's {name} is not the log its manifest lists"
            ),
            None => bail!(
                MissingRestoreLogFiles,
                "the backup stream holds no {name}, which its manifest lists"
            ),
        }
    }
    if files.len() != manifest.logs.len() + 1 {
        return Err(malformed("it holds files its manifest does not list"));
    }
    vfs.sync_dir(&set_dir).map_err(io_err("fsync", &set_dir))?;
    manifest::write(vfs, dir, &manifest)?;
    Ok(manifest)
}

/// Adds `n` zero bytes to `crc`, in steps of the bits of `n` (CRC32s combined), not byte by
/// byte: a damaged stream's zero runs cost no more than its bytes.
fn update_zeros(crc: &mut crc32fast::Hasher, mut n: u64) {
    let mut power = crc32fast::Hasher::new();
    power.update(&[0]);
    while n > 0 {
        if n & 1 == 1 {
            crc.combine(&power);
        }
        n >>= 1;
        if n > 0 {
            let twice = power.clone();
            power.combine(&twice);
        }
    }
}

/// A name a stream may give a file (`Mailbox Database.edb`, `edb0000000A.log`): a file name
/// only — no directory, nothing hidden or relative, no control characters — of at most 255
/// bytes. The writer refuses what the reader would.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// `path` with its `.` components dropped, to compare paths as written.
fn lexical(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect()
}

/// The outermost directory of `dir` and its ancestors that does not exist, if any.
fn first_missing(vfs: &dyn Vfs, dir: &Path) -> Result<Option<PathBuf>> {
    let mut missing = None;
    let mut at = dir;
    while !at.as_os_str().is_empty() {
        if vfs.exists(at).map_err(io_err("look up", at))? {
            break;
        }
        missing = Some(at.to_path_buf());
        at = parent_dir(at);
    }
    Ok(missing)
}

/// Removes `dir` and everything in it, best effort over what exists.
fn remove_dir_all(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    if !vfs.exists(dir).map_err(io_err("look up", dir))? {
        return Ok(());
    }
    if vfs.is_dir(dir).map_err(io_err("look up", dir))? {
        for name in vfs.list(dir).map_err(io_err("list", dir))? {
            remove_dir_all(vfs, &dir.join(name))?;
        }
        vfs.remove_dir(dir).map_err(io_err("remove", dir))?;
    } else {
        vfs.remove(dir).map_err(io_err("remove", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::update_zeros;

    /// Zeros added by powers of two are the zeros hashed byte by byte.
    #[test]
    fn zeros_combined_are_zeros_hashed() {
        for n in [0u64, 1, 2, 3, 4095, 4096, 4097, 100_000, 1 << 20] {
            let mut prefix = crc32fast::Hasher::new();
            prefix.update(b"before");
            let mut want = prefix.clone();
            want.update(&vec![0u8; n as usize]);
            let mut got = prefix;
            update_zeros(&mut got, n);
            assert_eq!(got.finalize(), want.finalize(), "{n} zeros");
        }
    }
}
