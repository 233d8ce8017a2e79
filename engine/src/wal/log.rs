//! The write-ahead log: numbered generations of fixed-size, checksummed segments.
//!
//! The log path holds the current generation `edb.log`, archived generations
//! `edbXXXXXXXX.log` (the generation in eight upper-case hex digits) and, during a roll, the next
//! generation `edbtmp.log`. Every file is [`LogHeader`] in its first segment followed by data
//! segments:
//!
//! ```text
//! segment header (32 bytes): crc32 of [4..4096] | generation u32 | index u32 | used u16 |
//!                            flags u16 | durable mark u32 | log set id u64 | reserved u32
//! payload (4064 bytes):      `used` bytes of the record stream, then zeros
//! ```
//!
//! Each segment names its own generation, index and log set, so a segment from elsewhere is
//! refused. The *durable mark* is how many segments of the file were known durable (fsynced)
//! when the segment was written. It separates a torn tail (segments that were never
//! acknowledged) from damage to durable data: an invalid segment that a later valid segment
//! vouches for is corruption (`JET_errLogFileCorrupt`); one that nothing vouches for is the torn
//! tail of a write that never completed, and recovery stops before it.
//!
//! A flush seals the open segment, so a segment is never rewritten once written: a torn write
//! can only damage data that was never acknowledged.
//!
//! Records form one byte stream across the segments of a file: `kind u8 | len u32 | body`.
//! The log describes operations, not pages (see `doublewrite` for why the database file can
//! take them):
//!
//! ```text
//! Put         (1): key length u8 | key | value (the rest)
//! Commit      (2): transaction u64 | sequence u64 | millis u64 | records u32 | puts u32 |
//!                  deletes u32
//! End         (3): (empty)
//! Delete      (4): key length u8 | key
//! PutLarge    (5): key length u8 | key | value length u32 | the value's first part (the rest)
//! ValuePart   (6): the next part of the value a PutLarge began
//! Table       (7): table name: the table the group's next puts and deletes are in
//! CreateTable (8): table name
//! DeleteTable (9): table name
//! ```
//!
//! A commit group is a transaction's operations followed by its [`Record::Commit`]; a group
//! without its commit record is discarded by recovery. Records name their table once per run
//! ([`Record::Table`]), by name: replayed from any checkpoint onto the database as its last
//! batch left it, operations in log order give the same tables whatever pages they were
//! rooted at. [`Record::End`] closes a generation before it is archived.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::codec::{Reader, Writer, crc_holds, seal_crc};
use crate::base::env::Clock;
use crate::base::error::{ErrorKind, JetError, Result, bail, io_err};
use crate::base::limits;
use crate::base::vfs::{OpenMode, Vfs, VfsFile};
use crate::store::header::{Lgpos, Signature};

/// The size of a log segment, and of the log file header.
pub const SEGMENT_SIZE: usize = 4096;
const SEGMENT_HEADER_LEN: usize = 32;
/// The record bytes one segment carries.
pub const SEGMENT_PAYLOAD: usize = SEGMENT_SIZE - SEGMENT_HEADER_LEN;
/// The smallest log file size, in bytes (ESE's smallest is 128 KiB too).
pub const LOG_FILE_SIZE_MIN: u64 = 128 * 1024;
/// The largest log file size, in bytes: offsets within a generation are 32-bit.
pub const LOG_FILE_SIZE_MAX: u64 = 1024 * 1024 * 1024;
/// The log file size unless the caller chooses another (ESE's default, 5 MiB).
pub const LOG_FILE_SIZE_DEFAULT: u64 = 5 * 1024 * 1024;
/// The highest generation normal logging uses (ESE stops 0x200 below recovery's limit).
pub const GENERATION_MAX: u32 = 0x7FFF_FA00 - 0x200;

const LOG_MAGIC: u32 = 0x4A45_4C47;
const LOG_FORMAT_VERSION: u32 = 2;
/// Sealed segments are written (without an fsync) once this many bytes of them wait.
const WRITE_BEHIND_BYTES: usize = 256 * 1024;

const RECORD_PUT: u8 = 1;
const RECORD_COMMIT: u8 = 2;
const RECORD_END: u8 = 3;
const RECORD_DELETE: u8 = 4;
const RECORD_PUT_LARGE: u8 = 5;
const RECORD_VALUE_PART: u8 = 6;
const RECORD_TABLE: u8 = 7;
const RECORD_CREATE_TABLE: u8 = 8;
const RECORD_DELETE_TABLE: u8 = 9;
const RECORD_HEADER_LEN: usize = 5;
const COMMIT_BODY_LEN: usize = 36;
/// The most value bytes one record carries; a larger value goes as a [`Record::PutLarge`]
/// and [`Record::ValuePart`]s, so every record fits the smallest log file.
pub const VALUE_PART_MAX: usize = 32 * 1024;
/// Segment flag: the record stream restarts here (a writer resumed after recovery), so a
/// record cut short before this segment is dropped rather than continued.
const FLAG_RESTART: u16 = 1;

/// The header of a log file (ESE's LGFILEHDR), in its first 4 KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHeader {
    /// The generation this file holds.
    pub generation: u32,
    /// How many 4 KiB segments the file holds, the header's included.
    pub segments: u32,
    /// The log set this file belongs to; every file of a set and its database share it.
    pub log_signature: Signature,
    /// The database the log belongs to.
    pub db_signature: Signature,
    /// When this generation was created (ESE's tmCreate).
    pub created_millis: u64,
    /// When the previous generation was created (ESE's tmPrevGen); 0 for the first.
    pub prev_created_millis: u64,
    /// Whether circular logging was on when the file was created.
    pub circular: bool,
}

impl LogHeader {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEGMENT_SIZE);
        let mut w = Writer::new(&mut out);
        w.u32(0);
        w.u32(LOG_MAGIC);
        w.u32(LOG_FORMAT_VERSION);
        w.u32(self.generation);
        w.u32(SEGMENT_SIZE as u32);
        w.u32(self.segments);
        for sig in [self.log_signature, self.db_signature] {
            w.u64(sig.random);
            w.u64(sig.created_millis);
        }
        w.u64(self.created_millis);
        w.u64(self.prev_created_millis);
        w.u32(u32::from(self.circular));
        out.resize(SEGMENT_SIZE, 0);
        seal_crc(&mut out);
        out
    }

    /// The format version a whole log header (its checksum and magic number good) names.
    fn version_of(bytes: &[u8]) -> Option<u32> {
        let header = bytes.get(..SEGMENT_SIZE)?;
        if !crc_holds(header) {
            return None;
        }
        let mut r = Reader::new(&header[4..]);
        (r.u32().ok()? == LOG_MAGIC).then_some(())?;
        r.u32().ok()
    }

    fn decode(bytes: &[u8]) -> std::result::Result<LogHeader, String> {
        if bytes.len() < SEGMENT_SIZE {
            return Err(format!(
                "the file is {} bytes, shorter than its header",
                bytes.len()
            ));
        }
        let bytes = &bytes[..SEGMENT_SIZE];
        if crate::base::codec::is_zero(bytes) {
            return Err("the header is blank".into());
        }
        if !crc_holds(bytes) {
            return Err("the header's checksum does not match".into());
        }
        let mut r = Reader::new(&bytes[4..]);
        let field = |e: JetError| e.to_string();
        if r.u32().map_err(field)? != LOG_MAGIC {
            return Err("not a log file (bad magic number)".into());
        }
        let version = r.u32().map_err(field)?;
        if version != LOG_FORMAT_VERSION {
            return Err(format!("log format version {version} is not supported"));
        }
        let generation = r.u32().map_err(field)?;
        let segment_size = r.u32().map_err(field)?;
        if segment_size as usize != SEGMENT_SIZE {
            return Err(format!(
                "segment size {segment_size}, expected {SEGMENT_SIZE}"
            ));
        }
        let segments = r.u32().map_err(field)?;
        let fewest = (LOG_FILE_SIZE_MIN / SEGMENT_SIZE as u64) as u32;
        let most = (LOG_FILE_SIZE_MAX / SEGMENT_SIZE as u64) as u32;
        if !(fewest..=most).contains(&segments) {
            return Err(format!("{segments} segments is not a valid log file size"));
        }
        let mut sig = || -> std::result::Result<Signature, String> {
            Ok(Signature {
                random: r.u64().map_err(field)?,
                created_millis: r.u64().map_err(field)?,
            })
        };
        let log_signature = sig()?;
        let db_signature = sig()?;
        let created_millis = r.u64().map_err(field)?;
        let prev_created_millis = r.u64().map_err(field)?;
        let circular = r.u32().map_err(field)? != 0;
        Ok(LogHeader {
            generation,
            segments,
            log_signature,
            db_signature,
            created_millis,
            prev_created_millis,
            circular,
        })
    }

    /// The size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        u64::from(self.segments) * SEGMENT_SIZE as u64
    }
}

/// A commit record: it closes a transaction's group of operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitRecord {
    /// The transaction (or table operation) that committed.
    pub transaction: u64,
    /// The commit's sequence number: commits are numbered 1, 2, … in log order.
    pub sequence: u64,
    /// When the commit was logged.
    pub millis: u64,
    /// How many records the group holds before this one.
    pub records: u32,
    /// Records written by the transaction.
    pub puts: u32,
    /// Records deleted by the transaction.
    pub deletes: u32,
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The table the group's next puts and deletes are in.
    Table {
        /// The table's name.
        name: String,
    },
    /// A key set to a value.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// A key set to a value too large for one record: its first part; the rest follow as
    /// [`Record::ValuePart`]s.
    PutLarge {
        /// The key.
        key: Vec<u8>,
        /// The whole value's length.
        len: u32,
        /// The value's first part.
        part: Vec<u8>,
    },
    /// The next part of a [`Record::PutLarge`]'s value.
    ValuePart(Vec<u8>),
    /// A key deleted.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// A table created.
    CreateTable {
        /// Its name.
        name: String,
    },
    /// A table deleted.
    DeleteTable {
        /// Its name.
        name: String,
    },
    /// The end of a commit group.
    Commit(CommitRecord),
    /// The end of a generation: nothing follows in this file.
    End,
}

fn record_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

/// Appends to `out` the records of a put: one [`Record::Put`], or a [`Record::PutLarge`] and
/// its [`Record::ValuePart`]s. Returns where each record ends in `out` (the writer appends
/// them one at a time).
pub(crate) fn encode_put(out: &mut Vec<u8>, ends: &mut Vec<usize>, key: &[u8], value: &[u8]) {
    debug_assert!(key.len() <= limits::KEY_LEN_MAX);
    if value.len() <= VALUE_PART_MAX {
        record_header(out, RECORD_PUT, 1 + key.len() + value.len());
        out.push(key.len() as u8);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        ends.push(out.len());
        return;
    }
    let (first, rest) = value.split_at(VALUE_PART_MAX);
    record_header(out, RECORD_PUT_LARGE, 1 + key.len() + 4 + first.len());
    out.push(key.len() as u8);
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(first);
    ends.push(out.len());
    for part in rest.chunks(VALUE_PART_MAX) {
        record_header(out, RECORD_VALUE_PART, part.len());
        out.extend_from_slice(part);
        ends.push(out.len());
    }
}

/// Appends a delete record to `out`.
pub(crate) fn encode_delete(out: &mut Vec<u8>, key: &[u8]) {
    record_header(out, RECORD_DELETE, 1 + key.len());
    out.push(key.len() as u8);
    out.extend_from_slice(key);
}

/// Appends a record naming a table to `out`: [`Record::Table`], or with `create` /
/// `delete`, [`Record::CreateTable`] / [`Record::DeleteTable`].
pub(crate) fn encode_table(out: &mut Vec<u8>, kind: TableRecord, name: &str) {
    let kind = match kind {
        TableRecord::Use => RECORD_TABLE,
        TableRecord::Create => RECORD_CREATE_TABLE,
        TableRecord::Delete => RECORD_DELETE_TABLE,
    };
    record_header(out, kind, name.len());
    out.extend_from_slice(name.as_bytes());
}

/// Which record naming a table [`encode_table`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableRecord {
    /// [`Record::Table`].
    Use,
    /// [`Record::CreateTable`].
    Create,
    /// [`Record::DeleteTable`].
    Delete,
}

/// Appends a commit record to `out`.
pub(crate) fn encode_commit(out: &mut Vec<u8>, c: &CommitRecord) {
    record_header(out, RECORD_COMMIT, COMMIT_BODY_LEN);
    let start = out.len();
    let mut w = Writer::new(out);
    w.u64(c.transaction);
    w.u64(c.sequence);
    w.u64(c.millis);
    w.u32(c.records);
    w.u32(c.puts);
    w.u32(c.deletes);
    debug_assert_eq!(out.len() - start, COMMIT_BODY_LEN);
}

/// A key at the start of `body`: its length byte, then the key.
fn decode_key(body: &[u8]) -> std::result::Result<(Vec<u8>, &[u8]), String> {
    let (&len, rest) = body.split_first().ok_or("a record without its key")?;
    let len = len as usize;
    if rest.len() < len {
        return Err(format!(
            "a {len}-byte key in a record of {} bytes",
            body.len()
        ));
    }
    Ok((rest[..len].to_vec(), &rest[len..]))
}

fn decode_name(body: &[u8]) -> std::result::Result<String, String> {
    match std::str::from_utf8(body) {
        Ok(name)
            if !name.is_empty()
                && name.len() <= limits::TABLE_NAME_LEN_MAX
                && !name.contains('\0') =>
        {
            Ok(name.to_string())
        }
        _ => Err("a record naming a table by no valid name".into()),
    }
}

fn decode_record(kind: u8, body: &[u8]) -> std::result::Result<Record, String> {
    let field = |e: JetError| e.to_string();
    match kind {
        RECORD_PUT => {
            let (key, value) = decode_key(body)?;
            if value.len() > limits::VALUE_LEN_MAX {
                return Err(format!("a put record of a {}-byte value", value.len()));
            }
            Ok(Record::Put {
                key,
                value: value.to_vec(),
            })
        }
        RECORD_PUT_LARGE => {
            let (key, rest) = decode_key(body)?;
            let mut r = Reader::new(rest);
            let len = r.u32().map_err(field)?;
            let part = &rest[4..];
            if len as usize > limits::VALUE_LEN_MAX || part.len() >= len as usize {
                return Err(format!(
                    "a large put of {len} bytes whose first part is {} bytes",
                    part.len()
                ));
            }
            Ok(Record::PutLarge {
                key,
                len,
                part: part.to_vec(),
            })
        }
        RECORD_VALUE_PART if !body.is_empty() && body.len() <= VALUE_PART_MAX => {
            Ok(Record::ValuePart(body.to_vec()))
        }
        RECORD_DELETE => {
            let (key, rest) = decode_key(body)?;
            if !rest.is_empty() {
                return Err("a delete record with bytes after its key".into());
            }
            Ok(Record::Delete { key })
        }
        RECORD_TABLE => Ok(Record::Table {
            name: decode_name(body)?,
        }),
        RECORD_CREATE_TABLE => Ok(Record::CreateTable {
            name: decode_name(body)?,
        }),
        RECORD_DELETE_TABLE => Ok(Record::DeleteTable {
            name: decode_name(body)?,
        }),
        RECORD_COMMIT if body.len() == COMMIT_BODY_LEN => {
            let mut r = Reader::new(body);
            Ok(Record::Commit(CommitRecord {
                transaction: r.u64().map_err(field)?,
                sequence: r.u64().map_err(field)?,
                millis: r.u64().map_err(field)?,
                records: r.u32().map_err(field)?,
                puts: r.u32().map_err(field)?,
                deletes: r.u32().map_err(field)?,
            }))
        }
        RECORD_END if body.is_empty() => Ok(Record::End),
        _ => Err(format!(
            "an unknown record (kind {kind}, {} bytes)",
            body.len()
        )),
    }
}

