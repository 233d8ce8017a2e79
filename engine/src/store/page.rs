//! The page envelope: the header every database page carries and its checksum.
//!
//! ```text
//! offset size field
//!      0    4 checksum: CRC32 (crc32fast) of bytes 4..page_size
//!      4    4 pgno: the page's own number (a page found at another position is misdirected)
//!      8    8 dbtime: the database time of the page's last change
//!     16    1 kind: 1 header, 2 leaf, 3 branch, 4 overflow, 5 free, 6 flush map
//!     17   15 reserved, zero
//!     32      body, whose layout the kind decides (see `node` and `header`)
//! ```
//!
//! Validation order, as in ESE's `ErrValidatePage`: an all-zero page is blank
//! (`JET_errPageNotInitialized`), then the checksum (`JET_errReadVerifyFailure`), then the page
//! number (`JET_errReadPgnoVerifyFailure`).

use crate::base::error::{ErrorKind, JetError, Result, bail};

/// A page number. Page 0 is the database header, page 1 its shadow copy.
pub type Pgno = u32;

/// The length of the page envelope that starts every page.
pub const PAGE_HEADER_LEN: usize = 32;

const CHECKSUM_OFFSET: usize = 0;
const PGNO_OFFSET: usize = 4;
const DBTIME_OFFSET: usize = 8;
const KIND_OFFSET: usize = 16;

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// The database header (page 0) or its shadow (page 1).
    Header = 1,
    /// A B+tree leaf: keys and values.
    Leaf = 2,
    /// A B+tree branch: separator keys and child page numbers.
    Branch = 3,
    /// A piece of a value too large for a leaf.
    Overflow = 4,
    /// A page on the free list.
    Free = 5,
    /// A page of the flush map: the dbtime each page's last write gave it (see `flushmap`).
    Map = 6,
}

/// The kind a page's kind byte names, if it names one.
pub(crate) fn kind_of(byte: u8) -> Option<PageKind> {
    PageKind::from_u8(byte)
}

/// The dbtime a page's envelope records.
pub(crate) fn dbtime_of(page: &[u8]) -> u64 {
    u64::from(le_u32(page, DBTIME_OFFSET)) | (u64::from(le_u32(page, DBTIME_OFFSET + 4)) << 32)
}

/// Records `dbtime` in a page's envelope (sealed later, when it is written).
pub(crate) fn set_dbtime(page: &mut [u8], dbtime: u64) {
    page[DBTIME_OFFSET..DBTIME_OFFSET + 8].copy_from_slice(&dbtime.to_le_bytes());
}

impl PageKind {
    fn from_u8(byte: u8) -> Option<PageKind> {
        Some(match byte {
            1 => PageKind::Header,
            2 => PageKind::Leaf,
            3 => PageKind::Branch,
            4 => PageKind::Overflow,
            5 => PageKind::Free,
            6 => PageKind::Map,
            _ => return None,
        })
    }
}

/// The fields of a page envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// The page's number.
    pub pgno: Pgno,
    /// The database time of the page's last change.
    pub dbtime: u64,
    /// What the page holds.
    pub kind: PageKind,
}

/// Fills in the envelope of `page` (whose body is already written) and its checksum.
pub fn seal(page: &mut [u8], header: PageHeader) {
    assert!(page.len() >= crate::base::limits::PAGE_SIZE_MIN);
    page[PGNO_OFFSET..PGNO_OFFSET + 4].copy_from_slice(&header.pgno.to_le_bytes());
    page[DBTIME_OFFSET..DBTIME_OFFSET + 8].copy_from_slice(&header.dbtime.to_le_bytes());
    page[KIND_OFFSET] = header.kind as u8;
    page[KIND_OFFSET + 1..PAGE_HEADER_LEN].fill(0);
    let sum = checksum(page);
    page[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
    debug_assert!(verify(page, header.pgno).is_ok());
}

/// Checks a page a backup copies or a restore reads back: it must pass its checksum and hold
/// its own number, or be blank (allocated, never written). A page that is malformed otherwise
/// is `JET_errReadVerifyFailure`, whatever [`verify`] called it.
pub fn verify_copy(page: &[u8], pgno: Pgno) -> Result<()> {
    match verify(page, pgno) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::PageNotInitialized => Ok(()),
        Err(err) if err.kind() == ErrorKind::ReadPgnoVerifyFailure => Err(err),
        Err(err) => Err(JetError::new(
            ErrorKind::ReadVerifyFailure,
            err.message().to_string(),
        )),
    }
}

