//! Replay: the changes of committed groups, redone on the database in batches.
//!
//! Recovery reads the log and hands each record here ([`Replay::apply`]); a group's changes
//! wait until its commit record arrives, and a crash's open group is dropped
//! ([`Replay::cut_group`]). Committed changes gather in a [`Batch`] (keys and values in one
//! buffer) until more would take it past half the cache's size; then its committed changes
//! are applied sorted by table and key, each key's last change only, between table creations
//! and deletions, which are applied in their place. The cache's pages get the other half
//! while replay runs: recovery stays within the memory the cache was given, beside a group
//! larger than that half, which is held whole until its commit (as before replay was
//! batched).
//!
//! Why sorted: the log holds changes in commit order, which for random keys is a random walk
//! over the leaves, one descent and one cache miss per change. Sorted, consecutive changes
//! fall on the same or the next leaf, and a leaf changed many times in a batch is made dirty
//! once per batch, not once per change. The `restore` bench's 70 MiB of log of small random
//! puts replayed in 1.35–1.44 s, against 2.1–2.2 s applied one commit at a time.
//!
//! Why that is the same state: a put sets a key's value and a delete removes it, whatever
//! the key held, so a key's final state is its last change, and changes to different keys
//! commute. Only a table's creation or deletion is ordered against the changes in it: the
//! sorting stops at one. A batch written to the file part-way (the cache full) leaves the file
//! holding some later changes and not some earlier ones, which is no state the database ever
//! had; but it is marked not consistent on its own, and recovery after a crash replays from
//! the checkpoint again, over it, to the same end.

use std::collections::BTreeMap;

use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::limits;
use crate::base::planted::{self, PlantedBug};
use crate::store::database::{Database, Table};
use crate::store::header::Lgpos;
use crate::wal::log::{CommitRecord, Record};

/// A range of [`Batch::bytes`].
#[derive(Clone, Copy, Debug)]
struct Span {
    at: usize,
    len: usize,
}

/// A change of a committed (or the open) group; tables are indexes into [`Batch::names`].
#[derive(Clone, Copy, Debug)]
enum Change {
    Put {
        table: usize,
        key: Span,
        value: Span,
    },
    Delete {
        table: usize,
        key: Span,
    },
    CreateTable(usize),
    DeleteTable(usize),
}

/// The memory a change takes beside its bytes: itself, and its place in the sorted order.
const CHANGE_BYTES: usize = size_of::<Change>() + size_of::<Sorted>();

/// Changes read and not yet applied: the committed groups', then the open group's.
#[derive(Default)]
struct Batch {
    /// Every table name the log read named, each once, and its index.
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    /// The changes' keys and values.
    bytes: Vec<u8>,
    changes: Vec<Change>,
    /// Each committed group's end in `changes`, and its commit record's position.
    commits: Vec<(usize, Lgpos)>,
}