/// The name of the current log file for base name `base`: `edb.log`.
pub fn current_name(base: &str) -> String {
    format!("{base}.log")
}

/// The name of the next log file while it is prepared: `edbtmp.log`.
pub fn tmp_name(base: &str) -> String {
    format!("{base}tmp.log")
}

/// The name of archived generation `generation`: `edb0000002A.log`.
pub fn archive_name(base: &str, generation: u32) -> String {
    format!("{base}{generation:08X}.log")
}

/// The generation an archived log's file name holds, if `name` is one.
pub fn parse_archive_name(base: &str, name: &str) -> Option<u32> {
    let hex = name.strip_prefix(base)?.strip_suffix(".log")?;
    if hex.len() != 8
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// What the scan of one log file found at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTail {
    /// The file ends with an end record (a finished generation).
    Ended,
    /// The records end and only blank segments follow: the current generation, open.
    Open,
    /// The records end before a segment (or record) that was never completely written; nothing
    /// from it on was acknowledged as durable.
    Torn {
        /// The first segment not whole.
        segment: u32,
        /// Why it is not whole.
        reason: String,
    },
    /// Data known durable is damaged.
    Corrupt {
        /// The damaged segment.
        segment: u32,
        /// Its byte offset in the file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Everything a scan of one log file found.
#[derive(Clone, Debug)]
pub struct LogScan {
    /// The file's header.
    pub header: LogHeader,
    /// The whole records, each with the position it starts at.
    pub records: Vec<(Lgpos, Record)>,
    /// The position just after the last whole record.
    pub end: Lgpos,
    /// How the file ends.
    pub tail: LogTail,
    /// The length of the valid prefix of data segments (where records can be).
    pub segments_used: u32,
    /// Where each segment written first by a writer resumed after recovery begins (its
    /// records' first position), ascending: a commit group still open there — from earlier in
    /// this generation or from the previous one — was cut off by a crash, never committed.
    pub restarts: Vec<Lgpos>,
}

impl LogScan {
    /// Whether anything but blank segments follows the last whole record.
    pub fn has_debris(&self) -> bool {
        !matches!(self.tail, LogTail::Open | LogTail::Ended)
    }
}

/// The commit records a [`LogScanner`] has read, in log order, kept as three numbers whatever
/// the file's size: a backup's verification checks a set's commits without replaying them
/// (recovery refuses commits that skip a sequence number: `JET_errLogFileCorrupt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commits {
    /// The first commit record, if the file holds one: where it is and its sequence number.
    pub first: Option<(Lgpos, u64)>,
    /// The last commit record.
    pub last: Option<(Lgpos, u64)>,
    /// The first commit that does not follow the one before it: where it is, the sequence
    /// number before it and its own.
    pub gap: Option<(Lgpos, u64, u64)>,
}

impl Commits {
    fn note(&mut self, at: Lgpos, sequence: u64) {
        if let Some((_, last)) = self.last
            && self.gap.is_none()
            && last.checked_add(1) != Some(sequence)
        {
            self.gap = Some((at, last, sequence));
        }
        self.first.get_or_insert((at, sequence));
        self.last = Some((at, sequence));
    }
}

enum Segment<'a> {
    Valid {
        used: &'a [u8],
        mark: u32,
        restart: bool,
    },
    Blank,
    Bad(String),
}

fn classify<'a>(seg: Option<&'a [u8]>, header: &LogHeader, index: u32) -> Segment<'a> {
    let Some(seg) = seg else {
        return Segment::Blank;
    };
    if crate::base::codec::is_zero(seg) {
        return Segment::Blank;
    }
    let u32_at = |at: usize| u32::from_le_bytes(seg[at..at + 4].try_into().expect("4 bytes"));
    if !crc_holds(seg) {
        return Segment::Bad("checksum mismatch".into());
    }
    let generation = u32_at(4);
    let at = u32_at(8);
    let used = u16::from_le_bytes([seg[12], seg[13]]) as usize;
    let flags = u16::from_le_bytes([seg[14], seg[15]]);
    let mark = u32_at(16);
    let set = u64::from_le_bytes(seg[20..28].try_into().expect("8 bytes"));
    if set != header.log_signature.random {
        return Segment::Bad("the segment belongs to another log set".into());
    }
    if generation != header.generation || at != index {
        return Segment::Bad(format!(
            "the segment says it is segment {at} of generation {generation:#X}"
        ));
    }
    if used > SEGMENT_PAYLOAD || mark > index || flags & !FLAG_RESTART != 0 {
        return Segment::Bad("the segment's header is malformed".into());
    }
    Segment::Valid {
        used: &seg[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + used],
        mark,
        restart: flags & FLAG_RESTART != 0,
    }
}

/// Scans a whole log file held in `bytes`: its header, its records, and how it ends.
///
/// Only a damaged or foreign header is an error (`JET_errLogFileCorrupt`); damage further in
/// is reported in [`LogScan::tail`], for the caller to judge by what the file is. The same
/// as a [`LogScanner`] keeping the records, fed the whole file.
pub fn scan(bytes: &[u8], name: &str) -> Result<LogScan> {
    let mut scanner = LogScanner::keeping_records(name);
    scanner.feed(bytes)?;
    scanner.finish()
}

/// The header at the start of `bytes` (a whole segment, or all the file holds if it is
/// shorter), or the error a scan refuses the file with.
fn decode_header(bytes: &[u8], name: &str) -> Result<LogHeader> {
    LogHeader::decode(bytes).map_err(|why| {
        // A whole header of another format version is not damage: it is refused as such.
        let kind = match LogHeader::version_of(bytes) {
            Some(version) if version != LOG_FORMAT_VERSION => ErrorKind::BadLogVersion,
            _ => ErrorKind::LogFileCorrupt,
        };
        JetError::new(kind, format!("{name}: {why}"))
    })
}

/// A log file scanned as it is read: fed the file's bytes in order, in pieces of any size, it
/// finds what [`scan`] of the whole file finds — the same header, records, end and tail, the
/// same errors — holding at most a segment and one record of the file at a time (and, when
/// keeping them, the records), whatever the file's size.
///
/// The tail is judged only at [`LogScanner::finish`]: a damaged segment is corruption or a
/// torn tail according to the segments after it.
pub struct LogScanner {
    name: String,
    /// A segment's bytes not yet whole (the header's first).
    partial: Vec<u8>,
    header: Option<LogHeader>,
    /// The header's error: every call after it returns it again.
    failed: Option<JetError>,
    /// The index of the next segment.
    index: u32,
    /// The highest durable mark of a valid segment.
    highest_mark: u32,
    /// The first segment that is not valid, and why.
    first_invalid: Option<(u32, String)>,
    /// Whether anything but blank segments lies from the first invalid one on.
    debris: bool,
    /// Where each restart segment of the valid prefix begins (kept with the records).
    restarts: Vec<Lgpos>,
    stream: RecordStream,
}

impl LogScanner {
    /// A scanner that judges the file (header, tail, end) and keeps none of its records:
    /// [`LogScan::records`] and [`LogScan::restarts`] come back empty.
    pub fn new(name: &str) -> LogScanner {
        LogScanner {
            name: name.to_string(),
            partial: Vec::with_capacity(SEGMENT_SIZE),
            header: None,
            failed: None,
            index: 0,
            highest_mark: 0,
            first_invalid: None,
            debris: false,
            restarts: Vec::new(),
            stream: RecordStream::default(),
        }
    }

    /// A scanner that keeps the file's records and restarts too, as [`scan`] does.
    pub fn keeping_records(name: &str) -> LogScanner {
        let mut scanner = LogScanner::new(name);
        scanner.stream.keep = true;
        scanner
    }

    /// A scanner that judges the file as [`LogScanner::new`] does and keeps its commit
    /// records, each with where it begins, for [`LogScanner::take_commits`]: a restore looking
    /// for the commit it stops at reads them without holding the file's other records.
    pub fn keeping_commits(name: &str) -> LogScanner {
        let mut scanner = LogScanner::new(name);
        scanner.stream.commit_list = Some(Vec::new());
        scanner
    }

    /// Moves the commit records read since the last call into `out`, in log order (none
    /// unless the scanner keeps them). A commit is never taken back: a restart drops only an
    /// open group, and a commit record closes one.
    pub fn take_commits(&mut self, out: &mut Vec<(Lgpos, CommitRecord)>) {
        if let Some(list) = &mut self.stream.commit_list {
            out.append(list);
        }
    }

    /// The file's header, once the bytes fed hold it whole and valid.
    pub fn header(&self) -> Option<&LogHeader> {
        self.header.as_ref()
    }

    /// The commit records read so far (of the valid segments, up to any damage in them).
    pub fn commits(&self) -> Commits {
        self.stream.commits
    }

    /// Scans the next `bytes` of the file. Only a damaged or foreign header is an error (as
    /// for [`scan`]), returned as soon as the header is whole, and again by every call after.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<()> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        while !bytes.is_empty() {
            if self.header.is_some_and(|h| self.index >= h.segments) {
                break; // Past the segments the header names: no scan reads them.
            }
            if self.partial.is_empty() && bytes.len() >= SEGMENT_SIZE {
                let (segment, rest) = bytes.split_at(SEGMENT_SIZE);
                bytes = rest;
                self.segment(segment)?;
                continue;
            }
            let n = (SEGMENT_SIZE - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.partial.len() == SEGMENT_SIZE {
                let segment = std::mem::take(&mut self.partial);
                self.segment(&segment)?;
                self.partial = segment;
                self.partial.clear();
            }
        }
        Ok(())
    }

    /// One whole segment: the header, or the next segment after it.
    fn segment(&mut self, segment: &[u8]) -> Result<()> {
        let Some(header) = self.header else {
            let header = decode_header(segment, &self.name).inspect_err(|err| {
                self.failed = Some(err.clone());
            })?;
            self.header = Some(header);
            self.index = 1;
            return Ok(());
        };
        let index = self.index;
        self.index += 1;
        match classify(Some(segment), &header, index) {
            Segment::Valid {
                used,
                mark,
                restart,
            } => {
                self.highest_mark = self.highest_mark.max(mark);
                if self.first_invalid.is_some() {
                    self.debris = true;
                    return Ok(());
                }
                let payload = Lgpos {
                    generation: header.generation,
                    offset: index * SEGMENT_SIZE as u32 + SEGMENT_HEADER_LEN as u32,
                };
                if restart && self.stream.keep {
                    self.restarts.push(payload);
                }
                self.stream.segment(used, restart, payload);
            }
            Segment::Blank => {
                if self.first_invalid.is_none() {
                    self.first_invalid = Some((index, "the segment is blank".into()));
                }
            }
            Segment::Bad(why) => {
                if self.first_invalid.is_none() {
                    self.first_invalid = Some((index, why));
                }
                self.debris = true;
            }
        }
        Ok(())
    }

    /// Everything the scan found, once the whole file has been fed; the header's error if it
    /// is damaged or foreign, or if the file was shorter than it.
    pub fn finish(self) -> Result<LogScan> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let Some(header) = self.header else {
            return Err(decode_header(&self.partial, &self.name)
                .expect_err("a header shorter than a segment is refused"));
        };
        let mut first_invalid = self.first_invalid;
        if self.index < header.segments && first_invalid.is_none() {
            // The segments the file is too short to hold whole read as blank.
            first_invalid = Some((self.index, "the segment is blank".into()));
        }
        let mut tail = LogTail::Open;
        if let Some((index, reason)) = &first_invalid {
            if self.highest_mark > *index {
                tail = LogTail::Corrupt {
                    segment: *index,
                    offset: u64::from(*index) * SEGMENT_SIZE as u64,
                    reason: format!("{reason}, but a later segment shows it was durable"),
                };
            } else if self.debris {
                tail = LogTail::Torn {
                    segment: *index,
                    reason: reason.clone(),
                };
            }
        }
        let valid = first_invalid.as_ref().map_or(header.segments, |(i, _)| *i) - 1;
        let mut stream = self.stream;
        let mut cut_short = None;
        let mut last = None;
        let mut ended = false;
        if matches!(tail, LogTail::Corrupt { .. }) {
            // Damage known durable: no record of the file is read.
            stream.records.clear();
        } else {
            ended = stream.ended;
            last = stream.chunk.last.or(stream.last);
            if let Some(corrupt) = stream.corrupt.take() {
                tail = corrupt;
            } else if !ended {
                cut_short = stream.cut_short();
            }
        }
        let end_offset = match last {
            Some((offset, len)) => stream_advance(offset, len),
            None => (SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32,
        };
        if let (Some(offset), LogTail::Open) = (cut_short, &tail) {
            // A record begun but not finished: the rest of it was never written.
            tail = LogTail::Torn {
                segment: offset / SEGMENT_SIZE as u32,
                reason: "a record is cut short".into(),
            };
        }
        // A generation ends with its end record, or fills every segment (no room was left for
        // one).
        let full = first_invalid.is_none() && cut_short.is_none();
        if (ended || full) && !matches!(tail, LogTail::Corrupt { .. }) {
            tail = LogTail::Ended;
        }
        Ok(LogScan {
            header,
            records: stream.records,
            end: Lgpos {
                generation: header.generation,
                offset: end_offset,
            },
            tail,
            segments_used: valid,
            restarts: self.restarts,
        })
    }
}

impl LogScanner {
    /// With the records kept ([`LogScanner::keeping_records`]): moves into `records` those no
    /// restart can take back any more — up to the last commit or end record read — and into
    /// `restarts` the restarts found so far. A caller that applies records as the file is read
    /// then holds only the open commit group's ([`scan_streamed`]).
    fn drain_settled(&mut self, records: &mut Vec<(Lgpos, Record)>, restarts: &mut Vec<Lgpos>) {
        debug_assert!(self.stream.keep, "only kept records are drained");
        let kept = self.stream.chunk.kept;
        records.extend(self.stream.records.drain(..kept));
        // (`kept` counts the records left, as a restart truncates them.)
        self.stream.chunk.kept = 0;
        restarts.append(&mut self.restarts);
    }
}

/// Scans the log file at `path` as it is read, a piece at a time through `buf`
/// ([`LOG_PIECE`]), handing its records to `each` as they settle: the same records, in the
/// same order, with the same restarts as [`scan`] of the whole file finds, in batches (the
/// restarts each batch brings with it, for the caller to apply by position). The scan comes
/// back with its records and restarts empty, all of them given to `each`. Memory stays a
/// piece, a segment and the open commit group's records, whatever the file's size.
///
/// A file with damage known durable ([`LogTail::Corrupt`]) has records only up to it handed
/// over before the damage is known: a caller that must not apply those checks the file first
/// (a scan with [`LogScanner::new`]), as recovery does.
pub fn scan_streamed(
    vfs: &dyn Vfs,
    path: &Path,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(&[(Lgpos, Record)], &[Lgpos]) -> Result<()>,
) -> Result<LogScan> {
    let name = path.display().to_string();
    let mut scanner = LogScanner::keeping_records(&name);
    let mut reader = PieceReader::open(vfs, path, &mut *buf)?;
    let (mut records, mut restarts) = (Vec::new(), Vec::new());
    while let Some((piece, _)) = reader.next_piece()? {
        scanner.feed(piece)?;
        scanner.drain_settled(&mut records, &mut restarts);
        if !records.is_empty() || !restarts.is_empty() {
            each(&records, &restarts)?;
            records.clear();
            restarts.clear();
        }
    }
    let mut scan = scanner.finish()?;
    let (rest, rest_restarts) = (
        std::mem::take(&mut scan.records),
        std::mem::take(&mut scan.restarts),
    );
    if !rest.is_empty() || !rest_restarts.is_empty() {
        each(&rest, &rest_restarts)?;
    }
    Ok(scan)
}

