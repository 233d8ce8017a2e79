//! The trace of a run: every event and every disk operation folded into one rolling hash, so
//! that two runs of the same seed can be compared byte for byte, and optionally kept as text
//! to print (`--trace`) or to name the first place two runs diverge.

use std::fmt;

use crate::timeline::Timeline;

/// A small, fast, deterministic 64-bit hash (FxHash's mixing step over words).
#[derive(Clone, Copy, Debug)]
pub struct Hasher(u64);

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher {
    /// Mixes in one word.
    pub fn u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    /// Mixes in bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.u64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.u64(u64::from_le_bytes(last) ^ (bytes.len() as u64) << 56);
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// What a trace keeps besides its hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// The hash only: campaigns.
    #[default]
    Hash,
    /// Every event as text, I/O included: for finding where two runs diverge.
    Everything,
    /// Events as text, I/O left out: for `--trace`.
    Events,
}

/// The trace of one run.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    hash: Hasher,
    keep: Keep,
    /// The kept lines, each with the hash after it.
    lines: Vec<(String, u64)>,
    /// How many entries were folded in.
    count: u64,
    /// Print events to standard error as they happen.
    echo: bool,
    /// The step under way: its kept line's index, and the lines echoed since it began (held
    /// until its outcome is known, so the step prints first, with its outcome on its line).
    open_step: Option<(Option<usize>, Vec<String>)>,
    /// The run's timeline, if asked for: a side channel, never folded into the hash (asking
    /// for it must not change the run it shows).
    timeline: Option<Box<Timeline>>,
}

impl Trace {
    /// A trace keeping `keep`, printing events as they happen if `echo`.
    pub fn new(keep: Keep, echo: bool) -> Trace {
        Trace {
            keep,
            echo,
            ..Trace::default()
        }
    }

    /// Starts recording a [`Timeline`] beside the trace.
    pub fn record_timeline(&mut self) {
        self.timeline = Some(Box::new(Timeline::new()));
    }

    /// The timeline being recorded, if one is.
    pub fn timeline(&mut self) -> Option<&mut Timeline> {
        self.timeline.as_deref_mut()
    }

    /// Takes the recorded timeline out.
    pub fn take_timeline(&mut self) -> Option<Timeline> {
        self.timeline.take().map(|t| *t)
    }

    /// Records an event of the run.
    pub fn event(&mut self, what: fmt::Arguments<'_>) {
        self.count += 1;
        let text = what.to_string();
        self.hash.bytes(text.as_bytes());
        if let Some(timeline) = &mut self.timeline {
            timeline.event_text(&text);
        }
        if self.echo {
            self.echo_line(format!("  {text}"));
        }
        if self.keep != Keep::Hash {
            self.lines.push((text, self.hash.finish()));
        }
    }

    /// Records the start of a plan step. Its outcome, given to [`Trace::end_step`], is
    /// appended to the same line; what happens during the step follows it.
    pub fn begin_step(&mut self, what: fmt::Arguments<'_>) {
        self.end_step("unfinished");
        // Held from here: the step's own line first.
        self.open_step = Some((None, Vec::new()));
        // (The timeline keeps the step itself, not as one of its events.)
        let timeline = self.timeline.take();
        self.event(what);
        self.timeline = timeline;
        if self.keep != Keep::Hash
            && let Some((index, _)) = &mut self.open_step
        {
            *index = Some(self.lines.len() - 1);
        }
    }

    /// Records the outcome of the step under way (`ok`, the value read, the error's name and
    /// code) on its line, and releases what was held for echoing.
    pub fn end_step(&mut self, outcome: &str) {
        let Some((index, held)) = self.open_step.take() else {
            return;
        };
        self.count += 1;
        self.hash.bytes(outcome.as_bytes());
        if let Some(i) = index {
            let line = &mut self.lines[i];
            line.0 = format!("{} → {outcome}", line.0);
        }
        for (n, line) in held.into_iter().enumerate() {
            if n == 0 {
                eprintln!("{line} → {outcome}");
            } else {
                eprintln!("{line}");
            }
        }
    }

    /// Prints a line now, or holds it while a step is under way.
    fn echo_line(&mut self, line: String) {
        match &mut self.open_step {
            Some((_, held)) => held.push(line),
            None => eprintln!("{line}"),
        }
    }

    /// Records a disk operation: `op` names it; the rest are its arguments and a checksum of
    /// the data written. Cheap: no text unless everything is kept.
    pub fn io(&mut self, op: u8, ino: u64, offset: u64, len: u64, crc: u32) {
        self.count += 1;
        self.hash.u64(u64::from(op) << 56 ^ ino);
        self.hash.u64(offset);
        self.hash.u64(len << 32 ^ u64::from(crc));
        if self.keep == Keep::Everything {
            let name = match op {
                b'c' => "create",
                b'u' => "unlink",
                b'r' => "rename",
                b'w' => "write",
                b's' => "fsync",
                b'D' => "dirsync",
                b'l' => "set_len",
                _ => "io",
            };
            let text = format!("io {name} inode {ino} offset {offset} len {len} crc {crc:08x}");
            if self.echo {
                self.echo_line(format!("    {text}"));
            }
            self.lines.push((text, self.hash.finish()));
        }
    }

    /// The hash of everything recorded so far.
    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    /// How many entries were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The kept lines with the hash after each.
    pub fn lines(&self) -> &[(String, u64)] {
        &self.lines
    }
}

/// Where two kept traces first differ: the index and each side's line (`None` past its end).
pub fn first_divergence(a: &Trace, b: &Trace) -> Option<(usize, Option<String>, Option<String>)> {
    let n = a.lines.len().max(b.lines.len());
    (0..n).find_map(|i| {
        let (x, y) = (a.lines.get(i), b.lines.get(i));
        let same = matches!((x, y), (Some(x), Some(y)) if x == y);
        (!same).then(|| (i, x.map(|l| l.0.clone()), y.map(|l| l.0.clone())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_every_entry_and_its_order() {
        let mut a = Trace::new(Keep::Everything, false);
        let mut b = Trace::new(Keep::Everything, false);
        a.event(format_args!("one"));
        a.io(b'w', 1, 0, 4096, 7);
        b.io(b'w', 1, 0, 4096, 7);
        b.event(format_args!("one"));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(first_divergence(&a, &b).map(|d| d.0), Some(0));
        let mut c = Trace::new(Keep::Everything, false);
        c.event(format_args!("one"));
        c.io(b'w', 1, 0, 4096, 8);
        assert_ne!(a.hash(), c.hash());
        let d = first_divergence(&a, &c).expect("they differ");
        assert_eq!(d.0, 1);
        assert!(d.1.unwrap().contains("crc 00000007"));
    }
}
