//! Verifying a backup directory whole, as PostgreSQL's pg_verifybackup does: everything a
//! restore checks, and what a restore never looks at — files and directories the manifest does
//! not name — with every problem reported, not only the first.
//!
//! [`verify_backup`] reads the manifest, lists the directory and the current set's directory,
//! then reads every file of the set, each in pieces of a mebibyte ([`log::LOG_PIECE`]), so
//! the memory it takes does not grow with the files:
//!
//! - each log generation, scanned as restore scans it ([`log::LogScanner`]): its header (log
//!   set, database, generation, and the creation time of the generation before it), every
//!   segment, its end record, its length and CRC32 against the manifest, and the commit
//!   numbers in it, which run without a gap through the set and end, at each backup's last
//!   generation, at that backup's point (what restore finds only by replaying);
//! - the database copy: every page's checksum and number, the flush map
//!   (`flushmap::Verifier`), the header's signatures against the manifest, and the digest of
//!   its pages' checksums.
//!
//! Nothing is written. The checks are restore's (`restore.rs`: `restore_log` and its
//! `LogCheck`, `restore_database`), made to go on past a problem; each problem carries the
//! error restore would refuse the set with ([`Problem::kind`]).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::backups::manifest::{self, MANIFEST_NAME, Manifest, PageDigest, SetLog};
use crate::base::error::{ErrorKind, JetError, Result};
use crate::base::limits;
use crate::base::vfs::{OpenMode, Vfs};
use crate::store::flushmap;
use crate::store::header::{CATALOG_ROOT, DbHeader, Lgpos, SHADOW_PGNO, Signature};
use crate::store::page::{self, Pgno};
use crate::txn::event::BackupKind;
use crate::wal::log::{self, Commits, LogHeader, LogTail};
use crate::wal::recovery::describe_tail;

/// How many bad pages of one database copy are listed one by one; the rest are counted
/// ([`Problem::MoreBadPages`]).
pub const BAD_PAGES_LISTED: u64 = 100;

/// Which file of a backup set a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetFile {
    /// The set's directory, `set-XXXXXXXX`.
    SetDirectory,
    /// The database copy.
    Database,
    /// The log file of this generation.
    Log(u32),
}

/// Whose signature a file carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureOf {
    /// The log set's (every log of a set and its database share it).
    LogSet,
    /// The database's.
    Database,
}

impl fmt::Display for SignatureOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureOf::LogSet => "log set",
            SignatureOf::Database => "database",
        })
    }
}

