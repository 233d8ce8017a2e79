//! Sessions and transactions: snapshot isolation over the instance's committed state.
//!
//! A session's transaction keeps its writes to itself until it commits: reads see the committed
//! state as of its begin (the trees, with the version store supplying what later commits
//! replaced) plus its own writes. Writing a key takes a lock on it for the transaction's life;
//! a second open transaction writing the same key, or one whose snapshot predates the key's
//! last commit, gets `JET_errWriteConflict`. At commit the writes are applied to the trees and
//! the pages they changed are logged as one group; a rollback just drops them, so nothing an
//! uncommitted transaction did ever reaches the log or the database file.

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Bound, RangeBounds};

use crate::base::error::{Result, bail};
use crate::store::database::{Table, check_key, check_value};
use crate::store::page::Pgno;
use crate::txn::instance::{CommitMode, Core, Instance};
use crate::txn::version;
use crate::txn::writeset::{self, WriteSet};

/// How many records a transaction's range reads from the instance at a time.
const RANGE_BATCH: usize = 256;

/// A session of an [`Instance`] (ESE's JET_SESID), with at most one open transaction.
///
/// As in ESE, the transaction belongs to the session: [`Session::begin_transaction`], then
/// reads and writes on the session, then [`Session::commit_transaction`] or
/// [`Session::rollback`]. Reads and writes outside a transaction run in one of their own
/// (a write is committed durably before it returns).
///
/// A session is used by one thread at a time by construction: its methods take `&mut self`,
/// so ESE's run-time `JET_errSessionSharingViolation` cannot arise. Different sessions may be
/// used from different threads. Dropping a session rolls back its open transaction.
#[derive(Debug)]
pub struct Session {
    instance: Instance,
    /// The init of the instance the session was begun in.
    epoch: u64,
    tx: Option<TxState>,
}

/// The open transaction of a session.
#[derive(Debug)]
struct TxState {
    id: u64,
    snapshot: u64,
    writes: WriteSet,
    tables: BTreeMap<Pgno, Table>,
    write_bytes: usize,
}

// Beginning a session is the instance's call (ESE's JetBeginSession), kept here beside what it
// makes, so that the instance never names a session: a session calls into the instance, never
// the other way round.
impl Instance {
    /// Starts a session (ESE's JetBeginSession).
    pub fn begin_session(&self) -> Result<Session> {
        let epoch = self.with_core(|core| Ok(core.epoch))?;
        Ok(Session::new(self.clone(), epoch))
    }
}

impl Session {
    fn new(instance: Instance, epoch: u64) -> Session {
        Session {
            instance,
            epoch,
            tx: None,
        }
    }

