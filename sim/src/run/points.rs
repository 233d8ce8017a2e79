//! Restores to a point, and roll forwards, in a run (`Instance::restore_with`): the
//! `RestoreTo` and `RollForward` steps and their oracles, `restore-point` and `roll-forward`
//! (`../shared/reference/oracles.md`).
//!
//! Only a set the simulator knows exactly is restored so: one snapshot allowed, nothing
//! planted in it, a whole restore giving that snapshot, and every backup its manifest lists
//! one whose begin the simulator saw, with the model's history still agreeing there. Each
//! restore goes into a fresh place (`rst…`) with faults and crash points held, is compared key
//! by key with the model, and the place is removed after; a refused one must leave it empty.
//!
//! What a point lands on is named in the model's terms: a chosen backup gives that backup's
//! snapshot; a time, the state after the last commit that returned at or before it (the
//! engine stamps its commit records with the simulated clock, which does not move within a
//! step, so the model's times are the records' — checked for every record scanned); a log
//! position, the state after the last commit record at or before it, found by scanning the
//! set's logs. A roll forward reads a copy of the live log files (`rfl…`, outside fault
//! injection), made as reads see them, damaged or not; undamaged, it must give the state
//! after the last commit record the copy holds, which is never before the model's durable
//! prefix (a lazy commit still in the writer's buffer is simply not there).

use std::path::{Path, PathBuf};

use jetdb::log::{self, LogScan, LogTail, Record};
use jetdb::manifest::Manifest;
use jetdb::{ErrorKind, Instance, JetError, Lgpos, RestoreOptions, RestorePoint, RestoreSummary};

use super::backups::{Snapshot, dir_path};
use super::{Check, Sim};
use crate::clock::EPOCH_MILLIS;
use crate::coverage::Mark;
use crate::oracle::{Oracle, Violation};
use crate::workload::{BACKUP_DIRS, LiveDamage, PointKind};

/// A backup set the simulator knows exactly.
struct Chain {
    manifest: Manifest,
    /// Each backup of the manifest, in order: the model's last commit when it began.
    points: Vec<u64>,
}

/// A commit record found in a log.
#[derive(Clone, Copy, Debug)]
struct Found {
    /// Where the record begins.
    at: Lgpos,
    /// Its time stamp.
    millis: u64,
    /// The engine's sequence number.
    sequence: u64,
    /// A table's creation (transaction 0): made before any commit of the model.
    table: bool,
}

/// The commit records of a set's logs.
struct SetScan {
    commits: Vec<Found>,
    /// Just after the last whole record of the last log.
    end: Lgpos,
    /// Each generation, and the offset just after its last whole record.
    ends: Vec<(u32, u32)>,
}

/// What a restore may answer: the state after a commit of the model, and the refusals
/// allowed.
#[derive(Debug)]
pub(super) struct Allowed {
    state: Option<u64>,
    /// The state after any commit from this one to `state` will do as well: commits a
    /// recovery left that the engine may never have logged ([`crate::model::Model::earliest_alike`]).
    earliest: u64,
    errors: Vec<ErrorKind>,
}

impl Allowed {
    fn state(seq: u64) -> Allowed {
        Allowed {
            state: Some(seq),
            earliest: seq,
            errors: Vec::new(),
        }
    }

    fn refused(kind: ErrorKind) -> Allowed {
        Allowed {
            state: None,
            earliest: 0,
            errors: vec![kind],
        }
    }
}

/// One live log file of the copy a roll forward reads.
struct LiveFile {
    name: String,
    /// Its generation by its name (`None`: the current file, `edb.log`).
    archived: Option<u32>,
    /// The generation its header names.
    generation: u32,
    scan: LogScan,
}

/// What the scanned copy of the live logs says a roll forward must do.
struct LiveFacts {
    files: Vec<LiveFile>,
    /// The generations after the set's last do not all follow it: `JET_errMissingCurrentLogFiles`.
    gap: bool,
    /// The live generations after the set's, first and last.
    range: Option<(u32, u32)>,
    /// The last commit record in them.
    last: Option<Found>,
}

/// The commit records of a scanned log file.
fn commits_of(scan: &LogScan) -> impl Iterator<Item = Found> + '_ {
    scan.records.iter().filter_map(|(at, record)| match record {
        Record::Commit(c) => Some(Found {
            at: *at,
            millis: c.millis,
            sequence: c.sequence,
            table: c.transaction == 0,
        }),
        _ => None,
    })
}

