//! Transactions: the instance that owns one database and its log, its sessions, and what a
//! transaction keeps until it commits.
//!
//! From the bottom: a transaction's writes (`writeset`), the version store (`version`), the
//! event log the instance's parameters carry (`event`), the instance and everything behind its
//! lock (`instance`), and the sessions that call into it (`session`, where
//! `Instance::begin_session` lives, so that the instance never names a session).

pub mod event;
pub(crate) mod instance;
pub(crate) mod session;
pub(crate) mod version;
pub(crate) mod writeset;
