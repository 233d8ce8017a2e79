//! Online backup and restore, built on the instance and its log.
//!
//! From the bottom: the backup directory's manifest (`manifest`), the status callback
//! (`status`), the verified reading of what a backup copies (`reader`), log truncation
//! (`truncate`), ESE's external backup API (`external`), JetBackup as its client (`backup`),
//! JetRestore (`restore`), backups as one stream (`stream`: written through the external API,
//! restored through `restore`), and the verification of a backup directory without restoring
//! it (`verify`). Backup and restore add their calls to
//! `Instance` from here; nothing below names a backup.

pub mod backup;
pub mod external;
pub mod manifest;
pub(crate) mod reader;
pub(crate) mod restore;
pub mod status;
pub mod stream;
pub(crate) mod truncate;
pub mod verify;
