//! The reference model: the committed state as a history of versions per key, the open
//! transactions with their snapshots and writes, and what each commit's outcome promises.
//!
//! Commit order is the order in which commits returned (the engine has one lock, so that is
//! log order). Each commit gets the next sequence number; the state "at prefix `p`" is every
//! key's last version with a sequence number up to `p`.

use std::collections::BTreeMap;

/// A key of the model: a table's index and a key's index. The engine sees them as a table
/// name and the bytes [`key_bytes`] makes.
pub type Key = (u8, u16);

/// A value of the model: an identity and a length; [`value_bytes`] makes its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Val {
    /// Which value.
    pub id: u32,
    /// How many bytes.
    pub len: u32,
}

/// The bytes of key `k`.
pub fn key_bytes(k: u16) -> Vec<u8> {
    format!("k{k:05}").into_bytes()
}

/// The key index of `bytes`, if they are bytes [`key_bytes`] makes.
pub fn parse_key(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes).ok()?.strip_prefix('k')?;
    (text.len() == 5 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The bytes of a value: its identity, then a pattern it seeds, so that any two values of
/// the workload differ and a misplaced byte shows.
pub fn value_bytes(v: Val) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len as usize);
    out.extend_from_slice(&v.id.to_le_bytes());
    let mut x = v.id.wrapping_mul(2_654_435_761) | 1;
    while out.len() < v.len as usize {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    out.truncate(v.len as usize);
    out
}

/// The value `bytes` say they are: the identity in their first four bytes (0 if shorter) and
/// their length. ([`value_matches`] tells whether they really are its bytes.)
pub fn value_of(bytes: &[u8]) -> Val {
    let id = bytes
        .get(..4)
        .map_or(0, |h| u32::from_le_bytes(h.try_into().expect("4 bytes")));
    Val {
        id,
        len: bytes.len() as u32,
    }
}

/// Whether `bytes` are the bytes of `v` ([`value_bytes`]), without making them.
pub fn value_matches(v: Val, bytes: &[u8]) -> bool {
    if bytes.len() != v.len as usize {
        return false;
    }
    let id = v.id.to_le_bytes();
    let head = bytes.len().min(4);
    if bytes[..head] != id[..head] {
        return false;
    }
    let mut x = v.id.wrapping_mul(2_654_435_761) | 1;
    bytes[head..].iter().all(|&b| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b == x as u8
    })
}

/// How a commit returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A durable commit returned Ok: it must survive any crash.
    Durable,
    /// A lazy commit returned Ok: it may be lost in a crash, but only with every later one.
    Lazy,
    /// The commit returned an error after its records may have reached the log: after
    /// recovery it is all there or not at all.
    Ambiguous,
}

/// A commit in the model's history.
#[derive(Clone, Debug)]
pub struct Commit {
    /// How it returned.
    pub outcome: Outcome,
    /// What it wrote: `None` deletes.
    pub writes: BTreeMap<Key, Option<Val>>,
    /// When it returned (the simulated clock's milliseconds since the Unix epoch): the
    /// engine stamps its commit record with the same clock, which does not move during a
    /// step, so a restore to a time names commits by this.
    pub millis: u64,
}

/// An open transaction.
#[derive(Clone, Debug)]
pub struct Tx {
    /// The last sequence number it sees.
    pub snapshot: u64,
    /// Its own writes.
    pub writes: BTreeMap<Key, Option<Val>>,
}

/// The model of the database and its sessions.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Each key's versions, oldest first: (sequence number, value).
    versions: BTreeMap<Key, Vec<(u64, Option<Val>)>>,
    /// The commits from sequence number `base + 1` on.
    commits: Vec<Commit>,
    /// The sequence number of the state the commits start from.
    base: u64,
    /// Every commit up to this sequence number is durable.
    durable: u64,
    /// Each session's open transaction.
    open: Vec<Option<Tx>>,
    /// Windows `(lo, hi)` a recovery left: it showed the state of prefix `hi`, which the
    /// model kept, but also of prefix `lo` (and perhaps some between), so the engine's own
    /// history may end at any of them — commits `lo + 1..=hi` may never have been logged
    /// (lazy ones lost whose writes undo each other). The state after each is the same;
    /// the states between are not what the logs need hold.
    alike: Vec<(u64, u64)>,
}

