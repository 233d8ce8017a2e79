//! B+tree operations over the pager: lookup, insert, delete, seek, and the splits, merges and
//! redistributions that keep every page within its size.
//!
//! Pages are read and changed in place through `node`: a put or delete descends once, records
//! the branches it passed on the stack, and changes one leaf; only a page without room (a split)
//! or one left below a quarter full (a merge or redistribution) touches more.
//!
//! A tree is named by its root page, which never moves: when the root splits, both halves move
//! to new pages under it; when a branch root is left with one child, that child's content moves
//! up.
//!
//! Structure invariants (checked by `integrity`): keys ascend strictly across the leaves from left
//! to right; every key under child `i` of a branch lies in `[key(i-1), key(i))`; every leaf is at
//! the same depth; every page but the root holds at least one key. There are no sibling links: a scan steps to the next leaf through the path
//! from the root, so a split or merge touches only the pages it changes and their parent.

use std::collections::BTreeSet;
use std::mem;
use std::ops::Range;

use crate::base::error::{Result, bail};
use crate::store::node::{self, Chain, LeafEntry, Value, ValueRef};
use crate::store::page::{PageKind, Pgno};
use crate::store::pager::Pager;

/// A corrupt tree cannot send a descent round in a loop: no real tree is this deep (a fan-out of
/// at least 15 keys per branch reaches 2^32 pages in 9 levels).
pub(crate) const DEPTH_MAX: usize = 32;

/// How to position on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekMode {
    /// The key itself.
    Eq,
    /// The smallest key greater than or equal to the key.
    Ge,
    /// The smallest key greater than the key.
    Gt,
    /// The largest key less than or equal to the key.
    Le,
    /// The largest key less than the key.
    Lt,
}

impl SeekMode {
    fn forward(self) -> bool {
        matches!(self, SeekMode::Eq | SeekMode::Ge | SeekMode::Gt)
    }

    /// Whether `found` is an answer this mode may give for a seek to `key`.
    fn admits(self, found: &[u8], key: &[u8]) -> bool {
        match self {
            SeekMode::Eq => found == key,
            SeekMode::Ge => found >= key,
            SeekMode::Gt => found > key,
            SeekMode::Le => found <= key,
            SeekMode::Lt => found < key,
        }
    }
}

/// A `JET_errDatabaseCorrupted` error naming the database file and `what` is wrong.
fn corruption(pager: &Pager, what: std::fmt::Arguments<'_>) -> crate::JetError {
    crate::JetError::new(
        crate::ErrorKind::DatabaseCorrupted,
        format!("{}: {what}", pager.path().display()),
    )
}

fn corrupt_kind(pager: &Pager, pgno: Pgno, kind: Option<PageKind>) -> crate::JetError {
    corruption(
        pager,
        format_args!("page {pgno} is a {kind:?} page inside a B+tree"),
    )
}

fn empty_leaf(pager: &Pager, pgno: Pgno) -> crate::JetError {
    corruption(
        pager,
        format_args!("leaf page {pgno} is empty but is not a root"),
    )
}

fn too_deep(pager: &Pager, pgno: Pgno) -> crate::JetError {
    corruption(
        pager,
        format_args!("the tree is deeper than {DEPTH_MAX} levels at page {pgno} (a loop?)"),
    )
}

/// One step of a descent: a branch page and the index of the child taken.
#[derive(Clone, Copy, Debug, Default)]
struct Step {
    pgno: Pgno,
    child: usize,
}

/// The branches from the root down to a leaf, kept on the stack: a put or delete allocates
/// nothing on its way down.
struct Path {
    steps: [Step; DEPTH_MAX],
    len: usize,
}

/// Descends from `root` to the leaf whose range holds `key`, recording the branches in `path`.
fn descend_to(pager: &mut Pager, root: Pgno, key: &[u8], path: &mut Path) -> Result<Pgno> {
    let mut pgno = root;
    loop {
        let page = pager.page(pgno)?;
        match node::kind(page) {
            Some(PageKind::Branch) => {
                let child = node::child_index(page, key);
                let next = node::child(page, child);
                if path.len >= DEPTH_MAX {
                    return Err(too_deep(pager, pgno));
                }
                path.steps[path.len] = Step { pgno, child };
                path.len += 1;
                pgno = next;
            }
            Some(PageKind::Leaf) => {
                if node::count(page) == 0 && path.len > 0 {
                    return Err(empty_leaf(pager, pgno));
                }
                return Ok(pgno);
            }
            other => return Err(corrupt_kind(pager, pgno, other)),
        }
    }
}

fn new_path() -> Path {
    Path {
        steps: [Step::default(); DEPTH_MAX],
        len: 0,
    }
}

/// The value stored under `key`.
pub(crate) fn get(pager: &mut Pager, root: Pgno, key: &[u8]) -> Result<Option<Value>> {
    let leaf = descend_to(pager, root, key, &mut new_path())?;
    let page = pager.page(leaf)?;
    Ok(node::search(page, key)
        .ok()
        .map(|i| node::value(page, i).to_owned()))
}

/// Whether the tree holds `key`.
pub(crate) fn contains(pager: &mut Pager, root: Pgno, key: &[u8]) -> Result<bool> {
    let leaf = descend_to(pager, root, key, &mut new_path())?;
    Ok(node::search(pager.page(leaf)?, key).is_ok())
}

/// What a put or delete found under its key: `None` if nothing, otherwise the overflow chain
/// the old value owned (which the caller frees), if any.
pub(crate) type Prior = Option<Option<Chain>>;

/// Stores `value` under `key`.
pub(crate) fn insert(
    pager: &mut Pager,
    root: Pgno,
    key: &[u8],
    value: ValueRef<'_>,
) -> Result<Prior> {
    let mut path = new_path();
    let leaf = descend_to(pager, root, key, &mut path)?;
    let page = pager.page(leaf)?;
    let found = node::search(page, key);
    let prior = found.ok().map(|i| node::value(page, i).chain());
    let mut record = pager.take_buffer();
    node::leaf_record(&mut record, key, value);
    let page = pager.page_mut(leaf)?;
    let done = match found {
        Ok(i) => node::replace(page, i, &record),
        Err(i) => node::insert(page, i, &record),
    };
    let result = if done {
        Ok(())
    } else {
        let i = match found {
            Ok(i) => {
                node::remove(page, i);
                i
            }
            Err(i) => i,
        };
        insert_at(pager, root, &path, path.len, leaf, i, record.clone())
    };
    pager.give_buffer(record);
    result.map(|()| prior)
}

/// Removes `key`.
pub(crate) fn delete(pager: &mut Pager, root: Pgno, key: &[u8]) -> Result<Prior> {
    let mut path = new_path();
    let leaf = descend_to(pager, root, key, &mut path)?;
    let page = pager.page(leaf)?;
    let Ok(i) = node::search(page, key) else {
        // An absent key changes no page.
        return Ok(None);
    };
    let chain = node::value(page, i).chain();
    node::remove(pager.page_mut(leaf)?, i);
    let page_size = pager.page_size();
    let mut depth = path.len;
    let mut pgno = leaf;
    while depth > 0 && node::used(pager.page(pgno)?) < page_size / 4 {
        let parent = path.steps[depth - 1];
        if !rebalance(pager, root, &path, depth - 1, pgno)? {
            break;
        }
        // The parent lost a key to a merge: it may be underfull in turn.
        pgno = parent.pgno;
        depth -= 1;
    }
    collapse_root(pager, root)?;
    Ok(Some(chain))
}

/// Records copied out of pages, to be shared between pages anew.
#[derive(Default)]
struct Gathered {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Gathered {
    fn push(&mut self, record: &[u8]) {
        self.spans.push((self.bytes.len(), record.len()));
        self.bytes.extend_from_slice(record);
    }

    fn push_page(&mut self, page: &[u8]) {
        for i in 0..node::count(page) {
            self.push(node::record(page, i));
        }
    }

