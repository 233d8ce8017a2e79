//! The simulated disk keeps its promises: what was fsynced survives a power loss, what was
//! not may be lost, torn or kept within what the device allows, the namespace is durable only
//! after a directory fsync, and every fault does what it says.

use std::io;
use std::path::Path;

use jetdb::{OpenMode, Vfs, VfsFile};
use jetsim::trace::Trace;
use jetsim::{ArmedFault, Device, IoFault, SimVfs, Zone};

fn disk(seed: u64, device: Device) -> SimVfs {
    let vfs = SimVfs::new(device, seed, Trace::default());
    vfs.mkdir_durable(Path::new("d"));
    vfs
}

fn read_all(vfs: &SimVfs, path: &str) -> io::Result<Vec<u8>> {
    let f = vfs.open(Path::new(path), OpenMode::Read)?;
    let mut buf = vec![0u8; f.len()? as usize];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// A file at `path` holding `bytes`, its data and its name both durable.
fn durable_file(vfs: &SimVfs, path: &str, bytes: &[u8]) -> Box<dyn VfsFile> {
    let f = vfs.open(Path::new(path), OpenMode::CreateNew).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync().unwrap();
    vfs.sync_dir(jetdb::parent_dir(Path::new(path))).unwrap();
    f
}

fn never_all_land() -> Device {
    Device {
        all_land_percent: 0,
        ..Device::default()
    }
}

#[test]
fn synced_data_and_synced_names_survive_every_power_loss() {
    for seed in 0..50 {
        let vfs = disk(seed, never_all_land());
        let f = durable_file(&vfs, "d/a", &[7u8; 8192]);
        // Unsynced writes on top, in part over the synced data.
        f.write_all_at(&[9u8; 3000], 4096).unwrap();
        drop(f);
        vfs.restart(true);
        let bytes = read_all(&vfs, "d/a").expect("a synced file with a synced name survives");
        assert_eq!(bytes.len(), 8192);
        assert!(bytes[..4096].iter().all(|&b| b == 7), "seed {seed}");
    }
}

#[test]
fn unsynced_writes_are_kept_dropped_or_torn_per_sector() {
    let (mut kept, mut lost, mut garbage) = (0, 0, 0);
    for seed in 0..200 {
        let vfs = disk(seed, never_all_land());
        let f = durable_file(&vfs, "d/a", &[1u8; 4096]);
        f.write_all_at(&[2u8; 4096], 0).unwrap();
        drop(f);
        let report = vfs.restart(true).expect("power was lost");
        let bytes = read_all(&vfs, "d/a").unwrap();
        for sector in bytes.chunks(512) {
            if sector.iter().all(|&b| b == 2) {
                kept += 1;
            } else if sector.iter().all(|&b| b == 1) {
                lost += 1;
            } else {
                garbage += 1;
            }
        }
        assert!(report.garbage_sectors <= 8);
    }
    assert!(
        kept > 0 && lost > 0 && garbage > 0,
        "{kept} {lost} {garbage}"
    );
}

#[test]
fn atomic_sectors_are_never_garbage() {
    let device = Device {
        atomic_sectors: true,
        ..never_all_land()
    };
    for seed in 0..100 {
        let vfs = disk(seed, device.clone());
        let f = durable_file(&vfs, "d/a", &[1u8; 4096]);
        f.write_all_at(&[2u8; 4096], 0).unwrap();
        drop(f);
        let report = vfs.restart(true).unwrap();
        assert_eq!(report.garbage_sectors, 0);
        let bytes = read_all(&vfs, "d/a").unwrap();
        assert!(bytes.chunks(512).all(|s| s.iter().all(|&b| b == s[0])));
    }
}

#[test]
fn a_sequential_disk_keeps_a_prefix_of_the_writes() {
    let device = Device {
        sequential: true,
        atomic_sectors: true,
        ..never_all_land()
    };
    for seed in 0..100 {
        let vfs = disk(seed, device.clone());
        let f = durable_file(&vfs, "d/a", &[0u8; 4096]);
        for i in 0..8u8 {
            f.write_all_at(&[i + 1; 512], u64::from(i) * 512).unwrap();
        }
        drop(f);
        vfs.restart(true);
        let bytes = read_all(&vfs, "d/a").unwrap();
        let landed: Vec<bool> = bytes.chunks(512).map(|s| s[0] != 0).collect();
        // Once a write is missing, no later one landed.
        let first_missing = landed.iter().position(|&l| !l).unwrap_or(landed.len());
        assert!(
            landed[first_missing..].iter().all(|&l| !l),
            "seed {seed}: {landed:?}"
        );
    }
}

#[test]
fn names_are_durable_only_after_their_directory_is_synced() {
    let mut vanished = 0;
    for seed in 0..50 {
        let vfs = disk(seed, never_all_land());
        let f = vfs.open(Path::new("d/new"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync().unwrap();
        drop(f);
        vfs.restart(true);
        if !vfs.exists(Path::new("d/new")).unwrap() {
            vanished += 1;
        }
        // Synced: always there.
        let f = vfs.open(Path::new("d/kept"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync().unwrap();
        drop(f);
        vfs.sync_dir(Path::new("d")).unwrap();
        vfs.rename(Path::new("d/kept"), Path::new("d/renamed"))
            .unwrap();
        vfs.restart(true);
        let old = vfs.exists(Path::new("d/kept")).unwrap();
        let new = vfs.exists(Path::new("d/renamed")).unwrap();
        assert!(old != new, "a rename is atomic: exactly one name survives");
        vfs.sync_dir(Path::new("d")).unwrap();
    }
    assert!(vanished > 0, "an unsynced create was never undone");
}

#[test]
fn a_process_restart_keeps_the_page_cache() {
    let vfs = disk(1, never_all_land());
    let f = vfs.open(Path::new("d/a"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"pending", 0).unwrap();
    vfs.crash();
    assert!(
        f.write_all_at(b"x", 0).is_err(),
        "nothing gets through after a crash"
    );
    vfs.restart(false);
    assert!(f.len().is_err(), "handles from before the restart are dead");
    assert_eq!(read_all(&vfs, "d/a").unwrap(), b"pending");
}

#[test]
fn fsyncgate_keeps_the_data_in_the_cache_but_loses_it_at_power_loss() {
    let vfs = disk(3, never_all_land());
    let f = vfs.open(Path::new("d/a.log"), OpenMode::CreateNew).unwrap();
    f.sync().unwrap();
    vfs.sync_dir(Path::new("d")).unwrap();
    vfs.arm(ArmedFault {
        kind: IoFault::Fsyncgate,
        zone: Zone::Log,
        after: 0,
        persistent: false,
    });
    f.write_all_at(b"lost", 0).unwrap();
    assert!(f.sync().is_err());
    assert_eq!(read_all(&vfs, "d/a.log").unwrap(), b"lost");
    f.sync().unwrap();
    drop(f);
    vfs.restart(true);
    assert_eq!(
        read_all(&vfs, "d/a.log").unwrap(),
        b"",
        "the retried fsync wrote nothing"
    );
}

#[test]
fn faults_fire_after_their_count_in_their_zone_and_transient_ones_once() {
    let vfs = disk(4, Device::default());
    let db = vfs.open(Path::new("d/x.edb"), OpenMode::CreateNew).unwrap();
    let log = vfs.open(Path::new("d/x.log"), OpenMode::CreateNew).unwrap();
    vfs.arm(ArmedFault {
        kind: IoFault::WriteError,
        zone: Zone::Database,
        after: 1,
        persistent: false,
    });
    log.write_all_at(b"log", 0).unwrap();
    db.write_all_at(b"one", 0).unwrap();
    assert!(
        db.write_all_at(b"two", 0).is_err(),
        "the second database write fails"
    );
    db.write_all_at(b"three", 0).unwrap();
    vfs.arm(ArmedFault {
        kind: IoFault::DiskFull,
        zone: Zone::Database,
        after: 0,
        persistent: true,
    });
    db.write_all_at(b"in", 0).unwrap(); // within the file: no space needed
    for _ in 0..3 {
        let err = db.write_all_at(b"grow", 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
    assert_eq!(vfs.fired()[&IoFault::DiskFull], 3);
}

#[test]
fn a_misdirected_write_lands_elsewhere_and_is_suppressed_if_nothing_vouches_for_it() {
    let vfs = disk(5, never_all_land());
    let f = vfs.open(Path::new("d/a.log"), OpenMode::CreateNew).unwrap();
    f.write_all_at(&[1u8; 16384], 0).unwrap();
    f.sync().unwrap();
    vfs.sync_dir(Path::new("d")).unwrap();
    vfs.arm(ArmedFault {
        kind: IoFault::Misdirect,
        zone: Zone::Log,
        after: 0,
        persistent: false,
    });
    f.write_all_at(&[2u8; 4096], 16384).unwrap();
    f.sync().unwrap();
    let bytes = read_all(&vfs, "d/a.log").unwrap();
    assert!(bytes.len() <= 16384 || bytes[16384..].iter().all(|&b| b != 2));
    assert!(bytes.contains(&2), "it landed somewhere");
    // A crash now would make it look like a torn tail: the atlas lands it where it belongs.
    drop(f);
    vfs.restart(true);
    let bytes = read_all(&vfs, "d/a.log").unwrap();
    assert!(bytes[16384..20480].iter().all(|&b| b == 2));
}

#[test]
fn the_same_seed_makes_the_same_choices() {
    let run = |seed| {
        let vfs = disk(seed, never_all_land());
        let f = vfs.open(Path::new("d/a"), OpenMode::CreateNew).unwrap();
        for i in 0..16u64 {
            f.write_all_at(&[i as u8; 1000], i * 700).unwrap();
        }
        drop(f);
        vfs.restart(true);
        vfs.durable_hash()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(
        (0..8)
            .map(run)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
}

#[test]
fn set_len_leaves_a_hole_and_the_first_write_into_it_needs_space() {
    let vfs = disk(6, Device::default());
    let log = vfs.open(Path::new("d/a.log"), OpenMode::CreateNew).unwrap();
    log.set_len(128 * 1024).unwrap();
    log.write_all_at(&[1u8; 4096], 0).unwrap();
    vfs.arm(ArmedFault {
        kind: IoFault::DiskFull,
        zone: Zone::Log,
        after: 0,
        persistent: true,
    });
    log.write_all_at(&[2u8; 100], 50).unwrap(); // an allocated block: no space needed
    log.set_len(256 * 1024).unwrap(); // sparse: no space needed either
    let err = log.write_all_at(&[3u8; 4096], 8192).unwrap_err();
    assert_eq!(
        err.kind(),
        io::ErrorKind::StorageFull,
        "a write into the hole allocates"
    );
}

#[test]
fn a_safe_append_disk_lands_appends_in_order_without_holes_or_garbage() {
    let device = Device {
        safe_append: true,
        ..never_all_land()
    };
    for seed in 0..100 {
        let vfs = disk(seed, device.clone());
        let f = durable_file(&vfs, "d/a", &[]);
        for i in 0..8u8 {
            f.write_all_at(&[i + 1; 512], u64::from(i) * 512).unwrap();
        }
        drop(f);
        let report = vfs.restart(true).unwrap();
        assert_eq!(report.garbage_sectors, 0, "seed {seed}");
        let bytes = read_all(&vfs, "d/a").unwrap();
        for (i, sector) in bytes.chunks(512).enumerate() {
            assert!(
                sector.iter().all(|&b| b == i as u8 + 1),
                "seed {seed}: sector {i} of {} is not the append that belongs there",
                bytes.len() / 512
            );
        }
    }
}

#[test]
fn a_path_through_a_file_is_not_a_directory_and_through_a_missing_one_not_found() {
    // As the OS says (ENOTDIR, ENOENT), so the engine classifies each the same way on the
    // simulated disk as on a real one (`JET_errInvalidPath`, `JET_errFileNotFound`).
    let vfs = disk(1, Device::default());
    drop(durable_file(&vfs, "d/f", b"a file"));
    let kind = |r: io::Result<()>| r.unwrap_err().kind();
    for (path, expected) in [
        ("d/f/x", io::ErrorKind::NotADirectory),
        ("d/f/x/y", io::ErrorKind::NotADirectory),
        ("d/m/x", io::ErrorKind::NotFound),
        ("m/x/y", io::ErrorKind::NotFound),
    ] {
        let p = Path::new(path);
        let open = |mode| vfs.open(p, mode).map(drop);
        assert_eq!(kind(open(OpenMode::CreateNew)), expected, "create {path}");
        assert_eq!(kind(open(OpenMode::Read)), expected, "open {path}");
        assert_eq!(kind(vfs.create_dir(p)), expected, "mkdir {path}");
        assert_eq!(kind(vfs.list(p).map(drop)), expected, "list {path}");
        assert_eq!(kind(vfs.remove(p)), expected, "remove {path}");
        assert_eq!(kind(vfs.sync_dir(p)), expected, "fsync {path}");
    }
    assert_eq!(
        kind(vfs.rename(Path::new("d/f"), Path::new("d/f/x"))),
        io::ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(vfs.create_dir_all(Path::new("d/f/x"))),
        io::ErrorKind::NotADirectory
    );
    assert_eq!(
        read_all(&vfs, "d/f").unwrap(),
        b"a file",
        "the file is untouched"
    );
}
