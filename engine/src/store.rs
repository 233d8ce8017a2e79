//! The page store: a database file of checksummed pages, its cache, and the trees in it.
//!
//! From the bottom: the page envelope (`page`), the byte layout of tree pages (`node`), the
//! header copies (`header`), the flush map (`flushmap`), the doublewrite file (`doublewrite`),
//! the page cache and its atomic batches (`pager`), the B+tree (`btree`) and its overflow
//! chains (`overflow`), the table catalog (`catalog`), the public `Database` over them
//! (`database`), and the checks of a whole file (`integrity`). The store knows nothing of the
//! log: it is told how far the log holds its changes (`Pager::logged`), never asks.

pub(crate) mod btree;
pub(crate) mod catalog;
pub(crate) mod database;
pub mod doublewrite;
pub(crate) mod flushmap;
pub(crate) mod frames;
pub mod header;
pub(crate) mod integrity;
pub(crate) mod node;
pub(crate) mod overflow;
pub mod page;
pub(crate) mod pager;