/// The highest durable mark of the file's valid segments: every segment below it is known
/// durable, and damage there is corruption, never a torn tail.
fn highest_mark(bytes: &[u8]) -> u32 {
    bytes
        .chunks_exact(log::SEGMENT_SIZE)
        .skip(1)
        .filter(|seg| {
            u32::from_le_bytes(seg[..4].try_into().expect("4 bytes")) == crc32fast::hash(&seg[4..])
        })
        .map(|seg| u32::from_le_bytes(seg[16..20].try_into().expect("4 bytes")))
        .max()
        .unwrap_or(0)
}

/// Makes a log header's checksum whole again after a change to it.
fn reseal_header(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[4..log::SEGMENT_SIZE]);
    bytes[..4].copy_from_slice(&crc.to_le_bytes());
}

impl Sim {
    /// The directory a point step names: `dir`, or (≥ [`BACKUP_DIRS`]) the last one a backup
    /// succeeded in.
    fn point_dir(&self, dir: u8) -> Option<usize> {
        if dir < BACKUP_DIRS {
            Some(usize::from(dir))
        } else {
            self.backups.last_success
        }
    }

    /// The directory a point step names and its chain, counted as an operation, if the step
    /// can run (with `live`, the live logs must be fit to copy too); else it says why not.
    fn point_target(&mut self, dir: u8, live: bool) -> Result<Option<(usize, Chain)>, Violation> {
        let Some(dir) = self.point_dir(dir) else {
            self.say("skipped: no backup has succeeded");
            return Ok(None);
        };
        if live && let Some(why) = self.live_logs_unsure() {
            self.say(format!("skipped: {why}"));
            return Ok(None);
        }
        let Some(chain) = self.known_chain(dir)? else {
            self.say(format!(
                "skipped: bk{dir} holds no set the simulator knows exactly"
            ));
            return Ok(None);
        };
        self.operations += 1;
        Ok(Some((dir, chain)))
    }

    /// The set in `dir`, if the simulator knows it exactly (see the module's doc).
    fn known_chain(&mut self, dir: usize) -> Result<Option<Chain>, Violation> {
        let state = &self.backups.dirs[dir];
        if state.allowed.len() != 1
            || state.damaged
            || state.tampered.is_some()
            || state.forged.is_some()
        {
            return Ok(None);
        }
        let Some(want) = state.allowed[0].clone() else {
            return Ok(None);
        };
        // (Cached by the directory's bytes: a set that does not restore whole is the backup
        // oracle's to judge.)
        self.check_restore(dir, "before a restore to a point")?;
        if !matches!(&self.backups.dirs[dir].restored, Some((_, Ok(got))) if *got == want) {
            return Ok(None);
        }
        self.vfs.suspend_faults(true);
        let manifest = self.manifest_of(dir);
        self.vfs.suspend_faults(false);
        let Ok(Some(manifest)) = manifest else {
            return Ok(None);
        };
        let mut points = Vec::new();
        for backup in &manifest.backups {
            let Some((seq, snapshot)) = self.backups.points.get(&backup.millis) else {
                return Ok(None);
            };
            // A crash that took back commits before a backup's point (one whose begin the
            // same step's crash met) leaves a history the point no longer names.
            if *seq > self.model.last() || self.model.state_at(*seq) != *snapshot {
                return Ok(None);
            }
            points.push(*seq);
        }
        if points
            .last()
            .is_none_or(|&seq| self.model.state_at(seq) != want)
        {
            return Ok(None);
        }
        Ok(Some(Chain { manifest, points }))
    }

    /// The model's commit a commit record names (by its time), or a violation of `oracle` if
    /// none returned then: the engine's stamp is not the clock the model read.
    fn model_commit(&self, found: &Found, oracle: Oracle) -> Result<u64, Violation> {
        if found.table {
            return Ok(0);
        }
        self.model.commit_with_millis(found.millis).ok_or_else(|| {
            self.violation(
                oracle,
                format!(
                    "the commit record at {} (commit {}) is stamped {} ms, when no commit of the model returned",
                    found.at, found.sequence, found.millis
                ),
            )
        })
    }

