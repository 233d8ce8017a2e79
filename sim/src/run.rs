//! One run: the engine over the simulated disk and clock, driven by a plan, checked against
//! the model after every step, and ended by a fault-free phase that must recover and agree.
//!
//! The run touches the engine only through its public API and the `Vfs`/`Clock`/`Entropy`
//! seams. It is single-threaded and a pure function of its plan: the same plan gives the same
//! trace hash.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetdb::{
    CommitMode, Env, ErrorKind, Instance, InstanceParams, InstanceStats, JetError, SeededEntropy,
    Session, Table,
};

use crate::atlas;
use crate::clock::SimClock;
use crate::config::{Config, CorruptZone};
use crate::coverage::{Coverage, Mark};
use crate::model::{
    Key, Model, Outcome, Val, key_bytes, parse_key, value_bytes, value_matches, value_of,
};
use crate::oracle::{IO_ERRORS, LOG_ERRORS, Oracle, PAGE_ERRORS, Violation, surfaces_as};
use crate::sabotage::Sabotage;
use crate::timeline::{Lane, Timeline};
use crate::trace::{Keep, Trace};
use crate::vfs::{DiskStats, IoFault, SimVfs, Zone};
use crate::workload::{Plan, Step};

mod backups;
mod external;
mod points;
mod report;
mod stream;
mod tamper;
mod timeline;

use backups::{listed, model_value};

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The broken promise, if any.
    pub violation: Option<Violation>,
    /// The hash of the whole trace: the same plan gives the same hash.
    pub trace_hash: u64,
    /// The trace (its text only if asked for).
    pub trace: Trace,
    /// The marks the run reached.
    pub coverage: Coverage,
    /// Steps executed.
    pub steps: u64,
    /// Engine calls made.
    pub operations: u64,
    /// Commits acknowledged.
    pub commits: u64,
    /// Crashes and restarts.
    pub restarts: u64,
    /// Simulated milliseconds.
    pub sim_millis: u64,
    /// The run stopped early: detected corruption left nothing to recover, as documented.
    pub ended_by_corruption: Option<String>,
    /// The disk at the end (or at the violation), if asked for: (path, content).
    pub disk: Vec<(PathBuf, Vec<u8>)>,
    /// What the disk did over the run (I/O points, faults fired…).
    pub disk_stats: DiskStats,
    /// The run's timeline, if asked for ([`RunOptions::timeline`]).
    pub timeline: Option<Timeline>,
}

/// Options of a run besides its plan.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// What the trace keeps.
    pub keep: Keep,
    /// Print events as they happen.
    pub echo: bool,
    /// Keep the disk's files at the end, in [`RunReport::disk`].
    pub keep_disk: bool,
    /// Record the run's timeline, in [`RunReport::timeline`] (the trace hash stays the same).
    pub timeline: bool,
}

/// Runs `plan` and checks every oracle. Never panics: a panic in the engine is a violation.
///
/// # Panics
///
/// If the plan's configuration is invalid ([`Config::validate`]): check plans from files first.
pub fn run(plan: &Plan, options: RunOptions) -> RunReport {
    if let Err(why) = plan.config.validate() {
        panic!("an invalid plan: {why}");
    }
    let mut trace = Trace::new(options.keep, options.echo);
    if options.timeline {
        trace.record_timeline();
        if let Some(t) = trace.timeline() {
            t.title = format!("seed {}", plan.config.seed);
            t.config = plan.config.to_string();
        }
    }
    let mut sim = Sim::new(plan, trace);
    let result = panic::catch_unwind(AssertUnwindSafe(|| sim.execute()));
    let violation = match result {
        Ok(Ok(())) => None,
        Ok(Err(v)) => Some(v),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".into());
            Some(Violation::new(Oracle::Panic, sim.step, message))
        }
    };
    if let Some(v) = &violation {
        sim.event(format_args!("VIOLATION {v}"));
        // The session whose read or write a session's oracle judged.
        let session = match (v.oracle, sim.steps.get(v.step)) {
            (Oracle::SnapshotRead | Oracle::WriteConflict, Some(step))
            | (Oracle::WrongData, Some(step @ (Step::Get { .. } | Step::Scan { .. }))) => {
                step_session(step)
            }
            _ => None,
        }
        // (As the run maps a step's session onto the sessions it has.)
        .map(|s| usize::from(s) % (sim.config.sessions as usize).max(1));
        sim.record(|t| t.violation(v, session));
    }
    let disk = if options.keep_disk {
        sim.vfs.files()
    } else {
        Vec::new()
    };
    sim.sessions.clear();
    sim.instance = None;
    let sim_millis = sim.clock.elapsed_millis();
    let mut trace = sim.vfs.take_trace();
    let timeline = trace.take_timeline().map(|mut t| {
        t.finish();
        t
    });
    RunReport {
        seed: plan.config.seed,
        violation,
        trace_hash: trace.hash(),
        trace,
        coverage: sim.coverage,
        steps: sim.step as u64,
        operations: sim.operations,
        commits: sim.commits,
        restarts: sim.restarts,
        sim_millis,
        ended_by_corruption: sim.ended_by_corruption,
        disk,
        disk_stats: sim.vfs.stats(),
        timeline,
    }
}

type Check = Result<(), Violation>;

struct Sim {
    config: Config,
    steps: Vec<Step>,
    vfs: SimVfs,
    clock: Arc<SimClock>,
    env: Env,
    params: InstanceParams,
    instance: Option<Instance>,
    sessions: Vec<Session>,
    tables: Vec<Table>,
    model: Model,
    coverage: Coverage,
    step: usize,
    operations: u64,
    commits: u64,
    restarts: u64,
    /// The engine's counters after the last step, for marks.
    stats: InstanceStats,
    checkpoint: Option<jetdb::Lgpos>,
    /// Whether a crash armed by a step loses power when it fires.
    armed_power_loss: bool,
    /// Corruption to plant at the next restart, and what was planted.
    corrupt_queue: Vec<(CorruptZone, u64)>,
    corrupt_spent: BTreeSet<CorruptZone>,
    damaged: BTreeSet<CorruptZone>,
    misdirects: u32,
    /// The disk's log I/O count when the current step began.
    log_io_before: u64,
    /// The instance's incarnation (one per init) and the database write faults fired when
    /// the current step began.
    incarnation: u64,
    database_faults_before: (u64, u64),
    /// Lost and misdirected database writes fired before the current step.
    database_damage_before: u64,
    /// The model's last commit when the current step began.
    last_before_step: u64,
    /// Log files with planted damage.
    damaged_logs: Vec<PathBuf>,
    /// Sessions whose engine transaction a [`Sabotage::LateSnapshot`] has not begun yet.
    late: Vec<bool>,
    /// Faults that fired since the instance was last initialised (for coverage marks).
    faults_seen: BTreeMap<IoFault, u64>,
    /// Faults that fired and that the next successful recovery has survived.
    to_survive: BTreeSet<IoFault>,
    ended_by_corruption: Option<String>,
    /// What the current step returned, for its trace line (`None`: plain `ok`).
    outcome: Option<String>,
    /// Log sets made other than they claim.
    tampering: tamper::Tampering,
    /// Backup directories, the running backup job, truncation bounds.
    backups: backups::Backups,
    /// The external backup in flight, and the set it extends.
    externals: external::Externals,
    /// What the instances of the run logged (`InstanceParams::event_log`), not yet judged.
    events: report::EventSink,
}

fn table_name(t: usize) -> String {
    format!("t{t}")
}

