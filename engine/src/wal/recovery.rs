//! Crash recovery: the batch of database writes a crash interrupted is finished (see
//! `doublewrite`), so the database file holds one whole state of its trees; then, from the
//! checkpoint to the end of the log, every committed transaction's operations are replayed
//! through the trees (in sorted batches: `replay`); a commit group whose commit record never
//! reached the log is discarded (its transaction is undone).
//!
//! Replay is idempotent from any checkpoint: the file's state is at or after the checkpoint
//! (a batch is written only once the log holding its changes is durable, and the checkpoint
//! moves only past batches), and replay sets every key the log names to what the last of its
//! operations says, whatever the state it starts from — a table created again where it
//! exists, or a key deleted where it is absent, is left as it is.
//!
//! Recovery also settles the log directory before logging resumes: it finishes a roll that a
//! crash interrupted, starts a new log set for a database shut down cleanly whose logs are
//! gone, and clears the torn tail of the current generation so new segments never mingle with
//! debris.
//!
//! Because uncommitted changes never reach the log or the database file (a transaction's
//! changes are logged and applied only at commit), undo is the discarding of incomplete
//! groups: nothing an uncommitted transaction did is ever on disk.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{OpenMode, Vfs, VfsFile};
use crate::store::database::{Database, DatabaseOptions};
use crate::store::doublewrite;
use crate::store::header::{self, DbHeader, DbState, Lgpos, Signature};
use crate::wal::checkpoint::{self, Checkpoint, CheckpointFile};
use crate::wal::log::{
    self, LogHeader, LogScan, LogScanner, LogTail, LogWriter, NewLog, PieceReader, Record,
    SEGMENT_SIZE,
};
use crate::wal::replay::Replay;

/// Where an instance keeps its files, as recovery needs them.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub log_dir: PathBuf,
    pub system_dir: PathBuf,
    pub database: PathBuf,
    pub base: String,
    pub log_file_size: u64,
    pub circular: bool,
}

impl Layout {
    pub(crate) fn current(&self) -> PathBuf {
        self.log_dir.join(log::current_name(&self.base))
    }

    pub(crate) fn archived(&self, generation: u32) -> PathBuf {
        self.log_dir.join(log::archive_name(&self.base, generation))
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.log_dir.join(log::tmp_name(&self.base))
    }

    pub(crate) fn checkpoint(&self) -> PathBuf {
        self.system_dir
            .join(checkpoint::checkpoint_name(&self.base))
    }

    /// The marker of a restore into this place that has not finished (`edb.restoring`):
    /// written before a restore writes anything else, removed once it is complete. While it
    /// is there, init refuses the place and a restore takes what it finds for its debris.
    pub(crate) fn restore_marker(&self) -> PathBuf {
        self.system_dir.join(format!("{}.restoring", self.base))
    }

    /// The archived generations present, ascending.
    pub(crate) fn archived_generations(&self, vfs: &dyn Vfs) -> Result<Vec<u32>> {
        let names = vfs
            .list(&self.log_dir)
            .map_err(|err| JetError::io(format!("list {}", self.log_dir.display()), &err))?;
        let mut gens: Vec<u32> = names
            .iter()
            .filter_map(|name| log::parse_archive_name(&self.base, name))
            .collect();
        gens.sort_unstable();
        Ok(gens)
    }
}

/// What crash recovery found and did, for [`Instance::recovery_report`](crate::Instance).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Where replay started (the checkpoint), if there was a log to replay.
    pub start: Option<Lgpos>,
    /// The end of the last whole record.
    pub end: Option<Lgpos>,
    /// The generations read, ascending.
    pub generations: Vec<u32>,
    /// Commit groups replayed.
    pub commits_replayed: u64,
    /// Operations replayed (puts, deletes, table creations and deletions).
    pub operations_replayed: u64,
    /// Batches the replayed changes were applied in, each sorted by table and key between
    /// table creations and deletions (a batch ends when it holds half the cache's size).
    pub replay_batches: u64,
    /// The most pages the cache held while the log was replayed: while replay runs, the
    /// pages get half the cache (never under 64 pages; the batch has the rest), and pass it
    /// only by what one change touches.
    pub replay_cache_pages_peak: u64,
    /// Pages of an interrupted batch of database writes written into place again.
    pub batch_pages_finished: u64,
    /// Database pages recovery wrote (its batches; header copies included).
    pub pages_written: u64,
    /// Commit groups whose commit record never reached the log: their transactions undone.
    pub transactions_undone: u64,
    /// The torn tail of the current log, if it had one: where and why.
    pub torn_tail: Option<String>,
    /// Whether the database was left `DirtyShutdown` (a crash) before recovery.
    pub was_dirty: bool,
    /// Whether a new log set was started (a new database, or a clean one without logs).
    pub new_log_set: bool,
    /// Whether an interrupted log roll was finished.
    pub finished_roll: bool,
}

/// The outcome of recovery: the database, the log ready for appending and the checkpoint
/// file.
pub(crate) struct Recovered {
    pub db: Database,
    pub writer: LogWriter,
    pub checkpoint: CheckpointFile,
    pub report: RecoveryReport,
    /// The sequence number of the last commit in the log: the next one gets the one after.
    pub last_commit: u64,
}

