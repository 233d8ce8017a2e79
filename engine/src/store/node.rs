//! The byte layout of B+tree, overflow and free pages, read and changed in place.
//!
//! The page cache holds pages as their bytes; this module is the only one that knows where
//! anything lies in them. A tree page is slotted, as ESE's tag array and SQLite's cell pointers
//! are: a directory of record offsets in key order grows from the front, the records are packed
//! from the back, and a lookup is a binary search over the directory comparing key bytes in
//! place. An insert writes one record and moves the directory entries after it; nothing is
//! decoded, and no read or write allocates per record.
//!
//! Bodies (after the 32-byte envelope of `page`), little-endian:
//!
//! ```text
//! tree page (leaf or branch):
//!     32  count u16        records (a branch: separator keys)
//!     34  data_start u16   the lowest byte of the record area, which runs to the page's end
//!     36  holes u16        bytes of removed records inside the record area, not yet reclaimed
//!     38  zero u16
//!     40  leftmost u32     a branch: the child left of every key; a leaf: zero
//!     44  count × u16      the record offsets, in ascending key order
//!     ... free space ...
//!     data_start..         the records, in any order
//! leaf record:   key length u8, key, tag u8 (0 inline, 1 overflow),
//!                inline: value length u16, value | overflow: value length u32, first page u32
//! branch record: key length u8, key, child u32 (the child right of the key)
//! overflow: next page of the chain u32 (0: the last), data length u32, data
//! free:     next free page u32 (0: end of the free list)
//! ```
//!
//! [`validate`] checks every offset and length against the page, that records do not overlap and
//! that keys ascend strictly, once, when a page is read from the file; so a page whose checksum
//! is right but whose content is not (a bug, or a write of the wrong page) gives
//! `JET_errDatabaseCorrupted` instead of a panic or wrong data, and the accessors after it can
//! trust the page. Pages built in memory keep the same invariants by construction.

use crate::base::error::{Result, bail};
use crate::store::page::{self, PAGE_HEADER_LEN, PageKind, Pgno};

/// The length of a tree page's header: the envelope and the fields before the directory.
pub(crate) const TREE_HEADER: usize = 44;

const COUNT: usize = 32;
const DATA_START: usize = 34;
const HOLES: usize = 36;
const LEFTMOST: usize = 40;
const KIND: usize = 16;

/// A value as a leaf holds it: inline, or out of line in a chain of overflow pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// The value's bytes.
    Inline(Vec<u8>),
    /// The value lives in overflow pages starting at `first`; it is `len` bytes long.
    Overflow {
        /// The first page of the chain.
        first: Pgno,
        /// The value's length in bytes.
        len: u32,
    },
}

impl Value {
    /// The value's length in bytes.
    #[allow(clippy::len_without_is_empty, reason = "a length, not a collection")]
    pub fn len(&self) -> usize {
        match self {
            Value::Inline(bytes) => bytes.len(),
            Value::Overflow { len, .. } => *len as usize,
        }
    }
}

/// A value as it lies in a page (or as a put hands it over), borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueRef<'a> {
    /// The value's bytes.
    Inline(&'a [u8]),
    /// A chain of overflow pages.
    Overflow { first: Pgno, len: u32 },
}

impl ValueRef<'_> {
    pub(crate) fn to_owned(self) -> Value {
        match self {
            ValueRef::Inline(bytes) => Value::Inline(bytes.to_vec()),
            ValueRef::Overflow { first, len } => Value::Overflow { first, len },
        }
    }

    /// The overflow chain the value owns, if any: what removing it must free.
    pub(crate) fn chain(self) -> Option<Chain> {
        match self {
            ValueRef::Inline(_) => None,
            ValueRef::Overflow { first, len } => Some(Chain { first, len }),
        }
    }
}

/// A chain of overflow pages holding one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The first page.
    pub(crate) first: Pgno,
    /// The value's length.
    pub(crate) len: u32,
}

/// One key and its value, copied out of a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Value,
}

/// The most bytes one leaf record and its directory slot may take; larger values go to
/// overflow pages. A quarter of the usable page, so every leaf holds at least four records and
/// any overfull leaf splits into two that fit.
pub fn inline_entry_max(page_size: usize) -> usize {
    (page_size - TREE_HEADER) / 4
}

/// The bytes a leaf record of `key` and an inline value of `value_len` bytes takes, with its
/// directory slot.
pub(crate) fn inline_entry_len(key_len: usize, value_len: usize) -> usize {
    2 + 1 + key_len + 1 + 2 + value_len
}

/// How many value bytes one overflow page holds.
pub fn overflow_capacity(page_size: usize) -> usize {
    page_size - PAGE_HEADER_LEN - 8
}

fn rd16(p: &[u8], at: usize) -> usize {
    u16::from_le_bytes([p[at], p[at + 1]]) as usize
}

