//! B+tree operations over the pager: lookup, insert, delete, seek, and the splits, merges and
//! redistributions that keep every page within its size.
//!
//! A tree is named by its root page, which never moves: when the root splits, its content moves
//! to a new child; when a branch root is left with one child, that child's content moves up.
//!
//! Structure invariants (checked by `integrity`): keys ascend strictly across the leaves from left
//! to right; every key under `children[i]` of a branch lies in `[keys[i-1], keys[i])`; every leaf
//! is at the same depth; every page's encoded size fits the page; every node but the root holds
//! at least one key. There are no sibling links: a scan steps to the next leaf through the path
//! from the root, so a split or merge touches only the pages it changes and their parent.

use std::collections::BTreeSet;
use std::mem;

use crate::error::{Result, bail};
use crate::node::{Branch, Leaf, LeafEntry, Node, Value};
use crate::page::{PageKind, Pgno};
use crate::pager::Pager;

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

fn corrupt_kind(pager: &Pager, pgno: Pgno, kind: PageKind) -> crate::JetError {
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

/// Branch page `pgno`, to change. On a sound tree it is always a branch: this was checked on the
/// way down. Only a corrupt tree, whose pages are shared between places, can free it meanwhile.
fn branch_mut(pager: &mut Pager, pgno: Pgno) -> Result<&mut Branch> {
    let kind = pager.node(pgno)?.kind();
    if kind != PageKind::Branch {
        bail!(
            DatabaseCorrupted,
            "{}: page {pgno} changed from a branch to a {kind:?} page (a shared page?)",
            pager.path().display()
        );
    }
    match pager.node_mut(pgno)? {
        Node::Branch(branch) => Ok(branch),
        _ => unreachable!("checked just above"),
    }
}

/// The value stored under `key`.
pub(crate) fn get(pager: &mut Pager, root: Pgno, key: &[u8]) -> Result<Option<Value>> {
    let mut pgno = root;
    for _ in 0..DEPTH_MAX {
        match pager.node(pgno)? {
            Node::Branch(branch) => pgno = branch.children[branch.child_index(key)],
            Node::Leaf(leaf) => {
                let found = leaf.entries.binary_search_by(|e| e.key.as_slice().cmp(key));
                return Ok(found.ok().map(|i| leaf.entries[i].value.clone()));
            }
            other => {
                let kind = other.kind();
                return Err(corrupt_kind(pager, pgno, kind));
            }
        }
    }
    Err(too_deep(pager, pgno))
}

/// Stores `value` under `key`; returns the value it replaced.
pub(crate) fn insert(
    pager: &mut Pager,
    root: Pgno,
    key: &[u8],
    value: Value,
) -> Result<Option<Value>> {
    let mut value = Some(value);
    let (old, changed) = modify(pager, root, key, Change::Grow, 0, &mut |leaf: &mut Leaf| {
        let value = value.take().expect("the leaf is changed once");
        match leaf.entries.binary_search_by(|e| e.key.as_slice().cmp(key)) {
            Ok(i) => Some(mem::replace(&mut leaf.entries[i].value, value)),
            Err(i) => {
                leaf.entries.insert(
                    i,
                    LeafEntry {
                        key: key.to_vec(),
                        value,
                    },
                );
                None
            }
        }
    })?;
    if changed {
        fix_root(pager, root, key, Change::Grow)?;
    }
    Ok(old)
}

/// Removes `key`; returns the value it had.
pub(crate) fn delete(pager: &mut Pager, root: Pgno, key: &[u8]) -> Result<Option<Value>> {
    // Look first, so that deleting an absent key changes no page.
    if get(pager, root, key)?.is_none() {
        return Ok(None);
    }
    let (removed, changed) = modify(
        pager,
        root,
        key,
        Change::Shrink,
        0,
        &mut |leaf: &mut Leaf| {
            let i = leaf
                .entries
                .binary_search_by(|e| e.key.as_slice().cmp(key))
                .ok()?;
            Some(leaf.entries.remove(i).value)
        },
    )?;
    if changed {
        fix_root(pager, root, key, Change::Shrink)?;
    }
    Ok(removed)
}

/// What an operation does to the leaf it changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// An insert or replace: pages may overflow. Underfull pages are left alone, so that the
    /// one-entry leaf an ascending insert splits off is not rebalanced at once.
    Grow,
    /// A delete: pages may underflow, and overflow too (a longer separator after a rebalance).
    Shrink,
}