fn io_err(path: &Path, what: &str) -> impl Fn(std::io::Error) -> JetError {
    let prefix = format!("{}: {what}", path.display());
    move |err| JetError::io(prefix.clone(), &err)
}

/// Reads the database header (the better copy) of the file at `path`.
pub(crate) fn read_db_header(vfs: &dyn Vfs, path: &Path) -> Result<(Box<dyn VfsFile>, DbHeader)> {
    let file = vfs
        .open(path, OpenMode::ReadWrite)
        .map_err(io_err(path, "open"))?;
    let copies = header::read_copies(&*file).map_err(|err| err.context(path.display()))?;
    let chosen = header::choose(&copies)
        .map_err(|err| err.context(path.display()))?
        .clone();
    // A damaged or stale copy is repaired first, before any header write could have both
    // copies in flight.
    header::repair_copies(&*file, &copies, &chosen).map_err(|err| err.context(path.display()))?;
    Ok((file, chosen))
}

/// Writes both header copies, each followed by an fsync.
pub(crate) fn write_db_header(
    file: &dyn VfsFile,
    path: &Path,
    header: &mut DbHeader,
) -> Result<()> {
    header.sequence = header.sequence.checked_add(1).ok_or_else(|| {
        JetError::new(
            ErrorKind::DatabaseCorrupted,
            format!(
                "{}: the header's sequence is at its maximum",
                path.display()
            ),
        )
    })?;
    for pgno in [header::HEADER_PGNO, header::SHADOW_PGNO] {
        file.write_all_at(
            &header.encode(pgno),
            u64::from(pgno) * u64::from(header.page_size),
        )
        .map_err(io_err(path, "write the header"))?;
        file.sync().map_err(io_err(path, "fsync"))?;
    }
    Ok(())
}