impl Sim {
    fn new(plan: &Plan, trace: Trace) -> Sim {
        let config = plan.config.clone();
        let vfs = SimVfs::new(config.device.clone(), config.seed, trace);
        let clock = Arc::new(SimClock::new());
        let env = Env::new(
            Arc::new(vfs.clone()),
            clock.clone(),
            Arc::new(SeededEntropy::new(config.seed)),
        )
        .with_planted_bug(config.sabotage.and_then(Sabotage::planted));
        let mut params = InstanceParams::in_directory("inst");
        params.page_size = config.page_size as usize;
        params.log_file_size = u64::from(config.log_file_kib) * 1024;
        params.circular_logging = config.circular_logging;
        params.cache_size = config.cache_pages as usize * config.page_size as usize;
        params.checkpoint_depth = u64::from(config.checkpoint_depth_kib) * 1024;
        params.version_store_size = config.version_store_kib as usize * 1024;
        params.create_path_if_not_exist = config.create_backup_dirs;
        let (event_log, events) = jetdb::EventLog::collect();
        params.event_log = event_log;
        Sim {
            model: Model::new(config.sessions as usize),
            steps: plan.steps.clone(),
            vfs,
            clock,
            env,
            params,
            instance: None,
            sessions: Vec::new(),
            tables: Vec::new(),
            coverage: Coverage::default(),
            step: 0,
            operations: 0,
            commits: 0,
            restarts: 0,
            stats: InstanceStats::default(),
            checkpoint: None,
            armed_power_loss: true,
            corrupt_queue: Vec::new(),
            corrupt_spent: BTreeSet::new(),
            damaged: BTreeSet::new(),
            misdirects: 0,
            faults_seen: BTreeMap::new(),
            late: vec![false; config.sessions as usize],
            log_io_before: 0,
            incarnation: 0,
            database_faults_before: (0, 0),
            database_damage_before: 0,
            damaged_logs: Vec::new(),
            last_before_step: 0,
            to_survive: BTreeSet::new(),
            ended_by_corruption: None,
            outcome: None,
            tampering: tamper::Tampering::default(),
            backups: backups::Backups::new(),
            externals: external::Externals::default(),
            events,
            config,
        }
    }

    /// The simulated clock now: the time the engine stamps a commit made now with.
    fn now(&self) -> u64 {
        jetdb::Clock::now_millis(&*self.clock)
    }

    fn event(&self, what: fmt::Arguments<'_>) {
        self.vfs.with_trace(|t| t.event(what));
    }

    /// Records into the timeline, if one is kept (stamped with the simulated milliseconds since
    /// the run began).
    fn record(&self, f: impl FnOnce(&mut Timeline)) {
        let now = self.clock.elapsed_millis();
        self.vfs.with_trace(|t| {
            if let Some(timeline) = t.timeline() {
                timeline.set_now(now);
                f(timeline);
            }
        });
    }

    fn violation(&self, oracle: Oracle, detail: impl Into<String>) -> Violation {
        Violation::new(oracle, self.step, detail)
    }

    fn execute(&mut self) -> Check {
        self.event(format_args!("config {}", self.config));
        self.vfs.sabotage(self.config.sabotage);
        self.setup()?;
        for i in 0..self.steps.len() {
            self.step = i;
            self.clock.advance_millis(3);
            let step = self.steps[i].clone();
            self.last_before_step = self.model.last();
            self.database_faults_before =
                (self.incarnation, self.vfs.stats().database_write_faults);
            self.database_damage_before = self.vfs.stats().database_damage;

            self.record(|t| t.begin_step(i, format!("{step:?}")));
            self.vfs
                .with_trace(|t| t.begin_step(format_args!("step {i}: {step:?}")));
            self.outcome = None;
            let result = self.run_step(&step);
            let outcome = match &result {
                Err(v) => format!("VIOLATION of {}", v.oracle),
                Ok(()) => self.outcome.take().unwrap_or_else(|| "ok".into()),
            };
            self.vfs.with_trace(|t| t.end_step(&outcome));
            self.record_step(&step, &outcome);
            result?;
            self.after_step()?;
            if self.ended_by_corruption.is_some() {
                return self.restore_after_damage();
            }
        }
        self.step = self.steps.len();
        self.record(|t| t.begin_step(self.step, "final phase (fault-free)".into()));
        let ended = self.final_phase();
        self.record(|t| {
            t.end_step(match &ended {
                Ok(()) => "ok",
                Err(_) => "VIOLATION",
            });
            t.sessions_lost("the run ended");
        });
        ended?;
        if self.ended_by_corruption.is_some() {
            return self.restore_after_damage();
        }
        self.restore_every_backup()
    }

    /// Creates the database and its tables with no fault armed (the atlas: no faults while
    /// the instance is first created).
    fn setup(&mut self) -> Check {
        self.vfs.mkdir_durable(Path::new("inst"));
        // (Else the first backup into each creates it.)
        if !self.config.create_backup_dirs {
            for dir in 0..crate::workload::BACKUP_DIRS {
                self.vfs.mkdir_durable(Path::new(&format!("bk{dir}")));
            }
        }
        let instance = Instance::new(self.env.clone(), self.params.clone());
        instance
            .init()
            .map_err(|e| self.violation(Oracle::UnexplainedError, format!("first init: {e}")))?;
        let mut session = instance
            .begin_session()
            .map_err(|e| self.violation(Oracle::UnexplainedError, format!("session: {e}")))?;
        for t in 0..self.config.tables as usize {
            let table = session.create_table(&table_name(t)).map_err(|e| {
                self.violation(Oracle::UnexplainedError, format!("create table: {e}"))
            })?;
            self.tables.push(table);
        }
        drop(session);
        self.instance = Some(instance);
        self.incarnation += 1;
        self.open_sessions()?;
        self.stats = InstanceStats::default();
        Ok(())
    }

    fn open_sessions(&mut self) -> Check {
        let instance = self.instance.clone().expect("an instance");
        self.sessions.clear();
        self.late.iter_mut().for_each(|late| *late = false);
        for _ in 0..self.config.sessions {
            let session = instance.begin_session().map_err(|e| {
                self.violation(Oracle::UnexplainedError, format!("begin_session: {e}"))
            })?;
            self.sessions.push(session);
        }
        let mut tables = Vec::new();
        for t in 0..self.config.tables as usize {
            let table = self.sessions[0].open_table(&table_name(t)).map_err(|e| {
                self.violation(
                    Oracle::WrongData,
                    format!("table {} is gone: {e}", table_name(t)),
                )
                .with_values(
                    format!("table {} (created at setup, never dropped)", table_name(t)),
                    format!("no table {}: {}", table_name(t), error_outcome(&e)),
                )
            })?;
            tables.push(table);
        }
        self.tables = tables;
        Ok(())
    }

    /// Whether the database's pages may be damaged: rot was planted in them, or a database
    /// file still holds what a lost or misdirected write left wrong (until a later write over
    /// it is durable).
    pub(crate) fn pages_damaged(&self) -> bool {
        self.damaged.contains(&CorruptZone::DatabasePage)
            || self.vfs.database_damaged()
            // (Or fired during this step, in a file the engine has since removed: recovery's
            // copy of a batch it refused.)
            || self.vfs.stats().database_damage > self.database_damage_before
    }

    /// Damage was found and reported with `kind`.
    pub(crate) fn detected(&mut self, kind: ErrorKind) {
        self.coverage.hit(Mark::CorruptionDetected);
        if kind == ErrorKind::ReadLostFlushVerifyFailure {
            self.coverage.hit(Mark::LostFlushRefused);
        }
    }

    /// Faults that fired since `before`.
    fn fired_since(&self, before: &BTreeMap<IoFault, u64>) -> bool {
        self.vfs.fired() != *before || self.vfs.crashed()
    }

    /// Whether `err` is explained: by the machine having crashed, by a fault that fired during
    /// the call (as what that fault may surface as), or by planted page damage.
    fn explained(&self, err: &JetError, before: &BTreeMap<IoFault, u64>) -> bool {
        let kind = err.kind();
        if self.vfs.crashed() {
            return true;
        }
        // A fault that fired during this call explains the errors it may surface as.
        let fired_now = self
            .vfs
            .fired()
            .into_iter()
            .filter(|(k, n)| before.get(k).copied().unwrap_or(0) < *n)
            .any(|(k, _)| surfaces_as(k).contains(&kind));
        fired_now || (self.pages_damaged() && PAGE_ERRORS.contains(&kind))
    }

    /// Whether the current step has written, fsynced or renamed a log file (or tried to).
    fn log_touched(&self) -> bool {
        self.vfs.stats().log_io > self.log_io_before
    }

    /// Whether a write, fsync or full-disk fault fired on the database file during the
    /// current step, in the instance serving now.
    fn database_write_failed(&self) -> bool {
        let (incarnation, faults) = self.database_faults_before;
        incarnation == self.incarnation && self.vfs.stats().database_write_faults > faults
    }

    /// Whether the instance stopped (a fatal error, or the machine crashed).
    fn instance_dead(&self) -> bool {
        self.vfs.crashed() || self.instance.as_ref().is_none_or(|i| i.stats().is_err())
    }

