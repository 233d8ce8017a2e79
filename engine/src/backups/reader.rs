//! Reading what a backup copies, verified as it is read: the database as it stood at the
//! backup's begin, through the copy-before-write fence (`DbReader`), and archived log
//! generations a piece at a time (`LogReader`). The external backup API hands out what these
//! read; nothing here knows where it goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backups::manifest::{self, SetLog};
use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, io_err};
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{OpenMode, VfsFile};
use crate::store::header::Signature;
use crate::store::page::{self, Pgno};
use crate::store::pager::{CopyFence, SharedFence};
use crate::wal::log::{self, LogTail, PieceReader};

/// Pages the fence saved for the backup, by page number.
pub(crate) type Saved = BTreeMap<Pgno, Vec<u8>>;

/// What one step of the database read gives: the pages the fence saved since the last (any
/// page of the file, each checked), and the run `first..first + count` read into the
/// caller's buffer, each page checked but those marked in `skip`, which the fence saved
/// (now or at an earlier step) and whose read content may be newer than the begin.
pub(crate) struct DbPieces {
    pub(crate) first: Pgno,
    pub(crate) skip: Vec<bool>,
    pub(crate) saved: Saved,
}

impl DbPieces {
    /// The pages of the run not skipped.
    pub(crate) fn read_pages(&self) -> usize {
        self.skip.iter().filter(|&&s| !s).count()
    }
}

/// The database as it stood at the begin, read front to back through the backup's own handle
/// and the copy-before-write fence.
pub(crate) struct DbReader {
    from: PathBuf,
    /// The backup's own handle on the file: pages are read through it without the instance
    /// lock (see [`DbReader::step`]).
    source: Box<dyn VfsFile>,
    pub(crate) page_size: usize,
    /// Pages the copy holds: the file's length when the backup began.
    pub(crate) end: Pgno,
    /// The first page not read yet (the fence's `copied_below`, which only the reader moves).
    pub(crate) next: Pgno,
    /// Each page's stored checksum, for the copy's digest.
    sums: Vec<u32>,
    /// The flush map when the backup began: the dbtime each page must have (0: not written
    /// yet, nothing to check).
    stamps: Vec<u64>,
    fence: SharedFence,
}

impl DbReader {
    pub(crate) fn open(
        env: &Env,
        from: &Path,
        page_size: usize,
        end: Pgno,
        stamps: Vec<u64>,
        fence: SharedFence,
    ) -> Result<DbReader> {
        let source = env
            .vfs
            .open(from, OpenMode::Read)
            .map_err(io_err("open", from))?;
        Ok(DbReader {
            from: from.to_path_buf(),
            source,
            page_size,
            end,
            next: 0,
            sums: vec![0; end as usize],
            stamps,
            fence,
        })
    }

    pub(crate) fn is_done(&self) -> bool {
        self.next == self.end
    }

    pub(crate) fn digest(&self) -> u32 {
        manifest::page_digest(&self.sums)
    }

    /// Reads the next `buf.len()` bytes of pages into `buf`, and takes what the fence saved.
    ///
    /// The pages are read without the instance lock, so commits go on while the backup
    /// waits for the disk. That is safe because the fence still covers them while they are
    /// read: the pager saves any of them before it overwrites it, under the lock. So the
    /// reader asks the fence which pages it saved only *after* the read, and takes those
    /// from the fence; any other page was not overwritten during the read, and what was read
    /// is its content at the begin. (Asking before, or moving the fence past the pages
    /// before reading them, would read a page overwritten in between as it is now.)
    pub(crate) fn step(
        &mut self,
        env: &Env,
        running: impl Fn() -> Result<()>,
        buf: &mut [u8],
    ) -> Result<DbPieces> {
        let (page_size, first) = (self.page_size, self.next);
        let count = (buf.len() / page_size) as Pgno;
        debug_assert!(count > 0 && first + count <= self.end);
        let mut taken = None;
        if planted::active(env, PlantedBug::BackupFenceMovedBeforeRead) {
            running()?;
            taken = Some(self.take_from_fence(first, count)?);
        }
        self.source
            .read_exact_at(buf, u64::from(first) * page_size as u64)
            .map_err(|err| {
                JetError::io(
                    format!(
                        "{}: read from page {first} for a backup",
                        self.from.display()
                    ),
                    &err,
                )
            })?;
        // (Stopped, or the instance terminated, meanwhile: the fence may be gone.)
        running()?;
        let (skip, saved) = match taken {
            Some(taken) => taken,
            None => self.take_from_fence(first, count)?,
        };
        self.next = first + count;
        for (&pgno, page) in &saved {
            check_page(env, page, pgno, stamp(&self.stamps, pgno), &self.from)?;
            self.sums[pgno as usize] = page::stored_checksum(page);
        }
        for (i, &skip) in skip.iter().enumerate() {
            if !skip {
                let page = &buf[i * page_size..(i + 1) * page_size];
                let pgno = first + i as Pgno;
                check_page(env, page, pgno, stamp(&self.stamps, pgno), &self.from)?;
                self.sums[pgno as usize] = page::stored_checksum(page);
            }
        }
        Ok(DbPieces { first, skip, saved })
    }

