//! Log sets that are not what they claim: a generation missing in the middle, two swapped, one
//! renumbered, duplicated, replaced by another instance's, re-signed, another set's left over,
//! a stale or foreign manifest — in a backup directory or in the live log directory, at rest,
//! as an operator's slip or a copy tool's would leave them.
//!
//! Each must be refused with the error the engine documents for it, or, where harmless (a file
//! no manifest names, a generation recovery does not need), restore or recover exactly. The
//! errors are strict per kind: a check skipped leaves a later one to catch the damage under
//! another name, and that is a violation too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jetdb::manifest::{self, Manifest};
use jetdb::{BackupFlags, Env, ErrorKind, Instance, SeededEntropy};

use super::backups::Snapshot;
use super::{Check, Sim};
use crate::coverage::Mark;
use crate::oracle::Oracle;
use crate::workload::{BACKUP_DIRS, Tamper};

/// Where the other instance, whose logs are foreign, lives (a `rst…` name: the simulator's own
/// zone, outside the atlas's reach).
const ALIEN: &str = "rstalien";

/// The most generations the other instance rolls to.
const ALIEN_GENERATIONS: u32 = 48;

/// The errors recovery refuses the live log directory with after `kind` (besides recovering
/// exactly, where the tampered generation is not needed).
pub(crate) fn recovery_errors(kind: Tamper) -> &'static [ErrorKind] {
    use ErrorKind::*;
    match kind {
        Tamper::Remove | Tamper::Renumber => &[MissingLogFile],
        Tamper::Swap => &[LogGenerationMismatch],
        Tamper::Foreign => &[BadLogSignature],
        // The log's set (its segments carry it too) or the database's.
        Tamper::Resign => &[BadLogSignature, LogFileCorrupt],
        // Numbered past the current generation: a generation that says it is newer than the
        // current log, or — once a roll is cut short — the gap up to it.
        // (Read as the generation of its number once a roll reaches it and a power loss takes
        // back the rename that replaced it: another set's.)
        Tamper::Leftover => &[LogGenerationMismatch, MissingLogFile, BadLogSignature],
        Tamper::ForeignCheckpoint => &[BadCheckpointSignature],
        // Refused only where recovery cannot tell where to start (`Tampering::refusal`), or
        // where the history from generation 1 has a gap (a truncation half undone by a power
        // loss: the checkpoint that made it safe is the file that is missing).
        Tamper::MissingCheckpoint => &[CheckpointFileNotFound, MissingLogFile],
        Tamper::Duplicate
        | Tamper::StaleManifest
        | Tamper::ForeignManifest
        | Tamper::ForgeManifest
        | Tamper::ForeignDatabase => &[],
    }
}

/// The errors restore refuses a backup directory with after `kind` (besides restoring exactly
/// the snapshot its manifest names).
pub(crate) fn restore_errors(kind: Tamper) -> &'static [ErrorKind] {
    use ErrorKind::*;
    match kind {
        Tamper::Remove | Tamper::Renumber => &[MissingRestoreLogFiles],
        Tamper::Swap => &[GivenLogFileIsNotContiguous],
        Tamper::Foreign | Tamper::Resign => &[GivenLogFileHasBadSignature],
        // Files no manifest names.
        Tamper::Duplicate
        | Tamper::Leftover
        | Tamper::ForeignCheckpoint
        | Tamper::MissingCheckpoint => &[],
        // The manifest refused as damaged; a wrong digest: the copy is not the backup's; logs
        // whose signature is not the set's.
        Tamper::ForgeManifest => &[
            LogCorruptDuringHardRestore,
            RestoreOfNonBackupDatabase,
            GivenLogFileHasBadSignature,
        ],
        Tamper::ForeignDatabase => &[RestoreOfNonBackupDatabase, BadBackupDatabaseSize],
        // The files it names may be gone or another backup's (a database copy of another
        // length among them).
        Tamper::StaleManifest | Tamper::ForeignManifest => &[
            MissingRestoreLogFiles,
            FileNotFound,
            RestoreOfNonBackupDatabase,
            BadBackupDatabaseSize,
            LogCorruptDuringHardRestore,
            GivenLogFileIsNotContiguous,
        ],
    }
}