    fn get(&self, j: usize) -> &[u8] {
        let (at, len) = self.spans[j];
        &self.bytes[at..at + len]
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the records' keys ascend strictly: always, across two sibling pages of a sound
    /// tree; a corrupt one may hold keys misplaced across them.
    fn ascending(&self) -> bool {
        (1..self.len()).all(|j| node::record_key(self.get(j - 1)) < node::record_key(self.get(j)))
    }

    /// Whether records `range` fit one page.
    fn fits(&self, page_size: usize, range: Range<usize>) -> bool {
        node::fits(page_size, self.spans[range].iter().map(|&(_, len)| len))
    }

    fn sizes(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        self.spans.iter().map(|&(_, len)| len + 2)
    }

    /// Makes `page` a tree page of `kind` holding records `range`.
    fn build(&self, page: &mut [u8], kind: PageKind, leftmost: Pgno, range: Range<usize>) {
        node::init_tree(page, kind, leftmost);
        for (i, j) in range.enumerate() {
            assert!(
                node::insert(page, i, self.get(j)),
                "a split half fits its page"
            );
        }
    }
}

/// How a full page's records are shared between two pages: the left takes `..at`; a leaf's
/// right takes `at..`; a branch's record `at` moves up (its key the separator, its child the
/// right page's leftmost) and the right takes `at + 1..`.
struct Halves {
    at: usize,
    separator: Vec<u8>,
    right_leftmost: Pgno,
    right: Range<usize>,
}

fn halves(g: &Gathered, kind: PageKind, appended: bool) -> Halves {
    let n = g.len();
    if kind == PageKind::Leaf {
        assert!(n >= 2, "an overfull leaf holds at least two records");
        let at = if appended {
            n - 1
        } else {
            split_point(g.sizes(), 1, n - 1)
        };
        Halves {
            at,
            separator: shortest_separator(
                node::record_key(g.get(at - 1)),
                node::record_key(g.get(at)),
            ),
            right_leftmost: 0,
            right: at..n,
        }
    } else {
        assert!(n >= 3, "an overfull branch holds at least three keys");
        let at = split_point(g.sizes(), 1, n - 2);
        Halves {
            at,
            separator: node::record_key(g.get(at)).to_vec(),
            right_leftmost: node::record_child(g.get(at)),
            right: at + 1..n,
        }
    }
}

/// Inserts `record` as record `i` of page `pgno`, at `depth` below the root (`path` holds the
/// branches above it). A page without room splits, and the separator goes up to its parent in
/// turn; a root that splits keeps its page number: both halves move to new pages under it.
fn insert_at(
    pager: &mut Pager,
    root: Pgno,
    path: &Path,
    mut depth: usize,
    mut pgno: Pgno,
    mut i: usize,
    mut record: Vec<u8>,
) -> Result<()> {
    loop {
        let page = pager.page_mut(pgno)?;
        if node::insert(page, i, &record) {
            return Ok(());
        }
        let kind = node::kind(page).expect("a cached page has a known kind");
        let leftmost = if kind == PageKind::Branch {
            node::child(page, 0)
        } else {
            0
        };
        let appended = i == node::count(page);
        // A record appended to the tree's last leaf: keys arrive in ascending order, so the
        // leaf is left full and the new record starts the next one (SQLite's balance_quick).
        let ascending = kind == PageKind::Leaf && appended && rightmost(pager, path, depth)?;
        if pgno != root && depth > 0 && !ascending {
            let parent = path.steps[depth - 1];
            check_child(pager, parent, pgno)?;
            let full = Full {
                pgno,
                kind,
                leftmost,
                i,
                record: &record,
            };
            if share(pager, root, path, depth - 1, &full)? {
                return Ok(());
            }
        }
        let g = Full {
            pgno,
            kind,
            leftmost,
            i,
            record: &record,
        }
        .gather(pager.page(pgno)?);
        let h = halves(&g, kind, ascending);
        let right = pager.alloc(|p| g.build(p, kind, h.right_leftmost, h.right.clone()))?;
        if pgno == root {
            let left = pager.alloc(|p| g.build(p, kind, leftmost, 0..h.at))?;
            let page = pager.page_mut(root)?;
            node::init_tree(page, PageKind::Branch, left);
            node::branch_record(&mut record, &h.separator, right);
            assert!(node::insert(page, 0, &record), "a new root has room");
            return Ok(());
        }
        g.build(pager.page_mut(pgno)?, kind, leftmost, 0..h.at);
        if depth == 0 {
            bail!(
                DatabaseCorrupted,
                "{}: page {pgno} split with no parent (a shared page?)",
                pager.path().display()
            );
        }
        depth -= 1;
        let parent = path.steps[depth];
        check_child(pager, parent, pgno)?;
        node::branch_record(&mut record, &h.separator, right);
        pgno = parent.pgno;
        i = parent.child;
    }
}

/// A page without room for a record: the page, its kind, a branch's leftmost child, and the
/// record to go in at index `i`.
struct Full<'a> {
    pgno: Pgno,
    kind: PageKind,
    leftmost: Pgno,
    i: usize,
    record: &'a [u8],
}

impl Full<'_> {
    /// The page's records with the new one in its place, gathered.
    fn gather(&self, page: &[u8]) -> Gathered {
        let mut g = Gathered::default();
        for j in 0..node::count(page) {
            if j == self.i {
                g.push(self.record);
            }
            g.push(node::record(page, j));
        }
        if self.i == node::count(page) {
            g.push(self.record);
        }
        g
    }
}

/// Before full page `full.pgno` (child of the branch at `depth` of `path`) splits, shares its
/// records and the one being inserted with the neighbour that has more room, if it has a
/// sixteenth of a page free: pages stay fuller and the file smaller (SQLite's balance shares
/// cells among siblings for the same reason). Returns whether it did; the parent's separator
/// changes, and may split the parent in turn.
fn share(
    pager: &mut Pager,
    root: Pgno,
    path: &Path,
    depth: usize,
    full: &Full<'_>,
) -> Result<bool> {
    let (pgno, kind) = (full.pgno, full.kind);
    let page_size = pager.page_size();
    let parent = path.steps[depth];
    let ci = parent.child;
    let (left_sibling, right_sibling) = {
        let p = pager.page(parent.pgno)?;
        let n = node::children(p);
        (
            ci.checked_sub(1).map(|j| node::child(p, j)),
            (ci + 1 < n).then(|| node::child(p, ci + 1)),
        )
    };
    let mut best: Option<(Pgno, bool, usize)> = None;
    for (sibling, is_right) in [(right_sibling, true), (left_sibling, false)] {
        let Some(sibling) = sibling else { continue };
        if sibling == pgno || sibling == parent.pgno || sibling == root {
            bail!(
                DatabaseCorrupted,
                "{}: branch page {} links to page {sibling} twice",
                pager.path().display(),
                parent.pgno
            );
        }
        let sibling_kind = pager.kind(sibling)?;
        if sibling_kind != kind {
            bail!(
                DatabaseCorrupted,
                "{}: sibling pages {pgno} ({kind:?}) and {sibling} ({sibling_kind:?}) are of different kinds",
                pager.path().display()
            );
        }
        let free = page_size.saturating_sub(node::used(pager.page(sibling)?));
        if best.is_none_or(|(_, _, f)| free > f) {
            best = Some((sibling, is_right, free));
        }
    }
    let Some((sibling, is_right, free)) = best else {
        return Ok(false);
    };
    if free < page_size / 16 {
        return Ok(false);
    }
    let li = if is_right { ci } else { ci - 1 };
    if kind == PageKind::Leaf {
        return shift_leaf(pager, root, path, depth, full, sibling, is_right, li);
    }
    let g = full.gather(pager.page(pgno)?);
    let separator = node::key(pager.page(parent.pgno)?, li).to_vec();
    let mut all = Gathered::default();
    let mut record = Vec::new();
    let (left, right, left_leftmost) = if is_right {
        let sibling_page = pager.page(sibling)?;
        (0..g.len()).for_each(|j| all.push(g.get(j)));
        node::branch_record(&mut record, &separator, node::child(sibling_page, 0));
        all.push(&record);
        all.push_page(sibling_page);
        (pgno, sibling, full.leftmost)
    } else {
        let sibling_page = pager.page(sibling)?;
        let sibling_leftmost = node::child(sibling_page, 0);
        all.push_page(sibling_page);
        node::branch_record(&mut record, &separator, full.leftmost);
        all.push(&record);
        (0..g.len()).for_each(|j| all.push(g.get(j)));
        (sibling, pgno, sibling_leftmost)
    };
    if !all.ascending() {
        return Err(misplaced(pager, left, right));
    }
    let pair = Pair {
        li,
        left,
        right,
        kind,
        left_leftmost,
    };
    redistribute(pager, root, path, depth, &pair, &all)
}

