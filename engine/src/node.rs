//! The decoded contents of B+tree, overflow and free pages, and their byte layout.
//!
//! The page cache holds pages decoded into [`Node`]s; they are encoded only when written back.
//! Bodies (after the 32-byte envelope of `page`), little-endian:
//!
//! ```text
//! leaf:     count u16, then per entry: key length u8, tag u8 (0 inline, 1 overflow), key,
//!           inline: value length u16, value | overflow: value length u32, first page u32
//! branch:   count u16 (separator keys), first child u32,
//!           then per separator: key length u8, key, child u32 (the child right of the key)
//! overflow: next page of the chain u32 (0: the last), data length u32, data
//! free:     next free page u32 (0: end of the free list)
//! ```
//!
//! Decoding checks every length against the page and that keys ascend strictly, so a page whose
//! checksum is right but whose content is not (a bug, or a write of the wrong page) gives
//! `JET_errDatabaseCorrupted` instead of a panic or wrong data.

use crate::codec::{Reader, Writer};
use crate::error::{Result, bail};
use crate::page::{self, PAGE_HEADER_LEN, PageHeader, PageKind, Pgno};

/// A value stored in a leaf: inline, or out of line in a chain of overflow pages.
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

/// One key and its value in a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Value,
}

impl LeafEntry {
    /// The bytes this entry takes in a leaf page.
    pub fn encoded_len(&self) -> usize {
        2 + self.key.len()
            + match &self.value {
                Value::Inline(bytes) => 2 + bytes.len(),
                Value::Overflow { .. } => 8,
            }
    }
}

/// A B+tree leaf: entries in strictly ascending key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leaf {
    /// The entries, sorted by key.
    pub entries: Vec<LeafEntry>,
}

/// A B+tree branch: `children[i]` holds the keys in `[keys[i-1], keys[i])`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branch {
    /// The separator keys, strictly ascending.
    pub keys: Vec<Vec<u8>>,
    /// The child pages; always one more than the keys.
    pub children: Vec<Pgno>,
}

impl Branch {
    /// The index of the child whose range holds `key`.
    pub fn child_index(&self, key: &[u8]) -> usize {
        self.keys.partition_point(|sep| sep.as_slice() <= key)
    }
}

/// A page of a value stored out of line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// The next page of the chain (0: this is the last).
    pub next: Pgno,
    /// This page's piece of the value.
    pub data: Vec<u8>,
}

/// A decoded database page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A B+tree leaf.
    Leaf(Leaf),
    /// A B+tree branch.
    Branch(Branch),
    /// A piece of an out-of-line value.
    Overflow(Overflow),
    /// A page on the free list, naming the next one (0: the end).
    Free(Pgno),
}

/// The most bytes one leaf entry may take inline; larger values go to overflow pages. A quarter
/// of the usable page, so every leaf holds at least four entries and any overfull leaf splits
/// into two that fit.
pub fn inline_entry_max(page_size: usize) -> usize {
    (page_size - PAGE_HEADER_LEN - 2) / 4
}

/// How many value bytes one overflow page holds.
pub fn overflow_capacity(page_size: usize) -> usize {
    page_size - PAGE_HEADER_LEN - 8
}

impl Node {
    /// The page kind this node is stored as.
    pub fn kind(&self) -> PageKind {
        match self {
            Node::Leaf(_) => PageKind::Leaf,
            Node::Branch(_) => PageKind::Branch,
            Node::Overflow(_) => PageKind::Overflow,
            Node::Free(_) => PageKind::Free,
        }
    }

    /// The bytes this node takes when encoded, envelope included.
    pub fn encoded_len(&self) -> usize {
        PAGE_HEADER_LEN
            + match self {
                Node::Leaf(leaf) => {
                    2 + leaf
                        .entries
                        .iter()
                        .map(LeafEntry::encoded_len)
                        .sum::<usize>()
                }
                Node::Branch(branch) => {
                    6 + branch.keys.iter().map(|key| 5 + key.len()).sum::<usize>()
                }
                Node::Overflow(overflow) => 8 + overflow.data.len(),
                Node::Free(_) => 4,
            }
    }

