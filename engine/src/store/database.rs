//! A database file of named tables: the public face of the storage core.
//!
//! [`Database`] validates every argument, routes table operations to the B+tree, stores large
//! values out of line, and latches the first failure in the middle of a change: after it, the
//! database refuses further changes (`JET_errDatabaseUnavailable`) rather than build on a tree
//! that may be half-changed in memory.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use crate::base::env::Env;
use crate::base::error::{ErrorKind, JetError, Result, bail};
use crate::base::limits;
use crate::base::planted::{self, PlantedBug};
use crate::base::vfs::{OpenMode, parent_dir};
use crate::store::btree::{self, SeekMode};
use crate::store::catalog;
use crate::store::doublewrite;
use crate::store::header::{self, CATALOG_ROOT, DbHeader, DbState, Lgpos, Signature};
use crate::store::node::{self, LeafEntry};
use crate::store::overflow;
use crate::store::page::PageKind;
use crate::store::page::Pgno;
use crate::store::pager::{self, Pager};

/// How to create or open a database.
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// The page size of a new database: a power of two from 4 KiB to 32 KiB. An existing
    /// database keeps the page size it was created with.
    pub page_size: usize,
    /// The most bytes of pages to keep cached.
    pub cache_size: usize,
    /// Open for reading only: every change is refused with `JET_errDatabaseFileReadOnly`.
    pub read_only: bool,
}

impl Default for DatabaseOptions {
    fn default() -> DatabaseOptions {
        DatabaseOptions {
            page_size: limits::PAGE_SIZE_DEFAULT,
            cache_size: limits::CACHE_SIZE_DEFAULT,
            read_only: false,
        }
    }
}

/// A handle to a table of a [`Database`], from [`Database::create_table`] or
/// [`Database::open_table`].
///
/// A handle names one table of one open database: after the table is deleted, the handle is
/// refused with `JET_errInvalidTableId`, even if a new table reuses its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table {
    root: Pgno,
    /// Unique among the tables this `Database` value has opened or created.
    id: u64,
}

impl Table {
    /// The table's root page (which never moves).
    pub fn root(self) -> u32 {
        self.root
    }
}

/// A database file of named tables, each a B+tree of byte keys to byte values.
///
/// Changes are made in the page cache and reach the file at [`Database::flush`],
/// [`Database::close`], or when the cache must evict. A flush leaves the file consistent and
/// marked `CleanShutdown`; a database dropped with changes written since the last flush is left
/// marked `DirtyShutdown` and refused on open with `JET_errDatabaseDirtyShutdown`.
///
/// ```
/// use jetdb::{Database, DatabaseOptions, Env};
/// # fn main() -> jetdb::Result<()> {
/// let env = Env::memory(1);
/// let mut db = Database::create(&env, "data.edb".as_ref(), &DatabaseOptions::default())?;
/// let table = db.create_table("default")?;
/// db.put(table, b"key", b"value")?;
/// assert_eq!(db.get(table, b"key")?, Some(b"value".to_vec()));
/// db.close()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Database {
    pager: Pager,
    tables: BTreeMap<String, Table>,
    /// The id the next table handle gets.
    next_table_id: u64,
    /// The first failure in the middle of a change; once set, changes are refused.
    failed: Option<JetError>,
}

