//! Streamed replay: what recovery's batches must carry from one to the next.

use std::path::Path;

use jetdb::{CommitMode, Instance, InstanceParams, MemVfs, Vfs};

mod support;

use support::{env_over, params};

fn big_key(i: u32) -> Vec<u8> {
    format!("big{i:05}").into_bytes()
}

/// Log files of 4 MiB (more than one 1 MiB piece), no cache pressure, no checkpoint.
fn four_mib_logs() -> InstanceParams {
    let mut p = params("inst");
    p.log_file_size = 4 << 20;
    p.cache_size = 64 * 1024 * 1024;
    p.checkpoint_depth = 1 << 40;
    p
}

/// A group cut off after it spilled into generation 2 is dropped at the restart that follows
/// it there, even when the restart comes in one 1 MiB piece of the replay and the next
/// group's commit only in the next piece: the restart carried across batches still cuts.
#[test]
fn a_restart_whose_next_group_settles_a_piece_later_still_cuts_the_spilled_group() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env_over(vfs.clone()), four_mib_logs());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    let mut i = 0;
    while inst.log_position().unwrap().unwrap().offset < (4 << 20) - 300 * 1024 {
        s.begin_transaction().unwrap();
        s.put(t, &big_key(i), &[1u8; 3000]).unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
        i += 1;
    }
    assert_eq!(inst.log_position().unwrap().unwrap().generation, 1);
    // ~600 KiB lazy: rolls into generation 2, part of it written there, never committed.
    s.begin_transaction().unwrap();
    for j in 0..200 {
        s.put(t, &big_key(10_000 + j), &[2u8; 3000]).unwrap();
    }
    s.commit_transaction(CommitMode::Lazy).unwrap();
    assert_eq!(inst.log_position().unwrap().unwrap().generation, 2);
    drop(s);
    drop(inst); // crash

    let inst = Instance::new(env_over(vfs.clone()), four_mib_logs());
    inst.init().unwrap();
    assert_eq!(
        inst.recovery_report().unwrap().unwrap().transactions_undone,
        1
    );
    let restart_at = inst.log_position().unwrap().unwrap();
    assert!(
        restart_at.generation == 2 && restart_at.offset < 1 << 20,
        "{restart_at}"
    );
    // A durable group of ~1.2 MiB after the restart: its commit lies in the next piece.
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    for j in 0..400 {
        s.put(t, &big_key(20_000 + j), &[3u8; 3000]).unwrap();
    }
    s.commit_transaction(CommitMode::Durable).unwrap();
    assert!(inst.log_position().unwrap().unwrap().offset > 1 << 20);
    drop(s);
    drop(inst); // crash again

    // Without edb.chk, recovery replays from generation 1, across the restart.
    vfs.remove(Path::new("inst/edb.chk")).unwrap();
    let inst = Instance::new(env_over(vfs.clone()), four_mib_logs());
    if let Err(err) = inst.init() {
        panic!("an undamaged log is refused: {err}");
    }
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(
        s.get(t, &big_key(20_399)).unwrap().as_deref(),
        Some(&[3u8; 3000][..])
    );
    assert_eq!(s.get(t, &big_key(10_000)).unwrap(), None);
}

/// A group cut off at the end of the last generation (its records partly written, no
/// commit) is counted as undone: the records after the last commit reach the replay too.
#[test]
fn a_group_open_at_the_end_of_the_log_is_counted_undone() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env_over(vfs.clone()), four_mib_logs());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    s.begin_transaction().unwrap();
    s.put(t, b"a", b"1").unwrap();
    s.commit_transaction(CommitMode::Durable).unwrap();
    // ~600 KiB lazy, within generation 1: write-behind writes part of it.
    s.begin_transaction().unwrap();
    for j in 0..200 {
        s.put(t, &big_key(j), &[2u8; 3000]).unwrap();
    }
    s.commit_transaction(CommitMode::Lazy).unwrap();
    assert_eq!(inst.log_position().unwrap().unwrap().generation, 1);
    drop(s);
    drop(inst); // crash

    let inst = Instance::new(env_over(vfs.clone()), four_mib_logs());
    inst.init().unwrap();
    assert_eq!(
        inst.recovery_report().unwrap().unwrap().transactions_undone,
        1
    );
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(s.get(t, b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.get(t, &big_key(0)).unwrap(), None);
}