    /// Encodes the node into `page` (whose length is the page size) as page `pgno`.
    pub fn encode_into(&self, page: &mut Vec<u8>, pgno: Pgno, dbtime: u64) {
        let page_size = page.len();
        assert!(
            self.encoded_len() <= page_size,
            "page {pgno}: node of {} bytes",
            self.encoded_len()
        );
        page.clear();
        page.resize(PAGE_HEADER_LEN, 0);
        let mut w = Writer::new(page);
        match self {
            Node::Leaf(leaf) => {
                w.u16(u16::try_from(leaf.entries.len()).expect("entries fit a page"));
                for entry in &leaf.entries {
                    w.u8(u8::try_from(entry.key.len()).expect("key length checked on insert"));
                    match &entry.value {
                        Value::Inline(bytes) => {
                            w.u8(0);
                            w.bytes(&entry.key);
                            w.u16(u16::try_from(bytes.len()).expect("inline value fits a page"));
                            w.bytes(bytes);
                        }
                        Value::Overflow { first, len } => {
                            w.u8(1);
                            w.bytes(&entry.key);
                            w.u32(*len);
                            w.u32(*first);
                        }
                    }
                }
            }
            Node::Branch(branch) => {
                assert_eq!(branch.children.len(), branch.keys.len() + 1);
                w.u16(u16::try_from(branch.keys.len()).expect("keys fit a page"));
                w.u32(branch.children[0]);
                for (key, child) in branch.keys.iter().zip(&branch.children[1..]) {
                    w.u8(u8::try_from(key.len()).expect("key length checked on insert"));
                    w.bytes(key);
                    w.u32(*child);
                }
            }
            Node::Overflow(overflow) => {
                w.u32(overflow.next);
                w.u32(u32::try_from(overflow.data.len()).expect("data fits a page"));
                w.bytes(&overflow.data);
            }
            Node::Free(next) => w.u32(*next),
        }
        page.resize(page_size, 0);
        page::seal(
            page,
            PageHeader {
                pgno,
                dbtime,
                kind: self.kind(),
            },
        );
    }

    /// Verifies and decodes `page`, read as page `pgno`; returns the node and its dbtime.
    pub fn decode(page: &[u8], pgno: Pgno) -> Result<(Node, u64)> {
        let envelope = page::verify(page, pgno)?;
        let mut r = Reader::new(&page[PAGE_HEADER_LEN..]);
        let node = match envelope.kind {
            PageKind::Leaf => Node::Leaf(decode_leaf(&mut r, page.len())?),
            PageKind::Branch => Node::Branch(decode_branch(&mut r)?),
            PageKind::Overflow => {
                let next = r.u32()?;
                let len = r.u32()? as usize;
                if len > overflow_capacity(page.len()) {
                    bail!(
                        DatabaseCorrupted,
                        "overflow data of {len} bytes in a page of {}",
                        page.len()
                    );
                }
                Node::Overflow(Overflow {
                    next,
                    data: r.bytes(len)?.to_vec(),
                })
            }
            PageKind::Free => Node::Free(r.u32()?),
            PageKind::Header => bail!(
                DatabaseCorrupted,
                "a header page where a tree page should be"
            ),
        };
        Ok((node, envelope.dbtime))
    }
}

fn decode_leaf(r: &mut Reader<'_>, page_size: usize) -> Result<Leaf> {
    let count = r.u16()? as usize;
    let mut entries: Vec<LeafEntry> = Vec::with_capacity(count.min(page_size / 4));
    for _ in 0..count {
        let key_len = r.u8()? as usize;
        let tag = r.u8()?;
        let key = r.bytes(key_len)?.to_vec();
        let value = match tag {
            0 => {
                let len = r.u16()? as usize;
                Value::Inline(r.bytes(len)?.to_vec())
            }
            1 => {
                let len = r.u32()?;
                let first = r.u32()?;
                if first == 0 || len as usize > crate::limits::VALUE_LEN_MAX {
                    bail!(
                        DatabaseCorrupted,
                        "overflow value of {len} bytes at page {first}"
                    );
                }
                Value::Overflow { first, len }
            }
            _ => bail!(DatabaseCorrupted, "unknown value tag {tag}"),
        };
        if entries.last().is_some_and(|prev| prev.key >= key) {
            bail!(DatabaseCorrupted, "leaf keys out of order");
        }
        let entry = LeafEntry { key, value };
        // Inline entries never exceed a quarter page: the split arithmetic relies on it.
        if matches!(entry.value, Value::Inline(_))
            && entry.encoded_len() > inline_entry_max(page_size)
        {
            bail!(
                DatabaseCorrupted,
                "an inline entry of {} bytes, above the limit",
                entry.encoded_len()
            );
        }
        entries.push(entry);
    }
    Ok(Leaf { entries })
}