impl Database {
    /// Creates a new, empty database file at `path`, whose directory must exist.
    pub fn create(env: &Env, path: &Path, options: &DatabaseOptions) -> Result<Database> {
        doublewrite::check_database_path(path)?;
        if !limits::page_size_valid(options.page_size) {
            bail!(
                InvalidParameter,
                "page size {} is not a power of two from 4 KiB to 32 KiB",
                options.page_size
            );
        }
        if options.read_only {
            bail!(InvalidParameter, "a database cannot be created read-only");
        }
        let dir = parent_dir(path);
        let dir_exists = dir.as_os_str().is_empty()
            || env
                .vfs
                .is_dir(dir)
                .map_err(|err| JetError::io(format!("look up {}", dir.display()), &err))?;
        if !dir_exists {
            bail!(
                InvalidPath,
                "the directory {} does not exist",
                dir.display()
            );
        }
        let file = env
            .vfs
            .open(path, OpenMode::CreateNew)
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::AlreadyExists => JetError::new(
                    ErrorKind::DatabaseDuplicate,
                    format!("{} already exists", path.display()),
                ),
                _ => JetError::io(format!("create {}", path.display()), &err),
            })?;
        let now = env.clock.now_millis();
        let header = DbHeader {
            format_version: header::FORMAT_VERSION,
            page_size: u32::try_from(options.page_size).expect("page size checked"),
            sequence: 0,
            db_signature: Signature {
                random: env.entropy.next_u64(),
                created_millis: now,
            },
            log_signature: Signature {
                random: env.entropy.next_u64(),
                created_millis: now,
            },
            state: DbState::CleanShutdown,
            dbtime: 1,
            page_count: CATALOG_ROOT + 1,
            free_head: 0,
            free_count: 0,
            consistent_lgpos: Lgpos::default(),
            consistent_millis: now,
            backup_full: Default::default(),
            backup_incremental: Default::default(),
            log_through: Lgpos::default(),
            // The catalog root below is written with the header's dbtime; there are no map
            // pages yet (the first comes with the first page allocated).
            catalog_stamp: 1,
            map_digest: crate::store::flushmap::digest(std::iter::empty()),
        };
        // The catalog root first, then the two header copies: a file whose header is whole is a
        // whole database.
        let mut page = vec![0u8; options.page_size];
        node::init_tree(&mut page, PageKind::Leaf, 0);
        crate::store::page::seal(
            &mut page,
            crate::store::page::PageHeader {
                pgno: CATALOG_ROOT,
                dbtime: header.dbtime,
                kind: PageKind::Leaf,
            },
        );
        let io = |what: &str| {
            let path = path.display().to_string();
            let what = what.to_string();
            move |err: std::io::Error| JetError::io(format!("{path}: {what}"), &err)
        };
        file.write_all_at(&page, u64::from(CATALOG_ROOT) * options.page_size as u64)
            .map_err(io("write the catalog"))?;
        file.sync().map_err(io("fsync"))?;
        for pgno in [header::HEADER_PGNO, header::SHADOW_PGNO] {
            file.write_all_at(
                &header.encode(pgno),
                u64::from(pgno) * options.page_size as u64,
            )
            .map_err(io("write the header"))?;
            file.sync().map_err(io("fsync"))?;
        }
        env.vfs.sync_dir(dir).map_err(io("fsync its directory"))?;
        drop(file);
        Database::open(env, path, options)
    }

    /// Opens the existing database file at `path`.
    pub fn open(env: &Env, path: &Path, options: &DatabaseOptions) -> Result<Database> {
        Database::open_inner(env, path, options, false)
    }

    /// Opens the database of an instance, under its write-ahead log: a file left
    /// `DirtyShutdown` is accepted (recovery has made it consistent), and changed pages wait
    /// for the log (see `Pager::capture`).
    pub(crate) fn open_logged(
        env: &Env,
        path: &Path,
        options: &DatabaseOptions,
    ) -> Result<Database> {
        Database::open_inner(env, path, options, true)
    }

    fn open_inner(
        env: &Env,
        path: &Path,
        options: &DatabaseOptions,
        logged: bool,
    ) -> Result<Database> {
        doublewrite::check_database_path(path)?;
        let mode = if options.read_only {
            OpenMode::Read
        } else {
            OpenMode::ReadWrite
        };
        let file = env
            .vfs
            .open(path, mode)
            .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
        let mut copies = header::read_copies(&*file).map_err(|err| err.context(path.display()))?;
        let mut header = header::choose(&copies)
            .map_err(|err| err.context(path.display()))?
            .clone();
        // A batch of writes a crash interrupted is finished first: the file then holds it
        // whole.
        let pending = match planted::active(env, PlantedBug::RecoveryIgnoresInterruptedBatch) {
            true => None,
            false => doublewrite::recover(&*env.vfs, path, &*file, &header, !options.read_only)?,
        };
        if let Some((image, _)) = pending {
            header = image;
            copies = header::read_copies(&*file).map_err(|err| err.context(path.display()))?;
        }
        if header.state != DbState::CleanShutdown && !logged {
            bail!(
                DatabaseDirtyShutdown,
                "{} was not shut down cleanly (state {:?}); its changes since the last flush are incomplete",
                path.display(),
                header.state
            );
        }
        let len = file
            .len()
            .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
        let needed = u64::from(header.page_count) * u64::from(header.page_size);
        if len < needed {
            bail!(
                DatabaseCorrupted,
                "{} is truncated: its header names {} pages ({needed} bytes) but the file holds {len} bytes",
                path.display(),
                header.page_count
            );
        }
        // Pages past the header's count are named by no state: a batch a crash cut off
        // before its seal may have left fresh pages there, torn. They are cut off, so no
        // check or backup of the file ever meets them.
        if !options.read_only && len > needed {
            file.set_len(needed)
                .and_then(|()| file.sync())
                .map_err(|err| {
                    JetError::io(
                        format!("{}: cut the pages past its page count", path.display()),
                        &err,
                    )
                })?;
        }
        // One copy bad or stale (a torn header write, bit rot): it is repaired from the other
        // now, so no later header write has both copies in flight.
        if !options.read_only {
            header::repair_copies(&*file, &copies, &header)
                .map_err(|err| err.context(path.display()))?;
        }
        let mut pager = Pager::new(
            env.vfs.clone(),
            file,
            path,
            header,
            !options.read_only,
            options.cache_size,
        );
        if logged {
            pager.enable_logging();
        }
        if planted::active(env, PlantedBug::BatchSkipsDoublewrite) {
            pager.skip_doublewrite();
        }
        if planted::active(env, PlantedBug::CheckpointSkipsCacheBound) {
            pager.keep_frozen();
        }
        pager.weaken_checks(
            planted::active(env, PlantedBug::PageChecksumUnchecked),
            planted::active(env, PlantedBug::FlushMapUnchecked),
        );
        pager.load_flush_map()?;
        let tables: BTreeMap<String, Table> = catalog::load(&mut pager)?
            .into_iter()
            .zip(1..)
            .map(|((name, root), id)| (name, Table { root, id }))
            .collect();
        let next_table_id = tables.len() as u64 + 1;
        Ok(Database {
            pager,
            tables,
            next_table_id,
            failed: None,
        })
    }

    /// The database header as it stands in memory (it reaches the file at the next flush).
    pub fn header(&self) -> &DbHeader {
        self.pager.header()
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> usize {
        self.pager.page_size()
    }

    /// The names of the tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// Creates table `name`; fails with `JET_errTableDuplicate` if it exists.
    pub fn create_table(&mut self, name: &str) -> Result<Table> {
        self.check_writable()?;
        if name.is_empty() || name.len() > limits::TABLE_NAME_LEN_MAX || name.contains('\0') {
            bail!(
                InvalidName,
                "table name {name:?} must be 1 to {} bytes without NUL",
                limits::TABLE_NAME_LEN_MAX
            );
        }
        if self.tables.contains_key(name) {
            bail!(TableDuplicate, "table {name:?} already exists");
        }
        let root = self.change(|db| {
            let root = db
                .pager
                .alloc(|page| node::init_tree(page, PageKind::Leaf, 0))?;
            catalog::insert(&mut db.pager, name, root)?;
            Ok(root)
        })?;
        let table = Table {
            root,
            id: self.next_table_id,
        };
        self.next_table_id += 1;
        self.tables.insert(name.to_string(), table);
        Ok(table)
    }

    /// The table called `name`; fails with `JET_errObjectNotFound` if there is none.
    pub fn open_table(&self, name: &str) -> Result<Table> {
        self.check_usable()?;
        match self.tables.get(name) {
            Some(&table) => Ok(table),
            None => bail!(ObjectNotFound, "no table {name:?}"),
        }
    }

    /// Deletes table `name` and frees all its pages.
    pub fn delete_table(&mut self, name: &str) -> Result<()> {
        self.check_writable()?;
        let root = self.open_table(name)?.root;
        self.change(|db| {
            let mut pages = Vec::new();
            let mut chains = Vec::new();
            btree::visit(
                &mut db.pager,
                root,
                &mut |pgno| pages.push(pgno),
                &mut |chain| chains.push(chain),
            )?;
            for chain in chains {
                overflow::release(&mut db.pager, Some(chain))?;
            }
            for pgno in pages {
                db.pager.free(pgno)?;
            }
            catalog::remove(&mut db.pager, name)
        })?;
        self.tables.remove(name);
        Ok(())
    }

    /// Stores `value` under `key` in `table`, replacing any value it had.
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_table(table)?;
        check_key(key)?;
        check_value(value)?;
        self.change(|db| {
            let stored = overflow::store(&mut db.pager, key, value)?;
            if let Some(chain) = btree::insert(&mut db.pager, table.root, key, stored)? {
                overflow::release(&mut db.pager, chain)?;
            }
            Ok(())
        })
    }

    /// The value stored under `key` in `table`.
    pub fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_table(table)?;
        check_key(key)?;
        match btree::get(&mut self.pager, table.root, key)? {
            Some(value) => Ok(Some(overflow::load(&mut self.pager, value)?)),
            None => Ok(None),
        }
    }

    /// Whether `table` holds `key` (its value is not read).
    pub(crate) fn contains(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        self.check_table(table)?;
        check_key(key)?;
        btree::contains(&mut self.pager, table.root, key)
    }

    /// Removes `key` from `table`; returns whether it was there.
    pub fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        self.check_writable()?;
        self.check_table(table)?;
        check_key(key)?;
        self.change(|db| match btree::delete(&mut db.pager, table.root, key)? {
            Some(chain) => {
                overflow::release(&mut db.pager, chain)?;
                Ok(true)
            }
            None => Ok(false),
        })
    }

    /// A cursor over `table`, not yet positioned.
    pub fn cursor(&mut self, table: Table) -> Result<Cursor<'_>> {
        self.check_table(table)?;
        Ok(Cursor {
            db: self,
            root: table.root,
            current: None,
        })
    }

    /// The records of `table` whose keys lie in `range`, in ascending key order (or descending,
    /// with `reverse`). `range` is `..` or a pair of [`Bound`]s over byte slices.
    ///
    /// ```
    /// use std::ops::Bound::{Excluded, Included};
    /// # fn main() -> jetdb::Result<()> {
    /// # let env = jetdb::Env::memory(1);
    /// # let mut db = jetdb::Database::create(&env, "d.edb".as_ref(), &Default::default())?;
    /// let t = db.create_table("t")?;
    /// for k in [b"a", b"b", b"c", b"d"] {
    ///     db.put(t, k, b"v")?;
    /// }
    /// let keys: Vec<Vec<u8>> = db.range(t, (Included(&b"b"[..]), Excluded(&b"d"[..])), false)?
    ///     .map(|r| r.map(|(k, _)| k))
    ///     .collect::<jetdb::Result<_>>()?;
    /// assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    /// # Ok(()) }
    /// ```
    pub fn range<R: RangeBounds<[u8]>>(
        &mut self,
        table: Table,
        range: R,
        reverse: bool,
    ) -> Result<Range<'_>> {
        self.check_table(table)?;
        Ok(Range {
            db: self,
            root: table.root,
            start: range.start_bound().map(|k| k.to_vec()),
            end: range.end_bound().map(|k| k.to_vec()),
            reverse,
            position: None,
            last_key: Vec::new(),
            done: false,
        })
    }

    /// Writes every change to the file and syncs it, leaving the file consistent.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        let result = self.pager.flush();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Flushes and closes the database.
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }

    /// How many changed pages wait in the cache for the next flush.
    pub fn dirty_pages(&self) -> usize {
        self.pager.dirty_pages()
    }

    /// Numbers this database's table handles from `base` on, so handles from another open of
    /// the same file (an earlier init of an instance) are refused.
    pub(crate) fn number_tables_from(&mut self, base: u64) {
        let mut id = base;
        for table in self.tables.values_mut() {
            id += 1;
            table.id = id;
        }
        self.next_table_id = id + 1;
    }

    pub(crate) fn pager_mut(&mut self) -> &mut Pager {
        &mut self.pager
    }

    /// The name of the open table whose root is `root`.
    pub(crate) fn table_name(&self, root: Pgno) -> Option<&str> {
        self.tables
            .iter()
            .find(|(_, table)| table.root == root)
            .map(|(name, _)| name.as_str())
    }

    pub(crate) fn table_roots(&self) -> BTreeMap<String, Pgno> {
        self.tables
            .iter()
            .map(|(name, table)| (name.clone(), table.root))
            .collect()
    }

    /// Refuses every call, reads included, after a failed change or write: the pages in memory
    /// may be half-changed, and the file's state is unknown.
    pub(crate) fn check_usable(&self) -> Result<()> {
        let failure = self.failed.as_ref().or(self.pager.poisoned());
        if let Some(err) = failure {
            bail!(
                DatabaseUnavailable,
                "an earlier change or write failed ({err}); the database must be reopened"
            );
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        pager::ensure_writable(&self.pager)?;
        self.check_usable()
    }

    pub(crate) fn check_table(&self, table: Table) -> Result<()> {
        self.check_usable()?;
        if self.tables.values().any(|&known| known == table) {
            Ok(())
        } else {
            bail!(
                InvalidTableId,
                "the table handle (root page {}) names no table of this database now",
                table.root
            )
        }
    }

    /// Runs a change; a failure in its middle latches the database as failed.
    fn change<T>(&mut self, f: impl FnOnce(&mut Database) -> Result<T>) -> Result<T> {
        // Without a log, a cache full of changed pages is written as a batch between
        // changes, never in the middle of one (a tree half-way through a split is no state to
        // write).
        let result = f(self).and_then(|value| self.pager.relieve_unlogged().map(|()| value));
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }
}

