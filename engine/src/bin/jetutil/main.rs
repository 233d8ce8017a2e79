//! `jetutil`: jetdb's command-line tool, our eseutil. It works on an instance directory
//! holding the database `DIR/data.edb`, its logs `DIR/edb*.log` and its checkpoint
//! `DIR/edb.chk`, through the real file system. Every command that opens the instance runs
//! crash recovery first if the last shutdown was not clean, and shuts it down cleanly after.
//!
//! `backup` and `restore` print every event of the operation on stdout as it happens, then a
//! summary; a progress bar goes to stderr when stderr is a terminal. `verify` (and
//! `backup-info`) print every problem of a backup directory on stdout, one a line, then a
//! summary, with exit status 1 if there is any. Errors go to stderr as the ESE error's name,
//! code and message, with exit status 1.

use std::io::{self, IsTerminal, Write};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jetdb::log::{self as jetlog, LogTail};
use jetdb::{
    BackupFlags, BackupOptions, BackupSummary, Clock, CommitMode, DbHeader, Env, ErrorKind,
    EventLog, Instance, InstanceParams, JetError, RestoreSummary, Session, Status, SystemClock,
    Table, limits,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The database file inside an instance directory.
const DATABASE_FILE: &str = "data.edb";

#[derive(Parser)]
#[command(
    name = "jetutil",
    version,
    about = "Inspect and change jetdb instances (our eseutil)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store VALUE under KEY in one transaction (creates the instance and the table if absent).
    Put {
        #[command(flatten)]
        target: Target,
        key: String,
        value: String,
        /// Commit lazily: do not wait for the log to reach the disk.
        #[arg(long)]
        lazy: bool,
    },
    /// Print the value stored under KEY.
    Get {
        #[command(flatten)]
        target: Target,
        key: String,
    },
    /// Delete KEY in one transaction.
    Del {
        #[command(flatten)]
        target: Target,
        key: String,
        /// Commit lazily: do not wait for the log to reach the disk.
        #[arg(long)]
        lazy: bool,
    },
    /// Print the records of a table in key order, tab-separated (or only their count).
    Scan {
        #[command(flatten)]
        target: Target,
        /// Print only the number of records.
        #[arg(long)]
        count: bool,
        /// Start at this key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Stop before this key (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Print at most this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Descending key order.
        #[arg(long)]
        reverse: bool,
    },
    /// Add N random records (24-byte keys) to a table in transactions of --batch puts,
    /// creating the instance if absent.
    Load {
        #[command(flatten)]
        target: Target,
        /// How many records to add.
        #[arg(long)]
        records: u64,
        /// The size of each value in bytes.
        #[arg(long, default_value_t = 150)]
        value_size: usize,
        /// Puts per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        /// Commit lazily (the log is flushed once, at the end).
        #[arg(long)]
        lazy: bool,
        /// The seed of the random keys and values (the same seed gives the same records).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print both copies of a database header and every field of the one in use.
    Header {
        /// The database file (DIR/data.edb).
        file: PathBuf,
    },
    /// Verify the checksum of every page; exits non-zero if any page is bad.
    Checksum {
        /// The database file (DIR/data.edb).
        file: PathBuf,
    },
    /// Check the structure of every table and page; exits non-zero on corruption.
    Check {
        #[command(flatten)]
        instance: InstanceFlags,
    },
    /// List the checkpoint and every log generation with its header and a verdict (like
    /// eseutil /ml); exits non-zero if a log is damaged.
    Logs {
        #[command(flatten)]
        files: InstanceFiles,
    },
    /// Run crash recovery (soft recovery), report what it replayed and undid, and shut down
    /// cleanly.
    Recover {
        #[command(flatten)]
        instance: InstanceFlags,
    },
    /// Back up an instance (JetBackup): a full backup into DEST, an incremental one
    /// added to the backup set in DEST, or, without --to, only the truncation of the logs no
    /// backup and no recovery needs. Prints each step and a summary.
    Backup {
        #[command(flatten)]
        instance: InstanceFlags,
        /// The backup directory (without it, nothing is copied: the logs are truncated).
        #[arg(long, value_name = "DEST")]
        to: Option<PathBuf>,
        /// Copy only the logs written since the last backup, extending the set in DEST.
        #[arg(long)]
        incremental: bool,
        /// Replace the backup in DEST, which stays restorable until the new one succeeds.
        #[arg(long)]
        atomic: bool,
        /// Create DEST if it does not exist (JET_paramCreatePathIfNotExist).
        #[arg(long)]
        create_path: bool,
        /// Copy at most RATE a second, reads and writes alike (as pg_basebackup's --max-rate):
        /// a number of bytes, or with a unit K, M or G (KiB, MiB, GiB: powers of 1024), as
        /// `200MiB` or `1.5G`. Without it, the backup copies as fast as the disk allows.
        #[arg(long, value_name = "RATE", value_parser = parse_rate)]
        max_rate: Option<NonZeroU64>,
    },
    /// Restore the backup set in BACKUP into a new instance directory (JetRestore): the
    /// database as it was at the last backup of the set, shut down cleanly. DIR (and
    /// --log-dir, --system-dir) is created if it does not exist, with its missing parents.
    Restore {
        /// The backup directory.
        backup: PathBuf,
        /// The instance directory to restore into, created if missing; it must hold no
        /// database, log or checkpoint.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Does nothing: restore always creates DIR (and --log-dir, --system-dir). Accepted so
        /// that scripts written when it had to be asked for keep working.
        #[arg(long)]
        create_path: bool,
        #[command(flatten)]
        paths: PathFlags,
        #[command(flatten)]
        tuning: TuningFlags,
    },
    /// Print a backup directory's manifest — its set, backups and files, each with its verdict
    /// — then verify the directory whole as `verify` does, printing every problem; exits
    /// non-zero if there is any.
    BackupInfo {
        /// The backup directory.
        backup: PathBuf,
    },
    /// Verify a backup directory whole without restoring it (as pg_verifybackup): every file
    /// the manifest names (missing, resized, modified; each log read through and chained to
    /// the one before, its commits against each backup's point; every page of the database
    /// copy), and every file or directory it does not name — debris of a backup that never
    /// finished, which the next backup into the directory removes, or anything else. Prints
    /// every problem on its own line with its ESE error, then a summary; exits 0 if there is
    /// none, 1 if there is any.
    Verify {
        /// The backup directory.
        backup: PathBuf,
    },
}

/// Where an instance's logs and checkpoint are, and their names: every command that finds an
/// instance's files takes these.
#[derive(Args)]
struct PathFlags {
    /// Where the logs go (JET_paramLogFilePath), if not the instance directory.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Where the checkpoint goes (JET_paramSystemPath), if not the instance directory.
    #[arg(long)]
    system_dir: Option<PathBuf>,
    /// The base name of the log and checkpoint files (JET_paramBaseName).
    #[arg(long, default_value = "edb")]
    base_name: String,
}

/// Where an instance's files are.
#[derive(Args)]
struct InstanceFiles {
    /// The instance directory.
    dir: PathBuf,
    #[command(flatten)]
    paths: PathFlags,
}

impl InstanceFiles {
    fn log_dir(&self) -> &Path {
        self.paths.log_dir.as_deref().unwrap_or(&self.dir)
    }

    fn system_dir(&self) -> &Path {
        self.paths.system_dir.as_deref().unwrap_or(&self.dir)
    }
}

/// The instance parameters besides its paths.
#[derive(Args)]
struct TuningFlags {
    /// The size of each log file in KiB (JET_paramLogFileSize).
    #[arg(long, default_value_t = jetlog::LOG_FILE_SIZE_DEFAULT / 1024)]
    log_file_size: u64,
    /// Delete the log generations the checkpoint has passed (JET_paramCircularLog).
    #[arg(long)]
    circular_log: bool,
    /// No write-ahead log (JET_paramRecovery off): a crash leaves the database dirty.
    #[arg(long)]
    no_logging: bool,
    /// The page cache size in MiB (JET_paramCacheSizeMax).
    #[arg(long, default_value_t = 64)]
    cache_mib: usize,
    /// The page size of a new database, in bytes (JET_paramDatabasePageSize).
    #[arg(long, default_value_t = limits::PAGE_SIZE_DEFAULT)]
    page_size: usize,
}

/// The instance parameters, as flags every command that opens an instance accepts.
#[derive(Args)]
struct InstanceFlags {
    #[command(flatten)]
    files: InstanceFiles,
    #[command(flatten)]
    tuning: TuningFlags,
}

#[derive(Args)]
struct Target {
    #[command(flatten)]
    instance: InstanceFlags,
    /// The table.
    #[arg(long, default_value = "default")]
    table: String,
    /// Keys and values are given and printed as hexadecimal.
    #[arg(long)]
    hex: bool,
}

/// A rate for `--max-rate`: bytes a second, with an optional unit K, M or G (powers of 1024;
/// `KiB`, `MiB`, `GiB` and a trailing `/s` are accepted too).
fn parse_rate(text: &str) -> Result<NonZeroU64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" | "KB" => 1 << 10,
        "M" | "MIB" | "MB" => 1 << 20,
        "G" | "GIB" | "GB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use K, M or G)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate such as 200MiB"))?;
    let bytes = value * scale as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!(
            "{text:?} is not a rate of at least a byte a second"
        ));
    }
    Ok(NonZeroU64::new(bytes as u64).expect("at least 1"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(Failure::Jet(err)) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
        // The reader went away (`jetutil scan | head`): not an error of ours.
        Err(Failure::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(err)) => {
            eprintln!("error: writing output: {err}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Jet(JetError),
    Output(io::Error),
}

impl From<JetError> for Failure {
    fn from(err: JetError) -> Failure {
        Failure::Jet(err)
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        Failure::Output(err)
    }
}

fn mode(lazy: bool) -> CommitMode {
    if lazy {
        CommitMode::Lazy
    } else {
        CommitMode::Durable
    }
}

fn run(command: Command) -> Result<ExitCode, Failure> {
    let env = Env::os();
    let mut out = io::stdout().lock();
    match command {
        Command::Put {
            target,
            key,
            value,
            lazy,
        } => {
            let key = target.decode(&key)?;
            let value = target.decode(&value)?;
            let (instance, mut session, table) = target.open(&env, true)?;
            session.begin_transaction()?;
            session.put(table, &key, &value)?;
            session.commit_transaction(mode(lazy))?;
            drop(session);
            instance.term()?;
        }
        Command::Get { target, key } => {
            let key = target.decode(&key)?;
            let (instance, mut session, table) = target.open(&env, false)?;
            session.begin_transaction()?;
            let found = session.get(table, &key)?;
            session.rollback()?;
            drop(session);
            instance.term()?;
            match found {
                Some(value) => writeln!(out, "{}", target.encode(&value))?,
                None => return Err(not_found(&target, &key).into()),
            }
        }
        Command::Del { target, key, lazy } => {
            let key = target.decode(&key)?;
            let (instance, mut session, table) = target.open(&env, false)?;
            session.begin_transaction()?;
            let found = session.delete(table, &key)?;
            session.commit_transaction(mode(lazy))?;
            drop(session);
            instance.term()?;
            if !found {
                return Err(not_found(&target, &key).into());
            }
        }
        Command::Scan {
            target,
            count,
            from,
            to,
            limit,
            reverse,
        } => {
            let from = from.map(|k| target.decode(&k)).transpose()?;
            let to = to.map(|k| target.decode(&k)).transpose()?;
            let (instance, mut session, table) = target.open(&env, false)?;
            let range = (
                from.as_deref()
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
                to.as_deref()
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            );
            let mut n = 0u64;
            session.begin_transaction()?;
            for record in session
                .range(table, range, reverse)?
                .take(limit.map_or(usize::MAX, |l| l as usize))
            {
                let (key, value) = record?;
                n += 1;
                if !count {
                    writeln!(out, "{}\t{}", target.encode(&key), target.encode(&value))?;
                }
            }
            session.rollback()?;
            drop(session);
            instance.term()?;
            if count {
                writeln!(out, "{n}")?;
            }
        }
        Command::Load {
            target,
            records,
            value_size,
            batch,
            lazy,
            seed,
        } => {
            load(
                &env,
                &target,
                records,
                value_size,
                batch.max(1),
                mode(lazy),
                seed,
                &mut out,
            )?;
        }
        Command::Header { file } => return header(&env, &file, &mut out),
        Command::Checksum { file } => return checksum(&env, &file, &mut out),
        Command::Check { instance: flags } => {
            let instance = flags.start(&env, false)?;
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
        }
        Command::Logs { files } => {
            return logs(
                &env,
                files.log_dir(),
                files.system_dir(),
                &files.paths.base_name,
                &mut out,
            );
        }
        Command::Recover { instance: flags } => {
            let instance = flags.start(&env, false)?;
            let report = instance.recovery_report()?;
            instance.term()?;
            match report {
                Some(r) => print_recovery(&r, &mut out)?,
                None => writeln!(out, "logging is off: there is nothing to recover")?,
            }
        }
        Command::Backup {
            instance: flags,
            to,
            incremental,
            atomic,
            create_path,
            max_rate,
        } => {
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
            let instance = start(&env, params, true)?;
            let result = instance.backup_with(
                to.as_deref(),
                bits,
                &BackupOptions { max_rate },
                Some(&mut |status: &Status| progress.update(status)),
            );
            progress.finish();
            // Shut down cleanly whatever happened; the backup's error is the one to report.
            let termed = instance.term();
            let summary = result.map_err(|err| create_path_hint(err, create_path))?;
            termed?;
            print_backup(&summary, &mut out)?;
        }
        Command::Restore {
            backup,
            to,
            create_path: _,
            paths,
            tuning,
        } => {
            let files = InstanceFiles { dir: to, paths };
            let progress = Progress::new();
            // A restore makes a new instance: its target is created, as pg_basebackup and
            // RocksDB's restore create theirs (the library keeps ESE's parameter, off).
            let mut params = tuning.params(&files, true);
            params.event_log = progress.event_log();
            let instance = Instance::new(env.clone(), params);
            let result = instance.restore(
                &backup,
                Some(&mut |status: &Status| progress.update(status)),
            );
            progress.finish();
            let summary = result?;
            print_restore(&summary, &backup, &files.dir, &mut out)?;
        }
        Command::BackupInfo { backup } => return backup_info(&env, &backup, &mut out),
        Command::Verify { backup } => {
            let report = jetdb::verify_backup(&*env.vfs, &backup)?;
            return print_report(&report, &mut out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_recovery(r: &jetdb::RecoveryReport, out: &mut impl Write) -> io::Result<()> {
    if r.new_log_set {
        writeln!(out, "started a new log set (generation 1)")?;
        return Ok(());
    }
    let pos = |p: Option<jetdb::Lgpos>| p.map_or("-".to_string(), |p| p.to_string());
    writeln!(
        out,
        "recovered from the checkpoint {} to {}",
        pos(r.start),
        pos(r.end)
    )?;
    let gens: Vec<String> = r.generations.iter().map(|g| format!("{g:#X}")).collect();
    writeln!(out, "  generations read:       {}", gens.join(" "))?;
    writeln!(
        out,
        "  database before:        {}",
        if r.was_dirty {
            "dirty (not shut down cleanly)"
        } else {
            "clean"
        }
    )?;
    writeln!(out, "  commits replayed:       {}", r.commits_replayed)?;
    writeln!(out, "  operations replayed:    {}", r.operations_replayed)?;
    writeln!(out, "  in sorted batches:      {}", r.replay_batches)?;
    if r.batch_pages_finished > 0 {
        writeln!(
            out,
            "  interrupted batch:      {} pages written into place",
            r.batch_pages_finished
        )?;
    }
    writeln!(out, "  pages written:          {}", r.pages_written)?;
    writeln!(out, "  transactions undone:    {}", r.transactions_undone)?;
    match &r.torn_tail {
        Some(tail) => writeln!(out, "  torn tail:              {tail}")?,
        None => writeln!(out, "  torn tail:              none")?,
    }
    if r.finished_roll {
        writeln!(out, "  finished an interrupted log roll")?;
    }
    Ok(())
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

/// A range of log generations, or "none".
fn generations(range: Option<(u32, u32)>) -> String {
    match range {
        Some((low, high)) => format!("{low:#X} to {high:#X}"),
        None => "none".to_string(),
    }
}

fn print_backup(s: &BackupSummary, out: &mut impl Write) -> io::Result<()> {
    let kind = s.kind;
    match &s.directory {
        Some(dir) => writeln!(out, "{kind} backup into {} succeeded", dir.display())?,
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
    writeln!(out, "  restored to commit:      {}", s.sequence)?;
    writeln!(
        out,
        "  bytes copied:            {} (database {}, logs {})",
        s.database_bytes + s.log_bytes,
        s.database_bytes,
        s.log_bytes
    )?;
    Ok(())
}

/// Prints the manifest of backup directory `dir` and checks the files it lists: the database
/// copy's length and page checksums, each log's length and CRC32.
fn backup_info(env: &Env, dir: &Path, out: &mut impl Write) -> Result<ExitCode, Failure> {
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

/// The progress of a backup or a restore: a bar on stderr while stderr is a terminal, and
/// every event printed on stdout (the bar steps aside for each).
struct Progress {
    bar: ProgressBar,
    /// Whether the bar may be drawn: in a file or a pipe a bar is only noise.
    terminal: bool,
}

impl Progress {
    fn new() -> Progress {
        let style = ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        // Hidden until the operation reports its total, so no empty bar is drawn before.
        let bar = ProgressBar::hidden().with_style(style);
        Progress {
            bar,
            terminal: io::stderr().is_terminal(),
        }
    }

    /// An event log printing each event's Display on its own line of stdout.
    fn event_log(&self) -> EventLog {
        let bar = self.bar.clone();
        EventLog::new(move |record| {
            bar.suspend(|| {
                // The sink cannot fail the operation; a closed stdout shows when the summary
                // is written.
                let _ = writeln!(io::stdout(), "{}", record.event);
            });
        })
    }

    /// The status callback: moves the bar (the total may grow as the operation learns more).
    fn update(&self, status: &Status) -> jetdb::Result<()> {
        if self.terminal && self.bar.is_hidden() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_length(status.total);
        self.bar.set_position(status.done);
        Ok(())
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn not_found(target: &Target, key: &[u8]) -> JetError {
    JetError::new(
        ErrorKind::RecordNotFound,
        format!("no key {}", target.encode(key)),
    )
}

impl TuningFlags {
    /// The parameters of the instance in `dir`; `create` sets create_path_if_not_exist.
    fn params(&self, files: &InstanceFiles, create: bool) -> InstanceParams {
        let mut p = InstanceParams::in_directory(&files.dir);
        p.log_path = files.log_dir().to_path_buf();
        p.system_path = files.system_dir().to_path_buf();
        p.base_name = files.paths.base_name.clone();
        p.log_file_size = self.log_file_size.saturating_mul(1024);
        p.circular_logging = self.circular_log;
        p.recovery = !self.no_logging;
        p.cache_size = self.cache_mib.max(1) * 1024 * 1024;
        p.page_size = self.page_size;
        p.create_path_if_not_exist = create;
        p
    }
}

impl InstanceFlags {
    fn params(&self, create: bool) -> InstanceParams {
        self.tuning.params(&self.files, create)
    }

    /// Initialises the instance; without `create`, its database must exist.
    fn start(&self, env: &Env, create: bool) -> Result<Instance, JetError> {
        start(env, self.params(create), !create)
    }
}

/// Initialises an instance with `params`; with `must_exist`, its database must exist (so a
/// mistyped directory is reported, not made into a new instance).
fn start(env: &Env, params: InstanceParams, must_exist: bool) -> Result<Instance, JetError> {
    if must_exist {
        let exists = env.vfs.exists(&params.database_path).map_err(|err| {
            JetError::io(format!("look up {}", params.database_path.display()), &err)
        })?;
        if !exists {
            return Err(JetError::new(
                ErrorKind::FileNotFound,
                format!(
                    "{} does not exist (put and load create an instance)",
                    params.database_path.display()
                ),
            ));
        }
    }
    let instance = Instance::new(env.clone(), params);
    instance.init()?;
    Ok(instance)
}

impl Target {
    /// Initialises the instance and opens (or, with `create`, creates) the table.
    fn open(&self, env: &Env, create: bool) -> Result<(Instance, Session, Table), JetError> {
        let instance = self.instance.start(env, create)?;
        let mut session = instance.begin_session()?;
        let table = match session.open_table(&self.table) {
            Ok(table) => table,
            Err(err) if create && err.kind() == ErrorKind::ObjectNotFound => {
                session.create_table(&self.table)?
            }
            Err(err) => return Err(err),
        };
        Ok((instance, session, table))
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, JetError> {
        if !self.hex {
            return Ok(text.as_bytes().to_vec());
        }
        let digits = text.as_bytes();
        let bad = || {
            JetError::new(
                ErrorKind::InvalidParameter,
                format!("{text:?} is not hexadecimal"),
            )
        };
        if !digits.len().is_multiple_of(2) {
            return Err(bad());
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or_else(bad)
            })
            .collect()
    }

    fn encode(&self, bytes: &[u8]) -> String {
        if self.hex {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        } else {
            escape(bytes)
        }
    }
}

/// Printable ASCII as it is; every other byte (and the backslash) escaped.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn load(
    env: &Env,
    target: &Target,
    records: u64,
    value_size: usize,
    batch: u64,
    mode: CommitMode,
    seed: u64,
    out: &mut impl Write,
) -> Result<(), Failure> {
    if value_size > limits::VALUE_LEN_MAX {
        return Err(JetError::new(
            ErrorKind::ColumnTooBig,
            format!(
                "--value-size {value_size} exceeds {}",
                limits::VALUE_LEN_MAX
            ),
        )
        .into());
    }
    let (instance, mut session, table) = target.open(env, true)?;
    let clock = SystemClock;
    let started = clock.monotonic_nanos();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut key = [0u8; 24];
    let mut value = vec![0u8; value_size];
    let mut done = 0u64;
    while done < records {
        session.begin_transaction()?;
        for _ in 0..batch.min(records - done) {
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut value);
            session.put(table, &key, &value)?;
            done += 1;
        }
        session.commit_transaction(mode)?;
    }
    instance.flush_log()?;
    let seconds = (clock.monotonic_nanos() - started) as f64 / 1e9;
    let stats = instance.stats()?;
    drop(session);
    instance.term()?;
    let header =
        jetdb::read_header_copies(&*env.vfs, &target.instance.files.dir.join(DATABASE_FILE))?;
    let header = jetdb::header::choose(&header)?;
    writeln!(
        out,
        "loaded {records} records of {value_size} bytes in {seconds:.3} s: {:.0} records/s; {} commits, {} log generations started, {} checkpoints; {} now holds {} pages ({:.1} MiB)",
        records as f64 / seconds.max(1e-9),
        stats.durable_commits + stats.lazy_commits,
        stats.log_rolls,
        stats.checkpoints,
        target.instance.files.dir.join(DATABASE_FILE).display(),
        header.page_count,
        f64::from(header.page_count) * f64::from(header.page_size) / (1024.0 * 1024.0),
    )?;
    Ok(())
}

/// Lists the checkpoint and the log files of `log_dir` with a verdict for each.
fn logs(
    env: &Env,
    log_dir: &Path,
    system_dir: &Path,
    base: &str,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let mut healthy = true;
    let chk = system_dir.join(jetdb::checkpoint::checkpoint_name(base));
    match jetdb::checkpoint::read(&*env.vfs, &chk) {
        Ok(Some(c)) => writeln!(
            out,
            "{}: checkpoint {}, sequence {}, log set {}, written {}",
            chk.display(),
            c.position,
            c.sequence,
            c.log_signature,
            utc(c.millis)
        )?,
        Ok(None) => writeln!(out, "{}: none", chk.display())?,
        Err(err) => {
            healthy = false;
            writeln!(out, "{}: {err}", chk.display())?;
        }
    }
    let names = env
        .vfs
        .list(log_dir)
        .map_err(|err| JetError::io(format!("list {}", log_dir.display()), &err))?;
    let mut files: Vec<(u32, String)> = names
        .iter()
        .filter_map(|n| jetlog::parse_archive_name(base, n).map(|g| (g, n.clone())))
        .collect();
    files.sort();
    let current = jetlog::current_name(base);
    if names.contains(&current) {
        files.push((u32::MAX, current.clone()));
    }
    let tmp = jetlog::tmp_name(base);
    if names.contains(&tmp) {
        files.push((u32::MAX, tmp));
    }
    if files.is_empty() {
        writeln!(out, "no log files in {}", log_dir.display())?;
    }
    let mut prev: Option<jetlog::LogHeader> = None;
    for (_, name) in &files {
        let path = log_dir.join(name);
        // Read a piece at a time: the tool's memory is the same whatever the log file size.
        let (scan, counts) = match jetlog::scan_file_counting(&*env.vfs, &path) {
            Ok(found) => found,
            Err(err) => {
                healthy = false;
                writeln!(out, "{name}: {err}")?;
                continue;
            }
        };
        let h = &scan.header;
        let commits = counts.commits;
        let archived = name != &current && !name.ends_with("tmp.log");
        let verdict = match (&scan.tail, archived) {
            (LogTail::Ended, _) => "good".to_string(),
            (LogTail::Open, false) => "good (open)".to_string(),
            (LogTail::Torn { .. }, false) => jetdb::describe_tail(&scan.tail),
            (tail, _) => {
                healthy = false;
                format!("DAMAGED: {}", jetdb::describe_tail(tail))
            }
        };
        writeln!(
            out,
            "{name}: generation {:#X}, created {}, previous {}, log set {}, {} KiB, {} of {} segments used, {} records ({commits} commits): {verdict}",
            h.generation,
            utc(h.created_millis),
            if h.prev_created_millis == 0 {
                "-".to_string()
            } else {
                utc(h.prev_created_millis)
            },
            h.log_signature,
            h.file_size() / 1024,
            scan.segments_used,
            h.segments - 1,
            counts.records,
        )?;
        if let Some(p) = &prev {
            if p.log_signature != h.log_signature {
                healthy = false;
                writeln!(
                    out,
                    "  ^ belongs to another log set than the file before it"
                )?;
            } else if p.generation + 1 != h.generation && !name.ends_with("tmp.log") {
                healthy = false;
                writeln!(
                    out,
                    "  ^ generations {:#X}..{:#X} are missing",
                    p.generation + 1,
                    h.generation - 1
                )?;
            } else if h.prev_created_millis != p.created_millis && !name.ends_with("tmp.log") {
                healthy = false;
                writeln!(out, "  ^ does not follow the generation before it")?;
            }
        }
        prev = Some(*h);
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn header(env: &Env, file: &Path, out: &mut impl Write) -> Result<ExitCode, Failure> {
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

/// Milliseconds since the Unix epoch as an ISO 8601 UTC time.
fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

fn checksum(env: &Env, file: &Path, out: &mut impl Write) -> Result<ExitCode, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_795_987_167_123), "2026-11-29T21:19:27.123Z");
    }

    #[test]
    fn escape_keeps_text_and_escapes_bytes() {
        assert_eq!(escape(b"ab c"), "ab c");
        assert_eq!(escape(b"a\\b\x00\xff\n"), "a\\\\b\\x00\\xff\\x0a");
    }

    #[test]
    fn rates_parse_with_binary_units() {
        let rate = |t| parse_rate(t).map(NonZeroU64::get);
        assert_eq!(rate("200MiB"), Ok(200 << 20));
        assert_eq!(rate("200M"), Ok(200 << 20));
        assert_eq!(rate("1.5G/s"), Ok(3 << 29));
        assert_eq!(rate("64k"), Ok(64 << 10));
        assert_eq!(rate("4096"), Ok(4096));
        for bad in ["", "0", "0.5", "fast", "12 parsecs", "-3M", "1e30G"] {
            assert!(rate(bad).is_err(), "{bad:?} was taken");
        }
    }
}