/// Descends to the leaf that holds `key`, applies `op` to it, and on the way back up fixes every
/// page on the path that became too full or too empty. Returns `op`'s result and whether the
/// page `pgno` itself changed: only a changed page can need fixing, and checking an unchanged
/// one would cost a walk over all its keys on every operation.
fn modify<R>(
    pager: &mut Pager,
    pgno: Pgno,
    key: &[u8],
    change: Change,
    depth: usize,
    op: &mut dyn FnMut(&mut Leaf) -> R,
) -> Result<(R, bool)> {
    if depth >= DEPTH_MAX {
        return Err(too_deep(pager, pgno));
    }
    let step = match pager.node(pgno)? {
        Node::Branch(branch) => {
            let i = branch.child_index(key);
            Some((i, branch.children[i]))
        }
        Node::Leaf(_) => None,
        other => {
            let kind = other.kind();
            return Err(corrupt_kind(pager, pgno, kind));
        }
    };
    match step {
        None => {
            let Node::Leaf(leaf) = pager.node_mut(pgno)? else {
                unreachable!("checked above")
            };
            Ok((op(leaf), true))
        }
        Some((i, child)) => {
            let (out, child_changed) = modify(pager, child, key, change, depth + 1, op)?;
            let changed = child_changed && fix_child(pager, pgno, i, child, key, change)?;
            Ok((out, changed))
        }
    }
}

/// Restores the size bounds of child `i` of branch `parent`: splits it if it overflows the
/// page, merges or rebalances it with a sibling if it fell below a quarter of a page. Returns
/// whether `parent` changed.
fn fix_child(
    pager: &mut Pager,
    parent: Pgno,
    i: usize,
    child: Pgno,
    key: &[u8],
    change: Change,
) -> Result<bool> {
    let page_size = pager.page_size();
    // On a sound tree the parent still names the child it named on the way down; in a corrupt
    // one, a page shared with a level below may have changed under us.
    let still_there = match pager.node(parent)? {
        Node::Branch(branch) => branch.children.get(i) == Some(&child),
        _ => false,
    };
    if !still_there {
        bail!(
            DatabaseCorrupted,
            "{}: branch page {parent} changed under an operation below it (a shared page?)",
            pager.path().display()
        );
    }
    let (len, appended) = match pager.node(child)? {
        node @ Node::Leaf(leaf) => (
            node.encoded_len(),
            leaf.entries.last().is_some_and(|e| e.key == key),
        ),
        node => (node.encoded_len(), false),
    };
    if len > page_size {
        let (separator, right) = split(pager.node_mut(child)?, appended);
        let right = pager.alloc(right)?;
        let branch = branch_mut(pager, parent)?;
        branch.keys.insert(i, separator);
        branch.children.insert(i + 1, right);
        Ok(true)
    } else if change == Change::Shrink && len < page_size / 4 {
        rebalance(pager, parent, i)
    } else {
        Ok(false)
    }
}

/// Keeps the root within its page: a root that overflows moves its content to a new child and
/// splits it; a branch root left with one child takes that child's content.
fn fix_root(pager: &mut Pager, root: Pgno, key: &[u8], change: Change) -> Result<()> {
    loop {
        let page_size = pager.page_size();
        if pager.node(root)?.encoded_len() > page_size {
            let child = pager.alloc(Node::Leaf(Leaf::default()))?;
            let content = mem::replace(
                pager.node_mut(root)?,
                Node::Branch(Branch {
                    keys: vec![],
                    children: vec![child],
                }),
            );
            *pager.node_mut(child)? = content;
            fix_child(pager, root, 0, child, key, change)?;
            debug_assert!(pager.node(root)?.encoded_len() <= pager.page_size());
            return Ok(());
        }
        let only_child = match pager.node(root)? {
            Node::Branch(branch) if branch.keys.is_empty() => branch.children[0],
            _ => return Ok(()),
        };
        let content = pager.node(only_child)?.clone();
        *pager.node_mut(root)? = content;
        pager.free(only_child)?;
    }
}

