//! The timeline of a run: what happened, lane by lane, over the run's steps — each session's
//! transactions, the instance's crashes, power losses, recoveries, checkpoints and log rolls,
//! each backup directory's backups and restores, the faults armed and fired, and the
//! violation with the model's value beside the engine's — rendered as one self-contained
//! HTML page ([`html::render`]) for `jetsim run --timeline`.
//!
//! It is recorded structurally, by calls at the points that matter in the run and the disk,
//! not by parsing the trace's text; and it is a side channel of the [`Trace`](crate::trace::Trace):
//! never folded into the trace hash, so asking for it changes no run.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::oracle::{Oracle, Violation};

pub mod html;

/// A row of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Lane {
    /// A session's transactions: begun, committed durably or lazily, rolled back, lost.
    Session(usize),
    /// The instance: crashes, power losses, restarts, recoveries, checkpoints, log rolls.
    Instance,
    /// Faults armed by steps and fired by the disk.
    Faults,
    /// A backup directory (`bkN`): its backups from begin to end, its restores.
    Backup(usize),
    /// External backups (the instance's files read by a caller).
    External,
    /// Stream backups (a set written through a stream and restored from it).
    Stream,
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lane::Session(s) => write!(f, "session {s}"),
            Lane::Instance => f.write_str("instance"),
            Lane::Faults => f.write_str("faults"),
            Lane::Backup(d) => write!(f, "bk{d}"),
            Lane::External => f.write_str("external backup"),
            Lane::Stream => f.write_str("stream backup"),
        }
    }
}

impl From<Lane> for String {
    fn from(lane: Lane) -> String {
        lane.to_string()
    }
}

impl TryFrom<String> for Lane {
    type Error = String;

    fn try_from(text: String) -> Result<Lane, String> {
        let bad = || format!("no lane is named {text:?}");
        Ok(match text.as_str() {
            "instance" => Lane::Instance,
            "faults" => Lane::Faults,
            "external backup" => Lane::External,
            "stream backup" => Lane::Stream,
            _ => {
                if let Some(n) = text.strip_prefix("session ") {
                    Lane::Session(n.parse().map_err(|_| bad())?)
                } else if let Some(n) = text.strip_prefix("bk") {
                    Lane::Backup(n.parse().map_err(|_| bad())?)
                } else {
                    return Err(bad());
                }
            }
        })
    }
}

/// One step of the plan (or the final phase, numbered the plan's length).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Its index in the plan.
    pub index: usize,
    /// Simulated milliseconds when it began.
    pub millis: u64,
    /// The step as the plan holds it.
    pub label: String,
    /// What it returned (`ok`, the error's name and code, `VIOLATION of …`).
    pub outcome: String,
    /// What happened during it, as the trace tells it (for reading; nothing is parsed).
    pub events: Vec<String>,
}

/// Something with a duration: a transaction, a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Its row.
    pub lane: Lane,
    /// A short name (`tx`, `Full backup`…).
    pub label: String,
    /// The step it began at, and the one it ended at (inclusive).
    pub begin_step: usize,
    /// The step it ended at.
    pub end_step: usize,
    /// Simulated milliseconds at its begin.
    pub begin_millis: u64,
    /// Simulated milliseconds at its end.
    pub end_millis: u64,
    /// How it ended (`committed durably`, `failed: …`, `lost in a crash`…).
    pub outcome: String,
    /// Its style: `ok`, `lazy`, `rolled-back`, `fail`, `lost`, `open`; a backup's
    /// `backup-ok`, `backup-fail`, or `backup-kept` (the machine crashed in it, yet the
    /// restart found it complete).
    pub class: String,
    /// More about it, a line each (its begin's facts, its end's).
    pub detail: Vec<String>,
}

/// Something that happened at one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Its row.
    pub lane: Lane,
    /// The step it happened during.
    pub step: usize,
    /// Simulated milliseconds when it was recorded.
    pub millis: u64,
    /// What kind of thing it is (its glyph and colour): `crash`, `power-loss`, `restart`,
    /// `recovery`, `checkpoint`, `log-roll`, `fault-armed`, `fault-fired`, `commit`,
    /// `conflict`, `restore`, `restore-refused`, `backup-lost`, `tamper`, `corrupt`, `truncate`, `step`,
    /// `violation`.
    pub kind: String,
    /// A short name.
    pub label: String,
    /// More about it, a line each.
    pub detail: Vec<String>,
}

/// The broken promise, placed on the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationRecord {
    /// The violation as the oracle reported it.
    pub violation: Violation,
    /// The row it is drawn in: the lane something last happened in at its step.
    pub lane: Lane,
}

