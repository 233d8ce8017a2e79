//! `jetsim`: the deterministic simulator for `jetdb`.
//!
//! It runs the engine over a simulated disk ([`SimVfs`]) and clock ([`SimClock`]), drives it
//! with a seeded, swarm-configured workload ([`Plan`]), injects crashes, torn writes, I/O
//! errors, full disks and latent corruption within a fault atlas, and checks every result
//! against a reference [`Model`](model::Model). The promise it checks: a crash loses no
//! durable commit, reads match snapshot isolation, and corruption is reported, never returned
//! as data.
//!
//! A run is a pure function of its plan: the same seed gives the same trace hash.
//!
//! ```
//! use jetsim::{Config, Plan, RunOptions, run};
//! let mut config = Config::swarm(42);
//! config.steps = 60;
//! let report = run(&Plan::generate(config.clone()), RunOptions::default());
//! assert!(report.violation.is_none(), "{:?}", report.violation);
//! let again = run(&Plan::generate(config), RunOptions::default());
//! assert_eq!(report.trace_hash, again.trace_hash);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod atlas;
pub mod campaign;
pub mod clock;
pub mod config;
pub mod coverage;
pub mod fuzz;
pub mod merge;
pub mod model;
pub mod oracle;
pub mod run;
pub mod sabotage;
pub mod shrink;
pub mod timeline;
pub mod trace;
pub mod vfs;
pub mod workload;

pub use clock::SimClock;
pub use config::{Config, CorruptZone};
pub use coverage::{Coverage, Mark};
pub use oracle::{Oracle, Violation};
pub use run::{RunOptions, RunReport, run};
pub use sabotage::Sabotage;
pub use shrink::{Scenario, shrink};
pub use vfs::{ArmedFault, Device, IoFault, SimVfs, Zone};
pub use workload::{BackupMode, Plan, Step, Tamper};