/// How many records, and of them commit records, a log file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Every whole record of the valid segments.
    pub records: u64,
    /// The commit records among them.
    pub commits: u64,
}

/// [`scan`] of the log file at `path`, read a piece at a time (see [`scan_streamed`]): the
/// scan without its records, and how many it found. Of a file with damage known durable
/// ([`LogTail::Corrupt`]) these are the records read before the damage, where [`scan`] keeps
/// none: what a reader of the damaged file is told it held.
pub fn scan_file_counting(vfs: &dyn Vfs, path: &Path) -> Result<(LogScan, RecordCounts)> {
    let mut counts = RecordCounts::default();
    let scan = scan_streamed(vfs, path, &mut Vec::new(), |records, _| {
        counts.records += records.len() as u64;
        counts.commits += records
            .iter()
            .filter(|(_, r)| matches!(r, Record::Commit(_)))
            .count() as u64;
        Ok(())
    })?;
    Ok((scan, counts))
}

/// The longest record body any kind allows: a longer one is refused whatever its kind, so a
/// scan never holds more of a record than this (a key, a value's length, a value).
const RECORD_BODY_MAX: usize = 1 + limits::KEY_LEN_MAX + 4 + limits::VALUE_LEN_MAX;
/// The part of a longer body its refusal names: a key's length, the key, a value's length.
const RECORD_HEAD_MAX: usize = 1 + limits::KEY_LEN_MAX + 4;

/// Why a record of `len` body bytes, more than [`RECORD_BODY_MAX`], is refused — what
/// [`decode_record`] says of the whole body — from its first [`RECORD_HEAD_MAX`] bytes.
fn refuse_long(kind: u8, len: usize, head: &[u8]) -> String {
    debug_assert!(len > RECORD_BODY_MAX && head.len() == RECORD_HEAD_MAX);
    let key_len = head[0] as usize;
    match kind {
        RECORD_PUT => format!("a put record of a {}-byte value", len - 1 - key_len),
        RECORD_PUT_LARGE => {
            let at = 1 + key_len;
            let value_len = u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
            format!(
                "a large put of {value_len} bytes whose first part is {} bytes",
                len - at - 4
            )
        }
        RECORD_DELETE => "a delete record with bytes after its key".into(),
        RECORD_TABLE | RECORD_CREATE_TABLE | RECORD_DELETE_TABLE => {
            "a record naming a table by no valid name".into()
        }
        _ => format!("an unknown record (kind {kind}, {len} bytes)"),
    }
}

/// The record stream of a log file's valid segments, parsed as each segment arrives. A
/// *chunk* is the stream from the first segment or from a restart segment on.
#[derive(Default)]
struct RecordStream {
    /// Whether the records are kept (else only where the last one ends).
    keep: bool,
    records: Vec<(Lgpos, Record)>,
    /// The commit records read and not yet taken, when they are kept
    /// ([`LogScanner::keeping_commits`]).
    commit_list: Option<Vec<(Lgpos, CommitRecord)>>,
    /// The chunk's bytes not parsed yet: a record begun, not yet whole.
    pending: Vec<u8>,
    /// Where `pending` begins in the chunk.
    pending_at: u64,
    /// The chunk's length so far.
    chunk_len: u64,
    /// The record `pending` begins with, once its header is there: its file offset, and
    /// where in the chunk it ends (the next record begins).
    waiting: Option<(u32, u64)>,
    /// (chunk offset, file offset) where the payloads begin that the next records' offsets
    /// are found in: from the last at or before the next record's beginning.
    starts: VecDeque<(u64, u32)>,
    /// A record longer than any kind allows, whose body passes unkept.
    long: Option<LongRecord>,
    /// The end record was read: nothing after it is.
    ended: bool,
    /// A malformed record was read: nothing after it is.
    corrupt: Option<LogTail>,
    /// The last record kept from the chunks before this one: its offset and length.
    last: Option<(u32, usize)>,
    chunk: ChunkRecords,
    /// The commit records read (a restart never drops one: it closes its group).
    commits: Commits,
}

/// The current chunk's records, as far as a restart would keep them.
#[derive(Default)]
struct ChunkRecords {
    /// The last record: its offset and length.
    last: Option<(u32, usize)>,
    /// The last commit or end record.
    closed: Option<(u32, usize)>,
    /// How many records are kept if the chunk is cut off here.
    kept: usize,
}

/// A record too long to be valid: where it begins, why it is refused, and how much of its
/// body is still to come.
struct LongRecord {
    offset: u32,
    reason: String,
    left: usize,
}

impl RecordStream {
    /// The payload of the next valid segment, which begins at `payload` in the file.
    fn segment(&mut self, used: &[u8], restart: bool, payload: Lgpos) {
        if restart && self.chunk_len > 0 {
            // A record cut short before a restart was never whole, and the commit group it
            // belongs to was never committed: its operations go with it.
            self.records.truncate(self.chunk.kept);
            if self.chunk.closed.is_some() {
                self.last = self.chunk.closed;
            }
            self.chunk = ChunkRecords {
                kept: self.records.len(),
                ..ChunkRecords::default()
            };
            self.pending.clear();
            self.pending_at = 0;
            self.chunk_len = 0;
            self.waiting = None;
            self.starts.clear();
            self.long = None;
        }
        if self.ended || self.corrupt.is_some() {
            return;
        }
        let at = self.chunk_len;
        self.chunk_len += used.len() as u64;
        if let Some(long) = &mut self.long {
            let n = long.left.min(used.len());
            long.left -= n;
            if long.left == 0 {
                self.corrupt = Some(LogTail::Corrupt {
                    segment: long.offset / SEGMENT_SIZE as u32,
                    offset: u64::from(long.offset),
                    reason: std::mem::take(&mut long.reason),
                });
            }
            return;
        }
        // Of payloads that begin at the same byte (empty ones before), the last counts.
        match self.starts.back_mut() {
            Some(last) if last.0 == at => *last = (at, payload.offset),
            _ => self.starts.push_back((at, payload.offset)),
        }
        self.pending.extend_from_slice(used);
        self.parse(payload.generation);
    }

    /// The file offset of byte `at` of the chunk (the beginning of a record not yet read).
    fn file_offset(&self, at: u64) -> u32 {
        let i = self
            .starts
            .partition_point(|&(s, _)| s <= at)
            .saturating_sub(1);
        match self.starts.get(i) {
            Some(&(s, f)) => f + (at - s) as u32,
            None => (SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32,
        }
    }

    /// Parses the whole records in `pending`. A malformed record in checksummed segments is
    /// damage, not a tear.
    fn parse(&mut self, generation: u32) {
        let mut at = 0usize;
        while self.pending.len() - at >= RECORD_HEADER_LEN {
            let kind = self.pending[at];
            let len = u32::from_le_bytes(
                self.pending[at + 1..at + RECORD_HEADER_LEN]
                    .try_into()
                    .expect("4 bytes"),
            ) as usize;
            let offset = match self.waiting {
                Some((offset, _)) if at == 0 => offset,
                _ => self.file_offset(self.pending_at + at as u64),
            };
            let body_at = at + RECORD_HEADER_LEN;
            if len > RECORD_BODY_MAX {
                // Refused once whole, like any malformed record, but never held whole.
                let Some(head) = self.pending.get(body_at..body_at + RECORD_HEAD_MAX) else {
                    self.wait(at, offset, len);
                    break;
                };
                let reason = refuse_long(kind, len, head);
                // (Never whole yet: it is seen within a segment of its beginning.)
                let left = len.saturating_sub(self.pending.len() - body_at);
                if left == 0 {
                    self.corrupt = Some(LogTail::Corrupt {
                        segment: offset / SEGMENT_SIZE as u32,
                        offset: u64::from(offset),
                        reason,
                    });
                    return;
                }
                self.long = Some(LongRecord {
                    offset,
                    reason,
                    left,
                });
                self.pending.clear();
                self.starts.clear();
                return;
            }
            let Some(body) = self.pending.get(body_at..body_at + len) else {
                self.wait(at, offset, len);
                break;
            };
            match decode_record(kind, body) {
                Ok(record) => {
                    let this = (offset, record_len(&record));
                    if let Record::Commit(c) = &record {
                        self.commits.note(Lgpos { generation, offset }, c.sequence);
                        if let Some(list) = &mut self.commit_list {
                            list.push((Lgpos { generation, offset }, *c));
                        }
                    }
                    self.ended = record == Record::End;
                    let closes = matches!(record, Record::Commit(_) | Record::End);
                    if self.keep {
                        self.records.push((Lgpos { generation, offset }, record));
                    }
                    self.chunk.last = Some(this);
                    if closes {
                        self.chunk.closed = Some(this);
                        self.chunk.kept = self.records.len();
                    }
                }
                Err(why) => {
                    self.corrupt = Some(LogTail::Corrupt {
                        segment: offset / SEGMENT_SIZE as u32,
                        offset: u64::from(offset),
                        reason: why,
                    });
                    return;
                }
            }
            at = body_at + len;
            self.waiting = None;
            if self.ended {
                return;
            }
        }
        self.pending.drain(..at);
        self.pending_at += at as u64;
        // The next offset looked up is the next record's: the payloads before the one it
        // begins in are done with.
        let next = self.waiting.map_or(self.pending_at, |(_, end)| end);
        while self.starts.get(1).is_some_and(|&(s, _)| s <= next) {
            self.starts.pop_front();
        }
    }

    /// The record at `at` in `pending` (at `offset` in the file, `len` bytes of body) is not
    /// whole yet.
    fn wait(&mut self, at: usize, offset: u32, len: usize) {
        let end = self.pending_at + (at + RECORD_HEADER_LEN + len) as u64;
        self.waiting = Some((offset, end));
    }

    /// Where the record begun and not finished at the end of the stream begins, if one is.
    fn cut_short(&self) -> Option<u32> {
        match (&self.long, self.waiting) {
            (Some(long), _) => Some(long.offset),
            (None, Some((offset, _))) => Some(offset),
            (None, None) if !self.pending.is_empty() => Some(self.file_offset(self.pending_at)),
            (None, None) => None,
        }
    }
}

/// The bytes `record` takes in the log, its header included.
fn record_len(record: &Record) -> usize {
    RECORD_HEADER_LEN
        + match record {
            Record::Put { key, value } => 1 + key.len() + value.len(),
            Record::PutLarge { key, part, .. } => 1 + key.len() + 4 + part.len(),
            Record::ValuePart(part) => part.len(),
            Record::Delete { key } => 1 + key.len(),
            Record::Table { name }
            | Record::CreateTable { name }
            | Record::DeleteTable { name } => name.len(),
            Record::Commit(_) => COMMIT_BODY_LEN,
            Record::End => 0,
        }
}

/// The file offset `len` bytes of record stream after file offset `offset`, past the headers
/// of the segments in between. A record's segments are full but its last: a flush, which
/// seals a segment part-filled, falls between records. A record that ends a segment ends
/// where the next segment's payload begins, as the writer's position after it.
fn stream_advance(offset: u32, len: usize) -> u32 {
    let offset = offset as usize;
    let segment = offset / SEGMENT_SIZE;
    let within = offset % SEGMENT_SIZE - SEGMENT_HEADER_LEN + len;
    let at = (segment + within / SEGMENT_PAYLOAD) * SEGMENT_SIZE
        + SEGMENT_HEADER_LEN
        + within % SEGMENT_PAYLOAD;
    at as u32
}

/// The file offset just after the commit record that begins at `at`.
pub fn commit_end(at: Lgpos) -> Lgpos {
    Lgpos {
        generation: at.generation,
        offset: stream_advance(at.offset, RECORD_HEADER_LEN + COMMIT_BODY_LEN),
    }
}

/// A log file cut just after a record — a restore stopping at a commit — as a copy is made a
/// piece at a time: the copy holds the records before `end` and nothing after, as if its
/// writer had flushed there and stopped (its tail then reads as open, and a writer resumes
/// after it). The segment `end` falls in keeps only the bytes before it, its header and
/// checksum rewritten; the segments after it become blank.
///
/// The copy's header gets a new creation time, later than the original's: the generations a
/// writer makes after it name that time as their predecessor's, so they are told from the
/// original history's generations of the same numbers (which name the original's), and a
/// roll forward or recovery never splices one history onto the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogCut {
    /// The file offset just after the last record kept (a record's end, as
    /// [`commit_end`] gives it).
    pub end: u32,
    /// The time the copy's header is stamped with, if later than the original's (else the
    /// original's and a millisecond).
    pub created_millis: u64,
}

impl LogCut {
    /// Applies the cut to `piece`, the file's bytes from offset `at` (whole segments).
    pub(crate) fn apply(&self, piece: &mut [u8], at: u64) {
        debug_assert!(at.is_multiple_of(SEGMENT_SIZE as u64));
        let end = self.end as usize;
        assert!(
            end >= SEGMENT_SIZE + SEGMENT_HEADER_LEN,
            "a cut falls in the data segments"
        );
        // The segment the last byte kept is in: a record that fills its segment ends where the
        // next segment's payload begins.
        let (last, used) = match end % SEGMENT_SIZE - SEGMENT_HEADER_LEN {
            0 => (end / SEGMENT_SIZE - 1, SEGMENT_PAYLOAD),
            within => (end / SEGMENT_SIZE, within),
        };
        for (i, segment) in piece.chunks_mut(SEGMENT_SIZE).enumerate() {
            let index = at as usize / SEGMENT_SIZE + i;
            if index == 0 {
                // (A header that does not decode is refused by the checks of the original.)
                if let Ok(mut header) = LogHeader::decode(segment) {
                    header.created_millis = self
                        .created_millis
                        .max(header.created_millis.saturating_add(1));
                    segment.copy_from_slice(&header.encode());
                }
                continue;
            }
            if index < last {
                continue;
            }
            if index > last || segment.len() < SEGMENT_SIZE {
                segment.fill(0);
                continue;
            }
            let was = u16::from_le_bytes([segment[12], segment[13]]) as usize;
            debug_assert!(was >= used, "a cut keeps only bytes the segment holds");
            segment[12..14].copy_from_slice(&(used as u16).to_le_bytes());
            segment[SEGMENT_HEADER_LEN + used..].fill(0);
            seal_crc(segment);
        }
    }
}

/// The pieces log files are read, checked and copied in: whole segments, so that a file of
/// any size takes the same memory.
pub const LOG_PIECE: usize = 1024 * 1024;
const _: () = assert!(LOG_PIECE.is_multiple_of(SEGMENT_SIZE));

/// A file read from its start in pieces of at most [`LOG_PIECE`] bytes, each into the same
/// buffer: one a caller reuses across files (`&mut Vec<u8>`: allocated, and its pages faulted
/// in, once), or one the reader owns (`Vec<u8>`, for a reader kept across calls).
pub(crate) struct PieceReader<B> {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    len: u64,
    at: u64,
    buf: B,
}

