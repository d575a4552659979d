//! Dedup snapshot files: the keys the WAL made durable, kept for the dedup
//! horizon, so a restarted edge still knows every click it acknowledged
//! within it (see `dedup`), after the WAL segments holding them are gone.
//!
//! # Design
//! The snapshot is incremental: no copy of the table is ever taken. The WAL
//! thread hands over the keys (tenant, key, first sighting) of every group
//! it made durable; a snapshot thread gathers them and every
//! `[dedup] snapshot_interval_secs` writes what it gathered as one file
//! covering WAL records `[from, to)`. Each key is written once, off the
//! request path (the WAL thread only moves a vector). A file is deleted
//! once its newest sighting is past the horizon (plus a generation), except
//! the newest file, which keeps recording how far the files cover.
//!
//! The same thread does the dedup upkeep no request should wait for: it
//! expires entries of idle tables ([`Dedup::expire`], a bounded budget per
//! tick under the pipeline lock) and publishes the per-tenant metrics,
//! logging when a tenant's covered horizon falls below the configured one.
//!
//! # On-disk layout
//! `dedup/<from lsn:020>.keys`, written once (tmp, fsync, rename, fsync dir):
//! ```text
//! offset size field
//! 0      8    magic "TLYDEDUP"
//! 8      4    version (1), little endian like every number below
//! 12     8    from: the first WAL lsn covered
//! 20     8    to: WAL records [from, to) are covered
//! 28     8    newest first sighting in the file (ms since the epoch)
//! 36     4    number of tenant sections
//! 40     ..   per tenant: id length (u16), id (UTF-8), key count (u32),
//!             then per key: key (u128), first sighting (u64 ms)
//! end-8  8    xxh3-64 of every byte before it
//! ```
//!
//! # Invariant
//! `covered` is the `to` of the newest file. Every key a durable WAL record
//! below `covered` decided is in a file, unless it is past its horizon; and
//! WAL segments are deleted only below `min(sealed, covered)` (the WAL
//! thread releases no further, nor does start-up). So a key within its
//! horizon is always in a snapshot file or in a WAL segment on disk, never
//! in neither. At start the files are restored, then every WAL record is
//! replayed; the keys of records at or above `covered` are gathered again
//! for the next file.
//!
//! A damaged file is moved to `quarantine/`, a gap between files or WAL
//! records missing below the WAL's start are reported: all are logged and
//! counted (`tally_edge_dedup_snapshot_damaged`), the edge starts with what
//! is left, and every tenant's reported horizon restarts from then.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tally_model::tenant::TenantId;
use tally_model::timestamp::now_ms;
use xxhash_rust::xxh3::xxh3_64;

use super::{io, SpoolError};
use crate::dedup::{Dedup, GENERATIONS};
use crate::ingest::pipeline::Pipeline;
use crate::ingest::record::WalRecord;
use crate::metrics::Metrics;

const MAGIC: &[u8; 8] = b"TLYDEDUP";
const VERSION: u32 = 1;
const HEADER: usize = 40;
const KEY_BYTES: usize = 24;

/// Expired dedup entries dropped per upkeep tick at most (a few ms under
/// the pipeline lock); inserts drop expired entries of busy tables anyway.
const EXPIRE_BUDGET: usize = 50_000;
const TICK: Duration = Duration::from_secs(1);

/// The keys of WAL records `[from, to)`: what one file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    pub from: u64,
    pub to: u64,
    /// tenant -> (key, first sighting ms), in WAL order
    pub tenants: BTreeMap<String, Vec<(u128, u64)>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("{0} bytes: shorter than a header and checksum")]
    Short(usize),
    #[error("checksum mismatch (torn or damaged)")]
    Checksum,
    #[error("not a dedup snapshot (magic)")]
    Magic,
    #[error("snapshot version {0}, this edge reads {VERSION}")]
    Version(u32),
    #[error("ends inside {0}")]
    Truncated(&'static str),
    #[error("tenant id is not UTF-8")]
    Tenant,
    #[error("{0} bytes after the last tenant section")]
    Trailing(usize),
}

