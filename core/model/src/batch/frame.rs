//! The framing of a batch on the wire and in the edge's spool.
//!
//! ```text
//! offset size field
//! 0      4    magic  b"TLYB"
//! 4      2    format version, little endian ([`VERSION`])
//! 6      2    reserved, zero
//! 8      4    payload length in bytes, little endian
//! 12     8    xxh3-64 of the payload, little endian
//! 20     n    payload: rkyv archive of `Batch`
//! ```
//!
//! A frame is opened in four steps, each of which may reject it with a
//! reason: header and checksum, then rkyv's `bytecheck` validation of the
//! archive (so a frame that passes a weak checksum by accident still cannot
//! make us read out of bounds), then that the payload is exactly the batch's
//! own encoding, then the semantic checks of [`validate`].
//!
//! The core never builds an owned [`Batch`]: [`open`] takes the payload as
//! read into an aligned buffer and hands back a [`BatchArchive`], through
//! which the archived batch is read in place (zero-copy). The canonical
//! check re-serializes the archived batch without materializing it
//! (`super::canonical`), comparing as it writes, so it allocates nothing.
//! [`decode`] (edge spool, tools, tests) is [`open`] plus a deserialize.

use rkyv::rancor;
pub use rkyv::util::AlignedVec;
use xxhash_rust::xxh3::xxh3_64;

use super::{ArchivedBatch, Batch, MAX_EDGE_ID_LEN};
use crate::money::MAX_COST_MICROS;
use crate::tenant::TenantId;

pub const MAGIC: [u8; 4] = *b"TLYB";
pub const VERSION: u16 = 4;
pub const HEADER_LEN: usize = 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame shorter than its {HEADER_LEN}-byte header ({0} bytes)")]
    Short(usize),
    #[error("bad magic {0:?}, not a Tally batch")]
    Magic([u8; 4]),
    #[error("unsupported batch format version {0}")]
    Version(u16),
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("header says {declared} payload bytes, frame has {actual}")]
    Length { declared: usize, actual: usize },
    #[error("payload checksum mismatch (header {expected:016x}, payload {actual:016x})")]
    Checksum { expected: u64, actual: u64 },
    #[error("payload is not a valid batch archive: {0}")]
    Archive(String),
    #[error("payload is not its batch's own encoding")]
    NotCanonical,
    #[error("batch is invalid: {0}")]
    Invalid(#[from] Invalid),
}

/// Encodes a batch into one frame.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let payload = rkyv::to_bytes::<rancor::Error>(batch).expect("serializing to memory cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The payload of a frame, aligned, that is a valid archive of a batch
/// (bytecheck passed, or it was serialized here): the archived batch is
/// read in place through [`BatchArchive::batch`].
pub struct BatchArchive {
    /// Invariant: `rkyv::access::<ArchivedBatch, _>` succeeds on these bytes
    /// (they are private and never change after construction).
    payload: AlignedVec<16>,
}

impl BatchArchive {
    /// The archive of `batch`, whatever its content (the commit tests build
    /// batches that do not add up; the receiver alone validates).
    pub fn of(batch: &Batch) -> BatchArchive {
        BatchArchive { payload: rkyv::to_bytes::<rancor::Error>(batch).expect("serializing to memory cannot fail") }
    }

    /// The buffer the archive was read into, for another frame to be read
    /// into once this batch is answered.
    pub fn into_payload(self) -> AlignedVec<16> {
        self.payload
    }

    pub fn batch(&self) -> &ArchivedBatch {
        // SAFETY: the type's invariant: these bytes passed bytecheck (`open`)
        // or are rkyv's own serialization of a `Batch` (`of`), unchanged since.
        unsafe { rkyv::access_unchecked::<ArchivedBatch>(&self.payload) }
    }

    /// An owned copy of the batch.
    pub fn to_batch(&self) -> Batch {
        rkyv::deserialize::<Batch, rancor::Error>(self.batch()).expect("a valid archive deserializes")
    }

    /// xxh3 of the payload: what a frame of this batch carries in its header.
    pub fn checksum(&self) -> u64 {
        xxh3_64(&self.payload)
    }
}