/// One thing wrong with a backup directory: where, what was expected and what was found
/// ([`Problem::expected`], [`Problem::found`]), and the ESE error it amounts to
/// ([`Problem::kind`]: the one restore refuses the set with, where restore sees it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The directory holds no manifest: no backup finished in it (`JET_errFileNotFound`).
    NoManifest {
        /// Where the manifest should be.
        path: PathBuf,
    },
    /// The manifest is damaged, or could not be read: `error` says which
    /// (`JET_errLogCorruptDuringHardRestore` for damage).
    DamagedManifest {
        /// The manifest.
        path: PathBuf,
        /// Why it cannot be used.
        error: JetError,
    },
    /// The manifest's backups do not form a chain: each must begin where the one before ended
    /// (`JET_errLogCorruptDuringHardRestore`, as for a damaged manifest).
    BrokenChain {
        /// The manifest.
        path: PathBuf,
        /// What the chain needs.
        expected: String,
        /// What the manifest says.
        found: String,
    },
    /// A file (or the set's directory) the manifest names is not there
    /// (`JET_errMissingRestoreLogFiles` for a log, else `JET_errFileNotFound`).
    Missing {
        /// Where it should be.
        path: PathBuf,
        /// Which file.
        file: SetFile,
    },
    /// A directory where the manifest names a file, or a file where it names the set's
    /// directory (`JET_errInvalidPath`).
    WrongType {
        /// The entry.
        path: PathBuf,
        /// Whether a directory was expected.
        expected_dir: bool,
    },
    /// A file or directory the manifest does not name (`JET_errBackupDirectoryNotEmpty`).
    Extra {
        /// The entry.
        path: PathBuf,
        /// Whether it is a directory.
        dir: bool,
        /// Whether it is debris of a backup that never finished — its temporary manifest,
        /// another set's directory, a file in the current set's — which the next backup into
        /// the directory removes; anything else nothing removes.
        debris: bool,
    },
    /// An entry that cannot be checked because the manifest that would say what it should be
    /// is damaged (`kind`: the manifest's error).
    Unverifiable {
        /// The entry.
        path: PathBuf,
        /// Whether it is a directory.
        dir: bool,
        /// The damaged manifest's error kind.
        kind: ErrorKind,
    },
    /// A file whose length is not the one the manifest records
    /// (`JET_errBadBackupDatabaseSize` for the database copy, else
    /// `JET_errLogCorruptDuringHardRestore`).
    Resized {
        /// The file.
        path: PathBuf,
        /// Which file.
        file: SetFile,
        /// The manifest's length.
        expected: u64,
        /// The file's.
        found: u64,
    },
    /// A log whose CRC32 is not the manifest's (`JET_errLogCorruptDuringHardRestore`).
    Modified {
        /// The log.
        path: PathBuf,
        /// The manifest's CRC32.
        expected: u32,
        /// The file's.
        found: u32,
    },
    /// A database copy whose digest (the CRC32 of its pages' checksums) is not the
    /// manifest's: its pages may each be whole, but it is not the copy this backup made
    /// (`JET_errRestoreOfNonBackupDatabase`).
    DigestMismatch {
        /// The database copy.
        path: PathBuf,
        /// The manifest's digest.
        expected: u32,
        /// The copy's.
        found: u32,
    },
    /// A file that could not be read (the I/O error's kind).
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The error.
        error: JetError,
    },
    /// A log that is not a whole generation: a damaged header or segment, a malformed
    /// record, a torn or missing end (`JET_errLogCorruptDuringHardRestore`,
    /// `JET_errLogTornWriteDuringHardRestore`, or `JET_errBadLogVersion` for another format).
    DamagedLog {
        /// The log.
        path: PathBuf,
        /// What the scan found.
        error: JetError,
    },
    /// A log of another log set or database (`JET_errGivenLogFileHasBadSignature`).
    ForeignLog {
        /// The log.
        path: PathBuf,
        /// Which signature differs.
        of: SignatureOf,
        /// The manifest's.
        expected: Signature,
        /// The log's.
        found: Signature,
    },
    /// A log holding another generation than its name and the manifest say
    /// (`JET_errGivenLogFileIsNotContiguous`).
    WrongGeneration {
        /// The log.
        path: PathBuf,
        /// The generation named.
        expected: u32,
        /// The one its header holds.
        found: u32,
    },
    /// A log that does not follow the generation before it: its record of the previous
    /// generation's creation time is not that generation's (`JET_errGivenLogFileIsNotContiguous`).
    NotContiguous {
        /// The log.
        path: PathBuf,
        /// The generation before it.
        previous: u32,
        /// When that generation was created.
        expected: u64,
        /// When this log says its predecessor was.
        found: u64,
    },
    /// Commits missing from the set's logs: a commit number skipped, within a log or from one
    /// log to the next (`JET_errGivenLogFileIsNotContiguous`; a restore would fail replaying
    /// it, with `JET_errLogFileCorrupt`).
    MissingCommits {
        /// The log where the numbers jump.
        path: PathBuf,
        /// Where the commit that does not follow lies.
        at: Lgpos,
        /// The number expected (at most this, for the first commit of the set).
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// A backup whose point (its last commit) is not where its logs end
    /// (`JET_errLogCorruptDuringHardRestore`, as restore finds after replaying).
    BackupPointMismatch {
        /// The manifest.
        path: PathBuf,
        /// The backup's index in the set (0: the full backup).
        backup: usize,
        /// Its last generation.
        generation: u32,
        /// The manifest's last commit of the backup.
        expected: u64,
        /// The last commit the logs through its last generation hold.
        found: u64,
    },
    /// A database copy whose header names another database or log set
    /// (`JET_errRestoreOfNonBackupDatabase`).
    ForeignDatabase {
        /// The database copy.
        path: PathBuf,
        /// Which signature differs.
        of: SignatureOf,
        /// The manifest's.
        expected: Signature,
        /// The header's.
        found: Signature,
    },
    /// A page of the database copy that fails its checks: checksum, page number, or the flush
    /// map's record of its last write (the page's error kind).
    BadPage {
        /// The database copy.
        path: PathBuf,
        /// The page.
        pgno: u64,
        /// What is wrong with it.
        error: JetError,
    },
    /// More bad pages than [`BAD_PAGES_LISTED`]: the rest are counted here (the kind of the
    /// first one not listed).
    MoreBadPages {
        /// The database copy.
        path: PathBuf,
        /// How many were listed.
        listed: u64,
        /// How many there are.
        total: u64,
        /// The kind of the first one not listed.
        kind: ErrorKind,
    },
    /// The database copy as a whole is damaged: neither header copy whole, a page size other
    /// than the manifest's, or its flush map's pages not those the header records (the error
    /// says which).
    DamagedDatabase {
        /// The database copy.
        path: PathBuf,
        /// What is wrong.
        error: JetError,
    },
}