/// What other calls (a backup copying the live logs, a roll) may answer once the live log
/// directory was tampered with.
pub(crate) const LIVE_TAMPER_ERRORS: [ErrorKind; 9] = [
    ErrorKind::LogReadVerifyFailure,
    ErrorKind::MissingFileToBackup,
    ErrorKind::MissingLogFile,
    ErrorKind::LogGenerationMismatch,
    ErrorKind::BadLogSignature,
    ErrorKind::LogFileCorrupt,
    ErrorKind::InvalidLogSequence,
    ErrorKind::FileNotFound,
    ErrorKind::BadCheckpointSignature,
];

/// What the simulator knows of the tampering in a run.
#[derive(Default)]
pub(crate) struct Tampering {
    /// What was done to the live log directory, if anything (one tamper per run there).
    pub(crate) live: Option<Tamper>,
    /// The files that tamper left: each path with the CRC32 of what was put there (`None`:
    /// removed) and its generation (`None` for the checkpoint file). It explains errors only
    /// while one of them is still as it was left.
    pub(crate) live_files: Vec<(PathBuf, Option<u32>, Option<u32>)>,
    /// Whether a recovery met it (refused or exact) already: marked once.
    pub(crate) live_met: bool,
    /// With the checkpoint file missing as recovery begins, whether it must refuse (the logs
    /// do not begin at generation 1: nothing says where to start, nor the last commit's
    /// sequence; or they do, with a gap after it) or must recover (from generation 1, the
    /// whole history). `None`: the file is there, or no log can be read.
    pub(crate) refusal: Option<bool>,
    /// The other instance's archived generations: (generation, bytes).
    alien: Option<BTreeMap<u32, Vec<u8>>>,
    /// The other instance's checkpoint file.
    alien_checkpoint: Option<Vec<u8>>,
    /// Every manifest a successful backup wrote, with its directory and snapshot.
    pub(crate) manifests: Vec<(usize, Vec<u8>, Snapshot)>,
}

fn dir_path(dir: usize) -> PathBuf {
    PathBuf::from(format!("bk{dir}"))
}

fn generation_of(path: &Path) -> Option<u32> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| jetdb::log::parse_archive_name("edb", n))
}

/// `bytes` of a log file with one bit of one signature in its header flipped and the header's
/// checksum made whole again. (Header: crc u32 | magic | version | generation | segment size |
/// segments | log signature (random u64, created u64) | database signature (…) …)
fn resign(bytes: &mut [u8], pick: u64) {
    const HEADER: usize = jetdb::log::SEGMENT_SIZE;
    if bytes.len() < HEADER {
        return;
    }
    let signature = if pick.is_multiple_of(2) { 24 } else { 40 };
    let at = signature + ((pick >> 8) % 8) as usize;
    bytes[at] ^= 1 << ((pick >> 16) % 8);
    let crc = crc32fast::hash(&bytes[4..HEADER]);
    bytes[..4].copy_from_slice(&crc.to_le_bytes());
}

/// Makes one field of `m` impossible or wrong (chosen by `pick`); says which, or `None` if
/// the manifest has nothing to forge that way.
fn forge(m: &mut Manifest, pick: u64) -> Option<String> {
    Some(match pick % 12 {
        8 | 9 => {
            m.db_name = ["", "..", "../data.edb"][(pick >> 8) as usize % 3].into();
            "the database copy's name made a path".into()
        }
        10 | 11 => {
            // Only the log set's: a set of this database, another log set.
            m.log_signature.random ^= 1 << ((pick >> 8) % 64);
            "its log signature made another set's".into()
        }
        0 => {
            m.backups.first_mut()?.kind = jetdb::BackupKind::Incremental;
            "its first backup made incremental".into()
        }
        1 => {
            m.logs.clear();
            "its log list emptied".into()
        }
        2 => {
            m.logs.last_mut()?.generation =
                [0, jetdb::log::GENERATION_MAX][(pick >> 8) as usize % 2];
            "a log's generation made impossible".into()
        }
        3 => {
            m.logs.first_mut()?.len = jetdb::log::LOG_FILE_SIZE_MAX + 4096;
            "a log's length made impossible".into()
        }
        4 => {
            m.db_len = u64::from(u32::MAX) * 32 * 1024 + u64::from(m.page_size);
            "the database length made impossible".into()
        }
        5 => {
            if m.logs.len() < 2 {
                return None;
            }
            m.logs.swap(0, 1);
            "two logs listed out of order".into()
        }
        6 => {
            m.checkpoint.generation += 1;
            "its checkpoint moved to the next generation".into()
        }
        _ => {
            m.db_digest ^= 1 << ((pick >> 8) % 32);
            "the database copy's digest changed".into()
        }
    })
}

