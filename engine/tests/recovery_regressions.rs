//! Regressions a review of the recovery changes made for the simulator's findings found
//! (fsyncgate copies, cut commit groups, checkpoint sequences): each test failed on the engine
//! before its fix.

use std::path::Path;

use jetdb::log::SEGMENT_SIZE;
use jetdb::{CommitMode, ErrorKind, Instance, MemVfs, Vfs};

mod support;

use support::{env_over, params, read_all, reseal_block, write_all};

/// Sets the sequence of every written checkpoint slot to `seq` (checksums fixed up).
fn set_chk_sequence(vfs: &MemVfs, seq: u64) {
    let mut chk = read_all(vfs, "inst/edb.chk");
    for slot in [0, 4096] {
        if slot + 4096 <= chk.len() && chk[slot..slot + 4096].iter().any(|&b| b != 0) {
            chk[slot + 12..slot + 20].copy_from_slice(&seq.to_le_bytes());
            reseal_block(&mut chk, slot);
        }
    }
    write_all(vfs, "inst/edb.chk", &chk);
}

/// a checksum-valid checkpoint whose sequence is u64::MAX - 1 (which `decode`
/// accepts) panics recovery after a dirty shutdown: `replace` adds 1 twice (overflow-checks
/// are on in every profile). Before this change one write per checkpoint needed MAX itself.
#[test]
fn a_checkpoint_sequence_near_its_limit_never_panics_recovery() {
    for seq in [u64::MAX - 1, u64::MAX - 2] {
        let vfs = MemVfs::new();
        let inst = Instance::new(env_over(vfs.clone()), params("inst"));
        inst.init().unwrap();
        let mut s = inst.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        s.begin_transaction().unwrap();
        s.put(t, b"k", b"v").unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
        drop(s);
        drop(inst); // a crash: the database is left DirtyShutdown
        set_chk_sequence(&vfs, seq);
        let r = std::panic::catch_unwind(|| {
            let inst = Instance::new(env_over(vfs.clone()), params("inst"));
            inst.init()?;
            let mut s = inst.begin_session()?;
            let t = s.open_table("t")?;
            s.begin_transaction()?;
            s.put(t, b"k2", b"v")?;
            s.commit_transaction(CommitMode::Durable)?;
            drop(s);
            inst.checkpoint()?;
            inst.term()
        });
        assert!(r.is_ok(), "checkpoint sequence {seq:#x} panics the engine");
    }
}

fn big_key(i: u32) -> Vec<u8> {
    format!("big{i:05}").into_bytes()
}