impl<B: std::borrow::BorrowMut<Vec<u8>>> PieceReader<B> {
    /// Opens `path` for reading through `buf`.
    pub(crate) fn open(vfs: &dyn Vfs, path: &Path, buf: B) -> Result<Self> {
        let file = vfs
            .open(path, OpenMode::Read)
            .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
        let len = file
            .len()
            .map_err(|err| JetError::io(format!("{}: size", path.display()), &err))?;
        Ok(PieceReader {
            file,
            path: path.to_path_buf(),
            len,
            at: 0,
            buf,
        })
    }

    /// The file's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The next piece and whether it is the file's last, or `None` at the end of the file.
    pub(crate) fn next_piece(&mut self) -> Result<Option<(&[u8], bool)>> {
        let n = (self.len - self.at).min(LOG_PIECE as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        let buf = self.buf.borrow_mut();
        buf.resize(n, 0);
        self.file
            .read_exact_at(buf, self.at)
            .map_err(|err| JetError::io(format!("read {}", self.path.display()), &err))?;
        self.at += n as u64;
        Ok(Some((&buf[..], self.at == self.len)))
    }

    /// The piece [`PieceReader::next_piece`] read last.
    pub(crate) fn last_piece(&self) -> &[u8] {
        self.buf.borrow()
    }
}

/// A log file's copy, written a piece at a time as the file is read ([`PieceReader`]): its
/// size set first, then each piece but its blank segments at the end — blank space stays a
/// hole, as in a preallocated log — then an fsync. `progress` is told of each piece's bytes
/// written, and of the holes at the end.
pub(crate) struct LogCopy {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    len: u64,
    /// Where the next piece goes.
    at: u64,
    /// The bytes written.
    written: u64,
}

impl LogCopy {
    /// A copy of `len` bytes into `file` (at `path`).
    pub(crate) fn new(file: Box<dyn VfsFile>, path: &Path, len: u64) -> Result<LogCopy> {
        file.set_len(len).map_err(io_err("size", path))?;
        Ok(LogCopy {
            file,
            path: path.to_path_buf(),
            len,
            at: 0,
            written: 0,
        })
    }

    /// Writes the file's next `piece` (a whole number of segments, but for the file's last).
    pub(crate) fn write(
        &mut self,
        piece: &[u8],
        mut progress: impl FnMut(u64) -> Result<()>,
    ) -> Result<()> {
        let mut used = piece.len();
        while used > 0 {
            let segment = (used - 1) / SEGMENT_SIZE * SEGMENT_SIZE;
            if !crate::base::codec::is_zero(&piece[segment..used]) {
                break;
            }
            used = segment;
        }
        if used > 0 {
            self.file
                .write_all_at(&piece[..used], self.at)
                .map_err(io_err("write", &self.path))?;
            self.written += used as u64;
            progress(used as u64)?;
        }
        self.at += piece.len() as u64;
        Ok(())
    }

    /// The file the copy is written to, and where its next piece goes (for a caller that
    /// writes the copy back as it grows).
    pub(crate) fn file(&self) -> (&dyn VfsFile, u64) {
        (&*self.file, self.at)
    }

    /// Makes the copy durable, once every piece is written.
    pub(crate) fn finish(self, mut progress: impl FnMut(u64) -> Result<()>) -> Result<()> {
        debug_assert_eq!(self.at, self.len, "every piece copied");
        self.file.sync().map_err(io_err("fsync", &self.path))?;
        progress(self.len - self.written)
    }
}

/// Reads the whole file `path` into `buf` (resized to the file's length; a buffer reused
/// across files is allocated, and its pages faulted in, once).
pub fn read_file_into(vfs: &dyn Vfs, path: &Path, buf: &mut Vec<u8>) -> Result<()> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(|err| JetError::io(format!("open {}", path.display()), &err))?;
    let len = file
        .len()
        .map_err(|err| JetError::io(format!("{}: size", path.display()), &err))?;
    buf.resize(len as usize, 0);
    file.read_exact_at(buf, 0)
        .map_err(|err| JetError::io(format!("read {}", path.display()), &err))
}

/// Reads the whole file `path` through `vfs` (a log file, for [`scan`]).
pub fn read_file(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_file_into(vfs, path, &mut bytes)?;
    Ok(bytes)
}

/// Appends records to the current generation and rolls to the next one.
pub(crate) struct LogWriter {
    vfs: Arc<dyn Vfs>,
    clock: Arc<dyn Clock>,
    dir: PathBuf,
    base: String,
    file: Box<dyn VfsFile>,
    header: LogHeader,
    /// The index of the segment being filled.
    index: u32,
    /// The payload of the segment being filled.
    open: Vec<u8>,
    /// Sealed segments not yet written, the first of them at `pending_index`.
    pending: Vec<u8>,
    pending_index: u32,
    /// Segments below this index are durable.
    durable_segments: u32,
    /// The end of the durable log.
    durable: Lgpos,
    /// The first failed write or fsync: after it the log's state is unknown.
    failed: Option<JetError>,
    /// How many rolls this writer made.
    rolls: u64,
    /// Bytes of segments this writer wrote (a flush writes its last segment whole).
    bytes_written: u64,
    /// Whether the next sealed segment is the first this writer writes (flagged as a restart).
    first_segment: bool,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("generation", &self.header.generation)
            .field("position", &self.position())
            .field("durable", &self.durable)
            .finish()
    }
}

/// Where a new log file starts: its header and the directory it goes in.
pub(crate) struct NewLog<'a> {
    pub vfs: &'a Arc<dyn Vfs>,
    pub dir: &'a Path,
    pub base: &'a str,
    pub header: LogHeader,
}

impl NewLog<'_> {
    /// Writes the file as `edbtmp.log` (header, size, fsync, directory fsync), ready to be
    /// renamed into place.
    pub(crate) fn prepare(&self) -> Result<PathBuf> {
        let tmp = self.dir.join(tmp_name(self.base));
        let io = |what: &str| {
            let what = format!("{}: {what}", tmp.display());
            move |err: std::io::Error| {
                JetError::new(
                    ErrorKind::LogWriteFail,
                    format!("{what}: {}", JetError::io("", &err)),
                )
            }
        };
        let file = self
            .vfs
            .open(&tmp, OpenMode::CreateTruncate)
            .map_err(io("create"))?;
        file.write_all_at(&self.header.encode(), 0)
            .map_err(io("write the header"))?;
        // Zeros written, not a sparse length: a commit's segment then overwrites allocated
        // blocks, and its fdatasync writes the data alone, not the allocation's metadata
        // (ESE fills its log files at creation too). Measured: a durable single-put commit
        // 1.07-1.15 x a 4 KiB overwrite + fdatasync, against 2.1-2.2 x into a sparse file.
        // Written as blank space to be overwritten a segment at a time (`fill_zeros`).
        file.fill_zeros(SEGMENT_SIZE as u64, self.header.file_size())
            .map_err(io("fill"))?;
        file.sync().map_err(io("fsync"))?;
        self.vfs
            .sync_dir(self.dir)
            .map_err(io("fsync its directory"))?;
        Ok(tmp)
    }
}

fn log_io(what: String, err: &std::io::Error) -> JetError {
    JetError::new(
        ErrorKind::LogWriteFail,
        format!("{what}: {}", JetError::io("", err)),
    )
}

impl LogWriter {
    /// A writer appending to the open generation `edb.log` in `dir`, whose header is `header`
    /// and whose first `segments_used` data segments are taken: it writes from the next
    /// segment on, and flags that segment as a restart.
    pub(crate) fn resume(
        vfs: Arc<dyn Vfs>,
        clock: Arc<dyn Clock>,
        dir: &Path,
        base: &str,
        header: LogHeader,
        segments_used: u32,
    ) -> Result<LogWriter> {
        let path = dir.join(current_name(base));
        let file = vfs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|err| log_io(format!("open {}", path.display()), &err))?;
        let index = segments_used + 1;
        let durable = Lgpos {
            generation: header.generation,
            offset: (index as usize * SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32,
        };
        Ok(LogWriter {
            vfs,
            clock,
            dir: dir.to_path_buf(),
            base: base.to_string(),
            file,
            header,
            index,
            open: Vec::new(),
            pending: Vec::new(),
            pending_index: index,
            durable_segments: index,
            durable,
            failed: None,
            rolls: 0,
            bytes_written: 0,
            first_segment: true,
        })
    }

    /// At a clean shutdown, once flushed: gives back the disk space of the blank segments
    /// past the last one written (a preallocated generation is mostly blank), so a closed
    /// instance takes about what it logged. [`LogWriter::refill_tail`] allocates them again.
    pub(crate) fn release_tail(&mut self) -> Result<()> {
        // Flushed: every segment before `index` is written, none from it on.
        debug_assert!(self.open.is_empty() && self.pending.is_empty());
        let from = u64::from(self.index) * SEGMENT_SIZE as u64;
        let size = self.header.file_size();
        if from >= size {
            return Ok(());
        }
        let path = self.dir.join(current_name(&self.base));
        self.file
            .discard(from, size - from)
            .map_err(|err| log_io(format!("release the tail of {}", path.display()), &err))?;
        self.file
            .sync()
            .map_err(|err| log_io(format!("fsync {}", path.display()), &err))
    }

    /// Writes zeros again over the blank segments from the next one on, then an fsync: after
    /// [`LogWriter::release_tail`], commits would otherwise write into holes, and each
    /// fdatasync would also write the allocation's metadata (measured as about twice the
    /// commit latency, see `NewLog::prepare`).
    pub(crate) fn refill_tail(&mut self) -> Result<()> {
        let from = u64::from(self.index) * SEGMENT_SIZE as u64;
        let size = self.header.file_size();
        if from >= size {
            return Ok(());
        }
        let path = self.dir.join(current_name(&self.base));
        self.file
            .fill_zeros(from, size)
            .map_err(|err| log_io(format!("fill {}", path.display()), &err))?;
        self.file
            .sync()
            .map_err(|err| log_io(format!("fsync {}", path.display()), &err))
    }

    /// The position the next record will start at (if it fits in this generation).
    pub(crate) fn position(&self) -> Lgpos {
        Lgpos {
            generation: self.header.generation,
            offset: (self.index as usize * SEGMENT_SIZE + SEGMENT_HEADER_LEN + self.open.len())
                as u32,
        }
    }

    /// The end of the durable log: everything before it survives a crash.
    pub(crate) fn durable(&self) -> Lgpos {
        self.durable
    }

    /// How many generations this writer rolled to.
    pub(crate) fn rolls(&self) -> u64 {
        self.rolls
    }

