//! The trace of a run: every event and every disk operation folded into one rolling hash, so
//! that two runs of the same seed can be compared byte for byte, and optionally kept as text
//! to print (`--trace`) or to name the first place two runs diverge.

use std::fmt;

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

    /// Records an event of the run.
    pub fn event(&mut self, what: fmt::Arguments<'_>) {
        self.count += 1;
        let text = what.to_string();
        self.hash.bytes(text.as_bytes());
        if self.echo {
            eprintln!("  {text}");
        }
        if self.keep != Keep::Hash {
            self.lines.push((text, self.hash.finish()));
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
                eprintln!("    {text}");
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
