//! A run's configuration, drawn from its seed swarm-style: which operations and faults are
//! on, at what rates, on what disk, with what engine parameters. Leaving features out of a
//! run lets the others reach states they would otherwise be crowded out of (Groce et al.).

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::sabotage::Sabotage;
use crate::vfs::{Device, IoFault};

/// How often each kind of step is drawn; 0 leaves it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Begin a transaction.
    pub begin: u32,
    /// Put a record.
    pub put: u32,
    /// Delete a record.
    pub delete: u32,
    /// Read a record.
    pub get: u32,
    /// Scan a range.
    pub scan: u32,
    /// Commit durably.
    pub commit_durable: u32,
    /// Commit lazily.
    pub commit_lazy: u32,
    /// Roll back.
    pub rollback: u32,
    /// Advance the checkpoint.
    pub checkpoint: u32,
    /// Flush the log.
    pub flush_log: u32,
    /// Terminate cleanly and initialise again.
    pub restart: u32,
    /// Crash now (power loss or process kill).
    pub crash: u32,
    /// Arm a crash at a later I/O point.
    pub crash_at_io: u32,
    /// Arm an I/O fault.
    pub io_fault: u32,
    /// Plant latent corruption, found at the next restart: per thousand steps, not a weight
    /// (each planted corruption that is found ends the run, so it stays rare).
    pub corrupt: u32,
    /// Begin a backup (full, atomic or incremental) into one of the backup directories.
    #[serde(default)]
    pub backup: u32,
    /// Copy the next piece of the running backup.
    #[serde(default)]
    pub backup_step: u32,
    /// Finish (or, rarely, abandon) the running backup.
    #[serde(default)]
    pub backup_finish: u32,
    /// Truncate the logs (a backup with no path).
    #[serde(default)]
    pub truncate: u32,
    /// Restore a backup directory into a fresh place and compare it with its snapshot.
    #[serde(default)]
    pub restore: u32,
    /// Put hundreds of records in one transaction.
    #[serde(default)]
    pub bulk: u32,
    /// Delete a range of keys in one transaction.
    #[serde(default)]
    pub delete_range: u32,
    /// Make a log set other than it claims (in a backup directory or the live log directory).
    #[serde(default)]
    pub tamper: u32,
}

impl Weights {
    /// Each weight with its name, in the order steps are drawn in (`corrupt`, a rate per
    /// thousand steps, last).
    pub fn named(&self) -> [(&'static str, u32); 23] {
        [
            ("begin", self.begin),
            ("put", self.put),
            ("delete", self.delete),
            ("get", self.get),
            ("scan", self.scan),
            ("commit-durable", self.commit_durable),
            ("commit-lazy", self.commit_lazy),
            ("rollback", self.rollback),
            ("checkpoint", self.checkpoint),
            ("flush", self.flush_log),
            ("restart", self.restart),
            ("crash", self.crash),
            ("crash-at-io", self.crash_at_io),
            ("io-fault", self.io_fault),
            ("backup", self.backup),
            ("backup-step", self.backup_step),
            ("backup-finish", self.backup_finish),
            ("truncate", self.truncate),
            ("restore", self.restore),
            ("bulk", self.bulk),
            ("delete-range", self.delete_range),
            ("tamper", self.tamper),
            ("corrupt", self.corrupt),
        ]
    }
}

/// Everything a run depends on besides its seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The seed: it drew this configuration and drives the run.
    pub seed: u64,
    /// How many steps the workload has.
    pub steps: u32,
    /// Sessions interleaving transactions.
    pub sessions: u8,
    /// Tables.
    pub tables: u8,
    /// Keys per table: few keys mean many conflicts.
    pub keys: u16,
    /// The share of puts, in percent, with values large enough to go out of line.
    pub large_value_percent: u8,
    /// The database page size.
    pub page_size: u32,
    /// The size of each log file, in KiB (small: runs cross many generations).
    pub log_file_kib: u32,
    /// Circular logging.
    pub circular_logging: bool,
    /// The page cache, in pages (small: pages are written back and read again).
    pub cache_pages: u32,
    /// Log bytes past the checkpoint before it advances, in KiB.
    pub checkpoint_depth_kib: u32,
    /// The version store, in KiB (small: writers meet `JET_errVersionStoreOutOfMemory`).
    pub version_store_kib: u32,
    /// The disk.
    pub device: Device,
    /// How often each kind of step is drawn.
    pub weights: Weights,
    /// Which I/O faults may be armed.
    pub faults: Vec<IoFault>,
    /// Which zones may be corrupted.
    pub corrupt_zones: Vec<CorruptZone>,
    /// A deliberate bug under the engine, for showing that oracles fire.
    pub sabotage: Option<Sabotage>,
    /// A database of real size (bulk steps, thousands of pages, the smallest cache).
    #[serde(default)]
    pub large_database: bool,
    /// The instance may create missing directories (`create_path_if_not_exist`), and the
    /// backup directories do not exist until a backup creates them.
    #[serde(default)]
    pub create_backup_dirs: bool,
    /// Backups run under a rate limit of this many KiB a second of simulated time
    /// (`BackupOptions::max_rate`): their waits move the simulated clock.
    #[serde(default)]
    pub backup_max_rate_kib: Option<u32>,
}

