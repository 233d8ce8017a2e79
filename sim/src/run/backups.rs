//! Backups in a run: the steps that begin, advance, finish and abandon a backup job, truncate
//! the logs and restore a backup directory, and the oracles that judge them
//! (`../shared/reference/oracles.md`: the backup point, backup outcomes, crash during a
//! backup, truncation, and the contract's errors).
//!
//! The simulator knows, for each backup directory, the snapshot a restore of it must give: the
//! model's committed state when its last successful backup began. Every check restores the
//! directory into a fresh place (`rst…`) with faults and crashes held, compares every table
//! key by key, and removes the copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jetdb::manifest::{self, Manifest};
use jetdb::{BackupFlags, BackupInfo, BackupJob, ErrorKind, Instance, JetError};

use super::report::{Before, Pace};
use super::{Check, Sim};
use crate::config::CorruptZone;
use crate::coverage::Mark;
use crate::model::{Key, Val, parse_key, value_matches, value_of};
use crate::oracle::{IO_ERRORS, Oracle, Violation};
use crate::timeline::Lane;
use crate::vfs::{IoFault, Zone};
use crate::workload::{BACKUP_DIRS, BackupMode, Misuse, Tamper};

/// What a restore of a damaged backup may answer, besides the exact snapshot.
pub(crate) const RESTORE_ERRORS: [ErrorKind; 10] = jetdb::RESTORE_DAMAGE_ERRORS;

/// A snapshot of the committed state: every key's value.
pub(crate) type Snapshot = BTreeMap<Key, Val>;

/// Where two snapshots differ, as (the model's side, the engine's): each key that differs
/// with its value id (`-` for absent), the first 12, and how many more.
pub(crate) fn snapshot_diff(want: &Snapshot, got: &Snapshot) -> (String, String) {
    let keys: BTreeSet<&Key> = want
        .iter()
        .filter(|(k, v)| got.get(k) != Some(v))
        .map(|(k, _)| k)
        .chain(got.keys().filter(|k| !want.contains_key(k)))
        .collect();
    let keys: Vec<&Key> = keys.into_iter().collect();
    (
        listed(&keys, |k| model_value(k, want)),
        listed(&keys, |k| model_value(k, got)),
    )
}

/// The first six keys where `got` differs from `want`, for a violation's detail: `(t, k)=#id`
/// for a key `got` holds otherwise, `(t, k) missing (#id)` for one it lacks.
pub(crate) fn differing(want: &Snapshot, got: &Snapshot) -> Vec<String> {
    got.iter()
        .filter(|(k, v)| want.get(k) != Some(v))
        .map(|(k, v)| format!("{k:?}=#{}", v.id))
        .chain(
            want.iter()
                .filter(|(k, _)| !got.contains_key(k))
                .map(|(k, v)| format!("{k:?} missing (#{})", v.id)),
        )
        .take(6)
        .collect()
}

/// `key` and its value in `state` as a violation shows them: `(t, k)=#id (len bytes)`, or
/// `(t, k)=-` where it is absent.
pub(crate) fn model_value(key: &Key, state: &Snapshot) -> String {
    match state.get(key) {
        Some(v) => format!("{key:?}=#{} ({} bytes)", v.id, v.len),
        None => format!("{key:?}=-"),
    }
}

/// The first 12 of `keys`, a line each as `show` writes it, then how many more differ.
pub(crate) fn listed(keys: &[&Key], show: impl Fn(&Key) -> String) -> String {
    let mut out: Vec<String> = keys.iter().take(12).map(|k| show(k)).collect();
    if keys.len() > 12 {
        out.push(format!("… {} more keys differ", keys.len() - 12));
    }
    out.join("\n")
}

/// What the simulator knows of one backup directory.
#[derive(Clone, Debug)]
pub(crate) struct DirState {
    /// What a restore may give: the snapshot of its last successful backup (`None`: the
    /// directory holds no finished backup). After a crash during a backup whose manifest
    /// change is not yet durable, a later power loss may take it back: both stay allowed
    /// until the next successful backup into the directory.
    pub(crate) allowed: Vec<Option<Snapshot>>,
    /// Bit rot was planted in one of its files: a restore may refuse it.
    pub(crate) damaged: bool,
    /// Its log set was made other than it claims: a restore may refuse it with the errors
    /// the engine documents for that, or restore one of `extra`.
    pub(crate) tampered: Option<crate::workload::Tamper>,
    /// Snapshots a tampered manifest may restore to.
    pub(crate) extra: Vec<Snapshot>,
    /// The CRC32 of a forged manifest put in place, and the set it names: while it is the
    /// directory's manifest, a restore must refuse it.
    pub(crate) forged: Option<(u32, u32)>,
    /// The directory's files (with their CRC32) when it was last restored, and what that
    /// restore gave: a restore is a function of the files, so an unchanged directory is not
    /// restored again.
    pub(crate) restored: Option<(BTreeMap<PathBuf, u32>, Result<Snapshot, JetError>)>,
}

/// The backup job in progress, and what its oracles compare against.
pub(crate) struct Active {
    pub(crate) job: BackupJob<'static>,
    pub(crate) facts: Facts,
}

/// What a backup's oracles compare against.
#[derive(Clone)]
pub(crate) struct Facts {
    pub(crate) dir: usize,
    /// The lowest log generation the job copies.
    pub(crate) gen_low: u32,
    /// The highest.
    pub(crate) gen_high: u32,
    pub(crate) mode: BackupMode,
    /// The model's committed state when the job began.
    pub(crate) snapshot: Snapshot,
    /// The files of the directory's finished backup (and their CRC32) before the begin: all a
    /// failure may leave there.
    pub(crate) listing: BTreeMap<PathBuf, u32>,
    /// The live archived logs when the job began.
    pub(crate) logs: BTreeSet<u32>,
    /// The header's backup records when the job began.
    pub(crate) header: (BackupInfo, BackupInfo),
    /// Read errors fired before the job began: one after may have hit the copy-before-write
    /// fence, whose error the next step reports.
    pub(crate) reads_before: u64,
    /// How its steps must go, and what it must report.
    pub(crate) pace: Pace,
    /// The files its steps reported copied (`FileCopied`), where they were written.
    pub(crate) copied: Vec<PathBuf>,
    /// The directory's manifest did not read when the job began (damaged or forged): the
    /// engine took it for no backup to keep, and a full backup replaces it.
    pub(crate) unreadable_previous: bool,
    /// The database's pages were damaged when the job began: the copy-before-write fence
    /// keeps that damage for the backup to find, even once a later write mends the file.
    pub(crate) damaged_at_begin: bool,
    /// `Instance::stop_backup` stopped it: its next step or finish must fail with
    /// `JET_errBackupAbortByServer`.
    pub(crate) stopped: bool,
}

/// The simulator's backup state.
#[derive(Default)]
pub(crate) struct Backups {
    pub(crate) dirs: Vec<DirState>,
    pub(crate) active: Option<Active>,
    /// Restores made (names the fresh places).
    pub(crate) restores: u64,
    /// The highest log generation of any successful backup: no truncation goes past it.
    pub(crate) high: Option<u32>,
    /// The directory of the last successful backup.
    pub(crate) last_success: Option<usize>,
    /// A backup whose finish the machine crashed in: judged after the restart, as a crash
    /// during the backup.
    pub(crate) crashed: Option<Facts>,
    /// The latest backup point of the instance's backups: a later one is never before it.
    pub(crate) last_sequence: u64,
    /// The header's backup records (full, incremental) after the last successful backup
    /// that did not warn: durable at once, so every recovery must find them (or later ones).
    pub(crate) recorded: Option<(BackupInfo, BackupInfo)>,
    /// Every backup begun, by the time it began (which its manifest entry records): the
    /// model's last commit then, and its snapshot. A restore of a chosen backup of a chain,
    /// or to a point between two, is judged by these.
    pub(crate) points: BTreeMap<u64, (u64, Snapshot)>,
}

impl Default for DirState {
    fn default() -> DirState {
        DirState {
            allowed: vec![None],
            damaged: false,
            tampered: None,
            extra: Vec::new(),
            forged: None,
            restored: None,
        }
    }
}

impl DirState {
    /// Whether the directory may hold a finished backup.
    fn may_hold_backup(&self) -> bool {
        self.allowed.iter().any(Option::is_some)
    }
}