    /// Bytes of segments written since this writer began.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The first failure, if the log has stopped.
    pub(crate) fn failed(&self) -> Option<&JetError> {
        self.failed.as_ref()
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(err) => bail!(
                LogWriteFail,
                "logging stopped after an earlier failure ({err})"
            ),
            None => Ok(()),
        }
    }

    fn space(&self) -> usize {
        (self.header.segments - self.index) as usize * SEGMENT_PAYLOAD - self.open.len()
    }

    /// The most bytes one record may take: it must fit in an empty generation.
    pub(crate) fn record_max(&self) -> usize {
        (self.header.segments as usize - 1) * SEGMENT_PAYLOAD - RECORD_HEADER_LEN
    }

    /// Appends one encoded record, rolling to a new generation first if it does not fit.
    /// Returns the position after it. The record is durable only after [`LogWriter::flush`].
    pub(crate) fn append(&mut self, record: &[u8]) -> Result<Lgpos> {
        self.check()?;
        assert!(
            record.len() <= self.record_max(),
            "a record fits in a generation"
        );
        // Keep room for the end record that closes the generation.
        if record.len() + RECORD_HEADER_LEN > self.space() {
            self.roll()?;
        }
        let mut rest = record;
        while !rest.is_empty() {
            let take = rest.len().min(SEGMENT_PAYLOAD - self.open.len());
            self.open.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.open.len() == SEGMENT_PAYLOAD {
                self.seal();
            }
        }
        if self.pending.len() >= WRITE_BEHIND_BYTES {
            self.write_pending()?;
        }
        Ok(self.position())
    }

    /// Seals the open segment into `pending`.
    fn seal(&mut self) {
        assert!(
            self.index < self.header.segments,
            "a segment inside the file"
        );
        let start = self.pending.len();
        self.pending.resize(start + SEGMENT_SIZE, 0);
        let seg = &mut self.pending[start..];
        seg[4..8].copy_from_slice(&self.header.generation.to_le_bytes());
        seg[8..12].copy_from_slice(&self.index.to_le_bytes());
        seg[12..14].copy_from_slice(&(self.open.len() as u16).to_le_bytes());
        if std::mem::take(&mut self.first_segment) {
            seg[14..16].copy_from_slice(&FLAG_RESTART.to_le_bytes());
        }
        seg[16..20].copy_from_slice(&self.durable_segments.to_le_bytes());
        seg[20..28].copy_from_slice(&self.header.log_signature.random.to_le_bytes());
        seg[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + self.open.len()].copy_from_slice(&self.open);
        seal_crc(seg);
        self.open.clear();
        self.index += 1;
    }

    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let offset = u64::from(self.pending_index) * SEGMENT_SIZE as u64;
        if let Err(err) = self.file.write_all_at(&self.pending, offset) {
            return Err(self.fail(format!("write segments from {}", self.pending_index), &err));
        }
        self.bytes_written += self.pending.len() as u64;
        self.pending.clear();
        self.pending_index = self.index;
        Ok(())
    }

    fn fail(&mut self, what: String, err: &std::io::Error) -> JetError {
        let name = current_name(&self.base);
        let err = log_io(
            format!("{name} (generation {:#X}): {what}", self.header.generation),
            err,
        );
        self.failed.get_or_insert_with(|| err.clone());
        err
    }

    /// Makes every appended record durable: seals the open segment, writes, and fsyncs.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.check()?;
        if self.position() == self.durable {
            return Ok(());
        }
        if !self.open.is_empty() {
            self.seal();
        }
        self.write_pending()?;
        if let Err(err) = self.file.sync() {
            return Err(self.fail("fsync".into(), &err));
        }
        self.durable_segments = self.index;
        self.durable = self.position();
        Ok(())
    }

    /// Finishes the current generation and starts the next: an end record, a flush, the next
    /// file prepared as `edbtmp.log`, then `edb.log` renamed to its archived name and
    /// `edbtmp.log` to `edb.log`, each rename followed by a directory fsync.
    pub(crate) fn roll(&mut self) -> Result<()> {
        self.check()?;
        let generation = self.header.generation;
        if generation >= GENERATION_MAX {
            let err = JetError::new(
                ErrorKind::LogWriteFail,
                format!("the log has reached its last generation ({generation:#X})"),
            );
            self.failed.get_or_insert_with(|| err.clone());
            return Err(err);
        }
        // A generation whose every segment is used needs no end record (and has no room).
        if self.space() >= RECORD_HEADER_LEN {
            let rest = SEGMENT_PAYLOAD - self.open.len();
            let end = [RECORD_END, 0, 0, 0, 0];
            // The end record may straddle a segment boundary like any other.
            let take = rest.min(end.len());
            self.open.extend_from_slice(&end[..take]);
            if self.open.len() == SEGMENT_PAYLOAD {
                self.seal();
                self.open.extend_from_slice(&end[take..]);
            }
        }
        self.flush()?;
        let header = LogHeader {
            generation: generation + 1,
            created_millis: self.clock.now_millis(),
            prev_created_millis: self.header.created_millis,
            ..self.header
        };
        let result = self.switch_to(header);
        if let Err(err) = &result {
            self.failed.get_or_insert_with(|| err.clone());
        }
        result
    }

    fn switch_to(&mut self, header: LogHeader) -> Result<()> {
        let new = NewLog {
            vfs: &self.vfs,
            dir: &self.dir,
            base: &self.base,
            header,
        };
        let tmp = new.prepare()?;
        let current = self.dir.join(current_name(&self.base));
        let archived = self
            .dir
            .join(archive_name(&self.base, self.header.generation));
        let rename = |from: &Path, to: &Path| -> Result<()> {
            self.vfs.rename(from, to).map_err(|err| {
                log_io(
                    format!("rename {} to {}", from.display(), to.display()),
                    &err,
                )
            })?;
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|err| log_io(format!("fsync {}", self.dir.display()), &err))
        };
        rename(&current, &archived)?;
        rename(&tmp, &current)?;
        self.file = self
            .vfs
            .open(&current, OpenMode::ReadWrite)
            .map_err(|err| log_io(format!("open {}", current.display()), &err))?;
        self.header = header;
        self.index = 1;
        self.pending_index = 1;
        self.durable_segments = 1;
        self.open.clear();
        self.pending.clear();
        self.durable = self.position();
        self.rolls += 1;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::base::env::ManualClock;
    use crate::base::vfs::MemVfs;

    /// Drops a flushed writer and resumes a new one after its last segment, as recovery
    /// does; returns it and how many data segments the first one used.
    fn reopen(log: LogWriter) -> (LogWriter, u32) {
        let used = log.position().offset / SEGMENT_SIZE as u32 - 1;
        let (vfs, header) = (Arc::clone(&log.vfs), log.header);
        drop(log);
        let clock = Arc::new(ManualClock::new(9));
        let log = LogWriter::resume(vfs, clock, Path::new(""), "edb", header, used).unwrap();
        (log, used)
    }

    /// A writer of generation 1 in `edb.log` (log set 7), files of `segments` segments.
    pub(crate) fn writer(vfs: &Arc<dyn Vfs>, segments: u32) -> LogWriter {
        writer_at(vfs, 1, segments)
    }

    fn writer_at(vfs: &Arc<dyn Vfs>, generation: u32, segments: u32) -> LogWriter {
        let header = LogHeader {
            generation,
            segments,
            log_signature: Signature {
                random: 7,
                created_millis: 1,
            },
            db_signature: Signature::default(),
            created_millis: 1,
            prev_created_millis: 0,
            circular: false,
        };
        let tmp = NewLog {
            vfs,
            dir: Path::new(""),
            base: "edb",
            header,
        }
        .prepare()
        .unwrap();
        vfs.rename(&tmp, Path::new("edb.log")).unwrap();
        LogWriter::resume(
            Arc::clone(vfs),
            Arc::new(ManualClock::new(5)),
            Path::new(""),
            "edb",
            header,
            0,
        )
        .unwrap()
    }

    /// A commit group: a 5,000-byte value put into table "t", then commit `n`.
    pub(crate) fn commit(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_table(&mut out, TableRecord::Use, "t");
        encode_put(&mut out, &mut Vec::new(), b"k", &vec![n as u8; 5000]);
        encode_commit(
            &mut out,
            &CommitRecord {
                sequence: n,
                records: 2,
                puts: 1,
                ..Default::default()
            },
        );
        out
    }

    /// What [`Recorded`] saw: a write or a fill, from one segment to another.
    type SegmentOps = Arc<std::sync::Mutex<Vec<(&'static str, u64, u64)>>>;

    /// A log file that records, in segments, what is written to it and what is filled.
    #[derive(Debug)]
    struct Recorded {
        inner: Box<dyn VfsFile>,
        ops: SegmentOps,
    }

    impl Recorded {
        fn record(&self, op: &'static str, from: u64, to: u64) {
            let segment = SEGMENT_SIZE as u64;
            assert!(
                from.is_multiple_of(segment) && to.is_multiple_of(segment),
                "whole segments"
            );
            self.ops
                .lock()
                .unwrap()
                .push((op, from / segment, to / segment));
        }
    }

    impl VfsFile for Recorded {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.inner.read_at(buf, offset)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            self.record("write", offset, offset + buf.len() as u64);
            self.inner.write_all_at(buf, offset)
        }
        fn sync(&self) -> std::io::Result<()> {
            self.inner.sync()
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.inner.set_len(len)
        }
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn discard(&self, offset: u64, len: u64) -> std::io::Result<()> {
            self.record("discard", offset, offset + len);
            self.inner.discard(offset, len)
        }
        fn fill_zeros(&self, from: u64, to: u64) -> std::io::Result<()> {
            self.record("fill", from, to);
            self.inner.fill_zeros(from, to)
        }
    }

    #[test]
    fn a_released_tail_is_filled_again_as_blank_space_and_only_the_tail() {
        // The blank segments a clean shutdown gave back are filled again through
        // `fill_zeros` (which the OS file writes a page at a time, for the commits that
        // overwrite them one by one), and nothing before them is touched.
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let segments = 40;
        let mut log = writer(&vfs, segments);
        let ops = Arc::new(std::sync::Mutex::new(Vec::new()));
        log.file = Box::new(Recorded {
            inner: vfs.open(Path::new("edb.log"), OpenMode::ReadWrite).unwrap(),
            ops: Arc::clone(&ops),
        });
        for n in 1..=3 {
            log.append(&commit(n)).unwrap();
            log.flush().unwrap();
        }
        let next = u64::from(log.index);
        log.release_tail().unwrap();
        log.refill_tail().unwrap();
        let ops = ops.lock().unwrap().clone();
        let end = u64::from(segments);
        assert_eq!(
            ops[ops.len() - 2..],
            [("discard", next, end), ("fill", next, end)],
            "{ops:?}"
        );
        assert!(
            ops.iter().filter(|o| o.0 == "write").all(|o| o.2 <= next),
            "{ops:?}"
        );
        // And the commits after it go on from there, into the blank space.
        log.append(&commit(4)).unwrap();
        log.flush().unwrap();
        let now = u64::from(log.index);
        assert!(now > next);
        let mut reread = Vec::new();
        read_file_into(&*vfs, Path::new("edb.log"), &mut reread).unwrap();
        assert_eq!(reread.len() as u64, end * SEGMENT_SIZE as u64);
        let seg = SEGMENT_SIZE;
        assert!(
            reread[next as usize * seg..now as usize * seg]
                .iter()
                .any(|&b| b != 0),
            "the new commit is in the file"
        );
        assert!(
            reread[now as usize * seg..].iter().all(|&b| b == 0),
            "the tail past the new commit is blank"
        );
    }

    #[test]
    fn records_round_trip_across_segments_and_flushes() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        for n in 1..=5 {
            log.append(&commit(n)).unwrap();
            if n % 2 == 0 {
                log.flush().unwrap();
            }
        }
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let scan = scan(&bytes, "edb.log").unwrap();
        assert_eq!(scan.tail, LogTail::Open);
        let commits: Vec<u64> = scan
            .records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Commit(c) => Some(c.sequence),
                _ => None,
            })
            .collect();
        assert_eq!(commits, vec![1, 2, 3, 4, 5]);
        assert_eq!(scan.records.len(), 15);
    }

    #[test]
    fn a_roll_archives_the_generation_with_an_end_record() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 32);
        for n in 1..=60 {
            log.append(&commit(n)).unwrap();
        }
        log.flush().unwrap();
        assert!(log.rolls() >= 1);
        let old = read_file(&*vfs, Path::new("edb00000001.log")).unwrap();
        let old = scan(&old, "edb00000001.log").unwrap();
        assert_eq!(old.tail, LogTail::Ended);
        let cur = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let cur = scan(&cur, "edb.log").unwrap();
        assert_eq!(cur.header.generation, 1 + log.rolls() as u32);
        // Each new generation's creation time is the clock's (5), not its predecessor's (the
        // first one's: 1), and it names its predecessor's.
        let second = read_file(&*vfs, Path::new("edb00000002.log")).unwrap();
        let second = scan(&second, "edb00000002.log").unwrap();
        assert_eq!(second.header.created_millis, 5);
        assert_eq!(second.header.prev_created_millis, 1);
        assert_eq!(cur.header.created_millis, 5);
        let archived = (1..cur.header.generation)
            .filter(|g| vfs.exists(Path::new(&archive_name("edb", *g))).unwrap())
            .count();
        assert_eq!(log.rolls(), archived as u64);
        assert!(log.rolls() >= 2, "{} rolls", log.rolls());
    }

    /// A put record of exactly `len` bytes in the log (its header included).
    fn put_record(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let value = vec![1; len - RECORD_HEADER_LEN - 2];
        record_header(&mut out, RECORD_PUT, 2 + value.len());
        out.extend_from_slice(&[1, b'k']);
        out.extend_from_slice(&value);
        assert_eq!(out.len(), len);
        out
    }

    #[test]
    fn the_largest_record_fills_an_empty_generation_but_its_end_record() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 32);
        // 31 data segments of 4064 bytes, less the end record's header.
        assert_eq!(log.record_max(), 31 * 4064 - 5);
        log.append(&commit(1)).unwrap();
        // It does not fit after the commit: the writer rolls first.
        log.append(&put_record(log.record_max())).unwrap();
        assert_eq!(log.rolls(), 1);
        log.roll().unwrap();
        let bytes = read_file(&*vfs, Path::new(&archive_name("edb", 2))).unwrap();
        let scan = scan(&bytes, "gen 2").unwrap();
        assert_eq!(scan.tail, LogTail::Ended);
        assert_eq!(scan.records.len(), 2);
        assert!(
            matches!(&scan.records[0].1, Record::Put { value, .. } if value.len() == 31 * 4064 - 5 - 7)
        );
    }

    #[test]
    fn a_record_that_would_leave_no_room_for_the_end_record_goes_to_the_next_generation() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 32);
        let space = 31 * 4064;
        log.append(&put_record(space - 100)).unwrap();
        // 100 bytes are left: a 96-byte record would leave 4, too few for the end record.
        log.append(&put_record(96)).unwrap();
        assert_eq!(log.rolls(), 1);
        log.append(&put_record(95)).unwrap();
        log.roll().unwrap();
        for (generation, records) in [(1, 1), (2, 2)] {
            let name = archive_name("edb", generation);
            let bytes = read_file(&*vfs, Path::new(&name)).unwrap();
            let scan = scan(&bytes, &name).unwrap();
            assert_eq!(scan.tail, LogTail::Ended, "{name}");
            let kinds: Vec<bool> = scan
                .records
                .iter()
                .map(|(_, r)| *r == Record::End)
                .collect();
            assert_eq!(kinds.len(), records + 1, "{name}: {kinds:?}");
            assert_eq!(kinds.last(), Some(&true), "{name}");
        }
    }

    #[test]
    fn a_record_that_leaves_just_room_for_the_end_record_stays() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 32);
        log.append(&put_record(31 * 4064 - 100)).unwrap();
        log.append(&put_record(95)).unwrap(); // 5 bytes left: the end record's
        assert_eq!(log.rolls(), 0);
        log.roll().unwrap();
        let bytes = read_file(&*vfs, Path::new(&archive_name("edb", 1))).unwrap();
        let scan = scan(&bytes, "gen 1").unwrap();
        assert_eq!(scan.tail, LogTail::Ended);
        assert_eq!(scan.records.len(), 3);
    }

    #[test]
    fn an_end_record_may_straddle_two_segments() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 32);
        // Two bytes left in the open segment when the generation is closed.
        log.append(&put_record(SEGMENT_PAYLOAD - 2)).unwrap();
        log.roll().unwrap();
        let bytes = read_file(&*vfs, Path::new(&archive_name("edb", 1))).unwrap();
        let scan = scan(&bytes, "gen 1").unwrap();
        assert_eq!(scan.tail, LogTail::Ended);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(
            scan.records[1],
            (
                Lgpos {
                    generation: 1,
                    offset: file_offset_of(SEGMENT_PAYLOAD - 2)
                },
                Record::End
            )
        );
        assert_eq!(scan.segments_used, 2);
    }

    #[test]
    fn a_resumed_writer_counts_its_log_durable_up_to_where_it_resumes() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        assert_eq!(log.durable(), log.position());
        log.append(&commit(1)).unwrap();
        assert!(log.durable() < log.position());
        log.flush().unwrap();
        assert_eq!(log.durable(), log.position());
        let (log, used) = reopen(log);
        assert_eq!(log.durable(), log.position());
        assert_eq!(
            log.durable().offset,
            file_offset_of(used as usize * SEGMENT_PAYLOAD)
        );
    }

    #[test]
    fn a_log_copy_reports_every_byte_once_and_leaves_the_blank_tail_a_hole() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 512);
        // 1.2 MB of records: two pieces of the copy (at most 1 MiB each).
        log.append(&put_record(600_000)).unwrap();
        log.append(&put_record(600_000)).unwrap();
        log.append(&commit(1)).unwrap();
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let file = vfs
            .open(Path::new("copy.log"), OpenMode::CreateNew)
            .unwrap();
        let mut pieces = Vec::new();
        let mut buf = Vec::new();
        let mut source = PieceReader::open(&*vfs, Path::new("edb.log"), &mut buf).unwrap();
        let mut copy = LogCopy::new(file, Path::new("copy.log"), source.len()).unwrap();
        let mut report = |n| {
            pieces.push(n);
            Ok(())
        };
        while let Some((piece, _)) = source.next_piece().unwrap() {
            copy.write(piece, &mut report).unwrap();
        }
        copy.finish(&mut report).unwrap();
        assert_eq!(pieces.iter().sum::<u64>(), bytes.len() as u64);
        // The header and the segments of records (1,205,070 bytes: 297 of them) hold data;
        // the rest is blank.
        let used = 298 * SEGMENT_SIZE as u64;
        assert_eq!(
            pieces,
            [1 << 20, used - (1 << 20), 512 * SEGMENT_SIZE as u64 - used]
        );
        assert_eq!(read_file(&*vfs, Path::new("copy.log")).unwrap(), bytes);
    }

    #[test]
    fn a_damaged_segment_is_torn_unless_a_later_one_vouches_for_it() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        log.append(&commit(1)).unwrap();
        log.flush().unwrap(); // segments 1..=2 durable
        log.append(&commit(2)).unwrap();
        log.flush().unwrap(); // segments 3..=4, marked with 3
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        // Damage the last segment: nothing vouches for it, so it is a torn tail.
        let mut torn = bytes.clone();
        torn[4 * SEGMENT_SIZE + 100] ^= 1;
        let s = scan(&torn, "edb.log").unwrap();
        assert!(
            matches!(s.tail, LogTail::Torn { segment: 4, .. }),
            "{:?}",
            s.tail
        );
        // Damage segment 1: segment 3 says segments below 3 were durable.
        let mut rotten = bytes.clone();
        rotten[SEGMENT_SIZE + 100] ^= 1;
        let s = scan(&rotten, "edb.log").unwrap();
        assert!(
            matches!(&s.tail, LogTail::Corrupt { segment: 1, offset: 4096, reason }
                if reason.contains("checksum mismatch")),
            "{:?}",
            s.tail
        );
        assert!(s.records.is_empty());
    }

    /// The file offset of byte `at` of a record stream written without flushes: each
    /// segment after the header carries `SEGMENT_PAYLOAD` bytes of it.
    fn file_offset_of(at: usize) -> u32 {
        let segment = 1 + at / SEGMENT_PAYLOAD;
        (segment * SEGMENT_SIZE + SEGMENT_HEADER_LEN + at % SEGMENT_PAYLOAD) as u32
    }

    #[test]
    fn records_are_found_where_the_writer_put_them() {
        // Recovery compares these positions with the checkpoint's: one off, and it skips a
        // commit after the checkpoint or replays one before it.
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        assert_eq!(log.position().offset, file_offset_of(0));
        let mut ends = Vec::new();
        for n in 1..=3 {
            ends.push(log.append(&commit(n)).unwrap());
        }
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let scan = scan(&bytes, "edb.log").unwrap();
        // A table record (5 + 1), a put of 5000 bytes (5 + 2 + 5000), then a commit
        // (5 + 36), three times.
        let mut at = 0;
        let mut want = Vec::new();
        for _ in 1..=3 {
            for len in [6, 5007, 41] {
                want.push(file_offset_of(at));
                at += len;
            }
        }
        let found: Vec<u32> = scan.records.iter().map(|(p, _)| p.offset).collect();
        assert_eq!(found, want);
        assert!(scan.records.iter().all(|(p, _)| p.generation == 1));
        assert_eq!(ends.last().unwrap().offset, file_offset_of(at));
        assert_eq!(scan.end, *ends.last().unwrap());
        assert_eq!(scan.tail, LogTail::Open);
        // (The test's writer is a resumed one: its first segment is flagged.)
        let first = Lgpos {
            generation: 1,
            offset: file_offset_of(0),
        };
        assert_eq!(scan.restarts, vec![first]);
    }

    #[test]
    fn the_log_ends_after_its_last_record_whatever_its_kind() {
        let mut large = Vec::new();
        encode_put(
            &mut large,
            &mut Vec::new(),
            b"k",
            &vec![2; VALUE_PART_MAX + 4100],
        );
        let kinds: [(&str, Vec<u8>); 6] = [
            ("put", put_record(5000)),
            // Ending exactly where a segment ends: the end is the next payload's start.
            ("put filling a segment", put_record(SEGMENT_PAYLOAD)),
            ("put filling two segments", put_record(2 * SEGMENT_PAYLOAD)),
            ("large put and its part", large),
            ("commit", commit(1)),
            ("end", vec![RECORD_END, 0, 0, 0, 0]),
        ];
        for (kind, record) in kinds {
            let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
            let mut log = writer(&vfs, 64);
            let end = log.append(&record).unwrap();
            assert_eq!(end.offset, file_offset_of(record.len()), "{kind}");
            log.flush().unwrap();
            let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
            assert_eq!(scan(&bytes, "edb.log").unwrap().end, end, "{kind}");
        }
    }

    #[test]
    fn a_log_without_records_ends_where_the_first_would_begin() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let scan = scan(&bytes, "edb.log").unwrap();
        assert!(scan.records.is_empty());
        assert_eq!(scan.end.offset, file_offset_of(0));
        assert_eq!(scan.tail, LogTail::Open);
        assert_eq!(scan.segments_used, 0);
    }

    #[test]
    fn a_record_whose_rest_was_never_written_is_a_torn_tail() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        log.append(&commit(1)).unwrap(); // a put record over segments 1 and 2
        log.flush().unwrap();
        let mut bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        bytes[2 * SEGMENT_SIZE..3 * SEGMENT_SIZE].fill(0);
        let scan = scan(&bytes, "edb.log").unwrap();
        // Only the table record before it is whole.
        assert!(matches!(scan.records[..], [(_, Record::Table { .. })]));
        assert!(
            matches!(&scan.tail, LogTail::Torn { segment: 1, reason } if reason.contains("cut short")),
            "{:?}",
            scan.tail
        );
        assert!(scan.has_debris());
    }

    #[test]
    fn a_malformed_record_under_a_valid_checksum_is_corruption_where_it_lies() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        log.append(&commit(1)).unwrap();
        // An end record with a body: no writer makes one, so the stream is damaged there.
        log.append(&[RECORD_END, 1, 0, 0, 0, 0]).unwrap();
        log.append(&commit(2)).unwrap();
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let scan = scan(&bytes, "edb.log").unwrap();
        let at = file_offset_of(5054);
        assert_eq!(scan.records.len(), 3);
        assert!(
            matches!(&scan.tail, LogTail::Corrupt { segment, offset, reason }
                if *segment == at / SEGMENT_SIZE as u32 && *offset == u64::from(at)
                    && reason.contains("unknown record")),
            "{:?} (want offset {at})",
            scan.tail
        );
    }

    #[test]
    fn a_group_cut_off_by_a_restart_is_dropped_whole() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        log.append(&commit(1)).unwrap();
        // A group of a put and a delete, never committed: the process dies after its flush.
        let mut group = Vec::new();
        encode_table(&mut group, TableRecord::Use, "t");
        encode_put(&mut group, &mut Vec::new(), b"a", &vec![9u8; 5000]);
        encode_delete(&mut group, b"b");
        log.append(&group).unwrap();
        log.flush().unwrap();
        // Recovery resumes a new writer after the last segment; its first segment restarts.
        let (mut log, used) = reopen(log);
        log.append(&commit(2)).unwrap();
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let scan = scan(&bytes, "edb.log").unwrap();
        let kinds: Vec<&str> = scan
            .records
            .iter()
            .map(|(_, r)| match r {
                Record::Table { .. } => "table",
                Record::Put { .. } => "put",
                Record::Delete { .. } => "delete",
                Record::Commit(_) => "commit",
                Record::End => "end",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["table", "put", "commit", "table", "put", "commit"]);
        // The resumed writer's first segment is flagged; recovery cuts open groups there.
        let restart = ((used as usize + 1) * SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32;
        let at = |offset| Lgpos {
            generation: 1,
            offset,
        };
        assert_eq!(scan.restarts, vec![at(4128), at(restart)]);
    }

    fn header(segments: u32) -> LogHeader {
        LogHeader {
            generation: 0x1234,
            segments,
            log_signature: Signature {
                random: 7,
                created_millis: 1,
            },
            db_signature: Signature {
                random: 8,
                created_millis: 2,
            },
            created_millis: 3,
            prev_created_millis: 2,
            circular: true,
        }
    }

    #[test]
    fn a_header_is_read_back_only_within_the_file_size_bounds() {
        // 128 KiB and 1 GiB are ESE's bounds: a header claiming a size outside them is damage.
        let fewest = 128 * 1024 / SEGMENT_SIZE as u32;
        let most = 1024 * 1024 * 1024 / SEGMENT_SIZE as u32;
        for segments in [fewest, fewest + 1, most - 1, most] {
            let h = header(segments);
            assert_eq!(LogHeader::decode(&h.encode()), Ok(h), "{segments} segments");
        }
        for segments in [0, 1, fewest - 1, most + 1, u32::MAX] {
            let err = LogHeader::decode(&header(segments).encode()).unwrap_err();
            assert!(
                err.contains("not a valid log file size"),
                "{segments}: {err}"
            );
        }
        let h = LogHeader {
            circular: false,
            ..header(fewest)
        };
        assert_eq!(LogHeader::decode(&h.encode()), Ok(h));
        // Only the first 4 KiB are the header; a file shorter than that has none.
        let mut bytes = h.encode();
        bytes.extend_from_slice(&[0xAB; 100]);
        assert_eq!(LogHeader::decode(&bytes), Ok(h));
        let err = LogHeader::decode(&bytes[..SEGMENT_SIZE - 1]).unwrap_err();
        assert!(err.contains("shorter than its header"), "{err}");
    }

    #[test]
    fn the_default_log_file_size_is_a_valid_one() {
        let params = crate::InstanceParams::in_directory("db");
        assert_eq!(params.log_file_size, 5 * 1024 * 1024);
        params.validate().unwrap();
        for (size, valid) in [
            (LOG_FILE_SIZE_MIN, true),
            (LOG_FILE_SIZE_MIN - SEGMENT_SIZE as u64, false),
            (LOG_FILE_SIZE_MAX, true),
            (LOG_FILE_SIZE_MAX + SEGMENT_SIZE as u64, false),
            (LOG_FILE_SIZE_DEFAULT + 1, false),
        ] {
            let params = crate::InstanceParams {
                log_file_size: size,
                ..crate::InstanceParams::in_directory("db")
            };
            assert_eq!(params.validate().is_ok(), valid, "{size}");
        }
    }

    #[test]
    fn the_log_stops_at_its_last_generation() {
        // ESE's last generation for normal logging is 0x200 below recovery's limit 0x7FFFFA00.
        assert_eq!(GENERATION_MAX, 0x7FFF_F800);
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer_at(&vfs, GENERATION_MAX - 1, 32);
        log.roll().unwrap();
        assert_eq!(log.header.generation, GENERATION_MAX);
        let err = log.roll().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LogWriteFail);
        assert!(err.to_string().contains("last generation"), "{err}");
        // The writer stays failed: nothing more is logged after the refusal.
        assert!(log.append(&commit(1)).is_err());
        let cur = read_file(&*vfs, Path::new("edb.log")).unwrap();
        assert_eq!(
            scan(&cur, "edb.log").unwrap().header.generation,
            GENERATION_MAX
        );
    }

    /// A log of two flushed commits (segments 1..=4), read back.
    fn two_commits() -> Vec<u8> {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        log.append(&commit(1)).unwrap();
        log.flush().unwrap();
        log.append(&commit(2)).unwrap();
        log.flush().unwrap();
        read_file(&*vfs, Path::new("edb.log")).unwrap()
    }

    #[test]
    fn a_log_of_another_format_version_is_bad_log_version() {
        // The first format logged page images: its files are refused as such, never read
        // as damage or as operations.
        for version in [1u32, LOG_FORMAT_VERSION + 1] {
            let mut bytes = two_commits();
            bytes[8..12].copy_from_slice(&version.to_le_bytes());
            seal_crc(&mut bytes[..SEGMENT_SIZE]);
            let err = scan(&bytes, "edb.log").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadLogVersion, "{err}");
        }
        // A damaged header is damage, whatever its version field says.
        let mut bytes = two_commits();
        bytes[8] ^= 1;
        let err = scan(&bytes, "edb.log").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LogFileCorrupt, "{err}");
    }

    #[test]
    fn a_resealed_segment_that_lies_about_itself_is_refused() {
        // Damage a checksum does not see: a segment header rewritten and resealed (a
        // misdirected write, or a forger). Each lie alone must make the segment bad.
        let bytes = two_commits();
        let header = LogHeader::decode(&bytes).unwrap();
        let seg = |b: &[u8]| b[2 * SEGMENT_SIZE..3 * SEGMENT_SIZE].to_vec();
        assert!(matches!(
            classify(Some(&seg(&bytes)), &header, 2),
            Segment::Valid { .. }
        ));
        // Segment 2's bytes where segment 3 should be: it names the wrong index.
        match classify(Some(&seg(&bytes)), &header, 3) {
            Segment::Bad(why) => assert!(why.contains("segment 2 of generation"), "{why}"),
            _ => panic!("a segment at the wrong index was accepted"),
        }
        let lies: [(&str, usize, &[u8]); 5] = [
            ("another generation", 4, &2u32.to_le_bytes()),
            ("another log set", 20, &8u64.to_le_bytes()),
            (
                "more bytes than a segment holds",
                12,
                &(SEGMENT_PAYLOAD as u16 + 1).to_le_bytes(),
            ),
            ("a durable mark past itself", 16, &3u32.to_le_bytes()),
            ("an unknown flag", 14, &2u16.to_le_bytes()),
        ];
        for (lie, at, field) in lies {
            let mut s = seg(&bytes);
            s[at..at + field.len()].copy_from_slice(field);
            seal_crc(&mut s);
            assert!(
                matches!(classify(Some(&s), &header, 2), Segment::Bad(_)),
                "{lie} was accepted"
            );
        }
        // The same rewrite, left unsealed, is caught by the checksum.
        let mut s = seg(&bytes);
        s[4] ^= 1;
        assert!(
            matches!(classify(Some(&s), &header, 2), Segment::Bad(why) if why.contains("checksum"))
        );
        assert!(matches!(
            classify(Some(&[0; SEGMENT_SIZE]), &header, 2),
            Segment::Blank
        ));
        assert!(matches!(classify(None, &header, 2), Segment::Blank));
    }

    #[test]
    fn a_record_body_of_the_wrong_length_is_refused() {
        // A key longer than its record, and one that fits exactly.
        assert!(decode_record(RECORD_PUT, &[3, b'a', b'b']).is_err());
        assert!(decode_record(RECORD_PUT, &[]).is_err());
        match decode_record(RECORD_PUT, &[2, b'a', b'b']) {
            Ok(Record::Put { key, value }) => assert!(key == b"ab" && value.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(decode_record(RECORD_DELETE, &[1, b'a', b'b']).is_err());
        assert!(decode_record(RECORD_TABLE, &[]).is_err());
        assert!(decode_record(RECORD_TABLE, &[0xFF]).is_err());
        assert!(decode_record(RECORD_CREATE_TABLE, &[b'a'; 65]).is_err());
        assert!(decode_record(RECORD_VALUE_PART, &[]).is_err());
        // A large put's first part must be less than its whole, and the whole at most 1 MiB.
        assert!(decode_record(RECORD_PUT_LARGE, &[1, b'k', 2, 0, 0, 0, 7, 7]).is_err());
        assert!(decode_record(RECORD_PUT_LARGE, &[1, b'k', 0, 0, 0x20, 0, 7]).is_err());
        assert!(matches!(
            decode_record(RECORD_PUT_LARGE, &[1, b'k', 3, 0, 0, 0, 7, 7]),
            Ok(Record::PutLarge { len: 3, .. })
        ));
        let mut body = Vec::new();
        encode_commit(
            &mut body,
            &CommitRecord {
                sequence: 9,
                ..Default::default()
            },
        );
        let body = &body[RECORD_HEADER_LEN..];
        assert!(
            matches!(decode_record(RECORD_COMMIT, body), Ok(Record::Commit(c)) if c.sequence == 9)
        );
        assert!(decode_record(RECORD_COMMIT, &body[1..]).is_err());
        let mut long = body.to_vec();
        long.push(0);
        assert!(decode_record(RECORD_COMMIT, &long).is_err());
        assert!(matches!(decode_record(RECORD_END, &[]), Ok(Record::End)));
        assert!(decode_record(RECORD_END, &[0]).is_err());
        assert!(decode_record(10, &[]).is_err());
    }

    #[test]
    fn only_an_open_or_ended_log_has_no_debris() {
        let bytes = two_commits();
        assert!(!scan(&bytes, "edb.log").unwrap().has_debris());
        let mut torn = bytes.clone();
        torn[4 * SEGMENT_SIZE + 100] ^= 1;
        assert!(scan(&torn, "edb.log").unwrap().has_debris());
        let mut rotten = bytes;
        rotten[SEGMENT_SIZE + 100] ^= 1;
        assert!(scan(&rotten, "edb.log").unwrap().has_debris());
    }

    /// The whole-file scan the streaming [`LogScanner`] replaced, kept as the oracle it must
    /// agree with for every input.
    mod reference {
        use super::super::*;

        pub(super) fn scan(bytes: &[u8], name: &str) -> Result<LogScan> {
            let header = LogHeader::decode(bytes).map_err(|why| {
                // A whole header of another format version is not damage: it is refused as such.
                let kind = match LogHeader::version_of(bytes) {
                    Some(version) if version != LOG_FORMAT_VERSION => ErrorKind::BadLogVersion,
                    _ => ErrorKind::LogFileCorrupt,
                };
                JetError::new(kind, format!("{name}: {why}"))
            })?;
            let segment = |i: u32| -> Option<&[u8]> {
                let start = i as usize * SEGMENT_SIZE;
                bytes.get(start..start + SEGMENT_SIZE)
            };
            let classes: Vec<Segment<'_>> = (1..header.segments)
                .map(|i| classify(segment(i), &header, i))
                .collect();
            let highest_mark = classes
                .iter()
                .map(|c| match c {
                    Segment::Valid { mark, .. } => *mark,
                    _ => 0,
                })
                .max()
                .unwrap_or(0);
            let first_invalid = classes
                .iter()
                .position(|c| !matches!(c, Segment::Valid { .. }))
                .map(|i| i as u32 + 1);
            let mut tail = LogTail::Open;
            if let Some(index) = first_invalid {
                let reason = match &classes[index as usize - 1] {
                    Segment::Bad(why) => why.clone(),
                    _ => "the segment is blank".to_string(),
                };
                let debris = classes[index as usize - 1..]
                    .iter()
                    .any(|c| !matches!(c, Segment::Blank));
                if highest_mark > index {
                    tail = LogTail::Corrupt {
                        segment: index,
                        offset: u64::from(index) * SEGMENT_SIZE as u64,
                        reason: format!("{reason}, but a later segment shows it was durable"),
                    };
                } else if debris {
                    tail = LogTail::Torn {
                        segment: index,
                        reason,
                    };
                }
            }
            // The record stream of the valid prefix, restarted at each segment flagged as a restart
            // (where a writer resumed after recovery: a record cut short before it was never whole).
            let valid = first_invalid.unwrap_or(header.segments) - 1;
            let mut records = Vec::new();
            let mut ended = false;
            let mut cut_short = None;
            let mut end_offset = (SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32;
            let mut chunk = Chunk::default();
            for (i, class) in classes.iter().take(valid as usize).enumerate() {
                let Segment::Valid { used, restart, .. } = class else {
                    unreachable!("the prefix is valid")
                };
                if *restart && !chunk.stream.is_empty() {
                    let before = records.len();
                    chunk.parse(&header, &mut records, &mut ended, &mut tail);
                    // A commit group cut off by the restart was never committed: its operations go
                    // with the record cut short.
                    while records.len() > before
                        && !matches!(records.last(), Some((_, Record::Commit(_) | Record::End)))
                    {
                        records.pop();
                    }
                    chunk = Chunk::default();
                }
                if ended || matches!(tail, LogTail::Corrupt { .. }) {
                    break;
                }
                let file_offset = ((i + 1) * SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32;
                chunk.starts.push((chunk.stream.len(), file_offset));
                chunk.stream.extend_from_slice(used);
            }
            if !ended && !matches!(tail, LogTail::Corrupt { .. }) {
                let whole = chunk.parse(&header, &mut records, &mut ended, &mut tail);
                if !ended && whole < chunk.stream.len() {
                    cut_short = Some(chunk.file_offset(whole));
                }
            }
            if let Some(&(pos, ref record)) = records.last() {
                end_offset = stream_advance(pos.offset, record_len(record));
            }
            if let (Some(offset), LogTail::Open) = (cut_short, &tail) {
                // A record begun but not finished: the rest of it was never written.
                tail = LogTail::Torn {
                    segment: offset / SEGMENT_SIZE as u32,
                    reason: "a record is cut short".into(),
                };
            }
            // A generation ends with its end record, or fills every segment (no room was left for
            // one).
            let full = first_invalid.is_none() && cut_short.is_none();
            if (ended || full) && !matches!(tail, LogTail::Corrupt { .. }) {
                tail = LogTail::Ended;
            }
            let end = Lgpos {
                generation: header.generation,
                offset: end_offset,
            };
            let restarts = classes
                .iter()
                .take(valid as usize)
                .enumerate()
                .filter(|(_, c)| matches!(c, Segment::Valid { restart: true, .. }))
                .map(|(i, _)| Lgpos {
                    generation: header.generation,
                    offset: ((i + 1) * SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32,
                })
                .collect();
            Ok(LogScan {
                header,
                records,
                end,
                tail,
                segments_used: valid,
                restarts,
            })
        }

        /// A run of segments whose payloads form one record stream.
        #[derive(Default)]
        struct Chunk {
            stream: Vec<u8>,
            /// (stream offset, file offset) where each segment's payload begins.
            starts: Vec<(usize, u32)>,
        }

        impl Chunk {
            fn file_offset(&self, at: usize) -> u32 {
                let i = self
                    .starts
                    .partition_point(|&(s, _)| s <= at)
                    .saturating_sub(1);
                match self.starts.get(i) {
                    Some(&(s, f)) => f + (at - s) as u32,
                    None => (SEGMENT_SIZE + SEGMENT_HEADER_LEN) as u32,
                }
            }

            /// Parses the whole records of the stream into `records`; returns how many bytes they
            /// take. A malformed record in checksummed segments is damage, not a tear.
            fn parse(
                &self,
                header: &LogHeader,
                records: &mut Vec<(Lgpos, Record)>,
                ended: &mut bool,
                tail: &mut LogTail,
            ) -> usize {
                let stream = &self.stream;
                let mut at = 0usize;
                while stream.len() - at >= RECORD_HEADER_LEN {
                    let kind = stream[at];
                    let len =
                        u32::from_le_bytes(stream[at + 1..at + 5].try_into().expect("4 bytes"))
                            as usize;
                    let Some(body) =
                        stream.get(at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + len)
                    else {
                        break;
                    };
                    let pos = Lgpos {
                        generation: header.generation,
                        offset: self.file_offset(at),
                    };
                    match decode_record(kind, body) {
                        Ok(record) => {
                            *ended = record == Record::End;
                            records.push((pos, record));
                        }
                        Err(why) => {
                            *tail = LogTail::Corrupt {
                                segment: pos.offset / SEGMENT_SIZE as u32,
                                offset: u64::from(pos.offset),
                                reason: why,
                            };
                            return at;
                        }
                    }
                    at += RECORD_HEADER_LEN + len;
                    if *ended {
                        break;
                    }
                }
                at
            }
        }
    }

    /// How many group cuts the streamed replay made at a restart carried over from an earlier
    /// batch (the case a replay that forgot them between batches would get wrong).
    static CARRIED_CUTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// Asserts that `bytes` fed to a scanner in the pieces `cuts` (their lengths, the rest
    /// in one last piece) are found exactly as the whole-file reference finds them, by a
    /// scanner keeping the records, by one that only judges, and by one drained as
    /// `scan_streamed` drains it (its batches replayed as recovery replays them: the same
    /// group cuts at restarts as the whole file's). Returns the verdict.
    fn agrees(bytes: &[u8], cuts: &mut dyn Iterator<Item = usize>, what: &str) -> String {
        let want = reference::scan(bytes, "edb.log");
        let mut keeping = LogScanner::keeping_records("edb.log");
        let mut judging = LogScanner::new("edb.log");
        // As `scan_streamed` reads: the settled records drained after each piece.
        let mut draining = LogScanner::keeping_records("edb.log");
        let (mut drained, mut drained_restarts) = (Vec::new(), Vec::new());
        // Recovery's replay loop over the batches, as `scan_streamed` hands them over.
        let mut events = Vec::new();
        let mut carried = VecDeque::new();
        let mut replay_batch =
            |records: &[(Lgpos, Record)], found: &[Lgpos], events: &mut Vec<(bool, Lgpos)>| {
                let before = carried.len();
                carried.extend(found.iter().copied());
                let mut used = 0;
                for (pos, _) in records {
                    while carried.front().is_some_and(|r| r <= pos) {
                        carried.pop_front();
                        if used < before {
                            CARRIED_CUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        used += 1;
                        events.push((true, *pos));
                    }
                    events.push((false, *pos));
                }
            };
        let mut fed = Ok(());
        let mut at = 0;
        while at < bytes.len() {
            let n = cuts
                .next()
                .unwrap_or(bytes.len())
                .clamp(1, bytes.len() - at);
            let piece = &bytes[at..at + n];
            at += n;
            let (a, b) = (keeping.feed(piece), judging.feed(piece));
            assert_eq!(a.as_ref().err(), b.as_ref().err(), "{what}");
            assert_eq!(
                a.as_ref().err(),
                draining.feed(piece).err().as_ref(),
                "{what}"
            );
            {
                let (mut r, mut rs) = (Vec::new(), Vec::new());
                draining.drain_settled(&mut r, &mut rs);
                replay_batch(&r, &rs, &mut events);
                drained.append(&mut r);
                drained_restarts.append(&mut rs);
            }
            // What the draining scanner holds is the open group's records, not the file's.
            assert!(
                draining.stream.records.len() <= 64,
                "{what}: {} records held",
                draining.stream.records.len()
            );
            // What the judging scanner holds is bounded by a record, not by the file.
            let stream = &judging.stream;
            assert!(
                stream.pending.len() < RECORD_HEADER_LEN + RECORD_BODY_MAX
                    && stream.starts.len() <= 2
                    && stream.records.is_empty()
                    && judging.restarts.is_empty()
                    && judging.partial.len() < SEGMENT_SIZE,
                "{what}: {} bytes pending, {} payload starts",
                stream.pending.len(),
                stream.starts.len()
            );
            if let Err(err) = a {
                // The header's error, as soon as the header is whole: and at the end too.
                fed = Err(err);
                break;
            }
        }
        // The commits the judging scanner counted are those the keeping one holds (a restart
        // drops none), before `finish` clears a corrupt file's.
        let mut kept = Commits::default();
        for (pos, record) in &keeping.stream.records {
            if let Record::Commit(c) = record {
                kept.note(*pos, c.sequence);
            }
        }
        assert_eq!(judging.commits(), kept, "{what}");
        let (got, judged) = (keeping.finish(), judging.finish());
        let streamed = draining.finish().map(|mut d| {
            replay_batch(&d.records, &d.restarts, &mut events);
            drained.append(&mut d.records);
            drained_restarts.append(&mut d.restarts);
            d
        });
        match (&want, &got, &judged) {
            (Ok(w), Ok(g), Ok(j)) => {
                let d = streamed.as_ref().expect("the draining scanner agrees");
                assert_eq!(
                    (w.header, &w.tail, w.end, w.segments_used),
                    (d.header, &d.tail, d.end, d.segments_used),
                    "{what}"
                );
                if !matches!(w.tail, LogTail::Corrupt { .. }) {
                    // (A corrupt file's records are cleared once the damage is known; those
                    // drained before are the caller's to hold back: recovery checks first.)
                    assert!(w.records == drained, "{what}: the drained records differ");
                    assert_eq!(w.restarts, drained_restarts, "{what}");
                    // The old replay loop over the whole file's records and restarts.
                    let mut want_events = Vec::new();
                    let mut restarts = w.restarts.iter().peekable();
                    for (pos, _) in &w.records {
                        while restarts.next_if(|r| **r <= *pos).is_some() {
                            want_events.push((true, *pos));
                        }
                        want_events.push((false, *pos));
                    }
                    assert!(want_events == events, "{what}: the replay's cuts differ");
                }
                assert_eq!(w.header, g.header, "{what}");
                assert_eq!(w.tail, g.tail, "{what}");
                assert_eq!(w.end, g.end, "{what}");
                assert_eq!(w.segments_used, g.segments_used, "{what}");
                assert_eq!(w.restarts, g.restarts, "{what}");
                assert!(w.records == g.records, "{what}: the records differ");
                assert_eq!(
                    (w.header, &w.tail, w.end, w.segments_used),
                    (j.header, &j.tail, j.end, j.segments_used),
                    "{what}"
                );
                assert!(j.records.is_empty() && j.restarts.is_empty(), "{what}");
                assert!(fed.is_ok(), "{what}");
                match &w.tail {
                    LogTail::Ended => "ended",
                    LogTail::Open => "open",
                    LogTail::Torn { .. } => "torn",
                    LogTail::Corrupt { .. } => "corrupt",
                }
                .to_string()
            }
            (Err(w), Err(g), Err(j)) => {
                assert_eq!(Some(w), streamed.as_ref().err(), "{what}");
                assert_eq!(w, g, "{what}");
                assert_eq!(w, j, "{what}");
                if let Err(f) = &fed {
                    assert_eq!(w, f, "{what}");
                }
                w.kind().name().to_string()
            }
            _ => panic!("{what}: the reference found {want:?}, the scanner {got:?} / {judged:?}"),
        }
    }

    /// Logs to damage: a generation of about 1.6 MB ended by a roll (large values in parts,
    /// flushes, a restart cutting a group off), the open generation after it, and a small
    /// ended one.
    fn logs_to_damage() -> Vec<(&'static str, Vec<u8>)> {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 512);
        let mut n = 0;
        let group = |n: u64, size: usize| {
            let mut out = Vec::new();
            encode_table(&mut out, TableRecord::Use, "t");
            encode_put(
                &mut out,
                &mut Vec::new(),
                &n.to_le_bytes(),
                &vec![n as u8; size],
            );
            encode_delete(&mut out, b"gone");
            encode_commit(
                &mut out,
                &CommitRecord {
                    sequence: n,
                    records: 3,
                    ..Default::default()
                },
            );
            out
        };
        while log.position().offset < 800 * 1024 {
            n += 1;
            log.append(&group(n, [10, 3000, 70_000][n as usize % 3]))
                .unwrap();
            if n % 4 == 0 {
                log.flush().unwrap();
            }
        }
        // A group the process dies in, flushed but never committed; a writer resumes.
        let mut cut = Vec::new();
        encode_table(&mut cut, TableRecord::Create, "u");
        encode_put(&mut cut, &mut Vec::new(), b"x", &[7; 9000]);
        log.append(&cut).unwrap();
        log.flush().unwrap();
        let (mut log, _) = reopen(log);
        while log.position().offset < 1600 * 1024 {
            n += 1;
            log.append(&group(n, [40_000, 100, 5000][n as usize % 3]))
                .unwrap();
        }
        log.roll().unwrap();
        for _ in 0..5 {
            n += 1;
            log.append(&group(n, 2000)).unwrap();
            log.flush().unwrap();
        }
        let big = read_file(&*vfs, Path::new(&archive_name("edb", 1))).unwrap();
        let open = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 32);
        for n in 1..=6 {
            log.append(&commit(n)).unwrap();
            log.flush().unwrap();
        }
        log.roll().unwrap();
        let small = read_file(&*vfs, Path::new(&archive_name("edb", 1))).unwrap();
        assert_eq!(scan(&big, "big").unwrap().tail, LogTail::Ended);
        assert_eq!(scan(&open, "open").unwrap().tail, LogTail::Open);
        assert_eq!(scan(&small, "small").unwrap().tail, LogTail::Ended);
        vec![("big", big), ("open", open), ("small", small)]
    }

    /// One seeded damage to a log file (or none): what a disk, a crash or a forger leaves.
    fn damage(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> String {
        let seg = SEGMENT_SIZE;
        let whole = reference::scan(bytes, "edb.log").ok();
        let segments = bytes.len() / seg;
        let used = whole
            .as_ref()
            .map_or(1, |s| s.segments_used as usize)
            .max(1);
        // A segment that holds records, mostly; sometimes any.
        let pick = |rng: &mut ChaCha8Rng| -> usize {
            if rng.random_bool(0.8) {
                rng.random_range(1..=used.min(segments - 1))
            } else {
                rng.random_range(1..segments)
            }
        };
        let reseal = |bytes: &mut Vec<u8>, s: usize| seal_crc(&mut bytes[s * seg..(s + 1) * seg]);
        match rng.random_range(0..14) {
            0 => "none".into(),
            1 => {
                // Anywhere, or in the header.
                let within = [bytes.len(), SEGMENT_SIZE][rng.random_range(0..2)];
                let at = rng.random_range(0..within);
                bytes[at] ^= 1 << rng.random_range(0..8);
                format!("a bit flipped at {at}")
            }
            2 => {
                let s = pick(rng);
                let at = s * seg + rng.random_range(SEGMENT_HEADER_LEN..seg);
                bytes[at] ^= 1 << rng.random_range(0..8);
                reseal(bytes, s);
                format!("a bit flipped at {at}, resealed")
            }
            3 => {
                // Anywhere, or within the header.
                let within = [bytes.len(), SEGMENT_SIZE + 1][rng.random_range(0..2)];
                let len = rng.random_range(0..within);
                bytes.truncate(len);
                format!("cut to {len} bytes")
            }
            4 => {
                let s = pick(rng);
                let n = rng.random_range(1..=4).min(segments - s);
                bytes[s * seg..(s + n) * seg].fill(0);
                format!("segments {s}.. ({n}) blank")
            }
            5 => {
                let s = pick(rng);
                let g = rng.random_range(0..4u32);
                bytes[s * seg + 4..s * seg + 8].copy_from_slice(&g.to_le_bytes());
                reseal(bytes, s);
                format!("segment {s} names generation {g}")
            }
            6 => {
                let s = pick(rng);
                bytes[s * seg + 20..s * seg + 28].copy_from_slice(&8u64.to_le_bytes());
                reseal(bytes, s);
                format!("segment {s} of another log set")
            }
            7 => {
                // The header names another generation or log set (no segment is its), or
                // another format version.
                let (at, what) =
                    [(12, "generation"), (24, "log set"), (8, "version")][rng.random_range(0..3)];
                bytes[at] ^= 1;
                reseal(bytes, 0);
                format!("the header's {what} changed, resealed")
            }
            8 => {
                // The end record taken out (its segment resealed without it).
                let Some(LogTail::Ended) = whole.as_ref().map(|s| &s.tail) else {
                    return "none (no end record)".into();
                };
                let end = whole.as_ref().unwrap().end.offset as usize - RECORD_HEADER_LEN;
                let s = end / seg;
                let within = end % seg;
                if within < SEGMENT_HEADER_LEN {
                    return "none (the end record straddles)".into();
                }
                bytes[s * seg + within..(s + 1) * seg].fill(0);
                let used = (within - SEGMENT_HEADER_LEN) as u16;
                bytes[s * seg + 12..s * seg + 14].copy_from_slice(&used.to_le_bytes());
                reseal(bytes, s);
                format!("the end record in segment {s} taken out")
            }
            9 => {
                // Garbage after the last used segment (or anywhere past it).
                let s = rng.random_range(used.min(segments - 1)..segments);
                let from = s * seg + rng.random_range(0..seg);
                let to = (from + rng.random_range(1..3 * seg)).min(bytes.len());
                rng.fill(&mut bytes[from..to]);
                format!("garbage at {from}..{to}")
            }
            10 => {
                // A record whose length claims more than any record may hold, or less.
                let Some(w) = whole.as_ref().filter(|w| !w.records.is_empty()) else {
                    return "none (no records)".into();
                };
                let (pos, _) = &w.records[rng.random_range(0..w.records.len())];
                let at = pos.offset as usize;
                let s = at / seg;
                if at + RECORD_HEADER_LEN > (s + 1) * seg {
                    return "none (the record's header straddles)".into();
                }
                let len: u32 = match rng.random_range(0..4) {
                    0 => RECORD_BODY_MAX as u32 + 1,
                    1 => RECORD_BODY_MAX as u32 + rng.random_range(0..400_000),
                    2 => u32::MAX,
                    _ => rng.random_range(0..100),
                };
                bytes[at + 1..at + 5].copy_from_slice(&len.to_le_bytes());
                bytes[at] = rng.random_range(0..12);
                reseal(bytes, s);
                format!(
                    "the record at {at} claims kind {} of {len} bytes",
                    bytes[at]
                )
            }
            11 => {
                // A segment copied over another (a misdirected write).
                let (from, to) = (pick(rng), pick(rng));
                let copy = bytes[from * seg..(from + 1) * seg].to_vec();
                bytes[to * seg..(to + 1) * seg].copy_from_slice(&copy);
                format!("segment {from} written over segment {to}")
            }
            12 => {
                // The file longer than its header says, or ending inside a segment.
                let n = rng.random_range(1..2 * seg);
                bytes.extend((0..n).map(|i| (i % 251) as u8));
                format!("{n} bytes appended")
            }
            _ => {
                // A segment flagged as a restart: a group before it is cut off.
                let s = pick(rng);
                bytes[s * seg + 14] |= FLAG_RESTART as u8;
                reseal(bytes, s);
                format!("segment {s} flagged as a restart")
            }
        }
    }

    #[test]
    fn a_log_fed_in_any_pieces_is_found_as_the_whole_file_scan_finds_it() {
        // Backups and restores judge a log a piece at a time; recovery and the tools scan it
        // whole. Either way the verdict — header, records, end, tail, the header's error —
        // must be the whole-file scan's (the reference), for every file however damaged and
        // however cut into pieces.
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut verdicts = std::collections::BTreeMap::<String, usize>::new();
        for (name, log) in logs_to_damage() {
            let rounds = if name == "small" { 150 } else { 60 };
            for round in 0..rounds {
                let mut bytes = log.clone();
                let what = format!("{name} #{round}: {}", damage(&mut bytes, &mut rng));
                let mut random = ChaCha8Rng::seed_from_u64(rng.random());
                let mut cuts: Vec<(&str, Box<dyn Iterator<Item = usize>>)> = vec![
                    ("whole", Box::new(std::iter::empty())),
                    ("in pieces of 1 MiB", Box::new(std::iter::repeat(LOG_PIECE))),
                    (
                        "a segment at a time",
                        Box::new(std::iter::repeat(SEGMENT_SIZE)),
                    ),
                    (
                        "in pieces of 4095",
                        Box::new(std::iter::repeat(SEGMENT_SIZE - 1)),
                    ),
                    (
                        "in pieces of 4097",
                        Box::new(std::iter::repeat(SEGMENT_SIZE + 1)),
                    ),
                    (
                        "in random pieces",
                        Box::new(std::iter::from_fn(move || {
                            let most = [8, 5000, 300_000][random.random_range(0..3)];
                            Some(random.random_range(1..=most))
                        })),
                    ),
                ];
                if name == "small" && round % 5 == 0 {
                    cuts.push(("a byte at a time", Box::new(std::iter::repeat(1))));
                }
                for (how, cuts) in &mut cuts {
                    let verdict = agrees(&bytes, cuts, &format!("{what}, fed {how}"));
                    *verdicts.entry(verdict).or_default() += 1;
                }
            }
        }
        assert!(
            CARRIED_CUTS.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "some restart was carried from one batch to a later one"
        );
        // Every kind of verdict came up, so the agreement is not that of a few easy cases.
        for verdict in [
            "ended",
            "open",
            "torn",
            "corrupt",
            ErrorKind::LogFileCorrupt.name(),
            ErrorKind::BadLogVersion.name(),
        ] {
            assert!(verdicts.contains_key(verdict), "{verdicts:?}");
        }
    }

    #[test]
    fn a_record_claiming_more_than_any_record_holds_is_refused_without_being_held() {
        // A 4 MiB generation whose first record claims 3 MiB, resealed (no checksum sees
        // it): refused as the whole-file scan refuses it, once the 3 MiB have passed, and
        // cut short if they never do — while the scanner holds no more than a segment of it.
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 1024);
        for n in 1..=60 {
            log.append(&put_record(60_000)).unwrap();
            log.append(&commit(n)).unwrap();
        }
        log.roll().unwrap();
        let mut bytes = read_file(&*vfs, Path::new(&archive_name("edb", 1))).unwrap();
        let first = SEGMENT_SIZE + SEGMENT_HEADER_LEN;
        // (kind, claimed length, the file cut to 2 MiB, whether the claim passes whole)
        for (kind, len, cut, whole) in [
            (RECORD_PUT, 3 << 20, false, true),
            (RECORD_TABLE, 3 << 20, false, true),
            (RECORD_PUT, 3 << 20, true, false),
            (RECORD_PUT_LARGE, u32::MAX as usize, false, false),
        ] {
            bytes[first] = kind;
            bytes[first + 1..first + 5].copy_from_slice(&(len as u32).to_le_bytes());
            seal_crc(&mut bytes[SEGMENT_SIZE..2 * SEGMENT_SIZE]);
            let file = if cut { &bytes[..2 << 20] } else { &bytes[..] };
            let mut scanner = LogScanner::new("edb.log");
            for piece in file.chunks(SEGMENT_SIZE) {
                scanner.feed(piece).unwrap();
                let held = scanner.stream.pending.capacity() + scanner.partial.capacity();
                assert!(held <= 2 * SEGMENT_SIZE, "{held} bytes held");
                assert!(scanner.stream.starts.len() <= 2);
            }
            let tail = scanner.finish().unwrap().tail;
            assert_eq!(tail, reference::scan(file, "edb.log").unwrap().tail);
            match whole {
                true => assert!(
                    matches!(&tail, LogTail::Corrupt { offset: 4128, .. }),
                    "{tail:?}"
                ),
                false => assert!(
                    matches!(&tail, LogTail::Torn { segment: 1, reason } if reason.contains("cut short")),
                    "{tail:?}"
                ),
            }
        }
    }

    #[test]
    fn a_record_too_long_for_any_kind_is_refused_from_its_head_as_from_its_whole_body() {
        // A scan keeps only the head of such a record; the reason it gives must be the one
        // the whole body would have been refused with, for every kind and key length.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut body = vec![0u8; RECORD_BODY_MAX + 1 + 3000];
        for kind in 0..=u8::MAX {
            for len in [
                RECORD_BODY_MAX + 1,
                RECORD_BODY_MAX + 1 + rng.random_range(0..3000),
            ] {
                rng.fill(&mut body[..]);
                let body = &body[..len];
                let whole = decode_record(kind, body).expect_err("too long for any kind");
                assert_eq!(
                    refuse_long(kind, len, &body[..RECORD_HEAD_MAX]),
                    whole,
                    "kind {kind}"
                );
            }
        }
    }

    #[test]
    fn a_scanner_counts_commits_and_finds_the_first_that_skips_a_number() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        let mut at = Vec::new();
        for n in [4, 5, 6, 8, 9, 11] {
            at.push(log.append(&commit(n)).unwrap());
        }
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let mut scanner = LogScanner::new("edb.log");
        for piece in bytes.chunks(1000) {
            scanner.feed(piece).unwrap();
        }
        let commits = scanner.commits();
        let (first, last) = (commits.first.unwrap(), commits.last.unwrap());
        assert_eq!((first.1, last.1), (4, 11));
        assert!(first.0 < at[0] && last.0 > at[4] && last.0 < at[5]);
        // The first gap: 8 after 6, at its commit record, the last of the fourth group (which
        // `append` returned the end of).
        let (pos, before, found) = commits.gap.expect("a gap");
        assert_eq!((before, found), (6, 8));
        assert!(pos > at[2] && pos < at[3], "{pos} within the fourth group");
        // Nothing read, no commits.
        assert_eq!(LogScanner::new("x").commits(), Commits::default());
    }

    #[test]
    fn archive_names_round_trip() {
        assert_eq!(current_name("edb"), "edb.log");
        assert_eq!(tmp_name("edb"), "edbtmp.log");
        assert_eq!(archive_name("edb", 0x2A), "edb0000002A.log");
        assert_eq!(parse_archive_name("edb", "edb0000002A.log"), Some(0x2A));
        assert_eq!(parse_archive_name("edb", "edbtmp.log"), None);
        assert_eq!(parse_archive_name("edb", "edb0000002a.log"), None);
        assert_eq!(parse_archive_name("edb", "edb.log"), None);
    }

    /// A copy cut just after any commit holds exactly the records up to it and reads as an
    /// open generation ending there: whether the commit ends inside a segment, exactly at a
    /// segment's end (alone in it, or spanning two), or just before a flush; whatever the
    /// pieces the copy is made in.
    #[test]
    fn a_log_cut_after_a_commit_keeps_exactly_the_records_up_to_it() {
        let vfs: Arc<dyn Vfs> = Arc::new(MemVfs::new());
        let mut log = writer(&vfs, 64);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // A group is 54 bytes and its value: 4,010 fills one segment's payload exactly, 8,074
        // two.
        let mut lens = vec![4010, 8074, 0, 4010];
        lens.extend((0..40).map(|_| rng.random_range(0..9000)));
        for (n, len) in lens.into_iter().enumerate() {
            let mut group = Vec::new();
            encode_table(&mut group, TableRecord::Use, "t");
            encode_put(&mut group, &mut Vec::new(), b"k", &vec![n as u8; len]);
            encode_commit(
                &mut group,
                &CommitRecord {
                    sequence: n as u64 + 1,
                    records: 2,
                    puts: 1,
                    ..Default::default()
                },
            );
            log.append(&group).unwrap();
            if n < 4 || rng.random_bool(0.3) {
                log.flush().unwrap();
            }
        }
        log.flush().unwrap();
        let bytes = read_file(&*vfs, Path::new("edb.log")).unwrap();
        let whole = scan(&bytes, "edb.log").unwrap();
        let commits: Vec<(usize, Lgpos)> = whole
            .records
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| matches!(r, Record::Commit(_)))
            .map(|(i, (at, _))| (i, *at))
            .collect();
        let at_segment_end = commits
            .iter()
            .filter(|(_, at)| {
                commit_end(*at).offset % SEGMENT_SIZE as u32 == SEGMENT_HEADER_LEN as u32
            })
            .count();
        assert!(
            at_segment_end >= 3,
            "{at_segment_end} commits end a segment"
        );
        for (i, at) in commits {
            let cut = LogCut {
                end: commit_end(at).offset,
                created_millis: 0,
            };
            let mut copy = bytes.clone();
            for (k, piece) in copy.chunks_mut(2 * SEGMENT_SIZE).enumerate() {
                cut.apply(piece, (k * 2 * SEGMENT_SIZE) as u64);
            }
            let cut_scan = scan(&copy, "cut").unwrap();
            assert_eq!(cut_scan.tail, LogTail::Open, "cut after the commit at {at}");
            // A new history: the same header but a later creation time.
            assert_eq!(
                cut_scan.header,
                LogHeader {
                    created_millis: whole.header.created_millis + 1,
                    ..whole.header
                }
            );
            assert_eq!(
                cut_scan.records,
                whole.records[..=i],
                "cut after the commit at {at}"
            );
            assert_eq!(cut_scan.end, commit_end(at));
            assert!(
                copy[(cut_scan.segments_used as usize + 1) * SEGMENT_SIZE..]
                    .iter()
                    .all(|&b| b == 0)
            );
        }
    }
}