/// Decodes and fully validates one frame into an owned batch.
pub fn decode(frame: &[u8]) -> Result<Batch, FrameError> {
    let header: &[u8; HEADER_LEN] = frame.get(..HEADER_LEN).ok_or(FrameError::Short(frame.len()))?.try_into().unwrap();
    // rkyv needs the archive aligned; network buffers are not.
    let mut aligned = AlignedVec::<16>::with_capacity(frame.len() - HEADER_LEN);
    aligned.extend_from_slice(&frame[HEADER_LEN..]);
    open(header, aligned).map(|archive| archive.to_batch())
}

/// Fully validates one frame, given as its header and its payload (read
/// into an aligned buffer), without copying or deserializing the batch.
pub fn open(header: &[u8; HEADER_LEN], payload: AlignedVec<16>) -> Result<BatchArchive, FrameError> {
    check_header(header, &payload)?;
    let batch = rkyv::access::<ArchivedBatch, rancor::Error>(&payload).map_err(|e| FrameError::Archive(e.to_string()))?;
    // bytecheck leaves bytes the archive does not use (of inline strings,
    // padding) unchecked, so one batch has many valid archives; a re-send of
    // `(edge, seq)` is recognised by its checksum, so only one may be accepted.
    if !super::canonical::is_own_encoding(batch, &payload) {
        return Err(FrameError::NotCanonical);
    }
    validate_archived(batch)?;
    Ok(BatchArchive { payload })
}

/// The payload checksum a frame's header declares (after `decode` accepted
/// the frame, this is the checksum of its payload).
pub fn checksum(frame: &[u8]) -> Option<u64> {
    frame.get(12..20).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}

/// The payload length a frame's header declares, once its magic says it is
/// a Tally batch at all: what a reader must make room for before it reads
/// the payload. The rest of the header is checked by [`decode`].
pub fn declared_len(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let magic: [u8; 4] = header[0..4].try_into().unwrap();
    if magic != MAGIC {
        return Err(FrameError::Magic(magic));
    }
    Ok(u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize)
}

fn check_header(header: &[u8; HEADER_LEN], payload: &[u8]) -> Result<(), FrameError> {
    let magic: [u8; 4] = header[0..4].try_into().unwrap();
    if magic != MAGIC {
        return Err(FrameError::Magic(magic));
    }
    let version = u16::from_le_bytes(header[4..6].try_into().unwrap());
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    if header[6..8] != [0, 0] {
        return Err(FrameError::Reserved);
    }
    let declared = u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize;
    if declared != payload.len() {
        return Err(FrameError::Length { declared, actual: payload.len() });
    }
    let expected = u64::from_le_bytes(header[12..20].try_into().unwrap());
    let actual = xxh3_64(payload);
    if expected != actual {
        return Err(FrameError::Checksum { expected, actual });
    }
    Ok(())
}

/// How a well-formed archive breaks the batch invariants (`super`'s docs).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("edge id must be 1-{MAX_EDGE_ID_LEN} bytes")]
    EdgeId,
    #[error("wal range is reversed")]
    WalRange,
    #[error("tenant {tenant:?}: {reason}")]
    Tenant { tenant: String, reason: String },
    #[error("tenant {tenant}: a click costs {cost} micros, above the per-click maximum of {MAX_COST_MICROS}")]
    Cost { tenant: String, cost: u64 },
    #[error("tenant {tenant}: rows count {row_clicks} clicks / {row_spend} spend, records {records} / {record_spend}")]
    RowsDisagree { tenant: String, row_clicks: u64, row_spend: u64, records: usize, record_spend: u64 },
    #[error("tenant {tenant} ad {ad_id} second {second}: row with zero clicks")]
    EmptyRow { tenant: String, ad_id: u64, second: u32 },
    #[error("tenant {tenant} ad {ad_id}: more users than clicks")]
    Users { tenant: String, ad_id: u64 },
    #[error("tenant {tenant}: dimension row with zero clicks or no name")]
    EmptyDimension { tenant: String },
    #[error("tenant {tenant}: dimension {dimension} overflows")]
    DimensionOverflow { tenant: String, dimension: String },
    #[error("tenant {tenant}: rollout verdict row with zero clicks or an unknown mode")]
    Verdict { tenant: String },
    #[error("tenant {tenant}: dimension {dimension} counts {clicks} clicks of {of}")]
    DimensionClicks { tenant: String, dimension: String, clicks: u64, of: u64 },
    #[error("tenant {tenant}: dimension {dimension} counts {spend} spend of {of}")]
    DimensionSpend { tenant: String, dimension: String, spend: u64, of: u64 },
    #[error("too many rows")]
    TooManyRows,
}

