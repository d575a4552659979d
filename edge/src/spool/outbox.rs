//! The outbox: sealed batches on disk until the core acknowledges them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use tally_model::batch::{frame, Batch};

use super::{io, write_atomic, SpoolError, FORMAT};
use crate::ingest::pipeline::Sealing;

/// A batch in the outbox.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub seq: u64,
    pub frame: Bytes,
    pub wal_to: u64,
    /// Earliest event time of a click in it: holds the edge's watermark
    /// back until the batch is acknowledged.
    pub min_event_ms: Option<u64>,
}

/// What `open` found damaged.
#[derive(Debug)]
pub struct Quarantined {
    pub file: PathBuf,
    pub reason: String,
}

pub struct Outbox {
    dir: PathBuf,
    edge: String,
    next_seq: u64,
    wal_sealed: u64,
    max_bytes: u64,
    pending: BTreeMap<u64, Sealed>,
    bytes: u64,
    archive: bool,
}

/// No WAL segment and no pending batch: nothing whose layout matters.
fn holds_nothing(dir: &Path) -> Result<bool, SpoolError> {
    for sub in ["wal", "outbox"] {
        let path = dir.join(sub);
        match fs::read_dir(&path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(true)
}

impl Outbox {
    /// Keep acknowledged batches in `sent/` instead of deleting them (for
    /// audits and replay drills; nothing reads them back).
    pub fn archive_acknowledged(&mut self, archive: bool) -> Result<(), SpoolError> {
        if archive {
            let sent = self.dir.join("sent");
            fs::create_dir_all(&sent).map_err(io(&sent))?;
        }
        self.archive = archive;
        Ok(())
    }

    /// Opens (or creates) the spool of `edge`, loading every pending batch.
    pub fn open(dir: &Path, edge: &str, max_bytes: u64) -> Result<(Outbox, Vec<Quarantined>), SpoolError> {
        for sub in ["outbox", "quarantine"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let id_path = dir.join("edge-id");
        match fs::read_to_string(&id_path) {
            Ok(found) if found.trim() != edge => return Err(SpoolError::WrongEdge { path: dir.into(), found: found.trim().into(), expected: edge.into() }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A new spool: its state exists from the start, so a missing
                // one later means damage, never "fresh".
                write_atomic(dir, "seal-state", b"1 0")?;
                write_atomic(dir, "format", FORMAT.to_string().as_bytes())?;
                write_atomic(dir, "edge-id", edge.as_bytes())?;
            }
            Err(e) => return Err(io(&id_path)(e)),
        }
        let format_path = dir.join("format");
        match fs::read_to_string(&format_path) {
            Ok(found) if found.trim() == FORMAT.to_string() => {}
            Ok(found) => return Err(SpoolError::Format { path: dir.into(), found: found.trim().into() }),
            // Written before format files existed: its layout is unknown, so
            // it is taken only if it holds nothing to misread.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && holds_nothing(dir)? => {
                write_atomic(dir, "format", FORMAT.to_string().as_bytes())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SpoolError::Format { path: dir.into(), found: "unknown (no format file)".into() })
            }
            Err(e) => return Err(io(&format_path)(e)),
        }
        let state_path = dir.join("seal-state");
        let parsed = fs::read_to_string(&state_path).ok().and_then(|s| {
            let mut parts = s.split_whitespace().map(|p| p.parse::<u64>().ok());
            Some((parts.next()??, parts.next()??))
        });
        // Without it, sequence numbers of acknowledged (deleted) batches could
        // be handed out again and their new content taken for re-sends.
        let Some((next_seq, wal_sealed)) = parsed else { return Err(SpoolError::StateLost(state_path)) };
        let mut outbox =
            Outbox { dir: dir.into(), edge: edge.into(), next_seq: next_seq.max(1), wal_sealed, max_bytes, pending: BTreeMap::new(), bytes: 0, archive: false };
        let quarantined = outbox.load()?;
        Ok((outbox, quarantined))
    }

    fn load(&mut self) -> Result<Vec<Quarantined>, SpoolError> {
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
                    Ok(sealed(&batch, bytes.into()))
                }),
            };
            if let Some(seq) = seq {
                // Even a damaged batch used its number: never hand it out again.
                self.next_seq = self.next_seq.max(seq + 1);
            }
            match checked {
                Ok(s) => {
                    self.wal_sealed = self.wal_sealed.max(s.wal_to);
                    self.bytes += s.frame.len() as u64;
                    self.pending.insert(s.seq, s);
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

    /// No room for another batch until the core acknowledges some.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.max_bytes
    }

    /// Makes `sealing` durable as the next batch and returns it, ready to send.
    /// On failure the sealing is handed back, untouched.
    pub fn seal(&mut self, sealing: Sealing, now_ms: u64) -> Result<Sealed, (SpoolError, Sealing)> {
        if self.is_full() {
            return Err((SpoolError::Full { used: self.bytes, max: self.max_bytes }, sealing));
        }
        let seq = self.next_seq;
        let batch = Batch {
            edge: self.edge.clone(),
            seq,
            sealed_at_ms: now_ms,
            low_watermark_ms: sealing.low_watermark_ms,
            wal_from: sealing.wal_from,
            wal_to: sealing.wal_to,
            tenants: sealing.tenants,
        };
        let encoded = frame::encode(&batch);
        let give_back = |e: SpoolError, batch: Batch| {
            let sealing = Sealing { tenants: batch.tenants, wal_from: batch.wal_from, wal_to: batch.wal_to, low_watermark_ms: batch.low_watermark_ms };
            (e, sealing)
        };
        if let Err(e) = write_atomic(&self.dir.join("outbox"), &file_name(seq), &encoded) {
            return Err(give_back(e, batch));
        }
        // From here the batch exists on disk: its seq and WAL range are used.
        self.next_seq = seq + 1;
        self.wal_sealed = self.wal_sealed.max(batch.wal_to);
        if let Err(e) = write_atomic(&self.dir, "seal-state", format!("{} {}", self.next_seq, self.wal_sealed).as_bytes()) {
            // The batch file alone already bounds both on the next start.
            tracing::warn!(error = %e, "could not persist seal-state");
        }
        let s = sealed(&batch, encoded.into());
        self.bytes += s.frame.len() as u64;
        self.pending.insert(seq, s.clone());
        Ok(s)
    }

    /// The core committed `seq`: forget it.
    pub fn acknowledge(&mut self, seq: u64) -> Result<(), SpoolError> {
        if let Some(sealed) = self.pending.remove(&seq) {
            self.bytes -= sealed.frame.len() as u64;
            let path = self.dir.join("outbox").join(file_name(seq));
            // No fsync: a delete lost in a crash only causes a harmless re-send.
            let gone = if self.archive { fs::rename(&path, self.dir.join("sent").join(file_name(seq))) } else { fs::remove_file(&path) };
            match gone {
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

    /// The frame of pending batch `seq`, to send.
    pub fn frame(&self, seq: u64) -> Option<Bytes> {
        self.pending.get(&seq).map(|s| s.frame.clone())
    }

    /// Batches sealed and not yet acknowledged, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Sealed> {
        self.pending.values()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Earliest event time held by an unacknowledged batch.
    pub fn pending_min_event_ms(&self) -> Option<u64> {
        self.pending.values().filter_map(|s| s.min_event_ms).min()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// WAL records below this are in batches; replay starts here.
    pub fn wal_sealed(&self) -> u64 {
        self.wal_sealed
    }
}

fn sealed(batch: &Batch, frame: Bytes) -> Sealed {
    let min_event_ms = batch.tenants.iter().flat_map(|t| t.clicks.iter().map(|c| c.ts_ms)).min();
    Sealed { seq: batch.seq, frame, wal_to: batch.wal_to, min_event_ms }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.batch")
}

#[cfg(test)]
mod tests;
