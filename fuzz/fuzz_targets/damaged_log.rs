//! A crashed instance — a database, a log over several generations, a checkpoint — with one of
//! its files damaged by the fuzzer (bytes changed, optionally with the log segment's checksum
//! recomputed so the damage passes it; a file truncated or removed), then recovered and read.
//! Every outcome must be an error or a sound database; a panic or a hang is a bug.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use jetdb::{
    CommitMode, Env, Instance, InstanceParams, ManualClock, MemVfs, OpenMode, SeededEntropy, Vfs,
};
use libfuzzer_sys::fuzz_target;

const SEGMENT: usize = 4096;

#[derive(Arbitrary, Debug)]
enum Damage {
    Xor { file: u8, at: u32, mask: u8, reseal: bool },
    Truncate { file: u8, len: u32 },
    Remove { file: u8 },
}

fn params() -> InstanceParams {
    let mut p = InstanceParams::in_directory("inst");
    p.page_size = 4096;
    p.log_file_size = 128 * 1024;
    p
}

fn env(vfs: &MemVfs) -> Env {
    Env::new(Arc::new(vfs.clone()), Arc::new(ManualClock::new(7)), Arc::new(SeededEntropy::new(3)))
}

/// The files of a crashed instance, by name.
fn pristine() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let vfs = MemVfs::new();
        vfs.create_dir(Path::new("inst")).unwrap();
        let instance = Instance::new(env(&vfs), params());
        instance.init().unwrap();
        let mut s = instance.begin_session().unwrap();
        let t = s.create_table("t").unwrap();
        for i in 0u32..60 {
            s.begin_transaction().unwrap();
            s.put(t, format!("{i:05}").as_bytes(), &vec![i as u8; 50 + (i as usize % 7) * 300]).unwrap();
            if i % 9 == 0 {
                s.delete(t, format!("{:05}", i / 2).as_bytes()).unwrap();
            }
            let mode = if i % 4 == 0 { CommitMode::Lazy } else { CommitMode::Durable };
            s.commit_transaction(mode).unwrap();
        }
        drop(s);
        drop(instance); // a crash: no term
        let mut files = BTreeMap::new();
        for name in vfs.list(Path::new("inst")).unwrap() {
            let file = vfs.open(&PathBuf::from("inst").join(&name), OpenMode::Read).unwrap();
            let mut bytes = vec![0u8; file.len().unwrap() as usize];
            file.read_exact_at(&mut bytes, 0).unwrap();
            files.insert(name, bytes);
        }
        assert!(files.len() >= 4, "a database, a checkpoint and several generations");
        files
    })
}

fuzz_target!(|damage: Vec<Damage>| {
    let mut files = pristine().clone();
    for d in damage.iter().take(4) {
        let names: Vec<String> = files.keys().cloned().collect();
        let pick = |i: u8| names[i as usize % names.len()].clone();
        match *d {
            Damage::Xor { file, at, mask, reseal } => {
                let name = pick(file);
                let bytes = files.get_mut(&name).unwrap();
                if bytes.is_empty() {
                    continue;
                }
                let at = at as usize % bytes.len();
                bytes[at] ^= mask;
                if reseal && name.ends_with(".log") && at >= SEGMENT {
                    let seg = at / SEGMENT * SEGMENT;
                    if let Some(seg) = bytes.get_mut(seg..seg + SEGMENT) {
                        let crc = crc32fast::hash(&seg[4..]);
                        seg[..4].copy_from_slice(&crc.to_le_bytes());
                    }
                }
            }
            Damage::Truncate { file, len } => {
                let bytes = files.get_mut(&pick(file)).unwrap();
                let len = len as usize % (bytes.len() + 1);
                bytes.truncate(len);
            }
            Damage::Remove { file } => {
                files.remove(&pick(file));
                if files.is_empty() {
                    return;
                }
            }
        }
    }
    let vfs = MemVfs::new();
    vfs.create_dir(Path::new("inst")).unwrap();
    for (name, bytes) in &files {
        let f = vfs.open(&PathBuf::from("inst").join(name), OpenMode::CreateNew).unwrap();
        f.write_all_at(bytes, 0).unwrap();
    }
    let instance = Instance::new(env(&vfs), params());
    if instance.init().is_err() {
        return;
    }
    let Ok(mut s) = instance.begin_session() else { return };
    if let Ok(t) = s.open_table("t") {
        if let Ok(range) = s.range(t, .., false) {
            for record in range {
                if record.is_err() {
                    break;
                }
            }
        }
    }
    let _ = instance.check_integrity();
    drop(s);
    let _ = instance.term();
});
