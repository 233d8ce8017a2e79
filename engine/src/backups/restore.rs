//! Restore (ESE's JetRestore): a backup set — a full backup and the incremental backups that
//! extend it — becomes the instance's database again, recovered to the last backup's point
//! and shut down cleanly.
//!
//! Nothing in the backup is trusted before it is checked. The manifest must be whole; every
//! log generation it lists must be present (`JET_errMissingRestoreLogFiles`), of its log set
//! (`JET_errGivenLogFileHasBadSignature`), follow its predecessor
//! (`JET_errGivenLogFileIsNotContiguous`), be whole and ended
//! (`JET_errLogTornWriteDuringHardRestore`, `JET_errLogCorruptDuringHardRestore`) and match
//! its length and CRC32; every database page must pass its checksum
//! (`JET_errReadVerifyFailure`). After replay, the database must hold exactly the commits up
//! to the backup point. A failure removes everything the restore wrote.
//!
//! Each log is checked as it is copied, read a piece at a time ([`log::LOG_PIECE`]), so a
//! restore takes the same memory whatever the log file size; its last piece is written only
//! once the whole file has passed, and nothing is replayed before every file has.
//!
//! The database copy is written under a temporary name and renamed into place only after
//! the logs and the checkpoint are durable, so a crash in the middle leaves either no
//! database (init then refuses the logs without it) or everything recovery needs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::backups::manifest::{self, Manifest, SetBackup};
use crate::backups::status::{Reporter, StatusFn, StatusKind};
use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail, io_err};
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{OpenMode, Vfs, parent_dir};
use crate::store::doublewrite;
use crate::store::flushmap;
use crate::store::header::DbHeader;
use crate::store::header::Lgpos;
use crate::store::page::{self, Pgno};
use crate::txn::event::{Event, EventLog, Operation};
use crate::txn::instance::{
    Core, Instance, InstanceParams, Lifecycle, ensure_dir, lock, no_file_on_path,
};
use crate::wal::checkpoint::{Checkpoint, CheckpointFile};
use crate::wal::log::{self, CommitRecord, LogCut, LogHeader, LogTail};
use crate::wal::recovery::describe_tail;

const CHUNK_BYTES: usize = 1024 * 1024;

/// The errors a restore refuses a damaged backup set with (a missing manifest, a damaged or
/// missing log, a damaged page or database copy); any other error is not about the set.
pub const DAMAGE_ERRORS: [ErrorKind; 10] = [
    ErrorKind::FileNotFound,
    ErrorKind::LogCorruptDuringHardRestore,
    ErrorKind::LogTornWriteDuringHardRestore,
    ErrorKind::ReadVerifyFailure,
    ErrorKind::ReadPgnoVerifyFailure,
    ErrorKind::GivenLogFileHasBadSignature,
    ErrorKind::GivenLogFileIsNotContiguous,
    ErrorKind::MissingRestoreLogFiles,
    ErrorKind::BadBackupDatabaseSize,
    ErrorKind::RestoreOfNonBackupDatabase,
];

/// A point a restore stops at, short of the end of the logs it replays (PostgreSQL's
/// `recovery_target_lsn` and `recovery_target_time`, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePoint {
    /// The last commit whose commit record begins at or before this log position.
    Lgpos(Lgpos),
    /// The last commit before the first one stamped later than this time (milliseconds since
    /// the Unix epoch, from the instance's clock): with a clock that never runs back, the last
    /// commit at or before it.
    Time(u64),
}

/// What a restore restores and how far. The default is JetRestore's: the whole set, to its
/// last backup's point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Restore the full backup and only its first `k` incremental backups (`Some(0)`: the
    /// full backup alone); `None`, all of them.
    pub backups: Option<usize>,
    /// Stop at this point instead of the end of the logs. It must lie between the full
    /// backup's point (the database copy may hold any change up to it, and a change cannot
    /// be taken back: `JET_errStartingRestoreLogTooHigh`) and what the logs restored show
    /// (`JET_errEndingRestoreLogTooLow`): a position up to their end; a time before a commit
    /// they hold, or before the last restored backup began — a time at or past their last
    /// commit is refused even after a roll forward, since nothing shows what came next.
    pub until: Option<RestorePoint>,
    /// Roll forward (ESE's hard recovery): after the set's logs, replay the live instance's
    /// log files in this directory — the generations after the set's last, then its current
    /// `edb.log` — to the last durable commit they hold (or to `until`). They must be of the
    /// backup's log set (`JET_errExistingLogFileHasBadSignature`), follow the set without a
    /// gap (`JET_errMissingCurrentLogFiles`) and each other
    /// (`JET_errExistingLogFileIsNotContiguous`), and be whole: an archived generation torn
    /// or any of them damaged is refused (`JET_errLogTornWriteDuringHardRecovery`,
    /// `JET_errLogCorruptDuringHardRecovery`); the current file may end in a torn tail, as
    /// after a crash, which is dropped as crash recovery drops it.
    pub roll_forward: Option<PathBuf>,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The last commit the restored database holds: the point it landed on — the backup point
    /// of the last backup restored, the last commit at or before [`RestoreOptions::until`],
    /// or the last durable commit of the logs rolled forward.
    pub sequence: u64,
    /// Where that commit's record begins in the log, if the logs restored hold it (a backup
    /// point whose last commit came before the set's first log generation has none).
    pub position: Option<Lgpos>,
    /// When that commit was logged (milliseconds since the Unix epoch), with `position`.
    pub commit_millis: Option<u64>,
    /// How many backups of the set were restored (the full one and its incrementals).
    pub backups: usize,
    /// The log generations replayed.
    pub logs: (u32, u32),
    /// The live log generations rolled forward through, if any were.
    pub rolled_forward: Option<(u32, u32)>,
    /// Bytes of database copied.
    pub database_bytes: u64,
    /// Bytes of logs copied.
    pub log_bytes: u64,
    /// Commit groups replayed.
    pub commits_replayed: u64,
    /// What a restore into the same place that never finished had left, removed first.
    pub debris_removed: Vec<PathBuf>,
}

