//! The write-ahead log: accepted clicks, durable before they are acknowledged.
//!
//! # Design constraints
//! * An HTTP 200 in durable mode means the request's clicks are on disk, so
//!   a `kill -9` of the edge loses nothing it acknowledged.
//! * One fsync covers every request that arrived while the previous one was
//!   in progress (group commit); fsync costs 0.25-0.6 ms on this hardware.
//! * A torn tail (crash mid-write) is expected and cut off silently; damage
//!   anywhere else is reported and the readable records are kept.
//!
//! # On-disk layout
//! `wal/<first lsn:020>.wal` segments, each a run of records:
//! ```text
//! offset size field
//! 0      4    payload length n, little endian
//! 4      8    xxh3-64 of the payload
//! 12     n    payload: rkyv archive of `ingest::record::WalRecord`
//! ```
//! Record `lsn`s are consecutive across segments. A segment is deleted once
//! every record in it was sealed into an outbox batch.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rkyv::rancor;
use rkyv::util::AlignedVec;
use xxhash_rust::xxh3::xxh3_64;

use super::{io, SpoolError};
use crate::ingest::record::WalRecord;

/// Start a new segment past this size.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 12;
/// The encoding buffer is reused across groups up to this capacity.
const KEPT_BUFFER_BYTES: usize = 16 << 20;

/// Damage found while reading the log.
#[derive(Debug)]
pub struct Damage {
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

pub struct Wal {
    dir: PathBuf,
    /// (first lsn, path) of every segment, ascending.
    segments: Vec<(u64, PathBuf)>,
    /// The segment being appended to: file, size, path.
    current: Option<(File, u64, PathBuf)>,
    next_lsn: u64,
    /// Where a group's records are encoded (reused: no allocation per group).
    buf: Vec<u8>,
}

impl Wal {
    /// Opens the log and reads every intact record, in lsn order.
    pub fn open(dir: &Path, min_next_lsn: u64) -> Result<(Wal, Vec<WalRecord>, Vec<Damage>), SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let first = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".wal")).and_then(|n| n.parse().ok());
            if let Some(first) = first {
                segments.push((first, path));
            }
        }
        segments.sort();
        let mut records = Vec::new();
        let mut damage = Vec::new();
        let last = segments.len().saturating_sub(1);
        for (i, (_, path)) in segments.iter().enumerate() {
            let bytes = fs::read(path).map_err(io(path))?;
            let (good_len, problem) = read_records(&bytes, &mut records);
            if let Some(reason) = problem {
                // A torn tail of the last segment is a write that never
                // finished, so was never acknowledged; anything else is damage.
                if !(i == last && reason.starts_with("torn")) {
                    damage.push(Damage { file: path.clone(), offset: good_len as u64, reason });
                }
                // Cut the file where it stops being readable, so appends stay parseable.
                let f = OpenOptions::new().write(true).open(path).map_err(io(path))?;
                f.set_len(good_len as u64).map_err(io(path))?;
                f.sync_all().map_err(io(path))?;
            }
        }
        let next_lsn = records.last().map_or(0, |r: &WalRecord| r.lsn + 1).max(min_next_lsn);
        Ok((Wal { dir: dir.into(), segments, current: None, next_lsn, buf: Vec::new() }, records, damage))
    }

    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Appends records (their `lsn`s are assigned here, consecutively) and
    /// makes them durable with one fsync. On failure nothing is appended.
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = &'a mut WalRecord>) -> Result<(), SpoolError> {
        let first_lsn = self.next_lsn;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for record in records {
            record.lsn = self.next_lsn;
            self.next_lsn += 1;
            encode_record(record, &mut buf);
        }
        let result = if buf.is_empty() { Ok(()) } else { self.write_durably(&buf, first_lsn) };
        if result.is_err() {
            self.next_lsn = first_lsn;
        }
        // Kept for the next group, unless an unusually large one grew it.
        if buf.capacity() <= KEPT_BUFFER_BYTES {
            self.buf = buf;
        }
        result
    }

    fn write_durably(&mut self, buf: &[u8], first_lsn: u64) -> Result<(), SpoolError> {
        if self.current.is_none() {
            let path = self.dir.join(format!("{first_lsn:020}.wal"));
            let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
            let size = file.metadata().map_err(io(&path))?.len();
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
            self.segments.push((first_lsn, path.clone()));
            self.current = Some((file, size, path));
        }
        let (file, size, path) = self.current.as_mut().expect("opened above");
        if let Err(e) = file.write_all(buf).and_then(|_| file.sync_data()) {
            // Roll the segment back so later appends stay parseable.
            let _ = file.set_len(*size);
            return Err(io(path)(e));
        }
        *size += buf.len() as u64;
        if *size >= SEGMENT_BYTES {
            self.current = None;
        }
        Ok(())
    }

    /// Deletes segments whose records all have `lsn < sealed`.
    pub fn release(&mut self, sealed: u64) -> Result<(), SpoolError> {
        // Segment i holds [first_i, first_{i+1}); the open one is never deleted.
        while self.segments.len() > 1 && self.segments[1].0 <= sealed {
            let (_, path) = self.segments.remove(0);
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    pub fn segments(&self) -> usize {
        self.segments.len()
    }
}

/// Appends one record, header and payload, as a segment holds it.
/// Public for the fuzz targets (`fuzz/`), which damage what it wrote.
///
/// The payload is serialized in place after its header, not into a buffer
/// of its own and copied: [`PayloadWriter`] counts positions from the
/// payload's start, so its bytes (rkyv pads to alignments counted from
/// there) are the same as a standalone archive's.
pub fn encode_record(record: &WalRecord, out: &mut Vec<u8>) {
    let header = out.len();
    out.resize(header + HEADER, 0);
    let start = out.len();
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(record, PayloadWriter { out: &mut *out, start }).expect("serializing to memory cannot fail");
    let len = (out.len() - start) as u32;
    let sum = xxh3_64(&out[start..]);
    out[header..header + 4].copy_from_slice(&len.to_le_bytes());
    out[header + 4..start].copy_from_slice(&sum.to_le_bytes());
}

/// An rkyv writer appending to `out`, positions counted from `start`.
struct PayloadWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl rkyv::ser::Positional for PayloadWriter<'_> {
    fn pos(&self) -> usize {
        self.out.len() - self.start
    }
}

impl<E> rkyv::ser::Writer<E> for PayloadWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

/// Reads consecutive records; returns the length of the readable prefix and
/// why reading stopped early, if it did. Public for the fuzz targets (`fuzz/`).
pub fn read_records(bytes: &[u8], out: &mut Vec<WalRecord>) -> (usize, Option<String>) {
    let mut pos = 0;
    let mut aligned = AlignedVec::<16>::new();
    while pos < bytes.len() {
        if bytes.len() - pos < HEADER {
            return (pos, Some("torn header".into()));
        }
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let sum = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap());
        let Some(payload) = bytes.get(pos + HEADER..pos + HEADER + len) else {
            return (pos, Some("torn record".into()));
        };
        if xxh3_64(payload) != sum {
            return (pos, Some("record checksum mismatch".into()));
        }
        aligned.clear();
        aligned.extend_from_slice(payload);
        match rkyv::from_bytes::<WalRecord, rancor::Error>(&aligned) {
            Ok(record) => out.push(record),
            Err(e) => return (pos, Some(format!("record does not decode: {e}"))),
        }
        pos += HEADER + len;
    }
    (pos, None)
}

#[cfg(test)]
mod tests;