    fn check_error(&self, what: &str, err: &JetError, before: &BTreeMap<IoFault, u64>) -> Check {
        if self.explained(err, before) {
            Ok(())
        } else {
            Err(self.violation(
                Oracle::UnexplainedError,
                format!("{what} failed with no fault to explain it: {err}"),
            ))
        }
    }

    /// A restart's outcome: what recovery kept, or that it refused damaged data.
    fn say_recovered(&mut self) {
        if let Some(why) = &self.ended_by_corruption {
            self.outcome = Some(format!("recovery refused damaged data: {why}"));
        } else {
            self.outcome = Some(format!(
                "recovered: commits through {} (durable {})",
                self.model.last(),
                self.model.durable()
            ));
        }
    }

    /// Records what the current step returned, for its trace line.
    fn say(&mut self, outcome: impl Into<String>) {
        self.outcome = Some(outcome.into());
    }

    /// Records an engine call's result as the step's outcome: `ok` (or what `ok` describes)
    /// or the error's ESE name and code.
    fn say_result<T>(&mut self, result: &jetdb::Result<T>, ok: impl FnOnce(&T) -> String) {
        self.outcome = Some(match result {
            Ok(value) => ok(value),
            Err(e) => error_outcome(e),
        });
    }

    fn run_step(&mut self, step: &Step) -> Check {
        if self.instance.is_none() {
            self.say("skipped: no instance");
            return Ok(());
        }
        let before = self.vfs.fired();
        self.log_io_before = self.vfs.stats().log_io;
        match *step {
            Step::Begin { s } => self.begin(s as usize, &before),
            Step::Put { s, t, k, v, len } => {
                let value = Val { id: v, len };
                self.write(s as usize, t, k, Some(value), &before)
            }
            Step::Delete { s, t, k } => self.write(s as usize, t, k, None, &before),
            Step::Bulk {
                s,
                t,
                from,
                count,
                stride,
                v,
                len,
                lazy,
            } => {
                let keys = self.config.keys;
                let writes = (0..u32::from(count)).map(|i| {
                    let k = (u32::from(from) + i * u32::from(stride.max(1))) % u32::from(keys);
                    (k as u16, Some(Val { id: v + i, len }))
                });
                self.bulk(s as usize, t, writes.collect(), !lazy, &before)
            }
            Step::DeleteRange { s, t, from, to } => {
                let s = self.session_index(s as usize);
                let t = t % self.config.tables;
                let seen = self.model.range(s, t, from, to);
                let writes = seen.into_iter().map(|(k, _)| (k, None)).collect();
                self.bulk(s, t, writes, true, &before)
            }
            Step::Get { s, t, k } => self.get(s as usize, t, k, &before),
            Step::Scan {
                s,
                t,
                from,
                to,
                reverse,
            } => self.scan(s as usize, t, from, to, reverse, &before),
            Step::Commit { s, durable } => self.commit(s as usize, durable, &before),
            Step::Rollback { s } => {
                let s = s as usize;
                let s = s % self.sessions.len();
                self.operations += 1;
                self.late_begin(s);
                let result = self.sessions[s].rollback();
                self.say_result(&result, |()| "ok".into());
                match (self.model.tx(s).is_some(), result) {
                    (true, Ok(())) => {
                        self.model.rollback(s);
                        self.record(|t| {
                            t.close(Lane::Session(s), "rolled back", "rolled-back", Vec::new())
                        });
                        Ok(())
                    }
                    (false, Err(e)) if e.kind() == ErrorKind::NotInTransaction => Ok(()),
                    (open, result) => Err(self.violation(
                        Oracle::Contract,
                        format!("rollback with a transaction open={open} gave {result:?}"),
                    )),
                }
            }
            Step::Checkpoint | Step::FlushLog => {
                let instance = self.instance.clone().expect("an instance");
                self.operations += 1;
                let result = if *step == Step::Checkpoint {
                    instance.checkpoint()
                } else {
                    instance.flush_log()
                };
                self.say_result(&result, |()| "ok".into());
                match result {
                    Ok(()) => {
                        self.model.all_durable();
                        Ok(())
                    }
                    Err(e) => self.check_error("checkpoint or flush", &e, &before),
                }
            }
            Step::Restart => {
                let checked = self.clean_restart();
                self.say_recovered();
                checked
            }
            Step::Crash {
                power_loss,
                recovery_crash,
            } => {
                self.vfs.crash();
                let checked = self.crash_and_recover(power_loss, recovery_crash);
                self.say_recovered();
                checked
            }
            Step::CrashAt { points, power_loss } => {
                self.vfs.arm_crash(u64::from(points));
                self.armed_power_loss = power_loss;
                self.say("armed");
                Ok(())
            }
            Step::Fault(ref fault) => {
                if matches!(fault.kind, IoFault::Misdirect | IoFault::LostWrite) {
                    // The atlas: at most one misdirected or lost write per run.
                    if self.misdirects > 0 {
                        self.say("skipped by the atlas");
                        return Ok(());
                    }
                    self.misdirects += 1;
                }
                // The atlas: once a header copy has rotted, no fsyncgate on the database. Its
                // repair lost that way stays hidden by the page cache, and a torn write of the
                // other copy would then lose both: a double fault two copies cannot survive.
                if fault.kind == IoFault::Fsyncgate
                    && fault.zone == Zone::Database
                    && self.corrupt_spent.contains(&CorruptZone::HeaderCopy)
                {
                    self.say("skipped by the atlas");
                    return Ok(());
                }
                self.vfs.arm(fault.clone());
                self.say("armed");
                Ok(())
            }
            Step::BackupBegin { dir, mode } => self.backup_begin(dir, mode),
            Step::BackupStep { pages } => self.backup_step(pages),
            Step::BackupStop => self.backup_stop(),
            Step::BackupFinish { abandon } => self.backup_finish(abandon),
            Step::Truncate => self.truncate(),
            Step::ExternalBegin { incremental } => self.external_begin(incremental),
            Step::ExternalRead { kib, pick } => self.external_read(kib, pick),
            Step::ExternalMisstep { misstep } => self.external_misstep(misstep),
            Step::ExternalEnd { how } => self.external_end(how),
            Step::StreamBackup {
                damage,
                pick,
                to_time,
            } => self.stream_backup(damage, pick, to_time),
            Step::BackupMisuse { misuse, pick } => self.backup_misuse(misuse, pick),
            Step::Restore { dir } => self.restore_step(dir),
            Step::RestoreCrash {
                dir,
                pick,
                power_loss,
            } => self.restore_crash(dir, pick, power_loss),
            Step::RestoreTo { dir, point, pick } => self.restore_to(dir, point, pick),
            Step::RollForward {
                dir,
                damage,
                until,
                pick,
            } => self.roll_forward(dir, damage, until, pick),
            Step::Tamper { target, kind, pick } => self.tamper(target, kind, pick),
            Step::Corrupt { zone, pick, now } => {
                // The atlas: one corruption per zone per run; a header copy only if no
                // fsyncgate on the database is armed or has fired (see above).
                let gated = self.vfs.armed_or_fired(IoFault::Fsyncgate, Zone::Database);
                if zone == CorruptZone::HeaderCopy && gated {
                    self.say("skipped by the atlas");
                    return Ok(());
                }
                if !self.corrupt_spent.insert(zone) {
                    self.say("skipped by the atlas: one per zone");
                } else if now && zone.may_rot_now() {
                    // Only this one: what is queued waits for its restart.
                    let queued = std::mem::replace(&mut self.corrupt_queue, vec![(zone, pick)]);
                    let planted = self.plant_corruption();
                    self.corrupt_queue = queued;
                    self.say(if planted {
                        "planted now"
                    } else {
                        "nothing to rot yet"
                    });
                } else {
                    self.corrupt_queue.push((zone, pick));
                    self.say("queued for the next restart");
                }
                Ok(())
            }
        }
    }

    fn session_index(&self, s: usize) -> usize {
        s % self.sessions.len()
    }

    /// Under [`Sabotage::LateSnapshot`], begins the engine's transaction that `begin` only
    /// pretended to begin.
    fn late_begin(&mut self, s: usize) {
        if std::mem::take(&mut self.late[s]) {
            // Whatever it answers, the model already believes the transaction open.
            let _ = self.sessions[s].begin_transaction();
        }
    }