impl Sim {
    /// The errors restore may refuse backup directory `dir` with after `kind`, as it stands
    /// now: another backup's database copy is refused by its size when its length is not the
    /// manifest's, else as another database.
    pub(super) fn restore_errors_now(&self, dir: usize, kind: Tamper) -> &'static [ErrorKind] {
        if kind != Tamper::ForeignDatabase {
            return restore_errors(kind);
        }
        self.vfs.suspend_faults(true);
        let path = dir_path(dir);
        let resized = self
            .vfs
            .content(&path.join(manifest::MANIFEST_NAME))
            .and_then(|bytes| Manifest::decode(&bytes).ok())
            .and_then(|m| {
                let len = self.vfs.len_of(&m.set_dir(&path).join(&m.db_name))?;
                Some(len != m.db_len)
            });
        self.vfs.suspend_faults(false);
        match resized {
            Some(true) => &[ErrorKind::BadBackupDatabaseSize],
            Some(false) => &[ErrorKind::RestoreOfNonBackupDatabase],
            None => restore_errors(kind),
        }
    }

    /// A `Tamper` step.
    pub(super) fn tamper(&mut self, target: u8, kind: Tamper, pick: u64) -> Check {
        self.operations += 1;
        self.vfs.suspend_faults(true);
        let done = if target >= BACKUP_DIRS {
            self.tamper_live(kind, pick)
        } else {
            // A directory with nothing to tamper with yields to the last one a backup
            // succeeded in: backups that succeed are rarer than tamper steps.
            let target = usize::from(target);
            self.tamper_backup(target, kind, pick).or_else(|| {
                let last = self.backups.last_success.filter(|&d| d != target)?;
                self.tamper_backup(last, kind, pick)
            })
        };
        self.vfs.suspend_faults(false);
        match done {
            Some(what) => {
                self.coverage.hit(Mark::LogSetTampered);
                self.event(format_args!("tampered: {what}"));
                self.say(format!("tampered: {what}"));
            }
            None => self.say("skipped: nothing to tamper with"),
        }
        Ok(())
    }

    /// Tampers with the live log directory's archived generations; says what it did.
    fn tamper_live(&mut self, kind: Tamper, pick: u64) -> Option<String> {
        if self.tampering.live.is_some() {
            return None;
        }
        let log_dir = self.params.log_path.clone();
        let at = |g: u32| log_dir.join(jetdb::log::archive_name("edb", g));
        let gens: Vec<u32> = self
            .live_logs()
            .into_iter()
            .filter(|&g| self.vfs.at_rest(&at(g)))
            .collect();
        let current = self
            .instance
            .as_ref()
            .and_then(|i| i.log_position().ok().flatten())
            .map(|p| p.generation)?;
        // Mostly among the generations recovery needs (from the checkpoint's on), where the
        // damage must be refused; else anywhere, where it may be harmless.
        let needed_from = self
            .instance
            .as_ref()
            .and_then(|i| i.checkpoint_position().ok().flatten())
            .map_or(0, |c| c.generation);
        let needed: Vec<u32> = gens.iter().copied().filter(|&g| g >= needed_from).collect();
        let enough = if kind == Tamper::Swap { 2 } else { 1 };
        let gens = if needed.len() >= enough && pick >> 60 < 11 {
            needed
        } else {
            gens
        };
        let pick_gen = |n: u64| gens.get((n % gens.len().max(1) as u64) as usize).copied();
        let mut files = Vec::new();
        let what = match kind {
            Tamper::Remove => {
                let g = pick_gen(pick)?;
                self.vfs.remove_at_rest(&at(g));
                // Not a truncation: what a running backup's oracles compare against loses it.
                if let Some(active) = self.backups.active.as_mut() {
                    active.facts.logs.remove(&g);
                }
                files.push((at(g), None, Some(g)));
                format!("live generation {g:#X} removed")
            }
            Tamper::Swap => {
                let (a, b) = (pick_gen(pick)?, pick_gen(pick >> 8)?);
                let (crc_a, crc_b) = self.swap_at_rest(&at(a), &at(b))?;
                files.push((at(a), Some(crc_a), Some(a)));
                files.push((at(b), Some(crc_b), Some(b)));
                format!("live generations {a:#X} and {b:#X} swapped")
            }
            Tamper::Renumber | Tamper::Duplicate => {
                let g = pick_gen(pick)?;
                let low = *gens.first()?;
                // Below the lowest: a number the set no longer uses.
                let to = low
                    .checked_sub(1 + (pick >> 8) as u32 % 3)
                    .filter(|&n| n > 0)?;
                if !self.vfs.free_at_rest(&at(to)) {
                    return None;
                }
                let bytes = self.vfs.content(&at(g))?;
                self.vfs.put_at_rest(&at(to), &bytes);
                files.push((at(to), Some(crc32fast::hash(&bytes)), Some(to)));
                if kind == Tamper::Renumber {
                    self.vfs.remove_at_rest(&at(g));
                    if let Some(active) = self.backups.active.as_mut() {
                        active.facts.logs.remove(&g);
                    }
                    files.push((at(g), None, Some(g)));
                    format!("live generation {g:#X} renamed {to:#X}")
                } else {
                    format!("live generation {g:#X} copied as {to:#X}")
                }
            }
            Tamper::Foreign => {
                let g = pick_gen(pick)?;
                let bytes = self.alien_log(g)?;
                self.vfs.put_at_rest(&at(g), &bytes);
                files.push((at(g), Some(crc32fast::hash(&bytes)), Some(g)));
                format!("live generation {g:#X} replaced by another instance's")
            }
            Tamper::Resign => {
                let g = pick_gen(pick)?;
                let mut bytes = self.vfs.content(&at(g))?;
                resign(&mut bytes, pick >> 8);
                self.vfs.put_at_rest(&at(g), &bytes);
                files.push((at(g), Some(crc32fast::hash(&bytes)), Some(g)));
                format!("live generation {g:#X} re-signed")
            }
            Tamper::Leftover => {
                // Past the current generation: left by an older set, never written by this one.
                let to = current + 1 + (pick % 3) as u32;
                if !self.vfs.free_at_rest(&at(to)) {
                    return None;
                }
                let bytes = self.alien_log(1 + (pick >> 8) as u32 % 4)?;
                self.vfs.put_at_rest(&at(to), &bytes);
                files.push((at(to), Some(crc32fast::hash(&bytes)), Some(to)));
                format!("another set's generation left as live {to:#X}")
            }
            Tamper::ForeignCheckpoint => {
                // Its slots are another set's: the atlas's rule for a slot's twin no longer
                // holds, so no slot rots in this run after it.
                if !self
                    .corrupt_spent
                    .insert(crate::config::CorruptZone::CheckpointSlot)
                {
                    return None;
                }
                let path = self.params.system_path.join("edb.chk");
                if !self.vfs.at_rest(&path) {
                    return None;
                }
                self.alien_log(1)?;
                let bytes = self.tampering.alien_checkpoint.clone()?;
                self.vfs.put_at_rest(&path, &bytes);
                files.push((path, Some(crc32fast::hash(&bytes)), None));
                "the checkpoint file replaced by another instance's".into()
            }
            Tamper::MissingCheckpoint => {
                let path = self.params.system_path.join("edb.chk");
                if !self.vfs.at_rest(&path) {
                    return None;
                }
                self.vfs.remove_at_rest(&path);
                files.push((path, None, None));
                "the checkpoint file removed".into()
            }
            Tamper::StaleManifest
            | Tamper::ForeignManifest
            | Tamper::ForgeManifest
            | Tamper::ForeignDatabase => return None,
        };
        self.tampering.live = Some(kind);
        self.tampering.live_files = files;
        Some(what)
    }

    /// Tampers with backup directory `dir`'s set; says what it did.
    fn tamper_backup(&mut self, dir: usize, kind: Tamper, pick: u64) -> Option<String> {
        // Not under a backup writing into it: its failure oracle compares the directory.
        if self
            .backups
            .active
            .as_ref()
            .is_some_and(|a| a.facts.dir == dir)
            || self.backups.dirs[dir].tampered.is_some()
        {
            return None;
        }
        let path = dir_path(dir);
        let manifest_path = path.join(manifest::MANIFEST_NAME);
        if !self.vfs.at_rest(&manifest_path) {
            return None;
        }
        let m = Manifest::decode(&self.vfs.content(&manifest_path)?).ok()?;
        let set = m.set_dir(&path);
        let at = |g: u32| set.join(m.log_name(g));
        let gens: Vec<u32> = m
            .logs
            .iter()
            .map(|l| l.generation)
            .filter(|&g| self.vfs.at_rest(&at(g)))
            .collect();
        let pick_gen = |n: u64| gens.get((n % gens.len().max(1) as u64) as usize).copied();
        let free_above = |sim: &Sim| {
            let top = m.log_range().1;
            (1..=3)
                .map(|i| top + i)
                .find(|&g| sim.vfs.free_at_rest(&at(g)))
        };
        let mut extra: Vec<Snapshot> = Vec::new();
        let what = match kind {
            Tamper::Remove => {
                let g = pick_gen(pick)?;
                self.vfs.remove_at_rest(&at(g));
                format!("bk{dir} generation {g:#X} removed")
            }
            Tamper::Swap => {
                let (a, b) = (pick_gen(pick)?, pick_gen(pick >> 8)?);
                self.swap_at_rest(&at(a), &at(b))?;
                format!("bk{dir} generations {a:#X} and {b:#X} swapped")
            }
            Tamper::Renumber | Tamper::Duplicate => {
                let g = pick_gen(pick)?;
                let to = free_above(self)?;
                let bytes = self.vfs.content(&at(g))?;
                self.vfs.put_at_rest(&at(to), &bytes);
                if kind == Tamper::Renumber {
                    self.vfs.remove_at_rest(&at(g));
                    format!("bk{dir} generation {g:#X} renamed {to:#X}")
                } else {
                    format!("bk{dir} generation {g:#X} copied as {to:#X}")
                }
            }
            Tamper::Foreign => {
                let g = pick_gen(pick)?;
                let bytes = self.alien_log(g)?;
                self.vfs.put_at_rest(&at(g), &bytes);
                format!("bk{dir} generation {g:#X} replaced by another instance's")
            }
            Tamper::Resign => {
                let g = pick_gen(pick)?;
                let mut bytes = self.vfs.content(&at(g))?;
                resign(&mut bytes, pick >> 8);
                self.vfs.put_at_rest(&at(g), &bytes);
                format!("bk{dir} generation {g:#X} re-signed")
            }
            Tamper::Leftover => {
                let to = free_above(self)?;
                let bytes = self.alien_log(1 + (pick >> 8) as u32 % 4)?;
                self.vfs.put_at_rest(&at(to), &bytes);
                format!("another set's generation left in bk{dir} as {to:#X}")
            }
            Tamper::StaleManifest | Tamper::ForeignManifest => {
                let current = self.vfs.content(&manifest_path)?;
                let stale = kind == Tamper::StaleManifest;
                let others: Vec<&(usize, Vec<u8>, Snapshot)> = self
                    .tampering
                    .manifests
                    .iter()
                    .filter(|(d, bytes, _)| (*d == dir) == stale && *bytes != current)
                    .collect();
                let (from, bytes, snapshot) =
                    others.get((pick % others.len().max(1) as u64) as usize)?;
                let (from, bytes) = (*from, bytes.clone());
                extra.push(snapshot.clone());
                if !stale {
                    // Whatever that directory may restore to, its files may be the same.
                    extra.extend(self.backups.dirs[from].allowed.iter().flatten().cloned());
                }
                self.vfs.put_at_rest(&manifest_path, &bytes);
                if stale {
                    format!("bk{dir}'s manifest replaced by an earlier one")
                } else {
                    format!("bk{dir}'s manifest replaced by bk{from}'s")
                }
            }
            Tamper::ForgeManifest => {
                let mut forged = m.clone();
                let what = forge(&mut forged, pick >> 8)?;
                let bytes = forged.encode();
                self.vfs.put_at_rest(&manifest_path, &bytes);
                self.backups.dirs[dir].forged = Some((crc32fast::hash(&bytes), forged.set));
                format!("bk{dir}'s manifest forged: {what}")
            }
            Tamper::ForeignDatabase => {
                // Another directory's database copy, if it is another backup's.
                let mine = set.join(&m.db_name);
                if !self.vfs.at_rest(&mine) {
                    return None;
                }
                let own = self.vfs.content(&mine)?;
                let (other, rotten) = (0..BACKUP_DIRS as usize)
                    .filter(|&d| d != dir)
                    .filter_map(|d| {
                        let p = dir_path(d);
                        let bytes = self.vfs.content(&p.join(manifest::MANIFEST_NAME))?;
                        let other = Manifest::decode(&bytes).ok()?;
                        let copy = self.vfs.content(&other.set_dir(&p).join(&other.db_name))?;
                        Some((copy, self.backups.dirs[d].damaged))
                    })
                    .find(|(bytes, _)| *bytes != own)?;
                self.vfs.put_at_rest(&mine, &other);
                // A copy that carries rot planted in its own directory brings it along: the
                // restore may refuse it for the rot before it sees whose copy it is.
                if rotten {
                    self.backups.dirs[dir].damaged = true;
                }
                format!("bk{dir}'s database copy replaced by another backup's")
            }
            Tamper::ForeignCheckpoint | Tamper::MissingCheckpoint => return None,
        };
        let state = &mut self.backups.dirs[dir];
        state.tampered = Some(kind);
        state.extra = extra;
        Some(what)
    }

    /// Swaps the contents of two files at rest; the CRC32s they then hold, or `None` if they
    /// are one file or one is missing.
    fn swap_at_rest(&self, a: &Path, b: &Path) -> Option<(u32, u32)> {
        if a == b {
            return None;
        }
        let (x, y) = (self.vfs.content(a)?, self.vfs.content(b)?);
        self.vfs.put_at_rest(a, &y);
        self.vfs.put_at_rest(b, &x);
        Some((crc32fast::hash(&y), crc32fast::hash(&x)))
    }

    /// Generation `g` of another instance's log (same page and log file sizes, another
    /// signature), made the first time one is asked for by rolling that instance's log with
    /// backups it begins and drops.
    pub(super) fn alien_log(&mut self, g: u32) -> Option<Vec<u8>> {
        if g == 0 || g > ALIEN_GENERATIONS {
            return None;
        }
        if self.tampering.alien.is_none() {
            // Only as far as asked the first time: each generation is a roll.
            let up_to = g.max(4);
            self.tampering.alien = Some(self.make_alien(up_to).unwrap_or_default());
        }
        self.tampering.alien.as_ref()?.get(&g).cloned()
    }

    fn make_alien(&mut self, generations: u32) -> Option<BTreeMap<u32, Vec<u8>>> {
        let root = PathBuf::from(ALIEN);
        let params = self.params_in(&root);
        let env = Env::new(
            self.env.vfs.clone(),
            self.env.clock.clone(),
            std::sync::Arc::new(SeededEntropy::new(self.config.seed ^ 0xA11E_0000_0000_0000)),
        );
        let backups = root.join("bk");
        let inst = Instance::new(env, params);
        inst.init().ok()?;
        jetdb::Vfs::create_dir_all(&self.vfs, &backups).ok()?;
        {
            let mut session = inst.begin_session().ok()?;
            let table = session.create_table("t0").ok()?;
            for i in 0..generations {
                session.begin_transaction().ok()?;
                session.put(table, &i.to_le_bytes(), b"alien").ok()?;
                session
                    .commit_transaction(jetdb::CommitMode::Durable)
                    .ok()?;
                // A backup's begin finishes the generation; dropped, it leaves nothing.
                drop(
                    inst.begin_backup(Some(&backups), BackupFlags::ATOMIC, None)
                        .ok()?,
                );
            }
        }
        inst.term().ok()?;
        let mut logs = BTreeMap::new();
        for (path, bytes) in self.vfs.files_under(&root) {
            if let Some(g) = generation_of(&path) {
                logs.insert(g, bytes);
            } else if path.file_name().is_some_and(|n| n == "edb.chk") {
                self.tampering.alien_checkpoint = Some(bytes);
            }
            self.vfs.remove_at_rest(&path);
        }
        Some(logs)
    }

    /// The live tampering still in effect, if any: one of the files it left is still as it
    /// left it (a removed generation still missing). A roll that replaced a leftover, a
    /// truncation that deleted a re-signed generation, ends it.
    pub(super) fn live_tamper_in_effect(&self, within: Option<(u32, u32)>) -> Option<Tamper> {
        self.live_tamper_in(within, true)
    }

    /// [`Self::live_tamper_in_effect`], counting the checkpoint file or not.
    fn live_tamper_in(&self, within: Option<(u32, u32)>, checkpoint: bool) -> Option<Tamper> {
        let kind = self.tampering.live?;
        let still = self.tampering.live_files.iter().any(|(path, crc, g)| {
            if g.is_none() && !checkpoint {
                return false;
            }
            if let (Some((low, high)), Some(g)) = (within, g)
                && !(low..=high).contains(g)
            {
                return false;
            }
            if g.is_none() {
                // The checkpoint file: the engine writes its slots in place, and a power loss
                // may take those writes back; another set's slot may be there until a
                // recovery succeeds.
                return true;
            }
            match crc {
                None => self.vfs.crc_of(path).is_none(),
                Some(crc) => self.vfs.crc_of(path) == Some(*crc),
            }
        });
        still.then_some(kind)
    }

    /// Whether live tampering still in effect explains `kind`, answered by a backup (which
    /// reads the archived generations `within`, if known).
    pub(super) fn live_tamper_explains(&self, kind: ErrorKind, within: Option<(u32, u32)>) -> bool {
        // (A backup reads no checkpoint file: tampering with it explains nothing a backup does.)
        LIVE_TAMPER_ERRORS.contains(&kind) && self.live_tamper_in(within, false).is_some()
    }

    /// Recovery refused the live log directory: whether the tampering, still in effect,
    /// explains the error. Once a recovery has succeeded over it, it was not needed, and
    /// never will be (checkpoints only move on): it explains no later refusal.
    pub(super) fn tamper_explains_recovery(&mut self, kind: ErrorKind) -> bool {
        if self.tampering.live_met {
            return false;
        }
        let Some(tamper) = self.live_tamper_in_effect(None) else {
            return false;
        };
        if tamper == Tamper::MissingCheckpoint && self.tampering.refusal == Some(false) {
            return false;
        }
        if recovery_errors(tamper).contains(&kind) {
            self.coverage.hit(Mark::LogSetTamperRefused);
            return true;
        }
        false
    }

    /// Before a recovery: whether it must refuse for want of the checkpoint file (see
    /// `Tampering::refusal`), judged from the files at rest.
    pub(super) fn judge_missing_checkpoint(&mut self) {
        self.tampering.refusal = None;
        if self.tampering.live != Some(Tamper::MissingCheckpoint) || self.tampering.live_met {
            return;
        }
        self.vfs.suspend_faults(true);
        let chk = self.params.system_path.join("edb.chk");
        let missing = !jetdb::Vfs::exists(&self.vfs, &chk).unwrap_or(true);
        let mut generations = self.live_logs();
        let current = self.params.log_path.join("edb.log");
        let current = jetdb::log::read_file(&self.vfs, &current)
            .ok()
            .and_then(|bytes| jetdb::log::scan(&bytes, "edb.log").ok())
            .map(|s| s.header.generation);
        generations.extend(current);
        self.vfs.suspend_faults(false);
        // The lowest generation, and whether the rest follow it without a gap.
        let first = generations.first().copied();
        let whole = match (generations.first(), generations.last()) {
            (Some(&low), Some(&high)) => (high - low) as usize + 1 == generations.len(),
            _ => true,
        };
        self.tampering.refusal = match (missing, first) {
            (true, Some(first)) => Some(first != 1 || !whole),
            _ => None,
        };
    }

    /// After a recovery succeeded: it did not recover what it had to refuse.
    pub(super) fn check_missing_checkpoint_recovered(&self) -> Check {
        if self.tampering.refusal == Some(true) {
            return Err(self.violation(
                Oracle::Recovery,
                "recovery went on without the checkpoint file though the logs do not begin at generation 1: it cannot know where to start, nor the last commit's sequence (JET_errCheckpointFileNotFound)",
            ));
        }
        Ok(())
    }

    /// Recovery succeeded over a tampered live log directory (the prefix oracle judges it).
    pub(super) fn tamper_met_by_recovery(&mut self) {
        if self.tampering.live.is_some() && !self.tampering.live_met {
            self.tampering.live_met = true;
            self.coverage.hit(Mark::LogSetTamperHarmless);
        }
    }

    /// Records the manifest a successful backup into `dir` wrote, with its snapshot.
    pub(super) fn remember_manifest(&mut self, dir: usize, snapshot: &Snapshot) {
        self.vfs.suspend_faults(true);
        let bytes = self
            .vfs
            .content(&dir_path(dir).join(manifest::MANIFEST_NAME));
        self.vfs.suspend_faults(false);
        if let Some(bytes) = bytes {
            // A few per run are plenty; keep the first ones.
            if self.tampering.manifests.len() < 8 {
                self.tampering
                    .manifests
                    .push((dir, bytes, snapshot.clone()));
            }
        }
    }
}