/// Refuses a value longer than the limit (`JET_errColumnTooBig`).
pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > limits::VALUE_LEN_MAX {
        bail!(
            ColumnTooBig,
            "a value of {} bytes; the most is {}",
            value.len(),
            limits::VALUE_LEN_MAX
        );
    }
    Ok(())
}

/// Refuses a key longer than the limit (`JET_errKeyTooBig`).
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > limits::KEY_LEN_MAX {
        bail!(
            KeyTooBig,
            "a key of {} bytes; the most is {}",
            key.len(),
            limits::KEY_LEN_MAX
        );
    }
    Ok(())
}

/// A position in a table: seek to a key, then step forwards or backwards.
///
/// ```
/// use jetdb::SeekMode;
/// # fn main() -> jetdb::Result<()> {
/// # let env = jetdb::Env::memory(1);
/// # let mut db = jetdb::Database::create(&env, "d.edb".as_ref(), &Default::default())?;
/// let t = db.create_table("t")?;
/// db.put(t, b"b", b"2")?;
/// db.put(t, b"d", b"4")?;
/// let mut cursor = db.cursor(t)?;
/// assert!(cursor.seek(b"c", SeekMode::Ge)?);
/// assert_eq!(cursor.key()?, b"d");
/// assert!(cursor.move_prev()?);
/// assert_eq!(cursor.value()?, b"2");
/// assert!(!cursor.move_prev()?, "nothing before the first record");
/// # Ok(()) }
/// ```
pub struct Cursor<'db> {
    db: &'db mut Database,
    root: Pgno,
    /// The current record and where it stands, so a step reads one leaf instead of descending.
    current: btree::Found,
}