/// Brings the log directory and the database to a consistent state and returns the log
/// writer, positioned where appending resumes.
pub(crate) fn run(env: &Env, layout: &Layout, options: &DatabaseOptions) -> Result<Recovered> {
    let vfs = &*env.vfs;
    let mut report = RecoveryReport::default();
    let current_exists = vfs
        .exists(&layout.current())
        .map_err(io_err(&layout.current(), "look up"))?;
    let archived = layout.archived_generations(vfs)?;
    let (db_file, mut db_header) = read_db_header(vfs, &layout.database)?;
    let pending = match planted::active(env, PlantedBug::RecoveryIgnoresInterruptedBatch) {
        true => None,
        false => doublewrite::recover(vfs, &layout.database, &*db_file, &db_header, true)?,
    };
    if let Some((image, installed)) = pending {
        db_header = image;
        report.batch_pages_finished = installed.pages;
    }
    report.was_dirty = db_header.state != DbState::CleanShutdown;

    if !current_exists && archived.is_empty() {
        drop(db_file);
        return new_log_set(env, layout, options, report);
    }
    let set = db_header.log_signature;
    let owner = Owner {
        log: set,
        db: db_header.db_signature,
        check: !planted::active(env, PlantedBug::RecoverySkipsSignatureCheck),
    };
    if set == Signature::default() {
        // The database was used with logging off after these logs were written.
        if report.was_dirty {
            bail!(
                DatabaseDirtyShutdown,
                "{} was not shut down cleanly while logging was off; no log can recover it",
                layout.database.display()
            );
        }
        bail!(
            DatabaseLogSetMismatch,
            "{} was changed with logging off after the log files in {} were written; move them away to start a new log set",
            layout.database.display(),
            layout.log_dir.display()
        );
    }
    let chk_path = layout.checkpoint();
    let checkpoint = checkpoint::read(vfs, &chk_path)?;
    if let Some(chk) = &checkpoint
        && !planted::active(env, PlantedBug::RecoverySkipsCheckpointSignature)
    {
        checkpoint::check_signature(chk, &set, &chk_path)?;
    }

    // The current generation: edb.log, or — after a crash in the middle of a roll — the one
    // the roll was making.
    let mut last_gen = archived.last().copied();
    let mut current: Option<LogScan> = None;
    // Every log file is read a piece at a time through this one buffer: recovery's memory is
    // the same whatever the log file size.
    let mut buf = Vec::new();
    if current_exists {
        let (scan, checked_crc) = verify_file(vfs, &layout.current(), &owner, &mut buf, true)?;
        // What recovery replays must be durable before the checkpoint moves past it, and
        // before new segments' durable marks vouch for it.
        // (A damaged file is left as it is, its evidence whole, for the check below to report.)
        let damaged = matches!(scan.tail, LogTail::Corrupt { .. });
        if report.was_dirty && !damaged {
            rewrite_as_read(vfs, layout, &mut buf, checked_crc.expect("asked for"))?;
        } else {
            let file = vfs
                .open(&layout.current(), OpenMode::ReadWrite)
                .map_err(io_err(&layout.current(), "open"))?;
            file.sync().map_err(io_err(&layout.current(), "fsync"))?;
        }
        last_gen = Some(scan.header.generation);
        if let Some(&top) = archived.last()
            && top >= scan.header.generation
        {
            bail!(
                LogGenerationMismatch,
                "{} holds generation {:#X} but {} exists",
                layout.current().display(),
                scan.header.generation,
                layout.archived(top).display()
            );
        }
        current = Some(scan);
    }
    let last_gen = last_gen.expect("some log exists");
    let first_gen = archived.first().copied().unwrap_or(last_gen);

    let start = match &checkpoint {
        Some(chk) => chk.position,
        // Generation 1 is the whole history: replayed from there (pages already as new are
        // left alone), it also gives the last commit's sequence, which new commits continue.
        // A clean database's consistent point would do for its pages, but not for that.
        None if first_gen == 1 => Lgpos {
            generation: 1,
            offset: 0,
        },
        None if planted::active(env, PlantedBug::RecoveryGuessesItsStart) => Lgpos {
            generation: first_gen,
            offset: 0,
        },
        None => bail!(
            CheckpointFileNotFound,
            "{} is missing and the logs begin at generation {first_gen:#X}: recovery cannot tell where to start, nor the last commit's sequence",
            chk_path.display()
        ),
    };
    if start.generation > last_gen {
        bail!(
            LogFileCorrupt,
            "the checkpoint is in generation {:#X} but the log ends at generation {last_gen:#X}",
            start.generation
        );
    }
    // Every generation from the checkpoint on must be here: a gap is never skipped.
    let present: BTreeSet<u32> = archived
        .iter()
        .copied()
        .chain(current.as_ref().map(|s| s.header.generation))
        .collect();
    for generation in start.generation..=last_gen {
        if !present.contains(&generation) {
            let name = if generation == last_gen {
                log::current_name(&layout.base)
            } else {
                log::archive_name(&layout.base, generation)
            };
            bail!(
                MissingLogFile,
                "recovery needs log generation {generation:#X} ({name}) from the checkpoint {start} on, but it is missing"
            );
        }
    }

    report.start = Some(start);
    drop(db_file);
    let mut db = Database::open_logged(env, &layout.database, options)?;
    // Everything replayed is durable in the log (the pager holds no change logged by this
    // process); batches written while replaying record the file as not consistent on its own.
    db.pager_mut().set_state(DbState::DirtyShutdown);
    db.pager_mut().reset_cached_peak();
    // From a checkpoint, the next commit is known; from anywhere else, the first sets it.
    let mut replay = Replay::new(env, &mut db, checkpoint.map(|c| c.last_commit));
    let mut prev: Option<LogHeader> = None;
    let mut current_tail = None;
    for generation in start.generation..=last_gen {
        // Each generation is checked whole before any of its records is applied (a file
        // damaged further in must not have its first records replayed), then read again and
        // replayed as it is read.
        let (path, verified) = match current.take_if(|s| s.header.generation == generation) {
            Some(scan) => (layout.current(), scan),
            None => (
                layout.archived(generation),
                verify_archived(vfs, layout, &owner, generation, &mut buf)?,
            ),
        };
        check_generation(&verified, prev.as_ref(), start, layout)?;
        report.generations.push(generation);
        // Restarts not yet passed: a batch of records may end before the next restart.
        let mut restarts = VecDeque::new();
        let scan = log::scan_streamed(vfs, &path, &mut buf, |records, found| {
            restarts.extend(found.iter().copied());
            for (pos, record) in records {
                // A group still open where a writer resumed after recovery (here, or spilled
                // from the previous generation) was cut off by a crash there.
                while restarts.front().is_some_and(|r| r <= pos) {
                    restarts.pop_front();
                    replay.cut_group();
                }
                if *pos < start {
                    if let Record::Commit(c) = record {
                        replay.saw_commit(c.sequence);
                    }
                    continue;
                }
                replay.apply(*pos, record)?;
            }
            Ok(())
        })?;
        // The file read twice must be the same file: a disk that answers differently the
        // second time gives no log to trust.
        if (scan.header, &scan.tail, scan.end, scan.segments_used)
            != (
                verified.header,
                &verified.tail,
                verified.end,
                verified.segments_used,
            )
        {
            bail!(
                LogFileCorrupt,
                "{} read differently the second time (first {}, ending at {}; then {}, ending at {})",
                path.display(),
                describe_tail(&verified.tail),
                verified.end,
                describe_tail(&scan.tail),
                scan.end
            );
        }
        prev = Some(scan.header);
        if generation == last_gen {
            current_tail = Some(scan);
        }
    }
    let last = current_tail.expect("the last generation was scanned");
    // A group still open at the end was cut off by the crash: undone.
    let replayed = replay.finish()?;
    report.commits_replayed = replayed.commits;
    report.operations_replayed = replayed.operations;
    report.replay_batches = replayed.batches;
    report.replay_cache_pages_peak = db.pager_mut().cached_peak() as u64;
    report.transactions_undone += replayed.undone;
    let highest_sequence = replayed.highest_sequence;
    report.end = Some(last.end);
    // The file holds changes logged through `log_through`: a log ending before it lost
    // records that were durable (a damaged last flush taken for a torn one), and replaying
    // what is left onto the file would mix two states.
    let through = db.header().log_through;
    if last.end < through {
        bail!(
            LogFileCorrupt,
            "the database holds changes logged through {through}, but the log ends at {}: records made durable before it are lost",
            last.end
        );
    }
    if let LogTail::Torn { segment, reason } = &last.tail {
        report.torn_tail = Some(format!(
            "generation {:#X}, segment {segment} (offset {}): {reason}",
            last.header.generation,
            u64::from(*segment) * SEGMENT_SIZE as u64
        ));
    }

    let writer = settle_log(env, layout, &last, current_exists, &mut report)?;
    // Everything up to where the writer resumes is in the database now: written as one batch,
    // marked consistent there (the instance marks it in use again before its first change).
    let position = writer.position();
    if report.commits_replayed > 0 || report.was_dirty {
        let pager = db.pager_mut();
        pager.set_state(DbState::CleanShutdown);
        let header = pager.header_mut();
        header.consistent_lgpos = position;
        header.consistent_millis = env.clock.now_millis();
        db.flush()?;
    }
    report.pages_written = db.pager_mut().pages_written();
    let advance = |chk: Checkpoint| -> Result<CheckpointFile> {
        let mut file = CheckpointFile::open(&env.vfs, &chk_path, chk)?;
        if position > chk.position {
            file.write(position, highest_sequence, env.clock.now_millis())?;
        }
        Ok(file)
    };
    let checkpoint = match checkpoint {
        Some(chk)
            if report.was_dirty
                && !planted::active(env, PlantedBug::RecoveryReusesCheckpointFile) =>
        {
            let (position, last_commit) = if position > chk.position {
                (position, highest_sequence)
            } else {
                (chk.position, chk.last_commit)
            };
            let fresh = Checkpoint {
                position,
                last_commit,
                millis: env.clock.now_millis(),
                ..chk
            };
            match CheckpointFile::replace(&env.vfs, &chk_path, fresh) {
                Ok(file) if planted::active(env, PlantedBug::CheckpointLeavesTemporaryFile) => {
                    let mut tmp = chk_path.as_os_str().to_owned();
                    tmp.push(".tmp");
                    let tmp = PathBuf::from(tmp);
                    let bytes = log::read_file(&*env.vfs, &chk_path)?;
                    let copy = env
                        .vfs
                        .open(&tmp, OpenMode::CreateTruncate)
                        .map_err(io_err(&tmp, "create"))?;
                    copy.write_all_at(&bytes, 0)
                        .map_err(io_err(&tmp, "write"))?;
                    copy.sync().map_err(io_err(&tmp, "fsync"))?;
                    file
                }
                Ok(file) => file,
                // No room for a new file: write the slots in place (the open fsyncs first).
                Err(err) if err.kind() == ErrorKind::DiskFull => advance(chk)?,
                Err(err) => return Err(err),
            }
        }
        Some(chk) => advance(chk)?,
        // A new file with both slots at the start: as after a dirty shutdown, no slot may
        // hold anything else.
        None => CheckpointFile::replace(
            &env.vfs,
            &chk_path,
            Checkpoint {
                sequence: 0,
                position,
                log_signature: set,
                db_signature: db_header.db_signature,
                millis: env.clock.now_millis(),
                last_commit: highest_sequence,
            },
        )?,
    };
    Ok(Recovered {
        db,
        writer,
        checkpoint,
        report,
        last_commit: highest_sequence,
    })
}