impl Backups {
    pub(crate) fn new() -> Backups {
        Backups {
            dirs: vec![DirState::default(); BACKUP_DIRS as usize],
            ..Backups::default()
        }
    }

    /// Where rot would meet the running backup, if one runs: the first database page it has
    /// not copied yet (it copies them in order, before its logs), and the log generations it
    /// copies.
    pub(crate) fn aim(&self, page_size: u32) -> Option<(u64, u32, u32)> {
        let active = self.active.as_ref()?;
        let page = active.job.progress().0 / u64::from(page_size);
        Some((page, active.facts.gen_low, active.facts.gen_high))
    }
}

pub(super) fn dir_path(dir: usize) -> PathBuf {
    PathBuf::from(format!("bk{dir}"))
}

/// Where the backup's `FileCopied` events among `events` say it wrote.
fn copied_files(events: &[jetdb::Event]) -> impl Iterator<Item = PathBuf> + '_ {
    events.iter().filter_map(|e| match e {
        jetdb::Event::FileCopied {
            operation: jetdb::Operation::Backup,
            to,
            ..
        } => Some(to.clone()),
        _ => None,
    })
}

/// If a failed backup's events say it kept its files (it could not put the previous
/// manifest back): every file it reported copied, over its earlier steps (`facts`) and the
/// failing call (`events`).
fn kept_files(facts: &Facts, events: &[jetdb::Event]) -> Option<Vec<PathBuf>> {
    let kept = events.iter().any(|e| {
        matches!(e, jetdb::Event::Warning { operation: jetdb::Operation::Backup, message }
            if message.contains("files are kept"))
    });
    kept.then(|| {
        let mut copied = facts.copied.clone();
        copied.extend(copied_files(events));
        copied
    })
}

impl Sim {
    /// Whether a backup runs: a JetBackup job, or an external backup whose instance this is.
    pub(super) fn backup_busy(&self) -> bool {
        self.backups.active.is_some()
            || self
                .externals
                .running
                .as_ref()
                .is_some_and(|x| !x.facts.orphaned)
    }

    /// Every file under `dir`, with its CRC32 (as reads see it).
    fn listing(&self, dir: &Path) -> BTreeMap<PathBuf, u32> {
        self.vfs.crcs_under(dir)
    }

    /// The files of `dir`'s finished backup: its manifest and the files it lists, with their
    /// CRC32 (a damaged manifest stands alone).
    fn content_listing(&self, dir: &Path) -> BTreeMap<PathBuf, u32> {
        let files = self.vfs.crcs_under(dir);
        let path = dir.join(manifest::MANIFEST_NAME);
        if !files.contains_key(&path) {
            return BTreeMap::new();
        }
        let bytes = jetdb::log::read_file(&self.vfs, &path).unwrap_or_default();
        let mut names = vec![path.clone()];
        if let Ok(m) = Manifest::decode(&bytes) {
            let set = m.set_dir(dir);
            names.push(set.join(&m.db_name));
            names.extend(m.logs.iter().map(|l| set.join(m.log_name(l.generation))));
        }
        names
            .into_iter()
            .filter_map(|p| files.get(&p).map(|crc| (p.clone(), *crc)))
            .collect()
    }

    /// The archived generations in the live log directory.
    pub(super) fn live_logs(&self) -> BTreeSet<u32> {
        self.vfs
            .files_in(Zone::Log)
            .iter()
            .filter(|p| p.starts_with("inst"))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .filter_map(|n| jetdb::log::parse_archive_name("edb", &n))
            .collect()
    }

    pub(super) fn header_records(&self) -> Option<(BackupInfo, BackupInfo)> {
        let header = self.instance.as_ref()?.database_header().ok()?;
        Some((header.backup_full, header.backup_incremental))
    }

    /// The manifest of backup directory `dir`: `Ok(None)` if it has none, `Err` if damaged.
    pub(super) fn manifest_of(&self, dir: usize) -> Result<Option<Manifest>, JetError> {
        manifest::read(&self.vfs, &dir_path(dir))
    }

    /// The error the contract names for a backup of `mode` into `dir` begun now, if any.
    fn expected_begin_error(&self, dir: usize, mode: BackupMode) -> Option<ErrorKind> {
        if self.backup_busy() {
            return Some(ErrorKind::BackupInProgress);
        }
        let manifest = self.manifest_of(dir);
        let has_manifest =
            jetdb::Vfs::exists(&self.vfs, &dir_path(dir).join(manifest::MANIFEST_NAME))
                .unwrap_or(false);
        let exists = jetdb::Vfs::is_dir(&self.vfs, &dir_path(dir)).unwrap_or(false);
        // A set of another database or log set is never extended or replaced.
        let header = self
            .instance
            .as_ref()
            .and_then(|i| i.database_header().ok());
        let foreign = match (&manifest, &header) {
            (Ok(Some(m)), Some(h)) => {
                m.log_signature != h.log_signature || m.db_signature != h.db_signature
            }
            _ => false,
        };
        if mode != BackupMode::Incremental {
            if !exists && !self.config.create_backup_dirs {
                return Some(ErrorKind::InvalidPath);
            }
            if foreign {
                return Some(ErrorKind::InvalidBackup);
            }
        }
        match mode {
            BackupMode::Incremental => {
                if self.config.circular_logging {
                    return Some(ErrorKind::InvalidBackup);
                }
                if !self.header_records().is_some_and(|(full, _)| full.is_set()) {
                    return Some(ErrorKind::MissingFullBackup);
                }
                match manifest {
                    Ok(None) => Some(ErrorKind::MissingFullBackup),
                    Err(_) => Some(ErrorKind::InvalidBackup),
                    Ok(Some(_)) if foreign => Some(ErrorKind::InvalidBackup),
                    Ok(Some(m)) => {
                        // Logs it needs that a truncation took, as it may have: each at or
                        // below the highest generation another backup holds.
                        let current = self
                            .instance
                            .as_ref()
                            .and_then(|i| i.log_position().ok().flatten())
                            .map_or(0, |p| p.generation);
                        let live = self.live_logs();
                        let missing: Vec<u32> = (m.log_range().1 + 1..current)
                            .filter(|g| !live.contains(g))
                            .collect();
                        let legit = self
                            .backups
                            .high
                            .is_some_and(|high| missing.iter().all(|&g| g <= high));
                        (!missing.is_empty() && legit).then_some(ErrorKind::MissingFileToBackup)
                    }
                }
            }
            BackupMode::Full if has_manifest => Some(ErrorKind::BackupDirectoryNotEmpty),
            BackupMode::Full | BackupMode::Atomic => None,
        }
    }

