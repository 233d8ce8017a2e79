//! The base layer: what every other layer stands on, and nothing of the engine's own.
//!
//! From the bottom: errors (`error`), the fixed limits (`limits`), byte codecs (`codec`), and
//! the environment seam: the `Vfs` for every file (`vfs`), the bug a test may plant
//! (`planted`), the `Env` bundling them with the clock and entropy (`env`), and the real
//! implementations (`os`). Nothing here knows what a page, a log or a transaction is.

pub(crate) mod codec;
pub(crate) mod env;
pub(crate) mod error;
pub mod limits;
pub(crate) mod os;
pub mod planted;
pub(crate) mod vfs;