impl Batch {
    fn intern(&mut self, name: &str) -> usize {
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Span {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        Span {
            at,
            len: bytes.len(),
        }
    }

    fn get(&self, span: Span) -> &[u8] {
        &self.bytes[span.at..span.at + span.len]
    }

    /// The memory it holds: its buffers' capacities, with the order they are sorted in.
    fn held(&self) -> usize {
        self.bytes.capacity() + self.changes.capacity() * CHANGE_BYTES
    }

    /// Whether `bytes` more bytes and `changes` more changes fit without growing.
    fn fits(&self, bytes: usize, changes: usize) -> bool {
        self.bytes.len() + bytes <= self.bytes.capacity()
            && self.changes.len() + changes <= self.changes.capacity()
    }

    /// The least memory it would hold with room for `bytes` more bytes and `changes` more
    /// changes.
    fn held_with(&self, bytes: usize, changes: usize) -> usize {
        (self.bytes.len() + bytes).max(self.bytes.capacity())
            + (self.changes.len() + changes).max(self.changes.capacity()) * CHANGE_BYTES
    }

    /// Makes room for `bytes` more bytes and `changes` more changes: doubling, but within
    /// `limit` where the room needed fits it (a group larger than the limit grows past it).
    fn grow(&mut self, bytes: usize, changes: usize, limit: usize) {
        let within = self.held_with(bytes, changes) <= limit;
        let need = self.bytes.len() + bytes;
        if need > self.bytes.capacity() {
            let mut target = need.max(2 * self.bytes.capacity());
            if within {
                let others = (self.changes.len() + changes).max(self.changes.capacity());
                target = target.min(limit - others * CHANGE_BYTES).max(need);
            }
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        let need = self.changes.len() + changes;
        if need > self.changes.capacity() {
            let mut target = need.max(2 * self.changes.capacity());
            if within {
                target = target
                    .min((limit - self.bytes.capacity()) / CHANGE_BYTES)
                    .max(need);
            }
            self.changes.reserve_exact(target - self.changes.len());
        }
    }

    /// Drops the first `changes` changes and `bytes` bytes, applied: the rest (the open
    /// group's) move to the front.
    fn drain_front(&mut self, changes: usize, bytes: usize) {
        self.changes.drain(..changes);
        self.bytes.drain(..bytes);
        for change in &mut self.changes {
            match change {
                Change::Put { key, value, .. } => {
                    key.at -= bytes;
                    value.at -= bytes;
                }
                Change::Delete { key, .. } => key.at -= bytes,
                Change::CreateTable(_) | Change::DeleteTable(_) => {}
            }
        }
        self.commits.clear();
    }
}

/// The group being read: where its changes start in the batch, and its state.
#[derive(Default)]
struct Group {
    /// The batch's changes and bytes before the group's first.
    changes_from: usize,
    bytes_from: usize,
    /// The table its next put or delete is in.
    table: Option<usize>,
    /// A large value being put: its change's index and the whole value's length.
    large: Option<(usize, usize)>,
    /// Its records so far.
    records: u32,
}

/// A change's place in the sorted order: its table, the first eight bytes of its key (as a
/// big-endian number, zeros past a shorter key's end) and its index in the batch.
struct Sorted {
    table: usize,
    head: u64,
    index: usize,
}

/// The first eight bytes of `key`, big-endian, padded with zeros: in the order of the keys'
/// bytes, where it differs.
fn head(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(bytes)
}

/// Changed pages are evicted only once written: a batch of them, the file marked not
/// consistent on its own, whenever the cache is over its size (checked between changes).
fn relieve_cache(db: &mut Database) -> Result<()> {
    if db.pager_mut().over_capacity() {
        db.flush()?;
        db.pager_mut().trim()?;
    }
    Ok(())
}

/// Redoes committed groups on a database; see the module's documentation.
pub(crate) struct Replay<'a> {
    db: &'a mut Database,
    batch: Batch,
    group: Group,
    /// The most memory a batch holds, in bytes, unless one group needs more.
    limit: usize,
    /// The cache's size in pages, given back to the pages when replay is done.
    cache_pages: usize,
    /// The sequence of the last commit replayed (or the checkpoint's): the next must follow.
    last_sequence: Option<u64>,
    counts: Replayed,
    /// The planted bug [`PlantedBug::ReplayKeepsFirstChange`].
    keeps_first: bool,
}

/// What replay did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Replayed {
    /// Commit groups replayed.
    pub commits: u64,
    /// Their operations (puts, deletes, table creations and deletions), as the log holds them.
    pub operations: u64,
    /// Groups a crash cut off before their commit record: their transactions undone.
    pub undone: u64,
    /// Batches applied (holding at least one change).
    pub batches: u64,
    /// The highest commit sequence seen anywhere in the log read.
    pub highest_sequence: u64,
}

