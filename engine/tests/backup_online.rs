//! A backup beside a busy instance: the database read without the instance lock (commits and
//! checkpoints made *during* a read of the pages still leave the copy at the begin's state,
//! and so do backup steps run inside the pager's reads that save a page for the backup, or
//! while a commit holds the instance lock),
//! a backup stopped from another thread (`Instance::stop_backup`: -801, nothing left behind,
//! nothing truncated), and the rate limit (`BackupOptions::max_rate`).

#![allow(
    clippy::disallowed_methods,
    reason = "a backup stopped from another thread, on real files"
)]

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetdb::{
    BackupFlags, BackupOptions, CommitMode, Env, ErrorKind, Instance, ManualClock, MemVfs,
    SeededEntropy, Vfs,
};

mod support;

use support::{Hook, HookedVfs, PAGE, backup_params, contents, env, key, restore_contents};

type Action = Box<dyn FnMut() + Send>;

/// Runs an action inside every read of several pages of the database file (the backup's
/// reads; the pager reads a page at a time), once at a time.
#[derive(Default)]
struct DuringRead {
    action: Mutex<Option<Action>>,
    busy: AtomicBool,
    fired: AtomicUsize,
}

impl std::fmt::Debug for DuringRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DuringRead")
    }
}

impl Hook for DuringRead {
    fn read_from(&self, path: &Path, _: u64, len: usize) -> std::io::Result<()> {
        if path.ends_with("data.edb") && len > PAGE && !self.busy.swap(true, Ordering::AcqRel) {
            let taken = self.action.lock().unwrap().take();
            if let Some(mut action) = taken {
                action();
                self.fired.fetch_add(1, Ordering::Relaxed);
                *self.action.lock().unwrap() = Some(action);
            }
            self.busy.store(false, Ordering::Release);
        }
        Ok(())
    }
}