impl Problem {
    /// The file or directory the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            Problem::NoManifest { path }
            | Problem::DamagedManifest { path, .. }
            | Problem::BrokenChain { path, .. }
            | Problem::Missing { path, .. }
            | Problem::WrongType { path, .. }
            | Problem::Extra { path, .. }
            | Problem::Unverifiable { path, .. }
            | Problem::Resized { path, .. }
            | Problem::Modified { path, .. }
            | Problem::DigestMismatch { path, .. }
            | Problem::Unreadable { path, .. }
            | Problem::DamagedLog { path, .. }
            | Problem::ForeignLog { path, .. }
            | Problem::WrongGeneration { path, .. }
            | Problem::NotContiguous { path, .. }
            | Problem::MissingCommits { path, .. }
            | Problem::BackupPointMismatch { path, .. }
            | Problem::ForeignDatabase { path, .. }
            | Problem::BadPage { path, .. }
            | Problem::MoreBadPages { path, .. }
            | Problem::DamagedDatabase { path, .. } => path,
        }
    }

    /// The ESE error the problem amounts to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Problem::NoManifest { .. } => ErrorKind::FileNotFound,
            Problem::Missing {
                file: SetFile::Log(_),
                ..
            } => ErrorKind::MissingRestoreLogFiles,
            Problem::Missing { .. } => ErrorKind::FileNotFound,
            Problem::WrongType { .. } => ErrorKind::InvalidPath,
            Problem::Extra { .. } => ErrorKind::BackupDirectoryNotEmpty,
            Problem::Unverifiable { kind, .. } | Problem::MoreBadPages { kind, .. } => *kind,
            Problem::Resized {
                file: SetFile::Database,
                ..
            } => ErrorKind::BadBackupDatabaseSize,
            Problem::BrokenChain { .. }
            | Problem::Resized { .. }
            | Problem::Modified { .. }
            | Problem::BackupPointMismatch { .. } => ErrorKind::LogCorruptDuringHardRestore,
            Problem::DigestMismatch { .. } | Problem::ForeignDatabase { .. } => {
                ErrorKind::RestoreOfNonBackupDatabase
            }
            Problem::DamagedManifest { error, .. }
            | Problem::Unreadable { error, .. }
            | Problem::DamagedLog { error, .. }
            | Problem::BadPage { error, .. }
            | Problem::DamagedDatabase { error, .. } => error.kind(),
            Problem::ForeignLog { .. } => ErrorKind::GivenLogFileHasBadSignature,
            Problem::WrongGeneration { .. }
            | Problem::NotContiguous { .. }
            | Problem::MissingCommits { .. } => ErrorKind::GivenLogFileIsNotContiguous,
        }
    }

    /// A word or two for the problem's class: `missing`, `extra`, `resized`, `modified`…
    pub fn what(&self) -> &'static str {
        match self {
            Problem::NoManifest { .. } => "no manifest",
            Problem::DamagedManifest { .. } => "damaged manifest",
            Problem::BrokenChain { .. } => "broken chain",
            Problem::Missing { .. } => "missing",
            Problem::WrongType { .. } => "wrong type",
            Problem::Extra { .. } => "extra",
            Problem::Unverifiable { .. } => "unverifiable",
            Problem::Resized { .. } => "resized",
            Problem::Modified { .. } | Problem::DigestMismatch { .. } => "modified",
            Problem::Unreadable { .. } => "unreadable",
            Problem::DamagedLog { .. } => "damaged log",
            Problem::ForeignLog { .. } => "foreign log",
            Problem::WrongGeneration { .. } => "wrong generation",
            Problem::NotContiguous { .. } => "log gap",
            Problem::MissingCommits { .. } => "commits missing",
            Problem::BackupPointMismatch { .. } => "backup point",
            Problem::ForeignDatabase { .. } => "foreign database",
            Problem::BadPage { .. } | Problem::MoreBadPages { .. } => "bad page",
            Problem::DamagedDatabase { .. } => "damaged database",
        }
    }

    /// What the manifest (or the format) says should be there.
    pub fn expected(&self) -> String {
        match self {
            Problem::NoManifest { .. } => "the manifest of a finished backup".into(),
            Problem::DamagedManifest { .. } => "a whole backup manifest".into(),
            Problem::BrokenChain { expected, .. } => expected.clone(),
            Problem::Missing { file, .. } => match file {
                SetFile::SetDirectory => "the set's directory".into(),
                SetFile::Database => "the database copy".into(),
                SetFile::Log(g) => format!("log generation {g:#X}"),
            },
            Problem::WrongType { expected_dir, .. } => match expected_dir {
                true => "a directory".into(),
                false => "a file".into(),
            },
            Problem::Extra { .. } => "nothing: the manifest names no such entry".into(),
            Problem::Unverifiable { .. } => "what the manifest says, which cannot be read".into(),
            Problem::Resized { expected, .. } => format!("{expected} bytes"),
            Problem::Modified { expected, .. } => format!("CRC32 {expected:08x}"),
            Problem::DigestMismatch { expected, .. } => {
                format!("the copy this backup made (page digest {expected:08x})")
            }
            Problem::Unreadable { .. } => "a readable file".into(),
            Problem::DamagedLog { .. } => "a whole log generation, ended".into(),
            Problem::ForeignLog { of, expected, .. }
            | Problem::ForeignDatabase { of, expected, .. } => {
                format!("the backup's {of} {expected}")
            }
            Problem::WrongGeneration { expected, .. } => format!("generation {expected:#X}"),
            Problem::NotContiguous {
                previous, expected, ..
            } => format!(
                "the generation after {previous:#X} (created at {expected}, as that log's header says)"
            ),
            Problem::MissingCommits { expected, .. } => format!("commit {expected}"),
            Problem::BackupPointMismatch {
                backup, expected, ..
            } => format!("backup {backup}'s point, commit {expected} (as the manifest says)"),
            Problem::BadPage { .. } => "a whole page".into(),
            Problem::MoreBadPages { .. } => "whole pages".into(),
            Problem::DamagedDatabase { .. } => "a whole database copy".into(),
        }
    }

    /// What was found instead.
    pub fn found(&self) -> String {
        match self {
            Problem::NoManifest { .. } => "none: no backup finished in this directory".into(),
            // (The error names the file too, for a caller who takes it alone; the line has.)
            Problem::DamagedManifest { error, .. }
            | Problem::Unreadable { error, .. }
            | Problem::DamagedLog { error, .. }
            | Problem::DamagedDatabase { error, .. }
            | Problem::BadPage { error, .. } => {
                let message = error.message();
                let named = format!("{}: ", self.path().display());
                message.strip_prefix(&named).unwrap_or(message).to_string()
            }
            Problem::BrokenChain { found, .. } => found.clone(),
            Problem::Missing { .. } => "nothing".into(),
            Problem::WrongType { expected_dir, .. } => match expected_dir {
                true => "a file".into(),
                false => "a directory".into(),
            },
            Problem::Extra { dir, .. } | Problem::Unverifiable { dir, .. } => match dir {
                true => "a directory".into(),
                false => "a file".into(),
            },
            Problem::Resized { found, .. } => format!("{found} bytes"),
            Problem::Modified { found, .. } => format!("CRC32 {found:08x}"),
            Problem::DigestMismatch { found, .. } => format!("page digest {found:08x}"),
            Problem::ForeignLog { of, found, .. } | Problem::ForeignDatabase { of, found, .. } => {
                format!("{of} {found}")
            }
            Problem::WrongGeneration { found, .. } => format!("generation {found:#X}"),
            Problem::NotContiguous { found, .. } => {
                format!("a log whose predecessor was created at {found}")
            }
            Problem::MissingCommits { at, found, .. } => format!("commit {found} at {at}"),
            Problem::BackupPointMismatch {
                generation, found, ..
            } => format!("logs through generation {generation:#X} ending at commit {found}"),
            Problem::MoreBadPages { listed, total, .. } => {
                format!("{total} bad pages, {listed} of them listed")
            }
        }
    }

    /// The problem as the error a call refusing the backup for it returns: its kind, and the
    /// line [`Display`](fmt::Display) prints without the kind.
    pub fn to_error(&self) -> JetError {
        let line = self.to_string();
        let kind = self.kind().to_string();
        let message = line.strip_prefix(&kind).unwrap_or(&line).trim_start();
        JetError::new(self.kind(), message)
    }

    /// What to do about it, where that is not plain.
    fn note(&self) -> Option<&'static str> {
        match self {
            Problem::Extra { debris: true, .. } => Some(
                "debris of a backup that never finished: the next backup into this directory removes it",
            ),
            Problem::Extra { debris: false, .. } => Some("no backup made it, and none removes it"),
            Problem::NoManifest { .. } => Some("a backup exists only once its manifest does"),
            _ => None,
        }
    }
}

