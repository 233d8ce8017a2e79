//! The window in `Pager::save_for_backup` between its two takes of the fence's lock
//! (the page read without it). A backup step run *inside* each of the pager's saving reads
//! (the job no longer needs the instance lock, so it runs on its own thread meanwhile) moves
//! the fence past pages the pager chose to save: the set must still restore to the begin.

#![allow(clippy::disallowed_methods, reason = "a backup on another thread")]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jetdb::{BackupFlags, CommitMode, Instance};

mod support;

use support::{Hook, HookedVfs, PAGE, backup_params, contents, env, key, restore_contents};

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

fn loaded(inst: &Instance) {
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
}

fn run(step_pages: usize, rounds: u32) {
    let hook = Arc::new(StepInSave::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    loaded(&inst);
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
    run(1, 6);
}

#[test]
fn steps_inside_the_pagers_saving_reads_larger_steps() {
    run(4, 3);
}
