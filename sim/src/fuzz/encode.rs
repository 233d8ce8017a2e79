//! Inputs for the fuzz targets, written as the bytes [`arbitrary`] decodes into them: the
//! inverse of the derived decoders (arbitrary 1.x's format), for building seed corpora by hand.
//!
//! The format: an integer is its little-endian bytes; a `bool` is a byte whose lowest bit is
//! the value; an enum is a `u32` whose top bits, times the variant count, pick the variant,
//! then its fields; the last collection of a top-level input (`arbitrary_take_rest`) is each
//! element after a `true` byte, and ends at a `false` byte or the end of the input.

use super::{btree_ops, damaged_backup, damaged_database, damaged_log};

/// A byte buffer written in [`arbitrary`]'s format.
#[derive(Clone, Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// A `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `bool`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    /// Variant `index` of an enum of `count` variants: the smallest `u32` that picks it.
    pub fn variant(&mut self, index: u32, count: u32) -> &mut Self {
        let pick = (u64::from(index) << 32).div_ceil(u64::from(count));
        self.u32(u32::try_from(pick).expect("index < count"))
    }
}

/// The bytes of a `Vec<T>` taking the rest of the input: each element after a `true` byte.
fn take_rest<T>(w: &mut Writer, items: &[T], mut each: impl FnMut(&mut Writer, &T)) {
    for item in items {
        w.bool(true);
        each(w, item);
    }
}

/// The bytes `btree_ops` decodes into `input`.
pub fn btree_ops(input: &btree_ops::Input) -> Vec<u8> {
    use btree_ops::Op;
    let mut w = Writer::default();
    w.u8(input.page_shift).bool(input.tiny_cache);
    let key = |w: &mut Writer, k: &btree_ops::Key| {
        w.u16(k.0).u8(k.1);
    };
    take_rest(&mut w, &input.ops, |w, op| match op {
        Op::Put { key: k, len, fill } => {
            w.variant(0, 6);
            key(w, k);
            w.u16(*len).u8(*fill);
        }
        Op::PutLarge { key: k, pages } => {
            w.variant(1, 6);
            key(w, k);
            w.u8(*pages);
        }
        Op::Delete { key: k } => {
            w.variant(2, 6);
            key(w, k);
        }
        Op::Get { key: k } => {
            w.variant(3, 6);
            key(w, k);
        }
        Op::Seek { key: k, mode } => {
            w.variant(4, 6);
            key(w, k);
            w.u8(*mode);
        }
        Op::Reopen => {
            w.variant(5, 6);
        }
    });
    w.0
}

/// The bytes `damaged_backup` decodes into `damage`.
pub fn damaged_backup(damage: &[damaged_backup::Damage]) -> Vec<u8> {
    use damaged_backup::Damage;
    let mut w = Writer::default();
    take_rest(&mut w, damage, |w, d| match *d {
        Damage::Xor {
            file,
            at,
            mask,
            reseal,
        } => {
            w.variant(0, 3).u8(file).u32(at).u8(mask).bool(reseal);
        }
        Damage::Truncate { file, len } => {
            w.variant(1, 3).u8(file).u32(len);
        }
        Damage::Remove { file } => {
            w.variant(2, 3).u8(file);
        }
    });
    w.0
}

/// The bytes `damaged_log` decodes into `damage`.
pub fn damaged_log(damage: &[damaged_log::Damage]) -> Vec<u8> {
    use damaged_log::Damage;
    let mut w = Writer::default();
    take_rest(&mut w, damage, |w, d| match *d {
        Damage::Xor {
            file,
            at,
            mask,
            reseal,
        } => {
            w.variant(0, 3).u8(file).u32(at).u8(mask).bool(reseal);
        }
        Damage::Truncate { file, len } => {
            w.variant(1, 3).u8(file).u32(len);
        }
        Damage::Remove { file } => {
            w.variant(2, 3).u8(file);
        }
    });
    w.0
}

/// The bytes `damaged_database` decodes into `damage`.
pub fn damaged_database(damage: &[damaged_database::Damage]) -> Vec<u8> {
    use damaged_database::Damage;
    let mut w = Writer::default();
    take_rest(&mut w, damage, |w, d| match *d {
        Damage::Xor { at, mask, reseal } => {
            w.variant(0, 5).u32(at).u8(mask).bool(reseal);
        }
        Damage::ZeroPage { page } => {
            w.variant(1, 5).u16(page);
        }
        Damage::CopyPage { from, to, reseal } => {
            w.variant(2, 5).u16(from).u16(to).bool(reseal);
        }
        Damage::Truncate { len } => {
            w.variant(3, 5).u32(len);
        }
        Damage::Stale { page } => {
            w.variant(4, 5).u16(page);
        }
    });
    w.0
}

#[cfg(test)]
mod tests {
    use arbitrary::{Arbitrary, Unstructured};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Decoding random bytes and encoding the result gives bytes that decode to the same
    /// value: the encoder is the decoder's inverse on every variant.
    fn round_trips<T: for<'a> Arbitrary<'a> + PartialEq + std::fmt::Debug>(
        encode: impl Fn(&T) -> Vec<u8>,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..500 {
            let len = rng.random_range(0..200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let Ok(value) = T::arbitrary_take_rest(Unstructured::new(&bytes)) else {
                continue;
            };
            let again = T::arbitrary_take_rest(Unstructured::new(&encode(&value))).unwrap();
            assert_eq!(again, value);
        }
    }

    #[test]
    fn encoders_invert_the_decoders() {
        round_trips::<btree_ops::Input>(btree_ops);
        round_trips::<Vec<damaged_backup::Damage>>(|d| damaged_backup(d));
        round_trips::<Vec<damaged_log::Damage>>(|d| damaged_log(d));
        round_trips::<Vec<damaged_database::Damage>>(|d| damaged_database(d));
    }

    #[test]
    fn variants_pick_themselves() {
        for count in 1..=7u32 {
            for index in 0..count {
                let mut w = Writer::default();
                w.variant(index, count);
                let x = u32::from_le_bytes(w.0.try_into().unwrap());
                assert_eq!((u64::from(x) * u64::from(count)) >> 32, u64::from(index));
            }
        }
    }
}
