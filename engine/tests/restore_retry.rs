//! A restore killed at any point: the place it half filled is never opened as if whole (init
//! refuses it with `JET_errSoftRecoveryOnBackupDatabase`, -544), and a restore into the same
//! place clears what the first one left and succeeds. Swept over every write, fsync, create,
//! rename and remove of a restore, with the process killed and with power lost; and on real
//! files, with the restoring process ended mid-way.

#![allow(
    clippy::disallowed_methods,
    reason = "the real-file test runs a restore in a child process and ends it"
)]

use std::path::Path;

use jetdb::planted::PlantedBug;
use jetdb::{BackupFlags, CommitMode, ErrorKind, Instance, MemVfs, Vfs};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod support;

use support::crash_disk::CrashVfs;
use support::{Contents, backup_params, contents, env, key, restore_contents};

/// A full backup and an incremental one of an instance on a `MemVfs`: the disk, holding them
/// in `bk`, and what the set restores to.
fn backup_set() -> (MemVfs, Contents) {
    let vfs = MemVfs::new();
    let inst = Instance::new(env(vfs.clone()), backup_params("inst"));
    inst.init().unwrap();
    let mut s = inst.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for round in 0..4u32 {
        s.begin_transaction().unwrap();
        for i in 0..150 {
            s.put(t, &key(round * 150 + i), &[b'a' + (i % 26) as u8; 120])
                .unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
        if round == 1 {
            inst.backup(Some(Path::new("bk")), BackupFlags::NONE, None)
                .unwrap();
        }
    }
    inst.backup(Some(Path::new("bk")), BackupFlags::INCREMENTAL, None)
        .unwrap();
    let expected = contents(&inst);
    inst.term().unwrap();
    (vfs, expected)
}

/// The instance files a place holds (its directory `r`), by name.
fn held(vfs: &MemVfs) -> Vec<String> {
    if !vfs.exists(Path::new("r")).unwrap() {
        return Vec::new();
    }
    vfs.list(Path::new("r")).unwrap()
}

/// The tests' environment over `vfs`, with `bug` planted.
fn env_for(vfs: impl Vfs + 'static, bug: Option<PlantedBug>) -> jetdb::Env {
    #[cfg(feature = "planted-bugs")]
    return env(vfs).with_planted_bug(bug);
    #[cfg(not(feature = "planted-bugs"))]
    {
        assert!(
            bug.is_none(),
            "planting a bug needs the planted-bugs feature"
        );
        env(vfs)
    }
}

/// Kills a restore at every operation in turn, then (with the process killed only, and with
/// power lost) checks what the place holds can not be initialised, and that a second restore
/// into it gives exactly the backup's state. Returns the first failure, if any.
fn sweep(bug: Option<PlantedBug>) -> Result<usize, String> {
    let (files, expected) = backup_set();
    // How many operations a whole restore takes.
    let disk = CrashVfs::holding(&files, Path::new("bk"));
    let before = disk.used();
    Instance::new(env_for(disk.clone(), bug), backup_params("r"))
        .restore(Path::new("bk"), None)
        .map_err(|e| format!("a restore with no crash failed: {e}"))?;
    let operations = disk.used() - before;
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for kill_at in 0..operations {
        for clean in [true, false] {
            let disk = CrashVfs::holding(&files, Path::new("bk"));
            disk.refuel(kill_at);
            let killed = Instance::new(env_for(disk.clone(), bug), backup_params("r"))
                .restore(Path::new("bk"), None);
            if killed.is_ok() || !disk.dead() {
                return Err(format!("the restore was not killed at operation {kill_at}"));
            }
            let (vfs, _) = disk.power_loss(&mut rng, clean);
            let what = if clean { "killed" } else { "power lost" };
            let left = held(&vfs);
            if left.iter().any(|name| name == "edb.restoring") {
                // Half restored: never opened as if whole.
                match Instance::new(env_for(vfs.clone(), bug), backup_params("r")).init() {
                    Err(e) if e.kind() == ErrorKind::SoftRecoveryOnBackupDatabase => {}
                    other => {
                        return Err(format!(
                            "{what} at operation {kill_at}, the place holding {left:?} was opened: {other:?}"
                        ));
                    }
                }
                assert_eq!(held(&vfs), left, "a refused init changes nothing");
            } else if !left.is_empty() {
                // No marker: the restore was complete, and the place is the backup's state.
                let inst = Instance::new(env_for(vfs.clone(), bug), backup_params("r"));
                let opened = inst.init().map(|()| contents(&inst));
                match opened {
                    Ok(got) if got == expected => {
                        inst.term().unwrap();
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "{what} at operation {kill_at}, the place holding {left:?} without a marker was opened as something else than the backup: {:?}",
                            other.map(|c| c.len())
                        ));
                    }
                }
            }
            match restore_contents(env_for(vfs.clone(), bug), backup_params("r"), "bk") {
                Ok(got) if got == expected => {}
                Ok(_) => {
                    return Err(format!(
                        "{what} at operation {kill_at}, the second restore differs from the backup"
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "{what} at operation {kill_at} (the place holding {left:?}), the second restore failed: {e}"
                    ));
                }
            }
        }
    }
    Ok(operations as usize)
}