/// a commit group cut off by a crash after it spilled into the next generation, where
/// write-behind had already written some of its segments there, is not dropped at the
/// mid-generation restart that follows (only a restart at the very start of a generation is
/// handled). A replay that crosses it — recovery without `edb.chk`, which starts at
/// generation 1 — counts the cut group's pages into the next group and reports
/// JET_errLogFileCorrupt for a log that is not damaged.
#[test]
fn a_cut_group_spanning_a_roll_is_dropped_at_a_mid_generation_restart() {
    let vfs = MemVfs::new();
    let mut p = params("inst");
    p.log_file_size = 512 * 1024; // > the 256 KiB write-behind threshold
    p.cache_size = 64 * 1024 * 1024; // no cache pressure flushes
    p.checkpoint_depth = 1 << 40; // no automatic checkpoint
    let inst = Instance::new(env_over(vfs.clone()), p.clone());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    // Fill generation 1 to ~300 KiB with small durable commits.
    let mut i = 0;
    while inst.log_position().unwrap().unwrap().offset < 300 * 1024 {
        s.begin_transaction().unwrap();
        s.put(t, &big_key(i), &[1u8; 3000]).unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
        i += 1;
    }
    assert_eq!(inst.log_position().unwrap().unwrap().generation, 1);
    // One big lazy group (~600 KiB of puts): it rolls into generation 2, where write-behind
    // writes 256 KiB of it; its commit record stays in memory.
    s.begin_transaction().unwrap();
    for j in 0..200 {
        s.put(t, &big_key(10_000 + j), &[2u8; 3000]).unwrap();
    }
    s.commit_transaction(CommitMode::Lazy).unwrap();
    assert_eq!(inst.log_position().unwrap().unwrap().generation, 2);
    drop(s);
    drop(inst); // crash: the big group is cut off
    let log = read_all(&vfs, "inst/edb.log");
    let written = (1..log.len() / SEGMENT_SIZE)
        .filter(|&k| {
            log[k * SEGMENT_SIZE..(k + 1) * SEGMENT_SIZE]
                .iter()
                .any(|&b| b != 0)
        })
        .count();
    assert!(
        written > 0,
        "write-behind wrote part of the group into generation 2"
    );

    // Recovery drops the cut group; the writer resumes mid-generation with a restart flag.
    let inst = Instance::new(env_over(vfs.clone()), p.clone());
    inst.init().unwrap();
    assert_eq!(
        inst.recovery_report().unwrap().unwrap().transactions_undone,
        1
    );
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    s.put(t, b"after", b"restart").unwrap();
    s.commit_transaction(CommitMode::Durable).unwrap();
    drop(s);
    drop(inst); // crash again

    // Recovery without the checkpoint file starts at generation 1 (first_gen == 1).
    vfs.remove(Path::new("inst/edb.chk")).unwrap();
    let inst = Instance::new(env_over(vfs.clone()), p);
    let r = inst.init();
    assert!(
        r.is_ok(),
        "an undamaged log is reported corrupt: {}",
        r.unwrap_err()
    );
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(
        s.get(t, b"after").unwrap().as_deref(),
        Some(&b"restart"[..])
    );
}

/// `rewrite_as_read` runs before the checks that can still refuse the log (here:
/// the checkpoint lies beyond the valid prefix, so the invalid segment was durable and is
/// damage, not a tear). It replaces `edb.log` by a copy that keeps only the valid prefix, so
/// the damaged segment and every durable segment after it are zeroed on the way to
/// JET_errLogFileCorrupt: the evidence (and the durable commits after the damage) is gone.
#[test]
fn a_refused_log_is_left_as_it_was() {
    let vfs = MemVfs::new();
    let mut p = params("inst");
    p.checkpoint_depth = 1 << 40;
    let inst = Instance::new(env_over(vfs.clone()), p.clone());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    inst.flush_log().unwrap();
    let before = inst.log_position().unwrap().unwrap();
    // Several segments' worth of lazy commits, made durable by one flush (the checkpoint's):
    // no later segment's durable mark vouches for any of them.
    for i in 0..8 {
        s.begin_transaction().unwrap();
        s.put(t, &big_key(i), &[3u8; 3000]).unwrap();
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
    drop(s);
    inst.checkpoint().unwrap();
    let chk = inst.checkpoint_position().unwrap().unwrap();
    drop(inst); // crash after the checkpoint: DirtyShutdown
    // Bit rot in the first segment of that flush.
    let mut log = read_all(&vfs, "inst/edb.log");
    let seg = (before.offset as usize) / SEGMENT_SIZE;
    assert!(chk.offset as usize / SEGMENT_SIZE > seg + 1);
    log[seg * SEGMENT_SIZE + 100] ^= 0x10;
    write_all(&vfs, "inst/edb.log", &log);

    let inst = Instance::new(env_over(vfs.clone()), p);
    let err = inst.init().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    let after = read_all(&vfs, "inst/edb.log");
    let zeroed = (seg..log.len() / SEGMENT_SIZE)
        .filter(|&k| {
            let r = k * SEGMENT_SIZE..(k + 1) * SEGMENT_SIZE;
            log[r.clone()] != after[r.clone()]
        })
        .count();
    assert_eq!(
        zeroed, 0,
        "the refused edb.log was rewritten: {zeroed} segments from the damaged one on are gone"
    );
}