impl fmt::Display for Problem {
    /// One line: the ESE error, the path, the class, what was expected and what was found.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}: expected {}; found {}",
            self.kind(),
            self.path().display(),
            self.what(),
            self.expected(),
            self.found()
        )?;
        if let Some(note) = self.note() {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// What [`verify_backup`] found: every problem, and what it read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its manifest, if it has a whole one.
    pub manifest: Option<Manifest>,
    /// Every problem, in the order found: the manifest, the backup directory's entries, the
    /// manifest's chain of backups, the set directory's entries, the logs by generation, the
    /// database copy, and last the backups' points against the logs.
    pub problems: Vec<Problem>,
    /// The log files read through.
    pub logs_read: u64,
    /// The database copy's pages read.
    pub pages_read: u64,
    /// The bytes read, the manifest's aside.
    pub bytes_read: u64,
}

impl BackupReport {
    /// Whether the backup is whole and the directory holds nothing else.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems about `path`.
    pub fn problems_at<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems.iter().filter(move |p| p.path() == path)
    }

    /// One line: the verdict, and the problems counted by class.
    pub fn summary(&self) -> String {
        let read = format!(
            "{} log files and {} database pages read",
            self.logs_read, self.pages_read
        );
        if let (true, Some(m)) = (self.is_ok(), &self.manifest) {
            let (low, high) = m.log_range();
            return format!(
                "{}: the backup is whole: set {}, {} backup{} restoring to commit {}, log generations {low:#X} to {high:#X}, nothing else in the directory; {read}",
                self.dir.display(),
                m.set,
                m.backups.len(),
                if m.backups.len() == 1 { "" } else { "s" },
                m.last().sequence
            );
        }
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for p in &self.problems {
            match counts.iter_mut().find(|(what, _)| *what == p.what()) {
                Some((_, n)) => *n += 1,
                None => counts.push((p.what(), 1)),
            }
        }
        let classes: Vec<String> = counts
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let n = self.problems.len();
        format!(
            "{}: {n} problem{} ({}); {read}",
            self.dir.display(),
            if n == 1 { "" } else { "s" },
            classes.join(", ")
        )
    }
}

/// Verifies the backup directory `dir` whole and reports every problem it finds
/// ([`BackupReport::is_ok`] if none): the manifest, every file it names (missing, resized,
/// modified, each log generation scanned through and chained to the one before, the commits
/// against each backup's point, every page of the database copy), and every file or
/// directory it does not name (debris of backups that never finished, and anything else).
/// Files are read a mebibyte at a time, whatever their size; nothing is written.
///
/// Fails only when there is nothing to verify: `dir` does not exist (`JET_errFileNotFound`),
/// is a file or lies under one (`JET_errInvalidPath`), or cannot be listed. A directory
/// without a manifest is a report with [`Problem::NoManifest`].
pub fn verify_backup(vfs: &dyn Vfs, dir: &Path) -> Result<BackupReport> {
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |err: std::io::Error| JetError::io(what.clone(), &err)
    };
    if !vfs.is_dir(dir).map_err(io("look up", dir))? {
        crate::txn::instance::no_file_on_path(vfs, dir)?;
        return Err(JetError::new(
            ErrorKind::FileNotFound,
            format!("the backup directory {} does not exist", dir.display()),
        ));
    }
    let names = vfs.list(dir).map_err(io("list", dir))?;
    let mut v = Verify {
        vfs,
        report: BackupReport {
            dir: dir.to_path_buf(),
            manifest: None,
            problems: Vec::new(),
            logs_read: 0,
            pages_read: 0,
            bytes_read: 0,
        },
    };
    let manifest_path = dir.join(MANIFEST_NAME);
    let mut damaged = None;
    let manifest = match manifest::read(vfs, dir) {
        Ok(Some(m)) => Some(m),
        Ok(None) => {
            v.problem(Problem::NoManifest {
                path: manifest_path.clone(),
            });
            None
        }
        Err(error) => {
            damaged = Some(error.kind());
            v.problem(Problem::DamagedManifest {
                path: manifest_path.clone(),
                error,
            });
            None
        }
    };
    let set_name = manifest.as_ref().map(|m| Manifest::set_dir_name(m.set));
    for name in &names {
        if name == MANIFEST_NAME || Some(name) == set_name.as_ref() {
            continue;
        }
        let path = dir.join(name);
        let tmp = path == manifest::tmp_path(dir);
        let is_dir = v.is_dir(&path);
        v.problem(match damaged {
            // Nothing says what the directory should hold; only the temporary manifest is
            // never part of a backup.
            Some(kind) if !tmp => Problem::Unverifiable {
                path,
                dir: is_dir,
                kind,
            },
            // What the next backup removes: the temporary manifest and the directories of
            // sets no manifest names (with no manifest, every set's).
            _ => Problem::Extra {
                path,
                dir: is_dir,
                debris: tmp || manifest::parse_set_dir_name(name).is_some(),
            },
        });
    }
    if let Some(m) = &manifest {
        v.set(m, &manifest_path);
    }
    v.report.manifest = manifest;
    Ok(v.report)
}

