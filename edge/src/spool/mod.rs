//! The edge's durable state: what it accepted, and what it has not yet
//! delivered.
//!
//! # Design constraints
//! * Acknowledged means durable (in the default `durable` ack mode): a
//!   request is answered only after its clicks are in the write-ahead log.
//! * A batch must be re-sent byte-identical after any crash, because the
//!   core recognises re-sends by `(edge, seq)` and commits each once. So a
//!   batch is written durably *before* its first send, and is never rebuilt.
//! * A sequence number is never reused for different content, and a WAL
//!   record is never aggregated into two batches.
//! * Damage must not stop the edge: it is detected by checksums, moved
//!   aside or cut off, reported, and everything readable still ships.
//!
//! # On-disk layout
//! ```text
//! <spool_dir>/
//!   edge-id                      the edge id this spool belongs to
//!   format                       the layout of the files below ([`FORMAT`]);
//!                                a spool in another format is refused
//!   seal-state                   "<next seq> <wal sealed>": lower bounds, written
//!                                at creation; a spool without it is refused
//!   wal/<first lsn:020>.wal      accepted clicks (see `wal`)
//!   outbox/<seq:020>.batch       one framed batch (see tally_model::batch::frame)
//!   dedup/<first lsn:020>.keys   the dedup keys (tenant, key, first sighting) of
//!                                WAL records [first lsn, to), written once each
//!                                snapshot interval (see `dedup_snapshot`); read at
//!                                start, a damaged one is moved to quarantine
//!   quarantine/<name>            files that failed to decode, kept for forensics
//!   sent/<seq:020>.batch         acknowledged batches, if archiving is on
//!   tls/edge-identity-*.pem      the edge's key pair the core pins (see
//!                                `shipper::identity`); losing it means enrolling anew
//!   tls/edge-*.pem               the ingest listeners' TLS certificate, unless configured
//! ```
//! Small files are written as `*.tmp`, fsynced, renamed and the directory
//! fsynced, so a file with its final name is always complete.
//!
//! # Invariants
//! * WAL records `[0, sealed)` are in outbox batches (or were acknowledged);
//!   records `>= sealed` are replayed into the aggregator at start.
//!   `sealed = max(seal-state, wal_to of every outbox batch)`: the batch
//!   file is written before `seal-state`, so a crash between the two is
//!   still read right. Likewise `next seq = max(seal-state, newest outbox
//!   batch + 1)`. A spool whose `seal-state` is gone is refused: the numbers
//!   of acknowledged (deleted) batches cannot be recovered from it.
//! * `outbox/N.batch` exists => batch N was sealed and not yet acknowledged
//!   (or acknowledged and its delete was lost in a crash: the re-send is then
//!   answered `Duplicate`, which is harmless).
//! * WAL segments are deleted only when all their records are sealed and
//!   their dedup keys are in `dedup/` files (`covered`, the `to` of the
//!   newest file): a key within the dedup horizon is always in a snapshot
//!   file or a WAL segment, never in neither, so a restarted edge remembers
//!   the whole horizon. The `dedup/` files are not part of [`FORMAT`]: they
//!   carry their own version, and an edge that cannot read one reports it
//!   and starts without it.
//! * An edge only opens a spool in its own [`FORMAT`]: decoding another
//!   layout would lose acknowledged clicks. An upgrade that changes it drains
//!   the spool with the old binary first. A spool from before the `format`
//!   file existed is opened only if it holds no WAL segment or batch.
//!
//! # Limits
//! The outbox holds at most `max_bytes`; past it sealing stops, the rows
//! stay in memory and the edge answers new clicks `503` with `Retry-After`.

pub mod dedup_snapshot;
pub mod group_commit;
mod outbox;
pub mod wal;

use std::path::{Path, PathBuf};

pub use outbox::{Outbox, Quarantined, Sealed};

/// The spool's layout: `ingest::record::WalRecord` and the batch frame
/// (`tally_model::batch::frame::VERSION`). Bump it when either changes.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool {path} belongs to edge {found:?}, not {expected:?}")]
    WrongEdge { path: PathBuf, found: String, expected: String },
    #[error("{0} is missing or unreadable: this spool's sequence numbers cannot be trusted; move the spool aside and start the edge under a new edge_id")]
    StateLost(PathBuf),
    #[error("spool {path} is in format {found}, this edge reads format {FORMAT} only: drain it with the Tally version that wrote it, or move it aside")]
    Format { path: PathBuf, found: String },
    #[error("spool is full ({used} of {max} bytes); waiting for the core to acknowledge batches")]
    Full { used: u64, max: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// The file is either absent, its old content or complete (see `durable_file`).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
    let path = dir.join(name);
    tally_model::durable_file::write_atomic(&path, bytes).map_err(io(&path))
}
