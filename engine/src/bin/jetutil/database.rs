//! The commands that inspect a database: `header` and `checksum` read the file as it is on
//! disk, without an instance; `check` opens the instance and walks every tree.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use jetdb::{DbHeader, Env};

use crate::Failure;
use crate::cli::InstanceFlags;
use crate::format::utc;
use crate::instance::DATABASE_FILE;

/// `header`: prints both copies of a database file's header and every field of the one in use.
pub(crate) fn header(env: &Env, file: &Path, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let copies = jetdb::read_header_copies(&*env.vfs, file)?;
    writeln!(out, "database: {}", file.display())?;
    for (pgno, copy) in copies.iter().enumerate() {
        match copy {
            Ok(h) => writeln!(
                out,
                "header copy {pgno} (page {pgno}): valid, sequence {}",
                h.sequence
            )?,
            Err(err) => writeln!(out, "header copy {pgno} (page {pgno}): INVALID: {err}")?,
        }
    }
    let chosen = jetdb::header::choose(&copies).map_err(|err| err.context(file.display()))?;
    let which = copies
        .iter()
        .position(|c| c.as_ref().ok() == Some(chosen))
        .unwrap_or(0);
    writeln!(out, "in use: copy {which}")?;
    print_header(chosen, out)?;
    Ok(ExitCode::SUCCESS)
}

/// Every field of a database header, one a line.
fn print_header(h: &DbHeader, out: &mut impl Write) -> io::Result<()> {
    let backup = |info: &jetdb::BackupInfo| {
        if info.is_set() {
            format!(
                "generations {:08X}-{:08X}, mark {}, time {}",
                info.gen_low,
                info.gen_high,
                info.mark,
                utc(info.time_millis)
            )
        } else {
            "none".to_string()
        }
    };
    writeln!(out, "  format version:          {}", h.format_version)?;
    writeln!(out, "  page size:               {}", h.page_size)?;
    writeln!(out, "  update sequence:         {}", h.sequence)?;
    writeln!(
        out,
        "  database signature:      {} (created {})",
        h.db_signature,
        utc(h.db_signature.created_millis)
    )?;
    writeln!(
        out,
        "  log signature:           {} (created {})",
        h.log_signature,
        utc(h.log_signature.created_millis)
    )?;
    writeln!(
        out,
        "  state:                   {:?} ({})",
        h.state, h.state as u32
    )?;
    writeln!(out, "  dbtime:                  {}", h.dbtime)?;
    writeln!(out, "  page count:              {}", h.page_count)?;
    writeln!(
        out,
        "  free pages:              {} (list head: page {})",
        h.free_count, h.free_head
    )?;
    writeln!(out, "  consistent position:     {}", h.consistent_lgpos)?;
    writeln!(
        out,
        "  consistent time:         {}",
        utc(h.consistent_millis)
    )?;
    writeln!(out, "  last full backup:        {}", backup(&h.backup_full))?;
    writeln!(
        out,
        "  last incremental backup: {}",
        backup(&h.backup_incremental)
    )?;
    Ok(())
}

/// `checksum`: verifies every page of a database file; exits 1 if any is bad.
pub(crate) fn checksum(env: &Env, file: &Path, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let report = jetdb::verify_file(&*env.vfs, file)?;
    writeln!(
        out,
        "{}: page size {}, {} pages in the header, {} in the file",
        file.display(),
        report.page_size,
        report.logical_pages,
        report.file_pages
    )?;
    writeln!(out, "bad pages: {}", report.bad_count())?;
    for bad in &report.bad_pages {
        writeln!(out, "  page {}: {}", bad.pgno, bad.error)?;
    }
    if !report.missing_pages.is_empty() {
        writeln!(
            out,
            "  pages {}..{} are missing: the file is truncated",
            report.missing_pages.start, report.missing_pages.end
        )?;
    }
    Ok(if report.bad_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check`: checks the structure of every table and page of an instance's database.
pub(crate) fn check(
    env: &Env,
    flags: &InstanceFlags,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let instance = flags.start(env, false)?;
    let report = instance.check_integrity()?;
    instance.term()?;
    let path = flags.files.dir.join(DATABASE_FILE);
    writeln!(
        out,
        "{}: sound; {} pages, {} free",
        path.display(),
        report.page_count,
        report.free_pages
    )?;
    writeln!(out, "  catalog: {} pages", report.catalog_pages)?;
    for (name, t) in &report.tables {
        writeln!(
            out,
            "  table {name}: {} records, depth {}, {} tree pages, {} overflow pages",
            t.records, t.depth, t.tree_pages, t.overflow_pages
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