/// Where latent corruption may be planted; the fault atlas allows one per zone per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorruptZone {
    /// A database page other than the header's two.
    DatabasePage,
    /// One of the two database header copies.
    HeaderCopy,
    /// A sealed log segment that a later one vouches for, or an archived generation.
    LogSegment,
    /// One of the checkpoint file's two slots.
    CheckpointSlot,
    /// A file of a finished backup: its manifest, database copy or a log (bit rot in backup
    /// storage).
    BackupFile,
}

impl CorruptZone {
    /// Whether rot may be planted in this zone at any moment, not only at a restart: where
    /// the file has no twin whose whole state the atlas must know (a header copy and a
    /// checkpoint slot rot only at rest, when the other copy is whole with no write pending).
    pub fn may_rot_now(self) -> bool {
        matches!(
            self,
            CorruptZone::DatabasePage | CorruptZone::LogSegment | CorruptZone::BackupFile
        )
    }

    /// Every zone.
    pub const ALL: [CorruptZone; 5] = [
        CorruptZone::DatabasePage,
        CorruptZone::HeaderCopy,
        CorruptZone::LogSegment,
        CorruptZone::CheckpointSlot,
        CorruptZone::BackupFile,
    ];
}

/// The default number of steps a run has.
pub const DEFAULT_STEPS: u32 = 300;

