//! The fault atlas's planting of latent corruption: where a bit may rot, within the budget
//! that keeps a run meaningful — one corruption per zone per run (the run enforces that),
//! never a copy whose twin is damaged or has a write pending (so a later power loss cannot tear
//! the twin too), and in the log only sealed, archived generations, whose damage recovery must
//! detect. Damage to the last flush of the open log cannot be told from a torn write (a
//! documented limit), so it is not planted.

use std::path::PathBuf;

use jetdb::InstanceParams;

use crate::config::CorruptZone;
use crate::vfs::{SimVfs, Zone};

/// Flips one bit chosen by `pick` in `zone`'s files at rest; describes what it did and names
/// the file, or `None` if the zone has nothing the atlas allows to corrupt yet. With
/// `aim` (a running backup's next page and the log generations it copies), a database page is
/// chosen from there on and an archived log among those, so the backup still has to read it.
/// A backup directory a backup is writing into (`busy`) is left alone: the failure oracle
/// compares what that backup leaves there.
pub fn plant(
    vfs: &SimVfs,
    params: &InstanceParams,
    zone: CorruptZone,
    pick: u64,
    aim: Option<(u64, u32, u32)>,
    busy: Option<usize>,
) -> Option<(String, PathBuf)> {
    let uncopied = aim.map(|(page, _, _)| page);
    let page = params.page_size as u64;
    let bit = (pick >> 8) as u8 & 7;
    let (path, offset) = match zone {
        CorruptZone::DatabasePage | CorruptZone::HeaderCopy => {
            let path = params.database_path.clone();
            let len = vfs.durable_content(&path)?.len() as u64;
            let pages = len / page;
            let pgno = if zone == CorruptZone::HeaderCopy {
                // Never both copies: the other must be whole, and stay whole through a
                // power loss (no write to the file pending), and current: a lost write leaves
                // it whole but stale, which no reader can tell from an older header.
                if vfs.has_pending(&path) {
                    return None;
                }
                let copies = jetdb::read_header_copies(vfs, &path).ok()?;
                let copy = pick % 2;
                let other = 1 - copy;
                copies[other as usize].as_ref().ok()?;
                if vfs.range_damaged(&path, other * page, (other + 1) * page) {
                    return None;
                }
                copy
            } else if let Some(from) = uncopied.filter(|&from| from.max(2) < pages) {
                let from = from.max(2);
                from + pick % (pages - from)
            } else if pages > 2 {
                2 + pick % (pages - 2)
            } else {
                return None;
            };
            (path, pgno * page + (pick >> 16) % page)
        }
        CorruptZone::CheckpointSlot => {
            let path = params.system_path.join("edb.chk");
            let slots = jetdb::checkpoint::decode_slots(&vfs.durable_content(&path)?);
            // Never both copies: the other slot must be whole, and stay whole through a
            // power loss (no write to the file pending).
            if vfs.has_pending(&path) {
                return None;
            }
            let slot = pick % 2;
            slots[1 - slot as usize].as_ref()?;
            (path, slot * 4096 + (pick >> 16) % 4096)
        }
        CorruptZone::LogSegment => {
            // Archived generations only: sealed and complete, so any damage to one that
            // recovery needs is detectable. (Damage to the last flush of the open log
            // cannot be told from a torn write — a documented limit.)
            let generation = |p: &PathBuf| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| jetdb::log::parse_archive_name("edb", n))
            };
            let mut archived: Vec<PathBuf> = vfs
                .files_in(Zone::Log)
                .into_iter()
                .filter(|p| generation(p).is_some())
                .collect();
            if let Some((_, low, high)) = aim {
                let copied: Vec<PathBuf> = archived
                    .iter()
                    .filter(|p| generation(p).is_some_and(|g| (low..=high).contains(&g)))
                    .cloned()
                    .collect();
                if !copied.is_empty() {
                    archived = copied;
                }
            }
            if archived.is_empty() {
                return None;
            }
            let path = archived[(pick % archived.len() as u64) as usize].clone();
            let len = vfs.durable_content(&path)?.len() as u64;
            if len == 0 {
                return None;
            }
            (path, (pick >> 16) % len)
        }
        CorruptZone::BackupFile => {
            // A file of a finished backup (one its manifest lists, or the manifest itself).
            let dirs: Vec<PathBuf> = (0..crate::workload::BACKUP_DIRS)
                .filter(|&d| Some(usize::from(d)) != busy)
                .map(|d| PathBuf::from(format!("bk{d}")))
                .filter(|d| {
                    vfs.durable_content(&d.join(jetdb::manifest::MANIFEST_NAME))
                        .is_some()
                })
                .collect();
            if dirs.is_empty() {
                return None;
            }
            let dir = &dirs[(pick % dirs.len() as u64) as usize];
            let manifest = dir.join(jetdb::manifest::MANIFEST_NAME);
            let mut files = vec![manifest.clone()];
            if let Ok(m) = jetdb::manifest::Manifest::decode(&vfs.durable_content(&manifest)?) {
                let set = m.set_dir(dir);
                files.push(set.join(&m.db_name));
                files.extend(m.logs.iter().map(|l| set.join(m.log_name(l.generation))));
            }
            let path = files[((pick >> 4) % files.len() as u64) as usize].clone();
            if vfs.has_pending(&path) {
                return None;
            }
            let len = vfs.durable_content(&path)?.len() as u64;
            if len == 0 {
                return None;
            }
            (path, (pick >> 16) % len)
        }
    };
    let what = format!("{zone:?}: bit {bit} of byte {offset} of {}", path.display());
    vfs.flip_bit(&path, offset, bit).then_some((what, path))
}