impl Chunk {
    /// Adds what a durable WAL record decided.
    pub fn add(&mut self, tenant: &str, record: &WalRecord) {
        self.to = self.to.max(record.lsn + 1);
        let keys = self.tenants.entry(tenant.to_string()).or_default();
        keys.extend(record.sightings());
    }

    pub fn keys(&self) -> usize {
        self.tenants.values().map(Vec::len).sum()
    }

    fn newest_ms(&self) -> u64 {
        self.tenants.values().flatten().map(|&(_, at)| at).max().unwrap_or(0)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 8 + self.keys() * KEY_BYTES);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for n in [self.from, self.to, self.newest_ms()] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&(self.tenants.len() as u32).to_le_bytes());
        for (tenant, keys) in &self.tenants {
            out.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
            out.extend_from_slice(tenant.as_bytes());
            out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
            for (key, at) in keys {
                out.extend_from_slice(&key.to_le_bytes());
                out.extend_from_slice(&at.to_le_bytes());
            }
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The checksum is checked first, so no field of a torn or damaged file
    /// is ever trusted.
    pub fn decode(bytes: &[u8]) -> Result<Chunk, ChunkError> {
        if bytes.len() < HEADER + 8 {
            return Err(ChunkError::Short(bytes.len()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if xxh3_64(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return Err(ChunkError::Checksum);
        }
        if &body[..8] != MAGIC {
            return Err(ChunkError::Magic);
        }
        let mut r = Reader { bytes: &body[8..] };
        let version = r.u32("header")?;
        if version != VERSION {
            return Err(ChunkError::Version(version));
        }
        let (from, to, _newest) = (r.u64("header")?, r.u64("header")?, r.u64("header")?);
        let mut chunk = Chunk { from, to, tenants: BTreeMap::new() };
        for _ in 0..r.u32("header")? {
            let len = r.u16("a tenant id")? as usize;
            let tenant = std::str::from_utf8(r.take(len, "a tenant id")?).map_err(|_| ChunkError::Tenant)?.to_string();
            let count = r.u32("a key count")? as usize;
            let raw = r.take(count.checked_mul(KEY_BYTES).ok_or(ChunkError::Truncated("keys"))?, "keys")?;
            let keys = raw
                .chunks_exact(KEY_BYTES)
                .map(|k| (u128::from_le_bytes(k[..16].try_into().expect("16 bytes")), u64::from_le_bytes(k[16..].try_into().expect("8 bytes"))))
                .collect();
            chunk.tenants.insert(tenant, keys);
        }
        match r.bytes.len() {
            0 => Ok(chunk),
            n => Err(ChunkError::Trailing(n)),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ChunkError> {
        if self.bytes.len() < n {
            return Err(ChunkError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, ChunkError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, ChunkError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, ChunkError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
}

/// Something lost from the dedup memory, found at start.
#[derive(Debug)]
pub struct Problem {
    pub file: PathBuf,
    pub reason: String,
}

/// The snapshot files of one spool.
pub struct Snapshots {
    dir: PathBuf,
    /// (from, to, newest sighting, path) of every file, ascending.
    files: Vec<(u64, u64, u64, PathBuf)>,
    /// Files are deleted past this (horizon plus one generation).
    keep_ms: u64,
}

impl Snapshots {
    /// Opens `<spool_dir>/dedup`, restores every readable file into
    /// `dedup` (oldest first, as the keys were first seen) and reports what
    /// it could not read or found missing, given that the WAL on disk starts
    /// at record `wal_start`. Returns the keys restored too.
    pub fn open(spool_dir: &Path, dedup: &mut Dedup, wal_start: u64, now_ms: u64) -> Result<(Snapshots, usize, Vec<Problem>), SpoolError> {
        let dir = spool_dir.join("dedup");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let quarantine = spool_dir.join("quarantine");
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            match name.strip_suffix(".keys").and_then(|n| n.parse::<u64>().ok()) {
                Some(from) => names.push((from, path)),
                // An unfinished write: its keys are still in the WAL.
                None if name.ends_with(".tmp") => fs::remove_file(&path).map_err(io(&path))?,
                None => {}
            }
        }
        names.sort();
        let keep_ms = dedup.horizon_ms() + dedup.horizon_ms() / GENERATIONS;
        let mut snapshots = Snapshots { dir, files: Vec::new(), keep_ms };
        let (mut restored, mut problems) = (0, Vec::new());
        for (from, path) in names {
            let bytes = fs::read(&path).map_err(io(&path))?;
            match Chunk::decode(&bytes) {
                Ok(chunk) if chunk.from == from => {
                    if let Some(&(_, to, _, _)) = snapshots.files.last() {
                        if chunk.from > to {
                            problems.push(Problem { file: path.clone(), reason: format!("WAL records {to}..{from} are in no snapshot file") });
                        }
                    }
                    for (tenant, keys) in &chunk.tenants {
                        let Ok(tenant) = TenantId::parse(tenant) else { continue };
                        for &(key, at) in keys {
                            dedup.restore(&tenant, key, at, now_ms);
                        }
                        restored += keys.len();
                    }
                    snapshots.files.push((chunk.from, chunk.to, chunk.newest_ms(), path));
                }
                outcome => {
                    let reason = match outcome {
                        Ok(chunk) => format!("holds records from {}, not as named", chunk.from),
                        Err(e) => e.to_string(),
                    };
                    fs::create_dir_all(&quarantine).map_err(io(&quarantine))?;
                    let aside = quarantine.join(format!("dedup-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("")));
                    fs::rename(&path, &aside).map_err(io(&path))?;
                    problems.push(Problem { file: aside, reason });
                }
            }
        }
        if snapshots.covered() < wal_start {
            // A spool from before snapshots existed, or files deleted by hand.
            let reason = format!("WAL records {}..{wal_start} are gone and in no snapshot file", snapshots.covered());
            problems.push(Problem { file: snapshots.dir.clone(), reason });
        }
        Ok((snapshots, restored, problems))
    }

    /// WAL records below this have their keys in files.
    pub fn covered(&self) -> u64 {
        self.files.last().map_or(0, |f| f.1)
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Writes `chunk` as a file, durably; afterwards it counts as covered.
    pub fn write(&mut self, chunk: &Chunk) -> Result<(), SpoolError> {
        let path = self.dir.join(format!("{:020}.keys", chunk.from));
        tally_model::durable_file::write_atomic(&path, &chunk.encode()).map_err(io(&path))?;
        self.files.push((chunk.from, chunk.to, chunk.newest_ms(), path));
        Ok(())
    }

    /// Deletes files whose keys are all past the horizon, but never the
    /// newest (it records what the files cover).
    pub fn expire(&mut self, now_ms: u64) -> Result<(), SpoolError> {
        while self.files.len() > 1 && self.files[0].2 + self.keep_ms < now_ms {
            let (_, _, _, path) = self.files.remove(0);
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }
}

/// The WAL thread's side of the snapshot thread.
#[derive(Clone)]
pub struct SnapshotHandle {
    keys: mpsc::Sender<Chunk>,
    covered: Arc<AtomicU64>,
}

impl SnapshotHandle {
    /// Hands over the keys of durable records (a group commit's).
    pub fn durable(&self, keys: Chunk) {
        // Gone only at shutdown, after the last write: its keys stay in the WAL.
        let _ = self.keys.send(keys);
    }

    /// WAL records below this may be deleted as far as dedup is concerned.
    pub fn covered(&self) -> u64 {
        self.covered.load(Ordering::Acquire)
    }
}

/// Starts the snapshot thread. `pending` holds the keys of the WAL records
/// at or above `covered` found at start. The thread ends, after a last
/// write, once every [`SnapshotHandle`] is dropped.
pub fn start(
    mut snapshots: Snapshots,
    mut pending: Chunk,
    pipeline: Arc<Mutex<Pipeline>>,
    metrics: Arc<Metrics>,
    interval: Duration,
) -> (SnapshotHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Chunk>();
    let covered = Arc::new(AtomicU64::new(snapshots.covered()));
    let handle = SnapshotHandle { keys: tx, covered: covered.clone() };
    let thread = std::thread::Builder::new()
        .name("tally-dedup".into())
        .spawn(move || {
            let mut upkeep = Upkeep::default();
            let mut last_write = Instant::now();
            let mut next_tick = Instant::now();
            loop {
                let open = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                    Ok(keys) => {
                        merge(&mut pending, keys);
                        true
                    }
                    Err(RecvTimeoutError::Timeout) => true,
                    Err(RecvTimeoutError::Disconnected) => false,
                };
                let due = last_write.elapsed() >= interval || !open;
                if due && pending.to > pending.from {
                    match snapshots.write(&pending) {
                        Ok(()) => {
                            covered.store(pending.to, Ordering::Release);
                            pending = Chunk { from: pending.to, to: pending.to, tenants: BTreeMap::new() };
                            last_write = Instant::now();
                        }
                        Err(e) => {
                            // Kept and retried: the WAL keeps the records meanwhile.
                            metrics.dedup_snapshot_failures.inc();
                            tracing::warn!(error = %e, "could not write a dedup snapshot; WAL segments are kept until one is written");
                        }
                    }
                }
                if !open {
                    return;
                }
                if Instant::now() >= next_tick {
                    next_tick = Instant::now() + TICK;
                    let now = now_ms();
                    if let Err(e) = snapshots.expire(now) {
                        tracing::warn!(error = %e, "could not delete an expired dedup snapshot");
                    }
                    metrics.dedup_snapshot_files.set(snapshots.files() as i64);
                    upkeep.run(&pipeline, &metrics, now);
                }
            }
        })
        .expect("spawning the dedup snapshot thread");
    (handle, thread)
}

fn merge(into: &mut Chunk, keys: Chunk) {
    into.to = into.to.max(keys.to);
    for (tenant, mut k) in keys.tenants {
        into.tenants.entry(tenant).or_default().append(&mut k);
    }
}

/// What the metrics were last told, per tenant.
#[derive(Default)]
struct Upkeep {
    evicted_reported: BTreeMap<TenantId, u64>,
    /// Tenants whose covered horizon is short, as last logged.
    short: BTreeSet<TenantId>,
}

impl Upkeep {
    fn run(&mut self, pipeline: &Mutex<Pipeline>, metrics: &Metrics, now: u64) {
        let (stats, horizon_ms) = {
            let mut p = pipeline.lock().expect("pipeline lock poisoned");
            let dedup = p.dedup_mut();
            dedup.expire(now, EXPIRE_BUDGET);
            (dedup.stats(now), dedup.horizon_ms())
        };
        for s in stats {
            let label = Metrics::tenant(s.tenant.as_str());
            metrics.dedup_tenant_entries.get_or_create(&label).set(s.entries as i64);
            metrics.dedup_horizon_seconds.get_or_create(&label).set((s.horizon_ms / 1000) as i64);
            let reported = self.evicted_reported.entry(s.tenant.clone()).or_default();
            metrics.dedup_tenant_evicted_early.get_or_create(&label).inc_by(s.evicted_early - *reported);
            *reported = s.evicted_early;
            // Said when it starts and when it ends, not every tick.
            if s.horizon_ms < horizon_ms && !self.short.contains(&s.tenant) {
                tracing::warn!(
                    tenant = %s.tenant,
                    covered_secs = s.horizon_ms / 1000,
                    horizon_secs = horizon_ms / 1000,
                    evicted_early = s.evicted_early,
                    "dedup covers less than its horizon for this tenant: its share is full (raise [dedup] max_entries_per_tenant) or keys were lost over a restart"
                );
                self.short.insert(s.tenant.clone());
            } else if s.horizon_ms >= horizon_ms && self.short.remove(&s.tenant) {
                tracing::info!(tenant = %s.tenant, horizon_secs = horizon_ms / 1000, "dedup covers its full horizon again for this tenant");
            }
        }
    }
}

#[cfg(test)]
mod tests;