impl Config {
    /// The configuration seed `seed` draws: every feature and fault kind on or off, its rate,
    /// the disk and the engine's parameters.
    pub fn swarm(seed: u64) -> Config {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4152_4d00_0000);
        let on = |rng: &mut ChaCha8Rng, p: f64, hi: u32| {
            if rng.random_bool(p) {
                rng.random_range(1..=hi)
            } else {
                0
            }
        };
        let mut weights = Weights {
            begin: 0,
            put: 0,
            delete: 0,
            get: 0,
            scan: 0,
            commit_durable: 0,
            commit_lazy: 0,
            rollback: 0,
            checkpoint: 0,
            flush_log: 0,
            restart: 0,
            crash: 0,
            crash_at_io: 0,
            io_fault: 0,
            corrupt: 0,
            backup: 0,
            backup_step: 0,
            backup_finish: 0,
            truncate: 0,
            restore: 0,
            bulk: 0,
            delete_range: 0,
            tamper: 0,
        };
        weights.begin = rng.random_range(4..=12);
        weights.put = rng.random_range(10..=30);
        weights.delete = on(&mut rng, 0.7, 8);
        weights.get = on(&mut rng, 0.8, 10);
        weights.scan = on(&mut rng, 0.6, 4);
        weights.commit_durable = on(&mut rng, 0.8, 8);
        weights.commit_lazy = on(&mut rng, 0.6, 8);
        if weights.commit_durable + weights.commit_lazy == 0 {
            weights.commit_durable = 4;
        }
        weights.rollback = on(&mut rng, 0.5, 3);
        weights.checkpoint = on(&mut rng, 0.5, 2);
        weights.flush_log = on(&mut rng, 0.4, 2);
        weights.restart = on(&mut rng, 0.4, 1);
        weights.crash = on(&mut rng, 0.7, 2);
        weights.crash_at_io = on(&mut rng, 0.7, 2);
        weights.io_fault = on(&mut rng, 0.6, 2);
        weights.corrupt = on(&mut rng, 0.4, 6);
        // A misdirected write is found only by recovery, which then ends the run: rarer.
        // (A directory's fsync failing is drawn last, with the backups it is aimed at.)
        let faults = IoFault::ALL
            .into_iter()
            .filter(|f| !matches!(f, IoFault::DirSyncError | IoFault::LostWrite))
            .filter(|f| rng.random_bool(if *f == IoFault::Misdirect { 0.15 } else { 0.5 }))
            .collect();
        let corrupt_zones = CorruptZone::ALL
            .into_iter()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        let sector_size = 512 << rng.random_range(0..4);
        let device = Device {
            sector_size,
            atomic_sectors: rng.random_bool(0.25),
            safe_append: rng.random_bool(0.25),
            sequential: rng.random_bool(0.2),
            all_land_percent: [0, 10, 50][rng.random_range(0..3)],
        };
        let large = rng.random_bool(0.5);
        let mut config = Config {
            seed,
            steps: DEFAULT_STEPS,
            sessions: rng.random_range(1..=4),
            tables: rng.random_range(1..=3),
            keys: [8, 40, 200, 1000][rng.random_range(0..4)],
            large_value_percent: if large { rng.random_range(1..=20) } else { 0 },
            page_size: if rng.random_bool(0.75) { 4096 } else { 8192 },
            log_file_kib: [128, 128, 256, 512][rng.random_range(0..4)],
            circular_logging: rng.random_bool(0.5),
            // (The engine's floor is 64 pages.)
            cache_pages: [64, 128, 1024][rng.random_range(0..3)],
            checkpoint_depth_kib: [64, 256, 1024][rng.random_range(0..3)],
            version_store_kib: if rng.random_bool(0.2) { 64 } else { 64 * 1024 },
            device,
            weights,
            faults,
            corrupt_zones,
            sabotage: None,
            large_database: false,
            create_backup_dirs: false,
            backup_max_rate_kib: None,
        };
        // Drawn last, so the draws above stay as they were before backups existed.
        let w = &mut config.weights;
        w.backup = on(&mut rng, 0.75, 3);
        if w.backup > 0 {
            w.backup_step = rng.random_range(3..=12);
            w.backup_finish = rng.random_range(1..=3);
        }
        w.truncate = on(&mut rng, 0.4, 2);
        w.restore = on(&mut rng, 0.4, 2);
        // Log sets that are not what they claim, in backup directories and the live log.
        config.weights.tamper = on(&mut rng, 0.5, 3);
        // One run in ten holds a database of real size: thousands of pages of records a few
        // hundred bytes to a page and a half long, in trees of three or more levels, with the
        // smallest cache (64 pages) so that pages are evicted and read again all the time.
        // Bulk steps make it big, not more steps, so these runs stay cheap.
        if rng.random_ratio(1, 10) {
            config.large_database = true;
            // Fewer steps: each whole-database check (a recovery's, a restore's) is dear.
            config.steps = 90;
            config.keys = 8_000;
            config.cache_pages = 64;
            config.page_size = 4096;
            config.checkpoint_depth_kib = [256, 1024][rng.random_range(0..2)];
            config.log_file_kib = [256, 512][rng.random_range(0..2)];
            let w = &mut config.weights;
            w.bulk = rng.random_range(12..=20);
            w.delete_range = rng.random_range(0..=3);
            w.scan = w.scan.min(1);
            // Lazy commits and power losses: what a write-back ahead of the log would lose.
            w.commit_lazy = w.commit_lazy.max(3);
            w.crash = w.crash.max(1);
        }
        // One run in three with backups creates their directories as it goes.
        config.create_backup_dirs = config.weights.backup > 0 && rng.random_ratio(1, 3);
        // A backup directory's fsync failing, in half the runs with backups and faults.
        if config.weights.backup > 0 && config.weights.io_fault > 0 && rng.random_bool(0.5) {
            config.faults.push(IoFault::DirSyncError);
        }
        // A lost database write: found when its page is read, if it is not written again
        // first.
        if config.weights.io_fault > 0 && rng.random_bool(0.35) {
            config.faults.push(IoFault::LostWrite);
        }
        // A rate limit, in a quarter of the runs with backups.
        if config.weights.backup > 0 && rng.random_ratio(1, 4) {
            config.backup_max_rate_kib = Some([64, 1024, 16 * 1024][rng.random_range(0..3)]);
        }
        config
    }
}

