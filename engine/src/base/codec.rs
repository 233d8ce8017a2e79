//! Little-endian encoding helpers over byte slices. Reading is bounds-checked and returns an
//! error instead of panicking, because every byte read from a file is untrusted input.

use crate::base::error::{ErrorKind, JetError, Result};

/// Reads little-endian fields from a byte slice, front to back.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                JetError::new(
                    ErrorKind::DatabaseCorrupted,
                    format!(
                        "a field of {n} bytes at offset {} runs past the end ({} bytes)",
                        self.pos,
                        self.bytes.len()
                    ),
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Appends little-endian fields to a byte vector.
pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { out }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Stores in the first four bytes of `block` the CRC32 of the rest: the seal of log headers,
/// log segments and checkpoint slots.
pub(crate) fn seal_crc(block: &mut [u8]) {
    let crc = crc32fast::hash(&block[4..]);
    block[..4].copy_from_slice(&crc.to_le_bytes());
}

/// Whether the first four bytes of `block` hold the CRC32 of the rest.
pub(crate) fn crc_holds(block: &[u8]) -> bool {
    block.len() >= 4 && block[..4] == crc32fast::hash(&block[4..]).to_le_bytes()
}

/// Whether every byte of `bytes` is zero. Compared a block at a time against a zero block
/// (memcmp, vectorised): many times faster than a byte loop, and log scans test every
/// segment of mostly blank files.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    const ZEROS: [u8; 4096] = [0; 4096];
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.u8(1);
        w.u32(0x0405_0607);
        w.u64(0x0809_0a0b_0c0d_0e0f);
        w.bytes(b"xy");
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u32().unwrap(), 0x0405_0607);
        assert_eq!(r.u64().unwrap(), 0x0809_0a0b_0c0d_0e0f);
        assert_eq!(r.bytes(2).unwrap(), b"xy");
        assert_eq!(r.u8().unwrap_err().kind(), ErrorKind::DatabaseCorrupted);
        assert_eq!(
            Reader::new(&buf).bytes(usize::MAX).unwrap_err().kind(),
            ErrorKind::DatabaseCorrupted
        );
    }
}
