//! A transaction's write set: the puts and deletes it has made and not yet committed.
//!
//! It costs about its payload. Writes are appended as records to chunks of at most a MiB (one
//! allocation per chunk, none per write); a hash table of record handles finds a key's latest
//! write; a write to a key already written appends a new record and marks the old one
//! superseded. A commit replays the records in the order they were written, skipping superseded
//! ones, and frees each chunk once it is applied, so the set shrinks as the cache fills. Key
//! order is built only when a range read asks for it, and kept until the next write.
//!
//! ```text
//! record: table root u32, flags u8 (1 delete, 2 superseded), key length u8, value length u32,
//!         the key's hash u64 (`hash_key`), key, value
//! handle: chunk index << 32 | offset of the record in its chunk
//! ```

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::ops::Bound;

use hashbrown::HashTable;

use crate::store::page::Pgno;

/// Records are appended to chunks of at most this size (a larger record gets a chunk of its
/// own). The first chunk is small and each next one twice the last, so a one-put transaction
/// does not allocate a MiB.
const CHUNK: usize = 1024 * 1024;
const FIRST_CHUNK: usize = 1024;
const HEADER: usize = 18;
const DELETE: u8 = 1;
const SUPERSEDED: u8 = 2;

/// The writes of one transaction.
#[derive(Default)]
pub(crate) struct WriteSet {
    chunks: Vec<Vec<u8>>,
    /// The latest write to each key, by handle.
    index: HashTable<u64>,
    /// Live handles in (table, key) order, built by [`WriteSet::order`]; cleared by a write.
    sorted: Option<Vec<u64>>,
    /// The tables written, in the order first written.
    roots: Vec<Pgno>,
}

impl std::fmt::Debug for WriteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteSet")
            .field("keys", &self.index.len())
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

/// One write: its table, key, and value (`None`: a delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Write<'a> {
    pub(crate) root: Pgno,
    /// `hash_key(root, key)`, kept so that releasing the key's lock need not hash it again.
    pub(crate) hash: u64,
    pub(crate) key: &'a [u8],
    pub(crate) value: Option<&'a [u8]>,
}