    /// The commit records of `dir`'s set, every one checked to name a commit of the model.
    fn scan_set(&self, dir: usize, m: &Manifest) -> Result<Option<SetScan>, Violation> {
        let set = m.set_dir(&dir_path(dir));
        let mut commits = Vec::new();
        let mut end = Lgpos::default();
        let mut ends = Vec::new();
        for entry in &m.logs {
            let name = m.log_name(entry.generation);
            let Some(bytes) = self.vfs.content(&set.join(&name)) else {
                return Ok(None);
            };
            let Ok(scan) = log::scan(&bytes, &name) else {
                return Ok(None);
            };
            for found in commits_of(&scan) {
                self.model_commit(&found, Oracle::RestorePoint)?;
                commits.push(found);
            }
            end = scan.end;
            ends.push((entry.generation, scan.end.offset));
        }
        if ends.is_empty() {
            return Ok(None);
        }
        Ok(Some(SetScan { commits, end, ends }))
    }

    /// When the set's first log generation was created.
    fn first_created(&self, dir: usize, m: &Manifest) -> Option<u64> {
        let first = m.logs.first()?.generation;
        let name = m.log_name(first);
        let bytes = self.vfs.content(&m.set_dir(&dir_path(dir)).join(&name))?;
        let mut scanner = log::LogScanner::new(&name);
        scanner
            .feed(&bytes[..bytes.len().min(log::SEGMENT_SIZE)])
            .ok()?;
        scanner.header().map(|h| h.created_millis)
    }

    /// What a restore to time `t` may give: the set covers the full backup's point (commit
    /// `full`, returned at `lo`) to the last backup's begin (`hi`), and with a roll forward up
    /// to the last live commit (`live_last`); the first log was created at `created`.
    pub(super) fn time_allowed(
        &self,
        t: u64,
        (lo, hi, full, created): (u64, u64, u64, u64),
        live_last: Option<u64>,
    ) -> Allowed {
        let seq = self.model.last_at(t);
        // A commit past `t` in the logs read shows none before it is missing.
        let covered = t < hi || live_last.is_some_and(|last| t < last);
        if !covered {
            return Allowed::refused(ErrorKind::EndingRestoreLogTooLow);
        }
        if t < lo.min(created) {
            return Allowed::refused(ErrorKind::StartingRestoreLogTooHigh);
        }
        // Before the full backup's point, or at it with its commit before the logs begin and
        // `t` before they do: nothing in the logs shows where `t` falls.
        let may_refuse = t < lo || (seq <= full && t < created);
        Allowed {
            state: Some(seq),
            // (The last commit at or before `t` may be one a recovery left that the engine's
            // logs need not hold: then the engine lands on an earlier one.)
            earliest: self.model.earliest_alike(seq),
            errors: if may_refuse {
                vec![ErrorKind::StartingRestoreLogTooHigh]
            } else {
                Vec::new()
            },
        }
    }

    /// What a restore to log position `p` may give.
    fn lgpos_allowed(
        &self,
        p: Lgpos,
        scan: &SetScan,
        full_sequence: u64,
        full: u64,
    ) -> Result<Allowed, Violation> {
        let landing = scan.commits.iter().rev().find(|f| f.at <= p);
        let past = scan.commits.iter().any(|f| f.at > p);
        if !past && p > scan.end {
            return Ok(Allowed::refused(ErrorKind::EndingRestoreLogTooLow));
        }
        Ok(match landing {
            Some(f) if f.sequence >= full_sequence => {
                Allowed::state(self.model_commit(f, Oracle::RestorePoint)?)
            }
            Some(_) => Allowed::refused(ErrorKind::StartingRestoreLogTooHigh),
            // Before every commit of the logs: the full backup's point, if the logs begin just
            // after it, else refused.
            None => Allowed {
                state: Some(full),
                earliest: full,
                errors: vec![ErrorKind::StartingRestoreLogTooHigh],
            },
        })
    }

    /// Restores `dir` with `options` into a fresh place, faults and crashes held, and reads it
    /// back; the place is removed after. A refusal must leave the place empty.
    fn restore_point(
        &mut self,
        dir: usize,
        options: &RestoreOptions,
        oracle: Oracle,
    ) -> Result<Result<(RestoreSummary, Snapshot), JetError>, Violation> {
        self.backups.restores += 1;
        let place = PathBuf::from(format!("rst{}", self.backups.restores));
        let params = self.params_in(&place);
        let from = dir_path(dir);
        self.vfs.suspend_faults(true);
        let result = self.restore_point_in(&from, params, options, oracle);
        self.remove_place(&place);
        self.vfs.suspend_faults(false);
        result
    }