/// Replaces the current log file with a copy of what recovery read of it, made durable.
///
/// After a dirty shutdown the file was read through the page cache, which after a failed
/// fsync may hold writes that never reach the disk (Linux's "fsyncgate"); an fsync now would
/// not write them again. Segments appended later would vouch for them, and the checkpoint
/// would move past them. A fresh copy (written as `edbtmp.log`, fsynced, renamed into place,
/// the directory fsynced) is durable exactly as read; a crash leaves either file, both holding
/// what was durable before.
///
/// The copy is byte for byte, debris included (settling the log clears it later), so that a
/// check refusing the log afterwards still finds every segment as it was. It needs room for one
/// more log file: on a full disk recovery fails with `JET_errDiskFull` and nothing changed, and
/// succeeds once room is made. (Falling back to an fsync in place would quietly give up the
/// protection; ESE's answer, reserve log files made while there is room, is not built.)
///
/// The copy goes over the only other record of the log, so it must read back as the file that
/// was checked (`checked`: a CRC of the whole file as [`verify_file`] read it) before it is
/// renamed into place: a write the disk put elsewhere would otherwise replace a whole log with
/// a damaged one. A copy that does not read back is made again, twice at most, then recovery
/// fails with `JET_errLogWriteFail` and the file is left as it was.
fn rewrite_as_read(vfs: &dyn Vfs, layout: &Layout, buf: &mut Vec<u8>, checked: u32) -> Result<()> {
    const ATTEMPTS: usize = 3;
    let tmp = layout.tmp();
    let current = layout.current();
    for _ in 0..ATTEMPTS {
        if let Err(err) = copy_log(vfs, &current, &tmp, buf) {
            // Best effort: the copy is no use half made (a later recovery would remove it
            // anyway).
            let _ = vfs.remove(&tmp);
            return Err(err);
        }
        let mut reader = PieceReader::open(vfs, &tmp, &mut *buf)?;
        let mut crc = crc32fast::Hasher::new();
        while let Some((piece, _)) = reader.next_piece()? {
            crc.update(piece);
        }
        if crc.finalize() == checked {
            vfs.rename(&tmp, &current).map_err(io_err(&tmp, "rename"))?;
            return vfs
                .sync_dir(&layout.log_dir)
                .map_err(io_err(&layout.log_dir, "fsync"));
        }
        vfs.remove(&tmp).map_err(io_err(&tmp, "remove"))?;
    }
    bail!(
        LogWriteFail,
        "{}: recovery's copy of {} read back differently {ATTEMPTS} times; the log is left as it was",
        tmp.display(),
        current.display()
    )
}

