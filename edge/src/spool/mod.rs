//! The edge's outbox: sealed batches kept on disk until the core commits them.
//!
//! # Design constraints
//! * A batch must be re-sent byte-identical after any crash, because the
//!   core recognises re-sends by `(edge, seq)` and commits each once. So a
//!   batch is written durably *before* its first send, and is never rebuilt.
//! * A sequence number is never reused for different content, even after
//!   every batch was acknowledged and deleted.
//! * A damaged file must not stop the edge: it is detected by the frame
//!   checksum, moved aside, reported, and the other batches still ship.
//!
//! # On-disk layout
//! ```text
//! <spool_dir>/
//!   edge-id                      the edge id this spool belongs to
//!   next-seq                     decimal; a lower bound for the next seq
//!   outbox/<seq:020>.batch       one framed batch (see tally_model::batch::frame)
//!   quarantine/<name>            files that failed to decode, kept for forensics
//! ```
//! Files are written as `*.tmp`, fsynced, renamed and the directory fsynced,
//! so a file with the final name is always complete.
//!
//! # Invariants
//! * `outbox/N.batch` exists => batch N was sealed and not yet acknowledged
//!   (or acknowledged and the delete was lost in a crash: the re-send is then
//!   answered `Duplicate`, which is harmless).
//! * next seq = max(`next-seq`, highest outbox seq + 1): `next-seq` is
//!   persisted after each seal, the batch file before it.
//!
//! # Limits
//! The outbox holds at most `max_bytes`; past it `seal` fails with
//! [`SpoolError::Full`] and the caller keeps the rows in memory (and, with
//! durable acks, stops acknowledging new clicks).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use tally_model::batch::{frame, Batch};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool {path} belongs to edge {found:?}, not {expected:?}")]
    WrongEdge { path: PathBuf, found: String, expected: String },
    #[error("spool is full ({used} of {max} bytes); waiting for the core to acknowledge batches")]
    Full { used: u64, max: u64 },
}

/// A batch in the outbox.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub seq: u64,
    pub frame: Bytes,
}

/// What `open` found damaged.
#[derive(Debug)]
pub struct Quarantined {
    pub file: PathBuf,
    pub reason: String,
}

pub struct Spool {
    dir: PathBuf,
    edge: String,
    next_seq: u64,
    max_bytes: u64,
    pending: BTreeMap<u64, Sealed>,
    bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

impl Spool {
    /// Opens (or creates) the spool of `edge`, loading every pending batch.
    pub fn open(dir: &Path, edge: &str, max_bytes: u64) -> Result<(Spool, Vec<Quarantined>), SpoolError> {
        for sub in ["outbox", "quarantine"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let id_path = dir.join("edge-id");
        match fs::read_to_string(&id_path) {
            Ok(found) if found.trim() != edge => {
                return Err(SpoolError::WrongEdge { path: dir.into(), found: found.trim().into(), expected: edge.into() })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_atomic(dir, "edge-id", edge.as_bytes())?,
            Err(e) => return Err(io(&id_path)(e)),
        }
        let seq_path = dir.join("next-seq");
        let mut next_seq = match fs::read_to_string(&seq_path) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&seq_path)(e)),
        };
        let mut spool = Spool { dir: dir.into(), edge: edge.into(), next_seq: 0, max_bytes, pending: BTreeMap::new(), bytes: 0 };
        let quarantined = spool.load_outbox(&mut next_seq)?;
        spool.next_seq = next_seq.max(1);
        Ok((spool, quarantined))
    }

    fn load_outbox(&mut self, next_seq: &mut u64) -> Result<Vec<Quarantined>, SpoolError> {
        let outbox = self.dir.join("outbox");
        let mut quarantined = Vec::new();
        for entry in fs::read_dir(&outbox).map_err(io(&outbox))? {
            let path = entry.map_err(io(&outbox))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if name.ends_with(".tmp") {
                // An unfinished write: its batch was never sent.
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let seq = name.strip_suffix(".batch").and_then(|s| s.parse::<u64>().ok());
            let checked = match seq {
                None => Err("not a batch file name".to_string()),
                Some(seq) => fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| {
                    let batch = frame::decode(&bytes).map_err(|e| e.to_string())?;
                    if batch.seq != seq || batch.edge != self.edge {
                        return Err(format!("holds batch {}/{}, expected {}/{seq}", batch.edge, batch.seq, self.edge));
                    }
                    Ok(Sealed { seq, frame: bytes.into() })
                }),
            };
            if let Some(seq) = seq {
                // Even a damaged batch used its number: never hand it out again.
                *next_seq = (*next_seq).max(seq + 1);
            }
            match checked {
                Ok(sealed) => {
                    self.bytes += sealed.frame.len() as u64;
                    self.pending.insert(sealed.seq, sealed);
                }
                Err(reason) => {
                    let to = self.dir.join("quarantine").join(&name);
                    fs::rename(&path, &to).map_err(io(&path))?;
                    quarantined.push(Quarantined { file: to, reason });
                }
            }
        }
        Ok(quarantined)
    }

    /// Makes a batch of `tenants` durable and returns it, ready to send.
    pub fn seal(&mut self, tenants: Vec<tally_model::batch::TenantRows>, now_ms: u64) -> Result<Sealed, SpoolError> {
        if self.bytes >= self.max_bytes {
            return Err(SpoolError::Full { used: self.bytes, max: self.max_bytes });
        }
        let seq = self.next_seq;
        let batch = Batch { edge: self.edge.clone(), seq, sealed_at_ms: now_ms, tenants };
        let encoded = frame::encode(&batch);
        write_atomic(&self.dir.join("outbox"), &file_name(seq), &encoded)?;
        self.next_seq = seq + 1;
        write_atomic(&self.dir, "next-seq", self.next_seq.to_string().as_bytes())?;
        let sealed = Sealed { seq, frame: encoded.into() };
        self.bytes += sealed.frame.len() as u64;
        self.pending.insert(seq, sealed.clone());
        Ok(sealed)
    }

    /// The core committed `seq`: forget it.
    pub fn acknowledge(&mut self, seq: u64) -> Result<(), SpoolError> {
        if let Some(sealed) = self.pending.remove(&seq) {
            self.bytes -= sealed.frame.len() as u64;
            let path = self.dir.join("outbox").join(file_name(seq));
            // No fsync: a delete lost in a crash only causes a harmless re-send.
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The core refused `seq` for good: move it aside so it stops blocking.
    pub fn quarantine(&mut self, seq: u64) -> Result<(), SpoolError> {
        if let Some(sealed) = self.pending.remove(&seq) {
            self.bytes -= sealed.frame.len() as u64;
            let from = self.dir.join("outbox").join(file_name(seq));
            let to = self.dir.join("quarantine").join(file_name(seq));
            fs::rename(&from, &to).map_err(io(&from))?;
        }
        Ok(())
    }

    /// Batches sealed and not yet acknowledged, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Sealed> {
        self.pending.values()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.batch")
}

/// tmp + fsync + rename + fsync(dir): the file is either absent or complete.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests;