impl Model {
    /// An empty database with `sessions` sessions.
    pub fn new(sessions: usize) -> Model {
        Model {
            open: vec![None; sessions],
            ..Model::default()
        }
    }

    /// The sequence number of the last commit.
    pub fn last(&self) -> u64 {
        self.base + self.commits.len() as u64
    }

    /// The sequence number up to which every commit is durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// The commit with sequence number `seq`.
    pub fn commit_at(&self, seq: u64) -> &Commit {
        &self.commits[(seq - self.base - 1) as usize]
    }

    /// Session `s`'s open transaction.
    pub fn tx(&self, s: usize) -> Option<&Tx> {
        self.open[s].as_ref()
    }

    /// The value of `key` at prefix `seq`.
    pub fn at(&self, key: Key, seq: u64) -> Option<Val> {
        let versions = self.versions.get(&key)?;
        let i = versions.partition_point(|(s, _)| *s <= seq);
        versions[..i].last().and_then(|(_, v)| *v)
    }

    /// The value of `key` as session `s` sees it: its transaction's snapshot and own writes,
    /// or outside a transaction the latest commit.
    pub fn sees(&self, s: usize, key: Key) -> Option<Val> {
        match &self.open[s] {
            Some(tx) => match tx.writes.get(&key) {
                Some(v) => *v,
                None => self.at(key, tx.snapshot),
            },
            None => self.at(key, self.last()),
        }
    }

    /// The records of table `t` with key indexes in `from..to` as session `s` sees them.
    pub fn range(&self, s: usize, t: u8, from: u16, to: u16) -> Vec<(u16, Val)> {
        let mut keys: Vec<u16> = self
            .versions
            .range((t, from)..(t, to))
            .map(|(k, _)| k.1)
            .collect();
        if let Some(tx) = &self.open[s] {
            keys.extend(tx.writes.range((t, from)..(t, to)).map(|(k, _)| k.1));
            keys.sort_unstable();
            keys.dedup();
        }
        keys.into_iter()
            .filter_map(|k| self.sees(s, (t, k)).map(|v| (k, v)))
            .collect()
    }

