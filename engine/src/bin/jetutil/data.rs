//! The commands on a table's records: `put`, `get`, `del`, `scan` and `load`; and how keys and
//! values are read from the command line and printed.

use std::io::Write;
use std::ops::Bound;
use std::process::ExitCode;

use jetdb::{Clock, CommitMode, Env, ErrorKind, JetError, SystemClock, limits};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Failure;
use crate::cli::Target;
use crate::instance::DATABASE_FILE;

/// `put`: stores `value` under `key` in one transaction, creating the instance and the table
/// if absent.
pub(crate) fn put(
    env: &Env,
    target: &Target,
    key: &str,
    value: &str,
    lazy: bool,
) -> Result<ExitCode, Failure> {
    let key = target.decode(key)?;
    let value = target.decode(value)?;
    let (instance, mut session, table) = target.open(env, true)?;
    session.begin_transaction()?;
    session.put(table, &key, &value)?;
    session.commit_transaction(mode(lazy))?;
    drop(session);
    instance.term()?;
    Ok(ExitCode::SUCCESS)
}

/// `get`: prints the value stored under `key`.
pub(crate) fn get(
    env: &Env,
    target: &Target,
    key: &str,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let key = target.decode(key)?;
    let (instance, mut session, table) = target.open(env, false)?;
    session.begin_transaction()?;
    let found = session.get(table, &key)?;
    session.rollback()?;
    drop(session);
    instance.term()?;
    match found {
        Some(value) => writeln!(out, "{}", target.encode(&value))?,
        None => return Err(not_found(target, &key).into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `del`: deletes `key` in one transaction.
pub(crate) fn del(env: &Env, target: &Target, key: &str, lazy: bool) -> Result<ExitCode, Failure> {
    let key = target.decode(key)?;
    let (instance, mut session, table) = target.open(env, false)?;
    session.begin_transaction()?;
    let found = session.delete(table, &key)?;
    session.commit_transaction(mode(lazy))?;
    drop(session);
    instance.term()?;
    if !found {
        return Err(not_found(target, &key).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// `scan`: prints the records from `from` (inclusive) to `to` (exclusive) in key order, or
/// only their number.
#[allow(clippy::too_many_arguments)] // one argument per flag of the command
pub(crate) fn scan(
    env: &Env,
    target: &Target,
    count: bool,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u64>,
    reverse: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let from = from.map(|k| target.decode(&k)).transpose()?;
    let to = to.map(|k| target.decode(&k)).transpose()?;
    let (instance, mut session, table) = target.open(env, false)?;
    let range = (
        from.as_deref().map_or(Bound::Unbounded, Bound::Included),
        to.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
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
    Ok(ExitCode::SUCCESS)
}

/// `load`: adds `records` random records in transactions of `batch` puts and prints the rate.
#[allow(clippy::too_many_arguments)] // one argument per flag of the command
pub(crate) fn load(
    env: &Env,
    target: &Target,
    records: u64,
    value_size: usize,
    batch: u64,
    lazy: bool,
    seed: u64,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    // A batch of no puts would never finish the load.
    let batch = batch.max(1);
    let mode = mode(lazy);
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
    Ok(ExitCode::SUCCESS)
}

/// The commit mode `--lazy` asks for.
fn mode(lazy: bool) -> CommitMode {
    if lazy {
        CommitMode::Lazy
    } else {
        CommitMode::Durable
    }
}

/// The error of `get` or `del` when the key is not in the table.
fn not_found(target: &Target, key: &[u8]) -> JetError {
    JetError::new(
        ErrorKind::RecordNotFound,
        format!("no key {}", target.encode(key)),
    )
}

impl Target {
    /// A key or value from the command line as bytes: as it is, or from hexadecimal (`--hex`).
    pub(crate) fn decode(&self, text: &str) -> Result<Vec<u8>, JetError> {
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

    /// Bytes to print: as hexadecimal (`--hex`), or else escaped where not printable.
    pub(crate) fn encode(&self, bytes: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_text_and_escapes_bytes() {
        assert_eq!(escape(b"ab c"), "ab c");
        assert_eq!(escape(b"a\\b\x00\xff\n"), "a\\\\b\\x00\\xff\\x0a");
    }
}
