//! `jetutil`: jetdb's command-line tool, our eseutil. It works on an instance directory whose
//! database is `DIR/data.edb`, through the real file system.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jetdb::{
    Clock, Database, DatabaseOptions, DbHeader, Env, ErrorKind, JetError, SystemClock, Table,
    limits,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The database file inside an instance directory.
const DATABASE_FILE: &str = "data.edb";

#[derive(Parser)]
#[command(
    name = "jetutil",
    version,
    about = "Inspect and change jetdb databases (our eseutil)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store VALUE under KEY (creates the instance and the table if absent).
    Put {
        #[command(flatten)]
        target: Target,
        key: String,
        value: String,
        #[command(flatten)]
        create: CreateOptions,
    },
    /// Print the value stored under KEY.
    Get {
        #[command(flatten)]
        target: Target,
        key: String,
    },
    /// Delete KEY.
    Del {
        #[command(flatten)]
        target: Target,
        key: String,
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
    /// Add N random records (24-byte keys) to a table, creating the instance if absent.
    Load {
        #[command(flatten)]
        target: Target,
        /// How many records to add.
        #[arg(long)]
        records: u64,
        /// The size of each value in bytes.
        #[arg(long, default_value_t = 150)]
        value_size: usize,
        /// Records between flushes to disk.
        #[arg(long, default_value_t = 10_000)]
        batch: u64,
        /// The seed of the random keys and values (the same seed gives the same records).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        create: CreateOptions,
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
        /// The instance directory.
        dir: PathBuf,
    },
}

#[derive(Args)]
struct Target {
    /// The instance directory.
    dir: PathBuf,
    /// The table.
    #[arg(long, default_value = "default")]
    table: String,
    /// Keys and values are given and printed as hexadecimal.
    #[arg(long)]
    hex: bool,
    /// The page cache size in MiB.
    #[arg(long, default_value_t = 64)]
    cache_mib: usize,
}

#[derive(Args)]
struct CreateOptions {
    /// The page size of a new database, in bytes (4096 to 32768, a power of two).
    #[arg(long, default_value_t = limits::PAGE_SIZE_DEFAULT)]
    page_size: usize,
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

fn run(command: Command) -> Result<ExitCode, Failure> {
    let env = Env::os();
    let mut out = io::stdout().lock();
    match command {
        Command::Put {
            target,
            key,
            value,
            create,
        } => {
            let key = target.decode(&key)?;
            let value = target.decode(&value)?;
            let (mut db, table) = open_or_create(&env, &target, &create)?;
            db.put(table, &key, &value)?;
            db.close()?;
        }
        Command::Get { target, key } => {
            let key = target.decode(&key)?;
            let (mut db, table) = open(&env, &target, true)?;
            match db.get(table, &key)? {
                Some(value) => writeln!(out, "{}", target.encode(&value))?,
                None => {
                    return Err(JetError::new(
                        ErrorKind::RecordNotFound,
                        format!("no key {}", target.encode(&key)),
                    )
                    .into());
                }
            }
        }
        Command::Del { target, key } => {
            let key = target.decode(&key)?;
            let (mut db, table) = open(&env, &target, false)?;
            let found = db.delete(table, &key)?;
            db.close()?;
            if !found {
                return Err(JetError::new(
                    ErrorKind::RecordNotFound,
                    format!("no key {}", target.encode(&key)),
                )
                .into());
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
            let (mut db, table) = open(&env, &target, true)?;
            let range = (
                from.as_deref()
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
                to.as_deref()
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            );
            let mut n = 0u64;
            for record in db
                .range(table, range, reverse)?
                .take(limit.map_or(usize::MAX, |l| l as usize))
            {
                let (key, value) = record?;
                n += 1;
                if !count {
                    writeln!(out, "{}\t{}", target.encode(&key), target.encode(&value))?;
                }
            }
            if count {
                writeln!(out, "{n}")?;
            }
        }
        Command::Load {
            target,
            records,
            value_size,
            batch,
            seed,
            create,
        } => {
            load(
                &env,
                &target,
                &create,
                records,
                value_size,
                batch.max(1),
                seed,
                &mut out,
            )?;
        }
        Command::Header { file } => return header(&env, &file, &mut out),
        Command::Checksum { file } => return checksum(&env, &file, &mut out),
        Command::Check { dir } => {
            let options = DatabaseOptions {
                read_only: true,
                ..DatabaseOptions::default()
            };
            let mut db = Database::open(&env, &dir.join(DATABASE_FILE), &options)?;
            let report = db.check_integrity()?;
            writeln!(
                out,
                "{}: sound; {} pages, {} free",
                dir.join(DATABASE_FILE).display(),
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
    }
    Ok(ExitCode::SUCCESS)
}

impl Target {
    fn options(&self, read_only: bool) -> DatabaseOptions {
        DatabaseOptions {
            cache_size: self.cache_mib.max(1) * 1024 * 1024,
            read_only,
            ..DatabaseOptions::default()
        }
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

fn open(env: &Env, target: &Target, read_only: bool) -> Result<(Database, Table), JetError> {
    let db = Database::open(
        env,
        &target.dir.join(DATABASE_FILE),
        &target.options(read_only),
    )?;
    let table = db.open_table(&target.table)?;
    Ok((db, table))
}

fn open_or_create(
    env: &Env,
    target: &Target,
    create: &CreateOptions,
) -> Result<(Database, Table), JetError> {
    let path = target.dir.join(DATABASE_FILE);
    let exists = env
        .vfs
        .exists(&path)
        .map_err(|err| JetError::io(format!("look up {}", path.display()), &err))?;
    let mut db = if exists {
        Database::open(env, &path, &target.options(false))?
    } else {
        env.vfs
            .create_dir_all(&target.dir)
            .map_err(|err| JetError::io(format!("create {}", target.dir.display()), &err))?;
        let options = DatabaseOptions {
            page_size: create.page_size,
            ..target.options(false)
        };
        Database::create(env, &path, &options)?
    };
    let table = match db.open_table(&target.table) {
        Ok(table) => table,
        Err(err) if err.kind() == ErrorKind::ObjectNotFound => db.create_table(&target.table)?,
        Err(err) => return Err(err),
    };
    Ok((db, table))
}

#[allow(clippy::too_many_arguments)]
fn load(
    env: &Env,
    target: &Target,
    create: &CreateOptions,
    records: u64,
    value_size: usize,
    batch: u64,
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
    let (mut db, table) = open_or_create(env, target, create)?;
    let clock = SystemClock;
    let started = clock.monotonic_nanos();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut key = [0u8; 24];
    let mut value = vec![0u8; value_size];
    for i in 1..=records {
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut value);
        db.put(table, &key, &value)?;
        if i.is_multiple_of(batch) {
            db.flush()?;
        }
    }
    db.flush()?;
    let pages = db.header().page_count;
    let page_size = db.page_size();
    db.close()?;
    let seconds = (clock.monotonic_nanos() - started) as f64 / 1e9;
    writeln!(
        out,
        "loaded {records} records of {value_size} bytes in {seconds:.3} s: {:.0} records/s; {} now holds {pages} pages ({:.1} MiB)",
        records as f64 / seconds.max(1e-9),
        target.dir.join(DATABASE_FILE).display(),
        f64::from(pages) * page_size as f64 / (1024.0 * 1024.0),
    )?;
    Ok(())
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
}
