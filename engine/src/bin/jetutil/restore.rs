//! The `restore` command: a backup set made into a new instance.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jetdb::{Env, Instance, RestoreOptions, RestoreSummary, Status};

use crate::Failure;
use crate::cli::{InstanceFiles, PathFlags, TuningFlags};
use crate::format::{generations, utc};
use crate::progress::Progress;

/// Where a restore reads the backup.
pub(crate) enum BackupSource<'a> {
    /// A backup directory.
    Dir(&'a Path),
    /// A backup stream on stdin, unpacked into `staging` (default `.jetdb-stream` in the
    /// instance directory) first.
    Stdin { staging: Option<PathBuf> },
}

/// `restore`: restores the backup set in `backup` into a new instance in `to` (created if
/// missing), as far as `options` say, printing every event and a summary that names the
/// point it landed on.
pub(crate) fn restore(
    env: &Env,
    from: BackupSource<'_>,
    to: PathBuf,
    options: &RestoreOptions,
    paths: PathFlags,
    tuning: &TuningFlags,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let files = InstanceFiles { dir: to, paths };
    let progress = Progress::new();
    // A restore makes a new instance: its target is created, as pg_basebackup and
    // RocksDB's restore create theirs (the library keeps ESE's parameter, off).
    let mut params = tuning.params(&files, true);
    params.event_log = progress.event_log();
    let instance = Instance::new(env.clone(), params);
    let mut on_status = |status: &Status| progress.update(status);
    let (result, backup) = match from {
        BackupSource::Dir(backup) => (
            instance.restore_with(backup, options, Some(&mut on_status)),
            backup.to_path_buf(),
        ),
        BackupSource::Stdin { staging } => {
            // (Inside the instance directory, which the restore makes first if missing.)
            let staging = staging.unwrap_or_else(|| files.dir.join(".jetdb-stream"));
            let mut stdin = io::stdin().lock();
            (
                instance.restore_stream(&mut stdin, &staging, options, Some(&mut on_status)),
                PathBuf::from("the stream on stdin"),
            )
        }
    };
    progress.finish();
    let summary = result?;
    print_restore(&summary, &backup, &files.dir, out)?;
    Ok(ExitCode::SUCCESS)
}

/// The summary of a restore.
fn print_restore(
    s: &RestoreSummary,
    backup: &Path,
    dir: &Path,
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(out, "restored {} into {}", backup.display(), dir.display())?;
    if !s.debris_removed.is_empty() {
        writeln!(
            out,
            "  cleared first:           {} files an unfinished restore left ({})",
            s.debris_removed.len(),
            s.debris_removed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    writeln!(
        out,
        "  backups restored:        {} (a full backup and {} incremental)",
        s.backups,
        s.backups.saturating_sub(1)
    )?;
    writeln!(
        out,
        "  generations replayed:    {}",
        generations(Some(s.logs))
    )?;
    writeln!(out, "  commits replayed:        {}", s.commits_replayed)?;
    if let Some((low, high)) = s.rolled_forward {
        writeln!(
            out,
            "  rolled forward through:  live generations {}",
            generations(Some((low, high)))
        )?;
    }
    match (s.position, s.commit_millis) {
        (Some(at), Some(millis)) => writeln!(
            out,
            "  landed on commit:        {} at {at}, committed {}",
            s.sequence,
            utc(millis)
        )?,
        _ => writeln!(out, "  landed on commit:        {}", s.sequence)?,
    }
    writeln!(
        out,
        "  bytes copied:            {} (database {}, logs {})",
        s.database_bytes + s.log_bytes,
        s.database_bytes,
        s.log_bytes
    )?;
    Ok(())
}