impl Instance {
    /// Restores the backup set in `backup_dir` into this instance's database and log paths
    /// (ESE's JetRestoreInstance), before init: the database then holds exactly the commits
    /// up to the backup point of the set's last backup, shut down cleanly, with its logs and
    /// checkpoint, ready for [`Instance::init`].
    ///
    /// The destination must hold no database, log or checkpoint of this instance's names
    /// (`JET_errDatabaseDuplicate`); its directories must exist unless
    /// `create_path_if_not_exist` is set (`JET_errInvalidPath`). A backup directory or a
    /// destination whose path runs through a regular file is `JET_errInvalidPath`; a
    /// destination the OS refuses to write (read-only, or not permitted) is
    /// `JET_errFileAccessDenied`. After init the call is refused
    /// (`JET_errAfterInitialization`); a backup called while a restore runs gets
    /// `JET_errRestoreInProgress`. `status` is called at Begin, at least every 4 MiB of
    /// Progress, and at Complete or Fail; an error it returns stops the restore.
    pub fn restore(
        &self,
        backup_dir: &Path,
        status: Option<StatusFn<'_>>,
    ) -> Result<RestoreSummary> {
        self.restore_with(backup_dir, &RestoreOptions::default(), status)
    }

    /// [`Instance::restore`] with options: a chosen backup of the set, a point to stop at, or
    /// a roll forward through the live instance's logs ([`RestoreOptions`]). The restored
    /// database holds exactly the commits up to the point landed on
    /// ([`RestoreSummary::sequence`]), shut down cleanly, with the log set it was backed up
    /// in: logs past that point are not copied, and the generation it falls in is copied
    /// cut just after its commit record, as if the instance had stopped there.
    ///
    /// Options that contradict each other (a backup the set does not hold, or a chosen
    /// backup with a roll forward) are `JET_errInvalidParameter`.
    pub fn restore_with(
        &self,
        backup_dir: &Path,
        options: &RestoreOptions,
        status: Option<StatusFn<'_>>,
    ) -> Result<RestoreSummary> {
        {
            let mut state = lock(&self.shared.state);
            match &*state {
                Lifecycle::NotInitialized => *state = Lifecycle::Restoring,
                Lifecycle::Restoring => {
                    bail!(RestoreInProgress, "a restore into the instance is running")
                }
                _ => bail!(
                    AfterInitialization,
                    "restore runs before init; terminate the instance first"
                ),
            }
        }
        struct Released<'a>(&'a std::sync::Mutex<Lifecycle>);
        impl Drop for Released<'_> {
            fn drop(&mut self) {
                *lock(self.0) = Lifecycle::NotInitialized;
            }
        }
        let _released = Released(&self.shared.state);
        let params = self.params().clone();
        let mut job = Restore {
            env: self.shared.env.clone(),
            events: params.event_log.clone(),
            params,
            from: backup_dir.to_path_buf(),
            options: options.clone(),
            progress: Reporter::new(Operation::Restore, status),
            created: Vec::new(),
            summary: RestoreSummary::default(),
            epoch: self.shared.inits.fetch_add(1, Ordering::Relaxed) + 1,
            marker: None,
        };
        match job.run() {
            Ok(()) => {
                job.emit(Event::RestoreSucceeded {
                    sequence: job.summary.sequence,
                    commits_replayed: job.summary.commits_replayed,
                });
                let _ = job.progress.report(StatusKind::Complete);
                Ok(job.summary)
            }
            Err(err) => {
                job.clean_up();
                job.emit(Event::RestoreFailed { error: err.clone() });
                let _ = job.progress.report(StatusKind::Fail);
                Err(err)
            }
        }
    }
}

struct Restore<'s> {
    env: Env,
    events: EventLog,
    params: InstanceParams,
    from: PathBuf,
    options: RestoreOptions,
    progress: Reporter<'s>,
    /// Files the restore made in the destination: removed if it fails.
    created: Vec<PathBuf>,
    summary: RestoreSummary,
    epoch: u64,
    /// The marker of this restore, once written (or found, from one that never finished).
    marker: Option<PathBuf>,
}