/// [`share`] for a leaf, in place: the records that change pages move between the two, and
/// nothing else is copied. The split point, and so what each page holds after, is the one
/// [`redistribute`] would choose over the records gathered; rebuilding both pages instead
/// cost a fifth of a bulk load of random keys, most of whose inserts into full pages share.
#[allow(
    clippy::too_many_arguments,
    reason = "one step of share, with its state"
)]
fn shift_leaf(
    pager: &mut Pager,
    root: Pgno,
    path: &Path,
    depth: usize,
    full: &Full<'_>,
    sibling: Pgno,
    is_right: bool,
    li: usize,
) -> Result<bool> {
    let (pgno, i, record) = (full.pgno, full.i, full.record);
    // `mine`: the full page's records with the new one at `i`; `theirs`: the sibling's.
    // `all` is the two in key order.
    let page = pager.page(pgno)?;
    let n = node::count(page);
    let slot = 2;
    let mut mine = Vec::with_capacity(n + 1);
    mine.extend((0..i).map(|j| node::record(page, j).len() + slot));
    mine.push(record.len() + slot);
    mine.extend((i..n).map(|j| node::record(page, j).len() + slot));
    let mine_key = |page: &[u8], j: usize| -> Vec<u8> {
        match j.cmp(&i) {
            std::cmp::Ordering::Less => node::key(page, j).to_vec(),
            std::cmp::Ordering::Equal => node::record_key(record).to_vec(),
            std::cmp::Ordering::Greater => node::key(page, j - 1).to_vec(),
        }
    };
    // The key next to the sibling: the last going right, the first going left.
    let mine_edge = mine_key(page, if is_right { n } else { 0 });
    let sibling_page = pager.page(sibling)?;
    let m = node::count(sibling_page);
    let theirs: Vec<usize> = (0..m)
        .map(|j| node::record(sibling_page, j).len() + slot)
        .collect();
    if m > 0 {
        let misplaced_across = if is_right {
            mine_edge.as_slice() >= node::key(sibling_page, 0)
        } else {
            node::key(sibling_page, m - 1) >= mine_edge.as_slice()
        };
        if misplaced_across {
            let (left, right) = if is_right {
                (pgno, sibling)
            } else {
                (sibling, pgno)
            };
            return Err(misplaced(pager, left, right));
        }
    }
    let all: Vec<usize> = if is_right {
        mine.iter().chain(&theirs).copied().collect()
    } else {
        theirs.iter().chain(&mine).copied().collect()
    };
    let at = split_point(all.iter().copied(), 1, all.len() - 1);
    let page_size = pager.page_size();
    let fits = |sizes: &[usize]| node::TREE_HEADER + sizes.iter().sum::<usize>() <= page_size;
    if !fits(&all[..at]) || !fits(&all[at..]) {
        return Ok(false);
    }
    // The full page does not fit one page, so each half takes part of it: some of its
    // records move, never any of the sibling's.
    let moving = if is_right { at..n + 1 } else { 0..at - m };
    assert!(
        !moving.is_empty() && moving.end <= n + 1,
        "a full page gives records to its sibling"
    );
    let page = pager.page(pgno)?;
    let record_at = |j: usize| -> &[u8] {
        match j.cmp(&i) {
            std::cmp::Ordering::Less => node::record(page, j),
            std::cmp::Ordering::Equal => record,
            std::cmp::Ordering::Greater => node::record(page, j - 1),
        }
    };
    let mut moved = Gathered::default();
    moving.clone().for_each(|j| moved.push(record_at(j)));
    let (before, after) = if is_right {
        (moving.start - 1, moving.start)
    } else {
        (moving.end - 1, moving.end)
    };
    let separator = shortest_separator(
        node::record_key(record_at(before)),
        node::record_key(record_at(after)),
    );
    // The page's own records that move (the new one may be among them), then the new one in
    // place if it stays.
    let new_moves = moving.contains(&i);
    let own = if new_moves {
        moving.start..moving.end - 1
    } else if is_right {
        moving.start - 1..moving.end - 1
    } else {
        moving.clone()
    };
    let page = pager.page_mut(pgno)?;
    for j in own.clone().rev() {
        node::remove(page, j);
    }
    if !new_moves {
        let j = if is_right { i } else { i - own.len() };
        assert!(node::insert(page, j, record), "the half that stays fits");
    }
    let sibling_page = pager.page_mut(sibling)?;
    for j in 0..moved.len() {
        let to = if is_right { j } else { m + j };
        assert!(
            node::insert(sibling_page, to, moved.get(j)),
            "the half that moves fits"
        );
    }
    let right = if is_right { sibling } else { pgno };
    let parent = path.steps[depth].pgno;
    node::remove(pager.page_mut(parent)?, li);
    let mut branch = Vec::new();
    node::branch_record(&mut branch, &separator, right);
    insert_at(pager, root, path, depth, parent, li, branch)?;
    Ok(true)
}

/// Two sibling pages: children `li` and `li + 1` of a branch.
struct Pair {
    li: usize,
    left: Pgno,
    right: Pgno,
    kind: PageKind,
    /// A branch pair's leftmost child (0 for leaves).
    left_leftmost: Pgno,
}

/// Shares `all` (the records of `pair`, in key order, with a branch pair's separator between
/// them) evenly between the two pages, and puts the new separator in their parent, the branch at
/// `depth` of `path` (which may split). Returns false, changing nothing, if the halves would
/// not fit.
fn redistribute(
    pager: &mut Pager,
    root: Pgno,
    path: &Path,
    depth: usize,
    pair: &Pair,
    all: &Gathered,
) -> Result<bool> {
    let page_size = pager.page_size();
    let h = halves(all, pair.kind, false);
    if !all.fits(page_size, 0..h.at) || !all.fits(page_size, h.right.clone()) {
        return Ok(false);
    }
    all.build(
        pager.page_mut(pair.left)?,
        pair.kind,
        pair.left_leftmost,
        0..h.at,
    );
    all.build(
        pager.page_mut(pair.right)?,
        pair.kind,
        h.right_leftmost,
        h.right.clone(),
    );
    // The new separator may be longer than the old one: the parent may split.
    let parent = path.steps[depth].pgno;
    node::remove(pager.page_mut(parent)?, pair.li);
    let mut record = Vec::new();
    node::branch_record(&mut record, &h.separator, pair.right);
    insert_at(pager, root, path, depth, parent, pair.li, record)?;
    Ok(true)
}

fn misplaced(pager: &Pager, left: Pgno, right: Pgno) -> crate::JetError {
    corruption(
        pager,
        format_args!("sibling pages {left} and {right} hold keys out of order across them"),
    )
}