/// Semantic checks: what bytecheck cannot know about a batch.
pub fn validate(batch: &Batch) -> Result<(), Invalid> {
    validate_archived(BatchArchive::of(batch).batch())
}

/// [`validate`], on the archived batch in place.
pub fn validate_archived(batch: &ArchivedBatch) -> Result<(), Invalid> {
    if batch.edge.is_empty() || batch.edge.len() > MAX_EDGE_ID_LEN {
        return Err(Invalid::EdgeId);
    }
    if batch.wal_from.to_native() > batch.wal_to.to_native() {
        return Err(Invalid::WalRange);
    }
    let mut rows = 0usize;
    for t in batch.tenants.iter() {
        let tenant = || t.tenant.to_string();
        TenantId::parse(&t.tenant).map_err(|reason| Invalid::Tenant { tenant: tenant(), reason })?;
        // One pass over each tenant's records and one over its rows: a batch
        // is megabytes, so every pass reads it from memory again. The first
        // defect of each kind is kept and reported in the order the checks
        // are stated (costs, then the totals, then a row's own defect).
        // Bounded costs keep every spend sum exact (see `money`); edges never send more.
        let mut over_cost = None;
        let mut record_spend = 0u64;
        for c in t.clicks.iter() {
            let cost = c.cost_micros.to_native();
            if cost > MAX_COST_MICROS && over_cost.is_none() {
                over_cost = Some(cost);
            }
            record_spend = record_spend.saturating_add(cost);
        }
        if let Some(cost) = over_cost {
            return Err(Invalid::Cost { tenant: tenant(), cost });
        }
        let (mut row_clicks, mut row_spend, mut row_defect) = (0u64, 0u64, None);
        for row in t.rows.iter() {
            let clicks = row.clicks.to_native();
            row_clicks = row_clicks.saturating_add(clicks);
            row_spend = row_spend.saturating_add(row.spend_micros.to_native());
            if row_defect.is_none() {
                if clicks == 0 {
                    row_defect = Some(Invalid::EmptyRow { tenant: tenant(), ad_id: row.ad_id.to_native(), second: row.second.to_native() });
                } else if row.user_hashes.len() as u64 > clicks {
                    row_defect = Some(Invalid::Users { tenant: tenant(), ad_id: row.ad_id.to_native() });
                }
            }
        }
        if row_clicks != t.clicks.len() as u64 || row_spend != record_spend {
            return Err(Invalid::RowsDisagree { tenant: tenant(), row_clicks, row_spend, records: t.clicks.len(), record_spend });
        }
        if let Some(defect) = row_defect {
            return Err(defect);
        }
        // Ordered, so which dimension a refusal names does not vary by run.
        let mut dim_totals: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
        for d in t.dims.iter() {
            if d.clicks.to_native() == 0 || d.dimension.is_empty() {
                return Err(Invalid::EmptyDimension { tenant: tenant() });
            }
            let (clicks, spend) = dim_totals.entry(d.dimension.as_str()).or_default();
            let overflow = || Invalid::DimensionOverflow { tenant: tenant(), dimension: d.dimension.to_string() };
            *clicks = clicks.checked_add(d.clicks.to_native()).ok_or_else(overflow)?;
            *spend = spend.checked_add(d.spend_micros.to_native()).ok_or_else(overflow)?;
        }
        if t.verdicts.iter().any(|v| v.clicks.to_native() == 0 || !matches!(v.mode, super::MODE_SHADOW | super::MODE_CANARY)) {
            return Err(Invalid::Verdict { tenant: tenant() });
        }
        if let Some((name, (n, _))) = dim_totals.iter().find(|(_, (n, _))| *n > row_clicks) {
            return Err(Invalid::DimensionClicks { tenant: tenant(), dimension: name.to_string(), clicks: *n, of: row_clicks });
        }
        // The rollups sum dimension spend as UInt64: unbounded, it would wrap them.
        if let Some((name, (_, spend))) = dim_totals.iter().find(|(_, (_, spend))| *spend > record_spend) {
            return Err(Invalid::DimensionSpend { tenant: tenant(), dimension: name.to_string(), spend: *spend, of: record_spend });
        }
        rows += t.rows.len();
    }
    if rows > u32::MAX as usize {
        return Err(Invalid::TooManyRows);
    }
    Ok(())
}
