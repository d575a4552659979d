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
//! A frame is decoded in four steps, each of which may reject it with a
//! reason: header and checksum, then rkyv's `bytecheck` validation of the
//! archive (so a frame that passes a weak checksum by accident still cannot
//! make us read out of bounds), then that the payload is exactly the batch's
//! own encoding, then the semantic checks of [`validate`].

use rkyv::rancor;
use rkyv::util::AlignedVec;
use xxhash_rust::xxh3::xxh3_64;

use super::{Batch, MAX_EDGE_ID_LEN};
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

/// Decodes and fully validates one frame.
pub fn decode(frame: &[u8]) -> Result<Batch, FrameError> {
    let payload = check_header(frame)?;
    // rkyv needs the archive aligned; network buffers are not.
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    let batch = rkyv::from_bytes::<Batch, rancor::Error>(&aligned).map_err(|e| FrameError::Archive(e.to_string()))?;
    // bytecheck leaves bytes the archive does not use (of inline strings,
    // padding) unchecked, so one batch has many valid archives; a re-send of
    // `(edge, seq)` is recognised by its checksum, so only one may be accepted.
    if rkyv::to_bytes::<rancor::Error>(&batch).expect("serializing to memory cannot fail").as_slice() != payload {
        return Err(FrameError::NotCanonical);
    }
    validate(&batch)?;
    Ok(batch)
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

fn check_header(frame: &[u8]) -> Result<&[u8], FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Short(frame.len()));
    }
    let magic: [u8; 4] = frame[0..4].try_into().unwrap();
    if magic != MAGIC {
        return Err(FrameError::Magic(magic));
    }
    let version = u16::from_le_bytes(frame[4..6].try_into().unwrap());
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    if frame[6..8] != [0, 0] {
        return Err(FrameError::Reserved);
    }
    let declared = u32::from_le_bytes(frame[8..12].try_into().unwrap()) as usize;
    let payload = &frame[HEADER_LEN..];
    if declared != payload.len() {
        return Err(FrameError::Length { declared, actual: payload.len() });
    }
    let expected = u64::from_le_bytes(frame[12..20].try_into().unwrap());
    let actual = xxh3_64(payload);
    if expected != actual {
        return Err(FrameError::Checksum { expected, actual });
    }
    Ok(payload)
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
    if batch.edge.is_empty() || batch.edge.len() > MAX_EDGE_ID_LEN {
        return Err(Invalid::EdgeId);
    }
    if batch.wal_from > batch.wal_to {
        return Err(Invalid::WalRange);
    }
    let mut rows = 0usize;
    for t in &batch.tenants {
        let tenant = || t.tenant.clone();
        TenantId::parse(&t.tenant).map_err(|reason| Invalid::Tenant { tenant: tenant(), reason })?;
        // Bounded costs keep every spend sum exact (see `money`); edges never send more.
        if let Some(c) = t.clicks.iter().find(|c| c.cost_micros > MAX_COST_MICROS) {
            return Err(Invalid::Cost { tenant: tenant(), cost: c.cost_micros });
        }
        let row_clicks: u64 = t.rows.iter().map(|r| r.clicks).fold(0, u64::saturating_add);
        let row_spend: u64 = t.rows.iter().map(|r| r.spend_micros).fold(0, u64::saturating_add);
        let record_spend: u64 = t.clicks.iter().map(|c| c.cost_micros).fold(0, u64::saturating_add);
        if row_clicks != t.clicks.len() as u64 || row_spend != record_spend {
            return Err(Invalid::RowsDisagree { tenant: tenant(), row_clicks, row_spend, records: t.clicks.len(), record_spend });
        }
        for row in &t.rows {
            if row.clicks == 0 {
                return Err(Invalid::EmptyRow { tenant: tenant(), ad_id: row.ad_id, second: row.second });
            }
            if row.user_hashes.len() as u64 > row.clicks {
                return Err(Invalid::Users { tenant: tenant(), ad_id: row.ad_id });
            }
        }
        // Ordered, so which dimension a refusal names does not vary by run.
        let mut dim_totals: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
        for d in &t.dims {
            if d.clicks == 0 || d.dimension.is_empty() {
                return Err(Invalid::EmptyDimension { tenant: tenant() });
            }
            let (clicks, spend) = dim_totals.entry(d.dimension.as_str()).or_default();
            let overflow = || Invalid::DimensionOverflow { tenant: tenant(), dimension: d.dimension.clone() };
            *clicks = clicks.checked_add(d.clicks).ok_or_else(overflow)?;
            *spend = spend.checked_add(d.spend_micros).ok_or_else(overflow)?;
        }
        if t.verdicts.iter().any(|v| v.clicks == 0 || !matches!(v.mode, super::MODE_SHADOW | super::MODE_CANARY)) {
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