struct Verify<'v> {
    vfs: &'v dyn Vfs,
    report: BackupReport,
}

/// What the chain of logs knows of the commits so far.
#[derive(Clone, Copy)]
enum Seen {
    /// The logs read so far hold no commit: the last is the checkpoint's.
    None,
    /// The last commit of the logs read so far.
    Last(u64),
    /// A log could not be read through: the last commit is not known.
    Unknown,
}

impl Verify<'_> {
    fn problem(&mut self, problem: Problem) {
        self.report.problems.push(problem);
    }

    /// Whether `path` is a directory (a failed look-up reads as a file: it is reported when
    /// the file is read).
    fn is_dir(&self, path: &Path) -> bool {
        self.vfs.is_dir(path).unwrap_or(false)
    }

    /// The current set: its directory's entries, its logs, its database copy, its commits.
    fn set(&mut self, m: &Manifest, manifest_path: &Path) {
        self.chain(m, manifest_path);
        let set_dir = m.set_dir(&self.report.dir);
        let log_names: Vec<String> = m.logs.iter().map(|l| m.log_name(l.generation)).collect();
        let named: BTreeSet<&str> = log_names
            .iter()
            .map(String::as_str)
            .chain([m.db_name.as_str()])
            .collect();
        // The files the manifest names that are there (none known if the directory cannot be
        // listed: each is then tried, and its own error reported).
        let mut files = Some(BTreeSet::new());
        // The names it names that are directories (reported as such, not as missing).
        let mut dirs = BTreeSet::new();
        match self.vfs.is_dir(&set_dir) {
            Ok(true) => match self.vfs.list(&set_dir) {
                Ok(entries) => {
                    let files = files.as_mut().expect("none taken yet");
                    for name in entries {
                        let path = set_dir.join(&name);
                        let is_dir = self.is_dir(&path);
                        if !named.contains(name.as_str()) {
                            self.problem(Problem::Extra {
                                path,
                                dir: is_dir,
                                debris: true,
                            });
                        } else if is_dir {
                            self.problem(Problem::WrongType {
                                path,
                                expected_dir: false,
                            });
                            dirs.insert(name);
                        } else {
                            files.insert(name);
                        }
                    }
                }
                Err(err) => {
                    files = None;
                    self.problem(Problem::Unreadable {
                        path: set_dir.clone(),
                        error: JetError::io(format!("list {}", set_dir.display()), &err),
                    });
                }
            },
            Ok(false) if self.vfs.exists(&set_dir).unwrap_or(false) => {
                self.problem(Problem::WrongType {
                    path: set_dir.clone(),
                    expected_dir: true,
                });
            }
            Ok(false) => self.problem(Problem::Missing {
                path: set_dir.clone(),
                file: SetFile::SetDirectory,
            }),
            Err(err) => {
                files = None;
                self.problem(Problem::Unreadable {
                    path: set_dir.clone(),
                    error: JetError::io(format!("look up {}", set_dir.display()), &err),
                });
            }
        }
        let present = |name: &String| files.as_ref().is_none_or(|f| f.contains(name));

        // One buffer for every file: a mebibyte, allocated once.
        let mut buf = Vec::with_capacity(log::LOG_PIECE);
        let mut prev: Option<LogHeader> = None;
        let mut seen = Seen::None;
        let mut backups = m.backups.iter().enumerate().peekable();
        // (Reported after the files: they are about the manifest, judged by all the logs.)
        let mut points = Vec::new();
        for (entry, name) in m.logs.iter().zip(&log_names) {
            let path = set_dir.join(name);
            let read = if present(name) {
                self.log(m, &path, entry, prev.as_ref(), &mut buf)
            } else {
                if !dirs.contains(name) {
                    self.problem(Problem::Missing {
                        path: path.clone(),
                        file: SetFile::Log(entry.generation),
                    });
                }
                LogRead::default()
            };
            prev = read.header;
            seen = self.commits(m, &path, seen, read.commits);
            // The backups whose last generation this is end at the commit seen last.
            while let Some((i, b)) = backups.next_if(|(_, b)| b.gen_high <= entry.generation) {
                let found = match seen {
                    Seen::None => m.checkpoint_last_commit,
                    Seen::Last(last) => last,
                    Seen::Unknown => continue,
                };
                if b.gen_high == entry.generation && found != b.sequence {
                    points.push(Problem::BackupPointMismatch {
                        path: manifest_path.to_path_buf(),
                        backup: i,
                        generation: b.gen_high,
                        expected: b.sequence,
                        found,
                    });
                }
            }
        }

        let db = set_dir.join(&m.db_name);
        if present(&m.db_name) {
            self.database(m, &db, &mut buf);
        } else if !dirs.contains(&m.db_name) {
            self.problem(Problem::Missing {
                path: db,
                file: SetFile::Database,
            });
        }
        self.report.problems.append(&mut points);
    }

    /// The manifest's backups against each other: the full backup first from the
    /// checkpoint's generation, each next one from the generation after the last one's, each
    /// marked in the generation after its own (the one its begin rolled to), their points
    /// in order. (`Manifest::decode` has checked the rest of its shape: one full backup
    /// first, the logs contiguous from the checkpoint to the last backup's.)
    fn chain(&mut self, m: &Manifest, path: &Path) {
        let mut expected_low = m.checkpoint.generation;
        let mut expected_point = m.checkpoint_last_commit;
        for (i, b) in m.backups.iter().enumerate() {
            let mut broken = |expected: String, found: String| {
                self.report.problems.push(Problem::BrokenChain {
                    path: path.to_path_buf(),
                    expected: format!("backup {i} ({}) {expected}", b.kind),
                    found,
                });
            };
            if b.gen_low != expected_low || b.gen_high < b.gen_low {
                broken(
                    format!("to copy generations from {expected_low:#X}"),
                    format!("generations {:#X} to {:#X}", b.gen_low, b.gen_high),
                );
            }
            if b.mark.generation != b.gen_high.wrapping_add(1) {
                broken(
                    format!(
                        "to be marked in the generation after its last, {:#X}",
                        b.gen_high.wrapping_add(1)
                    ),
                    format!("mark {}", b.mark),
                );
            }
            if b.sequence < expected_point {
                broken(
                    format!("to end at commit {expected_point} or later"),
                    format!("commit {}", b.sequence),
                );
            }
            debug_assert!(i == 0 || b.kind == BackupKind::Incremental);
            expected_low = b.gen_high.wrapping_add(1);
            expected_point = b.sequence;
        }
    }

    /// Reads one log generation through, checking it as restore does.
    fn log(
        &mut self,
        m: &Manifest,
        path: &Path,
        entry: &SetLog,
        prev: Option<&LogHeader>,
        buf: &mut Vec<u8>,
    ) -> LogRead {
        let name = path.display().to_string();
        let mut source = match log::PieceReader::open(self.vfs, path, buf) {
            Ok(source) => source,
            Err(error) => {
                self.problem(match error.kind() {
                    ErrorKind::FileNotFound => Problem::Missing {
                        path: path.to_path_buf(),
                        file: SetFile::Log(entry.generation),
                    },
                    _ => Problem::Unreadable {
                        path: path.to_path_buf(),
                        error,
                    },
                });
                return LogRead::default();
            }
        };
        let len = source.len();
        let mut scanner = log::LogScanner::new(&name);
        let mut crc = crc32fast::Hasher::new();
        let mut failed = false;
        let mut header = None;
        let mut problems = Vec::new();
        loop {
            let piece = match source.next_piece() {
                Ok(Some((piece, _))) => piece,
                Ok(None) => break,
                Err(error) => {
                    self.report.problems.append(&mut problems);
                    self.problem(Problem::Unreadable {
                        path: path.to_path_buf(),
                        error,
                    });
                    return LogRead::default();
                }
            };
            crc.update(piece);
            self.report.bytes_read += piece.len() as u64;
            if failed {
                continue; // (Read on for the CRC32.)
            }
            if let Err(err) = scanner.feed(piece) {
                problems.push(Problem::DamagedLog {
                    path: path.to_path_buf(),
                    error: found_in_log(err),
                });
                failed = true;
            } else if header.is_none()
                && let Some(h) = scanner.header()
            {
                header = Some(*h);
                problems.extend(header_problems(m, path, entry, prev, h));
            }
        }
        self.report.logs_read += 1;
        let commits = scanner.commits();
        let mut ended = false;
        if !failed {
            match scanner.finish() {
                Err(err) => problems.push(Problem::DamagedLog {
                    path: path.to_path_buf(),
                    error: found_in_log(err),
                }),
                Ok(scan) => match &scan.tail {
                    LogTail::Ended => ended = true,
                    LogTail::Corrupt { .. } => problems.push(Problem::DamagedLog {
                        path: path.to_path_buf(),
                        error: JetError::new(
                            ErrorKind::LogCorruptDuringHardRestore,
                            format!("{name}: {}", describe_tail(&scan.tail)),
                        ),
                    }),
                    other => problems.push(Problem::DamagedLog {
                        path: path.to_path_buf(),
                        error: JetError::new(
                            ErrorKind::LogTornWriteDuringHardRestore,
                            format!(
                                "{name}: a backed-up generation must be whole and ended, and it is {}",
                                describe_tail(other)
                            ),
                        ),
                    }),
                },
            }
        }
        if len != entry.len {
            problems.push(Problem::Resized {
                path: path.to_path_buf(),
                file: SetFile::Log(entry.generation),
                expected: entry.len,
                found: len,
            });
        } else if crc.clone().finalize() != entry.crc {
            problems.push(Problem::Modified {
                path: path.to_path_buf(),
                expected: entry.crc,
                found: crc.finalize(),
            });
        }
        // The next generation is chained to this one if this one is of the set and in its
        // place; its commits count if it was read through to its end besides.
        let ours = header.filter(|h| {
            h.log_signature == m.log_signature
                && h.db_signature == m.db_signature
                && h.generation == entry.generation
        });
        self.report.problems.append(&mut problems);
        LogRead {
            header: ours,
            commits: ours.and(ended.then_some(commits)),
        }
    }

    /// The commits of the log at `path` (if it was read through) after those `seen` before.
    fn commits(&mut self, m: &Manifest, path: &Path, seen: Seen, commits: Option<Commits>) -> Seen {
        let Some(commits) = commits else {
            return Seen::Unknown;
        };
        let mut missing = |at: Lgpos, expected: u64, found: u64| {
            self.report.problems.push(Problem::MissingCommits {
                path: path.to_path_buf(),
                at,
                expected,
                found,
            });
        };
        if let Some((at, first)) = commits.first {
            match seen {
                Seen::Last(last) if last.checked_add(1) != Some(first) => {
                    missing(at, last.saturating_add(1), first)
                }
                // The checkpoint's generation may hold commits from before it, the later ones
                // none: but none after it may be missing.
                Seen::None => {
                    let next = m.checkpoint_last_commit.saturating_add(1);
                    let before_checkpoint = at.generation == m.checkpoint.generation;
                    if first > next || (first != next && !before_checkpoint) {
                        missing(at, next, first);
                    }
                }
                _ => {}
            }
        }
        if let Some((at, before, found)) = commits.gap {
            missing(at, before.saturating_add(1), found);
        }
        match commits.last {
            Some((_, last)) => Seen::Last(last),
            None => seen,
        }
    }

    /// Reads the database copy through, checking each page as restore does.
    fn database(&mut self, m: &Manifest, path: &Path, buf: &mut Vec<u8>) {
        let damaged = |kind: ErrorKind, why: String| Problem::DamagedDatabase {
            path: path.to_path_buf(),
            error: JetError::new(kind, format!("{}: {why}", path.display())),
        };
        let file = match self.vfs.open(path, OpenMode::Read) {
            Ok(file) => file,
            Err(err) => {
                let error = JetError::io(format!("open {}", path.display()), &err);
                self.problem(match error.kind() {
                    ErrorKind::FileNotFound => Problem::Missing {
                        path: path.to_path_buf(),
                        file: SetFile::Database,
                    },
                    _ => Problem::Unreadable {
                        path: path.to_path_buf(),
                        error,
                    },
                });
                return;
            }
        };
        let len = match file.len() {
            Ok(len) => len,
            Err(err) => {
                let error = JetError::io(format!("{}: size", path.display()), &err);
                self.problem(Problem::Unreadable {
                    path: path.to_path_buf(),
                    error,
                });
                return;
            }
        };
        if len != m.db_len {
            self.problem(Problem::Resized {
                path: path.to_path_buf(),
                file: SetFile::Database,
                expected: m.db_len,
                found: len,
            });
        }
        let page_size = m.page_size as usize;
        if !limits::page_size_valid(page_size) {
            self.problem(damaged(
                ErrorKind::BadBackupDatabaseSize,
                format!(
                    "the manifest's page size {page_size} is not a valid one: no page can be read"
                ),
            ));
            return;
        }
        let pages = len / page_size as u64;
        let chunk_pages = (log::LOG_PIECE / page_size).max(1) as u64;
        let mut headers: [Option<DbHeader>; 2] = [None, None];
        let mut flush: Option<flushmap::Verifier> = None;
        let mut digest = PageDigest::default();
        let mut bad = BadPages::default();
        let mut map_failed = false;
        let mut pgno = 0u64;
        while pgno < pages {
            let n = chunk_pages.min(pages - pgno);
            buf.resize(n as usize * page_size, 0);
            if let Err(err) = file.read_exact_at(buf, pgno * page_size as u64) {
                let error = JetError::io(format!("read {} at page {pgno}", path.display()), &err);
                self.problem(Problem::Unreadable {
                    path: path.to_path_buf(),
                    error,
                });
                return;
            }
            self.report.bytes_read += buf.len() as u64;
            for (i, p) in buf.chunks(page_size).enumerate() {
                let this = pgno + i as u64;
                self.report.pages_read += 1;
                digest.add(page::stored_checksum(p));
                let Ok(this32) = Pgno::try_from(this) else {
                    let error = JetError::new(
                        ErrorKind::DatabaseCorrupted,
                        format!(
                            "{}: page {this}: past the largest page number",
                            path.display()
                        ),
                    );
                    self.bad_page(path, this, error, &mut bad);
                    continue;
                };
                let whole = match page::verify_copy(p, this32) {
                    Ok(()) => true,
                    Err(err) => {
                        self.bad_page(path, this, in_file(path, err), &mut bad);
                        false
                    }
                };
                if this32 <= SHADOW_PGNO {
                    headers[this32 as usize] = DbHeader::decode(p, this32).ok();
                }
                if this32 == SHADOW_PGNO {
                    flush = self.headers(m, path, &headers);
                }
                let Some(verifier) = &mut flush else {
                    continue;
                };
                let is_map = this32 > CATALOG_ROOT && flushmap::is_map(this32, page_size);
                if !whole {
                    verifier.skip(this32);
                    map_failed |= is_map;
                } else if let Err(err) = verifier.check(this32, p) {
                    map_failed |= is_map;
                    self.bad_page(path, this, in_file(path, err), &mut bad);
                }
            }
            pgno += n;
        }
        if pages <= u64::from(SHADOW_PGNO) {
            self.problem(damaged(
                ErrorKind::ReadVerifyFailure,
                "the file is too short to hold both header copies".into(),
            ));
        }
        if len == m.db_len && digest.finish() != m.db_digest {
            self.problem(Problem::DigestMismatch {
                path: path.to_path_buf(),
                expected: m.db_digest,
                found: digest.finish(),
            });
        }
        // A map page that failed is reported already; the digest over the map pages then
        // differs too, and says nothing more.
        if let (Some(verifier), false) = (flush, map_failed)
            && let Err(err) = verifier.finish()
        {
            self.problem(Problem::DamagedDatabase {
                path: path.to_path_buf(),
                error: in_file(path, err),
            });
        }
        if let Some(kind) = bad.first_unlisted {
            self.problem(Problem::MoreBadPages {
                path: path.to_path_buf(),
                listed: BAD_PAGES_LISTED,
                total: bad.count,
                kind,
            });
        }
    }

    /// Both header copies read: the newer whole one against the manifest, and the flush map
    /// verifier it gives (none if no copy is whole or the page size is another).
    fn headers(
        &mut self,
        m: &Manifest,
        path: &Path,
        headers: &[Option<DbHeader>; 2],
    ) -> Option<flushmap::Verifier> {
        let Some(header) = headers.iter().flatten().max_by_key(|h| h.sequence) else {
            self.problem(Problem::DamagedDatabase {
                path: path.to_path_buf(),
                error: JetError::new(
                    ErrorKind::ReadVerifyFailure,
                    format!("{}: neither header copy is whole", path.display()),
                ),
            });
            return None;
        };
        for (of, expected, found) in [
            (SignatureOf::Database, m.db_signature, header.db_signature),
            (SignatureOf::LogSet, m.log_signature, header.log_signature),
        ] {
            if expected != found {
                self.problem(Problem::ForeignDatabase {
                    path: path.to_path_buf(),
                    of,
                    expected,
                    found,
                });
            }
        }
        if header.page_size != m.page_size {
            self.problem(Problem::DamagedDatabase {
                path: path.to_path_buf(),
                error: JetError::new(
                    ErrorKind::PageSizeMismatch,
                    format!(
                        "{}: the header says pages of {} bytes, the manifest {}",
                        path.display(),
                        header.page_size,
                        m.page_size
                    ),
                ),
            });
            return None;
        }
        Some(flushmap::Verifier::new(header))
    }

    /// A bad page: listed while fewer than [`BAD_PAGES_LISTED`] are, else counted.
    fn bad_page(&mut self, path: &Path, pgno: u64, error: JetError, bad: &mut BadPages) {
        bad.count += 1;
        if bad.count <= BAD_PAGES_LISTED {
            self.problem(Problem::BadPage {
                path: path.to_path_buf(),
                pgno,
                error,
            });
        } else if bad.first_unlisted.is_none() {
            bad.first_unlisted = Some(error.kind());
        }
    }
}