    fn restore_point_in(
        &mut self,
        from: &Path,
        params: jetdb::InstanceParams,
        options: &RestoreOptions,
        oracle: Oracle,
    ) -> Result<Result<(RestoreSummary, Snapshot), JetError>, Violation> {
        let place = params.log_path.clone();
        let inst = Instance::new(self.env.clone(), params);
        let mut statuses = Vec::new();
        let mut status = |s: &jetdb::Status| {
            statuses.push(*s);
            Ok(())
        };
        self.take_events();
        let result = inst.restore_with(from, options, Some(&mut status));
        let events = self.take_events();
        match result {
            Err(e) => {
                // (What a failure reports is the same whatever was asked.)
                self.check_restore_report(from, None, &Err(e.clone()), &statuses, &events, &[])?;
                let left: Vec<PathBuf> = self.vfs.crcs_under(&place).into_keys().collect();
                if !left.is_empty() {
                    return Err(self.violation(
                        oracle,
                        format!(
                            "a restore of {} with {options:?} that failed ({e}) left {left:?}",
                            from.display()
                        ),
                    ));
                }
                Ok(Err(e))
            }
            Ok(summary) => {
                let got = self.read_restored(&inst, from)?;
                Ok(Ok((summary, got)))
            }
        }
    }

    /// Judges a restore's answer against what is allowed; whether it restored.
    pub(super) fn judge_point(
        &mut self,
        oracle: Oracle,
        what: &str,
        got: Result<(RestoreSummary, Snapshot), JetError>,
        allowed: &Allowed,
    ) -> Result<bool, Violation> {
        match got {
            Ok((summary, state)) => {
                let Some(seq) = allowed.state else {
                    return Err(self.violation(
                        oracle,
                        format!(
                            "{what} restored ({} records, commit {}) though it must be refused with {:?}",
                            state.len(),
                            summary.sequence,
                            allowed.errors
                        ),
                    ));
                };
                let want = self.model.state_at(seq);
                let seq = (allowed.earliest..=seq)
                    .rev()
                    .find(|&s| self.model.state_at(s) == state)
                    .unwrap_or(seq);
                if state != want && self.model.state_at(seq) != state {
                    let differ: Vec<String> = super::backups::differing(&want, &state);
                    let (expected, actual) = super::backups::snapshot_diff(&want, &state);
                    return Err(self
                        .violation(
                            oracle,
                            format!(
                                "{what} differs from the model's state after commit {seq} (the model's last is {}): {}",
                                self.model.last(),
                                differ.join(", ")
                            ),
                        )
                        .with_values(expected, actual));
                }
                // What it says it landed on is the commit it landed on (or one that leaves
                // the same state: see `roll_forward_from`).
                let named = summary
                    .commit_millis
                    .map(|m| (m, self.model.commit_with_millis(m)));
                let want = self.model.millis_of(seq);
                if let (Some((millis, other)), Some(want)) = (named, want)
                    && millis != want
                    && other.is_none_or(|other| self.model.state_at(other) != state)
                {
                    return Err(self.violation(
                        Oracle::Report,
                        format!(
                            "{what} says it landed on a commit logged at {millis} ms; the commit it restored returned at {want} ms"
                        ),
                    ));
                }
                self.say(format!(
                    "{what}: restored commit {seq}, {} records",
                    state.len()
                ));
                Ok(true)
            }
            Err(e) if allowed.errors.contains(&e.kind()) => {
                self.say(format!("{what}: refused: {}", super::error_outcome(&e)));
                Ok(false)
            }
            Err(e) => Err(self.violation(
                oracle,
                format!(
                    "{what} was refused with {e}; it must give the state after commit {:?}{}",
                    allowed.state,
                    if allowed.errors.is_empty() {
                        String::new()
                    } else {
                        format!(" or be refused with {:?}", allowed.errors)
                    }
                ),
            )),
        }
    }

