//! ESE's error codes and the one error type every `jetdb` API returns.
//!
//! The table below is the single source of the codes: each entry gives the ESE name (without
//! the `JET_err` prefix), its numeric value as in ESE's `jethdr.w`, and a one-line description
//! used when an error carries no detail of its own.

use std::fmt;
use std::io;

macro_rules! jet_errors {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        /// An ESE error code: its name, numeric value and meaning.
        ///
        /// The variants carry ESE's names without the `JET_err` prefix; [`ErrorKind::name`] gives
        /// the full name and [`ErrorKind::code`] the numeric value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* #[doc = $text] $name,)*
        }

        impl ErrorKind {
            /// Every error kind, in table order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name,)*];

            /// ESE's numeric value of this error (always negative).
            pub const fn code(self) -> i32 {
                match self { $(ErrorKind::$name => $code,)* }
            }

            /// ESE's name of this error, for example `JET_errReadVerifyFailure`.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorKind::$name => concat!("JET_err", stringify!($name)),)* }
            }

            /// A one-line description of what the error means.
            pub const fn description(self) -> &'static str {
                match self { $(ErrorKind::$name => $text,)* }
            }
        }
    };
}

jet_errors! {
    // Logging, recovery, backup and restore.
    LogFileCorrupt = -501, "a log file is corrupt";
    NoBackupDirectory = -503, "no backup directory was given";
    BackupDirectoryNotEmpty = -504, "the backup directory is not empty";
    BackupInProgress = -505, "a backup of this instance is already running";
    RestoreInProgress = -506, "a restore is running for this instance";
    MissingPreviousLogFile = -509, "the log file of the checkpoint is missing";
    LogWriteFail = -510, "logging stopped after a failure writing the log";
    LogGenerationMismatch = -513, "a log file's name does not match its generation";
    BadLogVersion = -514, "the log file's version is not supported";
    InvalidLogSequence = -515, "the next log's timestamps do not follow the previous log";
    LoggingDisabled = -516, "logging is off for this instance";
    NoBackup = -520, "no backup is in progress";
    InvalidBackupSequence = -521, "a backup call came out of sequence";
    BackupNotAllowedYet = -523, "the instance is not ready for a backup yet";
    DeleteBackupFileFail = -524, "a backup file could not be deleted";
    MakeBackupDirectoryFail = -525, "the backup directory could not be made";
    InvalidBackup = -526, "an incremental backup is not possible with circular logging on";
    MissingLogFile = -528, "a log file needed is missing";
    LogDiskFull = -529, "the log disk is full";
    BadLogSignature = -530, "a log file belongs to another log set";
    BadDbSignature = -531, "a database file has a wrong signature";
    LogFileSizeMismatch = -541, "a log file's size does not match the instance's log file size";
    CheckpointFileNotFound = -542, "the checkpoint file was not found";
    SoftRecoveryOnBackupDatabase = -544, "the place holds a restore that did not finish: restore it again";
    BadCheckpointSignature = -532, "the checkpoint file belongs to another log set";
    CheckpointCorrupt = -533, "the checkpoint file is missing or corrupt";
    PatchFileMissing = -538, "the backup set has no patch file";
    DatabaseLogSetMismatch = -539, "the database does not belong to this set of log files";
    RequiredLogFilesMissing = -543, "log files required for recovery are missing";
    /// ESE's `JET_errDatabaseInconsistent` is an obsolete alias of this code.
    DatabaseDirtyShutdown = -550, "the database was not shut down cleanly; recovery must run first";
    DatabasePatchFileMismatch = -552, "the patch file was not made by this backup";
    EndingRestoreLogTooLow = -553, "the last log of the restore is too low";
    StartingRestoreLogTooHigh = -554, "the first log of the restore is too high";
    GivenLogFileHasBadSignature = -555, "a restore log file has a bad signature";
    GivenLogFileIsNotContiguous = -556, "the restore log files are not contiguous";
    MissingRestoreLogFiles = -557, "some restore log files are missing";
    MissingFullBackup = -560, "an incremental backup needs a full backup first";
    BadBackupDatabaseSize = -561, "the backup database size is not a whole number of pages";
    MissingCurrentLogFiles = -565, "current log files needed for the restore are missing";
    DbTimeTooOld = -566, "a page's dbtime is older than the log record expects";
    DbTimeTooNew = -567, "a page's dbtime is newer than the log record expects";
    MissingFileToBackup = -569, "a log or patch file to back up is missing";
    LogTornWriteDuringHardRestore = -570, "a torn write was found in the backup set during restore";
    LogTornWriteDuringHardRecovery = -571, "a torn write was found in a log outside the backup set";
    LogCorruptDuringHardRestore = -573, "corruption was found in the backup set during restore";
    LogCorruptDuringHardRecovery = -574, "corruption was found in a log outside the backup set";
    LogSequenceChecksumMismatch = -590, "the previous log's accumulated checksum does not match";
    ExistingLogFileHasBadSignature = -610, "an existing log file has a bad signature";
    ExistingLogFileIsNotContiguous = -611, "the existing log files are not contiguous";
    LogReadVerifyFailure = -612, "a log file failed checksum verification";
    RestoreOfNonBackupDatabase = -615, "restore was given a database that is not a backup";
    LogFileNotCopied = -616, "log truncation was asked for before every log was copied";
    SurrogateBackupInProgress = -617, "a surrogate backup is in progress";
    BackupAbortByCaller = -800, "the backup was stopped by its caller";
    BackupAbortByServer = -801, "the backup was stopped by the server";
    // API and engine state.
    InvalidGrbit = -900, "invalid options";
    TermInProgress = -1000, "the instance is shutting down";
    FeatureNotAvailable = -1001, "the operation is not supported";
    InvalidName = -1002, "the name is not valid";
    InvalidParameter = -1003, "an invalid parameter was passed";
    DatabaseFileReadOnly = -1008, "the database was opened read-only";
    OutOfMemory = -1011, "out of memory";
    OutOfDatabaseSpace = -1012, "the database has reached its maximum size";
    ReadVerifyFailure = -1018, "a database page failed checksum verification";
    PageNotInitialized = -1019, "a database page that should hold data is blank";
    DiskReadVerificationFailure = -1021, "the disk returned data that failed verification";
    DiskIO = -1022, "a disk I/O error";
    InvalidPath = -1023, "the path is not valid";
    InvalidDatabase = -1028, "the file is not a database";
    NotInitialized = -1029, "the instance is not initialised";
    AlreadyInitialized = -1030, "the instance is already initialised";
    InitInProgress = -1031, "the instance is being initialised";
    FileAccessDenied = -1032, "the file cannot be accessed";
    BufferTooSmall = -1038, "the buffer is too small";
    InstanceUnavailable = -1090, "the instance met a fatal error and refuses access to its data";
    DatabaseUnavailable = -1091, "the database met a fatal error and refuses further changes";
    VersionStoreOutOfMemory = -1069, "the version store (open transactions' changes) is full";
    InvalidSesid = -1104, "the session or transaction is no longer valid";
    NotInTransaction = -1054, "the operation must be within a transaction";
    InTransaction = -1108, "the operation is not allowed within a transaction";
    WriteConflict = -1102, "another transaction has written this record";
    ReadPgnoVerifyFailure = -1118, "a database page holds another page's number";
    ReadLostFlushVerifyFailure = -1119, "a database page lost a write that was flushed";
    DatabaseDuplicate = -1201, "the database already exists";
    DatabaseInUse = -1202, "the database is in use";
    DatabaseCorrupted = -1206, "the database is corrupt or not a database";
    InvalidDatabaseVersion = -1209, "the database format version is not supported by this engine";
    PageSizeMismatch = -1213, "the database page size does not match";
    CatalogCorrupted = -1220, "the table catalog is corrupt";
    TableDuplicate = -1303, "the table already exists";
    ObjectNotFound = -1305, "no such table";
    TableInUse = -1304, "the table is in use by an open transaction";
    InvalidTableId = -1310, "the table handle does not name a table of this database";
    ClientRequestToStopJetService = -1329, "all activity on the instance was stopped by stop_service";
    // Records and keys.
    KeyTooBig = -408, "the key is longer than the maximum";
    ColumnTooBig = -1506, "the value is longer than the maximum";
    RecordNotFound = -1601, "the key was not found";
    NoCurrentRecord = -1603, "the cursor is not on a record";
    // Files and I/O.
    DiskFull = -1808, "no space left on the disk";
    FileNotFound = -1811, "the file was not found";
    AfterInitialization = -1850, "restore cannot run after the instance is initialised";
    SessionSharingViolation = -1910, "one session was used by several threads at once";
    FileIOBeyondEOF = -4001, "a read went beyond the end of the file";
}

