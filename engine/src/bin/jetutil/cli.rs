//! The command line: the clap `Cli` and its `Command`s, the flags the commands share (where
//! an instance's files are, its tuning, the table a command works on), and `--max-rate`'s
//! parser.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use jetdb::limits;
use jetdb::log as jetlog;

/// The command line: one command and its flags.
#[derive(Parser)]
#[command(
    name = "jetutil",
    version,
    about = "Inspect and change jetdb instances (our eseutil)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands, each with its flags; the doc comments are their help.
#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// List every commit record too: its log position, sequence number and time (the
        /// points `restore --until-lgpos` and `--until-time` take).
        #[arg(long)]
        commits: bool,
    },
    /// Run crash recovery (soft recovery), report what it replayed and undid, and shut down
    /// cleanly.
    Recover {
        #[command(flatten)]
        instance: InstanceFlags,
    },
    /// Back up an instance (JetBackup): a full backup into DEST, an incremental one
    /// added to the backup set in DEST, or, without --to, only the truncation of the logs no
    /// backup and no recovery needs; or, with --stream, a full backup as one stream on stdout.
    /// Prints each step and a summary (on stderr with --stream).
    Backup {
        #[command(flatten)]
        instance: InstanceFlags,
        /// The backup directory (without it, nothing is copied: the logs are truncated).
        #[arg(long, value_name = "DEST")]
        to: Option<PathBuf>,
        /// Write a full backup to stdout as one self-describing stream (`> inst.jbk`, or
        /// `| zstd | aws s3 cp - …`), through the external backup API; `restore -` reads it
        /// back. A copy backup: no log is truncated, and no incremental follows it.
        #[arg(long, conflicts_with_all = ["to", "incremental", "atomic", "create_path", "max_rate"])]
        stream: bool,
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
        /// The backup directory, or `-` for a backup stream on stdin (`backup --stream`),
        /// checked as it is read.
        backup: PathBuf,
        /// Where a stream is unpacked before it is restored: a new directory, removed
        /// afterwards (default: `.jetdb-stream` inside DIR).
        #[arg(long, value_name = "STAGING_DIR")]
        staging: Option<PathBuf>,
        /// The instance directory to restore into, created if missing; it must hold no
        /// database, log or checkpoint.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Restore the full backup and only its first K incremental backups (0: the full
        /// backup alone), landing on that backup's point.
        #[arg(long, value_name = "K")]
        incrementals: Option<usize>,
        /// Stop at the last commit whose record begins at or before this log position:
        /// GEN:OFFSET in hex, as `logs --commits` and the restore summary print it
        /// (`(00000004,0000E076)` is taken too).
        #[arg(long, value_name = "GEN:OFFSET", value_parser = parse_lgpos, conflicts_with = "until_time")]
        until_lgpos: Option<jetdb::Lgpos>,
        /// Stop at the last commit at or before this time (RFC 3339, e.g.
        /// 2026-12-04T19:30:00.123Z): replay stops before the first commit stamped later.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until_time: Option<u64>,
        /// Roll forward: after the backup's logs, replay the live instance's log files in
        /// LIVE_LOG_DIR (the generations after the backup's last, then its edb.log) to the
        /// last durable commit they hold, or to --until-*.
        #[arg(long, value_name = "LIVE_LOG_DIR", conflicts_with = "incrementals")]
        roll_forward: Option<PathBuf>,
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
pub(crate) struct PathFlags {
    /// Where the logs go (JET_paramLogFilePath), if not the instance directory.
    #[arg(long)]
    pub(crate) log_dir: Option<PathBuf>,
    /// Where the checkpoint goes (JET_paramSystemPath), if not the instance directory.
    #[arg(long)]
    pub(crate) system_dir: Option<PathBuf>,
    /// The base name of the log and checkpoint files (JET_paramBaseName).
    #[arg(long, default_value = "edb")]
    pub(crate) base_name: String,
}

/// Where an instance's files are.
#[derive(Args)]
pub(crate) struct InstanceFiles {
    /// The instance directory.
    pub(crate) dir: PathBuf,
    #[command(flatten)]
    pub(crate) paths: PathFlags,
}

impl InstanceFiles {
    /// Where the logs are: `--log-dir`, or else the instance directory.
    pub(crate) fn log_dir(&self) -> &Path {
        self.paths.log_dir.as_deref().unwrap_or(&self.dir)
    }

    /// Where the checkpoint is: `--system-dir`, or else the instance directory.
    pub(crate) fn system_dir(&self) -> &Path {
        self.paths.system_dir.as_deref().unwrap_or(&self.dir)
    }
}

/// The instance parameters besides its paths.
#[derive(Args)]
pub(crate) struct TuningFlags {
    /// The size of each log file in KiB (JET_paramLogFileSize).
    #[arg(long, default_value_t = jetlog::LOG_FILE_SIZE_DEFAULT / 1024)]
    pub(crate) log_file_size: u64,
    /// Delete the log generations the checkpoint has passed (JET_paramCircularLog).
    #[arg(long)]
    pub(crate) circular_log: bool,
    /// No write-ahead log (JET_paramRecovery off): a crash leaves the database dirty.
    #[arg(long)]
    pub(crate) no_logging: bool,
    /// The page cache size in MiB (JET_paramCacheSizeMax).
    #[arg(long, default_value_t = 64)]
    pub(crate) cache_mib: usize,
    /// The page size of a new database, in bytes (JET_paramDatabasePageSize).
    #[arg(long, default_value_t = limits::PAGE_SIZE_DEFAULT)]
    pub(crate) page_size: usize,
}

/// The instance parameters, as flags every command that opens an instance accepts.
#[derive(Args)]
pub(crate) struct InstanceFlags {
    #[command(flatten)]
    pub(crate) files: InstanceFiles,
    #[command(flatten)]
    pub(crate) tuning: TuningFlags,
}

/// The table a record command works on, and how its keys and values are written.
#[derive(Args)]
pub(crate) struct Target {
    #[command(flatten)]
    pub(crate) instance: InstanceFlags,
    /// The table.
    #[arg(long, default_value = "default")]
    pub(crate) table: String,
    /// Keys and values are given and printed as hexadecimal.
    #[arg(long)]
    pub(crate) hex: bool,
}

/// A rate for `--max-rate`: bytes a second, with an optional unit K, M or G (powers of 1024;
/// `KiB`, `MiB`, `GiB` and a trailing `/s` are accepted too).
pub(crate) fn parse_rate(text: &str) -> Result<NonZeroU64, String> {
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

/// A log position as `restore --until-lgpos` takes it: `GEN:OFFSET` in hex (an optional `0x`
/// on each), or the way positions are printed, `(GEN,OFFSET)`.
pub(crate) fn parse_lgpos(text: &str) -> Result<jetdb::Lgpos, String> {
    let inner = text.trim().trim_start_matches('(').trim_end_matches(')');
    let (generation, offset) = inner
        .split_once([':', ','])
        .ok_or_else(|| format!("{text:?} is not GEN:OFFSET"))?;
    let hex = |part: &str, what: &str| {
        let digits = part.trim();
        let digits = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits);
        u32::from_str_radix(digits, 16)
            .map_err(|_| format!("{what} {part:?} is not a 32-bit hexadecimal number"))
    };
    Ok(jetdb::Lgpos {
        generation: hex(generation, "the generation")?,
        offset: hex(offset, "the offset")?,
    })
}

/// An RFC 3339 time (`2026-12-04T19:30:00.123Z`, or with an offset) as milliseconds since
/// the Unix epoch, the unit commit records are stamped in.
pub(crate) fn parse_time(text: &str) -> Result<u64, String> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim())
        .map_err(|err| format!("{text:?} is not an RFC 3339 time ({err})"))?;
    u64::try_from(time.timestamp_millis()).map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn log_positions_parse_as_printed_or_as_gen_colon_offset() {
        let at = jetdb::Lgpos {
            generation: 4,
            offset: 0xE076,
        };
        for text in [
            "4:E076",
            "0x4:0xe076",
            "(00000004,0000E076)",
            &at.to_string(),
        ] {
            assert_eq!(parse_lgpos(text), Ok(at), "{text}");
        }
        for bad in ["4", "4:", "G:1", "1:100000000", ""] {
            assert!(parse_lgpos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_as_rfc_3339_with_their_offset() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(
            parse_time("2026-12-04T19:30:00.123Z"),
            parse_time("2026-12-04T20:30:00.123+01:00")
        );
        assert_eq!(
            parse_time("2026-11-29T21:19:27.123Z"),
            Ok(1_795_987_167_123)
        );
        for bad in ["yesterday", "2026-12-04", "1969-12-31T23:59:59Z"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