impl Restore<'_> {
    fn emit(&self, event: Event) {
        self.events.emit(&*self.env.clock, event);
    }

    fn run(&mut self) -> Result<()> {
        let vfs = Arc::clone(&self.env.vfs);
        let read = if planted::active(&self.env, PlantedBug::RestoreTrustsManifestShape) {
            manifest::read_unchecked
        } else {
            manifest::read
        };
        let Some(manifest) = read(&*vfs, &self.from)? else {
            no_file_on_path(&*vfs, &self.from)?;
            bail!(
                FileNotFound,
                "{} holds no finished backup (no {}; a backup that never finished leaves none)",
                self.from.display(),
                manifest::MANIFEST_NAME
            );
        };
        self.params.validate()?;
        if !self.params.recovery {
            bail!(
                LoggingDisabled,
                "a restore replays logs; the instance runs without logging (recovery off)"
            );
        }
        let chain = self.chain(&manifest)?;
        self.check_destination(&*vfs)?;
        let set_dir = manifest.set_dir(&self.from);
        let chosen = *chain.last().expect("a chain holds its full backup");
        let mut sources: Vec<Source> = manifest
            .logs
            .iter()
            .filter(|entry| entry.generation <= chosen.gen_high)
            .map(|entry| Source {
                generation: entry.generation,
                from: set_dir.join(manifest.log_name(entry.generation)),
                len: entry.len,
                kind: SourceKind::Set(*entry),
            })
            .collect();
        let mut buf = Vec::new();
        if let Some(live) = &self.options.roll_forward {
            let after = manifest.log_range().1;
            sources.extend(self.live_logs(&*vfs, live, &manifest, after)?);
        }
        let landing = match self.options.until {
            Some(point) => {
                let landing = self.find_landing(&*vfs, &sources, point, chain, &mut buf)?;
                sources.retain(|s| s.generation <= landing.generation);
                Some(landing)
            }
            None => None,
        };
        let low = sources.first().map_or(0, |s| s.generation);
        let high = sources.last().map_or(0, |s| s.generation);
        self.progress.total = sources
            .iter()
            .fold(manifest.db_len, |sum, s| sum.saturating_add(s.len));
        self.summary.logs = (low, high);
        self.summary.backups = chain.len();
        let live: Vec<u32> = sources
            .iter()
            .filter(|s| !matches!(s.kind, SourceKind::Set(_)))
            .map(|s| s.generation)
            .collect();
        self.summary.rolled_forward = live.first().zip(live.last()).map(|(&a, &b)| (a, b));
        self.emit(Event::RestoreBegin {
            from: self.from.clone(),
            low,
            high,
        });
        self.emit(Event::LogRange {
            operation: Operation::Restore,
            low,
            high,
        });
        self.progress.report(StatusKind::Begin)?;

        let mut prev: Option<LogHeader> = None;
        let mut last_commit: Option<(Lgpos, CommitRecord)> = None;
        let layout = self.params.layout();
        for (i, source) in sources.iter().enumerate() {
            let cut = landing
                .as_ref()
                .filter(|l| l.generation == source.generation)
                .and_then(|l| l.commit)
                .map(|(at, _)| at);
            let last = i + 1 == sources.len();
            // The last file becomes the current generation when it is cut (the instance
            // stopped in it) or is the live one: recovery then resumes writing in it.
            let current = last && (cut.is_some() || source.kind == SourceKind::LiveCurrent);
            debug_assert!(cut.is_none() || last, "only the last file copied is cut");
            let to = if current {
                layout.current()
            } else {
                layout.archived(source.generation)
            };
            let header = self.restore_log(
                &*vfs,
                &manifest,
                source,
                prev.as_ref(),
                cut,
                &to,
                &mut last_commit,
                &mut buf,
            )?;
            prev = Some(header);
        }
        let db_tmp = self.restore_database(&*vfs, &manifest, &set_dir)?;
        let chk_path = layout.checkpoint();
        let checkpoint = Checkpoint {
            sequence: 1,
            position: manifest.checkpoint,
            log_signature: manifest.log_signature,
            db_signature: manifest.db_signature,
            millis: self.env.clock.now_millis(),
            last_commit: manifest.checkpoint_last_commit,
        };
        self.created.push(chk_path.clone());
        let mut chk_tmp = chk_path.as_os_str().to_owned();
        chk_tmp.push(".tmp");
        self.created.push(PathBuf::from(chk_tmp));
        drop(CheckpointFile::replace(&vfs, &chk_path, checkpoint)?);
        vfs.sync_dir(&self.params.log_path)
            .map_err(io_err("fsync", &self.params.log_path))?;
        // A doublewrite file without its database is another database's: its batch must
        // never be installed into this one.
        let db_path = self.params.database_path.clone();
        doublewrite::remove(&*vfs, &db_path)?;
        self.created.push(doublewrite::path_for(&db_path));
        // The moment the destination holds a database: everything it needs is durable.
        self.created.push(db_path.clone());
        vfs.rename(&db_tmp, &db_path)
            .map_err(io_err("rename", &db_tmp))?;
        let db_dir = parent_dir(&db_path);
        vfs.sync_dir(db_dir).map_err(io_err("fsync", db_dir))?;

        // Replay to the end of the logs copied, which is the point landed on, and shut down
        // clean.
        let mut core = Core::start(&self.env, &self.params, self.epoch)?;
        let expected = match (&landing, &self.options.roll_forward) {
            (Some(landing), _) => landing.sequence,
            (None, None) => chosen.sequence,
            // Rolled forward: the last commit of the live logs, if there is one past the set.
            (None, Some(_)) => {
                last_commit.map_or(chosen.sequence, |(_, c)| c.sequence.max(chosen.sequence))
            }
        };
        if core.last_sequence != expected {
            bail!(
                LogCorruptDuringHardRestore,
                "the logs restored end at commit {}, but the point to land on is commit {expected}",
                core.last_sequence
            );
        }
        self.summary.sequence = expected;
        if let Some((at, commit)) = last_commit.filter(|(_, c)| c.sequence == expected) {
            self.summary.position = Some(at);
            self.summary.commit_millis = Some(commit.millis);
        }
        self.summary.commits_replayed = core
            .recovery
            .as_ref()
            .map_or(0, |report| report.commits_replayed);
        core.shut_down()?;
        // Whole: the place is an instance from now on.
        self.remove_marker(&*vfs)
    }

    /// The destination must hold nothing of an instance of these names, unless a restore into
    /// it began and never finished (its marker is there): then what it holds is that restore's
    /// debris, which this one removes. Then the marker is written, durably, before anything
    /// else: from here until the restore is complete, init refuses the place.
    fn check_destination(&mut self, vfs: &dyn Vfs) -> Result<()> {
        let p = &self.params;
        for dir in [
            &p.log_path,
            &p.system_path,
            &parent_dir(&p.database_path).to_path_buf(),
        ] {
            ensure_dir(&self.env, dir, p.create_path_if_not_exist)?;
        }
        let layout = p.layout();
        let marker = layout.restore_marker();
        let found = vfs.exists(&marker).map_err(io_err("look up", &marker))?;
        let ours = marker_text(p, &self.from);
        // The files a marker vouches for are those of the paths it names: a restore with other
        // paths (another log directory, say) would take files no restore wrote for debris.
        let text = if found {
            read_marker(vfs, &marker)?
        } else {
            String::new()
        };
        let same_paths = found && text.lines().skip(1).eq(ours.lines().skip(1));
        // Cut short (a crash while it was written, before its fsync): the marker is the first
        // thing a restore writes, so it is all that restore left; it goes, and the place is
        // judged as if it were not there.
        let torn = found && !same_paths && !text.contains("\nbase: ");
        if torn {
            vfs.remove(&marker).map_err(io_err("remove", &marker))?;
            vfs.sync_dir(&p.system_path)
                .map_err(io_err("fsync", &p.system_path))?;
        }
        let found = found && !torn;
        let unfinished =
            same_paths && !planted::active(&self.env, PlantedBug::RestoreRefusesItsDebris);
        let mut taken = Vec::new();
        let mut names = vec![
            p.database_path.clone(),
            layout.current(),
            layout.tmp(),
            layout.checkpoint(),
        ];
        if unfinished {
            // Every name a restore writes, or the recovery it runs: nobody else wrote here
            // since (init refused the place).
            names.extend([
                db_tmp_path(&p.database_path),
                doublewrite::path_for(&p.database_path),
                with_suffix(&doublewrite::path_for(&p.database_path), ".tmp"),
                with_suffix(&layout.checkpoint(), ".tmp"),
            ]);
        }
        for path in names {
            if vfs.exists(&path).map_err(io_err("look up", &path))? {
                taken.push(path);
            }
        }
        let archived = layout.archived_generations(vfs)?;
        match (unfinished, archived.first()) {
            (true, _) => taken.extend(archived.iter().map(|&g| layout.archived(g))),
            (false, Some(&generation)) => taken.push(layout.archived(generation)),
            (false, None) => {}
        }
        if found && !same_paths {
            bail!(
                DatabaseDuplicate,
                "{} is the marker of an unfinished restore into other paths (or unreadable): \
                 restore again with the paths it names, or clear the place by hand",
                marker.display()
            );
        }
        if !unfinished && let Some(path) = taken.first() {
            bail!(
                DatabaseDuplicate,
                "{} exists: restore into a place that holds no database, log or checkpoint",
                path.display()
            );
        }
        if unfinished {
            for path in &taken {
                vfs.remove(path).map_err(io_err("remove", path))?;
            }
            for dir in [&p.log_path, &p.system_path] {
                vfs.sync_dir(dir).map_err(io_err("fsync", dir))?;
            }
            let db_dir = parent_dir(&p.database_path);
            vfs.sync_dir(db_dir).map_err(io_err("fsync", db_dir))?;
            self.summary.debris_removed = taken;
        } else if !planted::active(&self.env, PlantedBug::RestoreLeavesNoMarker) {
            let text = ours;
            let file = vfs
                .open(&marker, OpenMode::CreateNew)
                .map_err(io_err("create", &marker))?;
            self.marker = Some(marker.clone());
            file.write_all_at(text.as_bytes(), 0)
                .and_then(|()| file.sync())
                .map_err(io_err("write", &marker))?;
            vfs.sync_dir(&p.system_path)
                .map_err(io_err("fsync", &p.system_path))?;
        }
        if unfinished {
            self.marker = Some(marker);
        }
        Ok(())
    }

    /// Removes the marker: the restore is complete (or failed and removed what it wrote).
    fn remove_marker(&mut self, vfs: &dyn Vfs) -> Result<()> {
        if let Some(marker) = self.marker.take() {
            vfs.remove(&marker).map_err(io_err("remove", &marker))?;
            vfs.sync_dir(&self.params.system_path)
                .map_err(io_err("fsync", &self.params.system_path))?;
        }
        Ok(())
    }

    /// The backups restored: the full one and the incrementals chosen
    /// ([`RestoreOptions::backups`]).
    fn chain<'m>(&self, manifest: &'m Manifest) -> Result<&'m [SetBackup]> {
        let held = manifest.backups.len();
        let k = self.options.backups.unwrap_or(held - 1);
        if k >= held {
            bail!(
                InvalidParameter,
                "the set holds the full backup and {} incremental backups; incremental {k} is not one of them",
                held - 1
            );
        }
        if self.options.roll_forward.is_some() && k + 1 < held {
            bail!(
                InvalidParameter,
                "a roll forward replays every log of the set before the live ones: choose a backup of the set, or roll forward, not both"
            );
        }
        Ok(&manifest.backups[..=k])
    }

    /// The live log generations a roll forward replays after the set's last, `after`: every
    /// log file in `dir` must be of the backup's log set, and the generations after `after`
    /// must all be there, up to the current file if it is.
    fn live_logs(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        manifest: &Manifest,
        after: u32,
    ) -> Result<Vec<Source>> {
        let layout = self.params.layout();
        if dir == layout.log_dir.as_path() {
            bail!(
                InvalidParameter,
                "{} is the restore's own log directory: roll forward from the live instance's",
                dir.display()
            );
        }
        no_file_on_path(vfs, dir)?;
        let names = vfs.list(dir).map_err(|err| {
            JetError::io(
                format!("list the live log directory {}", dir.display()),
                &err,
            )
        })?;
        let base = &manifest.base_name;
        let mut archived: Vec<u32> = names
            .iter()
            .filter_map(|name| log::parse_archive_name(base, name))
            .collect();
        archived.sort_unstable();
        let current = dir.join(log::current_name(base));
        let has_current = names.iter().any(|n| *n == log::current_name(base));
        let mut files: Vec<(PathBuf, Option<u32>)> = archived
            .iter()
            .map(|&g| (dir.join(log::archive_name(base, g)), Some(g)))
            .collect();
        if has_current && !planted::active(&self.env, PlantedBug::RollForwardSkipsCurrentLog) {
            files.push((current, None));
        }
        let mut sources = Vec::new();
        let mut buf = Vec::new();
        for (path, named) in files {
            let header = peek_header(vfs, &path, &mut buf)?;
            live_owner(&path, &header, manifest)?;
            if let Some(g) = named
                && header.generation != g
            {
                bail!(
                    ExistingLogFileIsNotContiguous,
                    "{} holds generation {:#X}, not the one its name says",
                    path.display(),
                    header.generation
                );
            }
            if header.generation <= after {
                continue;
            }
            let len = vfs
                .open(&path, OpenMode::Read)
                .and_then(|f| f.len())
                .map_err(io_err("size of", &path))?;
            sources.push(Source {
                generation: header.generation,
                from: path,
                len,
                kind: match named {
                    Some(_) => SourceKind::LiveArchived,
                    None => SourceKind::LiveCurrent,
                },
            });
        }
        for (expected, source) in (after + 1..).zip(sources.iter()) {
            if source.generation != expected {
                bail!(
                    MissingCurrentLogFiles,
                    "rolling forward from generation {after:#X}, the set's last, needs generation {expected:#X} ({}), and {} holds none",
                    log::archive_name(base, expected),
                    dir.display()
                );
            }
        }
        if sources.is_empty() {
            bail!(
                MissingCurrentLogFiles,
                "{} holds no log generation after the set's last ({after:#X}): nothing to roll forward through",
                dir.display()
            );
        }
        Ok(sources)
    }

    /// The commit a restore stopping at `point` lands on: the last of the logs in `sources`
    /// at or before it, read for their commit records only (a first pass; the copy checks
    /// them whole).
    fn find_landing(
        &self,
        vfs: &dyn Vfs,
        sources: &[Source],
        point: RestorePoint,
        chain: &[SetBackup],
        buf: &mut Vec<u8>,
    ) -> Result<Landing> {
        let (full, last) = (
            chain[0],
            *chain.last().expect("a chain holds its full backup"),
        );
        let mut landing: Option<(Lgpos, CommitRecord)> = None;
        // The first commit past the point: its presence shows no later commit is before it.
        let mut past: Option<(Lgpos, CommitRecord)> = None;
        let mut first_header: Option<LogHeader> = None;
        let mut end: Option<Lgpos> = None;
        let mut commits = Vec::new();
        'files: for source in sources {
            let name = source.from.display().to_string();
            let mut scanner = log::LogScanner::keeping_commits(&name);
            let mut reader = log::PieceReader::open(vfs, &source.from, &mut *buf)?;
            while let Some((piece, _)) = reader.next_piece()? {
                scanner.feed(piece).map_err(|e| source.kind.found(e))?;
                if first_header.is_none() {
                    first_header = scanner.header().copied();
                }
                scanner.take_commits(&mut commits);
                for (at, commit) in commits.drain(..) {
                    let beyond = match point {
                        RestorePoint::Lgpos(p) => at > p,
                        RestorePoint::Time(t) => commit.millis > t,
                    };
                    if beyond {
                        past = Some((at, commit));
                        if planted::active(&self.env, PlantedBug::RestoreOvershootsPoint) {
                            landing = past;
                        }
                        break 'files;
                    }
                    landing = Some((at, commit));
                }
            }
            end = Some(scanner.finish().map_err(|e| source.kind.found(e))?.end);
        }
        let covered = past.is_some()
            || match point {
                RestorePoint::Lgpos(p) => end.is_some_and(|end| p <= end),
                RestorePoint::Time(t) => t < last.millis,
            };
        let describe = match point {
            RestorePoint::Lgpos(p) => format!("log position {p}"),
            RestorePoint::Time(t) => format!("time {t} ms"),
        };
        if !covered {
            let tail = match landing {
                Some((at, c)) => format!(
                    "their last commit is {} at {at}, logged at {} ms",
                    c.sequence, c.millis
                ),
                None => "they hold no commit".into(),
            };
            bail!(
                EndingRestoreLogTooLow,
                "the logs restored end before {describe} ({tail}): they cannot show which commits came before it{}",
                if self.options.roll_forward.is_some() {
                    ""
                } else {
                    "; roll forward through the live logs to reach it"
                }
            );
        }
        match landing {
            Some((at, commit)) if commit.sequence >= full.sequence => Ok(Landing {
                sequence: commit.sequence,
                generation: at.generation,
                commit: Some((at, commit)),
            }),
            // No commit of the logs is at or before the point, and the first past it follows
            // the full backup's point, whose commit came before the logs begin: the point lies
            // between the two exactly when it is at or after the logs' beginning.
            None if past.is_none_or(|(_, c)| c.sequence == full.sequence + 1)
                && first_header.is_some_and(|h| match point {
                    RestorePoint::Lgpos(p) => {
                        p >= Lgpos {
                            generation: h.generation,
                            offset: 0,
                        }
                    }
                    RestorePoint::Time(t) => t >= h.created_millis,
                }) =>
            {
                Ok(Landing {
                    sequence: full.sequence,
                    generation: full.gen_high,
                    commit: None,
                })
            }
            _ => bail!(
                StartingRestoreLogTooHigh,
                "{describe} is before the full backup's point (its last commit, {}; the backup began at {} ms), or cannot be shown not to be: its database copy may hold any change up to that point, and none can be taken back",
                full.sequence,
                full.millis
            ),
        }
    }

    /// Checks one log generation — of the set, or live for a roll forward — and copies it to
    /// `to`, a piece at a time ([`log::LOG_PIECE`]) through `buf`: each piece is checked,
    /// hashed and written as it is read, so a restore takes the same memory whatever the log
    /// file size. The last piece is written only once the whole file has passed (so a
    /// generation of one piece that fails leaves no file; a longer one leaves what it wrote
    /// for the failure to remove). With `cut` (the landing commit's position), the copy ends
    /// just after that commit's record ([`LogCut`]). `last_commit` follows the commits copied.
    #[allow(clippy::too_many_arguments)]
    fn restore_log(
        &mut self,
        vfs: &dyn Vfs,
        manifest: &Manifest,
        source: &Source,
        prev: Option<&LogHeader>,
        cut: Option<Lgpos>,
        to: &Path,
        last_commit: &mut Option<(Lgpos, CommitRecord)>,
        buf: &mut Vec<u8>,
    ) -> Result<LogHeader> {
        let generation = source.generation;
        let from = &source.from;
        if !vfs.exists(from).map_err(io_err("look up", from))? {
            if let SourceKind::Set(_) = source.kind {
                bail!(
                    MissingRestoreLogFiles,
                    "the backup set needs log generation {generation:#X}, and {} is missing",
                    from.display()
                );
            }
            bail!(
                MissingCurrentLogFiles,
                "rolling forward needs log generation {generation:#X}, and {} is gone",
                from.display()
            );
        }
        let mut reader = log::PieceReader::open(vfs, from, &mut *buf)?;
        let len = reader.len();
        let name = from.display().to_string();
        let check_signature = !planted::active(&self.env, PlantedBug::RestoreSkipsSignatureCheck);
        let check = LogCheck {
            name: &name,
            manifest,
            generation,
            kind: source.kind,
            prev,
            check_signature,
        };
        let mut scanner = Some(log::LogScanner::keeping_commits(&name));
        let mut header = None;
        let mut crc = crc32fast::Hasher::new();
        let mut copy: Option<log::LogCopy> = None;
        let cut_at = cut.map(|at| LogCut {
            end: log::commit_end(at).offset,
            created_millis: self.env.clock.now_millis(),
        });
        let mut scratch = Vec::new();
        let mut at = 0u64;
        let mut commits = Vec::new();
        let create = |created: &mut Vec<PathBuf>| -> Result<log::LogCopy> {
            created.push(to.to_path_buf());
            let file = vfs
                .open(to, OpenMode::CreateNew)
                .map_err(io_err("create", to))?;
            log::LogCopy::new(file, to, len)
        };
        while let Some((piece, last)) = reader.next_piece()? {
            crc.update(piece);
            if let Some(scanner) = scanner.as_mut() {
                scanner.feed(piece).map_err(|e| check.kind.found(e))?;
                if header.is_none()
                    && let Some(h) = scanner.header()
                {
                    check.header(h)?;
                    header = Some(*h);
                }
                scanner.take_commits(&mut commits);
                for (pos, commit) in commits.drain(..) {
                    if cut.is_none_or(|end| pos <= end) {
                        *last_commit = Some((pos, commit));
                    }
                }
            }
            if last && let Some(scanner) = scanner.take() {
                check.end(scanner, len, &crc)?;
            }
            let piece_len = piece.len() as u64;
            let out: &[u8] = match &cut_at {
                Some(cut) => {
                    scratch.clear();
                    scratch.extend_from_slice(piece);
                    cut.apply(&mut scratch, at);
                    &scratch
                }
                None => piece,
            };
            at += piece_len;
            let copy = match &mut copy {
                Some(copy) => copy,
                None => copy.insert(create(&mut self.created)?),
            };
            copy.write(out, |n| self.progress.advance(n))?;
        }
        if let Some(scanner) = scanner.take() {
            // An empty file: no piece was its last.
            check.end(scanner, len, &crc)?;
        }
        let copy = match copy {
            Some(copy) => copy,
            None => create(&mut self.created)?,
        };
        copy.finish(|n| self.progress.advance(n))?;
        // Every file restored is reported, however small.
        self.progress.report(StatusKind::Progress)?;
        self.summary.log_bytes += len;
        self.emit(Event::FileCopied {
            operation: Operation::Restore,
            from: from.clone(),
            to: to.to_path_buf(),
            bytes: len,
        });
        Ok(header.expect("a log that passed has a header"))
    }

    /// Checks every page of the database copy and writes it under a temporary name.
    fn restore_database(
        &mut self,
        vfs: &dyn Vfs,
        manifest: &Manifest,
        set_dir: &Path,
    ) -> Result<PathBuf> {
        let from = set_dir.join(&manifest.db_name);
        let source = vfs.open(&from, OpenMode::Read).map_err(|err| {
            JetError::io(
                format!("the backup's database copy {}", from.display()),
                &err,
            )
        })?;
        let len = source.len().map_err(io_err("size of", &from))?;
        let page_size = manifest.page_size as usize;
        if len != manifest.db_len || !crate::base::limits::page_size_valid(page_size) {
            bail!(
                BadBackupDatabaseSize,
                "{} is {len} bytes; its manifest says {} bytes of {page_size}-byte pages",
                from.display(),
                manifest.db_len
            );
        }
        let tmp = db_tmp_path(&self.params.database_path);
        self.created.push(tmp.clone());
        let out = vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(io_err("create", &tmp))?;
        let pages = len / page_size as u64;
        let chunk_pages = (CHUNK_BYTES / page_size).max(1) as u64;
        let mut buf = vec![0u8; chunk_pages as usize * page_size];
        let mut pgno = 0u64;
        let mut signature_checked = false;
        let mut headers: [Option<DbHeader>; 2] = [None, None];
        let mut flush: Option<flushmap::Verifier> = None;
        let mut sums = Vec::with_capacity(pages as usize);
        while pgno < pages {
            let n = chunk_pages.min(pages - pgno);
            let chunk = &mut buf[..n as usize * page_size];
            source
                .read_exact_at(chunk, pgno * page_size as u64)
                .map_err(io_err("read", &from))?;
            for (i, page) in chunk.chunks(page_size).enumerate() {
                let this = (pgno + i as u64) as Pgno;
                sums.push(page::stored_checksum(page));
                page::verify_copy(page, this).map_err(|err| {
                    JetError::new(err.kind(), format!("{}: {}", from.display(), err.message()))
                })?;
                if this <= crate::store::header::SHADOW_PGNO {
                    headers[this as usize] = DbHeader::decode(page, this).ok();
                }
                if this == crate::store::header::SHADOW_PGNO {
                    // Both copies read: the newer whole one describes the pages (the flush
                    // map's digest and the catalog root's entry).
                    let newest = headers.iter().flatten().max_by_key(|h| h.sequence);
                    flush = newest.map(flushmap::Verifier::new);
                }
                if let Some(flush) = &mut flush {
                    flush.check(this, page).map_err(|err| {
                        JetError::new(err.kind(), format!("{}: {}", from.display(), err.message()))
                    })?;
                }
                if this <= crate::store::header::SHADOW_PGNO
                    && !signature_checked
                    && let Some(header) = &headers[this as usize]
                {
                    if header.db_signature != manifest.db_signature
                        || header.log_signature != manifest.log_signature
                    {
                        bail!(
                            RestoreOfNonBackupDatabase,
                            "{} is database {}, not the database {} the backup's manifest names",
                            from.display(),
                            header.db_signature,
                            manifest.db_signature
                        );
                    }
                    signature_checked = true;
                }
            }
            out.write_all_at(chunk, pgno * page_size as u64)
                .map_err(io_err("write", &tmp))?;
            self.progress.advance(chunk.len() as u64)?;
            pgno += n;
        }
        self.progress.catch_up()?;
        if manifest::page_digest(&sums) != manifest.db_digest
            && !planted::active(&self.env, PlantedBug::RestoreSkipsDigestCheck)
        {
            bail!(
                RestoreOfNonBackupDatabase,
                "{}: every page is whole, but the file is not the copy this backup made (its digest differs from the manifest's)",
                from.display()
            );
        }
        if !signature_checked {
            bail!(
                ReadVerifyFailure,
                "{}: neither header copy is whole",
                from.display()
            );
        }
        if let Some(flush) = flush {
            flush.finish().map_err(|err| {
                JetError::new(err.kind(), format!("{}: {}", from.display(), err.message()))
            })?;
        }
        out.sync().map_err(io_err("fsync", &tmp))?;
        self.summary.database_bytes = len;
        self.emit(Event::FileCopied {
            operation: Operation::Restore,
            from,
            to: self.params.database_path.clone(),
            bytes: len,
        });
        Ok(tmp)
    }

    /// Removes what the restore made, and what recovery made of it (best effort).
    fn clean_up(&mut self) {
        let vfs = Arc::clone(&self.env.vfs);
        let layout = self.params.layout();
        let mut doomed = std::mem::take(&mut self.created);
        if doomed.contains(&self.params.database_path) {
            // Recovery may have started logging: the logs it made go too.
            doomed.extend([layout.current(), layout.tmp()]);
            if let Ok(gens) = layout.archived_generations(&*vfs) {
                doomed.extend(gens.into_iter().map(|g| layout.archived(g)));
            }
        }
        if planted::active(&self.env, PlantedBug::RestoreLeavesItsFiles) {
            doomed.clear();
        }
        for path in doomed.iter().rev() {
            let _ = vfs.remove(path);
        }
        let mut durable = true;
        for dir in [&self.params.log_path, &self.params.system_path] {
            durable &= vfs.sync_dir(dir).is_ok();
        }
        durable &= vfs.sync_dir(parent_dir(&self.params.database_path)).is_ok();
        // The marker goes last, once the rest is durably gone: what it leaves behind if this
        // fails (or a crash comes first) is debris the marker still names.
        if durable && !planted::active(&self.env, PlantedBug::RestoreLeavesItsFiles) {
            let _ = self.remove_marker(&*vfs);
        }
    }
}