impl ErrorKind {
    /// The error kind with ESE numeric value `code`, if this engine knows it.
    pub fn from_code(code: i32) -> Option<ErrorKind> {
        ErrorKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.code() == code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// The error of every `jetdb` API: an ESE error code and a message saying what went wrong.
///
/// `Display` reads like `JET_errInvalidPath (-1023): the backup directory does not exist`.
///
/// ```
/// use jetdb::{ErrorKind, JetError};
/// let err = JetError::new(ErrorKind::ReadVerifyFailure, "page 17 of data.edb: checksum mismatch");
/// assert_eq!(err.code(), -1018);
/// assert_eq!(err.name(), "JET_errReadVerifyFailure");
/// assert_eq!(
///     err.to_string(),
///     "JET_errReadVerifyFailure (-1018): page 17 of data.edb: checksum mismatch"
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JetError {
    kind: ErrorKind,
    message: Box<str>,
}

impl JetError {
    /// An error of `kind` with a message naming what failed (a file, a page, a key).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> JetError {
        JetError {
            kind,
            message: message.into().into_boxed_str(),
        }
    }

    /// An error of `kind` whose message is the kind's own description.
    pub fn bare(kind: ErrorKind) -> JetError {
        JetError::new(kind, kind.description())
    }

    /// The error for an I/O failure while doing `what`, classified the way ESE classifies it:
    ///
    /// | I/O error | error |
    /// |---|---|
    /// | `NotFound` (ENOENT) | `JET_errFileNotFound` |
    /// | `NotADirectory` (ENOTDIR: a component of the path is a file) | `JET_errInvalidPath` |
    /// | `PermissionDenied` (EACCES, EPERM), `ReadOnlyFilesystem` (EROFS) | `JET_errFileAccessDenied` |
    /// | `StorageFull` (ENOSPC) | `JET_errDiskFull` |
    /// | `UnexpectedEof` (a short read) | `JET_errFileIOBeyondEOF` |
    /// | anything else | `JET_errDiskIO` |
    ///
    /// ```
    /// use std::io;
    /// use jetdb::{ErrorKind, JetError};
    /// let err = io::Error::from(io::ErrorKind::NotADirectory);
    /// assert_eq!(JetError::io("create bk/set-00000001", &err).kind(), ErrorKind::InvalidPath);
    /// ```
    pub fn io(what: impl fmt::Display, err: &io::Error) -> JetError {
        // By kind, not by errno: std decodes each platform's codes into these kinds (on
        // Windows ERROR_DIRECTORY is NotADirectory, ERROR_ACCESS_DENIED PermissionDenied).
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::FileNotFound,
            io::ErrorKind::NotADirectory => ErrorKind::InvalidPath,
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                ErrorKind::FileAccessDenied
            }
            io::ErrorKind::StorageFull => ErrorKind::DiskFull,
            io::ErrorKind::UnexpectedEof => ErrorKind::FileIOBeyondEOF,
            _ => ErrorKind::DiskIO,
        };
        JetError::new(kind, format!("{what}: {err}"))
    }

    /// The error code.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// ESE's numeric value of the error, for example -1018.
    pub fn code(&self) -> i32 {
        self.kind.code()
    }

    /// ESE's name of the error, for example `JET_errReadVerifyFailure`.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// What went wrong, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context` put before its message (`context: message`).
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> JetError {
        JetError::new(self.kind, format!("{context}: {}", self.message))
    }
}