#[test]
fn a_restore_killed_at_any_point_is_refused_by_init_and_restored_again() {
    let operations = sweep(None).unwrap();
    assert!(operations > 20, "the sweep covered {operations} operations");
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;

    fn sweep_with(bug: PlantedBug) -> Result<usize, String> {
        sweep(Some(bug))
    }

    #[test]
    fn a_restore_without_its_marker_is_caught() {
        let err = sweep_with(PlantedBug::RestoreLeavesNoMarker).unwrap_err();
        assert!(err.contains("without a marker was opened"), "{err}");
    }

    #[test]
    fn a_restore_refusing_its_own_debris_is_caught() {
        let err = sweep_with(PlantedBug::RestoreRefusesItsDebris).unwrap_err();
        assert!(err.contains("second restore failed"), "{err}");
    }
}

/// The child's half of [`a_restore_ended_mid_way_on_real_files_is_refused_then_restored`]:
/// with `RESTORE_CHILD` set (`BACKUP|TARGET`), it restores and ends the process at the
/// second progress report, with nothing cleaned up; otherwise it does nothing.
#[test]
fn restore_child_ended_mid_way() {
    let Ok(spec) = std::env::var("RESTORE_CHILD") else {
        return;
    };
    let (backup, target) = spec.split_once('|').unwrap();
    let inst = Instance::new(jetdb::Env::os(), backup_params(target));
    let mut reports = 0;
    let mut status = |s: &jetdb::Status| {
        if s.kind == jetdb::StatusKind::Progress {
            reports += 1;
            if reports == 2 {
                std::process::exit(3);
            }
        }
        Ok(())
    };
    let _ = inst.restore(Path::new(backup), Some(&mut status));
    std::process::exit(4);
}

/// On real files: a restore whose process ends mid-way (as after kill -9) leaves a place that
/// init refuses with -544, and restoring into it again succeeds.
#[test]
fn a_restore_ended_mid_way_on_real_files_is_refused_then_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let (inst_dir, bk, target) = (
        tmp.path().join("inst"),
        tmp.path().join("bk"),
        tmp.path().join("restored"),
    );
    let live = Instance::new(jetdb::Env::os(), backup_params(&inst_dir));
    live.init().unwrap();
    let mut s = live.begin_session().unwrap();
    let t = s.create_table("t").unwrap();
    for batch in 0..20u32 {
        s.begin_transaction().unwrap();
        for i in 0..200 {
            s.put(t, &key(batch * 200 + i), &[b'x'; 200]).unwrap();
        }
        s.commit_transaction(CommitMode::Lazy).unwrap();
    }
    live.backup(Some(&bk), BackupFlags::NONE, None).unwrap();
    let expected = contents(&live);
    live.term().unwrap();

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "restore_child_ended_mid_way", "--nocapture"])
        .env(
            "RESTORE_CHILD",
            format!("{}|{}", bk.display(), target.display()),
        )
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the child ended mid-restore");
    assert!(target.join("edb.restoring").exists());
    let err = Instance::new(jetdb::Env::os(), backup_params(&target))
        .init()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SoftRecoveryOnBackupDatabase, "{err}");
    assert_eq!(err.code(), -544);
    let again = Instance::new(jetdb::Env::os(), backup_params(&target));
    let summary = again.restore(&bk, None).unwrap();
    assert!(
        !summary.debris_removed.is_empty(),
        "the second restore cleared the first one's files"
    );
    assert!(!target.join("edb.restoring").exists());
    again.init().unwrap();
    assert_eq!(contents(&again), expected);
    again.term().unwrap();
}