    /// Moves the fence past pages `first..first + count` and returns which of them it saved
    /// (those the read takes from the fence) with every page it saved since the last step.
    ///
    /// Only the fence's own lock is taken, never the instance's: a writer holding the
    /// instance lock from one commit to the next cannot starve the read.
    fn take_from_fence(&mut self, first: Pgno, count: Pgno) -> Result<(Vec<bool>, Saved)> {
        let mut fence = CopyFence::lock(&self.fence);
        if let Some(err) = fence.failed.take() {
            return Err(err);
        }
        assert_eq!(fence.copied_below, first, "only the reader moves the fence");
        assert!(
            first + count <= fence.end,
            "the read ends at the fence's end"
        );
        let saved = std::mem::take(&mut fence.saved);
        let skip: Vec<bool> = (first..first + count)
            .map(|p| fence.secured.contains(&p))
            .collect();
        fence.copied_below = first + count;
        fence.secured = fence.secured.split_off(&(first + count));
        Ok((skip, saved))
    }
}

/// The dbtime the flush map says page `pgno` was last written with (0: never written).
fn stamp(stamps: &[u64], pgno: Pgno) -> u64 {
    stamps.get(pgno as usize).copied().unwrap_or(0)
}

/// A page the backup reads must pass its checksum, or be blank (allocated, never written),
/// and be the page its last write left (`stamp`, when it has been written).
fn check_page(env: &Env, page: &[u8], pgno: Pgno, stamp: u64, from: &Path) -> Result<()> {
    if planted::active(env, PlantedBug::BackupSkipsPageCheck) {
        return Ok(());
    }
    let checked = page::verify_copy(page, pgno).and_then(|()| {
        let found = page::dbtime_of(page);
        match stamp == 0 || found == stamp {
            true => Ok(()),
            false => Err(crate::store::flushmap::lost_flush(pgno, found, stamp)),
        }
    });
    checked.map_err(|err| {
        JetError::new(
            err.kind(),
            format!(
                "{}: {} (found by the backup)",
                from.display(),
                err.message()
            ),
        )
    })
}

/// An archived log generation, read a piece at a time ([`log::LOG_PIECE`]) and checked as it
/// is read, so a backup takes the same memory whatever the log file size.
pub(crate) struct LogReader {
    source: PieceReader<Vec<u8>>,
    check: Option<LogCheck>,
    generation: u32,
    crc: crc32fast::Hasher,
    /// How much of the current piece [`LogReader::read`] has handed out.
    pub(crate) handed: usize,
    /// Whether a piece was read and is the current one.
    have_piece: bool,
    pub(crate) last: bool,
    done: Option<SetLog>,
}

