//! Engine regressions that need the simulated disk (page cache against durable content,
//! fsyncgate, power loss, a full disk), found by a review of the recovery changes: each test
//! failed on the engine before its fix.

use std::path::Path;
use std::sync::Arc;

use jetdb::{CommitMode, Env, Instance, InstanceParams, SeededEntropy};
use jetsim::trace::Trace;
use jetsim::{ArmedFault, Device, IoFault, SimClock, SimVfs, Zone};

fn setup(seed: u64, device: Device) -> (SimVfs, Env) {
    let vfs = SimVfs::new(device, seed, Trace::default());
    vfs.mkdir_durable(Path::new("inst"));
    let env = Env::new(
        Arc::new(vfs.clone()),
        Arc::new(SimClock::new()),
        Arc::new(SeededEntropy::new(seed)),
    );
    (vfs, env)
}

fn params() -> InstanceParams {
    let mut p = InstanceParams::in_directory("inst");
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p.cache_size = 256 * 4096;
    p.checkpoint_depth = 1 << 40;
    p
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn commit(inst: &Instance, from: u32, n: u32) {
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in from..from + n {
        s.begin_transaction().unwrap();
        s.put(t, &key(i), &[5u8; 3000]).unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
    }
}

/// `CheckpointFile::write` leaves `mirrored` true when the second slot's write or
/// fsync fails (a non-fatal error: the instance keeps running). `oldest()` then claims both
/// slots hold the new position while the second still holds the previous one, and the next
/// checkpoint call (no new log, so no write) or term deletes the generations that slot needs.
/// If the newer slot is later damaged, recovery falls back to the other one and its logs are
/// gone: JET_errMissingLogFile, the very case `oldest()` exists to prevent.
#[test]
fn a_failed_second_checkpoint_slot_keeps_the_logs_the_other_slot_needs() {
    let (vfs, env) = setup(7, Device::default());
    let mut p = params();
    p.circular_logging = true;
    let inst = Instance::new(env.clone(), p.clone());
    inst.init().unwrap();
    inst.begin_session().unwrap().create_table("t").unwrap();
    commit(&inst, 0, 100);
    inst.checkpoint().unwrap();
    let p0 = inst.checkpoint_position().unwrap().unwrap();
    commit(&inst, 100, 100);
    assert!(inst.log_position().unwrap().unwrap().generation >= p0.generation + 2);
    // The first slot's fsync succeeds, the second's fails and loses its write (fsyncgate).
    vfs.arm(ArmedFault {
        kind: IoFault::Fsyncgate,
        zone: Zone::Checkpoint,
        after: 1,
        persistent: false,
    });
    inst.checkpoint().unwrap_err();
    // The instance goes on (a checkpoint failure is not fatal); a later checkpoint with
    // nothing new to write only deletes logs.
    inst.checkpoint().unwrap();
    let deleted = inst.stats().unwrap().logs_deleted;
    vfs.crash();
    drop(inst);
    vfs.restart(true);
    // Bit rot in the newer slot (the one fsynced).
    let chk = vfs.durable_content(Path::new("inst/edb.chk")).unwrap();
    let seq = |slot: usize| u64::from_le_bytes(chk[slot + 12..slot + 20].try_into().unwrap());
    let newer = if seq(0) > seq(4096) { 0 } else { 4096 };
    let gen_at = |slot: usize| u32::from_le_bytes(chk[slot + 20..slot + 24].try_into().unwrap());
    assert!(
        gen_at(4096 - newer) < gen_at(newer),
        "the other slot still holds the old position"
    );
    assert!(vfs.flip_bit(Path::new("inst/edb.chk"), newer as u64 + 40, 3));
    let inst = Instance::new(env, p);
    let r = inst.init();
    assert!(
        r.is_ok(),
        "{deleted} generations deleted while a checkpoint slot still needed them: {}",
        r.unwrap_err()
    );
}

/// Recovery after a dirty shutdown copies the current log it read (see
/// `recovery::rewrite_as_read`), so it needs room for one log file. On a full disk it must fail
/// cleanly with `JET_errDiskFull`, changing nothing, and succeed with every commit once room is
/// made. (A review first found the copy failing in the middle; a fallback to an fsync in place
/// was tried and dropped: the simulator showed it giving up the fsyncgate protection.)
#[test]
fn recovery_on_a_full_disk_fails_cleanly_and_succeeds_once_there_is_room() {
    let (vfs, env) = setup(3, Device::default());
    let p = params();
    let inst = Instance::new(env.clone(), p.clone());
    inst.init().unwrap();
    inst.begin_session().unwrap().create_table("t").unwrap();
    commit(&inst, 0, 10);
    vfs.crash();
    drop(inst);
    vfs.restart(false);
    let before = vfs.durable_hash();
    // The disk is full: nothing that allocates log space succeeds.
    vfs.arm(ArmedFault {
        kind: IoFault::DiskFull,
        zone: Zone::Log,
        after: 0,
        persistent: true,
    });
    let inst = Instance::new(env.clone(), p.clone());
    let err = inst.init().unwrap_err();
    assert_eq!(err.kind(), jetdb::ErrorKind::DiskFull, "{err}");
    assert!(err.to_string().contains("room for one log file"), "{err}");
    drop(inst);
    vfs.crash();
    vfs.restart(true);
    assert_eq!(
        vfs.durable_hash(),
        before,
        "a failed recovery changed nothing durable"
    );
    // Room again.
    let inst = Instance::new(env, p);
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in 0..10 {
        assert!(s.get(t, &key(i)).unwrap().is_some(), "commit {i} lost");
    }
}
