//! The version store: what keys held before recent commits, kept while an open transaction's
//! snapshot still needs it.
//!
//! The B+trees always hold the latest committed state. When a commit changes a key while
//! other transactions are open, the value it replaces is kept here, tagged with the commit's
//! sequence number. A transaction whose snapshot is older than that commit reads the kept
//! value instead of the tree's, and may not write the key (a write conflict). Versions are
//! dropped once every open snapshot is at least as new as their commit.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::store::page::Pgno;

/// A key of one table: its root page and the key bytes.
pub(crate) type TableKey = (Pgno, Vec<u8>);

/// The versions of one key: (commit sequence, the value before that commit), oldest first.
type Versions = Vec<(u64, Option<Vec<u8>>)>;

#[derive(Debug, Default)]
pub(crate) struct VersionStore {
    by_key: BTreeMap<TableKey, Versions>,
    by_sequence: BTreeMap<u64, Vec<TableKey>>,
    bytes: usize,
}

impl VersionStore {
    /// Records that commit `sequence` replaced `before` as the value of `key`.
    pub(crate) fn record(&mut self, key: TableKey, sequence: u64, before: Option<Vec<u8>>) {
        self.bytes += key.1.len() + before.as_ref().map_or(0, Vec::len) + 32;
        let versions = self.by_key.entry(key.clone()).or_default();
        debug_assert!(versions.last().is_none_or(|&(s, _)| s < sequence));
        versions.push((sequence, before));
        self.by_sequence.entry(sequence).or_default().push(key);
    }

    /// The value of `key` as a snapshot taken after commit `snapshot` sees it, if a later
    /// commit changed it: `Some(value)`, where `value` is `None` for a key that did not exist.
    pub(crate) fn as_of(&self, key: &TableKey, snapshot: u64) -> Option<Option<&[u8]>> {
        let versions = self.by_key.get(key)?;
        versions
            .iter()
            .find(|&&(sequence, _)| sequence > snapshot)
            .map(|(_, before)| before.as_deref())
    }

    /// The sequence of the newest commit that changed `key`, if it is still kept.
    pub(crate) fn newest(&self, key: &TableKey) -> Option<u64> {
        self.by_key.get(key)?.last().map(|&(s, _)| s)
    }

    /// The keys of table `root` within the bounds that have versions newer than `snapshot`,
    /// in key order (descending if `reverse`).
    pub(crate) fn keys_after<'a>(
        &'a self,
        bounds: (Bound<TableKey>, Bound<TableKey>),
        snapshot: u64,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = &'a [u8]> + 'a> {
        let range = self
            .by_key
            .range(bounds)
            .filter(move |(_, v)| v.last().is_some_and(|&(s, _)| s > snapshot))
            .map(|((_, key), _)| key.as_slice());
        if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        }
    }

    /// Drops every version no open snapshot needs: those of commits at or before `oldest`, the
    /// oldest open snapshot (`u64::MAX` when no transaction is open).
    pub(crate) fn collect(&mut self, oldest: u64) {
        while let Some(entry) = self.by_sequence.first_entry() {
            if *entry.key() > oldest {
                break;
            }
            let (sequence, keys) = entry.remove_entry();
            for key in keys {
                let versions = self.by_key.get_mut(&key).expect("indexed");
                let (first, before) = versions.remove(0);
                debug_assert_eq!(first, sequence, "versions are dropped oldest first");
                self.bytes -= key.1.len() + before.as_ref().map_or(0, Vec::len) + 32;
                if versions.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// Drops the versions of table `root` (it was deleted).
    pub(crate) fn drop_table(&mut self, root: Pgno) {
        let keys: Vec<TableKey> = self
            .by_key
            .range((root, Vec::new())..)
            .take_while(|((r, _), _)| *r == root)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            for (_, before) in self.by_key.remove(&key).expect("listed") {
                self.bytes -= key.1.len() + before.as_ref().map_or(0, Vec::len) + 32;
            }
        }
        for keys in self.by_sequence.values_mut() {
            keys.retain(|(r, _)| *r != root);
        }
    }

    /// The bytes the store holds, roughly.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether any version is kept (a lookup is then skipped: it would need an owned key).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The bounds of table `root`'s keys within `start..end`, as bounds over [`TableKey`]s.
pub(crate) fn table_bounds(
    root: Pgno,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
) -> (Bound<TableKey>, Bound<TableKey>) {
    let lo = match start {
        Bound::Included(k) => Bound::Included((root, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((root, k.clone())),
        Bound::Unbounded => Bound::Included((root, Vec::new())),
    };
    let hi = match end {
        Bound::Included(k) => Bound::Included((root, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((root, k.clone())),
        Bound::Unbounded => Bound::Excluded((root + 1, Vec::new())),
    };
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_the_value_before_the_first_later_commit() {
        let mut vs = VersionStore::default();
        let k = (5, b"k".to_vec());
        vs.record(k.clone(), 3, None);
        vs.record(k.clone(), 7, Some(b"v3".to_vec()));
        assert_eq!(vs.as_of(&k, 2), Some(None));
        assert_eq!(vs.as_of(&k, 3), Some(Some(&b"v3"[..])));
        assert_eq!(vs.as_of(&k, 7), None);
        assert_eq!(vs.newest(&k), Some(7));
        vs.collect(3);
        assert_eq!(vs.as_of(&k, 3), Some(Some(&b"v3"[..])));
        vs.collect(u64::MAX);
        assert!(vs.is_empty());
        assert_eq!(vs.bytes(), 0);
    }
}