    /// Runs `f` on the instance's core, if the session belongs to its current init.
    fn with_core<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        let epoch = self.epoch;
        self.instance.with_core(|core| {
            if core.epoch != epoch {
                bail!(
                    InvalidSesid,
                    "the session was begun before the instance was terminated and initialised again"
                );
            }
            f(core)
        })
    }

    /// The instance this session belongs to.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Begins a transaction: it sees the committed state as of now, plus its own writes.
    /// `JET_errInTransaction` if one is open already.
    pub fn begin_transaction(&mut self) -> Result<()> {
        if self.tx.is_some() {
            bail!(InTransaction, "the session already has an open transaction");
        }
        let id = self.instance.next_transaction_id();
        let snapshot = self.with_core(|core| Ok(core.begin(id)))?;
        self.tx = Some(TxState {
            id,
            snapshot,
            writes: WriteSet::default(),
            tables: BTreeMap::new(),
            write_bytes: 0,
        });
        Ok(())
    }

    /// Commits the open transaction: its writes become visible to transactions that begin
    /// later, and with [`CommitMode::Durable`] they survive a crash once this returns.
    /// `JET_errNotInTransaction` if none is open.
    ///
    /// A commit is logged before it is applied: one that fails after that (a failed log
    /// write or fsync, a failure applying it) stops the instance, and may turn out committed
    /// after recovery replays the log — as a commit whose fsync failed may have reached the
    /// disk. A failure before anything is logged rolls it back.
    pub fn commit_transaction(&mut self, mode: CommitMode) -> Result<()> {
        let Some(tx) = self.tx.take() else {
            bail!(NotInTransaction, "the session has no open transaction");
        };
        let TxState {
            id, writes, tables, ..
        } = tx;
        // The core takes the writes (and releases their locks on a failure); if it never ran,
        // they are still here to release.
        let mut writes = Some(writes);
        let result = self.instance.with_core(|core| {
            let writes = writes.take().expect("taken once");
            core.commit(id, writes, &tables, mode)
        });
        if let Some(writes) = writes {
            self.instance
                .with_core_quietly(|core| core.rolled_back(id, &writes));
        }
        result
    }

    /// Rolls back the open transaction: every write it made is dropped.
    /// `JET_errNotInTransaction` if none is open.
    pub fn rollback(&mut self) -> Result<()> {
        let Some(tx) = self.tx.take() else {
            bail!(NotInTransaction, "the session has no open transaction");
        };
        release(&self.instance, tx);
        Ok(())
    }

    /// Runs `f` in the open transaction, or in one of its own committed durably after it.
    fn in_tx<T>(&mut self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        if self.tx.is_some() {
            return f(self);
        }
        self.begin_transaction()?;
        match f(self) {
            Ok(out) => {
                self.commit_transaction(CommitMode::Durable)?;
                Ok(out)
            }
            Err(err) => {
                self.rollback()?;
                Err(err)
            }
        }
    }

    /// The value of `key` in `table` as the open transaction sees it (outside a transaction:
    /// the latest committed value).
    pub fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        self.in_tx(|s| {
            let tx = s.tx.as_ref().expect("in a transaction");
            let own = tx
                .writes
                .get(table.root(), key)
                .map(|value| value.map(<[u8]>::to_vec));
            let (id, snapshot) = (tx.id, tx.snapshot);
            s.with_core(|core| {
                core.check_open(id)?;
                core.db.check_table(table)?;
                match own {
                    Some(value) => Ok(value),
                    None => core.read(table, key, snapshot),
                }
            })
        })
    }

    /// Stores `value` under `key` in `table`. Fails with `JET_errWriteConflict` if another
    /// open transaction wrote `key`, or a transaction that committed after this one began.
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.in_tx(|s| s.write(table, key, Some(value)).map(|_| ()))
    }

    /// Deletes `key` from `table`; returns whether the transaction saw it. Conflicts as
    /// [`Session::put`] does.
    pub fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        check_key(key)?;
        self.in_tx(|s| s.write(table, key, None))
    }

    fn write(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) -> Result<bool> {
        let tx = self.tx.as_mut().expect("in a transaction");
        let (id, snapshot) = (tx.id, tx.snapshot);
        let hash = writeset::hash_key(table.root(), key);
        let own = tx
            .writes
            .get_hashed(hash, table.root(), key)
            .map(|v| v.is_some());
        let bytes = tx.write_bytes + key.len() + value.map_or(0, <[u8]>::len) + 32;
        let deleting = value.is_none();
        let existed = self.with_core(|core| {
            core.check_open(id)?;
            core.db.check_table(table)?;
            let existed = match own {
                Some(existed) => existed,
                None if deleting => core.exists(table, key, snapshot)?,
                None => false,
            };
            core.lock_key(id, snapshot, table.root(), hash, key, bytes)?;
            Ok(existed)
        })?;
        let tx = self.tx.as_mut().expect("in a transaction");
        tx.write_bytes = bytes;
        tx.tables.insert(table.root(), table);
        tx.writes.insert_hashed(hash, table.root(), key, value);
        Ok(existed)
    }

    /// The records of `table` whose keys lie in `range`, as the open transaction sees them,
    /// in ascending key order (descending with `reverse`). Outside a transaction, the range
    /// reads the latest committed state batch by batch.
    pub fn range<R: RangeBounds<[u8]>>(
        &mut self,
        table: Table,
        range: R,
        reverse: bool,
    ) -> Result<TxRange<'_>> {
        let snapshot = self.tx.as_ref().map(|tx| (tx.id, tx.snapshot));
        self.with_core(|core| {
            if let Some((id, _)) = snapshot {
                core.check_open(id)?;
            }
            core.db.check_table(table)
        })?;
        let start = range.start_bound().map(|k| k.to_vec());
        let end = range.end_bound().map(|k| k.to_vec());
        // An inverted range, or one whose bounds meet with either excluded, holds nothing.
        let empty = match (&start, &end) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a >= b
            }
            _ => false,
        };
        Ok(TxRange {
            start,
            end,
            session: self,
            table,
            reverse,
            last: None,
            buffer: VecDeque::new(),
            done: empty,
        })
    }

    /// Creates table `name`; the creation is logged and durable when this returns. Fails
    /// with `JET_errTableDuplicate` if it exists.
    pub fn create_table(&mut self, name: &str) -> Result<Table> {
        self.with_core(|core| core.create_table(name))
    }

    /// The table called `name`; `JET_errObjectNotFound` if there is none.
    pub fn open_table(&mut self, name: &str) -> Result<Table> {
        self.with_core(|core| core.open_table(name))
    }

    /// Deletes table `name` and frees its pages, durably. Refused with `JET_errTableInUse`
    /// while an open transaction has written to it.
    pub fn delete_table(&mut self, name: &str) -> Result<()> {
        self.with_core(|core| core.delete_table(name))
    }

    /// The names of the tables, sorted.
    pub fn table_names(&mut self) -> Result<Vec<String>> {
        self.with_core(|core| Ok(core.table_names()))
    }
}

