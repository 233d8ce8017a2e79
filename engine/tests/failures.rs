//! Failures in the middle of a commit or after it, stale handles across inits, a database
//! changed with logging off, and crafted log and checkpoint files. Each test was found by
//! review and failed on the engine before its fix.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use jetdb::log::{GENERATION_MAX, SEGMENT_SIZE};
use jetdb::{CommitMode, ErrorKind, Instance, MemVfs, Vfs};

/// A `MemVfs` whose reads of one file, or writes to another, can be made to fail.
type FailVfs = support::HookedVfs<support::FailFiles>;

mod support;

use support::{env, key, params, read_all, reseal_block, write_all};

/// A read error while a commit reads the values it replaces (another transaction is open)
/// comes before any change: the commit fails, nothing of it is applied or logged.
/// Any failure after the first change would stop the instance instead.
#[test]
fn a_read_error_in_a_commit_applies_nothing_of_it() {
    let vfs: FailVfs = support::failing_vfs();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for batch in 0..60 {
        s.begin_transaction().unwrap();
        for i in batch * 100..batch * 100 + 100 {
            s.put(t, &key(i), &[7u8; 200]).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
    inst.checkpoint().unwrap(); // everything clean, evictable
    for i in 0..3000 {
        s.get(t, &key(i)).unwrap(); // the cache now holds the first half, not k05999's leaf
    }
    s.get(t, &key(0)).unwrap();
    let mut reader = inst.begin_session().unwrap();
    reader.begin_transaction().unwrap(); // another transaction is open: commits keep versions
    s.begin_transaction().unwrap();
    s.put(t, &key(0), b"FAILED-TX").unwrap();
    s.put(t, &key(5999), b"FAILED-TX").unwrap();
    *vfs.hook.fail_reads_of.lock().unwrap() = Some("inst/data.edb".into());
    let err = s.commit_transaction(CommitMode::Durable).unwrap_err();
    *vfs.hook.fail_reads_of.lock().unwrap() = None;
    assert_eq!(err.kind(), ErrorKind::DiskIO, "{err}");
    reader.rollback().unwrap();
    let mut other = inst.begin_session().unwrap();
    assert_eq!(other.get(t, &key(0)).unwrap(), Some(vec![7u8; 200]));
    other.put(t, b"unrelated", b"x").unwrap();
    drop((s, other, reader));
    // Crash (no term) and recover: the failed commit is nowhere.
    drop(inst);
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(s.get(t, &key(0)).unwrap(), Some(vec![7u8; 200]));
    assert_eq!(s.get(t, &key(5999)).unwrap(), Some(vec![7u8; 200]));
    assert_eq!(s.get(t, b"unrelated").unwrap(), Some(b"x".to_vec()));
    drop(s);
    inst.term().unwrap();
}

/// A failure in the work after a commit (here the checkpoint write) does not fail the commit,
/// which is logged and durable; it stops the instance.
#[test]
fn a_failure_after_a_commit_does_not_fail_it() {
    let vfs: FailVfs = support::failing_vfs();
    let mut p = params("inst");
    p.checkpoint_depth = 0; // checkpoint after every commit
    let inst = Instance::new(env(vfs.clone()), p);
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    *vfs.hook.fail_writes_to.lock().unwrap() = Some("inst/edb.chk".into());
    s.begin_transaction().unwrap();
    s.put(t, b"k", b"v").unwrap();
    // The commit is logged and durable: it succeeds. The failed checkpoint after it stops
    // the instance.
    s.commit_transaction(CommitMode::Durable).unwrap();
    *vfs.hook.fail_writes_to.lock().unwrap() = None;
    assert_eq!(
        s.get(t, b"k").unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    drop(s);
    // Released without a clean shutdown, and says so.
    assert_eq!(
        inst.term().unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(s.get(t, b"k").unwrap(), Some(b"v".to_vec()));
}

/// A table handle kept across term + init passes check_table and writes into another table.
#[test]
fn handles_of_an_earlier_init_are_refused() {
    let inst = Instance::new(env(MemVfs::new()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let z = s.create_table("z").unwrap();
    s.delete_table("z").unwrap();
    let a = s.create_table("a").unwrap();
    // Within one init the stale handle is refused:
    assert_eq!(
        s.put(z, b"x", b"y").unwrap_err().kind(),
        ErrorKind::InvalidTableId
    );
    inst.term().unwrap();
    inst.init().unwrap();
    // The same session (or any new one) with the old handle of the deleted table "z":
    assert_eq!(
        s.put(z, b"written-via-z", b"oops").unwrap_err().kind(),
        ErrorKind::InvalidSesid,
        "a session of an earlier init"
    );
    let mut s = inst.begin_session().unwrap();
    assert_eq!(
        s.put(z, b"written-via-z", b"oops").unwrap_err().kind(),
        ErrorKind::InvalidTableId,
        "a table handle of an earlier init"
    );
    assert_eq!(
        s.put(a, b"written-via-a", b"oops").unwrap_err().kind(),
        ErrorKind::InvalidTableId
    );
    let a2 = s.open_table("a").unwrap();
    assert_eq!(s.get(a2, b"written-via-z").unwrap(), None);
}

/// A clean instance whose log and checkpoint say generation `g` (checksums fixed up).
fn clean_at_generation(g: u32) -> MemVfs {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    s.create_table("t").unwrap();
    drop(s);
    inst.term().unwrap();
    let mut log = read_all(&vfs, "inst/edb.log");
    log[12..16].copy_from_slice(&g.to_le_bytes());
    reseal_block(&mut log, 0);
    for seg in 1..log.len() / SEGMENT_SIZE {
        let at = seg * SEGMENT_SIZE;
        if log[at..at + SEGMENT_SIZE].iter().any(|&b| b != 0) {
            log[at + 4..at + 8].copy_from_slice(&g.to_le_bytes());
            reseal_block(&mut log, at);
        }
    }
    write_all(&vfs, "inst/edb.log", &log);
    let mut chk = read_all(&vfs, "inst/edb.chk");
    for slot in [0, 4096] {
        if slot + 4096 <= chk.len() && chk[slot..slot + 4096].iter().any(|&b| b != 0) {
            chk[slot + 20..slot + 24].copy_from_slice(&g.to_le_bytes());
            reseal_block(&mut chk, slot);
        }
    }
    write_all(&vfs, "inst/edb.chk", &chk);
    vfs
}

/// At the last generation the roll fails after the commit's changes are applied to the
/// trees: that is fatal, the failed commit is never visible nor durable, and nothing panics.
#[test]
fn the_last_generation_stops_the_instance_without_a_trace_of_the_failed_commit() {
    let vfs = clean_at_generation(GENERATION_MAX - 1);
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    let mut failed_key = None;
    for i in 0..1000u32 {
        s.begin_transaction().unwrap();
        s.put(t, &key(i), &[1u8; 5000]).unwrap();
        if let Err(err) = s.commit_transaction(CommitMode::Durable) {
            assert_eq!(err.kind(), ErrorKind::LogWriteFail, "{err}");
            failed_key = Some(key(i));
            break;
        }
    }
    let failed_key = failed_key.expect("the log ran out of generations");
    assert_eq!(
        inst.checkpoint().unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    drop(s);
    // Released without a clean shutdown, and says so.
    assert_eq!(
        inst.term().unwrap_err().kind(),
        ErrorKind::InstanceUnavailable
    );
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    assert_eq!(s.get(t, &failed_key).unwrap(), None);
}

/// A checksum-valid checkpoint whose last_commit or sequence is u64::MAX: never a panic.
#[test]
fn crafted_checkpoint_counters_are_refused() {
    let mut panicked = Vec::new();
    for (field, at) in [("sequence", 12usize), ("last_commit", 68)] {
        let vfs = clean_at_generation(1);
        let mut chk = read_all(&vfs, "inst/edb.chk");
        for slot in [0, 4096] {
            if slot + 4096 <= chk.len() && chk[slot..slot + 4096].iter().any(|&b| b != 0) {
                chk[slot + at..slot + at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
                reseal_block(&mut chk, slot);
            }
        }
        write_all(&vfs, "inst/edb.chk", &chk);
        let r = std::panic::catch_unwind(|| {
            let inst = Instance::new(env(vfs.clone()), params("inst"));
            if let Err(e) = inst.init() {
                return format!("init error: {e}");
            }
            let mut s = inst.begin_session().unwrap();
            let t = s.open_table("t").unwrap();
            let r1 = s.put(t, b"k", b"v");
            drop(s);
            let r2 = inst.term();
            format!("put {r1:?}, term {r2:?}")
        });
        assert!(r.is_ok(), "checkpoint {field} = u64::MAX panics");
        panicked.push(r.is_err());
    }
    assert_eq!(
        panicked,
        [false, false],
        "crafted checkpoint counters panic"
    );
}

/// A checksum-valid log header claiming 2 segments: refused, not a panic in the writer.
#[test]
fn a_crafted_small_log_header_is_refused() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    inst.term().unwrap(); // no records: edb.log is a header and blank segments
    let mut log = read_all(&vfs, "inst/edb.log");
    log[20..24].copy_from_slice(&2u32.to_le_bytes());
    reseal_block(&mut log, 0);
    write_all(&vfs, "inst/edb.log", &log);
    let r = std::panic::catch_unwind(|| {
        let inst = Instance::new(env(vfs.clone()), params("inst"));
        inst.init()?;
        let mut s = inst.begin_session()?;
        s.create_table("t").map(|_| ())
    });
    let r = r.expect("a crafted log header panics the writer");
    assert_eq!(r.unwrap_err().kind(), ErrorKind::LogFileCorrupt);
}

/// Checkpoint positions anywhere (inside records, past the end, generation 0): never a panic.
#[test]
fn checkpoint_positions_never_panic() {
    let base = clean_at_generation(1);
    // some traffic so the log has records
    let inst = Instance::new(env(base.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    for i in 0..30 {
        s.put(t, &key(i), &[3u8; 900]).unwrap();
    }
    drop(s);
    drop(inst); // crash: dirty
    let chk0 = read_all(&base, "inst/edb.chk");
    let stop = AtomicBool::new(false);
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for g in [0u32, 1, 2, u32::MAX] {
        for off in (0..40_000u32).step_by(211) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let vfs = MemVfs::new();
            vfs.create_dir(Path::new("inst")).unwrap();
            for n in base.list(Path::new("inst")).unwrap() {
                let p = format!("inst/{n}");
                write_all(&vfs, &p, &read_all(&base, &p));
            }
            let mut chk = chk0.clone();
            for slot in [0, 4096] {
                if slot + 4096 <= chk.len() && chk[slot..slot + 4096].iter().any(|&b| b != 0) {
                    chk[slot + 20..slot + 24].copy_from_slice(&g.to_le_bytes());
                    chk[slot + 24..slot + 28].copy_from_slice(&off.to_le_bytes());
                    reseal_block(&mut chk, slot);
                }
            }
            write_all(&vfs, "inst/edb.chk", &chk);
            let r = std::panic::catch_unwind(|| {
                let inst = Instance::new(env(vfs.clone()), params("inst"));
                match inst.init() {
                    Ok(()) => {
                        let mut s = inst.begin_session().unwrap();
                        let t = s.open_table("t").unwrap();
                        let n = s.range(t, .., false).unwrap().count();
                        s.put(t, b"zz", b"v").unwrap();
                        drop(s);
                        inst.term().unwrap();
                        format!("ok ({n} keys)")
                    }
                    Err(e) => format!("{:?}", e.kind()),
                }
            });
            let o = match r {
                Ok(s) => s,
                Err(_) => format!("PANIC gen {g} off {off}"),
            };
            *outcomes.entry(o).or_default() += 1;
        }
    }
    assert!(!outcomes.keys().any(|k| k.starts_with("PANIC")));
}

/// A database left dirty by a crash with logging off is refused both with logging off and
/// with it on again (its old logs still there): they know nothing of its later changes.
#[test]
fn a_database_torn_with_logging_off_is_never_recovered_from_old_logs() {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    s.create_table("t").unwrap();
    drop(s);
    inst.term().unwrap();
    let mut off = params("inst");
    off.recovery = false;
    let inst = Instance::new(env(vfs.clone()), off.clone());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.open_table("t").unwrap();
    s.begin_transaction().unwrap();
    for i in 0..3000 {
        s.put(t, &key(i), &[5u8; 300]).unwrap();
    }
    s.commit_transaction(CommitMode::Lazy).unwrap(); // evictions write part of it
    std::mem::forget(s);
    std::mem::forget(inst); // crash
    let again = Instance::new(env(vfs.clone()), off);
    assert_eq!(
        again.init().unwrap_err().kind(),
        ErrorKind::DatabaseDirtyShutdown
    );
    let on = Instance::new(env(vfs.clone()), params("inst"));
    assert_eq!(
        on.init().unwrap_err().kind(),
        ErrorKind::DatabaseDirtyShutdown,
        "a database torn with logging off must not be accepted as recovered"
    );
}
