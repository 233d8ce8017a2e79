//! Crash recovery reads its logs a piece at a time: no read of a log file is larger than
//! `LOG_PIECE` (1 MiB) whatever the log file size, and a generation damaged deep inside is
//! refused before any of its records is applied.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jetdb::{CommitMode, ErrorKind, Instance, InstanceParams, Vfs};

mod support;

use support::{Contents, HookedVfs, contents, env, key, params, read_all, write_all};

/// Every read of a log file under `inst`, by path and length.
#[derive(Debug, Default)]
struct LogReads(Mutex<Vec<(PathBuf, usize)>>);

impl LogReads {
    /// The reads since the last call: the largest, and how many.
    fn take(&self) -> (usize, usize) {
        let reads = std::mem::take(&mut *self.0.lock().unwrap());
        let largest = reads.iter().map(|&(_, n)| n).max().unwrap_or(0);
        (largest, reads.len())
    }
}

impl support::Hook for LogReads {
    fn read_from(&self, path: &Path, _: u64, len: usize) -> std::io::Result<()> {
        if path.starts_with("inst") && path.extension().is_some_and(|e| e == "log") {
            self.0.lock().unwrap().push((path.to_path_buf(), len));
        }
        Ok(())
    }
}

/// Log files of 8 MiB; a cache of 32 pages, so a replay writes batches as it goes; no
/// checkpoint before the crash, so recovery replays from generation 1.
fn big_log_params() -> InstanceParams {
    InstanceParams {
        log_file_size: 8 << 20,
        cache_size: 32 * support::PAGE,
        checkpoint_depth: 1 << 40,
        ..params("inst")
    }
}

/// An instance that committed about 11 MiB (a whole generation 1 and 3 MiB of generation 2)
/// and crashed; its contents then.
fn crashed<H: support::Hook>(vfs: &HookedVfs<H>) -> Contents {
    let inst = Instance::new(env(vfs.clone()), big_log_params());
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for i in 0..1100u32 {
        s.begin_transaction().unwrap();
        s.put(t, &key(i % 400), &vec![i as u8; 10_000]).unwrap();
        s.commit_transaction(CommitMode::Durable).unwrap();
    }
    let expected = contents(&inst);
    drop(s);
    drop(inst); // a crash: the database is left DirtyShutdown
    assert!(
        vfs.inner.exists(Path::new("inst/edb00000001.log")).unwrap(),
        "generation 1 was archived"
    );
    expected
}

#[test]
fn recovery_reads_every_log_a_piece_at_a_time() {
    let reads = Arc::new(LogReads::default());
    let vfs = HookedVfs::new(Arc::clone(&reads));
    let expected = crashed(&vfs);
    reads.take();
    let inst = Instance::new(env(vfs.clone()), big_log_params());
    inst.init().unwrap();
    let (largest, count) = reads.take();
    assert!(
        largest <= jetdb::log::LOG_PIECE,
        "recovery read {largest} bytes of a log at once"
    );
    // Both generations' 16 MiB checked, the current one copied, both replayed: in pieces.
    assert!(count >= 40, "{count} reads of the logs");
    let report = inst.recovery_report().unwrap().expect("init recovered");
    assert_eq!(report.generations, vec![1, 2]);
    assert!(report.commits_replayed >= 1100, "{report:?}");
    assert_eq!(contents(&inst), expected);
    inst.term().unwrap();
}

/// A bit flipped 3 MiB into generation 1: recovery refuses it before replaying any of its
/// records, so the database file is left as the crash left it (a replay of the records before
/// the damage, with this small cache, would have written batches into it).
#[test]
fn a_generation_damaged_deep_inside_is_refused_before_it_is_replayed() {
    let vfs = HookedVfs::new(Arc::new(LogReads::default()));
    crashed(&vfs);
    let gen1 = Path::new("inst/edb00000001.log");
    let mut bytes = read_all(&vfs.inner, gen1);
    bytes[(3 << 20) + 100] ^= 1;
    write_all(&vfs.inner, gen1, &bytes);
    let db_before = read_all(&vfs.inner, "inst/data.edb");
    let inst = Instance::new(env(vfs.clone()), big_log_params());
    let err = inst.init().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    assert!(err.message().contains("segment 768"), "{err}");
    assert!(
        read_all(&vfs.inner, "inst/data.edb") == db_before,
        "the failed recovery wrote into the database"
    );
}