/// The bad pages of a database copy.
#[derive(Default)]
struct BadPages {
    count: u64,
    /// The kind of the first one past those listed.
    first_unlisted: Option<ErrorKind>,
}

/// What reading a log gave the checks of the next one.
#[derive(Default)]
struct LogRead {
    /// Its header, if it is of the set and in its place: the next generation must follow it.
    header: Option<LogHeader>,
    /// Its commits, if besides it was read through to its end record.
    commits: Option<Commits>,
}

/// The checks of a log's header, as restore's (`LogCheck::header`), all of them: its log set
/// and database, its generation, and that it follows `prev`. (Restore could make its own
/// check this one: the first problem's [`Problem::to_error`], the signatures left out under
/// its planted bug.)
pub(crate) fn header_problems(
    m: &Manifest,
    path: &Path,
    entry: &SetLog,
    prev: Option<&LogHeader>,
    h: &LogHeader,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let path = path.to_path_buf();
    let mut foreign = false;
    for (of, expected, found) in [
        (SignatureOf::LogSet, m.log_signature, h.log_signature),
        (SignatureOf::Database, m.db_signature, h.db_signature),
    ] {
        if expected != found {
            foreign = true;
            problems.push(Problem::ForeignLog {
                path: path.clone(),
                of,
                expected,
                found,
            });
        }
    }
    if h.generation != entry.generation {
        problems.push(Problem::WrongGeneration {
            path: path.clone(),
            expected: entry.generation,
            found: h.generation,
        });
    }
    // (Another set's log follows nothing of this one: that is said already.)
    if let Some(prev) = prev
        && !foreign
        && h.prev_created_millis != prev.created_millis
    {
        problems.push(Problem::NotContiguous {
            path,
            previous: prev.generation,
            expected: prev.created_millis,
            found: h.prev_created_millis,
        });
    }
    problems
}

/// A log scan's own error, as restore reports it (`LogCheck::found`): a log of another format
/// is refused as such, anything else is the set's damage.
pub(crate) fn found_in_log(err: JetError) -> JetError {
    match err.kind() {
        ErrorKind::BadLogVersion => err,
        _ => JetError::new(
            ErrorKind::LogCorruptDuringHardRestore,
            err.message().to_string(),
        ),
    }
}

/// A page check's error, naming the file.
fn in_file(path: &Path, err: JetError) -> JetError {
    JetError::new(err.kind(), format!("{}: {}", path.display(), err.message()))
}