/// One log generation a restore copies and replays.
struct Source {
    generation: u32,
    /// Where it is read from.
    from: PathBuf,
    /// Its length (for the progress reported).
    len: u64,
    kind: SourceKind,
}

/// Where a generation comes from, which decides how it is checked and what its damage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceKind {
    /// The backup set's, with its manifest's entry (length and CRC32).
    Set(manifest::SetLog),
    /// The live instance's archived generation (a roll forward): it must be whole and ended.
    LiveArchived,
    /// The live instance's current `edb.log`: it may end open or torn, as after a crash.
    LiveCurrent,
}

impl SourceKind {
    /// A scan's own error (it names the file already): a damaged header is the set's damage,
    /// or the live logs' for a roll forward; a log of another format is refused as such.
    fn found(self, e: JetError) -> JetError {
        let damage = match self {
            SourceKind::Set(_) => ErrorKind::LogCorruptDuringHardRestore,
            _ => ErrorKind::LogCorruptDuringHardRecovery,
        };
        match e.kind() {
            ErrorKind::BadLogVersion => e,
            _ => JetError::new(damage, e.message().to_string()),
        }
    }
}

/// The commit a restore stopping at a point lands on.
#[derive(Clone, Copy, Debug)]
struct Landing {
    /// Its sequence number.
    sequence: u64,
    /// The last generation replayed: the one its record is in.
    generation: u32,
    /// Its record and where it begins, if the logs restored hold it; `None` when the point
    /// lands on the full backup's point before any commit of the logs.
    commit: Option<(Lgpos, CommitRecord)>,
}