/// The timeline of one run, and its recorder (every `pub fn` taking `&mut self` records).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// What ran: `seed 7`, a plan file's name.
    pub title: String,
    /// The run's configuration, as it prints.
    pub config: String,
    /// Every step, in order, with its outcome.
    pub steps: Vec<StepRecord>,
    /// The lanes used, in display order.
    pub lanes: Vec<Lane>,
    /// Everything with a duration.
    pub spans: Vec<Span>,
    /// Everything at a point.
    pub marks: Vec<Mark>,
    /// The violation, if any.
    pub violation: Option<ViolationRecord>,
    /// Events before the first step (setup).
    pub setup_events: Vec<String>,
    /// Spans begun and not ended: their index in `spans`, by lane.
    #[serde(skip)]
    open: BTreeMap<Lane, usize>,
    /// Simulated milliseconds now, as last told.
    #[serde(skip)]
    now: u64,
}

impl Timeline {
    /// An empty timeline, to record into.
    pub fn new() -> Timeline {
        Timeline {
            lanes: vec![Lane::Instance],
            ..Timeline::default()
        }
    }

    /// The simulated clock now: what later records are stamped with.
    pub fn set_now(&mut self, millis: u64) {
        self.now = millis;
    }

    /// The step under way (the last begun), or 0 before any.
    fn step(&self) -> usize {
        self.steps.last().map_or(0, |s| s.index)
    }

    fn use_lane(&mut self, lane: Lane) {
        if let Err(at) = self.lanes.binary_search(&lane) {
            self.lanes.insert(at, lane);
        }
    }

    /// A step begins.
    pub fn begin_step(&mut self, index: usize, label: String) {
        self.steps.push(StepRecord {
            index,
            millis: self.now,
            label,
            outcome: "unfinished".into(),
            events: Vec::new(),
        });
    }

    /// The step under way ended with `outcome`.
    pub fn end_step(&mut self, outcome: &str) {
        if let Some(step) = self.steps.last_mut() {
            step.outcome = outcome.to_owned();
        }
    }

    /// An event's text, as the trace records it: kept with the step under way.
    pub fn event_text(&mut self, text: &str) {
        match self.steps.last_mut() {
            Some(step) => step.events.push(text.to_owned()),
            None => self.setup_events.push(text.to_owned()),
        }
    }

    /// Something happened in `lane` at the step under way.
    pub fn mark(&mut self, lane: Lane, kind: &str, label: impl Into<String>, detail: Vec<String>) {
        self.use_lane(lane);
        self.marks.push(Mark {
            lane,
            step: self.step(),
            millis: self.now,
            kind: kind.to_owned(),
            label: label.into(),
            detail,
        });
    }

    /// Something with a duration begins in `lane` (ending the one open there, if any, as
    /// superseded: one span at a time per lane).
    pub fn open(&mut self, lane: Lane, label: impl Into<String>, detail: Vec<String>) {
        if self.open.contains_key(&lane) {
            self.close(lane, "superseded", "lost", Vec::new());
        }
        self.use_lane(lane);
        self.open.insert(lane, self.spans.len());
        self.spans.push(Span {
            lane,
            label: label.into(),
            begin_step: self.step(),
            end_step: self.step(),
            begin_millis: self.now,
            end_millis: self.now,
            outcome: "still open at the end".into(),
            class: "open".into(),
            detail,
        });
    }

    /// Whether a span is open in `lane`.
    pub fn is_open(&self, lane: Lane) -> bool {
        self.open.contains_key(&lane)
    }

    /// The span open in `lane` ends, with `outcome` and style `class`; nothing if none is.
    pub fn close(
        &mut self,
        lane: Lane,
        outcome: impl Into<String>,
        class: &str,
        more: Vec<String>,
    ) {
        let Some(i) = self.open.remove(&lane) else {
            return;
        };
        let (step, now) = (self.step(), self.now);
        let span = &mut self.spans[i];
        span.end_step = step;
        span.end_millis = now;
        span.outcome = outcome.into();
        span.class = class.to_owned();
        span.detail.extend(more);
    }

    /// The last span ended in `lane` learnt how it really ended, after its end (a backup's
    /// fate is known at the restart after the crash that ended it): `more` is added to its
    /// outcome, and its style becomes `class` if given.
    pub fn retell(&mut self, lane: Lane, more: impl AsRef<str>, class: Option<&str>) {
        if self.open.contains_key(&lane) {
            return;
        }
        if let Some(span) = self.spans.iter_mut().rev().find(|s| s.lane == lane) {
            span.outcome.push_str(more.as_ref());
            if let Some(class) = class {
                span.class = class.to_owned();
            }
        }
    }