/// The hash of a table's key: the write set's index and the instance's lock table both use it.
/// SipHash with fixed keys: the same in every run of one build, as determinism needs.
pub(crate) fn hash_key(root: Pgno, key: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    root.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

fn record(chunk: &[u8], at: usize) -> (Write<'_>, u8) {
    let root = u32::from_le_bytes(chunk[at..at + 4].try_into().expect("4 bytes"));
    let flags = chunk[at + 4];
    let key_len = chunk[at + 5] as usize;
    let value_len = u32::from_le_bytes(chunk[at + 6..at + 10].try_into().expect("4 bytes"));
    let hash = u64::from_le_bytes(chunk[at + 10..at + 18].try_into().expect("8 bytes"));
    let key = &chunk[at + HEADER..at + HEADER + key_len];
    let value = (flags & DELETE == 0).then(|| {
        let start = at + HEADER + key_len;
        &chunk[start..start + value_len as usize]
    });
    (
        Write {
            root,
            hash,
            key,
            value,
        },
        flags,
    )
}

fn record_len(chunk: &[u8], at: usize) -> usize {
    let key_len = chunk[at + 5] as usize;
    let value_len = u32::from_le_bytes(chunk[at + 6..at + 10].try_into().expect("4 bytes"));
    HEADER + key_len + value_len as usize
}

impl WriteSet {
    fn at(&self, handle: u64) -> (Write<'_>, u8) {
        record(
            &self.chunks[(handle >> 32) as usize],
            handle as u32 as usize,
        )
    }

    /// How many keys the set has written.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The latest write to `key` of table `root`: `Some(None)` if it deleted it.
    pub(crate) fn get(&self, root: Pgno, key: &[u8]) -> Option<Option<&[u8]>> {
        // A reading transaction's set is empty: no key to hash.
        if self.index.is_empty() {
            return None;
        }
        self.get_hashed(hash_key(root, key), root, key)
    }

    /// [`WriteSet::get`], given the key's `hash_key`.
    pub(crate) fn get_hashed(&self, hash: u64, root: Pgno, key: &[u8]) -> Option<Option<&[u8]>> {
        debug_assert_eq!(hash, hash_key(root, key));
        let &handle = self.index.find(hash, |&h| {
            let (w, _) = self.at(h);
            w.root == root && w.key == key
        })?;
        Some(self.at(handle).0.value)
    }

    /// Records a put (`Some`) or a delete (`None`) of `key` in table `root`.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, root: Pgno, key: &[u8], value: Option<&[u8]>) {
        self.insert_hashed(hash_key(root, key), root, key, value);
    }

    /// [`WriteSet::insert`], given the key's `hash_key`.
    pub(crate) fn insert_hashed(
        &mut self,
        hash: u64,
        root: Pgno,
        key: &[u8],
        value: Option<&[u8]>,
    ) {
        debug_assert_eq!(hash, hash_key(root, key));
        let key_len = u8::try_from(key.len()).expect("key length checked");
        let value_len = value.map_or(0, <[u8]>::len);
        let len = HEADER + key.len() + value_len;
        if self
            .chunks
            .last()
            .is_none_or(|c| c.capacity() - c.len() < len)
        {
            let next = self
                .chunks
                .last()
                .map_or(FIRST_CHUNK, |c| (c.capacity() * 2).min(CHUNK));
            self.chunks.push(Vec::with_capacity(next.max(len)));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = self.chunks.last_mut().expect("pushed");
        let at = chunk.len();
        chunk.extend_from_slice(&root.to_le_bytes());
        chunk.push(if value.is_some() { 0 } else { DELETE });
        chunk.push(key_len);
        chunk.extend_from_slice(
            &u32::try_from(value_len)
                .expect("value length checked")
                .to_le_bytes(),
        );
        chunk.extend_from_slice(&hash.to_le_bytes());
        chunk.extend_from_slice(key);
        chunk.extend_from_slice(value.unwrap_or_default());
        debug_assert!(chunk.len() <= chunk.capacity());
        let handle = (chunk_index as u64) << 32 | at as u64;
        let chunks = &mut self.chunks;
        let found = self.index.find_mut(hash, |&h| {
            let (w, _) = record(&chunks[(h >> 32) as usize], h as u32 as usize);
            w.root == root && w.key == key
        });
        match found {
            Some(slot) => {
                let old = std::mem::replace(slot, handle);
                chunks[(old >> 32) as usize][(old as u32 as usize) + 4] |= SUPERSEDED;
            }
            None => {
                let chunks = &self.chunks;
                self.index.insert_unique(hash, handle, |&h| {
                    record(&chunks[(h >> 32) as usize], h as u32 as usize)
                        .0
                        .hash
                });
            }
        }
        self.sorted = None;
        if self.roots.last() != Some(&root) && !self.roots.contains(&root) {
            self.roots.push(root);
        }
    }

    /// The tables written, in the order first written.
    pub(crate) fn roots(&self) -> &[Pgno] {
        &self.roots
    }

    /// Every live write, in the order written.
    pub(crate) fn for_each(&self, mut f: impl FnMut(Write<'_>)) {
        let done: Result<(), std::convert::Infallible> = self.try_for_each(|w| {
            f(w);
            Ok(())
        });
        let Ok(()) = done;
    }

    /// Every live write, in the order written, until `f`'s first error.
    pub(crate) fn try_for_each<E>(
        &self,
        mut f: impl FnMut(Write<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for chunk in &self.chunks {
            let mut at = 0;
            while at < chunk.len() {
                let (w, flags) = record(chunk, at);
                if flags & SUPERSEDED == 0 {
                    f(w)?;
                }
                at += record_len(chunk, at);
            }
        }
        Ok(())
    }

    /// Hands every live write to `f` in the order written, freeing each chunk once done with
    /// it; stops at `f`'s first error.
    pub(crate) fn drain<E>(
        mut self,
        mut f: impl FnMut(Write<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.index = HashTable::new();
        self.sorted = None;
        for chunk in std::mem::take(&mut self.chunks) {
            let mut at = 0;
            while at < chunk.len() {
                let (w, flags) = record(&chunk, at);
                if flags & SUPERSEDED == 0 {
                    f(w)?;
                }
                at += record_len(&chunk, at);
            }
        }
        Ok(())
    }

    /// Builds the key order a range read needs (kept until the next write).
    pub(crate) fn order(&mut self) {
        if self.sorted.is_some() {
            return;
        }
        let mut handles: Vec<u64> = self.index.iter().copied().collect();
        handles.sort_unstable_by(|&a, &b| self.compare(a, b));
        self.sorted = Some(handles);
    }

    fn compare(&self, a: u64, b: u64) -> Ordering {
        let (a, _) = self.at(a);
        let (b, _) = self.at(b);
        (a.root, a.key).cmp(&(b.root, b.key))
    }

    /// The writes to table `root` with keys within `start..end`, in key order (descending if
    /// `reverse`). [`WriteSet::order`] must have run since the last write.
    pub(crate) fn range<'a>(
        &'a self,
        root: Pgno,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Write<'a>> + 'a> {
        let sorted = self.sorted.as_deref().expect("ordered before a range read");
        let below = |bound: Bound<&[u8]>, strict: bool| {
            // The first handle at or after `bound` (after, if `strict`).
            sorted.partition_point(|&h| {
                let (w, _) = self.at(h);
                match bound {
                    Bound::Unbounded => w.root < root || (strict && w.root == root),
                    Bound::Included(k) | Bound::Excluded(k) => {
                        let ord = (w.root, w.key).cmp(&(root, k));
                        ord == Ordering::Less || (strict && ord == Ordering::Equal)
                    }
                }
            })
        };
        let lo = match start {
            Bound::Included(_) | Bound::Unbounded => below(start, false),
            Bound::Excluded(_) => below(start, true),
        };
        let hi = match end {
            Bound::Included(_) | Bound::Unbounded => below(end, true),
            Bound::Excluded(_) => below(end, false),
        };
        let items = sorted[lo..hi.max(lo)].iter().map(move |&h| self.at(h).0);
        if reverse {
            Box::new(items.rev())
        } else {
            Box::new(items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_write_wins_and_a_drain_sees_each_key_once_in_write_order() {
        let mut ws = WriteSet::default();
        ws.insert(3, b"b", Some(b"1"));
        ws.insert(3, b"a", Some(b"2"));
        ws.insert(4, b"a", None);
        ws.insert(3, b"b", Some(b"3"));
        assert_eq!(ws.len(), 3);
        assert_eq!(ws.get(3, b"b"), Some(Some(&b"3"[..])));
        assert_eq!(ws.get(4, b"a"), Some(None));
        assert_eq!(ws.get(4, b"b"), None);
        let mut seen = Vec::new();
        ws.drain(|w| {
            seen.push((w.root, w.key.to_vec(), w.value.map(<[u8]>::to_vec)));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (3, b"a".to_vec(), Some(b"2".to_vec())),
                (4, b"a".to_vec(), None),
                (3, b"b".to_vec(), Some(b"3".to_vec())),
            ]
        );
    }

    #[test]
    fn a_write_after_a_range_read_is_in_the_next_one() {
        let mut ws = WriteSet::default();
        ws.insert(3, b"b", Some(b"1"));
        ws.order();
        assert_eq!(
            ws.range(3, Bound::Unbounded, Bound::Unbounded, false)
                .count(),
            1
        );
        ws.insert(3, b"a", Some(b"2"));
        ws.insert(3, b"b", None);
        ws.order();
        let seen: Vec<_> = ws
            .range(3, Bound::Unbounded, Bound::Unbounded, false)
            .map(|w| (w.key.to_vec(), w.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            seen,
            [(b"a".to_vec(), Some(b"2".to_vec())), (b"b".to_vec(), None)]
        );
    }

    #[test]
    fn chunks_start_small_and_double() {
        let mut ws = WriteSet::default();
        ws.insert(3, b"k", Some(b"v"));
        assert!((FIRST_CHUNK..CHUNK).contains(&ws.chunks[0].capacity()));
        for i in 0..2000u32 {
            ws.insert(3, &i.to_be_bytes(), Some(&[0; 100]));
        }
        // (`with_capacity` may give more than asked: the bounds are one-sided.)
        let capacities: Vec<usize> = ws.chunks.iter().map(Vec::capacity).collect();
        assert!(
            capacities.windows(2).all(|w| w[1] >= (w[0] * 2).min(CHUNK)),
            "{capacities:?}"
        );
        assert!(capacities.len() < 12, "{capacities:?}");
        assert_eq!(ws.len(), 2001);
    }

    #[test]
    fn a_record_that_just_fits_stays_in_its_chunk_and_no_chunk_ever_grows() {
        let mut ws = WriteSet::default();
        let mut capacities = Vec::new();
        let mut put = |ws: &mut WriteSet, key: &[u8], len: usize| {
            // A record is its 18-byte header, its key and its value.
            let value = vec![key[0]; len - HEADER - key.len()];
            ws.insert(3, key, Some(&value));
            // A chunk keeps the allocation it was made with: a write never moves one.
            for (i, chunk) in ws.chunks.iter().enumerate() {
                if i < capacities.len() {
                    assert_eq!(chunk.capacity(), capacities[i], "chunk {i} grew");
                } else {
                    capacities.push(chunk.capacity());
                }
            }
        };
        put(&mut ws, b"a", 119);
        let room = |ws: &WriteSet| {
            let last = ws.chunks.last().unwrap();
            last.capacity() - last.len()
        };
        // Exactly the room left: the same chunk, now full.
        let exact = room(&ws);
        put(&mut ws, b"b", exact);
        assert_eq!((ws.chunks.len(), room(&ws)), (1, 0));
        // The next chunk: leave 30 bytes, then a record of 31 goes to a third.
        put(&mut ws, b"c", 119);
        assert_eq!(ws.chunks.len(), 2);
        let fill = room(&ws) - 30;
        put(&mut ws, b"d", fill);
        assert_eq!((ws.chunks.len(), room(&ws)), (2, 30));
        put(&mut ws, b"e", 31);
        assert_eq!(ws.chunks.len(), 3);
        assert_eq!(ws.chunks[1].len(), ws.chunks[1].capacity() - 30);
        for (key, len) in [
            (b"a", 119),
            (b"b", exact),
            (b"c", 119),
            (b"d", fill),
            (b"e", 31),
        ] {
            let value = vec![key[0]; len - HEADER - 1];
            assert_eq!(ws.get(3, key), Some(Some(&value[..])));
        }
    }

    #[test]
    fn each_table_is_listed_once_in_the_order_first_written() {
        let mut ws = WriteSet::default();
        for (root, key) in [
            (4, "a"),
            (3, "a"),
            (4, "b"),
            (5, "a"),
            (3, "b"),
            (3, "c"),
            (4, "a"),
        ] {
            ws.insert(root, key.as_bytes(), Some(b"v"));
        }
        assert_eq!(ws.roots(), [4, 3, 5]);
        let mut logged = Vec::new();
        for &only in ws.roots() {
            ws.for_each(|w| {
                if w.root == only {
                    logged.push((w.root, w.key.to_vec()));
                }
            });
        }
        assert_eq!(logged.len(), ws.len());
    }

    #[test]
    fn a_large_value_gets_a_chunk_of_its_own() {
        let mut ws = WriteSet::default();
        let big = vec![7u8; CHUNK + 5];
        ws.insert(3, b"x", Some(b"small"));
        ws.insert(3, b"y", Some(&big));
        ws.insert(3, b"z", Some(b"after"));
        assert_eq!(ws.get(3, b"y"), Some(Some(&big[..])));
        assert_eq!(ws.get(3, b"z"), Some(Some(&b"after"[..])));
    }

    #[test]
    fn ranges_follow_key_order_within_their_bounds() {
        let mut ws = WriteSet::default();
        for (root, key) in [(5, "d"), (3, "c"), (3, "a"), (3, "e"), (4, "b"), (3, "b")] {
            ws.insert(root, key.as_bytes(), Some(b"v"));
        }
        ws.order();
        let keys = |start, end, reverse| -> Vec<String> {
            ws.range(3, start, end, reverse)
                .map(|w| String::from_utf8(w.key.to_vec()).unwrap())
                .collect()
        };
        use Bound::*;
        assert_eq!(keys(Unbounded, Unbounded, false), ["a", "b", "c", "e"]);
        assert_eq!(keys(Unbounded, Unbounded, true), ["e", "c", "b", "a"]);
        assert_eq!(
            keys(Excluded(&b"a"[..]), Included(&b"c"[..]), false),
            ["b", "c"]
        );
        assert_eq!(
            keys(Included(&b"b"[..]), Excluded(&b"e"[..]), false),
            ["b", "c"]
        );
        assert_eq!(
            keys(Included(&b"f"[..]), Unbounded, false),
            Vec::<String>::new()
        );
        assert_eq!(
            keys(Included(&b"c"[..]), Excluded(&b"a"[..]), false),
            Vec::<String>::new()
        );
    }
}
