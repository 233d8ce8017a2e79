//! The write-ahead log: the log files (`log`), the checkpoint (`checkpoint`), and crash
//! recovery (`recovery`), which finishes an interrupted batch and replays the log through the
//! page store's `Database`, its committed changes applied in sorted batches (`replay`).
//!
//! It lies on the store (log positions and signatures are the header's types) and knows
//! nothing of the instance: recovery is given the paths and returns what it found.

pub mod checkpoint;
pub mod log;
pub(crate) mod recovery;
pub(crate) mod replay;