    fn begin(&mut self, s: usize, before: &BTreeMap<IoFault, u64>) -> Check {
        let s = self.session_index(s);
        self.operations += 1;
        if self.config.sabotage == Some(Sabotage::LateSnapshot) && self.model.tx(s).is_none() {
            self.model.begin(s);
            self.late[s] = true;
            self.record(|t| t.open(Lane::Session(s), "tx", Vec::new()));
            return Ok(());
        }
        let result = match self.sessions[s].begin_transaction() {
            Err(e)
                if e.kind() == ErrorKind::InTransaction
                    && self.config.sabotage == Some(Sabotage::AcceptNestedBegin) =>
            {
                Ok(())
            }
            other => other,
        };
        self.say_result(&result, |()| "ok".into());
        match (self.model.tx(s).is_some(), result) {
            (false, Ok(())) => {
                self.model.begin(s);
                self.record(|t| t.open(Lane::Session(s), "tx", Vec::new()));
                Ok(())
            }
            (true, Err(e)) if e.kind() == ErrorKind::InTransaction => Ok(()),
            (false, Err(e)) => self.check_error("begin_transaction", &e, before),
            (true, result) => Err(self.violation(
                Oracle::Contract,
                format!("a second begin_transaction gave {result:?}, not JET_errInTransaction"),
            )),
        }
    }

