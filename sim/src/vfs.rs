//! The simulated disk: an in-memory file system under the engine's [`Vfs`] seam that knows
//! what is durable and what is not, loses power on command, and injects I/O faults.
//!
//! Every file (an inode) has two contents: the *view*, which reads see, and the *durable*
//! content, which survives a power loss. A write changes the view at once and is queued as
//! pending; [`VfsFile::sync`] applies the file's pending writes to its durable content. The
//! namespace works the same way: a create, rename or remove changes the view at once and
//! becomes durable when every directory it touches has been synced.
//!
//! A crash stops all I/O. [`SimVfs::restart`] then either keeps everything as the page cache
//! had it (the process died, the machine did not) or loses power: each pending write is, per
//! sector and by seeded choice, written, dropped or left as garbage, within what the
//! [`Device`] allows; unsynced namespace changes survive as a prefix of the journal or as a
//! random subset. Writes are copied once into the view and once into the pending queue, never
//! whole files, so long runs stay cheap.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jetdb::{OpenMode, Vfs, VfsFile, parent_dir};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::sabotage::Sabotage;
use crate::timeline::Lane;
use crate::trace::Trace;

/// What kind of data a file holds, for aiming faults: the fault atlas spends its budget per
/// zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Zone {
    /// The database file (`*.edb`), header copies included, and its doublewrite file
    /// (`*.jdw`).
    Database,
    /// Log generations (`*.log`).
    Log,
    /// The checkpoint file (`*.chk`).
    Checkpoint,
    /// Anything else (temporary files).
    Other,
    /// Backup directories (`bk*/…`): the backups' destination.
    Backup,
}

impl Zone {
    /// The zone of the file at `path`, by its extension (a temporary file, `*.tmp`, by the
    /// extension before it: `edb.chk.tmp` is in the checkpoint zone).
    pub fn of(path: &Path) -> Zone {
        let root = path
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        if root.starts_with("bk") {
            return Zone::Backup;
        }
        // Restored copies, and copies of the live logs a roll forward reads, checked and
        // removed by the simulator's oracle: outside fault injection.
        if root.starts_with("rst") || root.starts_with("rfl") {
            return Zone::Other;
        }
        let ext = |p: &Path| p.extension().and_then(|e| e.to_str()).map(str::to_owned);
        let ext = match ext(path).as_deref() {
            Some("tmp") => path.file_stem().and_then(|s| ext(Path::new(s))),
            other => other.map(str::to_owned),
        };
        match ext.as_deref() {
            // The doublewrite file holds database pages on their way in.
            Some("edb" | "jdw") => Zone::Database,
            Some("log") => Zone::Log,
            Some("chk") => Zone::Checkpoint,
            _ => Zone::Other,
        }
    }

    /// Every zone.
    pub const ALL: [Zone; 5] = [
        Zone::Database,
        Zone::Log,
        Zone::Checkpoint,
        Zone::Other,
        Zone::Backup,
    ];
}

/// How strong a disk the run simulates, after SQLite's crash VFS device characteristics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The unit a torn write is decided in: 512 bytes to 4 KiB.
    pub sector_size: usize,
    /// A sector is written whole or not at all, never as garbage (`ATOMIC512…`).
    pub atomic_sectors: bool,
    /// An append never leaves garbage or a hole: its sectors land in order (`SAFE_APPEND`).
    pub safe_append: bool,
    /// Writes reach the disk in the order they were issued: a crash keeps a prefix of each
    /// file's pending writes (`SEQUENTIAL`).
    pub sequential: bool,
    /// The chance, in percent, that a power loss still lands every pending write of a file
    /// (FoundationDB uses 10).
    pub all_land_percent: u8,
}

impl Default for Device {
    fn default() -> Device {
        Device {
            sector_size: 512,
            atomic_sectors: false,
            safe_append: false,
            sequential: false,
            all_land_percent: 10,
        }
    }
}

/// An I/O fault the disk can be armed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoFault {
    /// A read fails with EIO.
    ReadError,
    /// A write fails with EIO; nothing of it is written.
    WriteError,
    /// An fsync fails with EIO; the pending writes stay pending.
    SyncError,
    /// An fsync fails and the pending writes are lost: they stay in the page cache (reads
    /// still see them) but will never reach the disk, as Linux did in "fsyncgate".
    Fsyncgate,
    /// A write that allocates space fails with ENOSPC.
    DiskFull,
    /// A write lands at another sector-aligned place in the same file (and not where it was
    /// meant to).
    Misdirect,
    /// A directory's fsync fails with EIO; the entries it would have made durable stay
    /// pending. Armed in the backups' destination, where a backup that fails after renaming
    /// its manifest into place must put the previous one back.
    DirSyncError,
    /// A write reports success but lands nowhere: the file keeps what it held. Armed on the
    /// database file, whose flush map must refuse the stale page it leaves.
    LostWrite,
}

impl IoFault {
    /// Every kind.
    pub const ALL: [IoFault; 8] = [
        IoFault::ReadError,
        IoFault::WriteError,
        IoFault::SyncError,
        IoFault::Fsyncgate,
        IoFault::DiskFull,
        IoFault::Misdirect,
        IoFault::DirSyncError,
        IoFault::LostWrite,
    ];

    /// Its name in traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            IoFault::ReadError => "read-eio",
            IoFault::WriteError => "write-eio",
            IoFault::SyncError => "fsync-eio",
            IoFault::Fsyncgate => "fsyncgate",
            IoFault::DiskFull => "enospc",
            IoFault::Misdirect => "misdirect",
            IoFault::DirSyncError => "dirsync-eio",
            IoFault::LostWrite => "lost-write",
        }
    }
}

/// A fault waiting for its moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmedFault {
    /// What goes wrong.
    pub kind: IoFault,
    /// Which files it hits.
    pub zone: Zone,
    /// How many matching operations pass unharmed first.
    pub after: u32,
    /// Whether it keeps firing on every matching operation until the next restart.
    pub persistent: bool,
}

/// What a power loss did, for the trace and coverage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Pending writes that landed whole.
    pub writes_landed: u64,
    /// Pending writes lost or torn, in part or whole.
    pub writes_torn: u64,
    /// Sectors left as garbage.
    pub garbage_sectors: u64,
    /// Namespace changes that were not durable and were undone.
    pub entries_undone: u64,
}

type Ino = u64;