/// Damages generation 1 on disk as recovery begins its second read of it (the replay), after
/// the first read (the check) found it whole: a disk that answers differently.
#[derive(Debug, Default)]
struct ChangesUnderfoot {
    disk: std::sync::OnceLock<jetdb::MemVfs>,
    starts: Mutex<usize>,
}

impl support::Hook for ChangesUnderfoot {
    fn read_from(&self, path: &Path, offset: u64, _: usize) -> std::io::Result<()> {
        if path == Path::new("inst/edb00000001.log") && offset == 0 {
            let mut starts = self.starts.lock().unwrap();
            *starts += 1;
            if *starts == 2
                && let Some(disk) = self.disk.get()
            {
                let mut bytes = read_all(disk, path);
                bytes[(3 << 20) + 100] ^= 1;
                write_all(disk, path, &bytes);
            }
        }
        Ok(())
    }
}

/// A log that reads whole the first time and damaged the second is refused (-501): what
/// was replayed is not what was checked.
#[test]
fn a_log_that_reads_differently_the_second_time_is_refused() {
    let hook = Arc::new(ChangesUnderfoot::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    crashed(&vfs);
    *hook.starts.lock().unwrap() = 0;
    hook.disk.set(vfs.inner.clone()).unwrap();
    let inst = Instance::new(env(vfs.clone()), big_log_params());
    let err = inst.init().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    assert!(
        err.message().contains("read differently the second time"),
        "{err}"
    );
    assert_eq!(
        *hook.starts.lock().unwrap(),
        2,
        "the check, then the replay"
    );
}

/// Loses writes to `inst/edbtmp.log` (acknowledged, never made): the first `lose` of them.
#[derive(Debug, Default)]
struct LosesCopyWrites {
    lose: Mutex<usize>,
    lost: Mutex<usize>,
}

impl support::Hook for LosesCopyWrites {
    fn loses_write(&self, path: &Path, _: u64, _: usize) -> bool {
        let mut lose = self.lose.lock().unwrap();
        if path == Path::new("inst/edbtmp.log") && *lose > 0 {
            *lose -= 1;
            *self.lost.lock().unwrap() += 1;
            return true;
        }
        false
    }
}

/// After a crash recovery replaces `edb.log` with a copy of what it read (fsyncgate). A copy
/// whose write the disk lost is caught before it replaces the log: made again, or, when it
/// never reads back right, recovery fails with -510 and `edb.log` is left as it was.
#[test]
fn a_copy_of_the_log_that_does_not_read_back_never_replaces_it() {
    // Lost once: the second copy is good, and recovery goes on.
    let hook = Arc::new(LosesCopyWrites::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let expected = crashed(&vfs);
    *hook.lose.lock().unwrap() = 1;
    let inst = Instance::new(env(vfs.clone()), big_log_params());
    inst.init().unwrap();
    assert_eq!(*hook.lost.lock().unwrap(), 1);
    assert_eq!(contents(&inst), expected);
    inst.term().unwrap();

    // Lost every time: refused, the log untouched, no copy left; and recovered once the
    // disk writes again.
    let hook = Arc::new(LosesCopyWrites::default());
    let vfs = HookedVfs::new(Arc::clone(&hook));
    let expected = crashed(&vfs);
    let log_before = read_all(&vfs.inner, "inst/edb.log");
    *hook.lose.lock().unwrap() = usize::MAX;
    let inst = Instance::new(env(vfs.clone()), big_log_params());
    let err = inst.init().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogWriteFail, "{err}");
    assert_eq!(
        *hook.lost.lock().unwrap(),
        3 * 8,
        "three copies of 8 pieces tried"
    );
    assert!(read_all(&vfs.inner, "inst/edb.log") == log_before);
    assert!(!vfs.inner.exists(Path::new("inst/edbtmp.log")).unwrap());
    *hook.lose.lock().unwrap() = 0;
    inst.init().unwrap();
    assert_eq!(contents(&inst), expected);
    inst.term().unwrap();
}