impl Cursor<'_> {
    /// Positions on the record that `mode` picks relative to `key`; returns whether there is one.
    /// When there is none, or the seek fails, the cursor is left on no record. `key` may be
    /// longer than any stored key: it is only compared.
    pub fn seek(&mut self, key: &[u8], mode: SeekMode) -> Result<bool> {
        let root = self.root;
        self.reposition(|pager, _| btree::seek(pager, root, key, mode))
    }

    /// Positions on the first record; returns whether the table has one.
    pub fn move_first(&mut self) -> Result<bool> {
        let root = self.root;
        self.reposition(|pager, _| btree::edge(pager, root, true))
    }

    /// Positions on the last record; returns whether the table has one.
    pub fn move_last(&mut self) -> Result<bool> {
        let root = self.root;
        self.reposition(|pager, _| btree::edge(pager, root, false))
    }

    /// Moves to the next record; returns false (leaving the cursor on no record) past the last.
    pub fn move_next(&mut self) -> Result<bool> {
        self.step(true)
    }

    /// Moves to the previous record; returns false (leaving the cursor on no record) before the
    /// first.
    pub fn move_prev(&mut self) -> Result<bool> {
        self.step(false)
    }

    fn step(&mut self, forward: bool) -> Result<bool> {
        if self.current.is_none() {
            bail!(NoCurrentRecord, "the cursor is on no record");
        }
        self.reposition(|pager, current| {
            let (entry, position) = current.expect("checked above");
            btree::step(pager, position, &entry.key, forward)
        })
    }

    /// Moves the cursor to what `find` returns; on any failure the cursor is on no record.
    fn reposition(
        &mut self,
        find: impl FnOnce(&mut Pager, btree::Found) -> Result<btree::Found>,
    ) -> Result<bool> {
        let current = self.current.take();
        self.db.check_usable()?;
        self.current = find(&mut self.db.pager, current)?;
        Ok(self.current.is_some())
    }

    fn entry(&self) -> Result<&LeafEntry> {
        self.db.check_usable()?;
        match &self.current {
            Some((entry, _)) => Ok(entry),
            None => bail!(NoCurrentRecord, "the cursor is on no record"),
        }
    }

    /// The key of the current record.
    pub fn key(&self) -> Result<&[u8]> {
        Ok(&self.entry()?.key)
    }

    /// The value of the current record.
    pub fn value(&mut self) -> Result<Vec<u8>> {
        self.db.check_usable()?;
        let value = self.entry()?.value.clone();
        overflow::load(&mut self.db.pager, value)
    }

    /// The length of the current record's value, without reading it.
    pub fn value_len(&self) -> Result<usize> {
        Ok(self.entry()?.value.len())
    }
}