    /// Every session's open transaction ends, lost (`why`: a crash, a restart).
    pub fn sessions_lost(&mut self, why: &str) {
        let sessions: Vec<Lane> = self
            .open
            .keys()
            .copied()
            .filter(|l| matches!(l, Lane::Session(_)))
            .collect();
        for lane in sessions {
            self.close(lane, format!("lost: {why}"), "lost", Vec::new());
        }
    }

    /// The run's violation: drawn in the lane of what it judged — `session`'s, if it judged a
    /// session's read or write; else the instance for recovery's oracles, a backup directory
    /// (or the external or stream backup) for a backup's — that something happened in at its
    /// step; else the lane something last happened in then (the instance's if nothing did).
    pub fn violation(&mut self, violation: &Violation, session: Option<usize>) {
        let at = violation.step;
        if let Some(s) = session {
            let lane = Lane::Session(s);
            self.use_lane(lane);
            self.violation = Some(ViolationRecord {
                violation: violation.clone(),
                lane,
            });
            return;
        }
        let fits = |lane: &Lane| match violation.oracle {
            Oracle::CrashPrefix | Oracle::Recovery | Oracle::Integrity | Oracle::Memory => {
                *lane == Lane::Instance
            }
            Oracle::Backup | Oracle::RestorePoint | Oracle::RollForward | Oracle::Truncation => {
                matches!(lane, Lane::Backup(_))
            }
            Oracle::ExternalBackup => matches!(lane, Lane::External | Lane::Stream),
            Oracle::SnapshotRead | Oracle::WriteConflict => matches!(lane, Lane::Session(_)),
            _ => true,
        };
        // What happened at its step, latest last; a span only where it began or ended well.
        let mut touched: Vec<(u64, Lane)> = self
            .spans
            .iter()
            .filter(|s| (s.begin_step == at || s.end_step == at) && s.class != "lost")
            .map(|s| (s.end_millis, s.lane))
            .chain(
                self.marks
                    .iter()
                    .filter(|m| m.step == at)
                    .map(|m| (m.millis, m.lane)),
            )
            .collect();
        touched.sort_by_key(|(millis, _)| *millis);
        let home = match violation.oracle {
            Oracle::CrashPrefix | Oracle::Recovery | Oracle::Integrity | Oracle::Memory => {
                Some(Lane::Instance)
            }
            Oracle::ExternalBackup => Some(Lane::External),
            _ => None,
        };
        let lane = touched
            .iter()
            .rev()
            .map(|(_, lane)| *lane)
            .find(fits)
            .or(home)
            .or(touched.last().map(|(_, lane)| *lane))
            .unwrap_or(Lane::Instance);
        self.use_lane(lane);
        self.violation = Some(ViolationRecord {
            violation: violation.clone(),
            lane,
        });
    }

    /// The run ended: what is still open is drawn to the last step, and the recorder's own
    /// state is cleared (a finished timeline equals its JSON parsed back).
    pub fn finish(&mut self) {
        let (step, now) = (self.step(), self.now);
        for (_, i) in std::mem::take(&mut self.open) {
            let span = &mut self.spans[i];
            span.end_step = step;
            span.end_millis = now;
        }
        self.now = 0;
    }

    /// How many marks of `kind` there are.
    pub fn count(&self, kind: &str) -> usize {
        self.marks.iter().filter(|m| m.kind == kind).count()
    }

    /// The timeline as JSON (what the page embeds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a timeline serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_order_and_name_round_trip() {
        let mut t = Timeline::new();
        t.mark(Lane::Backup(1), "restore", "r", vec![]);
        t.mark(Lane::Session(2), "commit", "c", vec![]);
        t.mark(Lane::Faults, "fault-fired", "f", vec![]);
        assert_eq!(
            t.lanes,
            vec![
                Lane::Session(2),
                Lane::Instance,
                Lane::Faults,
                Lane::Backup(1)
            ]
        );
        for lane in [
            Lane::Session(3),
            Lane::Instance,
            Lane::Faults,
            Lane::Backup(0),
            Lane::External,
            Lane::Stream,
        ] {
            assert_eq!(Lane::try_from(lane.to_string()), Ok(lane));
        }
        assert!(Lane::try_from("bkx".to_owned()).is_err());
    }

    #[test]
    fn a_span_runs_from_its_open_to_its_close() {
        let mut t = Timeline::new();
        t.set_now(3);
        t.begin_step(0, "a".into());
        t.open(Lane::Session(0), "tx", vec![]);
        t.begin_step(1, "b".into());
        t.set_now(9);
        t.begin_step(2, "c".into());
        t.close(Lane::Session(0), "committed", "ok", vec![]);
        let span = &t.spans[0];
        assert_eq!((span.begin_step, span.end_step), (0, 2));
        assert_eq!((span.begin_millis, span.end_millis), (3, 9));
        assert_eq!(span.class, "ok");
        assert!(!t.is_open(Lane::Session(0)));
    }
}