impl fmt::Display for JetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name(), self.code(), self.message)
    }
}

impl fmt::Debug for JetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for JetError {}

/// The result of every `jetdb` API.
pub type Result<T, E = JetError> = std::result::Result<T, E>;

/// Returns early with a [`JetError`] of the given kind and formatted message.
macro_rules! bail {
    ($kind:ident, $($arg:tt)+) => {
        return Err($crate::base::error::JetError::new($crate::base::error::ErrorKind::$kind, format!($($arg)+)))
    };
}
pub(crate) use bail;

/// An error mapper for `map_err` on an I/O result: "`what` `path`: the OS error", classified
/// as [`JetError::io`] does.
pub(crate) fn io_err(what: &str, path: &std::path::Path) -> impl Fn(io::Error) -> JetError {
    let what = format!("{what} {}", path.display());
    move |err| JetError::io(what.clone(), &err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique_and_negative() {
        let mut codes = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for kind in ErrorKind::ALL {
            assert!(kind.code() < 0, "{kind:?}");
            assert!(codes.insert(kind.code()), "duplicate code {}", kind.code());
            assert!(names.insert(kind.name()), "duplicate name {}", kind.name());
            assert_eq!(ErrorKind::from_code(kind.code()), Some(*kind));
        }
    }

    #[test]
    fn every_code_of_the_reference_notes_is_here_with_its_value() {
        // Section 1 of ese-notes.md (ESE's jethdr.w), in full.
        let expected = [
            ("JET_errLogFileCorrupt", -501),
            ("JET_errNoBackupDirectory", -503),
            ("JET_errBackupDirectoryNotEmpty", -504),
            ("JET_errBackupInProgress", -505),
            ("JET_errRestoreInProgress", -506),
            ("JET_errMissingPreviousLogFile", -509),
            ("JET_errLogWriteFail", -510),
            ("JET_errLogGenerationMismatch", -513),
            ("JET_errBadLogVersion", -514),
            ("JET_errInvalidLogSequence", -515),
            ("JET_errLoggingDisabled", -516),
            ("JET_errNoBackup", -520),
            ("JET_errInvalidBackupSequence", -521),
            ("JET_errBackupNotAllowedYet", -523),
            ("JET_errDeleteBackupFileFail", -524),
            ("JET_errMakeBackupDirectoryFail", -525),
            ("JET_errInvalidBackup", -526),
            ("JET_errMissingLogFile", -528),
            ("JET_errLogDiskFull", -529),
            ("JET_errBadLogSignature", -530),
            ("JET_errBadDbSignature", -531),
            ("JET_errBadCheckpointSignature", -532),
            ("JET_errCheckpointCorrupt", -533),
            ("JET_errPatchFileMissing", -538),
            ("JET_errDatabaseLogSetMismatch", -539),
            ("JET_errRequiredLogFilesMissing", -543),
            ("JET_errSoftRecoveryOnBackupDatabase", -544),
            ("JET_errDatabaseDirtyShutdown", -550),
            ("JET_errDatabasePatchFileMismatch", -552),
            ("JET_errEndingRestoreLogTooLow", -553),
            ("JET_errStartingRestoreLogTooHigh", -554),
            ("JET_errGivenLogFileHasBadSignature", -555),
            ("JET_errGivenLogFileIsNotContiguous", -556),
            ("JET_errMissingRestoreLogFiles", -557),
            ("JET_errMissingFullBackup", -560),
            ("JET_errBadBackupDatabaseSize", -561),
            ("JET_errMissingCurrentLogFiles", -565),
            ("JET_errDbTimeTooOld", -566),
            ("JET_errDbTimeTooNew", -567),
            ("JET_errMissingFileToBackup", -569),
            ("JET_errLogTornWriteDuringHardRestore", -570),
            ("JET_errLogTornWriteDuringHardRecovery", -571),
            ("JET_errLogCorruptDuringHardRestore", -573),
            ("JET_errLogCorruptDuringHardRecovery", -574),
            ("JET_errLogSequenceChecksumMismatch", -590),
            ("JET_errExistingLogFileHasBadSignature", -610),
            ("JET_errExistingLogFileIsNotContiguous", -611),
            ("JET_errLogReadVerifyFailure", -612),
            ("JET_errRestoreOfNonBackupDatabase", -615),
            ("JET_errLogFileNotCopied", -616),
            ("JET_errSurrogateBackupInProgress", -617),
            ("JET_errBackupAbortByCaller", -800),
            ("JET_errBackupAbortByServer", -801),
            ("JET_errInvalidGrbit", -900),
            ("JET_errTermInProgress", -1000),
            ("JET_errInvalidParameter", -1003),
            ("JET_errOutOfMemory", -1011),
            ("JET_errReadVerifyFailure", -1018),
            ("JET_errPageNotInitialized", -1019),
            ("JET_errDiskReadVerificationFailure", -1021),
            ("JET_errDiskIO", -1022),
            ("JET_errInvalidPath", -1023),
            ("JET_errNotInitialized", -1029),
            ("JET_errInstanceUnavailable", -1090),
            ("JET_errReadPgnoVerifyFailure", -1118),
            ("JET_errReadLostFlushVerifyFailure", -1119),
            ("JET_errDatabaseCorrupted", -1206),
            ("JET_errClientRequestToStopJetService", -1329),
            ("JET_errDiskFull", -1808),
            ("JET_errFileNotFound", -1811),
            ("JET_errAfterInitialization", -1850),
            ("JET_errSessionSharingViolation", -1910),
        ];
        for (name, code) in expected {
            let kind =
                ErrorKind::from_code(code).unwrap_or_else(|| panic!("{name} ({code}) is missing"));
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn display_reads_like_ese() {
        let err = JetError::new(
            ErrorKind::InvalidPath,
            "the backup directory does not exist",
        );
        assert_eq!(
            err.to_string(),
            "JET_errInvalidPath (-1023): the backup directory does not exist"
        );
        let bare = JetError::bare(ErrorKind::DiskFull);
        assert_eq!(
            bare.to_string(),
            "JET_errDiskFull (-1808): no space left on the disk"
        );
    }

    #[test]
    fn io_errors_are_classified() {
        let cases = [
            (io::ErrorKind::NotFound, ErrorKind::FileNotFound),
            (io::ErrorKind::NotADirectory, ErrorKind::InvalidPath),
            (io::ErrorKind::StorageFull, ErrorKind::DiskFull),
            (io::ErrorKind::PermissionDenied, ErrorKind::FileAccessDenied),
            (
                io::ErrorKind::ReadOnlyFilesystem,
                ErrorKind::FileAccessDenied,
            ),
            (io::ErrorKind::UnexpectedEof, ErrorKind::FileIOBeyondEOF),
            (io::ErrorKind::Other, ErrorKind::DiskIO),
            (io::ErrorKind::IsADirectory, ErrorKind::DiskIO),
        ];
        for (io_kind, kind) in cases {
            let err = JetError::io("write data.edb", &io::Error::from(io_kind));
            assert_eq!(err.kind(), kind, "{io_kind:?}");
            assert!(err.message().starts_with("write data.edb: "));
        }
    }

    /// Raw OS errors, as `OsVfs` passes them on: classified by the kind std decodes from each
    /// errno.
    #[cfg(target_os = "linux")]
    #[test]
    fn os_errors_are_classified() {
        // Linux's values (asm-generic/errno-base.h); libc is not a dependency of jetdb.
        const EPERM: i32 = 1;
        const ENOENT: i32 = 2;
        const EIO: i32 = 5;
        const EACCES: i32 = 13;
        const ENOTDIR: i32 = 20;
        const ENOSPC: i32 = 28;
        const EROFS: i32 = 30;
        let cases = [
            (ENOTDIR, ErrorKind::InvalidPath),
            (EROFS, ErrorKind::FileAccessDenied),
            (EACCES, ErrorKind::FileAccessDenied),
            (EPERM, ErrorKind::FileAccessDenied),
            // As before: a missing file or directory, a full disk, an I/O error.
            (ENOENT, ErrorKind::FileNotFound),
            (ENOSPC, ErrorKind::DiskFull),
            (EIO, ErrorKind::DiskIO),
        ];
        for (errno, kind) in cases {
            let err = JetError::io("create bk", &io::Error::from_raw_os_error(errno));
            assert_eq!(err.kind(), kind, "errno {errno}: {err}");
            // The OS's own words stay in the message, with the errno.
            assert!(
                err.message().starts_with("create bk: ")
                    && err.message().ends_with(&format!("(os error {errno})")),
                "{err}"
            );
        }
    }
}