/// A misdirected write nothing after it vouches for yet.
#[derive(Debug)]
struct Unvouched {
    ino: Ino,
    /// Where it should have landed.
    offset: u64,
    data: Vec<u8>,
    /// The file was written again after `synced`.
    wrote_after: bool,
    /// The file was fsynced since the misdirected write.
    synced: bool,
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug)]
struct Inode {
    view: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    zone: Zone,
    /// The 4 KiB blocks written: extending a file with `set_len` leaves a hole (a sparse file,
    /// as ftruncate does on Linux), and the first write into a hole allocates.
    allocated: BTreeSet<u64>,
    /// Byte ranges a lost or misdirected write left wrong (database files only), until a
    /// later write over them is made durable.
    damaged: Vec<(u64, u64)>,
    /// Ranges written since the last fsync: made durable by the next, they mend `damaged`.
    covering: Vec<(u64, u64)>,
}

impl Inode {
    /// Records `[start, end)` as damaged: no write before it mends it.
    fn damage(&mut self, start: u64, end: u64) {
        subtract(&mut self.covering, start, end);
        self.damaged.push((start, end));
    }
}

/// `ranges` less `[start, end)`.
fn subtract(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(a, b) in ranges.iter() {
        if b <= start || a >= end {
            out.push((a, b));
            continue;
        }
        if a < start {
            out.push((a, start));
        }
        if b > end {
            out.push((end, b));
        }
    }
    *ranges = out;
}

/// The file-system block for allocation.
const BLOCK: u64 = 4096;

/// The blocks a write of `len` bytes at `offset` touches.
fn blocks(offset: u64, len: u64) -> std::ops::RangeInclusive<u64> {
    offset / BLOCK..=(offset + len.max(1) - 1) / BLOCK
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    File(Ino),
    Dir,
}

#[derive(Clone, Debug)]
enum Meta {
    Link(PathBuf, Entry),
    Unlink(PathBuf, Entry),
    Rename(PathBuf, PathBuf, Ino),
}

#[derive(Debug)]
struct PendingMeta {
    op: Meta,
    /// Directories whose fsync this change still waits for.
    needs: Vec<PathBuf>,
}

impl PendingMeta {
    /// Whether the change names `path`.
    fn names(&self, path: &Path) -> bool {
        match &self.op {
            Meta::Link(p, _) | Meta::Unlink(p, _) => p == path,
            Meta::Rename(from, to, _) => from == path || to == path,
        }
    }
}

type Namespace = BTreeMap<PathBuf, Entry>;

fn apply_meta(ns: &mut Namespace, op: &Meta) -> bool {
    match op {
        Meta::Link(path, entry) => {
            let parent = parent_dir(path);
            let parent_ok = parent.as_os_str().is_empty() || ns.get(parent) == Some(&Entry::Dir);
            if parent_ok {
                ns.insert(path.clone(), *entry);
            }
            parent_ok
        }
        Meta::Unlink(path, entry) => {
            // A directory goes only once empty: its entries' removals come first.
            let has_children =
                *entry == Entry::Dir && ns.keys().any(|p| parent_dir(p) == path.as_path());
            if ns.get(path) == Some(entry) && !has_children {
                ns.remove(path);
                true
            } else {
                false
            }
        }
        Meta::Rename(from, to, ino) => {
            if ns.get(from) == Some(&Entry::File(*ino)) {
                ns.remove(from);
                ns.insert(to.clone(), Entry::File(*ino));
                true
            } else {
                false
            }
        }
    }
}

/// Counts of what the disk did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Operations that could be a crash point: writes, fsyncs and namespace changes.
    pub points: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Writes, fsyncs, size changes and renames attempted on log files (failed ones too):
    /// whether a failed commit may have reached the log.
    pub log_io: u64,
    /// File and directory fsyncs.
    pub syncs: u64,
    /// Faults that fired.
    pub faults_fired: u64,
    /// Write, fsync and full-disk faults that fired on the database file: after each the
    /// file's state is unknown, and the instance must take no more work.
    pub database_write_faults: u64,
    /// Lost and misdirected writes to the database file (and its doublewrite file): damage
    /// the engine cannot know of until it reads what they left.
    pub database_damage: u64,
}

#[derive(Debug)]
struct Disk {
    device: Device,
    rng: ChaCha8Rng,
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    ns: Namespace,
    durable_ns: Namespace,
    meta: Vec<PendingMeta>,
    armed: Vec<ArmedFault>,
    /// Faults that fired, by kind, since the last restart.
    fired: BTreeMap<IoFault, u64>,
    crash_at: Option<u64>,
    crashed: bool,
    /// What the armed crash interrupted: the operation and the file.
    crash_site: Option<(String, PathBuf)>,
    /// A misdirected write whose file has not since been written and synced: a crash now
    /// would make the misplaced data look like a torn tail, a double fault the atlas avoids.
    unvouched: Option<Unvouched>,
    sabotage: Option<Sabotage>,
    lost_writes: u64,
    /// Faults hold their fire (while the oracle reads).
    suspended: bool,
    /// Reads counted by [`Sabotage::SpuriousReadError`].
    spurious_reads: u64,
    /// The files misdirected writes landed in, over the whole run.
    misdirected: std::collections::BTreeSet<Ino>,
    /// Whether an unvouched misdirected write had its lost half suppressed: its stray copy
    /// stayed (see [`SimVfs::suppress_unvouched_misdirect`]).
    stray_misdirect: bool,
    /// Handles of an earlier life of the process are dead.
    epoch: u64,
    stats: DiskStats,
    trace: Trace,
}

fn crashed_error() -> io::Error {
    io::Error::other("the simulated machine has crashed")
}

