//! Instance parameters and database options: one base each, which a test adjusts with struct
//! update syntax (`InstanceParams { circular_logging: true, ..params(dir) }`) where it needs
//! something else.

use std::path::Path;

use jetdb::{DatabaseOptions, InstanceParams};

/// The page size every test database is created with (the engine's default is 8 KiB).
pub const PAGE: usize = 4096;

/// The engine's defaults in `dir`, but for small pages ([`PAGE`]) and the smallest log files
/// (128 KiB), so that a test fills pages and rolls logs quickly. The directory must exist.
pub fn base_params(dir: impl AsRef<Path>) -> InstanceParams {
    InstanceParams {
        page_size: PAGE,
        log_file_size: 128 * 1024,
        ..InstanceParams::in_directory(dir)
    }
}

/// [`base_params`] that create `dir` if it is missing, with a cache of 64 pages: what most
/// instance tests run with.
pub fn params(dir: impl AsRef<Path>) -> InstanceParams {
    InstanceParams {
        create_path_if_not_exist: true,
        cache_size: 64 * PAGE,
        ..base_params(dir)
    }
}

/// [`params`] with a cache of 32 pages: what the backup tests run with.
pub fn backup_params(dir: impl AsRef<Path>) -> InstanceParams {
    InstanceParams {
        cache_size: 32 * PAGE,
        ..params(dir)
    }
}

/// [`params`] in `inst` with a checkpoint depth of 300 KiB (not the default 20 MiB): what the
/// randomized transaction tests run with, so that their checkpoints advance.
pub fn model_params() -> InstanceParams {
    InstanceParams {
        checkpoint_depth: 300 * 1024,
        ..params("inst")
    }
}

/// Options for a database of [`PAGE`]-sized pages; everything else the default.
pub fn options() -> DatabaseOptions {
    DatabaseOptions {
        page_size: PAGE,
        ..Default::default()
    }
}
