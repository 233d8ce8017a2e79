//! `jetutil`: jetdb's command-line tool, our eseutil. It works on an instance directory
//! holding the database `DIR/data.edb`, its logs `DIR/edb*.log` and its checkpoint
//! `DIR/edb.chk`, through the real file system. Every command that opens the instance runs
//! crash recovery first if the last shutdown was not clean, and shuts it down cleanly after.
//!
//! `backup` and `restore` print every event of the operation on stdout as it happens, then a
//! summary (on stderr for `backup --stream`, whose stdout is the stream); a progress bar goes
//! to stderr when stderr is a terminal. `verify` (and
//! `backup-info`) print every problem of a backup directory on stdout, one a line, then a
//! summary, with exit status 1 if there is any. Errors go to stderr as the ESE error's name,
//! code and message, with exit status 1.

mod backup;
mod cli;
mod data;
mod database;
mod format;
mod instance;
mod logs;
mod progress;
mod restore;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use jetdb::{Env, JetError, RestoreOptions, RestorePoint};

use crate::cli::{Cli, Command};

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

/// Why a command failed: an engine error, or stdout could not be written (which `main` reports
/// apart, as a closed pipe is not an error).
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

/// Runs one command; each is a function in the module named after what it works on.
fn run(command: Command) -> Result<ExitCode, Failure> {
    let env = Env::os();
    let mut out = io::stdout().lock();
    match command {
        Command::Put {
            target,
            key,
            value,
            lazy,
        } => data::put(&env, &target, &key, &value, lazy),
        Command::Get { target, key } => data::get(&env, &target, &key, &mut out),
        Command::Del { target, key, lazy } => data::del(&env, &target, &key, lazy),
        Command::Scan {
            target,
            count,
            from,
            to,
            limit,
            reverse,
        } => data::scan(&env, &target, count, from, to, limit, reverse, &mut out),
        Command::Load {
            target,
            records,
            value_size,
            batch,
            lazy,
            seed,
        } => data::load(
            &env, &target, records, value_size, batch, lazy, seed, &mut out,
        ),
        Command::Header { file } => database::header(&env, &file, &mut out),
        Command::Checksum { file } => database::checksum(&env, &file, &mut out),
        Command::Check { instance } => database::check(&env, &instance, &mut out),
        Command::Logs { files, commits } => logs::logs(
            &env,
            files.log_dir(),
            files.system_dir(),
            &files.paths.base_name,
            commits,
            &mut out,
        ),
        Command::Recover { instance } => logs::recover(&env, &instance, &mut out),
        Command::Backup {
            instance,
            stream: true,
            ..
        } => backup::stream(&env, &instance, &mut out),
        Command::Backup {
            instance,
            stream: false,
            to,
            incremental,
            atomic,
            create_path,
            max_rate,
        } => backup::backup(
            &env,
            &instance,
            to.as_deref(),
            incremental,
            atomic,
            create_path,
            max_rate,
            &mut out,
        ),
        Command::Restore {
            backup,
            staging,
            to,
            incrementals,
            until_lgpos,
            until_time,
            roll_forward,
            create_path: _,
            paths,
            tuning,
        } => {
            let until = until_lgpos
                .map(RestorePoint::Lgpos)
                .or(until_time.map(RestorePoint::Time));
            let options = RestoreOptions {
                backups: incrementals,
                until,
                roll_forward,
            };
            let from = if backup.as_os_str() == "-" {
                restore::BackupSource::Stdin { staging }
            } else {
                restore::BackupSource::Dir(&backup)
            };
            restore::restore(&env, from, to, &options, paths, &tuning, &mut out)
        }
        Command::BackupInfo { backup } => backup::backup_info(&env, &backup, &mut out),
        Command::Verify { backup } => backup::verify(&env, &backup, &mut out),
    }
}