    /// A `RestoreTo` step.
    pub(super) fn restore_to(&mut self, dir: u8, point: PointKind, pick: u64) -> Check {
        let Some((dir, chain)) = self.point_target(dir, false)? else {
            return Ok(());
        };
        let m = &chain.manifest;
        let held = m.backups.len();
        let full = chain.points[0];
        let last = chain.points[held - 1];
        let lo = self.model.millis_of(full).unwrap_or(EPOCH_MILLIS);
        let hi = m.last().millis;
        self.vfs.suspend_faults(true);
        let created = self.first_created(dir, m);
        let scan = self.scan_set(dir, m);
        self.vfs.suspend_faults(false);
        let (Some(created), Some(scan)) = (created, scan?) else {
            self.say(format!("skipped: bk{dir}'s logs do not scan"));
            return Ok(());
        };
        let span = (lo, hi, full, created);
        let (low, high) = m.log_range();
        let until = |point| RestoreOptions {
            until: Some(point),
            ..RestoreOptions::default()
        };
        let (options, allowed, mark) = match point {
            PointKind::Backup => {
                let k = (pick % held as u64) as usize;
                let options = RestoreOptions {
                    backups: Some(k),
                    ..RestoreOptions::default()
                };
                (
                    options,
                    Allowed::state(chain.points[k]),
                    Mark::RestoredToChosenBackup,
                )
            }
            PointKind::Time => {
                // Half the time a commit's own time (or just after it), one with a later
                // commit in the set, so that landing one commit off shows; else any.
                let at = (last > full)
                    .then(|| self.model.millis_of(full + (pick >> 1) % (last - full)))
                    .flatten();
                let t = match at {
                    Some(at) if pick & 1 == 0 => (at + (pick >> 40) % 3).min(hi - 1),
                    _ => lo + (pick >> 1) % (hi - lo).max(1),
                };
                let allowed = self.time_allowed(t, span, None);
                (until(RestorePoint::Time(t)), allowed, Mark::RestoredToTime)
            }
            PointKind::Lgpos => {
                // A commit's own position (with a later one in the logs, if any), or any
                // position among a generation's records (or a little past them).
                let mut eligible: Vec<&Found> = scan
                    .commits
                    .iter()
                    .filter(|f| f.sequence >= m.backups[0].sequence)
                    .collect();
                if eligible.len() > 1 {
                    eligible.pop();
                }
                let p = if pick & 1 == 0 && !eligible.is_empty() {
                    eligible[((pick >> 1) % eligible.len() as u64) as usize].at
                } else {
                    let (g, end) = scan.ends[((pick >> 1) % scan.ends.len() as u64) as usize];
                    Lgpos {
                        generation: g,
                        offset: ((pick >> 24) % (u64::from(end) + 64)) as u32,
                    }
                };
                let allowed = self.lgpos_allowed(p, &scan, m.backups[0].sequence, full)?;
                (
                    until(RestorePoint::Lgpos(p)),
                    allowed,
                    Mark::RestoredToLgpos,
                )
            }
            PointKind::Outside => {
                let r = pick >> 8;
                let (options, kind) = match (pick >> 1) % 5 {
                    0 => (
                        until(RestorePoint::Time(hi + r % 1000)),
                        ErrorKind::EndingRestoreLogTooLow,
                    ),
                    1 => (
                        until(RestorePoint::Time(EPOCH_MILLIS - 1 - r % 1000)),
                        ErrorKind::StartingRestoreLogTooHigh,
                    ),
                    2 => (
                        until(RestorePoint::Lgpos(Lgpos {
                            generation: high + 1 + (r % 3) as u32,
                            offset: ((r >> 8) % 4096) as u32,
                        })),
                        ErrorKind::EndingRestoreLogTooLow,
                    ),
                    3 => (
                        until(RestorePoint::Lgpos(Lgpos {
                            generation: low.saturating_sub(1),
                            offset: ((r >> 8) % 4096) as u32,
                        })),
                        ErrorKind::StartingRestoreLogTooHigh,
                    ),
                    _ => (
                        RestoreOptions {
                            backups: Some(held + (r % 2) as usize),
                            ..RestoreOptions::default()
                        },
                        ErrorKind::InvalidParameter,
                    ),
                };
                (options, Allowed::refused(kind), Mark::RestorePointRefused)
            }
        };
        let what = format!("bk{dir} restored with {options:?}");
        self.event(format_args!("{what}: allowed {allowed:?}"));
        let got = self.restore_point(dir, &options, Oracle::RestorePoint)?;
        let restored = self.judge_point(Oracle::RestorePoint, &what, got, &allowed)?;
        // (A point outside is refused; one inside may be, at the edges the logs cannot tell.)
        self.coverage.hit(if restored {
            mark
        } else {
            Mark::RestorePointRefused
        });
        Ok(())
    }