    pub(super) fn backup_begin(&mut self, dir: u8, mode: BackupMode) -> Check {
        let dir = usize::from(dir % BACKUP_DIRS);
        let instance = self.instance.clone().expect("an instance");
        self.vfs.suspend_faults(true);
        let expected = self.expected_begin_error(dir, mode);
        let header = self.header_records();
        let logs = self.live_logs();
        let listing = self.content_listing(&dir_path(dir));
        let unreadable_previous = matches!(self.manifest_of(dir),
            Err(e) if e.kind() == ErrorKind::LogCorruptDuringHardRestore);
        let everything = self.listing(&dir_path(dir));
        let prior = Before {
            generation: instance
                .log_position()
                .ok()
                .flatten()
                .map_or(0, |p| p.generation),
            checkpoint: instance
                .checkpoint_position()
                .ok()
                .flatten()
                .map_or(0, |p| p.generation),
            set_high: self
                .manifest_of(dir)
                .ok()
                .flatten()
                .map(|m| m.last().gen_high),
            last_sequence: self.backups.last_sequence,
        };
        self.vfs.suspend_faults(false);
        let flags = match mode {
            BackupMode::Full => BackupFlags::NONE,
            BackupMode::Atomic => BackupFlags::ATOMIC,
            BackupMode::Incremental => BackupFlags::INCREMENTAL,
        };
        let before = self.vfs.fired();
        self.operations += 1;
        self.take_events();
        let options = jetdb::BackupOptions {
            max_rate: self
                .config
                .backup_max_rate_kib
                .and_then(|kib| std::num::NonZeroU64::new(u64::from(kib) * 1024)),
        };
        let result = instance.begin_backup_with(Some(&dir_path(dir)), flags, &options, None);
        let events = self.take_events();
        self.say_result(&result, |job| match job.logs() {
            Some((low, high)) => format!("began: logs {low:#X}..={high:#X}"),
            None => "began".into(),
        });
        if let Err(e) = &result {
            self.check_failure_report(Some(mode.kind()), Ok(e), &events)?;
        }
        match result {
            Ok(job) => {
                if let Some(kind) = expected {
                    return Err(self.violation(
                        Oracle::Contract,
                        format!(
                            "a {mode:?} backup into bk{dir} began, but the contract says {}",
                            kind.name()
                        ),
                    ));
                }
                self.event(format_args!(
                    "backup {mode:?} into bk{dir} began at commit {}",
                    self.model.last()
                ));
                let (gen_low, gen_high) = job.logs().unwrap_or_default();
                let pace = self.check_begin_report(&job, &dir_path(dir), mode, &prior, &events)?;
                self.record(|t| {
                    t.open(
                        Lane::Backup(dir),
                        format!("{mode:?} backup"),
                        vec![
                            format!(
                                "began at the model's commit {} (its snapshot is what a restore must give)",
                                self.model.last()
                            ),
                            format!("backup point: sequence {}", pace.sequence),
                            format!("log generations {gen_low:#X}..={gen_high:#X}"),
                        ],
                    )
                });
                let snapshot = self.model.state_at(self.model.last());
                self.backups
                    .points
                    .insert(self.now(), (self.model.last(), snapshot.clone()));
                self.backups.last_sequence = self.backups.last_sequence.max(pace.sequence);
                self.backups.active = Some(Active {
                    job,
                    facts: Facts {
                        dir,
                        gen_low,
                        gen_high,
                        mode,
                        snapshot,
                        listing,
                        logs,
                        header: header.unwrap_or_default(),
                        reads_before: before.get(&IoFault::ReadError).copied().unwrap_or(0),
                        pace,
                        copied: Vec::new(),
                        unreadable_previous,
                        damaged_at_begin: self.pages_damaged(),
                        stopped: false,
                    },
                });
                Ok(())
            }
            Err(e) if Some(e.kind()) == expected => {
                self.coverage.hit(Mark::BackupRefusedByContract);
                self.check_refused_begin(dir, &everything, &logs, header)
            }
            Err(e) => {
                // An incremental's begin also checks that the set its directory's manifest
                // names is there: a manifest copied in from another directory names one that
                // is not, and that refusal may come before the one the contract expects.
                let manifest_swapped = e.kind() == ErrorKind::MissingFullBackup
                    && matches!(
                        self.backups.dirs[dir].tampered,
                        Some(
                            Tamper::StaleManifest | Tamper::ForeignManifest | Tamper::ForgeManifest
                        )
                    );
                if let Some(kind) = expected
                    && !self.explained(&e, &before)
                    && !manifest_swapped
                {
                    return Err(self.violation(
                        Oracle::Contract,
                        format!(
                            "a {mode:?} backup into bk{dir} gave {e}, but the contract says {}",
                            kind.name()
                        ),
                    ));
                }
                // (An incremental's begin checks the live generations it will copy.)
                if !manifest_swapped
                    && (expected.is_some() || !self.live_tamper_explains(e.kind(), None))
                {
                    self.check_error("begin_backup", &e, &before)?;
                }
                self.check_refused_begin(dir, &everything, &logs, header)
            }
        }
    }

    /// A `BackupMisuse` step: a call the contract refuses, with its documented error, changing
    /// nothing.
    pub(super) fn backup_misuse(&mut self, misuse: Misuse, pick: u8) -> Check {
        use ErrorKind::*;
        let instance = self.instance.clone().expect("an instance");
        let active = self.backup_busy();
        let busy = |kind| if active { BackupInProgress } else { kind };
        let missing = PathBuf::from("bkmissing");
        let (path, flags, expected, kind) = match misuse {
            Misuse::UnknownFlags => (
                Some(dir_path(usize::from(pick % BACKUP_DIRS))),
                BackupFlags::from_bits([0x2, 0x8, 0x100, 0x45][usize::from(pick % 4)]),
                InvalidGrbit,
                None,
            ),
            Misuse::FlagsWithoutPath => (
                None,
                [BackupFlags::ATOMIC, BackupFlags::INCREMENTAL][usize::from(pick % 2)],
                InvalidParameter,
                None,
            ),
            Misuse::OwnDirectory => (
                Some(if pick.is_multiple_of(2) {
                    self.params.log_path.clone()
                } else {
                    PathBuf::new()
                }),
                BackupFlags::NONE,
                busy(InvalidParameter),
                Some(jetdb::BackupKind::Full),
            ),
            Misuse::FileAsDirectory => (
                Some(self.params.database_path.clone()),
                BackupFlags::ATOMIC,
                busy(InvalidPath),
                Some(jetdb::BackupKind::Full),
            ),
            // (An instance that may create directories would create it: asked for an
            // incremental backup instead, which a missing directory cannot hold.)
            Misuse::MissingDirectory
                if self.config.create_backup_dirs || pick.is_multiple_of(2) =>
            {
                let refusal = if self.config.circular_logging {
                    InvalidBackup
                } else {
                    MissingFullBackup
                };
                (
                    Some(missing.clone()),
                    BackupFlags::INCREMENTAL,
                    busy(refusal),
                    Some(jetdb::BackupKind::Incremental),
                )
            }
            Misuse::MissingDirectory => (
                Some(missing.clone()),
                BackupFlags::NONE,
                busy(InvalidPath),
                Some(jetdb::BackupKind::Full),
            ),
        };
        let watched = match &path {
            Some(p) if *p == self.params.database_path => self.params.log_path.clone(),
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => self.params.log_path.clone(),
        };
        self.vfs.suspend_faults(true);
        let files = self.listing(&watched);
        let logs = self.live_logs();
        let header = self.header_records();
        self.vfs.suspend_faults(false);
        let before = self.vfs.fired();
        self.operations += 1;
        self.take_events();
        let result = instance.begin_backup(path.as_deref(), flags, None);
        let events = self.take_events();
        self.say_result(&result, |_| "began".into());
        let err = match result {
            Ok(job) => {
                drop(job);
                self.take_events();
                return Err(self.violation(
                    Oracle::Contract,
                    format!(
                        "a backup into {path:?} with flags {:#x} began; the contract says {}",
                        flags.bits(),
                        expected.name()
                    ),
                ));
            }
            Err(e) => e,
        };
        if err.kind() != expected {
            let unavailable = err.kind() == InstanceUnavailable && self.instance_dead();
            if !unavailable && !self.explained(&err, &before) {
                return Err(self.violation(
                    Oracle::Contract,
                    format!(
                        "a backup into {path:?} with flags {:#x} gave {err}; the contract says {}",
                        flags.bits(),
                        expected.name()
                    ),
                ));
            }
            return Ok(());
        }
        self.coverage.hit(Mark::BackupRefusedByContract);
        self.check_failure_report(kind, Ok(&err), &events)?;
        // Nothing made: not the missing directory, no file where it looked.
        if jetdb::Vfs::exists(&self.vfs, &missing).unwrap_or(false) {
            return Err(self.violation(
                Oracle::Backup,
                "a refused backup created the directory it was given",
            ));
        }
        if self.vfs.crashed() {
            return Ok(());
        }
        self.vfs.suspend_faults(true);
        let after = self.listing(&watched);
        self.vfs.suspend_faults(false);
        if after != files {
            return Err(self.violation(
                Oracle::Backup,
                format!("a refused backup changed files under {}", watched.display()),
            ));
        }
        if !self.config.circular_logging && !logs.is_subset(&self.live_logs()) {
            return Err(self.violation(
                Oracle::Truncation,
                "a refused backup deleted log generations",
            ));
        }
        if header != self.header_records() {
            return Err(self.violation(
                Oracle::Backup,
                "a refused backup changed the header's backup records",
            ));
        }
        Ok(())
    }