impl LogReader {
    /// Opens generation `generation` at `from`, to be checked as the log set and database
    /// `signatures` name it.
    pub(crate) fn open(
        env: &Env,
        from: &Path,
        generation: u32,
        signatures: (Signature, Signature),
    ) -> Result<LogReader> {
        let source = PieceReader::open(&*env.vfs, from, Vec::new()).map_err(|err| {
            if err.kind() == ErrorKind::FileNotFound {
                JetError::new(
                    ErrorKind::MissingFileToBackup,
                    format!("{}: the log generation to back up is gone", from.display()),
                )
            } else {
                err
            }
        })?;
        let check = (!planted::active(env, PlantedBug::BackupSkipsLogCheck))
            .then(|| LogCheck::new(generation, signatures.0, signatures.1, from));
        Ok(LogReader {
            source,
            check,
            generation,
            crc: crc32fast::Hasher::new(),
            handed: 0,
            have_piece: false,
            last: false,
            done: None,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.source.len()
    }

    /// Reads and checks the next piece; `None` at the end (a file of no bytes fails its
    /// check there).
    pub(crate) fn next_piece(&mut self) -> Result<Option<()>> {
        if self.last {
            self.have_piece = false;
            return Ok(None);
        }
        let Some((piece, last)) = self.source.next_piece()? else {
            // An empty file: no piece was its last.
            if let Some(check) = self.check.take() {
                check.finish()?;
            }
            self.last = true;
            self.finished();
            return Ok(None);
        };
        if let Some(check) = self.check.as_mut() {
            check.piece(piece)?;
        }
        if last && let Some(check) = self.check.take() {
            check.finish()?;
        }
        self.crc.update(piece);
        self.handed = 0;
        self.have_piece = true;
        if last {
            self.last = true;
            self.finished();
        }
        Ok(Some(()))
    }

    fn finished(&mut self) {
        self.done = Some(SetLog {
            generation: self.generation,
            len: self.source.len(),
            crc: self.crc.clone().finalize(),
        });
    }

    /// The current piece.
    pub(crate) fn piece(&self) -> &[u8] {
        self.source.last_piece()
    }

    /// Copies the next bytes into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if (!self.have_piece || self.handed == self.piece().len()) && self.next_piece()?.is_none() {
            return Ok(0);
        }
        let piece = self.source.last_piece();
        let n = (piece.len() - self.handed).min(buf.len());
        buf[..n].copy_from_slice(&piece[self.handed..self.handed + n]);
        self.handed += n;
        Ok(n)
    }

    /// The generation's length and CRC, once it has been read whole (and, by
    /// [`LogReader::read`], handed out whole).
    pub(crate) fn done(&self) -> Option<SetLog> {
        let handed_all = !self.have_piece || self.handed == self.piece().len();
        self.done.filter(|_| handed_all)
    }
}

/// An archived generation the backup reads must be whole: its header, every segment, its end.
/// Checked as it is read, a piece at a time: the header as soon as it is whole (the
/// generation, log set and database it names), every segment and record as they come, the
/// end once the file has been read.
struct LogCheck {
    scanner: log::LogScanner,
    generation: u32,
    log_signature: Signature,
    db_signature: Signature,
    from: PathBuf,
}

impl LogCheck {
    fn new(
        generation: u32,
        log_signature: Signature,
        db_signature: Signature,
        from: &Path,
    ) -> LogCheck {
        LogCheck {
            // (The scan's own errors name the file already.)
            scanner: log::LogScanner::new(&from.display().to_string()),
            generation,
            log_signature,
            db_signature,
            from: from.to_path_buf(),
        }
    }

    fn bad(from: &Path, why: String) -> JetError {
        JetError::new(
            ErrorKind::LogReadVerifyFailure,
            format!("{}: {why} (found by the backup)", from.display()),
        )
    }

    /// The scan's own error: a damaged header is the backup's verify failure.
    fn found(e: JetError) -> JetError {
        match e.kind() {
            ErrorKind::BadLogVersion => e,
            _ => JetError::new(
                ErrorKind::LogReadVerifyFailure,
                format!("{} (found by the backup)", e.message()),
            ),
        }
    }

    /// Checks the file's next piece.
    pub(crate) fn piece(&mut self, piece: &[u8]) -> Result<()> {
        let known = self.scanner.header().is_some();
        self.scanner.feed(piece).map_err(Self::found)?;
        match self.scanner.header() {
            Some(header) if !known => self.header(header),
            _ => Ok(()),
        }
    }

    fn header(&self, header: &log::LogHeader) -> Result<()> {
        if header.generation != self.generation {
            return Err(Self::bad(
                &self.from,
                format!("it holds generation {:#X}", header.generation),
            ));
        }
        if header.log_signature != self.log_signature {
            return Err(Self::bad(
                &self.from,
                "it belongs to another log set".into(),
            ));
        }
        if header.db_signature != self.db_signature {
            return Err(Self::bad(
                &self.from,
                "it belongs to another database".into(),
            ));
        }
        Ok(())
    }

    /// Judges the file once every piece has been checked.
    fn finish(self) -> Result<()> {
        let scan = self.scanner.finish().map_err(Self::found)?;
        match &scan.tail {
            LogTail::Ended => Ok(()),
            other => Err(Self::bad(
                &self.from,
                format!(
                    "an archived generation must be whole and ended, and it is {}",
                    crate::wal::recovery::describe_tail(other)
                ),
            )),
        }
    }
}