    /// Why the live logs cannot be judged now, if they cannot: tampered with, rotten, or
    /// holding what a misdirected write left.
    pub(super) fn live_logs_unsure(&self) -> Option<&'static str> {
        if self.live_tamper_in_effect(None).is_some() {
            return Some("the live logs are tampered with");
        }
        let logs = self.vfs.files_in(crate::vfs::Zone::Log);
        if self.damaged_logs.iter().any(|p| logs.contains(p)) {
            return Some("a live log generation is rotten");
        }
        if self.vfs.misdirected_file_present() || self.vfs.stray_misdirect() {
            return Some("a misdirected log write left its copy");
        }
        None
    }

    /// Copies the live instance's log files, as reads see them, into `copy`.
    fn copy_live_logs(&self, copy: &Path) {
        self.vfs.mkdir_durable(copy);
        for (path, bytes) in self.vfs.files_under(&self.params.log_path) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name == log::current_name("edb") || log::parse_archive_name("edb", name).is_some() {
                self.vfs.put_at_rest(&copy.join(name), &bytes);
            }
        }
    }

    /// The live log files in `copy`, scanned, archived ones by generation and the current
    /// file last; `None` if one does not scan (its header damaged).
    fn scan_live(&self, copy: &Path, set_high: u32) -> Option<LiveFacts> {
        let mut files = Vec::new();
        for (path, bytes) in self.vfs.files_under(copy) {
            let name = path.file_name()?.to_str()?.to_owned();
            let archived = log::parse_archive_name("edb", &name);
            let scan = log::scan(&bytes, &name).ok()?;
            files.push(LiveFile {
                name,
                archived,
                generation: scan.header.generation,
                scan,
            });
        }
        files.sort_by_key(|f| (f.archived.is_none(), f.archived));
        let after: Vec<&LiveFile> = files.iter().filter(|f| f.generation > set_high).collect();
        let gap = after.is_empty()
            || after
                .iter()
                .zip(set_high + 1..)
                .any(|(f, g)| f.generation != g);
        let range = after
            .first()
            .zip(after.last())
            .map(|(a, b)| (a.generation, b.generation));
        let last = after.iter().flat_map(|f| commits_of(&f.scan)).last();
        Some(LiveFacts {
            files,
            gap,
            range,
            last,
        })
    }

    /// A `RollForward` step.
    pub(super) fn roll_forward(
        &mut self,
        dir: u8,
        damage: LiveDamage,
        until: bool,
        pick: u64,
    ) -> Check {
        let Some((dir, chain)) = self.point_target(dir, true)? else {
            return Ok(());
        };
        self.backups.restores += 1;
        let copy = PathBuf::from(format!("rfl{}", self.backups.restores));
        self.vfs.suspend_faults(true);
        let result = self.roll_forward_from(dir, &chain, &copy, damage, until, pick);
        self.remove_place(&copy);
        self.vfs.suspend_faults(false);
        result
    }

    fn roll_forward_from(
        &mut self,
        dir: usize,
        chain: &Chain,
        copy: &Path,
        damage: LiveDamage,
        until: bool,
        pick: u64,
    ) -> Check {
        let m = &chain.manifest;
        let set_high = m.log_range().1;
        self.copy_live_logs(copy);
        let Some(facts) = self.scan_live(copy, set_high) else {
            self.say("skipped: a live log's header does not read");
            return Ok(());
        };
        // Undamaged live logs must be whole: archived generations ended, nothing durable
        // damaged. (If not, it is the live instance that is wrong: a roll forward refusing
        // them is right.)
        let broken = facts.files.iter().any(|f| {
            matches!(f.scan.tail, LogTail::Corrupt { .. })
                || (f.archived.is_some()
                    && f.generation > set_high
                    && f.scan.tail != LogTail::Ended)
        });
        if broken {
            self.say("skipped: the live logs are not whole");
            return Ok(());
        }
        for f in &facts.files {
            let last = commits_of(&f.scan).last();
            self.event(format_args!(
                "live {} (generation {:#X}): {:?}, last commit {:?}",
                f.name, f.generation, f.scan.tail, last
            ));
        }
        let backup_point = *chain.points.last().expect("a chain holds its full backup");
        let landing = match &facts.last {
            Some(found) => self.model_commit(found, Oracle::RollForward)?,
            None => backup_point,
        };
        // The live logs hold every durable commit: what a roll forward finds there is never
        // less than the durable prefix (unless generations after the set are gone).
        // (A prefix may end in commits that changed nothing — an ambiguous delete of an absent
        // key, kept by the model because the state after recovery is the same with it — which
        // the logs need not hold: the state is what counts.)
        let floor = self.model.durable().max(backup_point);
        let short = landing < floor && self.model.state_at(landing) != self.model.state_at(floor);
        if !facts.gap && (short || landing > self.model.last()) {
            return Err(self.violation(
                Oracle::RollForward,
                format!(
                    "the live logs after bk{dir}'s set end at commit {landing}, outside {floor}..={} (durable {}, the backup's point {backup_point})",
                    self.model.last(),
                    self.model.durable()
                ),
            ));
        }
        let damaged = self.damage_live_copy(copy, &facts, set_high, damage, pick);
        let mut options = RestoreOptions {
            roll_forward: Some(copy.to_path_buf()),
            ..RestoreOptions::default()
        };
        let (allowed, mark, what) = match &damaged {
            Some((kind, mark, what)) => (Allowed::refused(*kind), *mark, what.clone()),
            None if facts.gap => (
                Allowed::refused(ErrorKind::MissingCurrentLogFiles),
                Mark::RollForwardLogsGone,
                format!(
                    "live logs {:?}, the set ending at {set_high:#X}",
                    facts.range
                ),
            ),
            None if until => {
                let full = chain.points[0];
                let lo = self.model.millis_of(full).unwrap_or(EPOCH_MILLIS);
                let hi = m.last().millis;
                let Some(created) = self.first_created(dir, m) else {
                    self.say("skipped: the set's first log does not read");
                    return Ok(());
                };
                let live_last = facts.last.map(|f| f.millis);
                // Mostly among the live logs' commits (and a little past the last), else in
                // the set.
                let t = match live_last {
                    Some(last) if last >= hi && !pick.is_multiple_of(4) => {
                        hi + (pick >> 2) % (last - hi + 3)
                    }
                    _ => lo + (pick >> 2) % (hi - lo + 3),
                };
                options.until = Some(RestorePoint::Time(t));
                let allowed = self.time_allowed(t, (lo, hi, full, created), live_last);
                (allowed, Mark::RolledForwardToTime, format!("until {t} ms"))
            }
            None => (
                Allowed::state(landing),
                Mark::RolledForward,
                "undamaged".into(),
            ),
        };
        let what = format!("bk{dir} rolled forward through the live logs ({what})");
        self.event(format_args!("{what}: allowed {allowed:?}"));
        let got = self.restore_point(dir, &options, Oracle::RollForward)?;
        let summary = got.as_ref().ok().map(|(s, _)| s.rolled_forward);
        let restored = self.judge_point(Oracle::RollForward, &what, got, &allowed)?;
        if restored && damaged.is_none() && options.until.is_none() && summary != Some(facts.range)
        {
            return Err(self.violation(
                Oracle::Report,
                format!(
                    "{what} reports rolling forward through {:?}; the live generations after the set are {:?}",
                    summary.flatten(),
                    facts.range
                ),
            ));
        }
        // (Damaged or missing live logs are refused; a time among them may be, past their end.)
        if restored || options.until.is_none() {
            self.coverage.hit(mark);
        } else {
            self.coverage.hit(Mark::RestorePointRefused);
        }
        Ok(())
    }

    /// Damages the copy of the live logs as `damage` says: the error a roll forward must
    /// refuse it with, the mark that refusal hits, and what was done; `None` if there is
    /// nothing to damage so (the copy stays whole).
    fn damage_live_copy(
        &mut self,
        copy: &Path,
        facts: &LiveFacts,
        set_high: u32,
        damage: LiveDamage,
        pick: u64,
    ) -> Option<(ErrorKind, Mark, String)> {
        use ErrorKind::*;
        let choose = |files: &[&LiveFile]| -> Option<(PathBuf, Vec<u8>, String)> {
            let f = files.get((pick % files.len().max(1) as u64) as usize)?;
            let path = copy.join(&f.name);
            let bytes = self.vfs.content(&path)?;
            Some((path, bytes, f.name.clone()))
        };
        let after: Vec<&LiveFile> = facts
            .files
            .iter()
            .filter(|f| f.generation > set_high)
            .collect();
        // A gap already there is met first by every damage the first pass over the headers
        // does not see.
        let gap_first = |kind| {
            if facts.gap {
                MissingCurrentLogFiles
            } else {
                kind
            }
        };
        let r = pick >> 16;
        match damage {
            LiveDamage::None => None,
            LiveDamage::Remove => {
                let archived: Vec<&LiveFile> = after
                    .iter()
                    .copied()
                    .filter(|f| f.archived.is_some())
                    .collect();
                let victims = if archived.is_empty() { after } else { archived };
                let (path, _, name) = choose(&victims)?;
                self.vfs.remove_at_rest(&path);
                Some((
                    MissingCurrentLogFiles,
                    Mark::RollForwardGapRefused,
                    format!("{name} removed"),
                ))
            }
            LiveDamage::Flip => {
                // A segment a later one vouches for: known durable.
                let vouched: Vec<&LiveFile> = after
                    .iter()
                    .copied()
                    .filter(|f| {
                        self.vfs
                            .content(&copy.join(&f.name))
                            .is_some_and(|b| highest_mark(&b) >= 2)
                    })
                    .collect();
                let (path, mut bytes, name) = choose(&vouched)?;
                let below = highest_mark(&bytes);
                let segment = 1 + (r % u64::from(below - 1)) as usize;
                let at =
                    segment * log::SEGMENT_SIZE + ((r >> 16) % log::SEGMENT_SIZE as u64) as usize;
                bytes[at] ^= 1 << ((r >> 32) % 8);
                self.vfs.put_at_rest(&path, &bytes);
                Some((
                    gap_first(LogCorruptDuringHardRecovery),
                    Mark::RollForwardCorruptRefused,
                    format!("{name}: a bit of durable segment {segment} flipped"),
                ))
            }
            LiveDamage::CutShort => {
                let archived: Vec<&LiveFile> = after
                    .iter()
                    .copied()
                    .filter(|f| f.archived.is_some())
                    .collect();
                let (path, mut bytes, name) = choose(&archived)?;
                let f = archived.iter().find(|f| f.name == name)?;
                let from = (f.scan.segments_used as usize * log::SEGMENT_SIZE).min(bytes.len());
                bytes[from..].fill(0);
                self.vfs.put_at_rest(&path, &bytes);
                Some((
                    gap_first(LogTornWriteDuringHardRecovery),
                    Mark::RollForwardTornRefused,
                    format!("{name} cut short at segment {}", f.scan.segments_used),
                ))
            }
            LiveDamage::Foreign => {
                let all: Vec<&LiveFile> = facts.files.iter().collect();
                let (path, _, name) = choose(&all)?;
                let alien = self.alien_log(1 + (r % 4) as u32)?;
                // (Making the other instance logs its events: not this run's.)
                self.take_events();
                self.vfs.put_at_rest(&path, &alien);
                Some((
                    ExistingLogFileHasBadSignature,
                    Mark::RollForwardForeignRefused,
                    format!("{name} replaced by another instance's log"),
                ))
            }
            LiveDamage::PrevTime => {
                let (path, mut bytes, name) = choose(&after)?;
                if bytes.len() < log::SEGMENT_SIZE {
                    return None;
                }
                // The header's previous-generation creation time (bytes 64..72).
                bytes[64 + (r % 8) as usize] ^= 1 << ((r >> 8) % 8);
                reseal_header(&mut bytes);
                self.vfs.put_at_rest(&path, &bytes);
                Some((
                    gap_first(ExistingLogFileIsNotContiguous),
                    Mark::RollForwardNotContiguousRefused,
                    format!("{name}: its previous generation's time changed"),
                ))
            }
            LiveDamage::Rename => {
                let archived: Vec<&LiveFile> = facts
                    .files
                    .iter()
                    .filter(|f| f.archived.is_some())
                    .collect();
                let (path, bytes, name) = choose(&archived)?;
                let top = facts.files.iter().map(|f| f.generation).max()?;
                let to = copy.join(log::archive_name("edb", top + 1 + (r % 3) as u32));
                self.vfs.remove_at_rest(&path);
                self.vfs.put_at_rest(&to, &bytes);
                Some((
                    ExistingLogFileIsNotContiguous,
                    Mark::RollForwardNotContiguousRefused,
                    format!("{name} renamed {}", to.display()),
                ))
            }
        }
    }
}