/// Copies the log file `from` to `to` a piece at a time, made durable.
fn copy_log(vfs: &dyn Vfs, from: &Path, to: &Path, buf: &mut Vec<u8>) -> Result<()> {
    let mut reader = PieceReader::open(vfs, from, &mut *buf)?;
    let room = |err: std::io::Error| {
        JetError::io(
            format!(
                "{}: recovery copies the log it read, and needs room for one log file",
                to.display()
            ),
            &err,
        )
    };
    let file = vfs.open(to, OpenMode::CreateTruncate).map_err(room)?;
    file.set_len(reader.len()).map_err(room)?;
    let mut at = 0u64;
    while let Some((piece, _)) = reader.next_piece()? {
        file.write_all_at(piece, at).map_err(room)?;
        at += piece.len() as u64;
    }
    file.sync().map_err(room)
}

/// Checks archived generation `generation`, which must be whole and closed (its records are
/// not kept: see [`verify_file`]).
fn verify_archived(
    vfs: &dyn Vfs,
    layout: &Layout,
    set: &Owner,
    generation: u32,
    buf: &mut Vec<u8>,
) -> Result<LogScan> {
    let path = layout.archived(generation);
    let (scan, _) = verify_file(vfs, &path, set, buf, false)?;
    if scan.header.generation != generation {
        bail!(
            LogGenerationMismatch,
            "{} holds generation {:#X}",
            path.display(),
            scan.header.generation
        );
    }
    if scan.tail != LogTail::Ended {
        bail!(
            LogFileCorrupt,
            "{}: archived generation {generation:#X} is damaged or incomplete ({})",
            path.display(),
            describe_tail(&scan.tail)
        );
    }
    Ok(scan)
}

/// Checks that a generation follows `prev`, is not damaged, and reaches the checkpoint if
/// it holds it.
fn check_generation(
    scan: &LogScan,
    prev: Option<&LogHeader>,
    start: Lgpos,
    layout: &Layout,
) -> Result<()> {
    let generation = scan.header.generation;
    if let Some(prev) = prev
        && scan.header.prev_created_millis != prev.created_millis
    {
        bail!(
            InvalidLogSequence,
            "log generation {generation:#X} does not follow generation {:#X} (its previous-generation time is {}, that log was created at {})",
            prev.generation,
            scan.header.prev_created_millis,
            prev.created_millis
        );
    }
    if let LogTail::Corrupt {
        segment,
        offset,
        reason,
    } = &scan.tail
    {
        bail!(
            LogFileCorrupt,
            "{}: generation {generation:#X} is corrupt at segment {segment} (offset {offset}): {reason}",
            layout.current().display()
        );
    }
    if generation == start.generation && start.offset / SEGMENT_SIZE as u32 > scan.segments_used + 1
    {
        bail!(
            LogFileCorrupt,
            "generation {generation:#X} ends at segment {} but the checkpoint {start} lies beyond it",
            scan.segments_used
        );
    }
    Ok(())
}

/// Settles the log so appending can resume: finishes an interrupted roll, or clears debris
/// past the valid segments of `edb.log` and drops a stale `edbtmp.log`.
fn settle_log(
    env: &Env,
    layout: &Layout,
    last: &LogScan,
    current_exists: bool,
    report: &mut RecoveryReport,
) -> Result<LogWriter> {
    let vfs = &*env.vfs;
    if last.tail == LogTail::Ended || !current_exists {
        report.finished_roll = true;
        return finish_roll(env, layout, last);
    }
    if last.has_debris() {
        clear_debris(vfs, &layout.current(), last)?;
    }
    let tmp = layout.tmp();
    if vfs.exists(&tmp).map_err(io_err(&tmp, "look up"))? {
        vfs.remove(&tmp).map_err(io_err(&tmp, "remove"))?;
    }
    let mut writer = LogWriter::resume(
        Arc::clone(&env.vfs),
        Arc::clone(&env.clock),
        &layout.log_dir,
        &layout.base,
        last.header,
        last.segments_used,
    )?;
    // A clean shutdown gave back the blank tail's disk space (`LogWriter::release_tail`).
    if !report.was_dirty {
        writer.refill_tail()?;
    }
    Ok(writer)
}

/// A human description of a log file's tail.
pub fn describe_tail(tail: &LogTail) -> String {
    match tail {
        LogTail::Ended => "ended".into(),
        LogTail::Open => "open".into(),
        LogTail::Torn { segment, reason } => format!(
            "torn tail at segment {segment} (offset {}): {reason}",
            u64::from(*segment) * SEGMENT_SIZE as u64
        ),
        LogTail::Corrupt {
            segment,
            offset,
            reason,
        } => format!("corrupt segment {segment} at offset {offset}: {reason}"),
    }
}

/// The log set and database a log file must name in its header.
pub(crate) struct Owner {
    /// The log set.
    pub(crate) log: Signature,
    /// The database.
    pub(crate) db: Signature,
    /// Whether the signatures are checked (always, but under a planted bug).
    pub(crate) check: bool,
}