/// A running instance of `env` in `dir` with 3,000 records in table `t`.
fn loaded_in(env: Env, dir: &Path) -> Instance {
    let inst = Instance::new(env, backup_params(dir));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for batch in 0..30u32 {
        s.begin_transaction().unwrap();
        for i in batch * 100..batch * 100 + 100 {
            s.put(t, &key(i), &[b'a' + (i % 26) as u8; 150]).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
    inst.checkpoint().unwrap();
    inst
}

/// [`loaded_in`] directory `inst`.
fn loaded(env: Env) -> Instance {
    loaded_in(env, Path::new("inst"))
}

/// A full backup, three pages a step, with a commit of changes all over the table and a
/// checkpoint writing them over the file made *inside* each of its reads of the database:
/// whether it succeeds, and whether its set restores to the state at its begin.
fn backup_with_writes_during_reads(bug: Option<jetdb::planted::PlantedBug>) -> jetdb::Result<()> {
    let hook = Arc::new(DuringRead::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    #[cfg(feature = "planted-bugs")]
    let env = env(vfs.clone()).with_planted_bug(bug);
    #[cfg(not(feature = "planted-bugs"))]
    let env = {
        assert!(
            bug.is_none(),
            "planting a bug needs the planted-bugs feature"
        );
        env(vfs.clone())
    };
    let inst = loaded(env);
    let expected = contents(&inst);
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    let writer = inst.clone();
    let mut round = 0u32;
    *hook.action.lock().unwrap() = Some(Box::new(move || {
        round += 1;
        s.begin_transaction().unwrap();
        for i in (round % 7..3000).step_by(7) {
            s.put(t, &key(i), &round.to_le_bytes()).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
        // The changed pages go over the file now, while the backup reads it.
        writer.checkpoint().unwrap();
    }));
    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    job.set_step_size(3 * PAGE);
    let result = (|| {
        while job.step()? {}
        job.finish()
    })();
    hook.action.lock().unwrap().take();
    assert!(
        hook.fired.load(Ordering::Relaxed) > 20,
        "the writes ran inside many of the backup's reads"
    );
    result?;
    assert_ne!(contents(&inst), expected, "the writes changed the instance");
    inst.term().unwrap();
    let restored = restore_contents(support::env(vfs.inner.clone()), backup_params("r"), "bk")?;
    assert_eq!(
        restored, expected,
        "the backup restores to exactly the state at its begin"
    );
    Ok(())
}

/// The backup reads pages without the instance lock (a commit from inside the read would
/// wait for it forever otherwise), and the fence still gives it each page as it was at the
/// begin: the pager saves a page it overwrites during the read, and the backup asks for the
/// pages saved only once the read is done.
#[test]
fn a_backup_reads_the_database_beside_commits_and_checkpoints() {
    backup_with_writes_during_reads(None).unwrap();
}

/// The same, with the fence moved past the pages before they are read: a page overwritten in
/// between is copied as it is now. The flush map catches it (the page's dbtime is not the one
/// it had at the begin) or the restore differs; either way this must not pass.
#[cfg(feature = "planted-bugs")]
#[test]
fn a_fence_moved_before_the_read_is_caught() {
    let result = backup_with_writes_during_reads(Some(
        jetdb::planted::PlantedBug::BackupFenceMovedBeforeRead,
    ));
    let err = result.expect_err("the page overwritten during the read was copied as it is now");
    assert_eq!(err.kind(), ErrorKind::ReadLostFlushVerifyFailure, "{err}");
}

/// Every file under `dir`, by path.
fn files_under(vfs: &MemVfs, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !vfs.exists(dir).unwrap() {
        return out;
    }
    for name in vfs.list(dir).unwrap() {
        let path = dir.join(&name);
        if vfs.is_dir(&path).unwrap() {
            out.push(format!("{}/", path.display()));
            out.extend(files_under(vfs, &path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// `Instance::stop_backup` fails the running backup at its next step with
/// `JET_errBackupAbortByServer`: what it wrote is removed, the previous backup stays whole,
/// no log is truncated, and the next backup runs as usual.
#[test]
fn a_stopped_backup_fails_with_801_and_leaves_nothing() {
    let vfs = MemVfs::new();
    let inst = loaded(env(vfs.clone()));
    assert!(!inst.stop_backup(), "no backup is running");
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.put(t, b"after-the-first", b"1").unwrap();
    let first = {
        let mut c = contents(&inst);
        c.remove(&("t".to_string(), b"after-the-first".to_vec()));
        c
    };
    let dir_before = files_under(&vfs, Path::new("bk"));
    let logs_before = files_under(&vfs, Path::new("inst"));

    // A full atomic backup stopped between its steps.
    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::ATOMIC, None)
        .unwrap();
    job.set_step_size(4 * PAGE);
    assert!(job.step().unwrap());
    assert!(inst.stop_backup(), "a backup is running");
    let err = job.step().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackupAbortByServer, "{err}");
    assert_eq!(err.code(), -801);
    assert_eq!(
        job.step().unwrap_err().kind(),
        ErrorKind::NoBackup,
        "the job is spent"
    );
    drop(job);
    assert_eq!(files_under(&vfs, Path::new("bk")), dir_before);

    // An incremental backup stopped after its copies, before its commit point.
    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None)
        .unwrap();
    while job.step().unwrap() {}
    assert!(inst.stop_backup());
    let err = job.finish().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackupAbortByServer, "{err}");
    assert_eq!(files_under(&vfs, Path::new("bk")), dir_before);
    assert!(
        !inst.stop_backup(),
        "the stopped backup let go of the instance"
    );
    // Nothing was truncated: every log the instance had is still there (and more).
    let logs_after = files_under(&vfs, Path::new("inst"));
    for log in logs_before.iter().filter(|l| l.ends_with(".log")) {
        assert!(logs_after.contains(log), "{log} was deleted");
    }
    // The previous backup is whole, and the next backup runs as usual.
    assert_eq!(
        restore_contents(env(vfs.clone()), backup_params("r1"), "bk").unwrap(),
        first
    );
    let expected = contents(&inst);
    inst.backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None)
        .unwrap();
    inst.term().unwrap();
    assert_eq!(
        restore_contents(env(vfs.clone()), backup_params("r2"), "bk").unwrap(),
        expected
    );
}

/// A rate-limited backup takes its bytes at the rate: on a clock that moves only when the
/// backup sleeps, the time it slept is the bytes it copied over the rate, within one piece.
#[test]
fn a_rate_limited_backup_copies_at_its_rate() {
    let vfs = MemVfs::new();
    let clock = Arc::new(ManualClock::new(1));
    let env = Env::new(
        Arc::new(vfs.clone()),
        clock.clone(),
        Arc::new(SeededEntropy::new(1)),
    );
    let inst = loaded(env);
    let rate = 256 * 1024;
    let options = BackupOptions {
        max_rate: NonZeroU64::new(rate),
    };
    let before = jetdb::Clock::monotonic_nanos(&*clock);
    let summary = inst
        .backup_with(Some(Path::new("bk")), BackupFlags::NONE, &options, None)
        .unwrap();
    let slept = jetdb::Clock::monotonic_nanos(&*clock) - before;
    let bytes = summary.database_bytes + summary.log_bytes;
    let due = bytes * 1_000_000_000 / rate;
    // The largest piece: a step's 1 MiB of pages (more than a 128 KiB log generation).
    let piece = 1024 * 1024 * 1_000_000_000 / rate;
    assert!(bytes > 4 * 128 * 1024, "the backup copied {bytes} bytes");
    assert!(
        slept >= due.saturating_sub(piece) && slept <= due,
        "slept {slept} ns for {bytes} bytes at {rate} bytes/s (due {due} ns)"
    );
    // Unlimited, it does not sleep at all.
    let before = jetdb::Clock::monotonic_nanos(&*clock);
    inst.backup(Some(Path::new("bk2")), BackupFlags::NONE, None)
        .unwrap();
    assert_eq!(jetdb::Clock::monotonic_nanos(&*clock), before);
    inst.term().unwrap();
}

/// A backup stopped from another thread while it runs, on real files: it fails with -801 and
/// its directory is left empty.
#[test]
fn a_backup_stopped_from_another_thread_leaves_an_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let inst_dir = tmp.path().join("inst");
    let bk = tmp.path().join("bk");
    std::fs::create_dir(&bk).unwrap();
    let inst = loaded_in(Env::os(), &inst_dir);
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = inst.clone();
    let to = bk.clone();
    let backup = std::thread::spawn(move || {
        // Slow enough to be running when the stop comes: 64 KiB a second.
        let options = BackupOptions {
            max_rate: NonZeroU64::new(64 * 1024),
        };
        let mut told = false;
        let mut status = |_: &jetdb::Status| {
            if !told {
                told = true;
                tx.send(()).unwrap();
            }
            Ok(())
        };
        runner.backup_with(Some(&to), BackupFlags::NONE, &options, Some(&mut status))
    });
    rx.recv().unwrap();
    assert!(inst.stop_backup());
    let err = backup.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackupAbortByServer, "{err}");
    assert_eq!(std::fs::read_dir(&bk).unwrap().count(), 0);
    inst.term().unwrap();
}

/// Holds a durable commit inside its log fsync — under the instance lock — until the
/// backup says it has copied everything, or for at most 30 s.
#[derive(Debug, Default)]
struct HoldInCommit {
    armed: AtomicBool,
    reached: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    copied: Mutex<bool>,
    copied_cv: std::sync::Condvar,
    waited_out: AtomicBool,
}

impl Hook for HoldInCommit {
    fn sync_of(&self, path: &Path) -> std::io::Result<()> {
        let is_log = path.starts_with("inst") && path.extension().is_some_and(|e| e == "log");
        if is_log && self.armed.swap(false, Ordering::AcqRel) {
            if let Some(reached) = self.reached.lock().unwrap().take() {
                reached.send(()).unwrap();
            }
            let copied = self.copied.lock().unwrap();
            let (copied, timeout) = self
                .copied_cv
                .wait_timeout_while(copied, std::time::Duration::from_secs(30), |c| !*c)
                .unwrap();
            if timeout.timed_out() && !*copied {
                self.waited_out.store(true, Ordering::Release);
            }
        }
        Ok(())
    }
}

/// A writer that keeps the instance lock (here: one commit held inside its log fsync) does
/// not hold up the copy: every step of a full backup, database pages and logs, runs while the
/// lock is held, and the set still restores to the state at the begin. A copy that took the
/// instance lock for its bookkeeping would wait the 30 s out.
#[test]
fn a_backup_copies_while_a_commit_holds_the_instance_lock() {
    let hook = Arc::new(HoldInCommit::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let inst = loaded(env(vfs.clone()));
    let expected = contents(&inst);
    let (begun_tx, begun_rx) = std::sync::mpsc::channel();
    let (reached_tx, reached_rx) = std::sync::mpsc::channel();
    *hook.reached.lock().unwrap() = Some(reached_tx);
    let runner = inst.clone();
    let backup_hook = Arc::clone(&hook);
    let backup = std::thread::spawn(move || {
        let mut job = runner.begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)?;
        job.set_step_size(3 * PAGE);
        begun_tx.send(()).unwrap();
        reached_rx.recv().unwrap();
        let mut steps = 0;
        while job.step()? {
            steps += 1;
        }
        *backup_hook.copied.lock().unwrap() = true;
        backup_hook.copied_cv.notify_all();
        job.finish().map(|summary| (steps, summary))
    });
    begun_rx.recv().unwrap();
    hook.armed.store(true, Ordering::Release);
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    s.put(t, &key(1), b"after the begin").unwrap();
    s.commit_transaction(CommitMode::Durable).unwrap();
    let (steps, summary) = backup.join().unwrap().unwrap();
    assert!(
        !hook.waited_out.load(Ordering::Acquire),
        "the backup's copy waited for the instance lock"
    );
    assert!(steps > 10, "the copy took many steps ({steps})");
    assert!(summary.database_bytes > 0);
    inst.term().unwrap();
    let restored =
        restore_contents(support::env(vfs.inner.clone()), backup_params("r"), "bk").unwrap();
    assert_eq!(restored, expected, "the set holds the state at the begin");
}

/// Fails the pager's one-page reads of the database file while armed: the reads that save a
/// page for the running backup before a checkpoint overwrites it.
#[derive(Debug, Default)]
struct FailSavingReads {
    armed: AtomicBool,
    failed: AtomicUsize,
}

impl Hook for FailSavingReads {
    fn read_from(&self, path: &Path, _: u64, len: usize) -> std::io::Result<()> {
        if self.armed.load(Ordering::Acquire) && path.ends_with("data.edb") && len == PAGE {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::other("injected EIO"));
        }
        Ok(())
    }
}

/// A page the fence could not save (its read failed) fails the backup at its next step with
/// the read's error, and the backup leaves nothing; the instance, whose own write went on,
/// serves on and the next backup succeeds.
#[test]
fn a_page_the_fence_could_not_save_fails_the_backup() {
    let hook = Arc::new(FailSavingReads::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let inst = loaded(env(vfs.clone()));
    let mut job = inst
        .begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    job.set_step_size(3 * PAGE);
    assert!(job.step().unwrap());
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in (0..3000).step_by(7) {
        s.put(t, &key(i), b"changed during the backup").unwrap();
    }
    s.commit_transaction(CommitMode::Lazy).unwrap();
    hook.armed.store(true, Ordering::Release);
    inst.checkpoint().unwrap();
    hook.armed.store(false, Ordering::Release);
    assert!(
        hook.failed.load(Ordering::Relaxed) > 0,
        "a saving read failed"
    );
    let err = job.step().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DiskIO, "{err}");
    assert!(
        err.message().contains("to keep it for the running backup"),
        "{err}"
    );
    assert_eq!(
        files_under(&vfs.inner, Path::new("bk")),
        Vec::<String>::new()
    );
    drop(job);
    let expected = contents(&inst);
    inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
        .unwrap();
    inst.term().unwrap();
    let restored =
        restore_contents(support::env(vfs.inner.clone()), backup_params("r"), "bk").unwrap();
    assert_eq!(restored, expected);
}

#[derive(Debug, Default)]
struct StepInSave {
    armed: AtomicBool,
    /// To the backup thread: run one step; and its answer.
    ask: Mutex<Option<(Sender<()>, Receiver<bool>)>>,
    fired: AtomicUsize,
    /// Only the writer's reads (the pager's) fire it.
    writer: Mutex<Option<std::thread::ThreadId>>,
}

impl Hook for StepInSave {
    fn read_from(&self, path: &Path, _: u64, len: usize) -> std::io::Result<()> {
        let writer = *self.writer.lock().unwrap() == Some(std::thread::current().id());
        if writer && path.ends_with("data.edb") && len == PAGE && self.armed.load(Ordering::Acquire)
        {
            let ask = self.ask.lock().unwrap();
            if let Some((tx, rx)) = ask.as_ref() {
                tx.send(()).unwrap();
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(true) => {
                        self.fired.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(_) => panic!("the backup step waited for the instance lock"),
                }
            }
        }
        Ok(())
    }
}

/// Backup steps run *inside* the pager's one-page reads that save a page for the backup
/// before a checkpoint overwrites it — between the fence's two locks in
/// `Pager::save_for_backup` (the job needs no instance lock, so it runs on its own thread
/// meanwhile) — move the fence past pages the pager chose to save: the set must still restore
/// to the begin.
fn steps_inside_saving_reads(step_pages: usize, rounds: u32) {
    let hook = Arc::new(StepInSave::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let inst = loaded(env(vfs.clone()));
    let expected = contents(&inst);
    let (step_tx, step_rx) = channel::<()>();
    let (done_tx, done_rx) = channel::<bool>();
    let (finish_tx, finish_rx) = channel::<()>();
    let (begun_tx, begun_rx) = channel::<()>();
    let runner = inst.clone();
    let backup = std::thread::spawn(move || {
        let mut job = runner.begin_backup(Some(Path::new("bk")), BackupFlags::NONE, None)?;
        job.set_step_size(step_pages * PAGE);
        begun_tx.send(()).unwrap();
        let mut more = true;
        loop {
            if finish_rx.try_recv().is_ok() {
                break;
            }
            if step_rx.recv_timeout(Duration::from_millis(5)).is_ok() {
                let ran = more;
                if more {
                    more = job.step()?;
                }
                done_tx.send(ran).unwrap();
            }
        }
        while job.step()? {}
        job.finish()
    });
    begun_rx.recv().unwrap();
    *hook.ask.lock().unwrap() = Some((step_tx, done_rx));
    *hook.writer.lock().unwrap() = Some(std::thread::current().id());
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for round in 1..=rounds {
        s.begin_transaction().unwrap();
        for i in (round % 5..3000).step_by(5) {
            s.put(t, &key(i), &round.to_le_bytes()).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
        hook.armed.store(true, Ordering::Release);
        inst.checkpoint().unwrap();
        hook.armed.store(false, Ordering::Release);
    }
    finish_tx.send(()).unwrap();
    backup.join().unwrap().unwrap();
    assert!(
        hook.fired.load(Ordering::Relaxed) > 5,
        "steps ran inside the pager's saving reads ({})",
        hook.fired.load(Ordering::Relaxed)
    );
    inst.term().unwrap();
    let restored =
        restore_contents(support::env(vfs.inner.clone()), backup_params("r"), "bk").unwrap();
    assert_eq!(restored, expected, "the set holds the state at the begin");
}

#[test]
fn steps_inside_the_pagers_saving_reads_small_steps() {
    steps_inside_saving_reads(1, 6);
}

#[test]
fn steps_inside_the_pagers_saving_reads_larger_steps() {
    steps_inside_saving_reads(4, 3);
}
