//! Numbered records, for the crash and power-loss tests: record `i` is [`key`]`(i)` →
//! [`value`]`(i)`, committed one to a transaction by [`commit_each`]. Not re-exported at the
//! top of `support` (its `key` is another): `use support::numbered::{key, value}`.

use jetdb::{CommitMode, Session, Table};

/// The key of record `i`: `key00042`.
pub fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// The value of record `i`: `value 42 ` repeated one to seven times.
pub fn value(i: u32) -> Vec<u8> {
    format!("value {i} ")
        .repeat(1 + (i as usize % 7))
        .into_bytes()
}

/// Commits record `i` for each `i` in `ids`, one transaction each.
pub fn commit_each(
    session: &mut Session,
    t: Table,
    ids: impl IntoIterator<Item = u32>,
    mode: CommitMode,
) {
    for i in ids {
        session.begin_transaction().unwrap();
        session.put(t, &key(i), &value(i)).unwrap();
        session.commit_transaction(mode).unwrap();
    }
}
