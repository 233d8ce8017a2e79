//! The write-ahead log: the log files (`log`), the checkpoint (`checkpoint`), and crash
//! recovery (`recovery`), which replays the log through the page store's `Database`.

pub mod checkpoint;
pub mod log;
pub(crate) mod recovery;