/// The checksum `page` carries (0 for a blank page).
pub fn stored_checksum(page: &[u8]) -> u32 {
    page.get(CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// The checksum a page should carry: CRC32 of everything after the checksum field.
pub fn checksum(page: &[u8]) -> u32 {
    crc32fast::hash(page.get(CHECKSUM_OFFSET + 4..).unwrap_or_default())
}

/// The page number a sealed page names, if its checksum holds (whichever page it is).
pub fn verify_sealed(page: &[u8]) -> Option<Pgno> {
    if page.len() < PAGE_HEADER_LEN || crate::base::codec::is_zero(page) {
        return None;
    }
    (le_u32(page, CHECKSUM_OFFSET) == checksum(page)).then(|| le_u32(page, PGNO_OFFSET))
}

/// Checks that `page` is the intact page number `pgno` and returns its envelope.
pub fn verify(page: &[u8], pgno: Pgno) -> Result<PageHeader> {
    verify_with(page, pgno, true)
}

/// [`verify`], with the checksum checked only if `check_sum` (false only where
/// `PlantedBug::PageChecksumUnchecked` is planted).
pub(crate) fn verify_with(page: &[u8], pgno: Pgno, check_sum: bool) -> Result<PageHeader> {
    if page.len() < PAGE_HEADER_LEN {
        bail!(
            DatabaseCorrupted,
            "page {pgno}: {} bytes, shorter than a page header",
            page.len()
        );
    }
    if crate::base::codec::is_zero(page) {
        bail!(PageNotInitialized, "page {pgno} is blank (all zero)");
    }
    let stored = le_u32(page, CHECKSUM_OFFSET);
    let actual = checksum(page);
    if stored != actual && check_sum {
        bail!(
            ReadVerifyFailure,
            "page {pgno}: checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        );
    }
    let found = le_u32(page, PGNO_OFFSET);
    if found != pgno {
        bail!(
            ReadPgnoVerifyFailure,
            "page {pgno} holds page {found} (a misdirected write)"
        );
    }
    let dbtime =
        u64::from(le_u32(page, DBTIME_OFFSET)) | (u64::from(le_u32(page, DBTIME_OFFSET + 4)) << 32);
    let kind = PageKind::from_u8(page[KIND_OFFSET]).ok_or_else(|| {
        JetError::new(
            ErrorKind::DatabaseCorrupted,
            format!("page {pgno}: unknown page kind {}", page[KIND_OFFSET]),
        )
    })?;
    Ok(PageHeader { pgno, dbtime, kind })
}

/// The little-endian u32 at `offset` of the envelope (whose length `verify` checked).
fn le_u32(page: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        page[offset],
        page[offset + 1],
        page[offset + 2],
        page[offset + 3],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(pgno: Pgno) -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        page[PAGE_HEADER_LEN..PAGE_HEADER_LEN + 5].copy_from_slice(b"hello");
        seal(
            &mut page,
            PageHeader {
                pgno,
                dbtime: 9,
                kind: PageKind::Leaf,
            },
        );
        page
    }

    #[test]
    fn sealed_page_verifies() {
        let header = verify(&sealed(7), 7).unwrap();
        assert_eq!(
            header,
            PageHeader {
                pgno: 7,
                dbtime: 9,
                kind: PageKind::Leaf
            }
        );
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let page = sealed(3);
        for bit in 0..page.len() * 8 {
            let mut bad = page.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = verify(&bad, 3).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ReadVerifyFailure, "bit {bit}");
        }
    }

    #[test]
    fn short_input_is_an_error() {
        for len in [0, 3, 31] {
            assert_eq!(
                verify(&vec![1u8; len], 0).unwrap_err().kind(),
                ErrorKind::DatabaseCorrupted
            );
        }
    }

    #[test]
    fn blank_and_misdirected_pages() {
        assert_eq!(
            verify(&[0u8; 4096], 5).unwrap_err().kind(),
            ErrorKind::PageNotInitialized
        );
        assert_eq!(
            verify(&sealed(4), 5).unwrap_err().kind(),
            ErrorKind::ReadPgnoVerifyFailure
        );
    }

    #[test]
    fn checksum_is_stable() {
        // A stability vector: the format must not change by accident.
        let page = sealed(1);
        assert_eq!(
            checksum(&page),
            u32::from_le_bytes(page[0..4].try_into().unwrap())
        );
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }
}
