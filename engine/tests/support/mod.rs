//! Test support shared by the integration tests, each of which includes it with `mod support;`
//! and uses its own part of it:
//!
//! - deterministic environments (`env.rs`): [`env()`], [`env_over`], [`env_with`],
//!   [`env_holding`];
//! - instance parameters and database options (`params.rs`): [`params`] and its variants,
//!   [`options`], [`PAGE`];
//! - a `Vfs` whose operations a test watches, fails or loses (`hook.rs`): [`Hook`],
//!   [`HookedVfs`], [`FailFiles`], [`Script`];
//! - whole files on a `MemVfs` (`files.rs`): [`read_all`], [`write_all`], [`tree`],
//!   [`copy_tree`], [`reseal_block`];
//! - records and what holds them (`records.rs`): [`key`], [`loaded`], [`contents`], [`restore_contents`],
//!   [`read_everything`];
//! - the numbered records of the crash tests: [`numbered`];
//! - an instance whose every commit is remembered, for restore to a point: [`history`];
//! - a disk that loses power, for the crash tests: [`crash_disk`];
//! - directories the OS refuses to write, for real (`read_only.rs`): [`in_read_only_mount`],
//!   [`sysfs_missing`].

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses its own part of the support module"
)]

pub mod crash_disk;
mod env;
mod files;
pub mod history;
mod hook;
pub mod numbered;
mod params;
mod read_only;
mod records;

pub use env::*;
pub use files::*;
pub use hook::*;
pub use params::*;
pub use read_only::*;
pub use records::*;