/// Checks the log file at `path` as it is read, a piece at a time through `buf`: its header,
/// which must name `set`'s log set and database (a log of the same set naming another
/// database is not this database's), and how it ends. The scan comes back without records
/// (recovery reads the file again to replay it: [`log::scan_streamed`]), with, if `crc`, a
/// CRC of the whole file as read, which recovery's durable copy must match (only the current
/// file is copied: the archived ones are not hashed for nothing).
fn verify_file(
    vfs: &dyn Vfs,
    path: &Path,
    set: &Owner,
    buf: &mut Vec<u8>,
    crc: bool,
) -> Result<(LogScan, Option<u32>)> {
    let name = path.display().to_string();
    let mut scanner = LogScanner::new(&name);
    let mut reader = PieceReader::open(vfs, path, &mut *buf)?;
    let mut checked = false;
    let mut hasher = crc.then(crc32fast::Hasher::new);
    while let Some((piece, _)) = reader.next_piece()? {
        if let Some(hasher) = &mut hasher {
            hasher.update(piece);
        }
        scanner.feed(piece)?;
        if !checked && let Some(header) = scanner.header() {
            // A foreign file is refused before the rest of it is read.
            check_owner(header, set, &name)?;
            checked = true;
        }
    }
    let scan = scanner.finish()?;
    if !checked {
        check_owner(&scan.header, set, &name)?;
    }
    Ok((scan, hasher.map(crc32fast::Hasher::finalize)))
}

/// A log file must belong to `set`: its log set and its database.
fn check_owner(header: &LogHeader, set: &Owner, name: &str) -> Result<()> {
    if set.check && header.log_signature != set.log {
        bail!(
            BadLogSignature,
            "{name} belongs to log set {}, not to this database's log set {}",
            header.log_signature,
            set.log
        );
    }
    if set.check && header.db_signature != set.db {
        bail!(
            BadLogSignature,
            "{name} belongs to database {}, not to this one ({})",
            header.db_signature,
            set.db
        );
    }
    Ok(())
}

/// Writes zeros over every non-blank segment after the last whole record's segment, and
/// fsyncs, so that segments written from there on never mingle with debris.
fn clear_debris(vfs: &dyn Vfs, path: &Path, scan: &LogScan) -> Result<()> {
    let file = vfs
        .open(path, OpenMode::ReadWrite)
        .map_err(io_err(path, "open"))?;
    let len = file.len().map_err(io_err(path, "size"))?;
    let zeros = vec![0u8; SEGMENT_SIZE];
    let mut seg = vec![0u8; SEGMENT_SIZE];
    for index in scan.segments_used + 1..scan.header.segments {
        let offset = u64::from(index) * SEGMENT_SIZE as u64;
        if offset + SEGMENT_SIZE as u64 > len {
            break;
        }
        file.read_exact_at(&mut seg, offset)
            .map_err(io_err(path, "read"))?;
        if seg.iter().any(|&b| b != 0) {
            file.write_all_at(&zeros, offset)
                .map_err(io_err(path, "clear the torn tail"))?;
        }
    }
    file.sync().map_err(io_err(path, "fsync"))?;
    Ok(())
}

/// Finishes a roll a crash interrupted: the ended `edb.log` is archived (if it is still
/// there) and the next generation becomes `edb.log`.
fn finish_roll(env: &Env, layout: &Layout, last: &LogScan) -> Result<LogWriter> {
    let vfs = &*env.vfs;
    let dir = &layout.log_dir;
    let current = layout.current();
    let generation = last.header.generation;
    if generation >= log::GENERATION_MAX {
        bail!(
            LogWriteFail,
            "the log has reached its last generation ({generation:#X})"
        );
    }
    let sync_dir = || vfs.sync_dir(dir).map_err(io_err(dir, "fsync"));
    if vfs.exists(&current).map_err(io_err(&current, "look up"))? {
        let archived = layout.archived(generation);
        vfs.rename(&current, &archived)
            .map_err(io_err(&current, "rename"))?;
        sync_dir()?;
    }
    let header = LogHeader {
        generation: generation + 1,
        created_millis: env.clock.now_millis(),
        prev_created_millis: last.header.created_millis,
        segments: (layout.log_file_size / SEGMENT_SIZE as u64) as u32,
        circular: layout.circular,
        ..last.header
    };
    // A prepared edbtmp.log is not trusted: it is simply made again.
    let tmp = NewLog {
        vfs: &env.vfs,
        dir,
        base: &layout.base,
        header,
    }
    .prepare()?;
    vfs.rename(&tmp, &current).map_err(io_err(&tmp, "rename"))?;
    sync_dir()?;
    LogWriter::resume(
        Arc::clone(&env.vfs),
        Arc::clone(&env.clock),
        dir,
        &layout.base,
        header,
        0,
    )
}

