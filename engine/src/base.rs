//! The base layer: what every other layer stands on, and nothing of the engine's own.
//!
//! Errors, the fixed limits, byte codecs, and the environment seam (`Env`: the `Vfs` for every
//! file, the clock, entropy, and the one planted bug a test may switch on), with its real
//! implementation in `os`. Nothing here knows what a page, a log or a transaction is.

pub(crate) mod codec;
pub(crate) mod env;
pub(crate) mod error;
pub mod limits;
pub(crate) mod os;
pub mod planted;
pub(crate) mod vfs;