fn not_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{} is not a directory", path.display()),
    )
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Disk {
    /// A crash point: fails once the machine has crashed, and crashes it when the armed
    /// count is reached.
    fn point(&mut self, what: &str, path: &Path) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.stats.points += 1;
        // Held, like faults, while the simulator's own oracle works the disk.
        if let Some(at) = self.crash_at
            && !self.suspended
            && self.stats.points >= at
            && self.unvouched.is_none()
        {
            self.crashed = true;
            self.crash_at = None;
            self.crash_site = Some((what.to_owned(), path.to_path_buf()));
            let zone = Zone::of(path);
            self.trace.event(format_args!(
                "crash at I/O point {} ({what} {} [{zone:?}])",
                self.stats.points,
                path.display()
            ));
            if let Some(t) = self.trace.timeline() {
                t.mark(
                    Lane::Instance,
                    "crash",
                    format!("crash at I/O point {}", self.stats.points),
                    vec![format!("during a {what} of {} ({zone:?})", path.display())],
                );
            }
            return Err(crashed_error());
        }
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.crashed {
            Err(crashed_error())
        } else {
            Ok(())
        }
    }

    /// Whether an armed fault of `kind` fires on this operation in `zone`.
    fn fires(&mut self, kind: IoFault, zone: Zone) -> bool {
        if self.suspended {
            return false;
        }
        let Some(i) = self
            .armed
            .iter()
            .position(|f| f.kind == kind && f.zone == zone)
        else {
            return false;
        };
        let fault = &mut self.armed[i];
        if fault.after > 0 {
            fault.after -= 1;
            return false;
        }
        if !fault.persistent {
            self.armed.remove(i);
        }
        self.stats.faults_fired += 1;
        // (A misdirected or lost write reports success: the engine cannot know of it.)
        if zone == Zone::Database {
            match kind {
                IoFault::Misdirect | IoFault::LostWrite => self.stats.database_damage += 1,
                IoFault::ReadError => {}
                _ => self.stats.database_write_faults += 1,
            }
        }
        *self.fired.entry(kind).or_default() += 1;
        if let Some(t) = self.trace.timeline() {
            let point = self.stats.points;
            t.mark(
                Lane::Faults,
                "fault-fired",
                format!("{kind:?} fired on the {zone:?} zone"),
                vec![format!("at I/O point {point}")],
            );
        }
        true
    }

    fn entry(&self, path: &Path) -> Option<Entry> {
        if path.as_os_str().is_empty() {
            return Some(Entry::Dir);
        }
        self.ns.get(path).copied()
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match self.entry(parent_dir(path)) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(not_a_directory(parent_dir(path))),
            None => Err(self.missing(parent_dir(path))),
        }
    }

    /// The error for `path`, which is not there: `NotADirectory` if one of its ancestors is
    /// a file, else `NotFound`, as the OS says of such a path (ENOTDIR, ENOENT).
    fn missing(&self, path: &Path) -> io::Error {
        match path
            .ancestors()
            .skip(1)
            .find(|a| matches!(self.entry(a), Some(Entry::File(_))))
        {
            Some(file) => not_a_directory(file),
            None => not_found(path),
        }
    }

    /// [`Sabotage::StaleBackupPages`]: what the live database file holds now at `offset`.
    fn live_database_bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        if let Some(Entry::File(ino)) = self.entry(Path::new("inst/data.edb"))
            && let Some(inode) = self.inodes.get(&ino)
        {
            let start = (offset as usize).min(inode.view.len());
            let end = (offset as usize + len).min(inode.view.len());
            out[..end - start].copy_from_slice(&inode.view[start..end]);
        }
        out
    }

    /// [`Sabotage::DropLastBackupLog`]: the highest log file of the newest set in `dir`
    /// vanishes.
    fn drop_last_backup_log(&mut self, dir: &Path) {
        let in_dir = |d: &Path| -> Vec<PathBuf> {
            self.ns
                .keys()
                .filter(|p| parent_dir(p) == d)
                .cloned()
                .collect()
        };
        let Some(set) = in_dir(dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("set-"))
            })
            .max()
        else {
            return;
        };
        let Some(last) = in_dir(&set)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .max()
        else {
            return;
        };
        if let Some(Entry::File(ino)) = self.entry(&last) {
            self.ns.remove(&last);
            self.push_meta(Meta::Unlink(last, Entry::File(ino)));
        }
    }

    fn push_meta(&mut self, op: Meta) {
        let needs = match &op {
            Meta::Link(p, _) | Meta::Unlink(p, _) => vec![parent_dir(p).to_path_buf()],
            Meta::Rename(from, to, _) => {
                let (a, b) = (parent_dir(from), parent_dir(to));
                if a == b {
                    vec![a.to_path_buf()]
                } else {
                    vec![a.to_path_buf(), b.to_path_buf()]
                }
            }
        };
        self.meta.push(PendingMeta { op, needs });
    }

    fn count_log_io(&mut self, ino: Ino) {
        if self.inodes.get(&ino).is_some_and(|i| i.zone == Zone::Log) {
            self.stats.log_io += 1;
        }
    }

    /// A new, empty inode for a file to be named `path` (its zone comes from the name).
    fn new_inode(&mut self, path: &Path) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                view: Vec::new(),
                durable: Vec::new(),
                pending: Vec::new(),
                zone: Zone::of(path),
                allocated: BTreeSet::new(),
                damaged: Vec::new(),
                covering: Vec::new(),
            },
        );
        ino
    }

    fn inode(&mut self, ino: Ino) -> &mut Inode {
        self.inodes.get_mut(&ino).expect("a handle's inode lives")
    }

    /// Loses power: resolves every pending write and namespace change.
    fn lose_power(&mut self) -> PowerLoss {
        let mut report = PowerLoss::default();
        let sector = self.device.sector_size;
        let inos: Vec<Ino> = self.inodes.keys().copied().collect();
        for ino in inos {
            // Writes over damage not yet durable may be gone with the power: it stays.
            self.inode(ino).covering.clear();
            let pending = std::mem::take(&mut self.inode(ino).pending);
            if pending.is_empty() {
                continue;
            }
            let all = self
                .rng
                .random_ratio(u32::from(self.device.all_land_percent), 100);
            let cut = if self.device.sequential && !all {
                self.rng.random_range(0..=pending.len())
            } else {
                pending.len()
            };
            let mut durable = std::mem::take(&mut self.inode(ino).durable);
            let mut appends_stopped = false;
            for (i, p) in pending.iter().enumerate() {
                if i > cut {
                    report.writes_torn += 1;
                    continue;
                }
                let whole = all || (self.device.sequential && i < cut);
                match p {
                    Pending::SetLen(len) => {
                        if whole || self.rng.random_bool(0.5) {
                            durable.resize(*len as usize, 0);
                        }
                    }
                    Pending::Write { offset, data } => {
                        if whole {
                            write_into(&mut durable, *offset, data);
                            report.writes_landed += 1;
                        } else {
                            let torn = self.tear(
                                &mut durable,
                                *offset,
                                data,
                                sector,
                                &mut appends_stopped,
                                &mut report,
                            );
                            if torn {
                                report.writes_torn += 1;
                            } else {
                                report.writes_landed += 1;
                            }
                        }
                    }
                }
            }
            self.inode(ino).durable = durable;
        }
        // The namespace: an ordered journal keeps a prefix of the changes, a weaker file
        // system any subset; changes whose directories were synced always stay.
        let mut ns = std::mem::take(&mut self.durable_ns);
        let meta = std::mem::take(&mut self.meta);
        let journal = self.rng.random_bool(0.5);
        let keep = self.rng.random_range(0..=meta.len());
        for (i, m) in meta.iter().enumerate() {
            let synced = m.needs.is_empty();
            let kept = synced
                || if journal {
                    i < keep
                } else {
                    self.rng.random_bool(0.5)
                };
            if kept {
                apply_meta(&mut ns, &m.op);
            } else {
                report.entries_undone += 1;
            }
        }
        self.ns = ns.clone();
        self.durable_ns = ns;
        for inode in self.inodes.values_mut() {
            inode.view.clone_from(&inode.durable);
            let len = inode.durable.len() as u64;
            inode.allocated.retain(|b| b * BLOCK < len);
        }
        report
    }

    /// Resolves one pending write sector by sector; whether any of it was lost or garbled.
    fn tear(
        &mut self,
        durable: &mut Vec<u8>,
        offset: u64,
        data: &[u8],
        sector: usize,
        appends_stopped: &mut bool,
        report: &mut PowerLoss,
    ) -> bool {
        let start = offset as usize;
        let end = start + data.len();
        let appending = start >= durable.len();
        let mut torn = false;
        // A safe-append disk lands appends in order: after a lost one, no later one lands.
        let mut stopped = appending && *appends_stopped;
        let mut s = start / sector * sector;
        while s < end {
            let (a, b) = (s.max(start), (s + sector).min(end));
            let roll = self.rng.random_range(0..8u32);
            let garbage_allowed =
                !(self.device.atomic_sectors || (appending && self.device.safe_append));
            let choice = if stopped {
                1
            } else if roll < 3 {
                0
            } else if roll < 6 || !garbage_allowed {
                1
            } else {
                2
            };
            match choice {
                0 => write_into(durable, a as u64, &data[a - start..b - start]),
                1 => {
                    torn = true;
                    // A safe append lands in order: after a lost sector, nothing later lands.
                    stopped = appending && self.device.safe_append;
                }
                _ => {
                    torn = true;
                    report.garbage_sectors += 1;
                    let g_end = (s + sector).max(b).min(durable.len().max(b));
                    if durable.len() < g_end {
                        durable.resize(g_end, 0);
                    }
                    self.rng.fill(&mut durable[s..g_end]);
                }
            }
            s += sector;
        }
        if appending && stopped && self.device.safe_append {
            *appends_stopped = true;
        }
        torn
    }
}