/// Merges child `i` of `parent` with a neighbour if both fit one page, and otherwise shares
/// their content evenly between the two. Returns whether `parent` changed.
fn rebalance(pager: &mut Pager, parent: Pgno, i: usize) -> Result<bool> {
    let (left_index, left, right, separator) = match pager.node(parent)? {
        Node::Branch(branch) if branch.children.len() >= 2 => {
            let li = i.saturating_sub(1).min(branch.children.len() - 2);
            (
                li,
                branch.children[li],
                branch.children[li + 1],
                branch.keys[li].clone(),
            )
        }
        // An only child has no neighbour; its parent is fixed one level up.
        _ => return Ok(false),
    };
    if left == right || left == parent || right == parent {
        bail!(
            DatabaseCorrupted,
            "{}: branch page {parent} links to page {left} or {right} twice",
            pager.path().display()
        );
    }
    let left_node = pager.node(left)?.clone();
    let right_node = pager.node(right)?.clone();
    let mut merged = match (left_node, right_node) {
        (Node::Leaf(mut l), Node::Leaf(r)) => {
            l.entries.extend(r.entries);
            Node::Leaf(l)
        }
        (Node::Branch(mut l), Node::Branch(r)) => {
            l.keys.push(separator);
            l.keys.extend(r.keys);
            l.children.extend(r.children);
            Node::Branch(l)
        }
        (l, r) => bail!(
            DatabaseCorrupted,
            "{}: sibling pages {left} ({:?}) and {right} ({:?}) are of different kinds",
            pager.path().display(),
            l.kind(),
            r.kind()
        ),
    };
    if merged.encoded_len() <= pager.page_size() {
        *pager.node_mut(left)? = merged;
        pager.free(right)?;
        let branch = branch_mut(pager, parent)?;
        branch.keys.remove(left_index);
        branch.children.remove(left_index + 1);
    } else {
        let (separator, right_half) = split(&mut merged, false);
        *pager.node_mut(left)? = merged;
        *pager.node_mut(right)? = right_half;
        let branch = branch_mut(pager, parent)?;
        branch.keys[left_index] = separator;
    }
    Ok(true)
}

