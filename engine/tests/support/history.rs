//! A running instance whose every commit is remembered, for the tests of restore to a point
//! (`restore_point.rs`): each commit's time, stamped by a clock that moves 10 ms before each (so
//! a time names one commit exactly), and what the instance held right after it.

use std::path::Path;
use std::sync::Arc;

use jetdb::log::{self as jetlog, Record};
use jetdb::{
    BackupFlags, Clock, CommitMode, Env, ErrorKind, Instance, Lgpos, ManualClock, MemVfs,
    RestoreOptions, RestorePoint, RestoreSummary, SeededEntropy, Vfs,
};

use super::{Contents, backup_params, contents, key, read_all, tree, write_all};

pub const TICK_NANOS: u64 = 10_000_000;

/// A running instance whose every commit is remembered: when it was stamped, and what the
/// instance held right after it.
pub struct History {
    pub vfs: MemVfs,
    pub clock: Arc<ManualClock>,
    pub inst: Instance,
    /// (commit time in ms, contents after it), in commit order.
    pub commits: Vec<(u64, Contents)>,
    /// Each backup's begin time, in order.
    pub backups: Vec<u64>,
}

impl History {
    pub fn new() -> History {
        let vfs = MemVfs::new();
        let clock = Arc::new(ManualClock::new(1_000));
        let inst = Instance::new(env(&vfs, &clock), backup_params("inst"));
        inst.init().unwrap();
        let mut history = History {
            vfs,
            clock,
            inst,
            commits: Vec::new(),
            backups: Vec::new(),
        };
        history.clock.advance(TICK_NANOS);
        let mut s = history.inst.begin_session().unwrap();
        s.create_table("t").unwrap();
        history.remember();
        history
    }

    pub fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    pub fn remember(&mut self) {
        let now = self.now();
        self.commits.push((now, contents(&self.inst)));
    }

    /// `n` commits, each a few puts and a delete, each durable (so each seals a segment and
    /// the log rolls every thirty or so).
    pub fn commit(&mut self, n: u32) {
        let mut s = self.inst.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        for _ in 0..n {
            let i = self.commits.len() as u32;
            self.clock.advance(TICK_NANOS);
            s.begin_transaction().unwrap();
            for j in 0..4 {
                s.put(t, &key(i * 3 + j), format!("v{i}-{j}").as_bytes())
                    .unwrap();
            }
            s.delete(t, &key(i)).unwrap();
            s.commit_transaction(CommitMode::Durable).unwrap();
            self.remember();
        }
    }

    pub fn backup(&mut self, flags: BackupFlags) {
        self.clock.advance(TICK_NANOS / 2);
        self.backups.push(self.now());
        self.inst
            .backup(Some(Path::new("bk")), flags, None)
            .unwrap();
    }

    /// What the instance held after the last commit stamped at or before `millis`.
    pub fn at(&self, millis: u64) -> &Contents {
        &self
            .commits
            .iter()
            .rev()
            .find(|(at, _)| *at <= millis)
            .expect("a commit before")
            .1
    }

    /// A full backup, then `incrementals` incremental ones, with commits before and between,
    /// and more after the last.
    pub fn with_backups(incrementals: usize) -> History {
        let mut h = History::new();
        h.commit(40);
        h.backup(BackupFlags::NONE);
        for _ in 0..incrementals {
            h.commit(45);
            h.backup(BackupFlags::INCREMENTAL);
        }
        h.commit(50);
        h
    }

    /// Restores the backup into a new place `to` with `options`: the summary and what the
    /// restored instance holds (checked whole), or the error.
    pub fn restore(
        &self,
        to: &str,
        options: &RestoreOptions,
    ) -> jetdb::Result<(RestoreSummary, Contents)> {
        self.restore_into(backup_params(to), options)
    }