/// The archived log generation after the one at `path` (`edb0000000A.log` → `edb0000000B.log`).
fn next_generation(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 11 {
        return None;
    }
    let (base, hex) = stem.split_at(3);
    let generation = u32::from_str_radix(hex, 16).ok()?;
    Some(parent_dir(path).join(format!("{base}{:08X}.log", generation.checked_add(1)?)))
}

fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

/// The simulated file system. Cloning gives another handle to the same disk.
#[derive(Clone)]
pub struct SimVfs {
    disk: Arc<Mutex<Disk>>,
}

impl fmt::Debug for SimVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimVfs").finish_non_exhaustive()
    }
}

impl SimVfs {
    /// An empty disk of the given kind; `seed` drives every choice it makes, and `trace`
    /// records what it does.
    pub fn new(device: Device, seed: u64, trace: Trace) -> SimVfs {
        assert!(
            device.sector_size.is_power_of_two() && (512..=4096).contains(&device.sector_size),
            "sector size {} is not a power of two from 512 to 4096",
            device.sector_size
        );
        SimVfs {
            disk: Arc::new(Mutex::new(Disk {
                device,
                rng: ChaCha8Rng::seed_from_u64(seed),
                inodes: BTreeMap::new(),
                next_ino: 1,
                ns: Namespace::new(),
                durable_ns: Namespace::new(),
                meta: Vec::new(),
                armed: Vec::new(),
                fired: BTreeMap::new(),
                crash_at: None,
                crashed: false,
                crash_site: None,
                unvouched: None,
                sabotage: None,
                lost_writes: 0,
                suspended: false,
                spurious_reads: 0,
                misdirected: std::collections::BTreeSet::new(),
                stray_misdirect: false,
                epoch: 0,
                stats: DiskStats::default(),
                trace,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the trace.
    pub fn with_trace<T>(&self, f: impl FnOnce(&mut Trace) -> T) -> T {
        f(&mut self.lock().trace)
    }

    /// Takes the trace out, leaving an empty one.
    pub fn take_trace(&self) -> Trace {
        std::mem::take(&mut self.lock().trace)
    }

    /// Builds in a bug, for showing that oracles fire.
    pub fn sabotage(&self, sabotage: Option<Sabotage>) {
        self.lock().sabotage = sabotage;
    }

    /// Crashes the machine at the `n`th crash point from now (1: the next one).
    pub fn arm_crash(&self, n: u64) {
        let mut disk = self.lock();
        disk.crash_at = Some(disk.stats.points + n.max(1));
    }

    /// Crashes the machine now: every later operation fails until [`SimVfs::restart`].
    pub fn crash(&self) {
        let mut disk = self.lock();
        disk.crashed = true;
        disk.crash_at = None;
    }

    /// What the last armed crash interrupted (operation, file), taken once.
    pub fn take_crash_site(&self) -> Option<(String, PathBuf)> {
        self.lock().crash_site.take()
    }

    /// Whether the machine has crashed.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Arms a fault.
    pub fn arm(&self, fault: ArmedFault) {
        self.lock().armed.push(fault);
    }

    /// Holds every armed fault's fire (or releases it): the oracle's own reads are not the
    /// engine's work and should meet no fault.
    pub fn suspend_faults(&self, suspended: bool) {
        self.lock().suspended = suspended;
    }

    /// Whether an unvouched misdirected write's stray copy was left in place this run (its
    /// lost half suppressed at a restart).
    pub fn stray_misdirect(&self) -> bool {
        self.lock().stray_misdirect
    }

    /// Whether a database file (by any name) still holds what a lost or misdirected write
    /// left wrong: damage no write has durably mended since.
    pub fn database_damaged(&self) -> bool {
        let disk = self.lock();
        disk.ns.values().any(|e| {
            matches!(e, Entry::File(ino) if disk.inodes.get(ino).is_some_and(|i| {
                i.zone == Zone::Database && !i.damaged.is_empty()
            }))
        })
    }

    /// Whether a file a misdirected write landed in is still there (by any name): its damage
    /// may still be found.
    pub fn misdirected_file_present(&self) -> bool {
        let disk = self.lock();
        disk.ns
            .values()
            .any(|e| matches!(e, Entry::File(ino) if disk.misdirected.contains(ino)))
    }

    /// Whether a fault of `kind` in `zone` is armed, or one of `kind` has fired since the last
    /// restart.
    pub fn armed_or_fired(&self, kind: IoFault, zone: Zone) -> bool {
        let disk = self.lock();
        disk.armed.iter().any(|f| f.kind == kind && f.zone == zone)
            || disk.fired.contains_key(&kind)
    }

    /// Removes an armed crash point that has not fired.
    pub fn disarm_crash(&self) {
        self.lock().crash_at = None;
    }

    /// Removes every armed fault and crash point: the fault-free phase.
    pub fn disarm(&self) {
        let mut disk = self.lock();
        disk.armed.clear();
        disk.crash_at = None;
    }

    /// How many faults have fired since the last restart, by kind.
    pub fn fired(&self) -> BTreeMap<IoFault, u64> {
        self.lock().fired.clone()
    }

    /// Counts of what the disk did.
    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// The fault atlas before a restart: a misdirected write that no later write and fsync
    /// of its file vouches for would look like a torn tail, and the writes made after it
    /// (the database's, under the write-ahead rule) would outrun the log — a double fault
    /// the design does not claim to survive. Its lost half is suppressed: the data also lands
    /// where it was meant to (durably if it was fsynced); the stray copy stays. Returns
    /// whether there was one.
    pub fn suppress_unvouched_misdirect(&self) -> bool {
        let mut disk = self.lock();
        let Some(u) = disk.unvouched.take() else {
            return false;
        };
        disk.stray_misdirect = true;
        let Some(inode) = disk.inodes.get_mut(&u.ino) else {
            return false;
        };
        write_into(&mut inode.view, u.offset, &u.data);
        if u.synced {
            write_into(&mut inode.durable, u.offset, &u.data);
        } else {
            inode.pending.push(Pending::Write {
                offset: u.offset,
                data: u.data,
            });
        }
        true
    }

    /// Writes dropped by [`Sabotage::LostWrite`].
    pub fn lost_writes(&self) -> u64 {
        self.lock().lost_writes
    }

    /// Brings the machine back after a crash (or a process exit): handles opened before are
    /// dead, persistent faults are cleared (transient ones still armed wait for recovery to
    /// meet them), and with `power_loss` every pending write and
    /// namespace change is resolved as the [`Device`] allows. Without it the page cache
    /// survives: pending writes stay pending, still to be lost by a later power loss.
    pub fn restart(&self, power_loss: bool) -> Option<PowerLoss> {
        self.suppress_unvouched_misdirect();
        let mut disk = self.lock();
        disk.crashed = false;
        disk.crash_at = None;
        disk.armed.retain(|f| !f.persistent);
        disk.fired.clear();
        disk.unvouched = None;
        disk.epoch += 1;
        let report = power_loss.then(|| disk.lose_power());
        // Inodes no name reaches (nor a namespace change still pending, which a later power
        // loss may keep) are gone: no handle survives a restart.
        let pending = disk.meta.iter().filter_map(|m| match &m.op {
            Meta::Link(_, Entry::File(ino)) | Meta::Unlink(_, Entry::File(ino)) => Some(*ino),
            Meta::Rename(_, _, ino) => Some(*ino),
            _ => None,
        });
        let reachable: std::collections::BTreeSet<Ino> = disk
            .ns
            .values()
            .chain(disk.durable_ns.values())
            .filter_map(|e| match e {
                Entry::File(ino) => Some(*ino),
                Entry::Dir => None,
            })
            .chain(pending)
            .collect();
        disk.inodes.retain(|ino, _| reachable.contains(ino));
        report
    }

    /// The paths of the files in `zone` (as the view has them), sorted.
    pub fn files_in(&self, zone: Zone) -> Vec<PathBuf> {
        let disk = self.lock();
        disk.ns
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File(ino) if disk.inodes[ino].zone == zone))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Whether the file at `path` has writes not yet durable.
    pub fn has_pending(&self, path: &Path) -> bool {
        let disk = self.lock();
        match disk.ns.get(path) {
            Some(Entry::File(ino)) => !disk.inodes[ino].pending.is_empty(),
            _ => false,
        }
    }

    /// Whether a lost or misdirected write left damage in `[start, end)` of the file at `path`
    /// that no later durable write has mended: the bytes there may be whole but stale.
    pub fn range_damaged(&self, path: &Path, start: u64, end: u64) -> bool {
        let disk = self.lock();
        match disk.ns.get(path) {
            Some(Entry::File(ino)) => disk.inodes[ino]
                .damaged
                .iter()
                .any(|&(a, b)| a < end && b > start),
            _ => false,
        }
    }

    /// The durable content of the file at `path`, if it exists.
    pub fn durable_content(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.lock();
        match disk.durable_ns.get(path) {
            Some(Entry::File(ino)) => Some(disk.inodes[ino].durable.clone()),
            _ => None,
        }
    }

    /// Flips bit `bit` of byte `offset` of the file at `path`, both on the disk and in the
    /// page cache: latent corruption, as bit rot leaves it. Meant for a machine at rest (after
    /// a restart, before the engine opens anything). Returns whether the byte exists.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut disk = self.lock();
        let Some(Entry::File(ino)) = disk.ns.get(path).copied() else {
            return false;
        };
        let inode = disk.inode(ino);
        let at = offset as usize;
        if at >= inode.durable.len() || at >= inode.view.len() {
            return false;
        }
        inode.durable[at] ^= 1 << (bit % 8);
        inode.view[at] ^= 1 << (bit % 8);
        true
    }

    /// A hash of every file's durable content and name, for determinism checks.
    pub fn durable_hash(&self) -> u64 {
        let disk = self.lock();
        let mut h = crate::trace::Hasher::default();
        for (path, entry) in &disk.durable_ns {
            h.bytes(path.as_os_str().as_encoded_bytes());
            if let Entry::File(ino) = entry {
                h.u64(u64::from(crc32fast::hash(&disk.inodes[ino].durable)));
            }
        }
        h.finish()
    }

    /// Every file as reads see it: (path, content), sorted by path. For exporting a failed
    /// run's disk to real files (`jetsim run --dump-disk`), where `jetutil` can examine it.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let disk = self.lock();
        disk.ns
            .iter()
            .filter_map(|(p, e)| match e {
                Entry::File(ino) => Some((p.clone(), disk.inodes[ino].view.clone())),
                Entry::Dir => None,
            })
            .collect()
    }

    /// Every file under directory `dir` as reads see it: (path, content), sorted by path.
    pub fn files_under(&self, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let disk = self.lock();
        disk.ns
            .range(dir.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .filter_map(|(p, e)| match e {
                Entry::File(ino) => Some((p.clone(), disk.inodes[ino].view.clone())),
                Entry::Dir => None,
            })
            .collect()
    }

    /// The CRC32 of what reads see of the file at `path`, if it exists.
    pub fn crc_of(&self, path: &Path) -> Option<u32> {
        let disk = self.lock();
        match disk.ns.get(path) {
            Some(Entry::File(ino)) => Some(crc32fast::hash(&disk.inodes[ino].view)),
            _ => None,
        }
    }

    /// The length reads see of the file at `path`, if it exists.
    pub fn len_of(&self, path: &Path) -> Option<u64> {
        let disk = self.lock();
        match disk.ns.get(path) {
            Some(Entry::File(ino)) => Some(disk.inodes[ino].view.len() as u64),
            _ => None,
        }
    }

    /// Every file under `dir` with the CRC32 of what reads see, without copying them.
    pub fn crcs_under(&self, dir: &Path) -> BTreeMap<PathBuf, u32> {
        let disk = self.lock();
        disk.ns
            .range(dir.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .filter_map(|(p, e)| match e {
                Entry::File(ino) => Some((p.clone(), crc32fast::hash(&disk.inodes[ino].view))),
                Entry::Dir => None,
            })
            .collect()
    }

    /// Whether `path` is a file at rest: the same inode by that name in the namespace reads
    /// see and in the durable one, with no write pending. Only such files are tampered with.
    pub fn at_rest(&self, path: &Path) -> bool {
        let disk = self.lock();
        let whole = match (disk.ns.get(path), disk.durable_ns.get(path)) {
            (Some(Entry::File(a)), Some(Entry::File(b))) => {
                a == b
                    && disk.inodes[a].pending.is_empty()
                    && disk.inodes[a].view == disk.inodes[a].durable
            }
            _ => false,
        };
        // (A change waiting in `meta`, even one whose directory was synced, would apply to
        // the durable namespace later, over what is put here.)
        whole && !disk.meta.iter().any(|m| m.names(path))
    }

    /// Whether no file is at `path`, in the namespace reads see or the durable one, and no
    /// pending change names it: a name a file may be put at by hand.
    pub fn free_at_rest(&self, path: &Path) -> bool {
        let disk = self.lock();
        !disk.ns.contains_key(path)
            && !disk.durable_ns.contains_key(path)
            && !disk.meta.iter().any(|m| m.names(path))
    }

    /// Writes `bytes` as the whole file at `path`, at once and durably, outside any fault or
    /// crash point: a file put in place by hand (a tampered log set). A new file gets a new
    /// inode; an existing one is rewritten.
    pub fn put_at_rest(&self, path: &Path, bytes: &[u8]) {
        let mut disk = self.lock();
        let ino = match disk.ns.get(path) {
            Some(Entry::File(ino)) => *ino,
            _ => disk.new_inode(path),
        };
        // A misdirected write not yet vouched for in this file is gone with its content: the
        // atlas has nothing left to suppress there.
        if disk.unvouched.as_ref().is_some_and(|u| u.ino == ino) {
            disk.unvouched = None;
        }
        let blocks = (bytes.len() as u64).div_ceil(BLOCK);
        let inode = disk.inode(ino);
        inode.view = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.pending.clear();
        inode.allocated = (0..blocks).collect();
        disk.ns.insert(path.to_path_buf(), Entry::File(ino));
        disk.durable_ns.insert(path.to_path_buf(), Entry::File(ino));
        disk.trace
            .io(b'P', ino, 0, bytes.len() as u64, crc32fast::hash(bytes));
    }

    /// Removes the file at `path` at once and durably, outside any fault: a file deleted by
    /// hand.
    pub fn remove_at_rest(&self, path: &Path) {
        let mut disk = self.lock();
        let removed = disk.ns.remove(path);
        disk.durable_ns.remove(path);
        if let Some(Entry::File(ino)) = removed {
            disk.trace.io(b'U', ino, 0, 0, 0);
        }
    }

    /// The content reads see of the file at `path`, if it exists.
    pub fn content(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.lock();
        match disk.ns.get(path) {
            Some(Entry::File(ino)) => Some(disk.inodes[ino].view.clone()),
            _ => None,
        }
    }

    /// Creates directory `path` durably, outside any fault: for setting up a run.
    pub fn mkdir_durable(&self, path: &Path) {
        let mut disk = self.lock();
        disk.ns.insert(path.to_path_buf(), Entry::Dir);
        disk.durable_ns.insert(path.to_path_buf(), Entry::Dir);
    }
}

impl Vfs for SimVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut disk = self.lock();
        disk.alive()?;
        let ino = match (disk.entry(path), mode) {
            (Some(Entry::Dir), _) => {
                return Err(io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )));
            }
            (Some(Entry::File(_)), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            (Some(Entry::File(ino)), OpenMode::CreateTruncate) => {
                disk.point("truncate", path)?;
                let inode = disk.inode(ino);
                inode.view.clear();
                inode.allocated.clear();
                inode.pending.push(Pending::SetLen(0));
                ino
            }
            (Some(Entry::File(ino)), _) => ino,
            (None, OpenMode::Read | OpenMode::ReadWrite) => return Err(disk.missing(path)),
            (None, OpenMode::CreateNew | OpenMode::CreateTruncate) => {
                disk.check_parent(path)?;
                disk.point("create", path)?;
                let ino = disk.new_inode(path);
                disk.ns.insert(path.to_path_buf(), Entry::File(ino));
                disk.push_meta(Meta::Link(path.to_path_buf(), Entry::File(ino)));
                disk.trace.io(b'c', ino, 0, 0, 0);
                ino
            }
        };
        let epoch = disk.epoch;
        Ok(Box::new(SimFile {
            disk: Arc::clone(&self.disk),
            ino,
            path: path.to_path_buf(),
            writable: mode.writable(),
            epoch,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let disk = self.lock();
        disk.alive()?;
        Ok(disk.entry(path).is_some())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        let disk = self.lock();
        disk.alive()?;
        Ok(disk.entry(path) == Some(Entry::Dir))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.alive()?;
        let Some(Entry::File(ino)) = disk.entry(path) else {
            return Err(disk.missing(path));
        };
        disk.point("remove", path)?;
        disk.ns.remove(path);
        disk.push_meta(Meta::Unlink(path.to_path_buf(), Entry::File(ino)));
        disk.trace.io(b'u', ino, 0, 0, 0);
        if disk.sabotage == Some(Sabotage::OverTruncate)
            && Zone::of(path) == Zone::Log
            && let Some(next) = next_generation(path)
            && let Some(Entry::File(ino)) = disk.entry(&next)
        {
            disk.ns.remove(&next);
            disk.push_meta(Meta::Unlink(next, Entry::File(ino)));
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.alive()?;
        let Some(Entry::File(ino)) = disk.entry(from) else {
            return Err(disk.missing(from));
        };
        disk.check_parent(to)?;
        disk.count_log_io(ino);
        if disk.entry(to) == Some(Entry::Dir) {
            return Err(io::Error::other(format!("{} is a directory", to.display())));
        }
        disk.point("rename", from)?;
        disk.ns.remove(from);
        disk.ns.insert(to.to_path_buf(), Entry::File(ino));
        disk.inode(ino).zone = Zone::of(to);
        disk.push_meta(Meta::Rename(from.to_path_buf(), to.to_path_buf(), ino));
        disk.trace.io(b'r', ino, 0, 0, 0);
        // The live log archived under its generation's name: the engine rolled to the next.
        if let Some(t) = disk.trace.timeline()
            && to.parent() == Some(Path::new("inst"))
            && from.file_name().is_some_and(|n| n == "edb.log")
            && let Some(generation) = to
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| jetdb::log::parse_archive_name("edb", n))
        {
            t.mark(
                Lane::Instance,
                "log-roll",
                format!("log roll: generation {generation:#X} archived"),
                vec![format!("{} renamed to {}", from.display(), to.display())],
            );
        }
        if disk.sabotage == Some(Sabotage::DropLastBackupLog)
            && to.file_name().is_some_and(|n| n == "jetbackup.manifest")
        {
            disk.drop_last_backup_log(parent_dir(to));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.lock();
        disk.alive()?;
        if disk.entry(dir) != Some(Entry::Dir) {
            return Err(disk.missing(dir));
        }
        Ok(disk
            .ns
            .keys()
            .filter(|p| parent_dir(p) == dir && !p.as_os_str().is_empty())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.alive()?;
        if disk.entry(path).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        disk.check_parent(path)?;
        disk.point("mkdir", path)?;
        disk.ns.insert(path.to_path_buf(), Entry::Dir);
        disk.push_meta(Meta::Link(path.to_path_buf(), Entry::Dir));
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.alive()?;
        if disk.entry(path) != Some(Entry::Dir) {
            return Err(disk.missing(path));
        }
        if disk.ns.keys().any(|p| parent_dir(p) == path) {
            return Err(io::Error::other(format!("{} is not empty", path.display())));
        }
        disk.point("rmdir", path)?;
        disk.ns.remove(path);
        disk.push_meta(Meta::Unlink(path.to_path_buf(), Entry::Dir));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.alive()?;
        if disk.entry(path) != Some(Entry::Dir) {
            return Err(disk.missing(path));
        }
        disk.point("dirsync", path)?;
        disk.stats.syncs += 1;
        disk.trace.io(b'D', 0, 0, 0, 0);
        // The entries it would have made durable stay pending.
        if disk.fires(IoFault::DirSyncError, Zone::of(path)) {
            disk.trace.event(format_args!(
                "fault: directory fsync EIO on {}",
                path.display()
            ));
            return Err(io::Error::other("simulated EIO on a directory fsync"));
        }
        if disk.sabotage == Some(Sabotage::SkipDirSync) {
            return Ok(());
        }
        for m in &mut disk.meta {
            m.needs.retain(|d| d != path);
        }
        // Fold the synced prefix into the durable namespace.
        let done = disk.meta.iter().take_while(|m| m.needs.is_empty()).count();
        let folded: Vec<PendingMeta> = disk.meta.drain(..done).collect();
        for m in folded {
            apply_meta(&mut disk.durable_ns, &m.op);
        }
        Ok(())
    }
}

/// An open file on the simulated disk.
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    ino: Ino,
    path: PathBuf,
    writable: bool,
    epoch: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile({})", self.path.display())
    }
}

impl SimFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        disk.alive()?;
        if disk.epoch != self.epoch {
            return Err(io::Error::other(
                "a file handle from before the machine restarted",
            ));
        }
        Ok(disk)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is open for reading", self.path.display()),
            ))
        }
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut disk = self.lock()?;
        let zone = disk.inode(self.ino).zone;
        if disk.fires(IoFault::ReadError, zone) {
            disk.trace.event(format_args!(
                "fault: read EIO on {} at {offset}",
                self.path.display()
            ));
            return Err(io::Error::other("simulated EIO on read"));
        }
        if disk.sabotage == Some(Sabotage::SpuriousReadError) {
            disk.spurious_reads += 1;
            if disk.spurious_reads.is_multiple_of(40) {
                return Err(io::Error::other("sabotage: EIO on read, no fault armed"));
            }
        }
        let view = &disk.inode(self.ino).view;
        let start = (offset as usize).min(view.len());
        let n = buf.len().min(view.len() - start);
        buf[..n].copy_from_slice(&view[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut disk = self.lock()?;
        disk.count_log_io(self.ino);
        disk.point("write", &self.path)?;
        let zone = disk.inode(self.ino).zone;
        let end = offset + buf.len() as u64;
        let len = disk.inode(self.ino).view.len() as u64;
        if disk.fires(IoFault::WriteError, zone) {
            disk.trace.event(format_args!(
                "fault: write EIO on {} at {offset}+{}",
                self.path.display(),
                buf.len()
            ));
            return Err(io::Error::other("simulated EIO on write"));
        }
        let allocates = {
            let allocated = &disk.inode(self.ino).allocated;
            blocks(offset, buf.len() as u64).any(|b| !allocated.contains(&b))
        };
        if allocates && disk.fires(IoFault::DiskFull, zone) {
            disk.trace.event(format_args!(
                "fault: ENOSPC on {} at {offset}+{}",
                self.path.display(),
                buf.len()
            ));
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated ENOSPC",
            ));
        }
        if let Some(Sabotage::LostWrite(z)) = disk.sabotage
            && z == zone
            && disk.rng.random_ratio(1, 4)
        {
            disk.lost_writes += 1;
            disk.trace.event(format_args!(
                "sabotage: write to {} at {offset}+{} lost",
                self.path.display(),
                buf.len()
            ));
            return Ok(());
        }
        let stale;
        let backup_copy = zone == Zone::Backup && self.path.extension().is_some_and(|e| e == "edb");
        let buf = match disk.sabotage {
            Some(Sabotage::StaleBackupPages) if backup_copy => {
                stale = disk.live_database_bytes(offset, buf.len());
                &stale[..]
            }
            Some(Sabotage::UnverifiedBackupPages) if backup_copy && !buf.is_empty() => {
                let mut flipped = buf.to_vec();
                let at = disk.rng.random_range(0..flipped.len());
                flipped[at] ^= 1 << disk.rng.random_range(0..8);
                stale = flipped;
                &stale[..]
            }
            _ => buf,
        };
        if disk.fires(IoFault::LostWrite, zone) {
            disk.trace.event(format_args!(
                "fault: write to {} at {offset}+{} lost",
                self.path.display(),
                buf.len()
            ));
            let end = offset + buf.len() as u64;
            disk.inode(self.ino).damage(offset, end);
            return Ok(());
        }
        let mut offset = offset;
        let mut misplaced = false;
        if disk.fires(IoFault::Misdirect, zone) {
            misplaced = true;
            let sector = disk.device.sector_size as u64;
            let room = len.max(end) / sector;
            let mut to = disk.rng.random_range(0..room.max(1)) * sector;
            if to == offset {
                to = (to + sector) % (room.max(1) * sector);
            }
            disk.trace.event(format_args!(
                "fault: write to {} at {offset}+{} misdirected to {to}",
                self.path.display(),
                buf.len()
            ));
            // The atlas's rule for the log (see `suppress_unvouched_misdirect`); in the
            // database file the lost half stays lost, for the flush map to find.
            if zone == Zone::Database {
                let len = buf.len() as u64;
                let inode = disk.inode(self.ino);
                inode.damage(offset, offset + len);
                inode.damage(to, to + len);
            } else {
                disk.unvouched = Some(Unvouched {
                    ino: self.ino,
                    offset,
                    data: buf.to_vec(),
                    wrote_after: false,
                    synced: false,
                });
                disk.misdirected.insert(self.ino);
            }
            offset = to;
        } else if let Some(u) = &mut disk.unvouched
            && u.ino == self.ino
            && u.synced
        {
            // Only a write after the fsync that made the misplaced data durable carries a
            // durable mark that vouches for it.
            u.wrote_after = true;
        }
        disk.stats.bytes_written += buf.len() as u64;
        disk.trace.io(
            b'w',
            self.ino,
            offset,
            buf.len() as u64,
            crc32fast::hash(buf),
        );
        let inode = disk.inode(self.ino);
        inode.allocated.extend(blocks(offset, buf.len() as u64));
        if !inode.damaged.is_empty() && !misplaced {
            inode.covering.push((offset, offset + buf.len() as u64));
        }
        write_into(&mut inode.view, offset, buf);
        inode.pending.push(Pending::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut disk = self.lock()?;
        disk.count_log_io(self.ino);
        disk.point("fsync", &self.path)?;
        disk.stats.syncs += 1;
        let zone = disk.inode(self.ino).zone;
        disk.trace.io(b's', self.ino, 0, 0, 0);
        if disk.sabotage == Some(Sabotage::PanicInSync) && disk.stats.syncs == 50 {
            drop(disk);
            panic!("sabotage: a panic inside fsync");
        }
        if disk.fires(IoFault::SyncError, zone) {
            disk.trace
                .event(format_args!("fault: fsync EIO on {}", self.path.display()));
            return Err(io::Error::other("simulated EIO on fsync"));
        }
        if disk.fires(IoFault::Fsyncgate, zone) {
            disk.inode(self.ino).covering.clear();
            let lost = std::mem::take(&mut disk.inode(self.ino).pending).len();
            disk.trace.event(format_args!(
                "fault: fsync EIO on {}, {lost} pending writes lost (fsyncgate)",
                self.path.display()
            ));
            return Err(io::Error::other("simulated EIO on fsync, data lost"));
        }
        if disk.sabotage == Some(Sabotage::SkipSync(zone)) {
            return Ok(());
        }
        if let Some(u) = &mut disk.unvouched
            && u.ino == self.ino
        {
            if u.wrote_after {
                disk.unvouched = None;
            } else {
                u.synced = true;
            }
        }
        let inode = disk.inode(self.ino);
        for p in std::mem::take(&mut inode.pending) {
            match p {
                Pending::Write { offset, data } => write_into(&mut inode.durable, offset, &data),
                Pending::SetLen(len) => inode.durable.resize(len as usize, 0),
            }
        }
        // What was written over damage is durable now: that damage is mended.
        for (start, end) in std::mem::take(&mut inode.covering) {
            subtract(&mut inode.damaged, start, end);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut disk = self.lock()?;
        disk.point("set_len", &self.path)?;
        // Extending allocates nothing (a sparse file); shrinking frees what lies past the end.
        disk.trace.io(b'l', self.ino, len, 0, 0);
        let inode = disk.inode(self.ino);
        inode.allocated.retain(|b| b * BLOCK < len);
        // (Damage past a shrunk end goes with it.)
        subtract(&mut inode.damaged, len, u64::MAX);
        inode.view.resize(len as usize, 0);
        inode.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut disk = self.lock()?;
        Ok(disk.inode(self.ino).view.len() as u64)
    }
}