/// Splits `node` in two by encoded size: `node` keeps the left part; returns the separator and
/// the right part. `appended` (a leaf whose new entry is its last) keeps the left part full, so
/// that keys inserted in ascending order fill their pages.
fn split(node: &mut Node, appended: bool) -> (Vec<u8>, Node) {
    match node {
        Node::Leaf(leaf) => {
            let n = leaf.entries.len();
            assert!(n >= 2, "an overfull leaf holds at least two entries");
            let at = if appended {
                n - 1
            } else {
                split_point(leaf.entries.iter().map(LeafEntry::encoded_len), 1, n - 1)
            };
            let right = leaf.entries.split_off(at);
            let separator = shortest_separator(&leaf.entries[at - 1].key, &right[0].key);
            (separator, Node::Leaf(Leaf { entries: right }))
        }
        Node::Branch(branch) => {
            let n = branch.keys.len();
            assert!(n >= 3, "an overfull branch holds at least three keys");
            // keys[at] moves up; each side keeps at least one key.
            let at = split_point(branch.keys.iter().map(|k| 5 + k.len()), 1, n - 2);
            let mut right_keys = branch.keys.split_off(at);
            let separator = right_keys.remove(0);
            let right_children = branch.children.split_off(at + 1);
            (
                separator,
                Node::Branch(Branch {
                    keys: right_keys,
                    children: right_children,
                }),
            )
        }
        Node::Overflow(_) | Node::Free(_) => unreachable!("only tree pages split"),
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
    fn child(&self, branch: &Branch, i: usize) -> Bounds {
        let separator_low = i.checked_sub(1).and_then(|i| branch.keys.get(i));
        let separator_high = branch.keys.get(i);
        let low = match (self.low.as_ref(), separator_low) {
            (Some(a), Some(b)) => Some(a.max(b).clone()),
            (a, b) => a.or(b).cloned(),
        };
        let high = match (self.high.as_ref(), separator_high) {
            (Some(a), Some(b)) => Some(a.min(b).clone()),
            (a, b) => a.or(b).cloned(),
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
    branch: &Branch,
    child: usize,
) -> Pgno {
    let child_pgno = branch.children[child];
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
        match pager.node(pgno)? {
            Node::Branch(branch) => {
                let child = branch.child_index(key);
                pgno = descend(&mut path, &mut bounds, pgno, branch, child);
            }
            Node::Leaf(leaf) => {
                let entries = &leaf.entries;
                if entries.is_empty() && !path.is_empty() {
                    return Err(empty_leaf(pager, pgno));
                }
                let below = entries.partition_point(|e| e.key.as_slice() < key);
                let not_above = entries.partition_point(|e| e.key.as_slice() <= key);
                let index = match mode {
                    SeekMode::Eq => Some(below).filter(|&i| i < not_above),
                    SeekMode::Ge => Some(below).filter(|&i| i < entries.len()),
                    SeekMode::Gt => Some(not_above).filter(|&i| i < entries.len()),
                    SeekMode::Le => not_above.checked_sub(1),
                    SeekMode::Lt => below.checked_sub(1),
                };
                let found = match index {
                    Some(index) => Some((
                        entries[index].clone(),
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
            other => {
                let kind = other.kind();
                return Err(corrupt_kind(pager, pgno, kind));
            }
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
    let next = match pager.node(leaf)? {
        Node::Leaf(node) => {
            let j = if forward {
                index.checked_add(1)
            } else {
                index.checked_sub(1)
            };
            j.and_then(|j| node.entries.get(j).map(|e| (e.clone(), j)))
        }
        other => {
            let kind = other.kind();
            return Err(corrupt_kind(pager, leaf, kind));
        }
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
        let next = match pager.node(level.pgno)? {
            // The branch is read again (it may have been evicted meanwhile); it must still be the
            // page the cursor came down through, or the file changed under it (a lost write).
            Node::Branch(branch) if branch.children.get(level.child) == Some(&level.child_pgno) => {
                let j = if forward {
                    level.child.checked_add(1)
                } else {
                    level.child.checked_sub(1)
                };
                j.filter(|&j| j < branch.children.len())
                    .map(|j| (j, branch.children[j], level.bounds.child(branch, j)))
            }
            _ => bail!(
                DatabaseCorrupted,
                "{}: branch page {} changed under a cursor (a lost write, or the file changed underneath)",
                pager.path().display(),
                level.pgno
            ),
        };
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
        match pager.node(pgno)? {
            Node::Branch(branch) => {
                let child = if forward {
                    0
                } else {
                    branch.children.len() - 1
                };
                pgno = descend(&mut path, &mut bounds, pgno, branch, child);
            }
            Node::Leaf(leaf) => {
                let index = if forward {
                    0
                } else {
                    leaf.entries.len().saturating_sub(1)
                };
                return match leaf.entries.get(index) {
                    Some(entry) => Ok(Some((
                        entry.clone(),
                        Position {
                            path,
                            leaf: pgno,
                            index,
                            bounds,
                        },
                    ))),
                    None if path.is_empty() => Ok(None),
                    None => Err(empty_leaf(pager, pgno)),
                };
            }
            other => {
                let kind = other.kind();
                return Err(corrupt_kind(pager, pgno, kind));
            }
        }
    }
}

/// Every page of the tree under `root`, and every value, visited depth first. Used to free a
/// whole tree.
pub(crate) fn visit(
    pager: &mut Pager,
    root: Pgno,
    visit_page: &mut dyn FnMut(Pgno),
    visit_value: &mut dyn FnMut(&Value),
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
        match pager.node(pgno)? {
            Node::Branch(branch) => {
                stack.extend(branch.children.iter().map(|&child| (child, depth + 1)))
            }
            Node::Leaf(leaf) => leaf.entries.iter().for_each(|e| visit_value(&e.value)),
            other => {
                let kind = other.kind();
                return Err(corrupt_kind(pager, pgno, kind));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_separator_sorts_between() {
        assert_eq!(shortest_separator(b"apple", b"banana"), b"b");
        assert_eq!(shortest_separator(b"abc", b"abd"), b"abd");
        assert_eq!(shortest_separator(b"ab", b"abc"), b"abc");
        assert_eq!(shortest_separator(b"", b"\0"), b"\0");
    }

    #[test]
    fn split_point_balances_by_size() {
        assert_eq!(split_point([10, 10, 10, 10].into_iter(), 1, 3), 2);
        assert_eq!(split_point([100, 1, 1, 1].into_iter(), 1, 3), 1);
        assert_eq!(split_point([1, 1, 1, 100].into_iter(), 1, 3), 3);
    }
}