    /// [`History::restore`] into an instance of `params`.
    pub fn restore_into(
        &self,
        params: jetdb::InstanceParams,
        options: &RestoreOptions,
    ) -> jetdb::Result<(RestoreSummary, Contents)> {
        let inst = Instance::new(env(&self.vfs, &self.clock), params);
        let summary = inst.restore_with(Path::new("bk"), options, None)?;
        inst.init()?;
        inst.check_integrity()?;
        let held = contents(&inst);
        inst.term()?;
        Ok((summary, held))
    }

    /// Opens the instance restored into `dir` and makes `n` durable commits, each putting
    /// `key` to the commit's number (little-endian u32), a clock tick apart: a restored
    /// instance writing on. It comes back running.
    pub fn write_on(&self, dir: &str, key: &[u8], n: u32) -> Instance {
        let inst = Instance::new(env(&self.vfs, &self.clock), backup_params(dir));
        inst.init().unwrap();
        let mut s = inst.begin_session().unwrap();
        let t = s.open_table("t").unwrap();
        for i in 0..n {
            self.clock.advance(TICK_NANOS);
            s.begin_transaction().unwrap();
            s.put(t, key, &i.to_le_bytes()).unwrap();
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        inst
    }

    /// Copies the live instance's log files to `dir`, as they are now: what survives of a
    /// server whose database is lost.
    pub fn save_live_logs(&self, dir: &str) {
        self.vfs.create_dir_all(Path::new(dir)).unwrap();
        for name in self.vfs.list(Path::new("inst")).unwrap() {
            if name.ends_with(".log") {
                let bytes = read_all(&self.vfs, Path::new("inst").join(&name));
                write_all(&self.vfs, Path::new(dir).join(&name), &bytes);
            }
        }
    }

    /// The commit records of the backup set's logs: where each begins, its time.
    pub fn set_commits(&self) -> Vec<(Lgpos, u64)> {
        let set = Path::new("bk").join("set-00000001");
        let mut names = self.vfs.list(&set).unwrap();
        names.sort();
        let mut out = Vec::new();
        for name in names.iter().filter(|n| n.ends_with(".log")) {
            let bytes = read_all(&self.vfs, set.join(name));
            let scan = jetlog::scan(&bytes, name).unwrap();
            for (at, record) in scan.records {
                if let Record::Commit(c) = record {
                    out.push((at, c.millis));
                }
            }
        }
        out
    }
    /// The commit records of the log files in `dir`: where each begins, its time.
    pub fn commits_in(&self, dir: &str) -> Vec<(Lgpos, u64)> {
        let mut names = self.vfs.list(Path::new(dir)).unwrap();
        names.retain(|n| n.ends_with(".log") && n != "edbtmp.log");
        let mut out = Vec::new();
        for name in names {
            let bytes = read_all(&self.vfs, Path::new(dir).join(&name));
            let scan = jetlog::scan(&bytes, &name).unwrap();
            for (at, record) in scan.records {
                if let Record::Commit(c) = record {
                    out.push((at, c.millis));
                }
            }
        }
        out.sort();
        out
    }

    /// The time of the last commit at or before `millis`.
    pub fn at_time(&self, millis: u64) -> u64 {
        self.commits
            .iter()
            .rev()
            .find(|(at, _)| *at <= millis)
            .expect("a commit before")
            .0
    }
}

pub fn env(vfs: &MemVfs, clock: &Arc<ManualClock>) -> Env {
    Env::new(
        Arc::new(vfs.clone()),
        clock.clone(),
        Arc::new(SeededEntropy::new(1)),
    )
}

pub fn until(point: RestorePoint) -> RestoreOptions {
    RestoreOptions {
        until: Some(point),
        ..RestoreOptions::default()
    }
}

pub fn kind<T: std::fmt::Debug>(result: jetdb::Result<T>) -> ErrorKind {
    result.expect_err("refused").kind()
}

/// Every file under `dir`, directories left out.
pub fn files(vfs: &MemVfs, dir: &str) -> Vec<String> {
    tree(vfs, Path::new(dir))
        .into_iter()
        .filter(|(_, content)| content.is_some())
        .map(|(name, _)| name)
        .collect()
}