/// An iterator over the records of a key range, from [`Database::range`]. It stops after the
/// first error, which it yields.
pub struct Range<'db> {
    db: &'db mut Database,
    root: Pgno,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
    /// Where the last record returned stands (`None` before the first).
    position: Option<btree::Position>,
    /// The key of the last record returned, kept for the next step's order check.
    last_key: Vec<u8>,
    done: bool,
}

impl Range<'_> {
    fn advance(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.db.check_usable()?;
        let pager = &mut self.db.pager;
        // A reverse scan starts from the end bound and stops at the start bound.
        let (from, to) = if self.reverse {
            (&self.end, &self.start)
        } else {
            (&self.start, &self.end)
        };
        let found = match self.position.take() {
            Some(position) => btree::step(pager, position, &self.last_key, !self.reverse)?,
            None => match (from, self.reverse) {
                (Bound::Unbounded, reverse) => btree::edge(pager, self.root, !reverse)?,
                (Bound::Included(k), false) => btree::seek(pager, self.root, k, SeekMode::Ge)?,
                (Bound::Excluded(k), false) => btree::seek(pager, self.root, k, SeekMode::Gt)?,
                (Bound::Included(k), true) => btree::seek(pager, self.root, k, SeekMode::Le)?,
                (Bound::Excluded(k), true) => btree::seek(pager, self.root, k, SeekMode::Lt)?,
            },
        };
        let Some((entry, position)) = found else {
            return Ok(None);
        };
        let key = entry.key.as_slice();
        let within = match (to, self.reverse) {
            (Bound::Unbounded, _) => true,
            (Bound::Included(k), false) => key <= k.as_slice(),
            (Bound::Excluded(k), false) => key < k.as_slice(),
            (Bound::Included(k), true) => key >= k.as_slice(),
            (Bound::Excluded(k), true) => key > k.as_slice(),
        };
        if !within {
            return Ok(None);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.position = Some(position);
        let value = overflow::load(pager, entry.value)?;
        Ok(Some((entry.key, value)))
    }
}

impl Iterator for Range<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
