//! A batch that cannot open its doublewrite file. The file is opened (and created, its
//! directory fsynced) at the first batch with pages after the database is opened; a failure
//! there is an error like any other I/O failure before a batch writes anything, and must
//! leave the batch's pages changed and waiting, so that a later batch writes them.

use std::io;
use std::path::Path;

use jetdb::{CommitMode, Instance, Vfs};

mod support;

use support::{Op, env, key, params, scripted_vfs};

/// Fails the creation of the doublewrite file (or its directory's fsync) during `f`.
fn with_doublewrite_refused<T>(
    vfs: &support::HookedVfs<support::Script>,
    dir_too: bool,
    f: impl FnOnce() -> T,
) -> T {
    vfs.hook.set(move |op| match op {
        Op::Create(p) if p.to_string_lossy().ends_with(".jdw") => Err(io::Error::other(
            "injected: cannot create the doublewrite file",
        )),
        Op::SyncDir(_) if dir_too => Err(io::Error::other("injected EIO on a directory fsync")),
        _ => Ok(()),
    });
    let out = f();
    vfs.hook.clear();
    out
}

fn scenario(dir_too: bool, commit_after: bool) {
    let (vfs, mem) = scripted_vfs();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in 0..50 {
        s.put(t, &key(i), &[1; 300]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    assert!(
        !mem.exists(Path::new("inst/data.edb.jdw")).unwrap(),
        "no batch with pages yet"
    );
    // The first batch with pages: its doublewrite file cannot be made.
    let failed = with_doublewrite_refused(&vfs, dir_too, || inst.checkpoint());
    failed.expect_err("the doublewrite file could not be created");
    // The instance either stopped (every call refused) or goes on with every commit kept.
    let running = inst.stats().is_ok();
    if running {
        if commit_after {
            // Changes the pages the failed batch had taken.
            s.begin_transaction().unwrap();
            for i in 0..50 {
                s.put(t, &key(i), &[2; 300]).unwrap();
            }
            s.commit_transaction(CommitMode::Durable).unwrap();
        }
        inst.checkpoint().unwrap();
        drop(s);
        inst.term().unwrap();
    } else {
        drop(s);
        drop(inst);
    }
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    let want = if running && commit_after { 2 } else { 1 };
    for i in 0..50 {
        assert_eq!(
            s.get(t, &key(i)).unwrap(),
            Some(vec![want; 300]),
            "key {i} after the failed batch (instance running on: {running})"
        );
    }
    inst.check_integrity().unwrap();
    drop(s);
    inst.term().unwrap();
}

#[test]
fn a_doublewrite_file_that_cannot_be_created_loses_nothing_then_commits() {
    scenario(false, true);
}

#[test]
fn a_doublewrite_file_that_cannot_be_created_loses_nothing_at_term() {
    scenario(false, false);
}

#[test]
fn a_doublewrite_directory_fsync_failure_loses_nothing() {
    scenario(true, true);
}