/// The header of the log file at `path`, read alone (a roll forward judges the live files by
/// their headers before it reads any whole).
fn peek_header(vfs: &dyn Vfs, path: &Path, buf: &mut Vec<u8>) -> Result<LogHeader> {
    let name = path.display().to_string();
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let len = file.len().map_err(io_err("size of", path))?;
    buf.resize((len as usize).min(log::SEGMENT_SIZE), 0);
    file.read_exact_at(buf, 0).map_err(io_err("read", path))?;
    let mut scanner = log::LogScanner::new(&name);
    let found = |e| SourceKind::LiveArchived.found(e);
    scanner.feed(buf).map_err(found)?;
    match scanner.header() {
        Some(header) => Ok(*header),
        None => Err(found(scanner.finish().expect_err("no header is an error"))),
    }
}

/// A live log file must be of the backup's log set and database.
fn live_owner(path: &Path, header: &LogHeader, manifest: &Manifest) -> Result<()> {
    if header.log_signature != manifest.log_signature
        || header.db_signature != manifest.db_signature
    {
        bail!(
            ExistingLogFileHasBadSignature,
            "{} belongs to log set {} of database {}, not to the backup's ({} of {})",
            path.display(),
            header.log_signature,
            header.db_signature,
            manifest.log_signature,
            manifest.db_signature
        );
    }
    Ok(())
}

