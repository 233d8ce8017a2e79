//! Values too large for a leaf, stored out of line in a chain of overflow pages.
//!
//! A chain is laid out strictly: every page but the last holds exactly a page's capacity, and
//! the chain has exactly as many pages as the value's length needs. Reading checks all of it, so
//! a chain that a corrupt link cut short, lengthened or sent round in a loop is reported as
//! corruption, never returned as a wrong value.

use crate::error::{Result, bail};
use crate::node::{self, LeafEntry, Node, Overflow, Value};
use crate::page::Pgno;
use crate::pager::Pager;

/// The stored form of `bytes` under `key`: inline when the entry fits a quarter page, otherwise
/// a new overflow chain.
pub(crate) fn store(pager: &mut Pager, key: &[u8], bytes: &[u8]) -> Result<Value> {
    let inline = LeafEntry {
        key: key.to_vec(),
        value: Value::Inline(Vec::new()),
    }
    .encoded_len()
        + bytes.len();
    if inline <= node::inline_entry_max(pager.page_size()) {
        return Ok(Value::Inline(bytes.to_vec()));
    }
    let capacity = node::overflow_capacity(pager.page_size());
    let mut pages: Vec<Pgno> = Vec::with_capacity(bytes.len().div_ceil(capacity));
    for chunk in bytes.chunks(capacity) {
        pages.push(pager.alloc(Node::Overflow(Overflow {
            next: 0,
            data: chunk.to_vec(),
        }))?);
    }
    // Link each page to the next, now that their numbers are known.
    for pair in pages.windows(2) {
        let Node::Overflow(page) = pager.node_mut(pair[0])? else {
            unreachable!("just allocated")
        };
        page.next = pair[1];
    }
    let len = u32::try_from(bytes.len()).expect("value length checked against VALUE_LEN_MAX");
    Ok(Value::Overflow {
        first: pages[0],
        len,
    })
}

/// The bytes of a stored value.
pub(crate) fn load(pager: &mut Pager, value: Value) -> Result<Vec<u8>> {
    match value {
        Value::Inline(bytes) => Ok(bytes),
        Value::Overflow { first, len } => {
            let mut out = Vec::with_capacity(len as usize);
            walk(pager, first, len, &mut |_, data| {
                out.extend_from_slice(data)
            })?;
            Ok(out)
        }
    }
}

/// Frees the overflow pages of a stored value (an inline value has none).
pub(crate) fn release(pager: &mut Pager, value: &Value) -> Result<()> {
    if let &Value::Overflow { first, len } = value {
        for pgno in pages(pager, first, len)? {
            pager.free(pgno)?;
        }
    }
    Ok(())
}

/// The pages of the chain starting at `first` for a value of `len` bytes, in chain order.
pub(crate) fn pages(pager: &mut Pager, first: Pgno, len: u32) -> Result<Vec<Pgno>> {
    let mut out = Vec::new();
    walk(pager, first, len, &mut |pgno, _| out.push(pgno))?;
    Ok(out)
}

/// Follows the chain, checking its shape, and hands each page and its data to `visit`.
fn walk(
    pager: &mut Pager,
    first: Pgno,
    len: u32,
    visit: &mut dyn FnMut(Pgno, &[u8]),
) -> Result<()> {
    let capacity = node::overflow_capacity(pager.page_size());
    let count = (len as usize).div_ceil(capacity).max(1);
    let path = pager.path().display().to_string();
    let mut pgno = first;
    for i in 0..count {
        let expected = if i + 1 == count {
            len as usize - i * capacity
        } else {
            capacity
        };
        let Node::Overflow(page) = pager.node(pgno)? else {
            bail!(
                DatabaseCorrupted,
                "{path}: page {pgno} of a value chain is not an overflow page"
            );
        };
        if page.data.len() != expected || (i + 1 == count) != (page.next == 0) {
            bail!(
                DatabaseCorrupted,
                "{path}: overflow page {pgno} (piece {i} of {count}) holds {} bytes and links to {}; expected {expected} bytes",
                page.data.len(),
                page.next
            );
        }
        let next = page.next;
        visit(pgno, &page.data);
        pgno = next;
    }
    Ok(())
}