fn wr16(p: &mut [u8], at: usize, v: usize) {
    let v = u16::try_from(v).expect("page offsets fit 16 bits");
    p[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn rd32(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn wr32(p: &mut [u8], at: usize, v: u32) {
    p[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The kind the page's envelope names (`None`: no kind this engine knows).
pub(crate) fn kind(p: &[u8]) -> Option<PageKind> {
    page::kind_of(p[KIND])
}

/// Clears the page's envelope fields and body and gives it `kind`. The dbtime is kept: it only
/// grows.
fn reset(p: &mut [u8], kind: PageKind) {
    p[0..8].fill(0);
    p[KIND] = kind as u8;
    p[KIND + 1..].fill(0);
}

/// Makes `p` an empty tree page of `kind` (a branch's only child is `leftmost`).
pub(crate) fn init_tree(p: &mut [u8], kind: PageKind, leftmost: Pgno) {
    debug_assert!(matches!(kind, PageKind::Leaf | PageKind::Branch));
    reset(p, kind);
    wr16(p, DATA_START, p.len());
    wr32(p, LEFTMOST, leftmost);
}

/// Makes `p` an overflow page holding `data`, linking to `next`.
pub(crate) fn init_overflow(p: &mut [u8], next: Pgno, data: &[u8]) {
    reset(p, PageKind::Overflow);
    wr32(p, PAGE_HEADER_LEN, next);
    wr32(p, PAGE_HEADER_LEN + 4, data.len() as u32);
    p[PAGE_HEADER_LEN + 8..PAGE_HEADER_LEN + 8 + data.len()].copy_from_slice(data);
}

/// Makes `p` a free page linking to `next`.
pub(crate) fn init_free(p: &mut [u8], next: Pgno) {
    reset(p, PageKind::Free);
    wr32(p, PAGE_HEADER_LEN, next);
}

/// The next page of an overflow chain, or of the free list (0: the end).
pub(crate) fn next(p: &[u8]) -> Pgno {
    rd32(p, PAGE_HEADER_LEN)
}

/// An overflow page's piece of its value.
pub(crate) fn overflow_data(p: &[u8]) -> &[u8] {
    let len = rd32(p, PAGE_HEADER_LEN + 4) as usize;
    &p[PAGE_HEADER_LEN + 8..PAGE_HEADER_LEN + 8 + len]
}

/// Copies the kind and body of `src` into `dst` (the envelope's page number, dbtime and
/// checksum stay `dst`'s own).
pub(crate) fn copy_content(dst: &mut [u8], src: &[u8]) {
    dst[KIND] = src[KIND];
    dst[PAGE_HEADER_LEN..].copy_from_slice(&src[PAGE_HEADER_LEN..]);
}

/// How many records a tree page holds.
pub(crate) fn count(p: &[u8]) -> usize {
    rd16(p, COUNT)
}

fn slot(p: &[u8], i: usize) -> usize {
    rd16(p, TREE_HEADER + 2 * i)
}

/// The key of record `i`.
pub(crate) fn key(p: &[u8], i: usize) -> &[u8] {
    let at = slot(p, i);
    &p[at + 1..at + 1 + p[at] as usize]
}

/// The raw bytes of record `i`, as [`insert`] takes them.
pub(crate) fn record(p: &[u8], i: usize) -> &[u8] {
    let at = slot(p, i);
    &p[at..at + record_len(p, at)]
}

/// The length of the record at offset `at` (whose bounds `validate` checked).
fn record_len(p: &[u8], at: usize) -> usize {
    let key_end = at + 1 + p[at] as usize;
    if p[KIND] == PageKind::Branch as u8 {
        key_end + 4 - at
    } else if p[key_end] == 0 {
        key_end + 3 + rd16(p, key_end + 1) - at
    } else {
        key_end + 9 - at
    }
}

/// Binary search for `key` over the directory: `Ok(i)` if record `i` holds it, `Err(i)` where
/// it would go.
pub(crate) fn search(p: &[u8], key: &[u8]) -> std::result::Result<usize, usize> {
    let (mut lo, mut hi) = (0, count(p));
    let wanted = head(key);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match compare(self::key(p, mid), key, wanted) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

/// `found` against `key`, whose [`head`] is `wanted`: the order of their bytes.
#[inline]
fn compare(found: &[u8], key: &[u8], wanted: u64) -> std::cmp::Ordering {
    match head(found).cmp(&wanted) {
        // Equal heads: equal first eight bytes, or a short key whose bytes and zeros match.
        std::cmp::Ordering::Equal if found.len() >= 8 && key.len() >= 8 => {
            found[8..].cmp(&key[8..])
        }
        std::cmp::Ordering::Equal => found.cmp(key),
        order => order,
    }
}

/// A key's first eight bytes as one big-endian number, a short key's padded with zeros: keys
/// in byte order have heads in the same order or equal, so most probes of a search compare two
/// numbers, and only a tie compares the bytes. Branch separators are cut to the few bytes that
/// tell two leaves apart, and a slice comparison of them (a call into `memcmp` each) was a
/// tenth of a random get.
#[inline]
fn head(k: &[u8]) -> u64 {
    match k.first_chunk::<8>() {
        Some(b) => u64::from_be_bytes(*b),
        None => k
            .iter()
            .enumerate()
            .fold(0, |v, (i, &b)| v | u64::from(b) << (56 - 8 * i)),
    }
}

/// The first record whose key is not below `key` (`strict`: above it).
pub(crate) fn partition(p: &[u8], key: &[u8], strict: bool) -> usize {
    match search(p, key) {
        Ok(i) if strict => i + 1,
        Ok(i) | Err(i) => i,
    }
}

/// A branch's child `i`, of `count + 1`: 0 is the leftmost, `i` the one right of key `i - 1`.
pub(crate) fn child(p: &[u8], i: usize) -> Pgno {
    if i == 0 {
        rd32(p, LEFTMOST)
    } else {
        let at = slot(p, i - 1);
        rd32(p, at + 1 + p[at] as usize)
    }
}

/// How many children a branch has.
pub(crate) fn children(p: &[u8]) -> usize {
    count(p) + 1
}

/// The index of a branch's child whose range holds `key`: after every separator `<= key`.
pub(crate) fn child_index(p: &[u8], key: &[u8]) -> usize {
    partition(p, key, true)
}

/// The value of leaf record `i`.
pub(crate) fn value(p: &[u8], i: usize) -> ValueRef<'_> {
    let at = slot(p, i);
    let tag_at = at + 1 + p[at] as usize;
    if p[tag_at] == 0 {
        let len = rd16(p, tag_at + 1);
        ValueRef::Inline(&p[tag_at + 3..tag_at + 3 + len])
    } else {
        ValueRef::Overflow {
            len: rd32(p, tag_at + 1),
            first: rd32(p, tag_at + 5),
        }
    }
}

/// Leaf record `i`, copied out.
pub(crate) fn entry(p: &[u8], i: usize) -> LeafEntry {
    LeafEntry {
        key: key(p, i).to_vec(),
        value: value(p, i).to_owned(),
    }
}

/// The bytes a tree page uses: header, directory and records.
pub(crate) fn used(p: &[u8]) -> usize {
    TREE_HEADER + 2 * count(p) + (p.len() - rd16(p, DATA_START) - rd16(p, HOLES))
}

/// Encodes a leaf record into `out` (cleared first).
pub(crate) fn leaf_record(out: &mut Vec<u8>, key: &[u8], value: ValueRef<'_>) {
    out.clear();
    out.push(u8::try_from(key.len()).expect("key length checked on insert"));
    out.extend_from_slice(key);
    match value {
        ValueRef::Inline(bytes) => {
            out.push(0);
            let len = u16::try_from(bytes.len()).expect("inline value fits a page");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        ValueRef::Overflow { first, len } => {
            out.push(1);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&first.to_le_bytes());
        }
    }
}

/// Encodes a branch record into `out` (cleared first).
pub(crate) fn branch_record(out: &mut Vec<u8>, key: &[u8], child: Pgno) {
    out.clear();
    out.push(u8::try_from(key.len()).expect("key length checked on insert"));
    out.extend_from_slice(key);
    out.extend_from_slice(&child.to_le_bytes());
}

/// The key of an encoded record.
pub(crate) fn record_key(record: &[u8]) -> &[u8] {
    &record[1..1 + record[0] as usize]
}

/// The child an encoded branch record names.
pub(crate) fn record_child(record: &[u8]) -> Pgno {
    rd32(record, 1 + record[0] as usize)
}

/// Whether `records` (lengths of records) fit one tree page with their directory.
pub(crate) fn fits(page_size: usize, records: impl Iterator<Item = usize>) -> bool {
    TREE_HEADER + records.map(|len| len + 2).sum::<usize>() <= page_size
}

/// Inserts `record` as record `i`; returns false, changing nothing, if the page has no room.
pub(crate) fn insert(p: &mut [u8], i: usize, record: &[u8]) -> bool {
    let n = count(p);
    debug_assert!(i <= n);
    if used(p) + 2 + record.len() > p.len() {
        return false;
    }
    let dir_end = TREE_HEADER + 2 * n;
    if rd16(p, DATA_START) - dir_end < 2 + record.len() {
        compact(p);
    }
    let at = rd16(p, DATA_START) - record.len();
    p[at..at + record.len()].copy_from_slice(record);
    wr16(p, DATA_START, at);
    let slot_at = TREE_HEADER + 2 * i;
    p.copy_within(slot_at..dir_end, slot_at + 2);
    wr16(p, slot_at, at);
    wr16(p, COUNT, n + 1);
    true
}

/// Replaces record `i` with `record`, which holds the same key; returns false, changing
/// nothing, if the page has no room.
pub(crate) fn replace(p: &mut [u8], i: usize, record: &[u8]) -> bool {
    let at = slot(p, i);
    let old_len = record_len(p, at);
    if old_len == record.len() {
        p[at..at + old_len].copy_from_slice(record);
        return true;
    }
    if used(p) - old_len + record.len() > p.len() {
        return false;
    }
    remove(p, i);
    let inserted = insert(p, i, record);
    debug_assert!(inserted, "room was checked");
    true
}

/// Removes record `i`.
pub(crate) fn remove(p: &mut [u8], i: usize) {
    let n = count(p);
    debug_assert!(i < n);
    let at = slot(p, i);
    let len = record_len(p, at);
    let data_start = rd16(p, DATA_START);
    if at == data_start {
        wr16(p, DATA_START, data_start + len);
    } else {
        wr16(p, HOLES, rd16(p, HOLES) + len);
    }
    let dir_end = TREE_HEADER + 2 * n;
    p.copy_within(TREE_HEADER + 2 * (i + 1)..dir_end, TREE_HEADER + 2 * i);
    wr16(p, COUNT, n - 1);
    if n == 1 {
        // Empty: the whole record area is free again.
        wr16(p, DATA_START, p.len());
        wr16(p, HOLES, 0);
    }
}

/// Packs the records against the page's end, reclaiming the holes.
fn compact(p: &mut [u8]) {
    let n = count(p);
    let mut records = Vec::with_capacity(p.len() - rd16(p, DATA_START));
    let mut lens = Vec::with_capacity(n);
    for i in 0..n {
        let r = record(p, i);
        records.extend_from_slice(r);
        lens.push(r.len());
    }
    let mut at = p.len();
    let mut from = 0;
    for (i, len) in lens.into_iter().enumerate() {
        at -= len;
        p[at..at + len].copy_from_slice(&records[from..from + len]);
        from += len;
        wr16(p, TREE_HEADER + 2 * i, at);
    }
    wr16(p, DATA_START, at);
    wr16(p, HOLES, 0);
}

/// Verifies `page`, read as page `pgno`: its envelope (checksum, page number) and, for a tree,
/// overflow or free page, that every offset and length lies inside it, records do not overlap,
/// keys ascend strictly and inline records keep within a quarter page. Returns the page's kind
/// and dbtime.
pub(crate) fn validate(p: &[u8], pgno: Pgno) -> Result<(PageKind, u64)> {
    validate_with(p, pgno, true)
}

/// [`validate`], with the checksum checked only if `checksum` (see [`page::verify_with`]).
pub(crate) fn validate_with(p: &[u8], pgno: Pgno, checksum: bool) -> Result<(PageKind, u64)> {
    let envelope = page::verify_with(p, pgno, checksum)?;
    let page_size = p.len();
    match envelope.kind {
        PageKind::Leaf | PageKind::Branch => validate_tree(p, envelope.kind)?,
        PageKind::Overflow => {
            let len = rd32(p, PAGE_HEADER_LEN + 4) as usize;
            if len > overflow_capacity(page_size) {
                bail!(
                    DatabaseCorrupted,
                    "overflow data of {len} bytes in a page of {page_size}"
                );
            }
        }
        PageKind::Free | PageKind::Map => {}
        PageKind::Header => bail!(
            DatabaseCorrupted,
            "a header page where a tree page should be"
        ),
    }
    Ok((envelope.kind, envelope.dbtime))
}

fn validate_tree(p: &[u8], kind: PageKind) -> Result<()> {
    let page_size = p.len();
    let n = count(p);
    let data_start = rd16(p, DATA_START);
    let holes = rd16(p, HOLES);
    let dir_end = TREE_HEADER + 2 * n;
    if dir_end > data_start || data_start > page_size || holes > page_size - data_start {
        bail!(
            DatabaseCorrupted,
            "a tree page of {n} records whose record area starts at {data_start} with {holes} bytes of holes"
        );
    }
    if rd16(p, 38) != 0 || (kind == PageKind::Leaf && rd32(p, LEFTMOST) != 0) {
        bail!(DatabaseCorrupted, "a tree page with reserved fields set");
    }
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        let at = slot(p, i);
        // The record's fixed part, then its full length, must lie in the record area.
        let key_end = at + 1 + p.get(at).copied().unwrap_or(0) as usize;
        let fixed_end = key_end
            + match kind {
                PageKind::Branch => 4,
                _ => 3,
            };
        if at < data_start || fixed_end > page_size {
            bail!(
                DatabaseCorrupted,
                "record {i} at offset {at} lies outside the record area"
            );
        }
        let len = if kind == PageKind::Leaf {
            match p[key_end] {
                0 => key_end + 3 + rd16(p, key_end + 1) - at,
                1 => key_end + 9 - at,
                tag => bail!(DatabaseCorrupted, "unknown value tag {tag}"),
            }
        } else {
            fixed_end - at
        };
        if at + len > page_size {
            bail!(DatabaseCorrupted, "record {i} runs past the page's end");
        }
        if kind == PageKind::Leaf {
            match value(p, i) {
                ValueRef::Inline(_) if len + 2 > inline_entry_max(page_size) => bail!(
                    DatabaseCorrupted,
                    "an inline record of {len} bytes, above the limit"
                ),
                ValueRef::Overflow { first, len }
                    if first == 0 || len as usize > crate::base::limits::VALUE_LEN_MAX =>
                {
                    bail!(
                        DatabaseCorrupted,
                        "overflow value of {len} bytes at page {first}"
                    )
                }
                _ => {}
            }
        } else if record_child(&p[at..]) == 0 {
            bail!(DatabaseCorrupted, "branch names page 0 as a child");
        }
        if i > 0 && key(p, i - 1) >= key(p, i) {
            bail!(DatabaseCorrupted, "{kind:?} keys out of order");
        }
        spans.push((at, len));
    }
    if kind == PageKind::Branch && rd32(p, LEFTMOST) == 0 {
        bail!(DatabaseCorrupted, "branch names page 0 as a child");
    }
    spans.sort_unstable();
    let mut end = data_start;
    let mut total = 0;
    for &(at, len) in &spans {
        if at < end {
            bail!(DatabaseCorrupted, "records overlap at offset {at}");
        }
        end = at + len;
        total += len;
    }
    if total + holes != page_size - data_start {
        bail!(
            DatabaseCorrupted,
            "records of {total} bytes and {holes} bytes of holes do not fill the record area"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_holds_four_of_the_largest_inline_entries_and_an_overflow_page_fills_whole() {
        for page_size in [4096, 8192, 32768] {
            // A quarter of the usable page, to the byte: four fit, four a byte larger do not.
            let max = inline_entry_max(page_size);
            assert!(TREE_HEADER + 4 * max <= page_size, "{page_size}");
            assert!(TREE_HEADER + 4 * (max + 1) > page_size, "{page_size}");
            // The envelope, the next page and the length, then data to the page's end.
            let capacity = overflow_capacity(page_size);
            assert_eq!(PAGE_HEADER_LEN + 8 + capacity, page_size);
            let mut page = vec![0u8; page_size];
            init_overflow(&mut page, 5, &vec![9; capacity]);
            assert_eq!(overflow_data(&page), vec![9; capacity].as_slice());
            assert_eq!(next(&page), 5);
        }
    }

    #[test]
    fn a_value_s_length_is_its_bytes_inline_or_its_chain_s_out_of_line() {
        assert_eq!(Value::Inline(vec![7; 3]).len(), 3);
        assert_eq!(
            Value::Overflow {
                first: 9,
                len: 70_000
            }
            .len(),
            70_000
        );
    }
    use crate::store::page::PageHeader;

    fn seal(p: &mut [u8], pgno: Pgno) {
        let kind = kind(p).unwrap();
        page::seal(
            p,
            PageHeader {
                pgno,
                dbtime: 42,
                kind,
            },
        );
    }

    fn leaf_with(entries: &[(&[u8], ValueRef<'_>)], page_size: usize) -> Vec<u8> {
        let mut p = vec![0u8; page_size];
        init_tree(&mut p, PageKind::Leaf, 0);
        let mut rec = Vec::new();
        for (i, (k, v)) in entries.iter().enumerate() {
            leaf_record(&mut rec, k, *v);
            assert!(insert(&mut p, i, &rec));
        }
        p
    }

    #[test]
    fn a_leaf_round_trips_through_its_bytes() {
        let big_key = [0xffu8; 255];
        let entries: [(&[u8], ValueRef<'_>); 3] = [
            (b"", ValueRef::Inline(b"")),
            (b"a", ValueRef::Inline(b"xyz")),
            (
                &big_key,
                ValueRef::Overflow {
                    first: 12,
                    len: 100_000,
                },
            ),
        ];
        let mut p = leaf_with(&entries, 4096);
        seal(&mut p, 9);
        assert_eq!(validate(&p, 9).unwrap(), (PageKind::Leaf, 42));
        assert_eq!(count(&p), 3);
        for (i, (k, v)) in entries.iter().enumerate() {
            assert_eq!(key(&p, i), *k);
            assert_eq!(value(&p, i), *v);
            assert_eq!(search(&p, k), Ok(i));
        }
        assert_eq!(search(&p, b"0"), Err(1));
        assert_eq!(search(&p, b"b"), Err(2));
    }

    #[test]
    fn search_finds_what_a_scan_finds_where_keys_tie_in_their_first_eight_bytes() {
        // Short keys padded with zeros tie with longer ones holding those zeros; keys of
        // eight bytes or more tie with every key sharing their first eight.
        let mut keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0\0\0\0\0".to_vec(),
            b"a\0\0\0\0\0\0\0".to_vec(),
            b"a\0\0\0\0\0\0\0\0".to_vec(),
            b"a\0\x01".to_vec(),
            b"a\x01".to_vec(),
            b"abcdefg".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefgh\0".to_vec(),
            b"abcdefghi".to_vec(),
            b"abcdefgi".to_vec(),
            vec![0xff; 8],
            vec![0xff; 9],
        ];
        keys.sort();
        let entries: Vec<(&[u8], ValueRef<'_>)> = keys
            .iter()
            .map(|k| (k.as_slice(), ValueRef::Inline(b"v")))
            .collect();
        let p = leaf_with(&entries, 4096);
        let mut probes = keys.clone();
        for k in &keys {
            for cut in 0..k.len() {
                probes.push(k[..cut].to_vec());
            }
            for extra in [0u8, 1, 0xff] {
                let mut longer = k.clone();
                longer.push(extra);
                probes.push(longer);
            }
        }
        probes.extend([
            b"\0".to_vec(),
            b"a\0\0\0\0\0\0\x01".to_vec(),
            vec![0xff; 20],
        ]);
        // Every pair compares as its bytes do, not only the pairs a search happens to visit.
        for a in &probes {
            for b in &probes {
                assert_eq!(compare(a, b, head(b)), a.cmp(b), "{a:?} against {b:?}");
            }
        }
        for probe in &probes {
            let below = keys.iter().filter(|k| *k < probe).count();
            let expected = if keys.contains(probe) {
                Ok(below)
            } else {
                Err(below)
            };
            assert_eq!(search(&p, probe), expected, "{probe:?}");
        }
    }

    #[test]
    fn inserts_replaces_and_removes_keep_the_page_whole() {
        let mut p = vec![0u8; 4096];
        init_tree(&mut p, PageKind::Leaf, 0);
        let mut rec = Vec::new();
        // Out of order inserts land in key order.
        for k in [b"m", b"c", b"x", b"a"] {
            leaf_record(&mut rec, k, ValueRef::Inline(b"1234"));
            let i = search(&p, k).unwrap_err();
            assert!(insert(&mut p, i, &rec));
        }
        let keys: Vec<&[u8]> = (0..count(&p)).map(|i| key(&p, i)).collect();
        assert_eq!(keys, [b"a", b"c", b"m", b"x"]);
        // A longer value moves the record; a removal leaves a hole that a compaction reclaims.
        leaf_record(&mut rec, b"c", ValueRef::Inline(&[7; 300]));
        assert!(replace(&mut p, 1, &rec));
        remove(&mut p, 0);
        assert_eq!(value(&p, 0), ValueRef::Inline(&[7; 300]));
        let before = used(&p);
        seal(&mut p, 3);
        validate(&p, 3).unwrap();
        // Fill until the page refuses: every insert that succeeds keeps it valid.
        let mut n = 0u32;
        loop {
            let k = format!("k{n:05}");
            leaf_record(&mut rec, k.as_bytes(), ValueRef::Inline(&[1; 50]));
            let i = search(&p, k.as_bytes()).unwrap_err();
            if !insert(&mut p, i, &rec) {
                break;
            }
            n += 1;
        }
        assert!(used(&p) + 2 + rec.len() > 4096);
        assert!(used(&p) > before);
        seal(&mut p, 3);
        validate(&p, 3).unwrap();
        while count(&p) > 0 {
            let middle = count(&p) / 2;
            remove(&mut p, middle);
        }
        assert_eq!(used(&p), TREE_HEADER);
    }

    #[test]
    fn a_branch_names_its_children() {
        let mut p = vec![0u8; 8192];
        init_tree(&mut p, PageKind::Branch, 3);
        let mut rec = Vec::new();
        branch_record(&mut rec, b"k", 4);
        assert!(insert(&mut p, 0, &rec));
        branch_record(&mut rec, b"m", 5);
        assert!(insert(&mut p, 1, &rec));
        assert_eq!((child(&p, 0), child(&p, 1), child(&p, 2)), (3, 4, 5));
        assert_eq!(child_index(&p, b"a"), 0);
        assert_eq!(child_index(&p, b"k"), 1);
        assert_eq!(child_index(&p, b"l"), 1);
        assert_eq!(child_index(&p, b"z"), 2);
        seal(&mut p, 5);
        assert_eq!(validate(&p, 5).unwrap().0, PageKind::Branch);
    }

    #[test]
    fn random_inserts_replaces_and_removes_match_a_model() {
        // Every step is followed by a seal and a full validation, and the page must hold
        // exactly the model's records: holes, compaction and the room checks all get hit.
        use std::collections::BTreeMap;
        for page_size in [4096usize, 32768] {
            for seed in 1..120u64 {
                let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut below = |n: usize| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % n as u64) as usize
                };
                let mut p = vec![0u8; page_size];
                init_tree(&mut p, PageKind::Leaf, 0);
                let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                let mut rec = Vec::new();
                for _ in 0..300 {
                    let k: Vec<u8> = (0..below(20)).map(|_| below(4) as u8).collect();
                    let room = inline_entry_max(page_size) - inline_entry_len(k.len(), 0);
                    let len = match below(3) {
                        0 => below(8),
                        1 => below(room / 4 + 1),
                        _ => below(room + 1),
                    };
                    let v = vec![below(256) as u8; len];
                    if below(3) < 2 {
                        leaf_record(&mut rec, &k, ValueRef::Inline(&v));
                        let done = match search(&p, &k) {
                            Ok(i) => replace(&mut p, i, &rec),
                            Err(i) => insert(&mut p, i, &rec),
                        };
                        if done {
                            model.insert(k, v);
                        } else {
                            assert!(used(&p) + 2 + rec.len() > page_size || search(&p, &k).is_ok());
                        }
                    } else if !model.is_empty() {
                        let i = below(model.len());
                        let k = model.keys().nth(i).unwrap().clone();
                        remove(&mut p, i);
                        model.remove(&k);
                    }
                    seal(&mut p, 7);
                    validate(&p, 7).unwrap();
                    assert_eq!(count(&p), model.len());
                    for (i, (k, v)) in model.iter().enumerate() {
                        assert_eq!((key(&p, i), value(&p, i)), (&k[..], ValueRef::Inline(v)));
                    }
                }
            }
        }
    }

    #[test]
    fn a_replace_that_exactly_fills_the_page_is_taken() {
        // Fill a leaf until it refuses, then grow record 0 by exactly the bytes left: the
        // replace fits (the old record's bytes are given back first) and must be taken.
        let mut p = vec![0u8; 4096];
        init_tree(&mut p, PageKind::Leaf, 0);
        let mut rec = Vec::new();
        for n in 0u32.. {
            leaf_record(
                &mut rec,
                format!("k{n:05}").as_bytes(),
                ValueRef::Inline(&[1; 50]),
            );
            if !insert(&mut p, n as usize, &rec) {
                break;
            }
        }
        let free = p.len() - used(&p);
        assert!(
            free > 0,
            "the filled page should have a few bytes left over"
        );
        let old_len = record(&p, 0).len();
        let too_long = vec![2; 50 + free + 1];
        leaf_record(&mut rec, b"k00000", ValueRef::Inline(&too_long));
        assert_eq!(rec.len(), old_len + free + 1);
        assert!(
            !replace(&mut p, 0, &rec),
            "a record one byte too long must not fit"
        );
        assert_eq!(
            value(&p, 0),
            ValueRef::Inline(&[1; 50]),
            "a refused replace changes nothing"
        );
        let exact = vec![3; 50 + free];
        leaf_record(&mut rec, b"k00000", ValueRef::Inline(&exact));
        assert!(
            replace(&mut p, 0, &rec),
            "a record that exactly fills the page must fit"
        );
        assert_eq!(used(&p), p.len(), "the page is then full");
        assert_eq!(value(&p, 0), ValueRef::Inline(&exact));
        seal(&mut p, 3);
        validate(&p, 3).unwrap();
    }

    #[test]
    fn an_insert_that_fits_the_free_gap_moves_no_other_record() {
        // Compaction is for an insert the gap between directory and records cannot take; one
        // that exactly fills the gap writes its record there and leaves the holes alone.
        let mut p = vec![0u8; 4096];
        init_tree(&mut p, PageKind::Leaf, 0);
        let mut rec = Vec::new();
        let gap = |p: &[u8]| rd16(p, DATA_START) - (TREE_HEADER + 2 * count(p));
        let mut n = 0;
        while gap(&p) > 600 {
            leaf_record(
                &mut rec,
                format!("k{n:05}").as_bytes(),
                ValueRef::Inline(&[1; 100]),
            );
            assert!(insert(&mut p, n, &rec));
            n += 1;
        }
        remove(&mut p, 1);
        let holes = rd16(&p, HOLES);
        assert!(
            holes > 0,
            "removing a record below data_start leaves a hole"
        );
        let offsets: Vec<usize> = (0..count(&p)).map(|i| slot(&p, i)).collect();
        let v = vec![2; gap(&p) - inline_entry_len(6, 0)];
        leaf_record(&mut rec, b"k99999", ValueRef::Inline(&v));
        assert_eq!(
            2 + rec.len(),
            gap(&p),
            "the record and its slot fill the gap exactly"
        );
        let last = count(&p);
        assert!(insert(&mut p, last, &rec));
        assert_eq!(gap(&p), 0);
        assert_eq!(
            rd16(&p, HOLES),
            holes,
            "an insert that fits the gap must not compact"
        );
        let after: Vec<usize> = (0..offsets.len()).map(|i| slot(&p, i)).collect();
        assert_eq!(after, offsets, "the other records stay where they were");
        assert_eq!(value(&p, last), ValueRef::Inline(&v));
        seal(&mut p, 3);
        validate(&p, 3).unwrap();
    }

    fn corrupt(mut p: Vec<u8>, pgno: Pgno, change: impl Fn(&mut [u8])) {
        change(&mut p);
        seal(&mut p, pgno);
        assert_eq!(
            validate(&p, pgno).unwrap_err().kind(),
            crate::ErrorKind::DatabaseCorrupted
        );
    }

    #[test]
    fn inconsistent_content_with_a_good_checksum_is_corruption() {
        let good = leaf_with(
            &[
                (b"a", ValueRef::Inline(b"1")),
                (b"b", ValueRef::Inline(b"2")),
            ],
            4096,
        );
        // Keys out of order.
        corrupt(good.clone(), 9, |p| {
            let (a, b) = (slot(p, 0), slot(p, 1));
            wr16(p, TREE_HEADER, b);
            wr16(p, TREE_HEADER + 2, a);
        });
        // A count larger than the directory's room.
        corrupt(good.clone(), 9, |p| wr16(p, COUNT, 0x7fff));
        // Two slots naming one record.
        corrupt(good.clone(), 9, |p| {
            let a = slot(p, 0);
            wr16(p, TREE_HEADER + 2, a + 1);
        });
        // A record running past the page.
        corrupt(good.clone(), 9, |p| {
            let at = slot(p, 1);
            wr16(p, at + 3, 60_000);
        });
        // Holes that do not add up.
        corrupt(good.clone(), 9, |p| wr16(p, HOLES, 3));
        // An unknown value tag.
        corrupt(good.clone(), 9, |p| {
            let at = slot(p, 0);
            p[at + 2] = 7;
        });
        // An overflow page claiming more than a page.
        let mut p = vec![0u8; 4096];
        init_overflow(&mut p, 0, b"abc");
        corrupt(p, 9, |p| wr32(p, PAGE_HEADER_LEN + 4, 5000));
    }

    #[test]
    fn a_record_area_past_the_page_or_a_reserved_field_set_is_corruption() {
        let good = leaf_with(
            &[
                (b"a", ValueRef::Inline(b"1")),
                (b"b", ValueRef::Inline(b"2")),
            ],
            4096,
        );
        // A record area starting past the page's end (not an arithmetic overflow).
        corrupt(good.clone(), 9, |p| wr16(p, DATA_START, 4096 + 2));
        // The reserved field set, alone; a leaf naming a leftmost child, alone.
        corrupt(good.clone(), 9, |p| wr16(p, 38, 1));
        corrupt(good, 9, |p| wr32(p, LEFTMOST, 5));
    }

    #[test]
    fn a_leaf_record_above_its_limit_is_corruption_and_one_at_it_is_not() {
        use crate::base::limits::VALUE_LEN_MAX;
        let page_size = 4096;
        let max = inline_entry_max(page_size);
        // An inline record that with its slot takes exactly the quarter page is valid; one
        // byte more is not (the splits rely on it).
        let at_max = vec![1; max - inline_entry_len(1, 0)];
        let mut p = leaf_with(&[(b"a", ValueRef::Inline(&at_max))], page_size);
        seal(&mut p, 9);
        validate(&p, 9).expect("an inline record of exactly the limit is valid");
        let above = vec![1; max - inline_entry_len(1, 0) + 1];
        corrupt(
            leaf_with(&[(b"a", ValueRef::Inline(&above))], page_size),
            9,
            |_| {},
        );
        // An overflow value is valid up to the longest value, in a chain that is not page 0.
        let overflow = |first, len| ValueRef::Overflow { first, len };
        let longest = u32::try_from(VALUE_LEN_MAX).unwrap();
        let mut p = leaf_with(&[(b"a", overflow(12, longest))], page_size);
        seal(&mut p, 9);
        validate(&p, 9).expect("an overflow value of the longest length is valid");
        corrupt(
            leaf_with(&[(b"a", overflow(12, longest + 1))], page_size),
            9,
            |_| {},
        );
        corrupt(leaf_with(&[(b"a", overflow(0, 10))], page_size), 9, |_| {});
    }
}