/// What a log generation must be, checked as it is read: its header as soon as it is whole
/// (its log set, database, generation, and the generation before it), then its end — and for
/// the set's, its length and CRC32 — once the file has been read.
struct LogCheck<'a> {
    /// The file, as errors name it.
    name: &'a str,
    manifest: &'a Manifest,
    generation: u32,
    kind: SourceKind,
    prev: Option<&'a LogHeader>,
    /// Whether the signatures are checked (always, but under a planted bug).
    check_signature: bool,
}

impl LogCheck<'_> {
    fn header(&self, header: &LogHeader) -> Result<()> {
        let (name, manifest, generation) = (self.name, self.manifest, self.generation);
        let set = matches!(self.kind, SourceKind::Set(_));
        let (foreign, gap) = match set {
            true => (
                ErrorKind::GivenLogFileHasBadSignature,
                ErrorKind::GivenLogFileIsNotContiguous,
            ),
            false => (
                ErrorKind::ExistingLogFileHasBadSignature,
                ErrorKind::ExistingLogFileIsNotContiguous,
            ),
        };
        let fail = |kind: ErrorKind, why: String| Err(JetError::new(kind, format!("{name} {why}")));
        if self.check_signature && header.log_signature != manifest.log_signature {
            return fail(
                foreign,
                format!(
                    "belongs to log set {}, not to the backup's {}",
                    header.log_signature, manifest.log_signature
                ),
            );
        }
        if self.check_signature && header.db_signature != manifest.db_signature {
            return fail(
                foreign,
                format!(
                    "belongs to database {}, not to the backup's {}",
                    header.db_signature, manifest.db_signature
                ),
            );
        }
        if header.generation != generation {
            return fail(
                gap,
                format!(
                    "holds generation {:#X}, not {generation:#X}",
                    header.generation
                ),
            );
        }
        if let Some(prev) = self.prev
            && header.prev_created_millis != prev.created_millis
        {
            return fail(
                gap,
                format!(
                    "does not follow generation {:#X} (its previous-generation time is {}, that log was created at {})",
                    prev.generation, header.prev_created_millis, prev.created_millis
                ),
            );
        }
        Ok(())
    }

    /// Judges the file once it has been read whole (`len` bytes, hashed into `crc`).
    fn end(&self, scanner: log::LogScanner, len: u64, crc: &crc32fast::Hasher) -> Result<()> {
        let name = self.name;
        let scan = scanner.finish().map_err(|e| self.kind.found(e))?;
        let entry = match self.kind {
            SourceKind::Set(entry) => entry,
            SourceKind::LiveArchived | SourceKind::LiveCurrent => {
                return match &scan.tail {
                    LogTail::Corrupt { .. } => bail!(
                        LogCorruptDuringHardRecovery,
                        "{name}: {}",
                        describe_tail(&scan.tail)
                    ),
                    LogTail::Torn { .. } if self.kind == SourceKind::LiveArchived => bail!(
                        LogTornWriteDuringHardRecovery,
                        "{name}: an archived generation must be whole and ended, and it is {}",
                        describe_tail(&scan.tail)
                    ),
                    LogTail::Open if self.kind == SourceKind::LiveArchived => bail!(
                        LogTornWriteDuringHardRecovery,
                        "{name}: an archived generation must be whole and ended, and it is open"
                    ),
                    _ => Ok(()),
                };
            }
        };
        let corrupt = |why: String| {
            JetError::new(
                ErrorKind::LogCorruptDuringHardRestore,
                format!("{name}: {why}"),
            )
        };
        match &scan.tail {
            LogTail::Ended => {}
            LogTail::Corrupt { .. } => return Err(corrupt(describe_tail(&scan.tail))),
            other => bail!(
                LogTornWriteDuringHardRestore,
                "{name}: a backed-up generation must be whole and ended, and it is {}",
                describe_tail(other)
            ),
        }
        if len != entry.len || crc.clone().finalize() != entry.crc {
            return Err(corrupt(
                "the file does not match the length and CRC32 its manifest records".into(),
            ));
        }
        Ok(())
    }
}

/// What a restore's marker says: the first line for a reader, then the paths it writes to, by
/// which a later restore knows the files it finds there are this one's.
fn marker_text(params: &InstanceParams, from: &Path) -> String {
    format!(
        "a restore from {} began here: until it finishes, init refuses this place, and a restore with these paths clears what it left\n\
         log: {}\nsystem: {}\ndatabase: {}\nbase: {}\n",
        from.display(),
        params.log_path.display(),
        params.system_path.display(),
        params.database_path.display(),
        params.base_name
    )
}

/// The marker's text (at most 64 KiB of it: a marker is a few lines).
fn read_marker(vfs: &dyn Vfs, path: &Path) -> Result<String> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let len = file.len().map_err(io_err("size of", path))?.min(64 * 1024);
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)
        .map_err(io_err("read", path))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Where the database copy is written before it is renamed into place: `data.edb.restore`.
fn db_tmp_path(database: &Path) -> PathBuf {
    with_suffix(database, ".restore")
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
