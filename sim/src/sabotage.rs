//! Deliberate bugs, for showing that every oracle fires. Most break the engine from the
//! outside, in the disk under it (an fsync that does nothing, a write that is lost); two
//! break the session layer the simulator drives it through, for the oracles no disk fault
//! can reach (a write conflict let through, a snapshot taken late, a call out of order
//! accepted); one panics inside an engine call. None is ever drawn by a campaign's swarm: they are asked for by name.

use std::fmt;

use serde::{Deserialize, Serialize};

use jetdb::PlantedBug;

use crate::vfs::Zone;

/// A deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sabotage {
    /// fsync of the zone's files answers Ok and makes nothing durable: an engine that skips
    /// the fsync (for the log: one that acknowledges commits before they are durable).
    SkipSync(Zone),
    /// Directory fsync answers Ok and makes nothing durable.
    SkipDirSync,
    /// One in four writes to the zone's files answers Ok and is dropped, even from the page
    /// cache: a lost write, so later reads return stale data.
    LostWrite(Zone),
    /// A write conflict the engine reports is answered as Ok: an engine that lets
    /// conflicting writers through.
    AcceptConflicts,
    /// A transaction's snapshot is taken at its first operation instead of at its begin: an
    /// engine whose transactions see commits made after they began.
    LateSnapshot,
    /// The 50th fsync panics: a broken invariant inside an engine call.
    PanicInSync,
    /// A begin inside an open transaction is answered as Ok: an engine that does not refuse
    /// calls out of order (`JET_errInTransaction`).
    AcceptNestedBegin,
    /// One read in 40 fails with EIO though no fault was armed: an engine (or disk) that
    /// fails for no reason the fault atlas knows.
    SpuriousReadError,
    /// Writes of a backup's database copy carry the live database's pages as they are now:
    /// a backup that copies pages changed after it began (no copy-before-write).
    StaleBackupPages,
    /// When a backup's manifest is put in place, the highest log generation of its set
    /// vanishes: a backup that copies one log too few.
    DropLastBackupLog,
    /// Removing an archived log generation removes the next one too: a truncation that
    /// deletes one log too many.
    OverTruncate,
    /// A bit of every write into a backup's database copy is flipped: a backup that copies a
    /// damaged page without verifying it.
    UnverifiedBackupPages,
    /// A bug planted in the engine itself ([`jetdb::PlantedBug`]): for the mistakes no disk
    /// fault imitates — the WAL rule, a checkpoint's order, a skipped check.
    Engine(#[serde(with = "planted_name")] PlantedBug),
}

/// A planted bug in plans and on the command line: its name (`write-back-before-log`).
mod planted_name {
    use jetdb::PlantedBug;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bug: &PlantedBug, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bug.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PlantedBug, D::Error> {
        let name = String::deserialize(d)?;
        PlantedBug::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| D::Error::custom(format!("no planted bug is named {name}")))
    }
}

impl Sabotage {
    /// The bug planted in the engine, if this sabotage is one.
    pub fn planted(self) -> Option<PlantedBug> {
        match self {
            Sabotage::Engine(bug) => Some(bug),
            _ => None,
        }
    }
}

impl Sabotage {
    /// Every kind, with the zone-bearing ones at the log and the database.
    pub const ALL: [Sabotage; 16] = [
        Sabotage::SkipSync(Zone::Log),
        Sabotage::SkipSync(Zone::Database),
        Sabotage::SkipSync(Zone::Checkpoint),
        Sabotage::SkipDirSync,
        Sabotage::LostWrite(Zone::Database),
        Sabotage::LostWrite(Zone::Log),
        Sabotage::AcceptConflicts,
        Sabotage::LateSnapshot,
        Sabotage::PanicInSync,
        Sabotage::AcceptNestedBegin,
        Sabotage::SpuriousReadError,
        Sabotage::SkipSync(Zone::Backup),
        Sabotage::StaleBackupPages,
        Sabotage::DropLastBackupLog,
        Sabotage::OverTruncate,
        Sabotage::UnverifiedBackupPages,
    ];

    /// Parses the command-line spelling: `skip-sync:log`, `skip-dir-sync`,
    /// `lost-write:database`, `accept-conflicts`, `late-snapshot`, `panic-in-sync`.
    pub fn parse(text: &str) -> Option<Sabotage> {
        Sabotage::ALL
            .into_iter()
            .chain([
                Sabotage::LostWrite(Zone::Checkpoint),
                Sabotage::SkipSync(Zone::Other),
            ])
            .chain(PlantedBug::ALL.map(Sabotage::Engine))
            .find(|s| s.to_string() == text)
    }
}

impl fmt::Display for Sabotage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zone = |z: &Zone| match z {
            Zone::Database => "database",
            Zone::Log => "log",
            Zone::Checkpoint => "checkpoint",
            Zone::Other => "other",
            Zone::Backup => "backup",
        };
        match self {
            Sabotage::SkipSync(z) => write!(f, "skip-sync:{}", zone(z)),
            Sabotage::SkipDirSync => write!(f, "skip-dir-sync"),
            Sabotage::LostWrite(z) => write!(f, "lost-write:{}", zone(z)),
            Sabotage::AcceptConflicts => write!(f, "accept-conflicts"),
            Sabotage::LateSnapshot => write!(f, "late-snapshot"),
            Sabotage::PanicInSync => write!(f, "panic-in-sync"),
            Sabotage::AcceptNestedBegin => write!(f, "accept-nested-begin"),
            Sabotage::SpuriousReadError => write!(f, "spurious-read-error"),
            Sabotage::StaleBackupPages => write!(f, "stale-backup-pages"),
            Sabotage::DropLastBackupLog => write!(f, "drop-last-backup-log"),
            Sabotage::OverTruncate => write!(f, "over-truncate"),
            Sabotage::UnverifiedBackupPages => write!(f, "unverified-backup-pages"),
            Sabotage::Engine(bug) => write!(f, "engine:{}", bug.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back() {
        for s in Sabotage::ALL
            .into_iter()
            .chain(PlantedBug::ALL.map(Sabotage::Engine))
        {
            assert_eq!(Sabotage::parse(&s.to_string()), Some(s));
        }
        assert_eq!(
            Sabotage::parse("engine:write-back-before-log"),
            Some(Sabotage::Engine(PlantedBug::WriteBackBeforeLog))
        );
        let json =
            serde_json::to_string(&Sabotage::Engine(PlantedBug::TruncatePastCheckpoint)).unwrap();
        assert_eq!(json, r#"{"engine":"truncate-past-checkpoint"}"#);
        let back: Sabotage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Sabotage::Engine(PlantedBug::TruncatePastCheckpoint));
        assert!(serde_json::from_str::<Sabotage>(r#"{"engine":"no-such-bug"}"#).is_err());
        assert_eq!(Sabotage::parse("skip-sync:nowhere"), None);
    }
}
