//! Transactions: the instance that owns one database and its log, its sessions, and what a
//! transaction keeps until it commits.

pub mod event;
pub(crate) mod instance;
pub(crate) mod session;
pub(crate) mod version;
pub(crate) mod writeset;
