//! Online backup and restore, built on the instance and its log.

pub mod backup;
pub mod manifest;
pub(crate) mod restore;
pub mod status;