fn decode_branch(r: &mut Reader<'_>) -> Result<Branch> {
    let count = r.u16()? as usize;
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(count.min(1024));
    let mut children = Vec::with_capacity(count.min(1024) + 1);
    children.push(r.u32()?);
    for _ in 0..count {
        let key_len = r.u8()? as usize;
        let key = r.bytes(key_len)?.to_vec();
        if keys.last().is_some_and(|prev| *prev >= key) {
            bail!(DatabaseCorrupted, "branch keys out of order");
        }
        keys.push(key);
        children.push(r.u32()?);
    }
    if children.contains(&0) {
        bail!(DatabaseCorrupted, "branch names page 0 as a child");
    }
    Ok(Branch { keys, children })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(node: &Node, page_size: usize) {
        let mut page = vec![0u8; page_size];
        node.encode_into(&mut page, 9, 42);
        assert_eq!(page.len(), page_size);
        let (decoded, dbtime) = Node::decode(&page, 9).unwrap();
        assert_eq!(&decoded, node);
        assert_eq!(dbtime, 42);
        assert!(node.encoded_len() <= page_size);
    }

    #[test]
    fn every_kind_round_trips() {
        let leaf = Node::Leaf(Leaf {
            entries: vec![
                LeafEntry {
                    key: vec![],
                    value: Value::Inline(vec![]),
                },
                LeafEntry {
                    key: b"a".to_vec(),
                    value: Value::Inline(b"xyz".to_vec()),
                },
                LeafEntry {
                    key: vec![0xff; 255],
                    value: Value::Overflow {
                        first: 12,
                        len: 100_000,
                    },
                },
            ],
        });
        round_trip(&leaf, 4096);
        let branch = Node::Branch(Branch {
            keys: vec![b"k".to_vec(), b"m".to_vec()],
            children: vec![3, 4, 5],
        });
        round_trip(&branch, 8192);
        round_trip(
            &Node::Overflow(Overflow {
                next: 0,
                data: vec![7; overflow_capacity(4096)],
            }),
            4096,
        );
        round_trip(&Node::Free(17), 32768);
    }

    #[test]
    fn encoded_len_is_exact() {
        let leaf = Node::Leaf(Leaf {
            entries: vec![LeafEntry {
                key: b"ab".to_vec(),
                value: Value::Inline(vec![1; 10]),
            }],
        });
        let mut page = vec![0u8; 4096];
        leaf.encode_into(&mut page, 3, 1);
        // The bytes after the encoded length are all padding.
        assert!(page[leaf.encoded_len()..].iter().all(|&b| b == 0));
        assert_ne!(page[leaf.encoded_len() - 1], 0);
    }

    #[test]
    fn inconsistent_content_with_a_good_checksum_is_corruption() {
        // Keys out of order.
        let mut page = vec![0u8; 4096];
        Node::Branch(Branch {
            keys: vec![b"a".to_vec(), b"b".to_vec()],
            children: vec![3, 4, 5],
        })
        .encode_into(&mut page, 9, 1);
        let first_key = PAGE_HEADER_LEN + 2 + 4 + 1;
        page[first_key] = b'c';
        page::seal(
            &mut page,
            PageHeader {
                pgno: 9,
                dbtime: 1,
                kind: PageKind::Branch,
            },
        );
        assert_eq!(
            Node::decode(&page, 9).unwrap_err().kind(),
            crate::ErrorKind::DatabaseCorrupted
        );
        // A count larger than the page holds.
        let mut page = vec![0u8; 4096];
        Node::Leaf(Leaf::default()).encode_into(&mut page, 9, 1);
        page[PAGE_HEADER_LEN] = 0xff;
        page::seal(
            &mut page,
            PageHeader {
                pgno: 9,
                dbtime: 1,
                kind: PageKind::Leaf,
            },
        );
        assert_eq!(
            Node::decode(&page, 9).unwrap_err().kind(),
            crate::ErrorKind::DatabaseCorrupted
        );
    }
}