impl Config {
    /// Whether the configuration can run (a hand-written plan may not): `Err` says why.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.device;
        if self.sessions == 0 || self.tables == 0 || self.keys == 0 {
            return Err("sessions, tables and keys must each be at least 1".into());
        }
        if !d.sector_size.is_power_of_two() || !(512..=4096).contains(&d.sector_size) {
            return Err(format!(
                "sector size {} is not a power of two from 512 to 4096",
                d.sector_size
            ));
        }
        if d.all_land_percent > 100 {
            return Err(format!("all-land {}% is over 100%", d.all_land_percent));
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.weights;
        let d = &self.device;
        writeln!(
            f,
            "seed={} steps={} sessions={} tables={} keys={} large={}% page={} log={}KiB circular={} cache={}p ckpt-depth={}KiB verstore={}KiB{}{}",
            self.seed,
            self.steps,
            self.sessions,
            self.tables,
            self.keys,
            self.large_value_percent,
            self.page_size,
            self.log_file_kib,
            self.circular_logging,
            self.cache_pages,
            self.checkpoint_depth_kib,
            self.version_store_kib,
            match (self.large_database, self.create_backup_dirs) {
                (false, false) => "",
                (true, false) => " LARGE-DATABASE",
                (false, true) => " CREATE-BACKUP-DIRS",
                (true, true) => " LARGE-DATABASE CREATE-BACKUP-DIRS",
            },
            self.backup_max_rate_kib
                .map_or(String::new(), |r| format!(" backup-rate={r}KiB/s"))
        )?;
        let weights: Vec<String> = w
            .named()
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        writeln!(f, "  weights: {}", weights.join(" "))?;
        let faults: Vec<&str> = self.faults.iter().map(|f| f.name()).collect();
        write!(
            f,
            "  disk: sector={} atomic={} safe-append={} sequential={} all-land={}%; faults: [{}]; corrupt: {:?}",
            d.sector_size,
            d.atomic_sectors,
            d.safe_append,
            d.sequential,
            d.all_land_percent,
            faults.join(" "),
            self.corrupt_zones
        )?;
        if let Some(s) = self.sabotage {
            write!(f, "\n  SABOTAGED: {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_decides_the_configuration() {
        assert_eq!(Config::swarm(7), Config::swarm(7));
        let distinct: std::collections::BTreeSet<String> =
            (0..20).map(|s| Config::swarm(s).to_string()).collect();
        assert!(distinct.len() > 15, "swarm draws vary");
        for seed in 0..200 {
            let c = Config::swarm(seed);
            assert!(c.weights.put > 0 && c.weights.commit_durable + c.weights.commit_lazy > 0);
        }
    }
}