    /// Every key that has ever had a version, in order.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.versions.keys().copied()
    }

    /// Opens a transaction for session `s`, seeing every commit so far.
    pub fn begin(&mut self, s: usize) {
        assert!(self.open[s].is_none(), "session {s} has a transaction open");
        self.open[s] = Some(Tx {
            snapshot: self.last(),
            writes: BTreeMap::new(),
        });
    }

    /// Whether a write of `key` by session `s` is a write conflict: another open transaction
    /// wrote it, or a commit after the snapshot did.
    pub fn conflicts(&self, s: usize, key: Key) -> bool {
        let snapshot = self.open[s].as_ref().map_or(self.last(), |tx| tx.snapshot);
        let other =
            self.open.iter().enumerate().any(|(i, tx)| {
                i != s && tx.as_ref().is_some_and(|tx| tx.writes.contains_key(&key))
            });
        let later = self
            .versions
            .get(&key)
            .and_then(|v| v.last())
            .is_some_and(|(seq, _)| *seq > snapshot);
        other || later
    }

    /// Records a write in session `s`'s transaction.
    pub fn write(&mut self, s: usize, key: Key, value: Option<Val>) {
        self.open[s]
            .as_mut()
            .expect("a write inside a transaction")
            .writes
            .insert(key, value);
    }

    /// Ends session `s`'s transaction without a commit.
    pub fn rollback(&mut self, s: usize) -> Option<Tx> {
        self.open[s].take()
    }

    /// Ends every transaction: the sessions are gone.
    pub fn drop_sessions(&mut self) {
        self.open.iter_mut().for_each(|tx| *tx = None);
    }

    /// Commits session `s`'s transaction with `outcome`; returns its sequence number if it
    /// wrote anything (a read-only transaction leaves no commit behind).
    pub fn commit(&mut self, s: usize, outcome: Outcome, millis: u64) -> Option<u64> {
        let tx = self.open[s]
            .take()
            .expect("a commit of an open transaction");
        self.apply(tx.writes, outcome, millis)
    }

    /// Appends a commit of `writes` with `outcome`, returned at `millis`.
    pub fn apply(
        &mut self,
        writes: BTreeMap<Key, Option<Val>>,
        outcome: Outcome,
        millis: u64,
    ) -> Option<u64> {
        if writes.is_empty() {
            if outcome == Outcome::Durable {
                self.durable = self.last();
            }
            return None;
        }
        let seq = self.last() + 1;
        for (key, value) in &writes {
            self.versions.entry(*key).or_default().push((seq, *value));
        }
        debug_assert!(
            self.commits.last().is_none_or(|c| c.millis <= millis),
            "the simulated clock runs back"
        );
        self.commits.push(Commit {
            outcome,
            writes,
            millis,
        });
        if outcome == Outcome::Durable {
            self.durable = seq;
        }
        Some(seq)
    }

    /// Every commit so far is durable (a flush, a checkpoint, a clean shutdown).
    pub fn all_durable(&mut self) {
        self.durable = self.last();
    }

    /// Every commit up to `seq` is durable: the log was flushed after it.
    pub fn durable_through(&mut self, seq: u64) {
        self.durable = self.durable.max(seq.min(self.last()));
    }

    /// The last commit returned at or before `millis` (0: none, the state before every
    /// commit): what a restore to that time must land on.
    pub fn last_at(&self, millis: u64) -> u64 {
        self.base + self.commits.partition_point(|c| c.millis <= millis) as u64
    }

    /// When commit `seq` returned (`None` for prefix 0, or a commit past the last).
    pub fn millis_of(&self, seq: u64) -> Option<u64> {
        let i = seq.checked_sub(self.base + 1)?;
        self.commits.get(i as usize).map(|c| c.millis)
    }

    /// The one commit returned at exactly `millis`, if exactly one was (a step commits at
    /// most once, and the clock moves between steps: a commit record's time names it).
    pub fn commit_with_millis(&self, millis: u64) -> Option<u64> {
        let seq = self.last_at(millis);
        let before = self.last_at(millis.checked_sub(1)?);
        (seq == before + 1).then_some(seq)
    }

    /// The state at prefix `seq`.
    pub fn state_at(&self, seq: u64) -> BTreeMap<Key, Val> {
        self.versions
            .keys()
            .filter_map(|&k| self.at(k, seq).map(|v| (k, v)))
            .collect()
    }

    /// The prefixes a recovered database may show: from the last durable commit to the
    /// last commit.
    pub fn candidate_prefixes(&self) -> std::ops::RangeInclusive<u64> {
        self.durable..=self.last()
    }

    /// After recovery found prefix `seq`, whose state prefix `shortest` (≤ `seq`) shows as
    /// well: as [`Model::settle`], remembering that the engine's history may end anywhere
    /// between the two ([`Model::earliest_alike`]).
    pub fn settle_among(&mut self, seq: u64, shortest: u64) {
        self.settle(seq);
        if shortest < seq {
            self.alike.push((shortest, seq));
        }
    }

    /// The earliest commit the engine's history may hold in place of `seq` (the last commit
    /// at or before some point): `seq` itself, unless a recovery left it among commits that
    /// the engine may never have logged ([`Model::settle_among`]); then the engine's last
    /// commit there may be any from the window's beginning to `seq`.
    pub fn earliest_alike(&self, seq: u64) -> u64 {
        self.alike
            .iter()
            .find(|&&(lo, hi)| lo < seq && seq <= hi)
            .map_or(seq, |&(lo, _)| lo)
    }

    /// After recovery found prefix `seq`: later commits are gone, and what recovery kept is
    /// durable.
    pub fn settle(&mut self, seq: u64) {
        assert!(
            (self.durable..=self.last()).contains(&seq),
            "prefix {seq} outside {}..={}",
            self.durable,
            self.last()
        );
        for versions in self.versions.values_mut() {
            versions.retain(|(s, _)| *s <= seq);
        }
        self.versions.retain(|_, v| !v.is_empty());
        self.commits.truncate((seq - self.base) as usize);
        self.alike.retain(|&(lo, _)| lo < seq);
        for (_, hi) in &mut self.alike {
            *hi = (*hi).min(seq);
        }
        self.durable = seq;
        self.drop_sessions();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: u32) -> Val {
        Val { id, len: 8 }
    }

    #[test]
    fn snapshots_own_writes_and_conflicts() {
        let mut m = Model::new(2);
        m.begin(0);
        m.write(0, (0, 1), Some(v(1)));
        m.begin(1);
        assert!(m.conflicts(1, (0, 1)), "another open transaction wrote it");
        assert_eq!(m.sees(0, (0, 1)), Some(v(1)));
        assert_eq!(m.sees(1, (0, 1)), None);
        assert_eq!(m.commit(0, Outcome::Lazy, 10), Some(1));
        assert!(m.conflicts(1, (0, 1)), "committed after the snapshot");
        assert!(!m.conflicts(1, (0, 2)));
        assert_eq!(m.sees(1, (0, 1)), None, "the snapshot predates the commit");
        assert_eq!(m.range(1, 0, 0, 10), vec![]);
        m.rollback(1);
        assert_eq!(m.range(1, 0, 0, 10), vec![(1, v(1))]);
        assert_eq!(m.candidate_prefixes(), 0..=1);
        m.settle(0);
        assert_eq!(m.sees(0, (0, 1)), None);
        assert_eq!(m.last(), 0);
    }

    #[test]
    fn commit_times_name_commits_and_go_with_them() {
        let mut m = Model::new(1);
        for (i, millis) in [10u64, 13, 13, 19].into_iter().enumerate() {
            m.apply(
                BTreeMap::from([((0, i as u16), Some(v(1)))]),
                Outcome::Lazy,
                millis,
            );
        }
        assert_eq!(m.last_at(9), 0);
        assert_eq!(m.last_at(10), 1);
        assert_eq!(m.last_at(12), 1);
        assert_eq!(m.last_at(13), 3, "the last of two at one time");
        assert_eq!(m.last_at(u64::MAX), 4);
        assert_eq!(m.millis_of(2), Some(13));
        assert_eq!(m.millis_of(0), None);
        assert_eq!(m.commit_with_millis(10), Some(1));
        assert_eq!(m.commit_with_millis(13), None, "two commits share it");
        assert_eq!(m.commit_with_millis(11), None);
        m.settle(1);
        assert_eq!(m.last_at(u64::MAX), 1, "dropped with the commits");
        assert_eq!(m.millis_of(2), None);
        m.apply(BTreeMap::from([((0, 9), None)]), Outcome::Durable, 30);
        assert_eq!(m.commit_with_millis(30), Some(2));
        assert_eq!(m.last_at(20), 1);
    }

    #[test]
    fn a_recovery_among_alike_prefixes_leaves_a_window() {
        let mut m = Model::new(1);
        m.apply(BTreeMap::from([((0, 1), Some(v(1)))]), Outcome::Durable, 10);
        m.apply(BTreeMap::from([((0, 5), Some(v(2)))]), Outcome::Lazy, 13);
        m.apply(BTreeMap::from([((0, 5), None)]), Outcome::Lazy, 16);
        assert_eq!(m.state_at(1), m.state_at(3));
        m.settle_among(3, 1);
        assert_eq!(m.earliest_alike(1), 1);
        assert_eq!(
            m.earliest_alike(2),
            1,
            "commit 2 may never have been logged"
        );
        assert_eq!(m.earliest_alike(3), 1);
        m.apply(BTreeMap::from([((0, 7), Some(v(3)))]), Outcome::Lazy, 19);
        assert_eq!(
            m.earliest_alike(4),
            4,
            "a commit after the recovery is the engine's"
        );
        m.settle_among(3, 3);
        assert_eq!(
            m.earliest_alike(3),
            1,
            "the lazy commit 4 lost: the window stays"
        );
        assert_eq!(m.last(), 3);
    }

    #[test]
    fn keys_and_values_round_trip_and_differ() {
        assert_eq!(parse_key(&key_bytes(42)), Some(42));
        assert_eq!(parse_key(b"k0042"), None);
        assert_ne!(value_bytes(v(1)), value_bytes(v(2)));
        assert_eq!(value_bytes(Val { id: 3, len: 3000 }).len(), 3000);
        for len in [0, 2, 4, 5, 3000] {
            let val = Val { id: 9, len };
            assert!(value_matches(val, &value_bytes(val)));
            let mut other = value_bytes(val);
            if let Some(last) = other.last_mut() {
                *last ^= 1;
                assert!(!value_matches(val, &other));
            }
            assert!(!value_matches(
                Val {
                    id: 9,
                    len: len + 1
                },
                &value_bytes(val)
            ));
        }
    }
}