    /// A begin that failed changed nothing it must not: no new or changed file in the
    /// directory (debris of earlier backups may have gone), no log truncated, the header's
    /// backup records as they were.
    fn check_refused_begin(
        &mut self,
        dir: usize,
        before: &BTreeMap<PathBuf, u32>,
        logs: &BTreeSet<u32>,
        header: Option<(BackupInfo, BackupInfo)>,
    ) -> Check {
        if self.vfs.crashed() {
            return Ok(());
        }
        self.vfs.suspend_faults(true);
        let after = self.listing(&dir_path(dir));
        let live = self.live_logs();
        let now = self.header_records();
        self.vfs.suspend_faults(false);
        let added: Vec<&PathBuf> = after
            .iter()
            .filter(|(p, crc)| before.get(*p) != Some(crc))
            .map(|(p, _)| p)
            .collect();
        if !added.is_empty() {
            return Err(self.violation(
                Oracle::Backup,
                format!("a refused or failed begin left or changed {added:?} in bk{dir}"),
            ));
        }
        if !self.config.circular_logging && !logs.is_subset(&live) {
            let gone: Vec<&u32> = logs.difference(&live).collect();
            return Err(self.violation(
                Oracle::Truncation,
                format!("a refused or failed begin deleted log generations {gone:?}"),
            ));
        }
        if let (Some(before), Some(now)) = (header, now)
            && before != now
        {
            return Err(self.violation(
                Oracle::Backup,
                format!("a refused or failed begin changed the header's backup records from {before:?} to {now:?}"),
            ));
        }
        Ok(())
    }

    pub(super) fn backup_step(&mut self, pages: u8) -> Check {
        self.take_events();
        let Some(active) = self.backups.active.as_mut() else {
            self.say("skipped: no backup running");
            return Ok(());
        };
        active
            .job
            .set_step_size(usize::from(pages.max(1)) * self.config.page_size as usize);
        let before = self.vfs.fired();
        self.operations += 1;
        let result = active.job.step();
        let (done, total) = active.job.progress();
        let events = self.take_events();
        self.say_result(&result, |more| {
            let left = if *more { "" } else { ", all copied" };
            format!("ok: {done} of {total} bytes{left}")
        });
        self.check_stopped(result.as_ref().map(|_| ()))?;
        match result {
            Ok(more) => {
                let active = self.backups.active.as_mut().expect("active");
                let mut pace = active.facts.pace.clone();
                let checked = self.check_step_report(
                    &mut pace,
                    u64::from(pages.max(1)),
                    more,
                    (done, total),
                    &events,
                );
                let facts = &mut self.backups.active.as_mut().expect("active").facts;
                facts.pace = pace;
                facts.copied.extend(copied_files(&events));
                checked
            }
            Err(e) => {
                let active = self.backups.active.take().expect("active");
                self.check_failure_report(Some(active.facts.pace.kind), Ok(&e), &events)?;
                let kept = kept_files(&active.facts, &events);
                self.backup_failed(&active.facts, &e, &before, kept)
            }
        }
    }

    /// A `BackupStop` step: `Instance::stop_backup` must say a backup runs exactly when one
    /// does, and the running one is then stopped.
    pub(super) fn backup_stop(&mut self) -> Check {
        self.take_events();
        let Some(instance) = self.instance.clone() else {
            self.say("skipped: no instance");
            return Ok(());
        };
        self.operations += 1;
        let running = instance.stop_backup();
        self.say(format!("stop_backup: a backup was running: {running}"));
        let dead = self.instance_dead();
        if self.backups.active.is_none()
            && let Some(x) = self
                .externals
                .running
                .as_mut()
                .filter(|x| !x.facts.orphaned)
        {
            if running {
                x.facts.stopped = true;
                self.event(format_args!("external backup stopped"));
                return Ok(());
            }
            if dead {
                return Ok(());
            }
            return Err(self.violation(
                Oracle::ExternalBackup,
                "stop_backup said no backup was running, but an external backup was",
            ));
        }
        match self.backups.active.as_mut() {
            Some(active) if running => {
                active.facts.stopped = true;
                let dir = active.facts.dir;
                self.event(format_args!("backup into bk{dir} stopped"));
                Ok(())
            }
            None if !running => Ok(()),
            // A job whose instance stopped on a fatal error may be held or not.
            Some(_) if dead => Ok(()),
            active => {
                let what = if active.is_some() {
                    "said no backup was running, but one was"
                } else {
                    "said a backup was running, but none was"
                };
                Err(self.violation(Oracle::Backup, format!("stop_backup {what}")))
            }
        }
    }

    /// After a step of the running backup: a stopped one must have failed with -801.
    fn check_stopped(&mut self, result: Result<(), &JetError>) -> Check {
        if self
            .backups
            .active
            .as_ref()
            .is_some_and(|a| a.facts.stopped)
        {
            self.stopped_outcome(result)
        } else {
            Ok(())
        }
    }

    /// What a stopped backup's next call may answer: `JET_errBackupAbortByServer` (or, with
    /// the machine crashed, anything).
    fn stopped_outcome(&mut self, result: Result<(), &JetError>) -> Check {
        match result {
            Err(e) if e.kind() == ErrorKind::BackupAbortByServer => Ok(()),
            _ if self.vfs.crashed() => Ok(()),
            Ok(()) => Err(self.violation(
                Oracle::Backup,
                String::from("a backup stopped by stop_backup went on: its next call succeeded"),
            )),
            Err(e) => Err(self.violation(
                Oracle::Backup,
                format!("a backup stopped by stop_backup failed with {e}, not JET_errBackupAbortByServer"),
            )),
        }
    }

    pub(super) fn backup_finish(&mut self, abandon: bool) -> Check {
        let Some(Active { job, facts: active }) = self.backups.active.take() else {
            self.say("skipped: no backup running");
            return Ok(());
        };
        let before = self.vfs.fired();
        self.operations += 1;
        self.take_events();
        if abandon {
            // An abandoned job is a failure of the caller's making: the same guarantees.
            drop(job);
            self.say("abandoned");
            self.record(|t| {
                t.close(
                    Lane::Backup(active.dir),
                    "abandoned",
                    "backup-fail",
                    Vec::new(),
                )
            });
            let events = self.take_events();
            self.check_failure_report(
                Some(active.pace.kind),
                Err(ErrorKind::BackupAbortByCaller),
                &events,
            )?;
            return self.check_failure(&active, None);
        }
        let logs_before = self.live_logs();
        let mode = active.mode;
        let result = job.finish();
        let events = self.take_events();
        if active.stopped {
            // (The job is spent: what a stopped job's finish says is judged here.)
            self.stopped_outcome(result.as_ref().map(|_| ()))?;
        }
        self.say_result(&result, |summary| match summary.logs {
            Some((low, high)) => {
                format!(
                    "succeeded: commit {}, logs {low:#X}..={high:#X}",
                    summary.sequence
                )
            }
            None => format!("succeeded: commit {}", summary.sequence),
        });
        match result {
            Ok(_) if self.vfs.crashed() => {
                // The process died in it: no caller would have seen this answer.
                self.record(|t| {
                    t.close(
                        Lane::Backup(active.dir),
                        "the machine crashed as its finish returned success (seen by no caller)",
                        "lost",
                        Vec::new(),
                    )
                });
                self.backups.crashed = Some(active);
                Ok(())
            }
            Ok(summary) => {
                self.coverage.hit(match mode {
                    BackupMode::Full => Mark::FullBackup,
                    BackupMode::Atomic => Mark::AtomicBackup,
                    BackupMode::Incremental => Mark::IncrementalBackup,
                });
                let (_, high) = summary.logs.expect("a backup with files");
                self.backups.high = Some(self.backups.high.map_or(high, |h| h.max(high)));
                self.backups.last_success = Some(active.dir);
                if summary.warnings.is_empty() {
                    self.check_header_records(mode, high)?;
                    self.backups.recorded = self.header_records();
                    self.check_backup_layout(active.dir)?;
                }
                let deleted: Vec<u32> =
                    logs_before.difference(&self.live_logs()).copied().collect();
                // (The truncation oracle first: what went matters more than what was said.)
                self.check_truncation(&logs_before)?;
                self.check_finish_report(
                    &active.pace,
                    &dir_path(active.dir),
                    &summary,
                    &deleted,
                    &events,
                )?;
                let state = &mut self.backups.dirs[active.dir];
                state.allowed = vec![Some(active.snapshot.clone())];
                // What a tampered manifest named is no longer what the directory restores to; the
                // begin's sweep removed files no manifest names.
                state.extra.clear();
                if mode != BackupMode::Incremental
                    || matches!(state.tampered, Some(Tamper::Duplicate | Tamper::Leftover))
                {
                    state.tampered = None;
                }
                state.forged = None;
                if mode != BackupMode::Incremental {
                    state.damaged = false;
                }
                self.remember_manifest(active.dir, &active.snapshot);
                self.event(format_args!("backup into bk{} succeeded", active.dir));
                self.record(|t| {
                    let logs = summary
                        .logs
                        .map(|(low, high)| format!(", logs {low:#X}..={high:#X}"))
                        .unwrap_or_default();
                    t.close(
                        Lane::Backup(active.dir),
                        format!("succeeded: sequence {}{logs}", summary.sequence),
                        "backup-ok",
                        summary
                            .warnings
                            .iter()
                            .map(|w| format!("warning: {w:?}"))
                            .collect(),
                    )
                });
                self.check_restore(active.dir, "after it succeeded")
            }
            Err(e) => {
                self.check_failure_report(Some(active.pace.kind), Ok(&e), &events)?;
                let kept = kept_files(&active, &events);
                self.backup_failed(&active, &e, &before, kept)
            }
        }
    }