impl<'a> Replay<'a> {
    /// Replay onto `db`, from a checkpoint whose last commit was `last_commit` (`None`: the
    /// first commit read sets the sequence).
    pub(crate) fn new(env: &Env, db: &'a mut Database, last_commit: Option<u64>) -> Replay<'a> {
        // The cache's memory, shared: half for pages (never under the least a cache holds),
        // the rest for the batch.
        let pager = db.pager_mut();
        let cache_pages = pager.cache_pages_max();
        let pages = (cache_pages / 2).max(limits::CACHE_PAGES_MIN);
        pager.set_cache_pages_max(pages);
        Replay {
            limit: cache_pages.saturating_sub(pages) * pager.page_size(),
            cache_pages,
            db,
            batch: Batch::default(),
            group: Group::default(),
            last_sequence: last_commit,
            counts: Replayed {
                highest_sequence: last_commit.unwrap_or(0),
                ..Replayed::default()
            },
            keeps_first: planted::active(env, PlantedBug::ReplayKeepsFirstChange),
        }
    }

    /// Takes in the record at `pos`; a commit record ends its group, and may apply the batch.
    pub(crate) fn apply(&mut self, pos: Lgpos, record: &Record) -> Result<()> {
        let corrupt = |why: &str| {
            JetError::new(
                ErrorKind::LogFileCorrupt,
                format!("the record at {pos}: {why}"),
            )
        };
        if matches!(record, Record::End) {
            // A commit group may continue in the next generation.
            return Ok(());
        }
        if self.group.large.is_some() && !matches!(record, Record::ValuePart(_)) {
            return Err(corrupt("a large value is cut short"));
        }
        let table = self.group.table;
        let table = || table.ok_or_else(|| corrupt("a put or delete names no table"));
        match record {
            Record::Table { name } => self.group.table = Some(self.batch.intern(name)),
            Record::Put { key, value } => {
                let table = table()?;
                self.make_room(key.len() + value.len(), 1)?;
                let batch = &mut self.batch;
                let (key, value) = (batch.push_bytes(key), batch.push_bytes(value));
                batch.changes.push(Change::Put { table, key, value });
            }
            Record::PutLarge { key, len, part } => {
                let table = table()?;
                let len = *len as usize;
                if part.len() > len {
                    return Err(corrupt(&format!(
                        "a value's first part runs past the value's {len} bytes"
                    )));
                }
                self.make_room(key.len() + part.len(), 1)?;
                let batch = &mut self.batch;
                let (key, value) = (batch.push_bytes(key), batch.push_bytes(part));
                self.group.large = Some((batch.changes.len(), len));
                batch.changes.push(Change::Put { table, key, value });
            }
            Record::ValuePart(part) => {
                let Some((_, len)) = self.group.large else {
                    return Err(corrupt("a value part follows no large put"));
                };
                self.make_room(part.len(), 0)?;
                // Making room may have moved the group to the front of the batch.
                let (index, _) = self.group.large.expect("checked");
                let batch = &mut self.batch;
                let Change::Put { value, .. } = &mut batch.changes[index] else {
                    unreachable!("a large value's change is a put");
                };
                // Nothing else enters the batch between a large put and its parts: the
                // value's bytes are the buffer's last, and grow in place.
                debug_assert_eq!(value.at + value.len, batch.bytes.len());
                if value.len + part.len() > len {
                    return Err(corrupt(&format!(
                        "a value part runs past the value's {len} bytes"
                    )));
                }
                value.len += part.len();
                let whole = value.len == len;
                batch.bytes.extend_from_slice(part);
                if whole {
                    self.group.large = None;
                }
            }
            Record::Delete { key } => {
                let table = table()?;
                self.make_room(key.len(), 1)?;
                let batch = &mut self.batch;
                let key = batch.push_bytes(key);
                batch.changes.push(Change::Delete { table, key });
            }
            Record::CreateTable { name } => {
                self.make_room(0, 1)?;
                let name = self.batch.intern(name);
                self.batch.changes.push(Change::CreateTable(name));
            }
            Record::DeleteTable { name } => {
                self.make_room(0, 1)?;
                let name = self.batch.intern(name);
                self.batch.changes.push(Change::DeleteTable(name));
            }
            Record::Commit(commit) => return self.commit(pos, commit),
            Record::End => unreachable!("handled above"),
        }
        self.group.records += 1;
        Ok(())
    }

    /// Makes room in the batch for `bytes` more bytes and `changes` more changes of the open
    /// group. Where growing would take the batch past its limit, the committed changes before
    /// the group are applied first and the group's move to the front.
    fn make_room(&mut self, bytes: usize, changes: usize) -> Result<()> {
        if self.batch.fits(bytes, changes) {
            return Ok(());
        }
        if self.group.changes_from > 0 && self.batch.held_with(bytes, changes) > self.limit {
            let (applied, dropped) = (self.group.changes_from, self.group.bytes_from);
            self.apply_changes(applied)?;
            self.batch.drain_front(applied, dropped);
            if let Some((index, _)) = &mut self.group.large {
                *index -= applied;
            }
            self.group.changes_from = 0;
            self.group.bytes_from = 0;
            if self.batch.fits(bytes, changes) {
                return Ok(());
            }
        }
        self.batch.grow(bytes, changes, self.limit);
        Ok(())
    }

    /// Ends the group a commit record closes: its changes join the batch's committed ones.
    fn commit(&mut self, pos: Lgpos, commit: &CommitRecord) -> Result<()> {
        let group = &self.group;
        if commit.records != group.records {
            bail!(
                LogFileCorrupt,
                "the commit at {pos} counts {} records but {} precede it",
                commit.records,
                group.records
            );
        }
        if let Some(last) = self.last_sequence
            && last.checked_add(1) != Some(commit.sequence)
        {
            bail!(
                LogFileCorrupt,
                "the commit at {pos} has sequence {} after {last}: commits are missing",
                commit.sequence
            );
        }
        let end = self.batch.changes.len();
        let replayed = (end - group.changes_from) as u64;
        if replayed > 0 {
            self.batch.commits.push((end, pos));
        }
        self.group = Group {
            changes_from: end,
            bytes_from: self.batch.bytes.len(),
            ..Group::default()
        };
        // A group that took the batch past its limit (larger than the limit alone) is
        // applied at once, and the memory it took given back.
        if self.batch.held() > self.limit {
            self.apply_batch()?;
        }
        self.counts.highest_sequence = self.counts.highest_sequence.max(commit.sequence);
        self.last_sequence = Some(commit.sequence);
        self.counts.commits += 1;
        self.counts.operations += replayed;
        Ok(())
    }

    /// Drops the group being read: a crash cut it off before its commit record.
    pub(crate) fn cut_group(&mut self) {
        let group = std::mem::take(&mut self.group);
        self.batch.changes.truncate(group.changes_from);
        self.batch.bytes.truncate(group.bytes_from);
        self.group.changes_from = self.batch.changes.len();
        self.group.bytes_from = self.batch.bytes.len();
        if group.records > 0 {
            self.counts.undone += 1;
        }
    }

    /// A commit record read before where replay starts: only its sequence counts.
    pub(crate) fn saw_commit(&mut self, sequence: u64) {
        self.counts.highest_sequence = self.counts.highest_sequence.max(sequence);
    }

    /// At the end of the log: drops the open group (undone) and applies the batch.
    pub(crate) fn finish(mut self) -> Result<Replayed> {
        self.cut_group();
        self.apply_batch()?;
        self.db.pager_mut().set_cache_pages_max(self.cache_pages);
        Ok(self.counts)
    }

    /// Applies every change of the batch (all committed: it is called between groups), and
    /// gives back memory a group larger than the limit took.
    fn apply_batch(&mut self) -> Result<()> {
        let end = self.batch.changes.len();
        debug_assert_eq!(
            end, self.group.changes_from,
            "a batch is applied between groups"
        );
        self.apply_changes(end)?;
        let batch = &mut self.batch;
        batch.changes.clear();
        batch.bytes.clear();
        batch.commits.clear();
        if batch.held() > self.limit {
            batch.changes = Vec::new();
            batch.bytes = Vec::new();
        }
        self.group = Group::default();
        Ok(())
    }

    /// Applies the batch's first `end` changes (whole committed groups): sorted between table
    /// creations and deletions, which are applied in their place.
    fn apply_changes(&mut self, end: usize) -> Result<()> {
        if end == 0 {
            return Ok(());
        }
        self.counts.batches += 1;
        let changes = std::mem::take(&mut self.batch.changes);
        let mut order = Vec::new();
        let mut from = 0;
        let result = (|| {
            for (i, change) in changes[..end].iter().enumerate() {
                if let Change::CreateTable(_) | Change::DeleteTable(_) = change {
                    self.apply_sorted(&changes[from..i], from, &mut order)?;
                    self.apply_table_change(*change)
                        .map_err(|err| err.context(self.commit_of(i)))?;
                    from = i + 1;
                }
            }
            self.apply_sorted(&changes[from..end], from, &mut order)
        })();
        self.batch.changes = changes;
        result
    }

    /// What an error applying change `index` says of where it was.
    fn commit_of(&self, index: usize) -> String {
        let commits = &self.batch.commits;
        match commits.get(commits.partition_point(|&(end, _)| end <= index)) {
            Some((_, pos)) => format!("replaying the commit at {pos}"),
            None => "replaying the log".to_owned(),
        }
    }

    /// Applies puts and deletes sorted by table and key (log order among a key's changes),
    /// only each key's last; `base` is the index of the first in the batch. A put or delete
    /// in a table that is not there is skipped: the table was deleted later (in the log, or
    /// already in the file), so nothing it held survives.
    fn apply_sorted(
        &mut self,
        changes: &[Change],
        base: usize,
        order: &mut Vec<Sorted>,
    ) -> Result<()> {
        let batch = &self.batch;
        let key_of = |i: usize| match changes[i] {
            Change::Put { table, key, .. } | Change::Delete { table, key } => {
                (table, batch.get(key))
            }
            Change::CreateTable(_) | Change::DeleteTable(_) => {
                unreachable!("table changes split the batch")
            }
        };
        order.clear();
        order.extend((0..changes.len()).map(|i| {
            let (table, key) = key_of(i);
            Sorted {
                table,
                head: head(key),
                index: i,
            }
        }));
        // By table, then key (most keys told apart by their heads alone); the index breaks
        // ties, so a key's changes stay in log order.
        let same = |a: &Sorted, b: &Sorted| {
            (a.table, a.head) == (b.table, b.head) && key_of(a.index).1 == key_of(b.index).1
        };
        order.sort_unstable_by(|a, b| {
            (a.table, a.head)
                .cmp(&(b.table, b.head))
                .then_with(|| key_of(a.index).1.cmp(key_of(b.index).1))
                .then(a.index.cmp(&b.index))
        });
        // Each table looked up once per run of changes in it.
        let mut open: Option<(usize, Option<Table>)> = None;
        for (j, sorted) in order.iter().enumerate() {
            let superseded = if self.keeps_first {
                j > 0 && same(&order[j - 1], sorted)
            } else {
                order.get(j + 1).is_some_and(|next| same(sorted, next))
            };
            if superseded {
                continue;
            }
            let i = sorted.index;
            let (table, key) = key_of(i);
            let handle = match open {
                Some((t, handle)) if t == table => handle,
                _ => {
                    let handle = self.db.open_table(&batch.names[table]).ok();
                    open = Some((table, handle));
                    handle
                }
            };
            let Some(handle) = handle else { continue };
            let applied = match changes[i] {
                Change::Put { value, .. } => self.db.put(handle, key, batch.get(value)),
                Change::Delete { .. } => self.db.delete(handle, key).map(|_| ()),
                Change::CreateTable(_) | Change::DeleteTable(_) => unreachable!("checked"),
            };
            applied.map_err(|err| err.context(self.commit_of(base + i)))?;
            relieve_cache(self.db)?;
        }
        Ok(())
    }

    fn apply_table_change(&mut self, change: Change) -> Result<()> {
        let db = &mut *self.db;
        match change {
            Change::CreateTable(name) => {
                let name = &self.batch.names[name];
                if db.open_table(name).is_err() {
                    db.create_table(name)?;
                }
            }
            Change::DeleteTable(name) => {
                let name = &self.batch.names[name];
                if db.open_table(name).is_ok() {
                    db.delete_table(name)?;
                }
            }
            Change::Put { .. } | Change::Delete { .. } => unreachable!("sorted apart"),
        }
        relieve_cache(db)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::database::DatabaseOptions;

    #[test]
    fn a_value_part_running_past_its_value_is_corruption() {
        let env = Env::memory(6);
        let options = DatabaseOptions {
            page_size: 4096,
            cache_size: 64 * 4096,
            read_only: false,
        };
        let mut db = Database::create(&env, Path::new("d.edb"), &options).unwrap();
        let mut replay = Replay::new(&env, &mut db, None);
        let pos = Lgpos {
            generation: 1,
            offset: 4096,
        };
        replay
            .apply(pos, &Record::Table { name: "t".into() })
            .unwrap();
        replay
            .apply(
                pos,
                &Record::PutLarge {
                    key: b"k".to_vec(),
                    len: 10,
                    part: vec![1; 8],
                },
            )
            .unwrap();
        let err = replay
            .apply(pos, &Record::ValuePart(vec![2; 5]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    }

    /// A database of 4 KiB pages with a cache of `pages`, holding table `t`.
    fn db(env: &Env, pages: usize) -> Database {
        let options = DatabaseOptions {
            page_size: 4096,
            cache_size: pages * 4096,
            read_only: false,
        };
        let mut db = Database::create(env, Path::new("d.edb"), &options).unwrap();
        db.create_table("t").unwrap();
        db
    }

    fn commit(replay: &mut Replay<'_>, sequence: u64, records: u32) {
        let pos = Lgpos {
            generation: 1,
            offset: 4096 + sequence as u32,
        };
        let commit = CommitRecord {
            transaction: sequence,
            sequence,
            millis: 0,
            records,
            puts: records - 1,
            deletes: 0,
        };
        replay.apply(pos, &Record::Commit(commit)).unwrap();
    }

    /// One transaction larger than a batch (1.2 MiB against 512 KiB) is applied at its
    /// commit, and the memory it took is given back.
    #[test]
    fn a_large_transactions_memory_is_given_back_at_its_commit() {
        let env = Env::memory(6);
        let mut db = db(&env, 256);
        let mut replay = Replay::new(&env, &mut db, None);
        let limit = replay.limit;
        let pos = Lgpos {
            generation: 1,
            offset: 4096,
        };
        replay
            .apply(pos, &Record::Table { name: "t".into() })
            .unwrap();
        for i in 0..300u32 {
            let put = Record::Put {
                key: i.to_be_bytes().to_vec(),
                value: vec![1; 4000],
            };
            replay.apply(pos, &put).unwrap();
        }
        commit(&mut replay, 1, 301);
        assert_eq!(replay.counts.batches, 1, "applied at its commit");
        assert!(replay.batch.bytes.is_empty());
        let held = replay.batch.held();
        assert!(
            held <= limit,
            "an empty batch holds {held} bytes for the rest of replay; its limit is {limit}"
        );
    }

    /// Small commits: the buffers' capacities (grown by doubling) and the sort's `order`
    /// stay within the limit, the committed changes applied when more would not fit.
    #[test]
    fn a_batch_of_small_changes_holds_at_most_its_limit() {
        let env = Env::memory(6);
        let mut db = db(&env, 100);
        let mut replay = Replay::new(&env, &mut db, None);
        let limit = replay.limit;
        let pos = Lgpos {
            generation: 1,
            offset: 4096,
        };
        let mut worst = 0;
        for sequence in 1..10_000u64 {
            replay
                .apply(pos, &Record::Table { name: "t".into() })
                .unwrap();
            let put = Record::Put {
                key: sequence.to_be_bytes().to_vec(),
                value: vec![1; 40],
            };
            replay.apply(pos, &put).unwrap();
            let batch = &replay.batch;
            // What apply_batch holds at its peak: the buffers' capacities and `order`.
            let held = batch.bytes.capacity()
                + batch.changes.capacity() * size_of::<Change>()
                + batch.changes.len() * size_of::<Sorted>();
            worst = worst.max(held);
            commit(&mut replay, sequence, 2);
        }
        assert!(replay.counts.batches > 2);
        assert!(
            worst <= limit,
            "a batch held up to {worst} bytes; its limit is {limit} ({:.2} x)",
            worst as f64 / limit as f64
        );
    }

    /// A restart in the middle of a batch drops only the open group (a large value half read
    /// included), the committed groups before it stay, and a group open at the end is
    /// undone; keys changed across the cut come back as their last committed change.
    #[test]
    fn a_restart_mid_batch_drops_only_the_open_group() {
        let env = Env::memory(6);
        let mut db = db(&env, 256);
        let pos = Lgpos {
            generation: 1,
            offset: 4096,
        };
        let put = |k: &[u8], v: &[u8]| Record::Put {
            key: k.to_vec(),
            value: v.to_vec(),
        };
        let table = || Record::Table { name: "t".into() };
        let mut replay = Replay::new(&env, &mut db, None);
        replay.apply(pos, &table()).unwrap();
        replay.apply(pos, &put(b"k", b"1")).unwrap();
        replay.apply(pos, &put(b"", b"empty")).unwrap();
        commit(&mut replay, 1, 3);
        // Cut off: a put and half a large value.
        replay.apply(pos, &table()).unwrap();
        replay.apply(pos, &put(b"k", b"cut")).unwrap();
        replay
            .apply(
                pos,
                &Record::PutLarge {
                    key: b"j".to_vec(),
                    len: 10,
                    part: vec![9; 4],
                },
            )
            .unwrap();
        replay.cut_group();
        replay.apply(pos, &table()).unwrap();
        replay.apply(pos, &put(b"j", b"3")).unwrap();
        replay
            .apply(pos, &Record::Delete { key: b"".to_vec() })
            .unwrap();
        replay
            .apply(
                pos,
                &Record::Delete {
                    key: b"missing".to_vec(),
                },
            )
            .unwrap();
        commit(&mut replay, 2, 4);
        // Open at the end.
        replay.apply(pos, &table()).unwrap();
        replay.apply(pos, &put(b"j", b"open")).unwrap();
        let counts = replay.finish().unwrap();
        assert_eq!((counts.commits, counts.undone, counts.batches), (2, 2, 1));
        assert_eq!(db.pager_mut().cache_pages_max(), 256);
        let t = db.open_table("t").unwrap();
        assert_eq!(db.get(t, b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(db.get(t, b"j").unwrap(), Some(b"3".to_vec()));
        assert_eq!(db.get(t, b"").unwrap(), None);
    }

    /// A large value whose parts arrive when the batch is full: the committed changes before
    /// its group are applied and the group moves to the front of the batch, its value still
    /// growing in place, and it comes back whole.
    #[test]
    fn a_large_value_read_as_the_batch_fills_moves_with_its_group() {
        let env = Env::memory(6);
        let mut db = db(&env, 256);
        let mut replay = Replay::new(&env, &mut db, None);
        let limit = replay.limit;
        let pos = Lgpos {
            generation: 1,
            offset: 4096,
        };
        let table = || Record::Table { name: "t".into() };
        let mut sequence = 0u64;
        // Committed groups until the batch is nearly full.
        // Committed groups until 20 KB more would take the batch past its limit (the large
        // value's first part still fits; its later parts do not).
        while replay.batch.held_with(20_000, 1) <= limit {
            assert_eq!(
                replay.counts.batches, 0,
                "applied before it filled ({limit})"
            );
            sequence += 1;
            replay.apply(pos, &table()).unwrap();
            let put = Record::Put {
                key: sequence.to_be_bytes().to_vec(),
                value: vec![1; 1000],
            };
            replay.apply(pos, &put).unwrap();
            commit(&mut replay, sequence, 2);
        }
        assert_eq!(replay.counts.batches, 0, "nothing applied yet");
        assert!(sequence > 100, "{sequence} groups");
        replay.apply(pos, &table()).unwrap();
        let value: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
        replay
            .apply(
                pos,
                &Record::PutLarge {
                    key: b"large".to_vec(),
                    len: value.len() as u32,
                    part: value[..4000].to_vec(),
                },
            )
            .unwrap();
        let parts: Vec<&[u8]> = value[4000..].chunks(4000).collect();
        for part in &parts {
            replay
                .apply(pos, &Record::ValuePart(part.to_vec()))
                .unwrap();
        }
        assert_eq!(replay.counts.batches, 1, "the committed changes went first");
        assert_eq!(replay.group.changes_from, 0, "the group is at the front");
        commit(&mut replay, sequence + 1, 2 + parts.len() as u32);
        let counts = replay.finish().unwrap();
        assert_eq!(counts.commits, sequence + 1);
        let t = db.open_table("t").unwrap();
        assert_eq!(db.get(t, b"large").unwrap(), Some(value));
        assert_eq!(db.get(t, &1u64.to_be_bytes()).unwrap(), Some(vec![1; 1000]));
        assert_eq!(
            db.get(t, &sequence.to_be_bytes()).unwrap(),
            Some(vec![1; 1000])
        );
    }
}
