//! The status callback of a backup or a restore (ESE's `JET_PFNSTATUS`): Begin, Progress,
//! Complete and Fail. An error returned by the callback stops the operation cleanly.

use crate::base::error::Result;
use crate::txn::event::Operation;

/// What a status call reports (ESE's `JET_SNT`, with its values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    /// `JET_sntBegin` (5): the operation started.
    Begin = 5,
    /// `JET_sntProgress` (0): more of it is done.
    Progress = 0,
    /// `JET_sntComplete` (6): it succeeded.
    Complete = 6,
    /// `JET_sntFail` (3): it failed.
    Fail = 3,
}

/// One call of the status callback (ESE's `JET_SNPROG` with its `JET_SNP` and `JET_SNT`).
///
/// Units are bytes: `done` of `total` bytes copied. ESE reports percentages; bytes serve a
/// progress bar as well and say more. Progress is reported at least every 4 MiB copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Backup or restore.
    pub operation: Operation,
    /// Begin, Progress, Complete or Fail.
    pub kind: StatusKind,
    /// Units done.
    pub done: u64,
    /// Units in all (it may grow as the operation learns more).
    pub total: u64,
}

/// The callback: returning an error aborts the operation with that error (at Begin and
/// Progress; what it returns at Complete and Fail is ignored).
pub type StatusFn<'s> = &'s mut dyn FnMut(&Status) -> Result<()>;

/// Progress is reported at least this often (bytes).
pub const PROGRESS_EVERY: u64 = 4 * 1024 * 1024;

/// Progress is reported at least this often while copying (bytes): a progress bar moves
/// smoothly, and a slow callback costs little.
const REPORT_EVERY: u64 = 1024 * 1024;
const _: () = assert!(REPORT_EVERY <= PROGRESS_EVERY);

/// The progress of a backup or a restore, reported through its status callback.
pub(crate) struct Reporter<'s> {
    operation: Operation,
    callback: Option<StatusFn<'s>>,
    /// Bytes copied.
    pub(crate) done: u64,
    /// Bytes to copy in all.
    pub(crate) total: u64,
    reported: u64,
}

impl<'s> Reporter<'s> {
    pub(crate) fn new(operation: Operation, callback: Option<StatusFn<'s>>) -> Reporter<'s> {
        Reporter {
            operation,
            callback,
            done: 0,
            total: 0,
            reported: 0,
        }
    }

    /// Calls the callback; its error stops the operation.
    pub(crate) fn report(&mut self, kind: StatusKind) -> Result<()> {
        self.reported = self.done;
        let status = Status {
            operation: self.operation,
            kind,
            done: self.done,
            total: self.total.max(self.done),
        };
        match &mut self.callback {
            Some(callback) => callback(&status),
            None => Ok(()),
        }
    }

    /// Counts `bytes` more done, reporting Progress every MiB.
    pub(crate) fn advance(&mut self, bytes: u64) -> Result<()> {
        self.done += bytes;
        if self.done - self.reported >= REPORT_EVERY {
            self.report(StatusKind::Progress)?;
        }
        Ok(())
    }

    /// Reports Progress if anything was done since the last report (at the end of a step or a
    /// file, however small).
    pub(crate) fn catch_up(&mut self) -> Result<()> {
        if self.done > self.reported {
            self.report(StatusKind::Progress)?;
        }
        Ok(())
    }
}