    /// After a successful backup that did not warn, its directory holds its manifest and the
    /// files the manifest lists, and nothing else: the debris of failed and crashed backups
    /// and the set it replaced are gone.
    fn check_backup_layout(&mut self, dir: usize) -> Check {
        let path = dir_path(dir);
        self.vfs.suspend_faults(true);
        let files: BTreeSet<PathBuf> = self.listing(&path).into_keys().collect();
        let manifest = self.manifest_of(dir);
        self.vfs.suspend_faults(false);
        let Ok(Some(m)) = manifest else {
            return Err(self.violation(
                Oracle::Backup,
                format!("after a successful backup bk{dir} has no manifest that reads"),
            ));
        };
        let set = m.set_dir(&path);
        let want: BTreeSet<PathBuf> = m
            .logs
            .iter()
            .map(|l| set.join(m.log_name(l.generation)))
            .chain([set.join(&m.db_name), path.join(manifest::MANIFEST_NAME)])
            .collect();
        let stray: Vec<&PathBuf> = files.difference(&want).collect();
        let missing: Vec<&PathBuf> = want.difference(&files).collect();
        // (A set tampered with by hand may lack a file its incremental backups leave missing.)
        let tampered = self.backups.dirs[dir].tampered.is_some();
        if !stray.is_empty() || (!missing.is_empty() && !tampered) {
            return Err(self.violation(
                Oracle::Backup,
                format!(
                    "after a successful backup bk{dir} holds {stray:?} beside its set, and lacks {missing:?}"
                ),
            ));
        }
        Ok(())
    }

    /// After a successful backup, the header records it (unless it warned that it could not).
    fn check_header_records(&mut self, mode: BackupMode, high: u32) -> Check {
        let Some((full, incremental)) = self.header_records() else {
            return Ok(());
        };
        let record = if mode == BackupMode::Incremental {
            incremental
        } else {
            full
        };
        if record.gen_high != high || (mode != BackupMode::Incremental && incremental.is_set()) {
            return Err(self.violation(
                Oracle::Backup,
                format!(
                    "after a successful {mode:?} backup up to generation {high:#X}, the header records full {full:?}, incremental {incremental:?}"
                ),
            ));
        }
        Ok(())
    }

    /// After a recovery: the header still records the last successful backup, or a later
    /// one (a backup the crash met after its commit point). The record is what lets
    /// truncation delete the logs the backup holds, so it is written durably at the backup's
    /// end, never left for a checkpoint.
    pub(super) fn check_backup_records_durable(&mut self) -> Check {
        let (Some((full, incremental)), Some((now_full, now_incremental))) =
            (self.backups.recorded, self.header_records())
        else {
            return Ok(());
        };
        if (now_full.mark, now_incremental.mark) < (full.mark, incremental.mark) {
            return Err(self.violation(
                Oracle::Backup,
                format!(
                    "after a recovery the header records full {now_full:?}, incremental {now_incremental:?}: the last successful backup recorded full {full:?}, incremental {incremental:?}"
                ),
            )
            .with_values(
                format!("header's backup records at least: full {full:?}, incremental {incremental:?}"),
                format!("header's backup records: full {now_full:?}, incremental {now_incremental:?}"),
            ));
        }
        Ok(())
    }

    /// The truncation oracle: what a call deleted lies below the checkpoint, and (without
    /// circular logging) at or below the highest generation of a successful backup.
    pub(super) fn check_truncation(&mut self, before: &BTreeSet<u32>) -> Check {
        let after = self.live_logs();
        let deleted: Vec<u32> = before.difference(&after).copied().collect();
        let Some(&top) = deleted.last() else {
            return Ok(());
        };
        let checkpoint = self
            .instance
            .as_ref()
            .and_then(|i| i.checkpoint_position().ok().flatten())
            .map_or(u32::MAX, |c| c.generation);
        // Without circular logging, only what a successful backup holds may go.
        let backup_needs =
            !self.config.circular_logging && self.backups.high.is_none_or(|high| top > high);
        if top >= checkpoint || backup_needs {
            return Err(self.violation(
                Oracle::Truncation,
                format!(
                    "a truncation deleted generations {deleted:?}: the checkpoint is in {checkpoint:#X}, the highest backed-up generation is {:?}",
                    self.backups.high
                ),
            ));
        }
        if !self.config.circular_logging {
            self.coverage.hit(Mark::LogsTruncated);
        }
        Ok(())
    }