/// Ends a transaction without committing: its locks are released.
fn release(instance: &Instance, tx: TxState) {
    instance.with_core_quietly(|core| core.rolled_back(tx.id, &tx.writes));
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            release(&self.instance, tx);
        }
    }
}

/// The records of a range as a session's transaction sees them: from [`Session::range`].
///
/// Each item is a `Result`: a damaged page met along the way is an error, never a wrong
/// record. Records are read from the instance in batches, so other sessions' commits may
/// interleave; they are invisible to this transaction's snapshot all the same.
#[derive(Debug)]
pub struct TxRange<'s> {
    session: &'s mut Session,
    table: Table,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
    /// The last key considered (returned or found invisible).
    last: Option<Vec<u8>>,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl TxRange<'_> {
    fn refill(&mut self) -> Result<()> {
        let (lo, hi) = match (&self.last, self.reverse) {
            (None, _) => (self.start.clone(), self.end.clone()),
            (Some(last), false) => (Bound::Excluded(last.clone()), self.end.clone()),
            (Some(last), true) => (self.start.clone(), Bound::Excluded(last.clone())),
        };
        let (table, reverse) = (self.table, self.reverse);
        let root = table.root();
        let mut empty = WriteSet::default();
        empty.order();
        if let Some(tx) = &mut self.session.tx {
            tx.writes.order();
        }
        let (id, snapshot, writes) = match &self.session.tx {
            Some(tx) => (Some(tx.id), tx.snapshot, &tx.writes),
            None => (None, u64::MAX, &empty),
        };
        let (batch, last, done) = self.session.with_core(|core| {
            if let Some(id) = id {
                core.check_open(id)?;
            }
            let (db, versions) = core.db_and_versions();
            let bounds = version::table_bounds(root, &lo, &hi);
            let tree_bounds = (as_slice(&lo), as_slice(&hi));
            let mut tree = db.range(table, tree_bounds, reverse)?.peekable();
            let mut kept = versions
                .keys_after(bounds.clone(), snapshot, reverse)
                .peekable();
            let mut own = writes
                .range(root, as_slice(&lo), as_slice(&hi), reverse)
                .peekable();
            let mut batch = Vec::new();
            let mut last = None;
            loop {
                if batch.len() >= RANGE_BATCH {
                    return Ok((batch, last, false));
                }
                let from_tree = match tree.peek() {
                    Some(Ok((k, _))) => Some(k.clone()),
                    Some(Err(_)) => {
                        return Err(tree.next().expect("peeked").expect_err("an error"));
                    }
                    None => None,
                };
                let from_kept = kept.peek().map(|k| k.to_vec());
                let from_own = own.peek().map(|w| w.key.to_vec());
                let next = [&from_tree, &from_kept, &from_own]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .reduce(|a, b| if (a < b) != reverse { a } else { b });
                let Some(key) = next else {
                    return Ok((batch, last, true));
                };
                let tree_value = if from_tree.as_ref() == Some(&key) {
                    Some(tree.next().expect("peeked")?.1)
                } else {
                    None
                };
                if from_kept.as_ref() == Some(&key) {
                    kept.next();
                }
                let own_value = if from_own.as_ref() == Some(&key) {
                    Some(own.next().expect("peeked").value.map(<[u8]>::to_vec))
                } else {
                    None
                };
                let value = match own_value {
                    Some(value) => value,
                    None => match versions.as_of(&(root, key.clone()), snapshot) {
                        Some(kept) => kept.map(<[u8]>::to_vec),
                        None => tree_value,
                    },
                };
                last = Some(key.clone());
                if let Some(value) = value {
                    batch.push((key, value));
                }
            }
        })?;
        if last.is_some() {
            self.last = last;
        }
        self.done = done;
        self.buffer.extend(batch);
        Ok(())
    }
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Iterator for TxRange<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buffer.is_empty() && !self.done {
            if let Err(err) = self.refill() {
                self.done = true;
                return Some(Err(err));
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}