/// Whether the way down through the first `depth` branches of `path` always took the last
/// child: the page reached is the last of its level.
fn rightmost(pager: &mut Pager, path: &Path, depth: usize) -> Result<bool> {
    for step in &path.steps[..depth] {
        if step.child + 1 != node::children(pager.page(step.pgno)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// On a sound tree a branch still names, at the index taken on the way down, the child it
/// named then; in a corrupt one a page shared with a level below may have changed under us.
fn check_child(pager: &mut Pager, step: Step, child: Pgno) -> Result<()> {
    let page = pager.page(step.pgno)?;
    let sound = node::kind(page) == Some(PageKind::Branch)
        && step.child < node::children(page)
        && node::child(page, step.child) == child;
    if !sound {
        bail!(
            DatabaseCorrupted,
            "{}: branch page {} changed under an operation below it (a shared page?)",
            pager.path().display(),
            step.pgno
        );
    }
    Ok(())
}

/// Merges page `underfull`, the child the branch at `depth` of `path` was left through, with a
/// neighbour if both fit one page, and otherwise shares their records evenly between the two. Returns whether they merged (the
/// branch lost a key).
fn rebalance(
    pager: &mut Pager,
    root: Pgno,
    path: &Path,
    depth: usize,
    underfull: Pgno,
) -> Result<bool> {
    // The parent must still name the page that fell below a quarter (a corrupt tree, whose
    // pages are shared between places, may have changed it): the size bounds below rely on it.
    check_child(pager, path.steps[depth], underfull)?;
    let i = path.steps[depth].child;
    let parent = path.steps[depth].pgno;
    let page = pager.page(parent)?;
    if node::kind(page) != Some(PageKind::Branch) {
        bail!(
            DatabaseCorrupted,
            "{}: page {parent} changed from a branch (a shared page?)",
            pager.path().display()
        );
    }
    let n = node::children(page);
    if n < 2 {
        // An only child has no neighbour; its parent is fixed one level up.
        return Ok(false);
    }
    let li = i.saturating_sub(1).min(n - 2);
    let (left, right) = (node::child(page, li), node::child(page, li + 1));
    let separator = node::key(page, li).to_vec();
    if left == right || left == parent || right == parent {
        bail!(
            DatabaseCorrupted,
            "{}: branch page {parent} links to page {left} or {right} twice",
            pager.path().display()
        );
    }
    let (left_kind, right_kind) = (pager.kind(left)?, pager.kind(right)?);
    if left_kind != right_kind || !matches!(left_kind, PageKind::Leaf | PageKind::Branch) {
        bail!(
            DatabaseCorrupted,
            "{}: sibling pages {left} ({left_kind:?}) and {right} ({right_kind:?}) are of different kinds",
            pager.path().display()
        );
    }
    let kind = left_kind;
    let mut g = Gathered::default();
    let left_page = pager.page(left)?;
    let leftmost = node::child(left_page, 0);
    g.push_page(left_page);
    let right_page = pager.page(right)?;
    if kind == PageKind::Branch {
        let mut record = Vec::new();
        node::branch_record(&mut record, &separator, node::child(right_page, 0));
        g.push(&record);
    }
    g.push_page(right_page);
    if !g.ascending() {
        return Err(misplaced(pager, left, right));
    }
    let page_size = pager.page_size();
    let leftmost = if kind == PageKind::Branch {
        leftmost
    } else {
        0
    };
    if g.fits(page_size, 0..g.len()) {
        g.build(pager.page_mut(left)?, kind, leftmost, 0..g.len());
        pager.free(right)?;
        node::remove(pager.page_mut(parent)?, li);
        return Ok(true);
    }
    let pair = Pair {
        li,
        left,
        right,
        kind,
        left_leftmost: leftmost,
    };
    redistribute(pager, root, path, depth, &pair, &g)?;
    Ok(false)
}

/// A branch root left with one child takes that child's content, as often as it takes.
fn collapse_root(pager: &mut Pager, root: Pgno) -> Result<()> {
    loop {
        let page = pager.page(root)?;
        if node::kind(page) != Some(PageKind::Branch) || node::count(page) > 0 {
            return Ok(());
        }
        let only_child = node::child(page, 0);
        if only_child == root {
            bail!(
                DatabaseCorrupted,
                "{}: branch page {root} names itself as its child",
                pager.path().display()
            );
        }
        let content = pager.page(only_child)?.to_vec();
        node::copy_content(pager.page_mut(root)?, &content);
        pager.free(only_child)?;
    }
}

/// The index in `[lo, hi]` at which the items' running size first reaches half the total.
fn split_point(sizes: impl Iterator<Item = usize> + Clone, lo: usize, hi: usize) -> usize {
    let total: usize = sizes.clone().sum();
    let mut running = 0;
    for (i, size) in sizes.enumerate() {
        if running + size / 2 >= total / 2 {
            return i.clamp(lo, hi);
        }
        running += size;
    }
    hi
}

/// The shortest prefix of `right` that sorts after `left`: a separator between two leaves that
/// keeps branch pages small.
fn shortest_separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    debug_assert!(left < right);
    (1..=right.len())
        .map(|n| &right[..n])
        .find(|prefix| *prefix > left)
        .unwrap_or(right)
        .to_vec()
}

/// The key range `[low, high)` a page's keys must lie in, as its ancestors' separators say
/// (`None`: unbounded).
#[derive(Clone, Debug, Default)]
struct Bounds {
    low: Option<Vec<u8>>,
    high: Option<Vec<u8>>,
}

impl Bounds {
    fn admit(&self, key: &[u8]) -> bool {
        self.low.as_deref().is_none_or(|low| key >= low)
            && self.high.as_deref().is_none_or(|high| key < high)
    }

    /// The bounds of child `i` of `branch`, whose own bounds are `self`: the separators around
    /// the child, narrowed to the branch's own range. (On a sound tree the separators lie inside
    /// it; narrowing keeps a misplaced separator from widening the range of the keys below.)
    fn child(&self, branch: &[u8], i: usize) -> Bounds {
        let count = node::count(branch);
        let separator_low = i.checked_sub(1).map(|i| node::key(branch, i));
        let separator_high = (i < count).then(|| node::key(branch, i));
        let low = match (self.low.as_deref(), separator_low) {
            (Some(a), Some(b)) => Some(a.max(b).to_vec()),
            (a, b) => a.or(b).map(<[u8]>::to_vec),
        };
        let high = match (self.high.as_deref(), separator_high) {
            (Some(a), Some(b)) => Some(a.min(b).to_vec()),
            (a, b) => a.or(b).map(<[u8]>::to_vec),
        };
        Bounds { low, high }
    }
}

/// A branch on the way down to a cursor's leaf: its page, the child taken (index and page), its
/// own bounds.
#[derive(Clone, Debug)]
struct Level {
    pgno: Pgno,
    child: usize,
    child_pgno: Pgno,
    bounds: Bounds,
}

/// Where a cursor stands: the branches on the way down, and the entry's leaf, index and bounds.
/// It stays valid while the tree does not change, and nothing can change the tree while a
/// cursor holds a position: the cursor borrows the database mutably.
#[derive(Clone, Debug, Default)]
pub(crate) struct Position {
    path: Vec<Level>,
    leaf: Pgno,
    index: usize,
    bounds: Bounds,
}

/// Steps from branch `pgno` (whose bounds are `bounds`) into its child `child`: records the
/// level in `path`, narrows `bounds` to the child's, and returns the child's page.
fn descend(
    path: &mut Vec<Level>,
    bounds: &mut Bounds,
    pgno: Pgno,
    branch: &[u8],
    child: usize,
) -> Pgno {
    let child_pgno = node::child(branch, child);
    let child_bounds = bounds.child(branch, child);
    path.push(Level {
        pgno,
        child,
        child_pgno,
        bounds: mem::replace(bounds, child_bounds),
    });
    child_pgno
}

/// An entry and where it stands.
pub(crate) type Found = Option<(LeafEntry, Position)>;

/// The entry at `key` or nearest to it in the direction `mode` says.
pub(crate) fn seek(pager: &mut Pager, root: Pgno, key: &[u8], mode: SeekMode) -> Result<Found> {
    let mut path: Vec<Level> = Vec::new();
    let mut bounds = Bounds::default();
    let mut pgno = root;
    loop {
        if path.len() >= DEPTH_MAX {
            return Err(too_deep(pager, pgno));
        }
        let page = pager.page(pgno)?;
        match node::kind(page) {
            Some(PageKind::Branch) => {
                let child = node::child_index(page, key);
                pgno = descend(&mut path, &mut bounds, pgno, page, child);
            }
            Some(PageKind::Leaf) => {
                let count = node::count(page);
                if count == 0 && !path.is_empty() {
                    return Err(empty_leaf(pager, pgno));
                }
                let below = node::partition(page, key, false);
                let not_above = node::partition(page, key, true);
                let index = match mode {
                    SeekMode::Eq => Some(below).filter(|&i| i < not_above),
                    SeekMode::Ge => Some(below).filter(|&i| i < count),
                    SeekMode::Gt => Some(not_above).filter(|&i| i < count),
                    SeekMode::Le => not_above.checked_sub(1),
                    SeekMode::Lt => below.checked_sub(1),
                };
                let found = match index {
                    Some(index) => Some((
                        node::entry(page, index),
                        Position {
                            path,
                            leaf: pgno,
                            index,
                            bounds,
                        },
                    )),
                    None if mode == SeekMode::Eq => None,
                    None => step_leaf(pager, path, mode.forward())?,
                };
                return checked(pager, found, key, mode);
            }
            other => return Err(corrupt_kind(pager, pgno, other)),
        }
    }
}

/// The entry after (`forward`) or before the one at `position`, whose key is `key`.
pub(crate) fn step(
    pager: &mut Pager,
    position: Position,
    key: &[u8],
    forward: bool,
) -> Result<Found> {
    let Position {
        path,
        leaf,
        index,
        bounds,
    } = position;
    let page = pager.page(leaf)?;
    let next = match node::kind(page) {
        Some(PageKind::Leaf) => {
            let j = if forward {
                index.checked_add(1)
            } else {
                index.checked_sub(1)
            };
            j.filter(|&j| j < node::count(page))
                .map(|j| (node::entry(page, j), j))
        }
        other => return Err(corrupt_kind(pager, leaf, other)),
    };
    let found = match next {
        Some((entry, index)) => Some((
            entry,
            Position {
                path,
                leaf,
                index,
                bounds,
            },
        )),
        None => step_leaf(pager, path, forward)?,
    };
    checked(
        pager,
        found,
        key,
        if forward { SeekMode::Gt } else { SeekMode::Lt },
    )
}

/// `found`, if it lies within its leaf's bounds and on the side of `key` that `mode` asks for.
/// A sound tree always passes. Checking it turns keys misplaced across pages into an error
/// instead of a wrong answer, and guarantees that a scan, whose every step must pass the
/// current key, ends.
fn checked(pager: &Pager, found: Found, key: &[u8], mode: SeekMode) -> Result<Found> {
    let found = within_bounds(pager, found)?;
    if let Some((entry, _)) = found.as_ref().filter(|(e, _)| !mode.admits(&e.key, key)) {
        bail!(
            DatabaseCorrupted,
            "{}: seeking {mode:?} {key:?} found {:?}: keys out of order across pages",
            pager.path().display(),
            entry.key
        );
    }
    Ok(found)
}

/// The first (`forward`) or last entry of the tree.
pub(crate) fn edge(pager: &mut Pager, root: Pgno, forward: bool) -> Result<Found> {
    let found = descend_edge(pager, root, forward, Vec::new(), Bounds::default())?;
    within_bounds(pager, found)
}

/// `found`, if its key lies in the range its leaf's ancestors give that leaf.
fn within_bounds(pager: &Pager, found: Found) -> Result<Found> {
    if let Some((entry, position)) = found.as_ref().filter(|(e, p)| !p.bounds.admit(&e.key)) {
        bail!(
            DatabaseCorrupted,
            "{}: leaf page {} holds key {:?}, outside the range its branches give it",
            pager.path().display(),
            position.leaf,
            entry.key
        );
    }
    Ok(found)
}

/// From the leaf at the end of `path`, the first entry of the next leaf (or the last of the
/// previous one).
fn step_leaf(pager: &mut Pager, mut path: Vec<Level>, forward: bool) -> Result<Found> {
    while let Some(level) = path.pop() {
        let page = pager.page(level.pgno)?;
        // The branch is read again (it may have been evicted meanwhile); it must still be the
        // page the cursor came down through, or the file changed under it (a lost write).
        let sound = node::kind(page) == Some(PageKind::Branch)
            && level.child < node::children(page)
            && node::child(page, level.child) == level.child_pgno;
        if !sound {
            bail!(
                DatabaseCorrupted,
                "{}: branch page {} changed under a cursor (a lost write, or the file changed underneath)",
                pager.path().display(),
                level.pgno
            );
        }
        let j = if forward {
            level.child.checked_add(1)
        } else {
            level.child.checked_sub(1)
        };
        let next = j
            .filter(|&j| j < node::children(page))
            .map(|j| (j, node::child(page, j), level.bounds.child(page, j)));
        if let Some((child, child_pgno, bounds)) = next {
            path.push(Level {
                child,
                child_pgno,
                ..level
            });
            return descend_edge(pager, child_pgno, forward, path, bounds);
        }
    }
    Ok(None)
}

/// Descends from `pgno`, whose bounds are `bounds`, along the first (or last) children to a leaf
/// and returns its first (or last) entry. Only the root may be an empty leaf.
fn descend_edge(
    pager: &mut Pager,
    mut pgno: Pgno,
    forward: bool,
    mut path: Vec<Level>,
    mut bounds: Bounds,
) -> Result<Found> {
    loop {
        if path.len() >= DEPTH_MAX {
            return Err(too_deep(pager, pgno));
        }
        let page = pager.page(pgno)?;
        match node::kind(page) {
            Some(PageKind::Branch) => {
                let child = if forward { 0 } else { node::children(page) - 1 };
                pgno = descend(&mut path, &mut bounds, pgno, page, child);
            }
            Some(PageKind::Leaf) => {
                let count = node::count(page);
                let index = if forward { 0 } else { count.saturating_sub(1) };
                return match index < count {
                    true => Ok(Some((
                        node::entry(page, index),
                        Position {
                            path,
                            leaf: pgno,
                            index,
                            bounds,
                        },
                    ))),
                    false if path.is_empty() => Ok(None),
                    false => Err(empty_leaf(pager, pgno)),
                };
            }
            other => return Err(corrupt_kind(pager, pgno, other)),
        }
    }
}

/// Every page of the tree under `root`, and every value's overflow chain, visited depth first.
/// Used to free a whole tree.
pub(crate) fn visit(
    pager: &mut Pager,
    root: Pgno,
    visit_page: &mut dyn FnMut(Pgno),
    visit_chain: &mut dyn FnMut(Chain),
) -> Result<()> {
    let mut stack = vec![(root, 0usize)];
    let mut seen = BTreeSet::new();
    while let Some((pgno, depth)) = stack.pop() {
        if depth >= DEPTH_MAX {
            return Err(too_deep(pager, pgno));
        }
        if !seen.insert(pgno) {
            bail!(
                DatabaseCorrupted,
                "{}: page {pgno} is linked twice in one tree",
                pager.path().display()
            );
        }
        visit_page(pgno);
        let page = pager.page(pgno)?;
        match node::kind(page) {
            Some(PageKind::Branch) => {
                stack.extend((0..node::children(page)).map(|i| (node::child(page, i), depth + 1)))
            }
            Some(PageKind::Leaf) => (0..node::count(page))
                .filter_map(|i| node::value(page, i).chain())
                .for_each(&mut *visit_chain),
            other => return Err(corrupt_kind(pager, pgno, other)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_modes_admit_only_keys_on_their_side() {
        // For a seek to "m": what each mode may answer among a key below, at and above it.
        let (below, at, above): (&[u8], &[u8], &[u8]) = (b"l", b"m", b"n");
        for (mode, admitted) in [
            (SeekMode::Eq, [false, true, false]),
            (SeekMode::Ge, [false, true, true]),
            (SeekMode::Gt, [false, false, true]),
            (SeekMode::Le, [true, true, false]),
            (SeekMode::Lt, [true, false, false]),
        ] {
            let got = [below, at, above].map(|found| mode.admits(found, b"m"));
            assert_eq!(got, admitted, "{mode:?}");
        }
    }

    #[test]
    fn deleting_all_but_one_key_of_a_three_level_tree_leaves_a_lone_leaf() {
        // Long keys that differ only at their end keep separators long, so a few hundred
        // records make three levels; every underfull page on the way up is rebalanced, and
        // the root collapses to the one leaf left.
        let env = Env::memory(1);
        let options = DatabaseOptions {
            page_size: 4096,
            ..DatabaseOptions::default()
        };
        let mut db = Database::create(&env, "d.edb".as_ref(), &options).unwrap();
        let t = db.create_table("t").unwrap();
        let long = |i: usize| {
            let mut k = vec![b'x'; 200];
            k.extend_from_slice(format!("{i:06}").as_bytes());
            k
        };
        let n = 1500;
        for i in 0..n {
            db.put(t, &long(i), b"v").unwrap();
        }
        let depth = |db: &mut Database| {
            let pager = db.pager_mut();
            let mut pgno = t.root();
            let mut levels = 1;
            while node::kind(pager.page(pgno).unwrap()) == Some(PageKind::Branch) {
                pgno = node::child(pager.page(pgno).unwrap(), 0);
                levels += 1;
            }
            levels
        };
        assert!(depth(&mut db) >= 3, "three levels to begin with");
        // No branch below the root is left underfull by a delete: a merge that empties part
        // of a branch rebalances the branch too, at once.
        let underfull_branches = |db: &mut Database| {
            let page_size = db.page_size();
            let pager = db.pager_mut();
            let root = pager.page(t.root()).unwrap();
            let mut under = 0;
            if node::kind(root) == Some(PageKind::Branch) {
                let children: Vec<Pgno> = (0..node::children(root))
                    .map(|c| node::child(root, c))
                    .collect();
                for c in children {
                    let page = pager.page(c).unwrap();
                    if node::kind(page) == Some(PageKind::Branch)
                        && node::used(page) < page_size / 4
                    {
                        under += 1;
                    }
                }
            }
            under
        };
        let kept = n / 2;
        for i in (0..n).filter(|&i| i != kept) {
            assert!(db.delete(t, &long(i)).unwrap());
            assert_eq!(underfull_branches(&mut db), 0, "after deleting key {i}");
        }
        assert_eq!(depth(&mut db), 1, "the tree collapsed to its root leaf");
        let root = db.pager_mut().page(t.root()).unwrap();
        assert_eq!(node::count(root), 1);
        assert_eq!(node::key(root, 0), long(kept).as_slice());
    }

    #[test]
    fn shortest_separator_sorts_between() {
        assert_eq!(shortest_separator(b"apple", b"banana"), b"b");
        assert_eq!(shortest_separator(b"abc", b"abd"), b"abd");
        assert_eq!(shortest_separator(b"ab", b"abc"), b"abc");
        assert_eq!(shortest_separator(b"", b"\0"), b"\0");
    }

    use crate::{Database, DatabaseOptions, Env, Table};

    fn key(i: usize) -> Vec<u8> {
        format!("k{i:06}").into_bytes()
    }

    /// The keys of the root's children, leaves, left to right.
    fn leaves(db: &mut Database, root: Pgno) -> Vec<Vec<Vec<u8>>> {
        let pager = db.pager_mut();
        let page = pager.page(root).unwrap();
        let children: Vec<Pgno> = (0..node::children(page))
            .map(|c| node::child(page, c))
            .collect();
        children
            .into_iter()
            .map(|c| {
                let leaf = pager.page(c).unwrap();
                assert_eq!(node::kind(leaf), Some(PageKind::Leaf));
                (0..node::count(leaf))
                    .map(|j| node::key(leaf, j).to_vec())
                    .collect()
            })
            .collect()
    }

    fn value(i: usize) -> Vec<u8> {
        vec![i as u8; 90 + i % 7]
    }

    /// A database with table `t`, filled with ascending keys `i * 1000` until its root has two
    /// leaves: the first full, the second holding the last key. Returns the keys.
    fn two_leaves() -> (Database, Table, Vec<usize>) {
        let env = Env::memory(1);
        let mut db = Database::create(&env, "d.edb".as_ref(), &DatabaseOptions::default()).unwrap();
        let t = db.create_table("t").unwrap();
        let mut keys = Vec::new();
        loop {
            let i = keys.len() * 1000;
            db.put(t, &key(i), &value(i)).unwrap();
            keys.push(i);
            let root = db.pager_mut().page(t.root()).unwrap();
            if node::kind(root) == Some(PageKind::Branch) {
                return (db, t, keys);
            }
        }
    }

    /// The free bytes of the root's child `c`.
    fn free_in(db: &mut Database, t: Table, c: usize) -> usize {
        let page_size = db.page_size();
        let pager = db.pager_mut();
        let child = node::child(pager.page(t.root()).unwrap(), c);
        page_size - node::used(pager.page(child).unwrap())
    }

    /// Inserts `new`, which goes to the full leaf `full` (0 or 1) of the root's two, whose
    /// sibling has room, and checks the pages then hold what sharing over the gathered records
    /// (`halves`, as `redistribute` does) would have given them, and every value is found.
    fn shares_in_place_as_a_rebuild_would(
        mut db: Database,
        t: Table,
        mut keys: Vec<usize>,
        new: usize,
        full: usize,
    ) {
        let before = leaves(&mut db, t.root());
        assert_eq!(before.len(), 2, "two leaves");
        let mut record = Vec::new();
        let new_value = value(new);
        node::leaf_record(&mut record, &key(new), ValueRef::Inline(&new_value));
        assert!(
            free_in(&mut db, t, full) < record.len() + 2,
            "the page is full"
        );
        assert!(
            before[full].first() < Some(&key(new)) && Some(&key(new)) < before[full].last(),
            "the key goes inside the full page"
        );
        // What rebuilding both pages would give them: the records in key order, split where
        // `halves` splits them.
        keys.push(new);
        keys.sort_unstable();
        let mut all = Gathered::default();
        for &i in &keys {
            let v = value(i);
            node::leaf_record(&mut record, &key(i), ValueRef::Inline(&v));
            all.push(&record);
        }
        let h = halves(&all, PageKind::Leaf, false);
        let expected: Vec<Vec<Vec<u8>>> = [0..h.at, h.right.clone()]
            .into_iter()
            .map(|r| r.map(|j| node::record_key(all.get(j)).to_vec()).collect())
            .collect();
        assert_ne!(expected, before, "the records move");
        db.put(t, &key(new), &value(new)).unwrap();
        assert_eq!(leaves(&mut db, t.root()), expected);
        holds_every_key(&mut db, t, &keys);
    }

    #[test]
    fn a_full_leaf_shares_with_its_right_sibling_in_place_as_a_rebuild_would() {
        // The first leaf is full and its only sibling, the second, has room: an insert inside
        // the first, near its start, its middle or its end.
        for new in [500, 11_500, 20_500] {
            let (db, t, keys) = two_leaves();
            shares_in_place_as_a_rebuild_would(db, t, keys, new, 0);
        }
    }

    /// Two leaves, room made in the first (its first six keys deleted), the second filled with
    /// keys 900,000, 899,998, ... (inserts inside it after the first, never appends, which
    /// split instead) until it is full. Returns the keys and the next key that would go in.
    fn full_second_leaf() -> (Database, Table, Vec<usize>, usize) {
        let (mut db, t, mut keys) = two_leaves();
        for i in keys.drain(..6) {
            assert!(db.delete(t, &key(i)).unwrap());
        }
        let mut next = 900_000;
        while free_in(&mut db, t, 1) >= value(next).len() + 20 {
            db.put(t, &key(next), &value(next)).unwrap();
            keys.push(next);
            next -= 2;
        }
        (db, t, keys, next)
    }

    /// Every key of `keys` reads back its value, and the file passes its integrity check.
    fn holds_every_key(db: &mut Database, t: Table, keys: &[usize]) {
        for &i in keys {
            assert_eq!(db.get(t, &key(i)).unwrap(), Some(value(i)), "key {i}");
        }
        db.check_integrity().unwrap();
    }

    #[test]
    fn a_full_leaf_shares_with_its_left_sibling_in_place_as_a_rebuild_would() {
        // An insert inside the full second leaf shares to the left, which has room.
        for new in [900_000 - 1, 0] {
            let (db, t, keys, next) = full_second_leaf();
            let new = if new == 0 { next + 3 } else { new };
            shares_in_place_as_a_rebuild_would(db, t, keys, new, 1);
        }
    }

    /// Writes a record for key `i` straight into the root's child `c` at `at`, where a sound
    /// tree would never hold it.
    fn plant(db: &mut Database, t: Table, c: usize, at: usize, i: usize) {
        let mut record = Vec::new();
        let v = value(i);
        node::leaf_record(&mut record, &key(i), ValueRef::Inline(&v));
        let pager = db.pager_mut();
        let child = node::child(pager.page(t.root()).unwrap(), c);
        let page = pager.page_mut(child).unwrap();
        let at = at.min(node::count(page));
        assert!(node::insert(page, at, &record));
    }

    /// Empties the root's first leaf behind the tree's back: a state no sound tree is left in.
    fn empty_first_leaf(db: &mut Database, t: Table) {
        let pager = db.pager_mut();
        let first = node::child(pager.page(t.root()).unwrap(), 0);
        let page = pager.page_mut(first).unwrap();
        while node::count(page) > 0 {
            node::remove(page, 0);
        }
    }

    #[test]
    fn an_empty_leaf_below_a_branch_is_corruption_not_an_absent_key() {
        // A sound tree never keeps an empty leaf under a branch (a delete merges it away): a
        // read that reaches one says so instead of answering that the key is absent.
        let (mut db, t, keys) = two_leaves();
        empty_first_leaf(&mut db, t);
        let err = db.get(t, &key(keys[0])).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        // The other leaf still reads.
        let last = *keys.last().unwrap();
        assert_eq!(db.get(t, &key(last)).unwrap(), Some(value(last)));
    }

    /// Every key of the tree, first to last, through [`edge`] and [`step`]: the scan a cursor
    /// makes.
    fn scan(db: &mut Database, t: Table) -> Result<Vec<Vec<u8>>> {
        let pager = db.pager_mut();
        let mut keys = Vec::new();
        let mut found = edge(pager, t.root(), true)?;
        while let Some((entry, position)) = found {
            keys.push(entry.key.clone());
            found = step(pager, position, &entry.key, true)?;
        }
        Ok(keys)
    }

    #[test]
    fn a_leaf_holding_its_upper_separator_is_corruption_to_a_scan() {
        // The separator belongs to the right leaf's range: the left leaf may hold only keys
        // below it. Planted as the left leaf's last key, the scan still ascends.
        let (mut db, t, keys) = two_leaves();
        assert_eq!(scan(&mut db, t).unwrap().len(), keys.len());
        let pager = db.pager_mut();
        let root = pager.page(t.root()).unwrap();
        let (first, separator) = (node::child(root, 0), node::key(root, 0).to_vec());
        let page = pager.page_mut(first).unwrap();
        node::remove(page, 0);
        let mut record = Vec::new();
        node::leaf_record(&mut record, &separator, ValueRef::Inline(b"v"));
        let at = node::count(page);
        assert!(node::insert(page, at, &record));
        let err = scan(&mut db, t).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        assert!(err.to_string().contains("outside the range"), "{err}");
    }

    #[test]
    fn an_empty_leaf_below_a_branch_is_corruption_to_a_scan() {
        let (mut db, t, _) = two_leaves();
        empty_first_leaf(&mut db, t);
        let err = scan(&mut db, t).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        assert!(err.to_string().contains("empty"), "{err}");
    }

    /// Positions on the last key (in the second leaf), lets `change` alter the root behind
    /// the position's back, and steps on: the step that leaves the leaf reads the root again.
    fn step_after(change: impl Fn(&mut [u8], Pgno)) -> Result<Found> {
        let (mut db, t, keys) = two_leaves();
        let last = key(*keys.last().unwrap());
        let pager = db.pager_mut();
        let (_, position) = seek(pager, t.root(), &last, SeekMode::Eq)?.expect("the last key");
        let first = node::child(pager.page(t.root()).unwrap(), 0);
        change(pager.page_mut(t.root()).unwrap(), first);
        step(pager, position, &last, true)
    }

    #[test]
    fn a_branch_changed_under_a_cursor_stops_its_step() {
        // The root's second child made the first.
        let err = step_after(|root, first| {
            let separator = node::key(root, 0).to_vec();
            let mut record = Vec::new();
            node::branch_record(&mut record, &separator, first);
            assert!(node::replace(root, 0, &record));
        })
        .unwrap_err();
        assert!(err.to_string().contains("changed under a cursor"), "{err}");
        // The root lost its key, and with it the child the cursor came through.
        let err = step_after(|root, _| node::remove(root, 0)).unwrap_err();
        assert!(err.to_string().contains("changed under a cursor"), "{err}");
        // Unchanged, the step past the last key finds nothing.
        assert!(step_after(|_, _| {}).unwrap().is_none());
    }

    #[test]
    fn a_visit_refuses_a_chain_of_branches_deeper_than_a_tree_can_be() {
        // Distinct pages, so no page is seen twice: only the depth tells the chain from a tree.
        let env = Env::memory(1);
        let mut db = Database::create(&env, "d.edb".as_ref(), &DatabaseOptions::default()).unwrap();
        let pager = db.pager_mut();
        let chain = |pager: &mut Pager, levels: usize| {
            let mut top = pager
                .alloc(|p| node::init_tree(p, PageKind::Leaf, 0))
                .unwrap();
            for _ in 1..levels {
                top = pager
                    .alloc(|p| node::init_tree(p, PageKind::Branch, top))
                    .unwrap();
            }
            top
        };
        let mut pages = 0;
        let top = chain(pager, DEPTH_MAX);
        visit(pager, top, &mut |_| pages += 1, &mut |_| {}).unwrap();
        assert_eq!(pages, DEPTH_MAX);
        let top = chain(pager, DEPTH_MAX + 1);
        let err = visit(pager, top, &mut |_| {}, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("deeper than"), "{err}");
    }

    #[test]
    fn a_key_misplaced_across_siblings_stops_a_share() {
        // The second leaf's first key below the first leaf's last: sharing to the right.
        let (mut db, t, _) = two_leaves();
        plant(&mut db, t, 1, 0, 500);
        let err = db.put(t, &key(1_500), &value(1_500)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        assert!(err.to_string().contains("out of order across"), "{err}");
        // The first leaf's last key above the second leaf's first: sharing to the left.
        let (mut db, t, _, next) = full_second_leaf();
        plant(&mut db, t, 0, usize::MAX, 899_999);
        let err = db.put(t, &key(next + 3), &value(next + 3)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        assert!(err.to_string().contains("out of order across"), "{err}");
    }

    /// Review: the pages after a share, as rebuilding both from `model` (every key of the
    /// table, which has exactly two leaves) would leave them.
    fn expected_leaves(model: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
        let mut all = Gathered::default();
        let mut record = Vec::new();
        for (k, v) in model {
            node::leaf_record(&mut record, k, ValueRef::Inline(v));
            all.push(&record);
        }
        let h = halves(&all, PageKind::Leaf, false);
        [0..h.at, h.right.clone()]
            .into_iter()
            .map(|r| r.map(|j| node::record_key(all.get(j)).to_vec()).collect())
            .collect()
    }

    /// Review: puts `new` (which must land in full leaf `full`), then checks the pages against
    /// a rebuild, every value, and the tree's integrity.
    fn check_share(
        mut db: Database,
        t: Table,
        mut model: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
        new: Vec<u8>,
        full: usize,
        what: &str,
    ) {
        let mut record = Vec::new();
        node::leaf_record(&mut record, &new, ValueRef::Inline(&value(7)));
        assert!(
            free_in(&mut db, t, full) < record.len() + 2,
            "{what}: the page is full"
        );
        model.insert(new.clone(), value(7));
        let expected = expected_leaves(&model);
        db.put(t, &new, &value(7)).unwrap();
        assert_eq!(leaves(&mut db, t.root()), expected, "{what}");
        for (k, v) in &model {
            assert_eq!(db.get(t, k).unwrap().as_ref(), Some(v), "{what}");
        }
        db.check_integrity().unwrap();
    }

    #[test]
    fn review_a_share_to_the_right_matches_a_rebuild_at_every_insert_position() {
        // The committed tests insert at positions 1, 12 and 21 of 77, all of which stay: here
        // every position, so the new record also moves (and lands last, i == n).
        let (_, _, keys) = two_leaves();
        let n = keys.len() - 1;
        for p in 1..=n {
            let (db, t, keys) = two_leaves();
            let model = keys.iter().map(|&i| (key(i), value(i))).collect();
            check_share(
                db,
                t,
                model,
                key(p * 1000 - 500),
                0,
                &format!("position {p}"),
            );
        }
    }

    /// Review: the left-share setup of the committed test; returns the leaf-1 keys, sorted.
    fn left_setup() -> (
        Database,
        Table,
        std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    ) {
        let (db, t, keys, _) = full_second_leaf();
        let model = keys.iter().map(|&i| (key(i), value(i))).collect();
        (db, t, model)
    }

    #[test]
    fn review_a_share_to_the_left_matches_a_rebuild_at_every_insert_position() {
        let (mut db, t, _) = left_setup();
        let right: Vec<Vec<u8>> = leaves(&mut db, t.root())[1].clone();
        // Position 0: a key at or above the separator but below leaf 1's first key.
        let separator = {
            let pager = db.pager_mut();
            node::key(pager.page(t.root()).unwrap(), 0).to_vec()
        };
        let mut first = separator.clone();
        first.push(b'0');
        assert!(first.as_slice() < right[0].as_slice());
        let mut news = vec![first];
        // Positions 1..n: one above each key but the last (an append to the last leaf splits).
        for k in &right[..right.len() - 1] {
            let i: usize = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
            news.push(key(i + 1));
        }
        for (p, new) in news.into_iter().enumerate() {
            let (db, t, model) = left_setup();
            check_share(db, t, model, new, 1, &format!("position {p}"));
        }
    }

    #[test]
    fn review_a_new_record_misplaced_across_siblings_stops_a_share() {
        // The root's separator raised above leaf 1's first key (a corrupt branch): a key
        // between the two lands last in leaf 0, and shares right; the new record itself is
        // out of order with the sibling.
        let (mut db, t, keys) = two_leaves();
        let last = *keys.last().unwrap();
        {
            let pager = db.pager_mut();
            let root = pager.page_mut(t.root()).unwrap();
            let child = node::child(root, 1);
            node::remove(root, 0);
            let raised = key(last + 500);
            let mut record = Vec::new();
            node::branch_record(&mut record, &raised, child);
            assert!(node::insert(root, 0, &record));
        }
        let err = db.put(t, &key(last + 1), &value(1)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        assert!(err.to_string().contains("out of order across"), "{err}");
    }

    #[test]
    fn an_append_to_the_last_leaf_starts_a_new_leaf_though_its_left_sibling_has_room() {
        // The first leaf given room (its first keys deleted), then ascending keys appended to
        // the second until it overflows: the new record starts a third leaf of its own
        // (balance_quick), and the first leaf is not shared with.
        let (mut db, t, mut keys) = two_leaves();
        for i in keys.drain(..6) {
            assert!(db.delete(t, &key(i)).unwrap());
        }
        let page_size = db.page_size();
        assert!(
            free_in(&mut db, t, 0) >= page_size / 16,
            "the first leaf has room"
        );
        let first = leaves(&mut db, t.root())[0].clone();
        let mut next = keys.last().unwrap() + 1000;
        while leaves(&mut db, t.root()).len() == 2 {
            db.put(t, &key(next), &value(next)).unwrap();
            keys.push(next);
            next += 1000;
        }
        let after = leaves(&mut db, t.root());
        assert_eq!(after.len(), 3);
        assert_eq!(after[0], first, "the first leaf is left as it was");
        assert_eq!(
            after[2],
            [key(*keys.last().unwrap())],
            "the new record alone"
        );
        holds_every_key(&mut db, t, &keys);
    }

    #[test]
    fn full_branches_share_with_their_siblings_and_keep_every_record() {
        // Keys of 200 bytes that differ only in their last eight: separators are as long, so
        // branch pages fill after a few dozen children and a three-level tree's full branches
        // share with their siblings (`Full::gather`). Inserted in a scrambled order, so that
        // no branch is only ever appended to.
        fn long_key(i: usize) -> Vec<u8> {
            let mut k = vec![b'x'; 192];
            k.extend_from_slice(format!("{i:08}").as_bytes());
            k
        }
        let env = Env::memory(1);
        let mut db = Database::create(&env, "d.edb".as_ref(), &DatabaseOptions::default()).unwrap();
        let t = db.create_table("t").unwrap();
        let n = 6000;
        let mut model = std::collections::BTreeMap::new();
        for j in 0..n {
            // A permutation of 0..n (7919 is prime to n).
            let i = (j * 7919) % n;
            let v = vec![(i % 251) as u8; 8 + i % 5];
            db.put(t, &long_key(i), &v).unwrap();
            model.insert(i, v);
            if j % 1000 == 999 {
                db.check_integrity().unwrap();
            }
        }
        let root = db.pager_mut().page(t.root()).unwrap();
        let top = node::child(root, 0);
        assert_eq!(
            node::kind(db.pager_mut().page(top).unwrap()),
            Some(PageKind::Branch),
            "three levels"
        );
        for (&i, v) in &model {
            assert_eq!(
                db.get(t, &long_key(i)).unwrap().as_ref(),
                Some(v),
                "key {i}"
            );
        }
        db.check_integrity().unwrap();
    }

    /// A database with table `t`, filled with ascending keys `i * 1000` until its root has
    /// three leaves: the first two full, the third holding the last key. Returns the keys.
    fn three_leaves() -> (Database, Table, Vec<usize>) {
        let (mut db, t, mut keys) = two_leaves();
        while leaves(&mut db, t.root()).len() < 3 {
            let i = keys.len() * 1000;
            db.put(t, &key(i), &value(i)).unwrap();
            keys.push(i);
        }
        (db, t, keys)
    }

    #[test]
    fn a_full_leaf_shares_with_the_sibling_that_has_more_room() {
        // The middle of three leaves full; the first with the more room (its first keys
        // deleted), the third with less but over a sixteenth of a page: the first takes the
        // share, the third is left as it was.
        let (mut db, t, mut keys) = three_leaves();
        let page_size = db.page_size();
        for i in keys.drain(..18) {
            assert!(db.delete(t, &key(i)).unwrap());
        }
        let mut next = keys.last().unwrap() + 1000;
        while free_in(&mut db, t, 2) > page_size / 16 + 150 {
            db.put(t, &key(next), &value(next)).unwrap();
            keys.push(next);
            next += 1000;
        }
        let (left, right) = (free_in(&mut db, t, 0), free_in(&mut db, t, 2));
        assert!(left > right && right >= page_size / 16, "{left} {right}");
        let before = leaves(&mut db, t.root());
        assert_eq!(before.len(), 3);
        let new = before[1][before[1].len() / 2].clone();
        let new = std::str::from_utf8(&new[1..])
            .unwrap()
            .parse::<usize>()
            .unwrap()
            + 1;
        assert!(
            free_in(&mut db, t, 1) < value(new).len() + 20,
            "the middle leaf is full"
        );
        db.put(t, &key(new), &value(new)).unwrap();
        keys.push(new);
        let after = leaves(&mut db, t.root());
        assert_eq!(after.len(), 3, "shared, not split");
        assert_ne!(after[0], before[0], "the first leaf took records");
        assert_eq!(after[2], before[2], "the third leaf is left as it was");
        holds_every_key(&mut db, t, &keys);
    }

    #[test]
    fn a_full_leaf_splits_when_its_sibling_has_less_than_a_sixteenth_free() {
        // The second leaf filled by appends until under a sixteenth of a page is free (but
        // room enough to take records): an insert inside the full first leaf splits it.
        let (mut db, t, mut keys) = two_leaves();
        let page_size = db.page_size();
        let mut next = keys.last().unwrap() + 1000;
        while free_in(&mut db, t, 1) >= page_size / 16 {
            db.put(t, &key(next), &value(next)).unwrap();
            keys.push(next);
            next += 1000;
        }
        assert!(
            free_in(&mut db, t, 1) > 2 * 110,
            "the sibling has some room"
        );
        let before = leaves(&mut db, t.root());
        assert_eq!(before.len(), 2);
        let new = 10_500;
        db.put(t, &key(new), &value(new)).unwrap();
        keys.push(new);
        let after = leaves(&mut db, t.root());
        assert_eq!(after.len(), 3, "split, not shared");
        assert_eq!(after[2], before[1], "the sibling is left as it was");
        holds_every_key(&mut db, t, &keys);
    }

    #[test]
    fn a_branch_naming_a_full_leaf_twice_stops_a_share() {
        // The root's second child made the first again: an insert into the full first leaf
        // finds its right sibling is itself.
        let (mut db, t, _) = two_leaves();
        let pager = db.pager_mut();
        let root = pager.page(t.root()).unwrap();
        let (first, separator) = (node::child(root, 0), node::key(root, 0).to_vec());
        let mut record = Vec::new();
        node::branch_record(&mut record, &separator, first);
        assert!(node::replace(pager.page_mut(t.root()).unwrap(), 0, &record));
        let err = db.put(t, &key(1_500), &value(1_500)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn a_full_leaf_shares_into_an_empty_right_sibling_without_reading_its_slots() {
        // A damaged tree: the second leaf emptied behind the tree's back, junk where its first
        // slot was (a page read from disk may hold anything past its slot directory). An insert
        // into the full first leaf shares into it, reading none of its records.
        let (mut db, t, mut keys) = two_leaves();
        let gone = keys.pop().unwrap();
        let pager = db.pager_mut();
        let second = node::child(pager.page(t.root()).unwrap(), 1);
        let page = pager.page_mut(second).unwrap();
        node::remove(page, 0);
        page[node::TREE_HEADER..node::TREE_HEADER + 2].fill(0xff);
        let new = 11_500;
        assert!(
            free_in(&mut db, t, 0) < value(new).len() + 20,
            "the first leaf is full"
        );
        db.put(t, &key(new), &value(new)).unwrap();
        keys.push(new);
        let after = leaves(&mut db, t.root());
        assert_eq!(after.len(), 2, "shared, not split");
        assert!(!after[1].is_empty(), "the second leaf took records");
        for &i in &keys {
            assert_eq!(db.get(t, &key(i)).unwrap(), Some(value(i)), "key {i}");
        }
        assert_eq!(db.get(t, &key(gone)).unwrap(), None);
    }

    /// Makes the root's second child `child` instead of the second leaf, then deletes the first
    /// leaf's keys, in order, until one fails: the delete that takes it under a quarter looks at
    /// its sibling. Returns that failure.
    fn rebalance_beside(
        db: &mut Database,
        t: Table,
        keys: &[usize],
        child: impl Fn(&mut Pager) -> Pgno,
    ) -> crate::JetError {
        let pager = db.pager_mut();
        let child = child(pager);
        let separator = node::key(pager.page(t.root()).unwrap(), 0).to_vec();
        let mut record = Vec::new();
        node::branch_record(&mut record, &separator, child);
        assert!(node::replace(pager.page_mut(t.root()).unwrap(), 0, &record));
        for &i in keys.iter().filter(|&&i| key(i) < separator) {
            if let Err(err) = db.delete(t, &key(i)) {
                assert_eq!(err.kind(), crate::ErrorKind::DatabaseCorrupted, "{err}");
                return err;
            }
        }
        panic!("every delete succeeded");
    }

    #[test]
    fn a_branch_naming_a_leaf_twice_stops_a_rebalance() {
        let (mut db, t, keys) = two_leaves();
        let err = rebalance_beside(&mut db, t, &keys, |pager| {
            node::child(pager.page(t.root()).unwrap(), 0)
        });
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn a_branch_naming_itself_stops_a_rebalance() {
        let (mut db, t, keys) = two_leaves();
        let err = rebalance_beside(&mut db, t, &keys, |_| t.root());
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn siblings_of_different_kinds_stop_a_rebalance() {
        // The second child a branch (over the second leaf) beside the first, a leaf.
        let (mut db, t, keys) = two_leaves();
        let err = rebalance_beside(&mut db, t, &keys, |pager| {
            let second = node::child(pager.page(t.root()).unwrap(), 1);
            pager
                .alloc(|p| node::init_tree(p, PageKind::Branch, second))
                .unwrap()
        });
        assert!(err.to_string().contains("different kinds"), "{err}");
    }

    #[test]
    fn split_point_balances_by_size() {
        assert_eq!(split_point([10, 10, 10, 10].into_iter(), 1, 3), 2);
        assert_eq!(split_point([100, 1, 1, 1].into_iter(), 1, 3), 1);
        assert_eq!(split_point([1, 1, 1, 100].into_iter(), 1, 3), 3);
        // The record across the middle goes where more of it lies: 40 | 60, not 70 | 30.
        assert_eq!(split_point([40, 30, 30].into_iter(), 1, 2), 1);
        // A record whose middle lies on the half goes right: 10 | 30.
        assert_eq!(split_point([10, 20, 10].into_iter(), 1, 2), 1);
    }

    #[test]
    fn a_branch_split_leaves_the_right_page_a_key_however_long_the_last() {
        // Four short separators and a long one: by size the split falls at the last key, but
        // a branch's key at the split point moves up, so the right page would be left with
        // none; it falls one key earlier.
        let mut g = Gathered::default();
        let mut record = Vec::new();
        let keys = [
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"d".to_vec(),
            vec![b'e'; 255],
        ];
        for (i, k) in keys.iter().enumerate() {
            node::branch_record(&mut record, k, 10 + i as Pgno);
            g.push(&record);
        }
        let h = halves(&g, PageKind::Branch, false);
        assert_eq!(h.at, 3);
        assert_eq!(h.separator, b"d");
        assert_eq!(h.right_leftmost, 13);
        assert_eq!(h.right, 4..5);
    }

    #[test]
    fn an_underfull_leaf_beside_one_too_full_to_merge_takes_records_from_it() {
        // The first leaf full, the second filled by appends to just over a quarter of a page;
        // deleting from the second takes it under a quarter, and the two cannot merge.
        let (mut db, t, mut keys) = two_leaves();
        let page_size = db.page_size();
        let used_by = |db: &mut Database, c: usize| page_size - free_in(db, t, c);
        while used_by(&mut db, 1) < page_size / 4 + 200 {
            let i = keys.last().unwrap() + 1000;
            db.put(t, &key(i), &value(i)).unwrap();
            keys.push(i);
        }
        assert_eq!(leaves(&mut db, t.root()).len(), 2);
        let before = leaves(&mut db, t.root());
        // Delete the second leaf's keys from the top until one delete rebalances: the delete
        // that takes it under a quarter gives it records from the first, at once.
        loop {
            let i = keys.pop().unwrap();
            assert!(db.delete(t, &key(i)).unwrap());
            let after = leaves(&mut db, t.root());
            assert_eq!(after.len(), 2, "shared, not merged");
            assert!(
                used_by(&mut db, 1) >= page_size / 4,
                "the second leaf left under a quarter after deleting key {i}"
            );
            if after[0].len() < before[0].len() {
                // The first kept a prefix of its keys; the second begins with the next.
                let kept = after[0].len();
                assert_eq!(after[0][..], before[0][..kept]);
                assert_eq!(after[1][0], before[0][kept], "it took the first's last");
                break;
            }
        }
        holds_every_key(&mut db, t, &keys);
    }
}