    pub(super) fn truncate(&mut self) -> Check {
        let instance = self.instance.clone().expect("an instance");
        let logs_before = self.live_logs();
        let mark = instance.log_position().ok().flatten();
        let before = self.vfs.fired();
        self.operations += 1;
        self.take_events();
        let result = instance.backup(None, BackupFlags::NONE, None);
        let events = self.take_events();
        self.say_result(&result, |summary| match summary.truncated {
            Some((low, high)) => format!("ok: deleted {low:#X}..={high:#X}"),
            None => "ok: nothing deleted".into(),
        });
        if let Err(e) = &result {
            self.check_failure_report(Some(jetdb::BackupKind::Truncate), Ok(e), &events)?;
        }
        match result {
            Ok(summary) => {
                if self.backup_busy() {
                    return Err(self.violation(
                        Oracle::Contract,
                        "a truncation ran while a backup was running (JET_errBackupInProgress)",
                    ));
                }
                self.check_truncation(&logs_before)?;
                if !self.vfs.crashed() {
                    let deleted: Vec<u32> =
                        logs_before.difference(&self.live_logs()).copied().collect();
                    self.check_truncate_report(&summary, mark, &deleted, &events)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::BackupInProgress && self.backup_busy() => {
                self.coverage.hit(Mark::BackupRefusedByContract);
                Ok(())
            }
            Err(e) => self.check_error("a truncation", &e, &before),
        }
    }

    /// A backup returned an error: the error must be explained, and the failure must leave
    /// nothing behind.
    fn backup_failed(
        &mut self,
        active: &Facts,
        err: &JetError,
        before: &BTreeMap<IoFault, u64>,
        kept: Option<Vec<PathBuf>>,
    ) -> Check {
        let kind = err.kind();
        let fence_read = self.fence_read_failed(kind, active.reads_before);
        let damage = self.damage_explains(
            kind,
            active.damaged_at_begin,
            Some((active.gen_low, active.gen_high)),
        );
        let stopped = active.stopped && kind == ErrorKind::BackupAbortByServer;
        if stopped {
            self.coverage.hit(Mark::BackupStopped);
        } else if damage {
            self.coverage.hit(Mark::BackupFoundCorruption);
            self.detected(kind);
        } else if !fence_read && !self.explained(err, before) {
            return Err(self.violation(
                Oracle::UnexplainedError,
                format!("a backup step failed with no fault to explain it: {err}"),
            ));
        }
        self.event(format_args!("backup into bk{} failed: {err}", active.dir));
        // (A call failed because the machine crashed under it: lost, as the crash's.)
        let (outcome, class) = if self.vfs.crashed() {
            (format!("the machine crashed during it: {err}"), "lost")
        } else {
            (format!("failed: {err}"), "backup-fail")
        };
        self.record(|t| t.close(Lane::Backup(active.dir), outcome, class, Vec::new()));
        self.check_failure(active, kept)
    }

    /// Whether a backup's read error `kind` may be one the fence met saving a page for it:
    /// a read error fired since it began (after `reads_before` of them).
    pub(super) fn fence_read_failed(&self, kind: ErrorKind, reads_before: u64) -> bool {
        IO_ERRORS.contains(&kind)
            && self
                .vfs
                .fired()
                .get(&IoFault::ReadError)
                .is_some_and(|&n| n > reads_before)
    }

    /// Whether a backup's failure with `kind` is the damage it must report: a damaged log
    /// segment, a damaged page (now, or at its begin: `damaged_at_begin`), or the live files
    /// tampered with (of generations `gens`, if it names them).
    pub(super) fn damage_explains(
        &self,
        kind: ErrorKind,
        damaged_at_begin: bool,
        gens: Option<(u32, u32)>,
    ) -> bool {
        let log_damage = kind == ErrorKind::LogReadVerifyFailure
            && (self.damaged.contains(&CorruptZone::LogSegment)
                || self.vfs.misdirected_file_present());
        let page_damage = matches!(
            kind,
            ErrorKind::ReadVerifyFailure
                | ErrorKind::ReadPgnoVerifyFailure
                | ErrorKind::ReadLostFlushVerifyFailure
        ) && (self.pages_damaged() || damaged_at_begin);
        log_damage || page_damage || self.live_tamper_explains(kind, gens)
    }

    /// The failure guarantees: the directory as it was, no log truncated, the header's
    /// records unchanged, the previous backup still restoring to its snapshot.
    ///
    /// With `kept` (the files it copied), the backup failed after its manifest was in place
    /// and could not put the previous one back (it warned so): the disk may keep either
    /// manifest, so it kept the files of both, and the directory may restore to either
    /// snapshot.
    fn check_failure(&mut self, active: &Facts, kept: Option<Vec<PathBuf>>) -> Check {
        if self.vfs.crashed() {
            // A crash is judged after the restart, as a crash during the backup.
            self.backups.crashed = Some(active.clone());
            return Ok(());
        }

        self.vfs.suspend_faults(true);
        let listing = self.listing(&dir_path(active.dir));
        let logs = self.live_logs();
        let header = self.header_records();
        self.vfs.suspend_faults(false);
        if let Some(copied) = kept {
            // Only for want of a directory fsync, and only the new set's files beside the
            // previous backup's, which are as they were. And kept they are: the manifest the
            // directory may durably name lists them.
            let changed: Vec<&PathBuf> = active
                .listing
                .iter()
                .filter(|(p, crc)| listing.get(*p) != Some(crc))
                .map(|(p, _)| p)
                .filter(|p| !p.ends_with(manifest::MANIFEST_NAME))
                .collect();
            let stray: Vec<&PathBuf> = listing
                .keys()
                .filter(|p| !active.listing.contains_key(*p))
                .filter(|p| {
                    let name = p.strip_prefix(dir_path(active.dir)).ok();
                    !name.is_some_and(|n| {
                        n.to_str().is_some_and(|n| {
                            n.starts_with("set-") || n == format!("{}.tmp", manifest::MANIFEST_NAME)
                        })
                    })
                })
                .collect();
            let fired = self.vfs.fired().contains_key(&IoFault::DirSyncError);
            let dropped: Vec<&PathBuf> = copied
                .iter()
                .filter(|p| !listing.contains_key(*p))
                .collect();
            if !dropped.is_empty() {
                return Err(self.violation(
                    Oracle::Backup,
                    format!(
                        "a failed backup said it kept its files, but {dropped:?} are gone from bk{}",
                        active.dir
                    ),
                ));
            }
            if !changed.is_empty() || !stray.is_empty() || !fired {
                return Err(self.violation(
                    Oracle::Backup,
                    format!(
                        "a failed backup that kept its files (directory fsync failed: {fired}) changed {changed:?} and left {stray:?} in bk{}",
                        active.dir
                    ),
                ));
            }
            let new = Some(active.snapshot.clone());
            // Over a damaged backup, which no restore takes, the engine had no manifest to
            // put back: it may leave the directory without any (seed 804844).
            let manifest = dir_path(active.dir).join(manifest::MANIFEST_NAME);
            let none =
                (active.unreadable_previous && !listing.contains_key(&manifest)).then_some(None);
            let state = &mut self.backups.dirs[active.dir];
            for outcome in std::iter::once(new).chain(none) {
                if !state.allowed.contains(&outcome) {
                    state.allowed.push(outcome);
                }
            }
        } else if listing != active.listing
            && active.unreadable_previous
            && listing
                .iter()
                .all(|(p, crc)| active.listing.get(p) == Some(crc))
        {
            // It replaced a damaged backup, which no restore takes: failing, it may leave the
            // directory without it, but adds and changes nothing.
            let state = &mut self.backups.dirs[active.dir];
            if !state.allowed.contains(&None) {
                state.allowed.push(None);
            }
        } else if listing != active.listing {
            let added: Vec<&PathBuf> = listing
                .keys()
                .filter(|p| active.listing.get(*p) != listing.get(*p))
                .collect();
            let gone: Vec<&PathBuf> = active
                .listing
                .keys()
                .filter(|p| !listing.contains_key(*p))
                .collect();
            return Err(self.violation(
                Oracle::Backup,
                format!(
                    "a failed backup changed bk{}: new or changed {added:?}, gone {gone:?}",
                    active.dir
                ),
            ));
        }
        let low = active.gen_low;
        let missing: Vec<u32> = active
            .logs
            .iter()
            .copied()
            .filter(|g| !logs.contains(g) && (!self.config.circular_logging || *g >= low))
            .collect();
        if !missing.is_empty() {
            return Err(self.violation(
                Oracle::Truncation,
                format!("a failed backup truncated log generations {missing:?}"),
            ));
        }
        if let Some(header) = header
            && header != active.header
        {
            return Err(self.violation(
                Oracle::Backup,
                format!(
                    "a failed backup changed the header's backup records from {:?} to {header:?}",
                    active.header
                ),
            ));
        }
        self.coverage.hit(Mark::BackupFailedCleanly);
        self.check_restore(active.dir, "after a failed backup")
    }

    /// A crash while a backup ran: the directory restores to the previous backup's snapshot,
    /// to the crashed backup's (if it got past its commit point), or — with neither — is
    /// refused as holding no finished backup.
    pub(super) fn after_crash_during_backup(&mut self, active: Facts) -> Check {
        self.coverage.hit(Mark::CrashDuringBackup);
        // Past its commit point, its manifest is in place, but durable only once the
        // directory is fsynced: a later power loss may still take it back. Both stay allowed
        // until the next successful backup into the directory.
        let new = Some(active.snapshot.clone());
        let dir = active.dir;
        let state = &mut self.backups.dirs[dir];
        if !state.allowed.contains(&new) {
            state.allowed.push(new);
        }
        // If the header recorded it, truncation may go up to its logs.
        let high = active.gen_high;
        if self.header_records().is_some_and(|(full, incremental)| {
            full.gen_high == high || incremental.gen_high == high
        }) {
            self.backups.high = Some(self.backups.high.map_or(high, |h| h.max(high)));
        }
        self.vfs.suspend_faults(true);
        let committed = self
            .manifest_of(active.dir)
            .ok()
            .flatten()
            .is_some_and(|m| m.last().gen_high == active.gen_high);
        self.vfs.suspend_faults(false);
        if committed {
            self.backups.last_success = Some(active.dir);
        }
        // What the crash left: the oracle below holds the directory to it.
        self.record(|t| {
            if committed {
                t.retell(
                    Lane::Backup(dir),
                    format!("; the restart found its manifest in place: bk{dir} restores to it (or, should a later power loss take the manifest back, to the backup before it)"),
                    Some("backup-kept"),
                )
            } else {
                t.retell(
                    Lane::Backup(dir),
                    format!("; the restart found no manifest of it: bk{dir} restores to the backup before it, if any"),
                    None,
                )
            }
        });
        self.check_restore(active.dir, "after a crash during a backup")
    }

    /// A `Restore` step: the directory restores to its snapshot.
    pub(super) fn restore_step(&mut self, dir: u8) -> Check {
        let dir = usize::from(dir % BACKUP_DIRS);
        self.operations += 1;
        let checked = self.check_restore(dir, "when asked");
        let outcome = match &self.backups.dirs[dir].restored {
            Some((_, Ok(snapshot))) => format!("restored {} records", snapshot.len()),
            Some((_, Err(e))) => format!("refused: {}", super::error_outcome(e)),
            None => "ok".into(),
        };
        self.say(outcome);
        checked
    }

    /// A `RestoreCrash` step: `dir`'s set, if it restores, restored on a disk of its own (a
    /// copy of the set, at rest) whose machine crashes at an I/O point of the restore. The
    /// place left must not open as if whole — init refuses it while the restore's marker is
    /// there, and without the marker it must be the backup's snapshot — and a restore into
    /// it again must give that snapshot.
    pub(super) fn restore_crash(&mut self, dir: u8, pick: u32, power_loss: bool) -> Check {
        let dir = usize::from(dir % BACKUP_DIRS);
        self.check_restore(dir, "before a restore that crashes")?;
        let Some((_, Ok(want))) = self.backups.dirs[dir].restored.clone() else {
            self.say("skipped: the directory holds no set that restores");
            return Ok(());
        };
        self.operations += 1;
        let from = dir_path(dir);
        self.vfs.suspend_faults(true);
        let files = self.vfs.files_under(&from);
        self.vfs.suspend_faults(false);
        self.backups.restores += 1;
        let place = PathBuf::from(format!("rst{}", self.backups.restores));
        let params = self.params_in(&place);
        let seed = self.config.seed ^ self.backups.restores.rotate_left(32);
        // A clean restore first, to count its I/O points.
        let (disk, env) = self.scratch_disk(&files, seed);
        let before = disk.stats().points;
        if let Err(e) = Instance::new(env, params.clone()).restore(&from, None) {
            return Err(self.violation(
                Oracle::Backup,
                format!("bk{dir} restored into the simulator, but not on a disk of its own: {e}"),
            ));
        }
        let points = disk.stats().points - before;
        let at = 1 + u64::from(pick) % points.max(1);
        let (disk, env) = self.scratch_disk(&files, seed);
        disk.arm_crash(at);
        let crashed = Instance::new(env.clone(), params.clone()).restore(&from, None);
        if !disk.crashed() {
            self.say(format!(
                "skipped: the restore ended before I/O point {at} ({crashed:?})"
            ));
            return Ok(());
        }
        disk.restart(power_loss);
        let held: Vec<PathBuf> = disk
            .files_under(&place)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let marker = held
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "restoring"));
        let what = format!(
            "a restore of bk{dir} crashed at its I/O point {at} of {points} ({}), leaving {held:?}",
            if power_loss {
                "power lost"
            } else {
                "process killed"
            }
        );
        if marker {
            match Instance::new(env.clone(), params.clone()).init() {
                Err(e) if e.kind() == ErrorKind::SoftRecoveryOnBackupDatabase => {}
                other => {
                    return Err(self.violation(
                        Oracle::Backup,
                        format!("{what}: init opened the half-restored place ({other:?})"),
                    ));
                }
            }
        } else if !held.is_empty() {
            // No marker: the restore was complete.
            let inst = Instance::new(env.clone(), params.clone());
            let got = self.read_restored(&inst, &from).map_err(|mut v| {
                v.detail = format!(
                    "{what}: without its marker, the place did not open as a whole restore: {}",
                    v.detail
                );
                v
            })?;
            if got != want {
                return Err(self.violation(
                    Oracle::Backup,
                    format!("{what}: without its marker, the place opened as something else than the backup"),
                ));
            }
            self.take_events();
            self.say(format!(
                "crashed after it was complete (point {at} of {points})"
            ));
            return Ok(());
        }
        let again = Instance::new(env, params);
        if let Err(e) = again.restore(&from, None) {
            return Err(self.violation(
                Oracle::Backup,
                format!("{what}: a restore into the same place failed: {e}"),
            ));
        }
        let got = self.read_restored(&again, &from)?;
        if got != want {
            return Err(self.violation(
                Oracle::Backup,
                format!("{what}: the restore into the same place differs from the backup"),
            ));
        }
        // (What the restores on the disk of its own logged is not this run's.)
        self.take_events();
        self.coverage.hit(Mark::RestoreCrashRetried);
        self.say(format!(
            "crashed at point {at} of {points}, refused by init, restored again: {} records",
            got.len()
        ));
        Ok(())
    }

