//! Values too large for a leaf, stored out of line in a chain of overflow pages.
//!
//! A chain is laid out strictly: every page but the last holds exactly a page's capacity, and
//! the chain has exactly as many pages as the value's length needs. Reading checks all of it, so
//! a chain that a corrupt link cut short, lengthened or sent round in a loop is reported as
//! corruption, never returned as a wrong value.

use crate::base::error::{Result, bail};
use crate::store::node::{self, Chain, Value, ValueRef};
use crate::store::page::{PageKind, Pgno};
use crate::store::pager::Pager;

/// The stored form of `bytes` under `key`: inline when the record fits a quarter page,
/// otherwise a new overflow chain.
pub(crate) fn store<'a>(pager: &mut Pager, key: &[u8], bytes: &'a [u8]) -> Result<ValueRef<'a>> {
    if node::inline_entry_len(key.len(), bytes.len()) <= node::inline_entry_max(pager.page_size()) {
        return Ok(ValueRef::Inline(bytes));
    }
    let capacity = node::overflow_capacity(pager.page_size());
    // The pages first, in the order allocated (ascending in a file that grows, so a value
    // reads forward), then each filled knowing the next.
    let mut pages = Vec::with_capacity(bytes.len().div_ceil(capacity));
    for _ in bytes.chunks(capacity) {
        pages.push(pager.alloc(|page| node::init_overflow(page, 0, &[]))?);
    }
    for (i, chunk) in bytes.chunks(capacity).enumerate() {
        let next = pages.get(i + 1).copied().unwrap_or(0);
        node::init_overflow(pager.page_mut(pages[i])?, next, chunk);
    }
    let len = u32::try_from(bytes.len()).expect("value length checked against VALUE_LEN_MAX");
    Ok(ValueRef::Overflow {
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

/// Frees the overflow pages of a removed or replaced value (an inline value has none).
pub(crate) fn release(pager: &mut Pager, chain: Option<Chain>) -> Result<()> {
    if let Some(Chain { first, len }) = chain {
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
        if pager.kind(pgno)? != PageKind::Overflow {
            bail!(
                DatabaseCorrupted,
                "{path}: page {pgno} of a value chain is not an overflow page"
            );
        }
        let page = pager.page(pgno)?;
        let (data, next) = (node::overflow_data(page), node::next(page));
        if data.len() != expected || (i + 1 == count) != (next == 0) {
            bail!(
                DatabaseCorrupted,
                "{path}: overflow page {pgno} (piece {i} of {count}) holds {} bytes and links to {next}; expected {expected} bytes",
                data.len(),
            );
        }
        visit(pgno, data);
        pgno = next;
    }
    Ok(())
}
