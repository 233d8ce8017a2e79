//! The commands that make and check backups: `backup`, `backup-info` and `verify`.

use std::io::{self, Write};
use std::num::NonZeroU64;
use std::path::Path;
use std::process::ExitCode;

use jetdb::{BackupFlags, BackupOptions, BackupSummary, Env, ErrorKind, JetError, Status};

use crate::Failure;
use crate::cli::InstanceFlags;
use crate::format::{generations, utc};
use crate::instance::start;
use crate::progress::Progress;

/// `backup`: a full or incremental backup of the instance into `to`, or without `to` only the
/// truncation of the logs no backup and no recovery needs; prints every event and a summary.
#[allow(clippy::too_many_arguments)] // one argument per flag of the command
pub(crate) fn backup(
    env: &Env,
    flags: &InstanceFlags,
    to: Option<&Path>,
    incremental: bool,
    atomic: bool,
    create_path: bool,
    max_rate: Option<NonZeroU64>,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let mut bits = BackupFlags::NONE;
    if incremental {
        bits = bits | BackupFlags::INCREMENTAL;
    }
    if atomic {
        bits = bits | BackupFlags::ATOMIC;
    }
    let progress = Progress::new();
    let mut params = flags.params(create_path);
    params.event_log = progress.event_log();
    let instance = start(env, params, true)?;
    let result = instance.backup_with(
        to,
        bits,
        &BackupOptions { max_rate },
        Some(&mut |status: &Status| progress.update(status)),
    );
    progress.finish();
    // Shut down cleanly whatever happened; the backup's error is the one to report.
    let termed = instance.term();
    let summary = result.map_err(|err| create_path_hint(err, create_path))?;
    termed?;
    print_backup(&summary, out)?;
    Ok(ExitCode::SUCCESS)
}

/// `backup --stream`: a full backup of the instance as one stream on stdout; events and the
/// summary go to stderr.
pub(crate) fn stream(
    env: &Env,
    flags: &InstanceFlags,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let progress = Progress::new();
    let mut params = flags.params(false);
    params.event_log = progress.event_log_to(true);
    let instance = start(env, params, true)?;
    let mut stream = io::BufWriter::with_capacity(1 << 20, out);
    let result = instance.backup_to_stream(
        &mut stream,
        Some(&mut |status: &Status| progress.update(status)),
    );
    progress.finish();
    let termed = instance.term();
    let summary = result?;
    termed?;
    stream.flush()?;
    print_backup(&summary, &mut io::stderr().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// `verify`: checks a backup directory whole without restoring it and prints every problem;
/// exits 1 if there is any.
pub(crate) fn verify(env: &Env, backup: &Path, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let report = jetdb::verify_backup(&*env.vfs, backup)?;
    print_report(&report, out)
}

/// The engine names its parameter for a missing directory; say which flag that is here.
/// (Not for the other invalid paths, a file in the way, which the flag does not mend.)
fn create_path_hint(err: JetError, create_path: bool) -> JetError {
    if err.kind() == ErrorKind::InvalidPath
        && !create_path
        && err.message().contains("create_path_if_not_exist")
    {
        JetError::new(
            err.kind(),
            format!("{} (jetutil: --create-path)", err.message()),
        )
    } else {
        err
    }
}

/// The summary of a backup (or of a log truncation).
fn print_backup(s: &BackupSummary, out: &mut impl Write) -> io::Result<()> {
    let kind = s.kind;
    match &s.directory {
        Some(dir) => writeln!(out, "{kind} backup into {} succeeded", dir.display())?,
        None if s.logs.is_some() => writeln!(out, "{kind} backup to the stream succeeded")?,
        None => writeln!(
            out,
            "log truncation succeeded (no backup directory: nothing copied)"
        )?,
    }
    writeln!(out, "  kind:                    {kind}")?;
    writeln!(
        out,
        "  backup point:            commit {}, log position {}",
        s.sequence, s.mark
    )?;
    writeln!(out, "  generations copied:      {}", generations(s.logs))?;
    writeln!(
        out,
        "  bytes copied:            {} (database {}, logs {})",
        s.database_bytes + s.log_bytes,
        s.database_bytes,
        s.log_bytes
    )?;
    writeln!(
        out,
        "  generations truncated:   {}",
        generations(s.truncated)
    )?;
    writeln!(out, "  warnings:                {}", s.warnings.len())?;
    for warning in &s.warnings {
        writeln!(out, "    {warning}")?;
    }
    Ok(())
}

/// `backup-info`: prints the manifest of backup directory `dir` and checks the files it lists:
/// the database copy's length and page checksums, each log's length and CRC32.
pub(crate) fn backup_info(
    env: &Env,
    dir: &Path,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let report = jetdb::verify_backup(&*env.vfs, dir)?;
    writeln!(out, "backup directory: {}", dir.display())?;
    if let Some(m) = &report.manifest {
        let set_dir = m.set_dir(dir);
        writeln!(
            out,
            "  backup set:              {} ({})",
            m.set,
            set_dir.display()
        )?;
        writeln!(
            out,
            "  database:                {}, {} bytes in pages of {}, signature {}",
            m.db_name, m.db_len, m.page_size, m.db_signature
        )?;
        writeln!(
            out,
            "  log set:                 {}, base name {}",
            m.log_signature, m.base_name
        )?;
        writeln!(
            out,
            "  replay starts at:        checkpoint {} (after commit {})",
            m.checkpoint, m.checkpoint_last_commit
        )?;
        writeln!(
            out,
            "  log generations:         {}",
            generations(Some(m.log_range()))
        )?;
        writeln!(
            out,
            "  restores to:             commit {}",
            m.last().sequence
        )?;
        writeln!(out, "backups: {}", m.backups.len())?;
        for b in &m.backups {
            writeln!(
                out,
                "  {:<11} commit {}, mark {}, time {}, generations {}",
                b.kind.to_string(),
                b.sequence,
                b.mark,
                utc(b.millis),
                generations(Some((b.gen_low, b.gen_high)))
            )?;
        }
        writeln!(out, "files: {}", m.logs.len() + 1)?;
        let db = set_dir.join(&m.db_name);
        let good = format!("good ({} pages verified)", report.pages_read);
        writeln!(
            out,
            "  {}: {} bytes: {}",
            m.db_name,
            m.db_len,
            verdict(&report, &db, &good)
        )?;
        for log in &m.logs {
            let name = m.log_name(log.generation);
            writeln!(
                out,
                "  {name}: generation {:#X}, {} bytes, CRC32 {:08x}: {}",
                log.generation,
                log.len,
                log.crc,
                verdict(&report, &set_dir.join(&name), "good")
            )?;
        }
    }
    print_report(&report, out)
}

/// A file's verdict in `backup-info`: `good`, `MISSING`, or `DAMAGED` and its first problem.
fn verdict(report: &jetdb::BackupReport, path: &Path, good: &str) -> String {
    let problems: Vec<&jetdb::Problem> = report.problems_at(path).collect();
    match problems.first() {
        None => good.to_string(),
        Some(jetdb::Problem::Missing { .. }) => "MISSING".to_string(),
        Some(first) => {
            let more = match problems.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            format!("DAMAGED: {}: {}{more}", first.what(), first.found())
        }
    }
}

/// Every problem of `report` on its own line, then its summary; the exit code says whether
/// there was any.
fn print_report(report: &jetdb::BackupReport, out: &mut impl Write) -> Result<ExitCode, Failure> {
    for problem in &report.problems {
        writeln!(out, "{problem}")?;
    }
    writeln!(out, "{}", report.summary())?;
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
