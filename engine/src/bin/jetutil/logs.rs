//! The commands on an instance's logs: `logs` lists them (like eseutil /ml), `recover` replays
//! them (soft recovery, like eseutil /r).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use jetdb::log::{self as jetlog, LogTail};
use jetdb::{Env, JetError};

use crate::Failure;
use crate::cli::InstanceFlags;
use crate::format::utc;

/// `logs`: lists the checkpoint and the log files of `log_dir` with a verdict for each; exits 1
/// if any is damaged or out of sequence.
pub(crate) fn logs(
    env: &Env,
    log_dir: &Path,
    system_dir: &Path,
    base: &str,
    list_commits: bool,
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
        if list_commits {
            for (at, c) in commit_records(env, &path)? {
                writeln!(out, "  commit {} at {at}, {}", c.sequence, utc(c.millis))?;
            }
        }
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

/// The commit records of the log file at `path`, each with where it begins, read a piece at
/// a time.
fn commit_records(
    env: &Env,
    path: &Path,
) -> Result<Vec<(jetdb::Lgpos, jetlog::CommitRecord)>, JetError> {
    const PIECE: usize = 1024 * 1024;
    let file = env
        .vfs
        .open(path, jetdb::OpenMode::Read)
        .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
    let len = file
        .len()
        .map_err(|err| JetError::io(format!("size of {}", path.display()), &err))?;
    let mut scanner = jetlog::LogScanner::keeping_commits(&path.display().to_string());
    let (mut out, mut buf, mut at) = (Vec::new(), vec![0u8; PIECE], 0u64);
    while at < len {
        let n = (len - at).min(PIECE as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)
            .map_err(|err| JetError::io(format!("read {}", path.display()), &err))?;
        scanner.feed(&buf[..n])?;
        scanner.take_commits(&mut out);
        at += n as u64;
    }
    Ok(out)
}

/// `recover`: runs soft recovery by starting the instance, prints what it replayed and undid,
/// and shuts down cleanly.
pub(crate) fn recover(
    env: &Env,
    flags: &InstanceFlags,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let instance = flags.start(env, false)?;
    let report = instance.recovery_report()?;
    instance.term()?;
    match report {
        Some(r) => print_recovery(&r, out)?,
        None => writeln!(out, "logging is off: there is nothing to recover")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What recovery did: where it started and ended, what it replayed and undid.
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