/// Starts a new log set for a database without logs, which must have been shut down cleanly:
/// a new log signature in the database header, generation 1, and a checkpoint.
fn new_log_set(
    env: &Env,
    layout: &Layout,
    options: &DatabaseOptions,
    mut report: RecoveryReport,
) -> Result<Recovered> {
    let vfs = &*env.vfs;
    let (file, mut db_header) = read_db_header(vfs, &layout.database)?;
    let chk_path = layout.checkpoint();
    if db_header.state != DbState::CleanShutdown {
        let needed = match checkpoint::read(vfs, &chk_path) {
            Ok(Some(chk)) => format!(
                "; it needs log generation {:#X} ({}) on",
                chk.position.generation,
                log::archive_name(&layout.base, chk.position.generation)
            ),
            _ => String::new(),
        };
        bail!(
            RequiredLogFilesMissing,
            "{} was not shut down cleanly and its log files are gone from {}{needed}",
            layout.database.display(),
            layout.log_dir.display()
        );
    }
    if vfs
        .exists(&chk_path)
        .map_err(io_err(&chk_path, "look up"))?
    {
        vfs.remove(&chk_path).map_err(io_err(&chk_path, "remove"))?;
        vfs.sync_dir(&layout.system_dir)
            .map_err(io_err(&layout.system_dir, "fsync"))?;
    }
    let now = env.clock.now_millis();
    // A zero signature means "no log set" (the database was used with logging off).
    let set = Signature {
        random: env.entropy.next_u64().max(1),
        created_millis: now,
    };
    let start = Lgpos {
        generation: 1,
        offset: (SEGMENT_SIZE + 32) as u32,
    };
    db_header.log_signature = set;
    db_header.consistent_lgpos = start;
    // The old log set's positions mean nothing in the new one.
    db_header.log_through = Lgpos::default();
    write_db_header(&*file, &layout.database, &mut db_header)?;
    drop(file);
    let header = LogHeader {
        generation: 1,
        segments: (layout.log_file_size / SEGMENT_SIZE as u64) as u32,
        log_signature: set,
        db_signature: db_header.db_signature,
        created_millis: now,
        prev_created_millis: 0,
        circular: layout.circular,
    };
    let tmp = NewLog {
        vfs: &env.vfs,
        dir: &layout.log_dir,
        base: &layout.base,
        header,
    }
    .prepare()?;
    vfs.rename(&tmp, &layout.current())
        .map_err(io_err(&tmp, "rename"))?;
    vfs.sync_dir(&layout.log_dir)
        .map_err(io_err(&layout.log_dir, "fsync"))?;
    let writer = LogWriter::resume(
        Arc::clone(&env.vfs),
        Arc::clone(&env.clock),
        &layout.log_dir,
        &layout.base,
        header,
        0,
    )?;
    debug_assert_eq!(writer.position(), start);
    let checkpoint = CheckpointFile::open(
        &env.vfs,
        &chk_path,
        Checkpoint {
            sequence: 1,
            position: start,
            log_signature: set,
            db_signature: db_header.db_signature,
            millis: now,
            last_commit: 0,
        },
    )?;
    report.new_log_set = true;
    let db = Database::open_logged(env, &layout.database, options)?;
    Ok(Recovered {
        db,
        writer,
        checkpoint,
        report,
        last_commit: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::vfs::MemVfs;

    const SEGMENTS: u32 = 32;

    /// A log of three flushed commits in `edb.log` (segments 1..=6), read back.
    fn log_of_three_commits(vfs: &Arc<dyn Vfs>) -> Vec<u8> {
        let mut log = log::tests::writer(vfs, SEGMENTS);
        for n in 1..=3 {
            log.append(&log::tests::commit(n)).unwrap();
            log.flush().unwrap();
        }
        log::read_file(&**vfs, Path::new("edb.log")).unwrap()
    }

    fn params() -> crate::InstanceParams {
        let mut p = crate::InstanceParams::in_directory("inst");
        p.page_size = 4096;
        p.cache_size = 64 * 4096;
        p
    }

    /// Recovers the instance in `inst/` of `env` (after a crash: the last one was dropped
    /// without its term), then crashes it again; returns the report.
    fn recover(env: &Env) -> RecoveryReport {
        let instance = crate::Instance::new(env.clone(), params());
        instance.init().unwrap();
        let report = instance.recovery_report().unwrap().unwrap();
        drop(instance);
        report
    }

    /// Runs `commits` durable commits of a 300-byte value each under new keys, then crashes
    /// (drops the instance without its term).
    fn commit_then_crash(env: &Env, first: bool, commits: u16) {
        let instance = crate::Instance::new(env.clone(), params());
        instance.init().unwrap();
        let mut session = instance.begin_session().unwrap();
        let t = if first {
            session.create_table("t").unwrap()
        } else {
            session.open_table("t").unwrap()
        };
        let base = if first { 0 } else { 10_000 };
        for i in 0..commits {
            session.begin_transaction().unwrap();
            session
                .put(t, &(base + i).to_be_bytes(), &[7; 300])
                .unwrap();
            session
                .commit_transaction(crate::CommitMode::Durable)
                .unwrap();
        }
        drop(session);
        drop(instance);
    }

    /// The operations the log holds from `report.start` to `report.end`.
    fn operations_logged(env: &Env, report: &RecoveryReport) -> u64 {
        let (start, end) = (report.start.unwrap(), report.end.unwrap());
        (start.generation..=end.generation)
            .map(|g| {
                let name = if g == end.generation {
                    log::current_name("edb")
                } else {
                    log::archive_name("edb", g)
                };
                let bytes = log::read_file(&*env.vfs, &Path::new("inst").join(&name)).unwrap();
                let scan = log::scan(&bytes, &name).unwrap();
                assert_eq!(scan.header.generation, g, "{name}");
                scan.records
                    .iter()
                    .filter(|(pos, _)| *pos >= start && *pos < end)
                    .filter(|(_, r)| {
                        matches!(
                            r,
                            Record::Put { .. }
                                | Record::PutLarge { .. }
                                | Record::Delete { .. }
                                | Record::CreateTable { .. }
                                | Record::DeleteTable { .. }
                        )
                    })
                    .count() as u64
            })
            .sum()
    }

    #[test]
    fn the_report_counts_what_recovery_replayed_and_wrote() {
        let env = Env::memory(3);
        env.vfs.create_dir(Path::new("inst")).unwrap();
        // The table's creation and three commits, replayed and written back as one batch.
        commit_then_crash(&env, true, 3);
        let report = recover(&env);
        assert!(report.was_dirty);
        assert_eq!(report.commits_replayed, 4, "{report:?}");
        assert_eq!(report.operations_replayed, 4, "{report:?}");
        assert_eq!(report.transactions_undone, 0);
        assert_eq!(report.batch_pages_finished, 0);
        // The table's root, the catalog root (twice: through the doublewrite file and into
        // place) and the header's two copies.
        assert!(report.pages_written >= 6, "{report:?}");
        assert_eq!(report.operations_replayed, operations_logged(&env, &report));
        // Recovery moved the checkpoint past what it replayed: crashed at once, nothing more
        // than the header, marked clean again.
        let again = recover(&env);
        assert!(again.was_dirty);
        assert!(again.start > report.start, "{again:?}");
        assert_eq!(
            (
                again.commits_replayed,
                again.operations_replayed,
                again.pages_written
            ),
            (0, 0, 2),
            "{again:?}"
        );
        // 1,500 commits through a 64-page cache (about 120 leaves): batches are written under
        // pressure, and replay from the checkpoint redoes every commit over them.
        commit_then_crash(&env, false, 1500);
        let report = recover(&env);
        assert_eq!(report.commits_replayed, 1500, "{report:?}");
        assert_eq!(report.operations_replayed, 1500, "{report:?}");
        assert_eq!(report.transactions_undone, 0);
        assert!(report.pages_written > 64, "{report:?}");
        assert_eq!(report.operations_replayed, operations_logged(&env, &report));
    }

    #[test]
    fn a_value_logged_in_several_records_is_replayed_whole() {
        let env = Env::memory(5);
        env.vfs.create_dir(Path::new("inst")).unwrap();
        // Three records: a large put and two value parts, the last one short.
        let value: Vec<u8> = (0..log::VALUE_PART_MAX * 2 + 100)
            .map(|i| (i % 251) as u8)
            .collect();
        {
            let instance = crate::Instance::new(env.clone(), params());
            instance.init().unwrap();
            let mut session = instance.begin_session().unwrap();
            let t = session.create_table("t").unwrap();
            session.begin_transaction().unwrap();
            session.put(t, b"big", &value).unwrap();
            session.put(t, b"small", b"x").unwrap();
            session
                .commit_transaction(crate::CommitMode::Durable)
                .unwrap();
            drop(session);
            // A crash: dropped without its term.
            drop(instance);
        }
        let instance = crate::Instance::new(env.clone(), params());
        instance.init().unwrap();
        let report = instance.recovery_report().unwrap().unwrap();
        assert_eq!(report.commits_replayed, 2, "{report:?}");
        assert_eq!(report.operations_replayed, 3, "{report:?}");
        let mut session = instance.begin_session().unwrap();
        let t = session.open_table("t").unwrap();
        assert!(
            session.get(t, b"big").unwrap() == Some(value),
            "the value whole"
        );
        assert_eq!(session.get(t, b"small").unwrap(), Some(b"x".to_vec()));
    }

    #[test]
    fn debris_past_a_torn_tail_is_zeroed_to_the_end_of_the_file() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let clean = log_of_three_commits(&vfs);
        let seg = |i: usize| i * SEGMENT_SIZE..(i + 1) * SEGMENT_SIZE;
        // The last flush's segments (5, 6) torn: 5 blank, 6 and two stale segments further
        // on still hold bytes; and the file ends short of its header's size (a tail never
        // preallocated), its last segment garbage too.
        let mut torn = clean.clone();
        torn[seg(5)].fill(0);
        torn[seg(9)].copy_from_slice(&clean[seg(1)]);
        torn[seg(12)].fill(0xA5);
        torn.truncate(13 * SEGMENT_SIZE);
        let path = Path::new("edb.log");
        vfs.open(path, OpenMode::CreateTruncate)
            .unwrap()
            .write_all_at(&torn, 0)
            .unwrap();
        let scan = log::scan(&torn, "edb.log").unwrap();
        assert!(scan.has_debris(), "{:?}", scan.tail);
        assert_eq!(scan.segments_used, 4);
        clear_debris(&*vfs, path, &scan).unwrap();
        let after = log::read_file(&*vfs, path).unwrap();
        assert_eq!(after.len(), torn.len());
        assert_eq!(
            after[..seg(5).start],
            torn[..seg(5).start],
            "the records stay"
        );
        assert!(
            after[seg(5).start..].iter().all(|&b| b == 0),
            "every segment past the last whole record is blank"
        );
        let rescan = log::scan(&after, "edb.log").unwrap();
        assert!(!rescan.has_debris());
        assert_eq!(rescan.records.len(), scan.records.len());
    }
}
