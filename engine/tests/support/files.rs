//! Files on a `MemVfs`, whole: read, write, list and copy them, and reseal a block a test
//! changed.

use std::collections::BTreeMap;
use std::path::Path;

use jetdb::{MemVfs, OpenMode, Vfs};

/// Everything under `dir`, recursively, by path relative to it: a file's bytes, or `None`
/// for a directory. Empty if `dir` does not exist.
pub fn tree(vfs: &MemVfs, dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(vfs: &MemVfs, dir: &Path, prefix: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        let Ok(names) = vfs.list(dir) else {
            return;
        };
        for name in names {
            let path = dir.join(&name);
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if vfs.is_dir(&path).unwrap() {
                out.insert(rel.clone(), None);
                walk(vfs, &path, &rel, out);
            } else {
                out.insert(rel, Some(read_all(vfs, &path)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(vfs, dir, "", &mut out);
    out
}

/// The whole content of the file at `path`.
pub fn read_all(vfs: &MemVfs, path: impl AsRef<Path>) -> Vec<u8> {
    let file = vfs.open(path.as_ref(), OpenMode::Read).unwrap();
    let mut buf = vec![0u8; file.len().unwrap() as usize];
    file.read_exact_at(&mut buf, 0).unwrap();
    buf
}

/// Replaces the content of the file at `path` (creating it if needed).
pub fn write_all(vfs: &MemVfs, path: impl AsRef<Path>, bytes: &[u8]) {
    let file = vfs.open(path.as_ref(), OpenMode::CreateTruncate).unwrap();
    file.write_all_at(bytes, 0).unwrap();
}

/// Copies everything under `from` to `to` (created; must not exist).
pub fn copy_tree(vfs: &MemVfs, from: &Path, to: &Path) {
    vfs.create_dir_all(to).unwrap();
    for (rel, content) in tree(vfs, from) {
        let path = to.join(&rel);
        match content {
            None => vfs.create_dir(&path).unwrap(),
            Some(bytes) => write_all(vfs, &path, &bytes),
        }
    }
}

/// Puts right the checksum of the 4 KiB block at byte `at` of a log or checkpoint file (a log
/// segment, a checkpoint slot) after a test changed it: the CRC-32 of the rest of the block, in
/// its first four bytes.
pub fn reseal_block(bytes: &mut [u8], at: usize) {
    let crc = crc32fast::hash(&bytes[at + 4..at + 4096]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}