    fn write(
        &mut self,
        s: usize,
        t: u8,
        k: u16,
        value: Option<Val>,
        before: &BTreeMap<IoFault, u64>,
    ) -> Check {
        let s = self.session_index(s);
        let t = t % self.config.tables;
        let key: Key = (t, k);
        let table = self.tables[t as usize];
        let in_tx = self.model.tx(s).is_some();
        let conflict = self.model.conflicts(s, key);
        let saw = self.model.sees(s, key).is_some();
        let bytes = key_bytes(k);
        self.operations += 1;
        self.late_begin(s);
        let result = match value {
            Some(v) => {
                if v.len as usize > self.config.page_size as usize / 4 {
                    self.coverage.hit(Mark::LargeValue);
                }
                self.sessions[s]
                    .put(table, &bytes, &value_bytes(v))
                    .map(|()| None)
            }
            None => self.sessions[s].delete(table, &bytes).map(Some),
        };
        let result = match result {
            Err(e)
                if e.kind() == ErrorKind::WriteConflict
                    && self.config.sabotage == Some(Sabotage::AcceptConflicts) =>
            {
                Ok(value.is_none().then_some(saw))
            }
            other => other,
        };
        self.say_result(&result, |existed| match existed {
            None => "ok".into(),
            Some(true) => "ok: existed".into(),
            Some(false) => "ok: absent".into(),
        });
        match result {
            Ok(existed) => {
                if conflict {
                    return Err(self.violation(
                        Oracle::WriteConflict,
                        format!("a write of {key:?} by session {s} was accepted, but the model says it conflicts"),
                    ));
                }
                if let Some(existed) = existed
                    && existed != saw
                {
                    return Err(self.violation(
                        Oracle::SnapshotRead,
                        format!("delete of {key:?} by session {s} said existed={existed}, the model says {saw}"),
                    ));
                }
                if in_tx {
                    self.model.write(s, key, value);
                } else {
                    let seq = self.model.apply(
                        BTreeMap::from([(key, value)]),
                        Outcome::Durable,
                        self.now(),
                    );
                    self.commits += 1;
                    self.coverage.hit(Mark::DurableCommit);
                    self.record(|t| {
                        let what = if value.is_some() { "put" } else { "delete" };
                        t.mark(
                            Lane::Session(s),
                            "commit",
                            format!("a {what} of {key:?}, committed durably on its own"),
                            seq.map(|seq| format!("commit {seq}")).into_iter().collect(),
                        )
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::WriteConflict => {
                if conflict {
                    self.coverage.hit(Mark::WriteConflict);
                    self.record(|t| {
                        t.mark(
                            Lane::Session(s),
                            "conflict",
                            format!("write conflict on {key:?}"),
                            vec![format!("{e}")],
                        )
                    });
                    Ok(())
                } else {
                    Err(self.violation(
                        Oracle::WriteConflict,
                        format!("a write of {key:?} by session {s} met {e}, but the model sees no conflict"),
                    ))
                }
            }
            Err(e)
                if e.kind() == ErrorKind::VersionStoreOutOfMemory
                    && self.config.version_store_kib <= 1024 =>
            {
                self.coverage.hit(Mark::VersionStoreFull);
                Ok(())
            }
            Err(e) => {
                self.check_error("a write", &e, before)?;
                if !in_tx && self.instance_dead() && self.log_touched() {
                    // The write's own commit failed after it may have reached the log.
                    self.model.apply(
                        BTreeMap::from([(key, value)]),
                        Outcome::Ambiguous,
                        self.now(),
                    );
                }
                Ok(())
            }
        }
    }

    /// Many writes by session `s` in one transaction: its open one, or one begun here and
    /// committed (durably or lazily) at the end. Each write is judged as a single one is; the first
    /// error that stops the instance (or the transaction) ends the step.
    fn bulk(
        &mut self,
        s: usize,
        t: u8,
        writes: Vec<(u16, Option<Val>)>,
        durable: bool,
        before: &BTreeMap<IoFault, u64>,
    ) -> Check {
        let s = self.session_index(s);
        let own = self.model.tx(s).is_none();
        if own {
            self.begin(s, before)?;
            if self.model.tx(s).is_none() {
                return Ok(());
            }
        }
        let mut done = 0usize;
        for (k, value) in writes {
            let errors = self.vfs.fired();
            self.write(s, t, k, value, &errors)?;
            if self.instance_dead() {
                break;
            }
            done += 1;
        }
        let committed = if own && !self.instance_dead() {
            self.commit(s, durable, before)?;
            self.outcome.clone().unwrap_or_default()
        } else {
            "left open".into()
        };
        if committed == "ok" {
            self.coverage.hit(Mark::BulkCommitted);
        }
        self.say(format!("{done} writes; commit: {committed}"));
        Ok(())
    }

    fn compare(&self, what: &str, key: Key, got: Option<&[u8]>, want: Option<Val>) -> Check {
        match (got, want) {
            (None, None) => return Ok(()),
            (Some(bytes), Some(v)) if value_matches(v, bytes) => return Ok(()),
            _ => {}
        }
        let want_bytes = want.map(value_bytes);
        let show = show_value;
        Err(self
            .violation(
                Oracle::SnapshotRead,
                format!(
                    "{what} of {key:?} returned {}, the model says {}",
                    show(got),
                    show(want_bytes.as_deref())
                ),
            )
            .with_values(
                format!("{key:?}: {}", show(want_bytes.as_deref())),
                format!("{key:?}: {}", show(got)),
            ))
    }

    fn get(&mut self, s: usize, t: u8, k: u16, before: &BTreeMap<IoFault, u64>) -> Check {
        let s = self.session_index(s);
        let t = t % self.config.tables;
        let in_tx = self.model.tx(s).is_some();
        let want = self.model.sees(s, (t, k));
        self.operations += 1;
        self.late_begin(s);
        let result = self.sessions[s].get(self.tables[t as usize], &key_bytes(k));
        self.say_result(&result, |got| show_value(got.as_deref()));
        match result {
            Ok(got) => {
                self.compare("get", (t, k), got.as_deref(), want)?;
                if !in_tx {
                    // A read outside a transaction is a transaction of its own, committed
                    // durably: the log is flushed.
                    self.model.all_durable();
                }
                Ok(())
            }
            Err(e) => {
                if e.kind() == ErrorKind::DiskIO && self.fired_since(before) {
                    self.coverage.hit(Mark::ReadErrorReported);
                }
                if PAGE_ERRORS.contains(&e.kind()) && self.pages_damaged() {
                    self.detected(e.kind());
                }
                self.check_error("get", &e, before)
            }
        }
    }

    fn scan(
        &mut self,
        s: usize,
        t: u8,
        from: u16,
        to: u16,
        reverse: bool,
        before: &BTreeMap<IoFault, u64>,
    ) -> Check {
        let s = self.session_index(s);
        let t = t % self.config.tables;
        let mut want = self.model.range(s, t, from, to);
        if reverse {
            want.reverse();
        }
        let (lo, hi) = (key_bytes(from), key_bytes(to));
        self.operations += 1;
        self.late_begin(s);
        let table = self.tables[t as usize];
        let got: jetdb::Result<Vec<(Vec<u8>, Vec<u8>)>> = self.sessions[s]
            .range(
                table,
                (Bound::Included(&lo[..]), Bound::Excluded(&hi[..])),
                reverse,
            )
            .and_then(|range| range.collect());
        self.say_result(&got, |records| format!("{} records", records.len()));
        match got {
            Ok(got) => {
                if got.len() != want.len() {
                    let got_keys: Vec<Option<u16>> =
                        got.iter().map(|(k, _)| parse_key(k)).collect();
                    let want_keys: Vec<u16> = want.iter().map(|(k, _)| *k).collect();
                    return Err(self
                        .violation(
                            Oracle::SnapshotRead,
                            format!("scan of table {t} keys {from}..{to} reverse={reverse} by session {s} returned keys {got_keys:?}, the model says {want_keys:?}"),
                        )
                        .with_values(format!("keys {want_keys:?}"), format!("keys {got_keys:?}")));
                }
                for ((gk, gv), (wk, wv)) in got.iter().zip(&want) {
                    if parse_key(gk) != Some(*wk) {
                        return Err(self
                            .violation(
                                Oracle::SnapshotRead,
                                format!("scan of table {t} by session {s} returned key {:?} where the model has k{wk:05}", String::from_utf8_lossy(gk)),
                            )
                            .with_values(format!("key k{wk:05}"), format!("key {:?}", String::from_utf8_lossy(gk))));
                    }
                    self.compare("scan", (t, *wk), Some(gv), Some(*wv))?;
                }
                Ok(())
            }
            Err(e) => {
                if PAGE_ERRORS.contains(&e.kind()) && self.pages_damaged() {
                    self.detected(e.kind());
                }
                self.check_error("scan", &e, before)
            }
        }
    }

    fn commit(&mut self, s: usize, durable: bool, before: &BTreeMap<IoFault, u64>) -> Check {
        let s = self.session_index(s);
        let mode = if durable {
            CommitMode::Durable
        } else {
            CommitMode::Lazy
        };
        self.operations += 1;
        self.late_begin(s);
        let result = self.sessions[s].commit_transaction(mode);
        self.say_result(&result, |()| "ok".into());
        if self.model.tx(s).is_none() {
            return match result {
                Err(e) if e.kind() == ErrorKind::NotInTransaction => Ok(()),
                other => Err(self.violation(
                    Oracle::Contract,
                    format!("commit with no transaction open gave {other:?}, not JET_errNotInTransaction"),
                )),
            };
        }
        match result {
            Ok(()) => {
                let outcome = if durable {
                    Outcome::Durable
                } else {
                    Outcome::Lazy
                };
                let seq = self.model.commit(s, outcome, self.now());
                self.record(|t| {
                    let (how, class) = if durable {
                        ("committed durably", "ok")
                    } else {
                        ("committed lazily", "lazy")
                    };
                    let what = match seq {
                        Some(seq) => format!("{how}: commit {seq}"),
                        None => format!("{how}: read-only"),
                    };
                    t.close(Lane::Session(s), what, class, Vec::new());
                });
                if seq.is_some() {
                    self.commits += 1;
                    self.coverage.hit(if durable {
                        Mark::DurableCommit
                    } else {
                        Mark::LazyCommit
                    });
                }
                Ok(())
            }
            Err(e) => {
                self.check_error("commit", &e, before)?;
                // Ambiguous only if the instance stopped after this call wrote to the log;
                // otherwise nothing of it reached the log: failed-clean, never to appear.
                let ambiguous = self.instance_dead() && self.log_touched();
                if ambiguous {
                    self.model.commit(s, Outcome::Ambiguous, self.now());
                } else {
                    self.model.rollback(s);
                }
                self.record(|t| {
                    let what = if ambiguous {
                        "it may or may not survive"
                    } else {
                        "nothing of it reached the log"
                    };
                    t.close(
                        Lane::Session(s),
                        format!("commit failed: {e}; {what}"),
                        "fail",
                        Vec::new(),
                    )
                });
                Ok(())
            }
        }
    }

    /// Marks and bookkeeping after a step; restarts an instance that stopped.
    fn after_step(&mut self) -> Check {
        let fired = self.vfs.fired();
        for (kind, n) in &fired {
            let seen = self.faults_seen.entry(*kind).or_default();
            if *n > *seen {
                *seen = *n;
                self.to_survive.insert(*kind);
                if *kind == IoFault::Misdirect {
                    self.coverage.hit(Mark::MisdirectedWrite);
                }
                if matches!(kind, IoFault::Misdirect | IoFault::LostWrite)
                    && self.vfs.stats().database_damage > 0
                {
                    self.coverage.hit(Mark::DatabaseWriteLost);
                }
            }
        }
        if self.vfs.crashed() {
            let power_loss = self.armed_power_loss;
            if let Some((what, path)) = self.vfs.take_crash_site() {
                self.coverage.hit(Mark::CrashAtIoPoint);
                if crash_in_roll(&what, &path) {
                    self.coverage.hit(Mark::CrashDuringRoll);
                }
                // A log removed by a truncation (no-path, or after a backup's success).
                let truncating = matches!(
                    self.steps.get(self.step),
                    Some(Step::Truncate | Step::BackupFinish { abandon: false })
                );
                if truncating && what == "remove" && generation_of(&path).is_some() {
                    self.coverage.hit(Mark::CrashDuringTruncation);
                }
            }
            return self.crash_and_recover(power_loss, None);
        }
        let Some(instance) = self.instance.clone() else {
            return Ok(());
        };
        match instance.stats() {
            Ok(_) if self.database_write_failed() => Err(self.violation(
                Oracle::Contract,
                "a write or fsync of the database failed, yet the instance still takes work (the file's state is unknown: it must stop until a new init)",
            )),
            Ok(stats) if stats.cache_pages > stats.cache_pages_max + stats.cache_pages_pinned => {
                Err(self.violation(
                    Oracle::Memory,
                    format!(
                        "between calls the cache holds {} pages: its size is {}, and {} changed pages wait for a batch",
                        stats.cache_pages, stats.cache_pages_max, stats.cache_pages_pinned
                    ),
                ))
            }
            Ok(stats) => {
                if stats.log_rolls > self.stats.log_rolls {
                    self.coverage.hit(Mark::LogRolled);
                    // A roll flushes and fsyncs everything logged before it: every commit
                    // acknowledged before this step is durable.
                    self.model.durable_through(self.last_before_step);
                }
                // (A checkpoint moved after a commit says nothing of the commits since: its
                // batch was frozen, the log flushed, where it began, some commits ago.)
                if stats.logs_deleted > self.stats.logs_deleted {
                    self.coverage.hit(Mark::LogDeleted);
                }
                if self.config.large_database
                    && instance
                        .database_header()
                        .is_ok_and(|h| h.page_count > 1000)
                {
                    self.coverage.hit(Mark::LargeDatabase);
                }
                self.stats = stats;
                let checkpoint = instance.checkpoint_position().ok().flatten();
                if checkpoint > self.checkpoint {
                    if self.checkpoint.is_some() {
                        self.coverage.hit(Mark::CheckpointAdvanced);
                    }
                    self.checkpoint = checkpoint;
                }
                Ok(())
            }
            Err(e) => {
                // After a fatal error the instance refuses work with the documented error.
                if !matches!(
                    e.kind(),
                    ErrorKind::InstanceUnavailable | ErrorKind::LogWriteFail
                ) {
                    return Err(self.violation(
                        Oracle::Contract,
                        format!("a stopped instance answered {e}, not JET_errInstanceUnavailable"),
                    ));
                }
                // The process restarts it (the machine did not crash; the page cache
                // survives).
                self.event(format_args!("instance stopped; restarting the process"));
                self.crash_and_recover(false, None)
            }
        }
    }

    /// Plants the queued corruption in the files at rest; whether any was planted.
    fn plant_corruption(&mut self) -> bool {
        let mut any = false;
        for (zone, pick) in std::mem::take(&mut self.corrupt_queue) {
            // The atlas reads the disk to choose; no armed fault is meant for it.
            self.vfs.suspend_faults(true);
            // A running backup has copied the pages below this: rot aims at the rest.
            let aim = self.backups.aim(self.config.page_size);
            let busy = self.backups.active.as_ref().map(|a| a.facts.dir);
            let planted = atlas::plant(&self.vfs, &self.params, zone, pick, aim, busy);
            self.vfs.suspend_faults(false);
            if let Some((what, path)) = planted {
                // (In the lane of the backup directory it rotted, if it is in one.)
                let lane = path
                    .iter()
                    .next()
                    .and_then(|d| d.to_str()?.strip_prefix("bk")?.parse().ok())
                    .map_or(Lane::Instance, Lane::Backup);
                // Rot in a file the tampering left keeps it the tampering's.
                let now = self.vfs.crc_of(&path);
                for (p, crc, _) in &mut self.tampering.live_files {
                    if *p == path && crc.is_some() {
                        *crc = now;
                    }
                }
                if zone == CorruptZone::LogSegment {
                    self.damaged_logs.push(path);
                } else if zone == CorruptZone::BackupFile {
                    self.backup_damaged(&path);
                }
                self.damaged.insert(zone);
                self.coverage.hit(Mark::CorruptionPlanted);
                if self.backups.active.is_some() {
                    self.coverage.hit(Mark::RotMetRunningBackup);
                }
                any = true;
                self.event(format_args!("corruption planted: {what}"));
                self.record(|t| {
                    t.mark(
                        lane,
                        "corrupt",
                        "corruption planted",
                        vec![what.to_string()],
                    )
                });
            } else {
                // Nothing to corrupt yet: the budget stays unspent.
                self.corrupt_spent.remove(&zone);
            }
        }
        any
    }

    /// A clean term, then init: everything committed must be there.
    fn clean_restart(&mut self) -> Check {
        // A running backup is abandoned first, with a failure's guarantees; an external one
        // is left to find its instance gone at its next call.
        self.backup_finish(true)?;
        let newly_orphaned = self
            .externals
            .running
            .as_mut()
            .filter(|x| !x.facts.orphaned)
            .map(|x| {
                x.facts.orphaned = true;
                x.facts.clone()
            });
        let instance = self.instance.clone().expect("an instance");
        self.sessions.clear();
        self.model.drop_sessions();
        self.record(|t| t.sessions_lost("a clean restart"));
        self.operations += 1;
        let before = self.vfs.fired();
        match instance.term() {
            Ok(()) => {
                self.record(|t| {
                    t.mark(
                        Lane::Instance,
                        "restart",
                        "clean shutdown and restart",
                        vec!["term succeeded: everything committed is durable".into()],
                    )
                });
                self.model.all_durable();
                self.instance = None;
                self.restarts += 1;
                self.vfs.restart(false);
                self.plant_corruption();
                self.init_and_verify(None)?;
                // The term failed the external backup: it left nothing.
                match newly_orphaned {
                    Some(facts) => self.check_external_failure(&facts, true),
                    None => Ok(()),
                }
            }
            Err(e) => {
                self.check_error("term", &e, &before)?;
                // An armed crash during the shutdown loses power if it was meant to.
                let power_loss = self.vfs.crashed() && self.armed_power_loss;
                if self.vfs.take_crash_site().is_some() {
                    self.coverage.hit(Mark::CrashAtIoPoint);
                }
                self.crash_and_recover(power_loss, None)
            }
        }
    }

    /// The machine (or only the process) crashed: everything in memory is gone. Restart,
    /// recover, and check the prefix oracle.
    fn crash_and_recover(&mut self, power_loss: bool, recovery_crash: Option<u32>) -> Check {
        // The process died with the backup job: its clean-up finds the disk gone (or, for a
        // process that stopped on a fatal error, runs against a dead instance).
        let crashed_backup = self
            .backups
            .active
            .take()
            .map(|active| {
                self.vfs.crash();
                drop(active.job);
                active.facts
            })
            .or_else(|| self.backups.crashed.take());
        if let Some(facts) = &crashed_backup {
            self.record(|t| {
                t.close(
                    Lane::Backup(facts.dir),
                    "the machine crashed during it",
                    "lost",
                    Vec::new(),
                )
            });
        }
        let crashed_external = self.external_dies();
        self.sessions.clear();
        self.instance = None;
        self.model.drop_sessions();
        self.record(|t| {
            t.sessions_lost(if power_loss {
                "power loss"
            } else {
                "process died"
            })
        });
        self.restarts += 1;
        if self.vfs.suppress_unvouched_misdirect() {
            self.event(format_args!(
                "atlas: the lost half of an unvouched misdirected write is suppressed"
            ));
        }
        self.coverage.hit(if power_loss {
            Mark::PowerLoss
        } else {
            Mark::ProcessKill
        });
        if let Some(report) = self.vfs.restart(power_loss) {
            self.event(format_args!("power loss: {report:?}"));
            self.record(|t| t.mark(Lane::Instance, "power-loss", "power loss", lost(&report)));
        } else {
            self.event(format_args!("process restart"));
            self.record(|t| {
                t.mark(
                    Lane::Instance,
                    "restart",
                    "process restart",
                    vec!["the process died; the page cache survives".into()],
                )
            });
        }
        self.plant_corruption();
        self.init_and_verify(recovery_crash)?;
        if let Some(facts) = crashed_external {
            self.after_crash_during_external(facts)?;
        }
        match crashed_backup {
            Some(facts) => self.after_crash_during_backup(facts),
            None => Ok(()),
        }
    }

    /// Initialises a new instance (recovering), then checks that the database is a prefix of
    /// the commits holding every durable one, and that it is sound.
    fn init_and_verify(&mut self, recovery_crash: Option<u32>) -> Check {
        self.faults_seen.clear();
        self.stats = InstanceStats::default();
        if let Some(n) = recovery_crash {
            self.vfs.arm_crash(u64::from(n));
        }
        let mut attempts = 0;
        let instance = loop {
            attempts += 1;
            let before = self.vfs.fired();
            let instance = Instance::new(self.env.clone(), self.params.clone());
            self.operations += 1;
            self.judge_missing_checkpoint();
            let result = instance.init();
            if self.vfs.crashed() {
                // Crashed during recovery: lose power again, then recover again.
                self.vfs.take_crash_site();
                self.coverage.hit(Mark::CrashDuringRecovery);
                drop(instance);
                let report = self.vfs.restart(true);
                self.event(format_args!(
                    "crash during recovery; power loss: {report:?}"
                ));
                self.record(|t| {
                    let detail = report.as_ref().map(lost).unwrap_or_default();
                    t.mark(
                        Lane::Instance,
                        "power-loss",
                        "crash during recovery",
                        detail,
                    )
                });
                continue;
            }
            match result {
                Ok(()) => {
                    self.check_missing_checkpoint_recovered()?;
                    break instance;
                }
                Err(e) if self.explained(&e, &before) && IO_ERRORS.contains(&e.kind()) => {
                    // An I/O fault during recovery: the next attempt (fault-free from the
                    // third on) must work. (Reported as anything else, it is a violation
                    // below unless planted damage explains it.)
                    if self.vfs.fired().contains_key(&IoFault::ReadError) {
                        self.coverage.hit(Mark::ReadErrorReported);
                    }
                    self.event(format_args!("recovery met an injected fault: {e}; again"));
                    if attempts >= 2 {
                        self.vfs.disarm();
                    }
                    continue;
                }
                Err(e) => return self.recovery_failed(&e),
            }
        };
        self.vfs.disarm_crash();
        let report = instance.recovery_report().ok().flatten();
        if let Some(report) = &report {
            self.event(format_args!(
                "recovered: {} commits replayed, {} undone, torn tail {:?}",
                report.commits_replayed, report.transactions_undone, report.torn_tail
            ));
            self.record(|t| {
                t.mark(
                    Lane::Instance,
                    "recovery",
                    "recovery",
                    vec![
                        format!("{} commits replayed", report.commits_replayed),
                        format!("{} transactions undone", report.transactions_undone),
                        format!("torn tail: {:?}", report.torn_tail),
                        format!("finished a log roll: {}", report.finished_roll),
                    ],
                )
            });
            if report.torn_tail.is_some() {
                self.coverage.hit(Mark::TornTailRecovered);
            }
            if report.transactions_undone > 0 {
                self.coverage.hit(Mark::TransactionUndone);
            }
            if report.finished_roll {
                self.coverage.hit(Mark::RollFinished);
            }
            if report.was_dirty {
                self.check_checkpoint_mirrored()?;
            }
        }
        self.instance = Some(instance);
        self.incarnation += 1;
        self.checkpoint = None;
        self.check_backup_records_durable()?;
        self.external_record_after_restart();
        self.open_sessions()?;
        self.vfs.suspend_faults(true);
        let verified = self.verify_prefix().and_then(|()| self.verify_integrity());
        self.vfs.suspend_faults(false);
        verified?;
        self.tamper_met_by_recovery();
        if self.ended_by_corruption.is_some() {
            self.sessions.clear();
            self.instance = None;
            return Ok(());
        }
        if self.damaged.contains(&CorruptZone::HeaderCopy)
            || self.damaged.contains(&CorruptZone::CheckpointSlot)
        {
            self.coverage.hit(Mark::RedundantCopySurvived);
        }
        // Whatever faults fired before this recovery were survived.
        for kind in std::mem::take(&mut self.to_survive) {
            match kind {
                IoFault::SyncError | IoFault::Fsyncgate | IoFault::DirSyncError => {
                    self.coverage.hit(Mark::FsyncFailureSurvived)
                }
                IoFault::WriteError => self.coverage.hit(Mark::WriteErrorSurvived),
                IoFault::DiskFull => self.coverage.hit(Mark::DiskFullSurvived),
                IoFault::ReadError | IoFault::Misdirect | IoFault::LostWrite => {}
            }
        }
        Ok(())
    }

    /// Recovery failed: a violation unless detected damage explains it, in which case the
    /// run ends there (there is no backup to restore yet).
    fn recovery_failed(&mut self, err: &JetError) -> Check {
        let kind = err.kind();
        // Log damage explains a refusal only while the damaged file is still there.
        let logs = self.vfs.files_in(Zone::Log);
        // A misdirected log write nothing vouched for left its stray copy over segments of
        // the same flush (its lost half is suppressed, the copy is not): the log may end
        // before what the database file holds, which the engine must refuse, not replay.
        let log_damaged = self.vfs.misdirected_file_present()
            || self.vfs.stray_misdirect()
            || self.damaged_logs.iter().any(|p| logs.contains(p));
        let pages_damaged = self.pages_damaged();
        if (log_damaged && LOG_ERRORS.contains(&kind))
            || (pages_damaged && PAGE_ERRORS.contains(&kind))
            || self.tamper_explains_recovery(kind)
        {
            self.coverage.hit(Mark::RecoveryRefusedCorruption);
            self.detected(kind);
            self.event(format_args!(
                "recovery refused damaged data, as documented: {err}"
            ));
            self.record(|t| {
                t.mark(
                    Lane::Instance,
                    "recovery-refused",
                    "recovery refused damaged data",
                    vec![err.to_string()],
                )
            });
            self.ended_by_corruption = Some(err.to_string());
            self.instance = None;
            return Ok(());
        }
        Err(self.violation(
            Oracle::Recovery,
            format!("recovery failed though the fault atlas says it must succeed: {err}"),
        ))
    }

    /// Reads every table. Where damaged pages make a scan fail, falls back to reading the
    /// model's keys one by one; unreadable keys are left out (`None` in the second map).
    fn read_all(&mut self) -> Result<BTreeMap<Key, Option<Vec<u8>>>, Violation> {
        let mut out = BTreeMap::new();
        for t in 0..self.config.tables {
            let table = self.tables[t as usize];
            let scanned: jetdb::Result<Vec<(Vec<u8>, Vec<u8>)>> = self.sessions[0]
                .range(table, .., false)
                .and_then(|r| r.collect());
            match scanned {
                Ok(records) => {
                    for (k, v) in records {
                        let Some(k) = parse_key(&k) else {
                            return Err(self
                                .violation(
                                    Oracle::WrongData,
                                    format!(
                                        "table {t} holds key {:?}, which the workload never wrote",
                                        String::from_utf8_lossy(&k)
                                    ),
                                )
                                .with_values(
                                    "no such key",
                                    format!("key {:?}", String::from_utf8_lossy(&k)),
                                ));
                        };
                        out.insert((t, k), Some(v));
                    }
                }
                Err(e) => {
                    self.check_error("a scan of the recovered table", &e, &self.vfs.fired())?;
                    self.detected(e.kind());
                    // Every key the workload can write, not only the model's: a phantom
                    // record must show too.
                    for k in 0..self.config.keys {
                        match self.sessions[0].get(table, &key_bytes(k)) {
                            Ok(Some(v)) => {
                                out.insert((t, k), Some(v));
                            }
                            Ok(None) => {}
                            Err(e) => {
                                let now = self.vfs.fired();
                                self.check_error("a read of the recovered table", &e, &now)?;
                                out.insert((t, k), None);
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn verify_prefix(&mut self) -> Check {
        let got = self.read_all()?;
        let candidates = self.model.candidate_prefixes();
        // Each value read, as the model's value it is (its bytes checked once, not once per
        // candidate prefix); `None` for bytes no value of the workload has.
        let read: BTreeMap<Key, Option<Val>> = got
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|bytes| (*k, bytes)))
            .map(|(k, bytes)| {
                let val = value_of(bytes);
                (k, value_matches(val, bytes).then_some(val))
            })
            .collect();
        let matches = |seq: u64| {
            let state = self.model.state_at(seq);
            let extra = read.keys().any(|k| !state.contains_key(k));
            !extra
                && state.iter().all(|(k, v)| match got.get(k) {
                    Some(Some(bytes)) if bytes.len() < 4 => value_matches(*v, bytes),
                    Some(Some(_)) => read.get(k) == Some(&Some(*v)),
                    Some(None) => true,
                    None => false,
                })
        };
        // The longest matching prefix: recovery keeps all it can.
        let Some(seq) = candidates.clone().rev().find(|&seq| matches(seq)) else {
            let last = self.model.state_at(self.model.last());
            let durable = self.model.state_at(self.model.durable());
            // Each differing key: (table, key) engine-value → model-value, as value ids.
            let id = |b: &[u8]| value_of(b).id;
            let differ = |state: &BTreeMap<Key, Val>| {
                let mut out: Vec<String> = got
                    .iter()
                    .filter(|(k, v)| v.is_some() && state.get(k).map(|v| value_bytes(*v)) != **v)
                    .map(|(k, v)| {
                        let have = v.as_deref().map(id);
                        format!("{k:?} #{have:?}→#{:?}", state.get(k).map(|v| v.id))
                    })
                    .chain(
                        state
                            .iter()
                            .filter(|(k, _)| !got.contains_key(k))
                            .map(|(k, v)| format!("{k:?} missing→#{}", v.id)),
                    )
                    .collect();
                out.truncate(6);
                out.join(", ")
            };
            let (expected, actual) = prefix_values(&durable, &got);
            return Err(self
                .violation(
                    Oracle::CrashPrefix,
                    format!(
                        "after recovery the database is no prefix of the commits from {} (durable) to {}; keys differing from the durable prefix: {:?}, from the last commit: {:?}",
                        self.model.durable(),
                        self.model.last(),
                        differ(&durable),
                        differ(&last),
                    ),
                )
                .with_values(
                    format!("at least the durable prefix, commit {}:\n{expected}", self.model.durable()),
                    actual,
                ));
        };
        let lost: Vec<Outcome> = (seq + 1..=self.model.last())
            .map(|s| self.model.commit_at(s).outcome)
            .collect();
        if lost.contains(&Outcome::Lazy) {
            self.coverage.hit(Mark::LazyCommitsLost);
        }
        if lost.contains(&Outcome::Ambiguous) {
            self.coverage.hit(Mark::AmbiguousAbsent);
        }
        if (self.model.durable() + 1..=seq)
            .any(|s| self.model.commit_at(s).outcome == Outcome::Ambiguous)
        {
            self.coverage.hit(Mark::AmbiguousPresent);
        }
        self.event(format_args!(
            "recovered prefix {seq} of {} (durable {})",
            self.model.last(),
            self.model.durable()
        ));
        self.record(|t| {
            t.mark(
                Lane::Instance,
                "recovery",
                format!("recovered the prefix through commit {seq}"),
                vec![format!(
                    "the model's commits: {} acknowledged, {} durable; the database matches the prefix through {seq}",
                    self.model.last(),
                    self.model.durable()
                )],
            )
        });
        // (The shortest matching prefix too: the commits past it may be lazy ones lost whose
        // writes undo each other, never logged; a restore to a point among them must not be
        // held to the states between.)
        let shortest = candidates.clone().find(|&seq| matches(seq)).unwrap_or(seq);
        self.model.settle_among(seq, shortest);
        if got.values().any(Option::is_none) {
            // Damaged pages hide some keys: which of the ambiguous or lazy commits on them
            // survived cannot be told, so the model cannot go on. With no backup to restore,
            // the run ends here — the damage was reported, never returned as data.
            self.ended_by_corruption =
                Some("damaged database pages: some records are unreadable, as reported".into());
        }
        Ok(())
    }

    fn verify_integrity(&mut self) -> Check {
        let instance = self.instance.clone().expect("an instance");
        match instance.check_integrity() {
            Ok(_) => Ok(()),
            Err(e) => {
                if self.pages_damaged() && PAGE_ERRORS.contains(&e.kind()) {
                    self.detected(e.kind());
                    Ok(())
                } else {
                    Err(self.violation(
                        Oracle::Integrity,
                        format!("the integrity check failed: {e}"),
                    ))
                }
            }
        }
    }

    /// After a dirty shutdown, recovery replaces the checkpoint file with one whose two slots
    /// both hold where it starts (a slot written before the crash may not be durable; in place,
    /// a power loss could tear both): both slots whole, at the same position. On a full disk
    /// it writes the slots in place instead.
    fn check_checkpoint_mirrored(&self) -> Check {
        if self.vfs.fired().contains_key(&IoFault::DiskFull) {
            return Ok(());
        }
        let path = self.params.system_path.join("edb.chk");
        let Some(bytes) = self.vfs.content(&path) else {
            return Ok(());
        };
        let [a, b] = jetdb::checkpoint::decode_slots(&bytes);
        match (a, b) {
            (Some(a), Some(b)) if a.position == b.position => Ok(()),
            (a, b) => Err(self.violation(
                Oracle::Recovery,
                format!(
                    "after recovering from a dirty shutdown the checkpoint file's slots are {:?} and {:?}, not both at one position",
                    a.map(|c| c.position),
                    b.map(|c| c.position)
                ),
            )),
        }
    }

    /// After a clean shutdown the instance's files are where and as named as documented (a
    /// tool like `jetutil`, or ESE's own, finds them by these names): the database, the
    /// checkpoint file, the current log; and nothing but archived generations and the
    /// database's doublewrite file beside them.
    fn check_layout(&self) -> Check {
        let dir = &self.params.log_path;
        let names: Vec<String> = self
            .vfs
            .crcs_under(dir)
            .into_keys()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        let want = ["data.edb", "edb.chk", "edb.log"];
        let missing: Vec<&str> = want
            .iter()
            .copied()
            .filter(|w| !names.iter().any(|n| n == w))
            .collect();
        let stray: Vec<&String> = names
            .iter()
            .filter(|n| !want.contains(&n.as_str()) && n.as_str() != "data.edb.jdw")
            .filter(|n| jetdb::log::parse_archive_name("edb", n).is_none())
            .collect();
        if missing.is_empty() && stray.is_empty() {
            return Ok(());
        }
        Err(self.violation(
            Oracle::Contract,
            format!(
                "after a clean shutdown {} holds no {missing:?} and holds {stray:?}",
                dir.display()
            ),
        ))
    }

    /// The fault-free phase: no fault armed, a crash, recovery that must succeed and agree
    /// with the model, a last commit, a clean shutdown, and a final exact comparison.
    fn final_phase(&mut self) -> Check {
        self.vfs.disarm();
        self.event(format_args!("final phase"));
        if self.instance.is_none() {
            return Ok(());
        }
        self.vfs.crash();
        self.crash_and_recover(!self.config.seed.is_multiple_of(3), None)?;
        if self.ended_by_corruption.is_some() {
            return Ok(());
        }
        let pages_damaged = self.pages_damaged();
        // One more commit must work, then a clean shutdown keeps everything.
        let table = self.tables[0];
        let value = Val {
            id: u32::MAX,
            len: 16,
        };
        self.model.begin(0);
        let wrote = self.sessions[0]
            .begin_transaction()
            .and_then(|()| self.sessions[0].put(table, &key_bytes(0), &value_bytes(value)))
            .and_then(|()| self.sessions[0].commit_transaction(CommitMode::Durable));
        let detected = |e: &JetError| {
            pages_damaged && (PAGE_ERRORS.contains(&e.kind()) || IO_ERRORS.contains(&e.kind()))
        };
        match wrote {
            Ok(()) => {
                self.model.write(0, (0, 0), Some(value));
                self.model.commit(0, Outcome::Durable, self.now());
            }
            Err(e) if detected(&e) => {
                // The planted damage was found; with no backup to restore, the run ends.
                self.model.rollback(0);
                self.detected(e.kind());
                self.ended_by_corruption = Some(e.to_string());
                return Ok(());
            }
            Err(e) => {
                return Err(self.violation(
                    Oracle::UnexplainedError,
                    format!("a commit in the fault-free phase failed: {e}"),
                ));
            }
        }
        let instance = self.instance.clone().expect("an instance");
        self.sessions.clear();
        if let Err(e) = instance.term() {
            if !detected(&e) {
                return Err(self.violation(
                    Oracle::UnexplainedError,
                    format!("term in the fault-free phase failed: {e}"),
                ));
            }
            return Ok(());
        }
        self.model.all_durable();
        self.instance = None;
        self.check_layout()?;
        self.init_and_verify(None)?;
        self.coverage.hit(Mark::FinalPhaseAgreed);
        let instance = self.instance.take().expect("an instance");
        self.sessions.clear();
        instance.term().map_err(|e| {
            self.violation(
                Oracle::UnexplainedError,
                format!("the last term failed: {e}"),
            )
        })
    }
}

/// The generation of an archived log file's name.
fn generation_of(path: &Path) -> Option<u32> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| jetdb::log::parse_archive_name("edb", n))
}

/// Whether a crash at `what` on `path` interrupted a log roll: the new generation's
/// temporary file, or a rename or removal of a log file. (A directory fsync is left out: the
/// log shares its directory with the database and the checkpoint here.)
fn crash_in_roll(what: &str, path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with("tmp.log") || (matches!(what, "rename" | "remove") && name.ends_with(".log"))
}

/// Where a recovered database differs from a prefix of the model, as (the prefix's values,
/// the database's): each differing key with its value id, the first 12.
fn prefix_values(
    state: &BTreeMap<Key, Val>,
    got: &BTreeMap<Key, Option<Vec<u8>>>,
) -> (String, String) {
    let keys: BTreeSet<Key> = got
        .iter()
        .filter(|(k, v)| v.is_some() && state.get(k).map(|v| value_bytes(*v)) != **v)
        .map(|(k, _)| *k)
        .chain(state.keys().filter(|k| !got.contains_key(k)).copied())
        .collect();
    let keys: Vec<&Key> = keys.iter().collect();
    let actual = |k: &Key| match got.get(k) {
        Some(Some(bytes)) => format!("{k:?}={}", show_value(Some(bytes))),
        Some(None) => format!("{k:?}=unreadable"),
        None => format!("{k:?}=-"),
    };
    (
        listed(&keys, |k| model_value(k, state)),
        listed(&keys, actual),
    )
}

/// What a power loss lost, a line each.
fn lost(report: &crate::vfs::PowerLoss) -> Vec<String> {
    vec![
        format!("{} pending writes landed whole", report.writes_landed),
        format!("{} pending writes lost or torn", report.writes_torn),
        format!("{} sectors left as garbage", report.garbage_sectors),
        format!("{} namespace changes undone", report.entries_undone),
    ]
}

/// An error as a step's outcome: its ESE name and code.
/// The session a step acts in, if it is a session's.
fn step_session(step: &Step) -> Option<u8> {
    match *step {
        Step::Begin { s }
        | Step::Put { s, .. }
        | Step::Delete { s, .. }
        | Step::Get { s, .. }
        | Step::Scan { s, .. }
        | Step::Commit { s, .. }
        | Step::Rollback { s }
        | Step::Bulk { s, .. }
        | Step::DeleteRange { s, .. } => Some(s),
        _ => None,
    }
}

fn error_outcome(e: &JetError) -> String {
    format!("{} ({})", e.name(), e.code())
}

/// A value read, as a step's outcome: which value (its id) and its length, or nothing.
fn show_value(v: Option<&[u8]>) -> String {
    match v {
        None => "not found".to_owned(),
        Some(b) if b.len() >= 4 => format!(
            "value #{} ({} bytes)",
            u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
            b.len()
        ),
        Some(b) => format!("{} bytes", b.len()),
    }
}
