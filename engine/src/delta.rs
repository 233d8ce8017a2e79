//! Page deltas: a changed page logged as the difference from its previous logged image.
//!
//! Leaves keep their entries packed in key order, so an insert or delete shifts everything
//! after it. The delta is therefore a *splice*: the page's new envelope, and the bytes that
//! replace `[start, old_end)` of the old body (both bodies taken without their trailing zeros).
//! One insert costs about the entry's size instead of a whole page.
//!
//! A delta applies only to the exact image it was computed from (the page's dbtime says so),
//! and the rebuilt page must pass its own checksum, so a delta applied to the wrong base is
//! caught, never written.

use crate::error::{Result, bail};
use crate::page::{PAGE_HEADER_LEN, Pgno};

/// The change from one image of a page to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splice {
    /// The new page's 32-byte envelope (checksum, page number, dbtime, kind).
    pub envelope: Vec<u8>,
    /// Where in the body (after the envelope) the new bytes start.
    pub start: u32,
    /// Where in the old body the replaced bytes end.
    pub old_end: u32,
    /// The bytes that replace `[start, old_end)` of the old body.
    pub data: Vec<u8>,
}

impl Splice {
    /// The dbtime of the page this splice produces.
    pub fn dbtime(&self) -> u64 {
        u64::from_le_bytes(self.envelope[8..16].try_into().expect("an envelope"))
    }
}

/// A page image as a commit logs it.
#[derive(Debug)]
pub(crate) enum PageImage {
    /// The whole page: its first image since the last checkpoint, or a change too large for
    /// a delta to pay.
    Full(Vec<u8>),
    /// The change from the page's previous logged image, whose dbtime is `base_dbtime`.
    Delta { base_dbtime: u64, splice: Splice },
}

/// Whether a splice is worth logging instead of the whole page.
pub(crate) fn worth_it(splice: &Splice, page_size: usize) -> bool {
    splice.data.len() + 64 < page_size / 2
}

fn trimmed(body: &[u8]) -> &[u8] {
    let end = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &body[..end]
}

/// The splice turning page image `old` into `new` (both sealed, of one size).
pub(crate) fn diff(old: &[u8], new: &[u8]) -> Splice {
    debug_assert_eq!(old.len(), new.len());
    let a = trimmed(&old[PAGE_HEADER_LEN..]);
    let b = trimmed(&new[PAGE_HEADER_LEN..]);
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    Splice {
        envelope: new[..PAGE_HEADER_LEN].to_vec(),
        start: prefix as u32,
        old_end: (a.len() - suffix) as u32,
        data: b[prefix..b.len() - suffix].to_vec(),
    }
}

/// Rebuilds the page `splice` makes of `base`, page `pgno` of `page_size` bytes. The caller
/// verifies the result's checksum.
pub(crate) fn apply(base: &[u8], splice: &Splice, pgno: Pgno, page_size: usize) -> Result<Vec<u8>> {
    let body = trimmed(&base[PAGE_HEADER_LEN..]);
    let (start, old_end) = (splice.start as usize, splice.old_end as usize);
    let new_len = start
        .checked_add(splice.data.len())
        .and_then(|n| n.checked_add(body.len().checked_sub(old_end)?))
        .filter(|_| start <= old_end && old_end <= body.len())
        .filter(|&n| PAGE_HEADER_LEN + n <= page_size && splice.envelope.len() == PAGE_HEADER_LEN);
    let Some(new_len) = new_len else {
        bail!(
            LogFileCorrupt,
            "a change to page {pgno} does not fit the page it applies to"
        );
    };
    let mut page = Vec::with_capacity(page_size);
    page.extend_from_slice(&splice.envelope);
    page.extend_from_slice(&body[..start]);
    page.extend_from_slice(&splice.data);
    page.extend_from_slice(&body[old_end..]);
    debug_assert_eq!(page.len(), PAGE_HEADER_LEN + new_len);
    page.resize(page_size, 0);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &[u8], tag: u8) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[..PAGE_HEADER_LEN].fill(tag);
        p[PAGE_HEADER_LEN..PAGE_HEADER_LEN + body.len()].copy_from_slice(body);
        p
    }

    #[test]
    fn splices_rebuild_inserts_deletes_and_rewrites() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"aaaabbbbcccc", b"aaaaXXbbbbcccc"),
            (b"aaaaXXbbbbcccc", b"aaaabbbbcccc"),
            (b"abc", b"abc"),
            (b"", b"hello"),
            (b"trailing zeros\0\0x", b"trailing zeros\0\0"),
            (b"aaaa", b"zzzzzzzz"),
        ];
        for (old, new) in cases {
            let (old, new) = (page(old, 1), page(new, 2));
            let splice = diff(&old, &new);
            assert_eq!(apply(&old, &splice, 9, 4096).unwrap(), new);
        }
        let s = diff(&page(b"aaaabbbbcccc", 1), &page(b"aaaaXXbbbbcccc", 2));
        assert_eq!((s.start, s.old_end, s.data.as_slice()), (4, 4, &b"XX"[..]));
    }

    #[test]
    fn a_splice_that_does_not_fit_its_base_is_an_error() {
        let splice = diff(&page(b"aaaabbbbcccc", 1), &page(b"aaaaXXbbbbcccc", 2));
        assert!(apply(&page(b"aa", 1), &splice, 9, 4096).is_err());
        let huge = Splice {
            data: vec![1; 5000],
            ..splice
        };
        assert!(apply(&page(b"aaaabbbbcccc", 1), &huge, 9, 4096).is_err());
    }
}