    /// A disk of its own holding `files` at rest, and the run's environment over it (its
    /// clock, entropy and planted bug).
    fn scratch_disk(
        &self,
        files: &[(PathBuf, Vec<u8>)],
        seed: u64,
    ) -> (crate::vfs::SimVfs, jetdb::Env) {
        let disk = crate::vfs::SimVfs::new(
            self.config.device.clone(),
            seed,
            crate::trace::Trace::default(),
        );
        for (path, bytes) in files {
            let mut dir = PathBuf::new();
            for part in jetdb::parent_dir(path).components() {
                dir.push(part);
                disk.mkdir_durable(&dir);
            }
            disk.put_at_rest(path, bytes);
        }
        let mut env = self.env.clone();
        env.vfs = std::sync::Arc::new(disk.clone());
        (disk, env)
    }

    /// Restores `dir` and checks the result is one the simulator allows (`None`: no finished
    /// backup, refused with `JET_errFileNotFound`); a damaged directory may be refused with a
    /// documented error instead.
    pub(super) fn check_restore(&mut self, dir: usize, when: &str) -> Check {
        let damaged = self.backups.dirs[dir].damaged;
        let allowed = self.backups.dirs[dir].allowed.clone();
        // A forged manifest another backup (one that crashed past its commit point) replaced
        // or removed no longer stands, once that is durable: until then a power loss may put
        // it back (seed 804844).
        let mut forged_stands = false;
        if let Some((crc, set)) = self.backups.dirs[dir].forged {
            self.vfs.suspend_faults(true);
            let path = dir_path(dir).join(manifest::MANIFEST_NAME);
            let now = self.vfs.crc_of(&path);
            let durable = self.vfs.durable_content(&path).map(|b| crc32fast::hash(&b));
            let extended = self
                .manifest_of(dir)
                .ok()
                .flatten()
                .is_some_and(|m| m.set == set);
            self.vfs.suspend_faults(false);
            forged_stands = now == Some(crc);
            if now != Some(crc) && durable != Some(crc) {
                let state = &mut self.backups.dirs[dir];
                state.forged = None;
                // An incremental backup that extended the forged set carried its claims into
                // the new manifest (it vouches only for the logs it copied): the set may still
                // be refused. A full backup's new set owes the forgery nothing.
                if state.tampered == Some(Tamper::ForgeManifest) && !extended {
                    state.tampered = None;
                }
            }
        }
        let tampered = self.backups.dirs[dir].tampered;
        let restored = self.restore_dir(dir)?;
        self.record(|t| {
            let against = match allowed.iter().flatten().next() {
                Some(want) => format!(
                    "compared against the model's snapshot at the begin of bk{dir}'s last successful backup ({} keys{})",
                    want.len(),
                    if allowed.len() > 1 { ", or an earlier one a power loss may bring back" } else { "" }
                ),
                None => format!("compared against nothing: bk{dir} should hold no finished backup"),
            };
            let (kind, what) = match &restored {
                Ok(got) => ("restore", format!("restored {} keys", got.len())),
                Err(e) => ("restore-refused", format!("refused: {e}")),
            };
            t.mark(Lane::Backup(dir), kind, format!("restore of bk{dir} {when}"), vec![what, against]);
        });
        match restored {
            Ok(got) => {
                // A forged manifest claims what its set is not: it must be refused.
                if tampered == Some(Tamper::ForgeManifest) && forged_stands {
                    return Err(self.violation(
                        Oracle::Backup,
                        format!("bk{dir} restored {when} though its manifest is forged"),
                    ));
                }
                if allowed.contains(&Some(got.clone())) {
                    self.coverage.hit(Mark::BackupRestored);
                    if tampered.is_some() {
                        self.coverage.hit(Mark::LogSetTamperHarmless);
                    }
                    return Ok(());
                }
                if tampered.is_some() && self.backups.dirs[dir].extra.contains(&got) {
                    self.coverage.hit(Mark::LogSetTamperHarmless);
                    return Ok(());
                }
                let want = allowed.iter().flatten().next();
                let (expected, actual) = match want {
                    Some(want) => snapshot_diff(want, &got),
                    None => ("no finished backup".into(), format!("{} keys", got.len())),
                };
                let differ: Vec<String> = match want {
                    Some(want) => differing(want, &got),
                    None => vec!["the directory should hold no finished backup".into()],
                };
                Err(self
                    .violation(
                        Oracle::Backup,
                        format!(
                            "bk{dir} restored {when} differs from its backup's snapshot: {}",
                            differ.join(", ")
                        ),
                    )
                    .with_values(expected, actual))
            }
            Err(e) if allowed.contains(&None) && e.kind() == ErrorKind::FileNotFound => Ok(()),
            Err(e)
                if tampered
                    .is_some_and(|t| self.restore_errors_now(dir, t).contains(&e.kind())) =>
            {
                self.coverage.hit(Mark::LogSetTamperRefused);
                Ok(())
            }
            Err(e) if damaged && RESTORE_ERRORS.contains(&e.kind()) => {
                self.coverage.hit(Mark::BackupCorruptionRefused);
                self.detected(e.kind());
                Ok(())
            }
            Err(e) => Err(self.violation(
                Oracle::Backup,
                format!("restoring bk{dir} {when} failed: {e}"),
            )),
        }
    }

    /// Restores backup directory `dir` into a fresh place, with faults and crashes held, and
    /// reads back every table; the place is removed after. The outer `Err` is a violation
    /// (the restored database misbehaved), the inner one the restore's refusal.
    fn restore_dir(&mut self, dir: usize) -> Result<Result<Snapshot, JetError>, Violation> {
        self.vfs.suspend_faults(true);
        let files = self.listing(&dir_path(dir));
        self.vfs.suspend_faults(false);
        if let Some((seen, outcome)) = &self.backups.dirs[dir].restored
            && *seen == files
        {
            return Ok(outcome.clone());
        }
        let outcome = self.restore_copy(dir)?;
        self.backups.dirs[dir].restored = Some((files, outcome.clone()));
        Ok(outcome)
    }

    fn restore_copy(&mut self, dir: usize) -> Result<Result<Snapshot, JetError>, Violation> {
        self.backups.restores += 1;
        let place = PathBuf::from(format!("rst{}", self.backups.restores));
        let params = self.params_in(&place);
        self.vfs.suspend_faults(true);
        let result = self.restore_and_read(&dir_path(dir), params);
        self.remove_place(&place);
        self.vfs.suspend_faults(false);
        result
    }

    fn restore_and_read(
        &mut self,
        from: &Path,
        params: jetdb::InstanceParams,
    ) -> Result<Result<Snapshot, JetError>, Violation> {
        let place = params.log_path.clone();
        let inst = Instance::new(self.env.clone(), params);
        let manifest = manifest::read(&self.vfs, from).ok().flatten();
        // At Begin, the status call tries a second restore and a backup into the same
        // instance: both must be refused while it restores.
        let mut statuses = Vec::new();
        let mut nested = Vec::new();
        let mut status = |status: &jetdb::Status| {
            if status.kind == jetdb::StatusKind::Begin {
                nested.push(inst.restore(from, None).err().map(|e| e.kind()));
                nested.push(
                    inst.backup(None, BackupFlags::NONE, None)
                        .err()
                        .map(|e| e.kind()),
                );
            }
            statuses.push(*status);
            Ok(())
        };
        self.take_events();
        let result = inst.restore(from, Some(&mut status));
        // (The nested backup's refusal is logged too.)
        let events: Vec<jetdb::Event> = self
            .take_events()
            .into_iter()
            .filter(|e| !matches!(e, jetdb::Event::BackupFailed { error, .. } if error.kind() == ErrorKind::RestoreInProgress))
            .collect();
        self.check_restore_report(
            from,
            manifest.as_ref(),
            &result,
            &statuses,
            &events,
            &nested,
        )?;
        if let Err(e) = result {
            self.event(format_args!("restore of {} refused: {e}", from.display()));
            // A failed restore leaves nothing in its destination.
            let left: Vec<PathBuf> = self.listing(&place).into_keys().collect();
            if !left.is_empty() {
                return Err(self.violation(
                    Oracle::Backup,
                    format!(
                        "a restore of {} that failed ({e}) left {left:?}",
                        from.display()
                    ),
                ));
            }
            return Ok(Err(e));
        }
        self.read_restored(&inst, from).map(Ok)
    }

    /// Initialises a restored instance, checks it whole and reads back every table.
    pub(super) fn read_restored(
        &self,
        inst: &Instance,
        from: &Path,
    ) -> Result<Snapshot, Violation> {
        let bad = |sim: &Sim, what: &str, e: JetError| {
            sim.violation(
                Oracle::Backup,
                format!(
                    "the database restored from {} fails: {what}: {e}",
                    from.display()
                ),
            )
        };
        inst.init().map_err(|e| bad(self, "init", e))?;
        inst.check_integrity()
            .map_err(|e| bad(self, "integrity", e))?;
        let mut session = inst.begin_session().map_err(|e| bad(self, "session", e))?;
        let mut out = Snapshot::new();
        for t in 0..self.config.tables {
            let table = session
                .open_table(&super::table_name(usize::from(t)))
                .map_err(|e| bad(self, "open table", e))?;
            let rows: jetdb::Result<Vec<(Vec<u8>, Vec<u8>)>> =
                session.range(table, .., false).and_then(|r| r.collect());
            for (k, v) in rows.map_err(|e| bad(self, "scan", e))? {
                let Some(k) = parse_key(&k) else {
                    return Err(self.violation(
                        Oracle::Backup,
                        format!(
                            "the database restored from {} holds key {:?}, never written",
                            from.display(),
                            String::from_utf8_lossy(&k)
                        ),
                    ));
                };
                let val = value_of(&v);
                if !value_matches(val, &v) {
                    return Err(self.violation(
                        Oracle::Backup,
                        format!(
                            "the database restored from {} holds a value for {:?} the workload never wrote",
                            from.display(),
                            (t, k)
                        ),
                    ));
                }
                out.insert((t, k), val);
            }
        }
        drop(session);
        inst.term().map_err(|e| bad(self, "term", e))?;
        Ok(out)
    }

    /// The run's instance parameters, for an instance of the simulator's own in `place` (a
    /// restored copy, the other instance): all its files there, no circular logging.
    pub(super) fn params_in(&self, place: &Path) -> jetdb::InstanceParams {
        let mut params = self.params.clone();
        params.log_path = place.to_path_buf();
        params.system_path = place.to_path_buf();
        params.database_path = place.join("data.edb");
        params.create_path_if_not_exist = true;
        params.circular_logging = false;
        params
    }

    /// Removes a restored copy.
    pub(super) fn remove_place(&self, place: &Path) {
        for (path, _) in self.vfs.files_under(place) {
            let _ = jetdb::Vfs::remove(&self.vfs, &path);
        }
        let _ = jetdb::Vfs::remove_dir(&self.vfs, place);
    }

    /// Live data was damaged beyond repair: the last successful backup must restore to its
    /// snapshot (the fault-free phase's fallback).
    pub(super) fn restore_after_damage(&mut self) -> Check {
        let Some(dir) = self.backups.last_success else {
            return Ok(());
        };
        if self.backups.dirs[dir].damaged {
            return Ok(());
        }
        if !self.backups.dirs[dir].may_hold_backup() {
            return Ok(());
        }
        // (A tampered set may be refused with its kind's documented errors.)
        self.check_restore(dir, "after live data was damaged")?;
        if self.backups.dirs[dir].tampered.is_none() {
            self.coverage.hit(Mark::RestoredAfterDamage);
        }
        Ok(())
    }

    /// The fault-free phase: every backup directory restores to its snapshot.
    pub(super) fn restore_every_backup(&mut self) -> Check {
        for dir in 0..self.backups.dirs.len() {
            if self.backups.dirs[dir].may_hold_backup() {
                self.check_restore(dir, "in the fault-free phase")?;
            }
        }
        Ok(())
    }

    /// Bit rot was planted in a backup file. (Never in the directory a backup is writing
    /// into: `atlas::plant` leaves it alone, since its failure oracle compares what that backup
    /// leaves there.)
    pub(super) fn backup_damaged(&mut self, path: &Path) {
        for dir in 0..self.backups.dirs.len() {
            if path.starts_with(dir_path(dir)) {
                self.backups.dirs[dir].damaged = true;
            }
        }
        debug_assert!(
            self.backups
                .active
                .as_ref()
                .is_none_or(|a| !path.starts_with(dir_path(a.facts.dir))),
            "rot in the directory a backup writes into"
        );
    }
}
