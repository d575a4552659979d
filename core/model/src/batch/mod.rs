//! A batch: what one edge sealed at one moment, identified by `(edge, seq)`.
//!
//! Invariants the core relies on:
//! * `(edge, seq)` names exactly one content forever. An edge never reuses a
//!   sequence number for different rows; a re-send is byte-identical.
//! * Within a batch, rows of one tenant are unique per `(ad_id, campaign_id,
//!   second)`; the row's position (`row_idx`, counted over all tenants in
//!   order) is its stable identity inside the batch.
//! * `user_hashes` of a row are distinct and at most `clicks` long.
//! * A tenant's `clicks` are exactly the clicks its `rows` count: as many
//!   records as the rows' clicks, spend summing to the rows' spend. The rows
//!   feed the near-real-time rollups; the records feed billing.
//! * `dims` re-count clicks of `clicks` by the dimensions the tenant's filter
//!   tagged them with: unique per `(ad_id, campaign_id, second, dimension,
//!   value)`, and a dimension's rows never count more clicks than the tenant
//!   has. `verdicts` count what the filter versions answered (rollout
//!   comparison): statistics about the clicks, not clicks.
//! * `low_watermark_ms`: after this batch, its edge accepts no click with an
//!   event time below it, and every click it accepted below it is in this
//!   batch or an earlier one.

mod canonical;
pub mod frame;

use rkyv::{Archive, Deserialize, Serialize};

/// Longest edge identifier accepted on the wire.
pub const MAX_EDGE_ID_LEN: usize = 128;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Stable name of the edge that sealed the batch.
    pub edge: String,
    /// Per-edge sequence number, strictly increasing, never reused.
    pub seq: u64,
    /// Wall clock at sealing, ms since the epoch (informational).
    pub sealed_at_ms: u64,
    /// See the module invariants; what lets the core call an hour final.
    pub low_watermark_ms: u64,
    /// The edge's write-ahead-log records `[wal_from, wal_to)` this batch
    /// holds: edge bookkeeping, and the batch's manifest.
    pub wal_from: u64,
    pub wal_to: u64,
    pub tenants: Vec<TenantRows>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantRows {
    pub tenant: String,
    pub rows: Vec<SecondRow>,
    pub clicks: Vec<ClickRecord>,
    pub refused: Vec<RefusedRecord>,
    pub dims: Vec<DimRow>,
    pub verdicts: Vec<VerdictRow>,
}

/// Clicks of one ad in one second with one value of a tenant-declared
/// dimension, as the tenant's filter tagged them (enrichment).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DimRow {
    pub ad_id: u64,
    pub campaign_id: u64,
    pub second: u32,
    pub dimension: String,
    pub value: String,
    pub clicks: u64,
    pub spend_micros: u64,
}

/// How a plugin rollout ran: clicks of one minute (edge wall clock) for
/// which the active and the candidate version answered these codes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerdictRow {
    /// Start of the minute, seconds since the epoch.
    pub minute: u32,
    pub active_version: u32,
    pub candidate_version: u32,
    /// [`MODE_SHADOW`] or [`MODE_CANARY`].
    pub mode: u8,
    /// Whether the candidate's verdict was the one applied (canary share).
    pub applied_candidate: bool,
    /// Codes as in the contract; [`CODE_FAILED`] when that version failed.
    pub active_code: u16,
    pub candidate_code: u16,
    pub clicks: u64,
}

pub const MODE_SHADOW: u8 = 1;
pub const MODE_CANARY: u8 = 2;
/// A version that failed on a batch answered nothing; recorded as this code.
pub const CODE_FAILED: u16 = u16::MAX;

/// Verdict of an accepted click: counted.
pub const VERDICT_COUNTED: u8 = 0;

/// One accepted click, for billing: counted once per `(tenant, id)` across
/// every edge, whatever the re-sends.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickRecord {
    /// 128-bit hash of `(tenant, click_id)`, in two halves.
    pub id_hi: u64,
    pub id_lo: u64,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub ts_ms: u64,
    pub cost_micros: u64,
    pub verdict: u8,
    /// Edge wall clock when the click was accepted.
    pub accepted_ms: u64,
}

impl ClickRecord {
    pub fn second(&self) -> u32 {
        (self.ts_ms / 1000) as u32
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RefusalReason {
    /// Event time older than the edge's watermark minus the allowed lateness.
    TooLate = 1,
    /// Event time too far ahead of the edge's clock.
    Future = 2,
    /// Dropped by the tenant's filter, with its reason code.
    Filtered = 3,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::TooLate => "too_late",
            RefusalReason::Future => "future",
            RefusalReason::Filtered => "filtered",
        }
    }
}

/// A well-formed click refused for its event time or dropped by its tenant's
/// filter: recorded, never silently dropped.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedRecord {
    pub id_hi: u64,
    pub id_lo: u64,
    pub ad_id: u64,
    pub ts_ms: u64,
    pub reason: RefusalReason,
    /// The filter's reason code (0 for the time refusals).
    pub code: u16,
    pub at_ms: u64,
}

/// Clicks of one ad in one second of event time, as counted by one edge.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecondRow {
    pub ad_id: u64,
    pub campaign_id: u64,
    /// Event-time second, seconds since the epoch.
    pub second: u32,
    pub clicks: u64,
    pub spend_micros: u64,
    /// Distinct 64-bit hashes of the user ids seen in this second.
    pub user_hashes: Vec<u64>,
}

/// Totals of a batch: row counts per part (what the commit protocol
/// probes for), and what the commit ledger records of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchTotals {
    pub rows: u32,
    pub click_records: u32,
    pub refused: u32,
    pub dims: u32,
    pub verdicts: u32,
    pub clicks: u64,
    /// Event-time range of the rows keyed by event time.
    pub min_second: u32,
    pub max_second: u32,
    /// The edge's clock (seconds) over refusals and verdict minutes: the
    /// rows keyed by when the edge decided, not by event time.
    pub min_decided: u32,
    pub max_decided: u32,
}

impl Batch {
    /// See [`ArchivedBatch::totals`].
    pub fn totals(&self) -> BatchTotals {
        frame::BatchArchive::of(self).batch().totals()
    }
}

impl ArchivedBatch {
    pub fn totals(&self) -> BatchTotals {
        let mut totals = BatchTotals { min_second: u32::MAX, min_decided: u32::MAX, ..BatchTotals::default() };
        for row in self.tenants.iter().flat_map(|t| t.rows.iter()) {
            totals.rows += 1;
            totals.clicks += row.clicks.to_native();
            totals.min_second = totals.min_second.min(row.second.to_native());
            totals.max_second = totals.max_second.max(row.second.to_native());
        }
        for t in self.tenants.iter() {
            totals.click_records += t.clicks.len() as u32;
            totals.refused += t.refused.len() as u32;
            totals.dims += t.dims.len() as u32;
            totals.verdicts += t.verdicts.len() as u32;
            let dims = t.dims.iter().map(|d| d.second.to_native());
            for s in t.clicks.iter().map(|c| c.second()).chain(t.refused.iter().map(|r| (r.ts_ms.to_native() / 1000) as u32)).chain(dims) {
                totals.min_second = totals.min_second.min(s);
                totals.max_second = totals.max_second.max(s);
            }
            for s in t.refused.iter().map(|r| (r.at_ms.to_native() / 1000) as u32).chain(t.verdicts.iter().map(|v| v.minute.to_native())) {
                totals.min_decided = totals.min_decided.min(s);
                totals.max_decided = totals.max_decided.max(s);
            }
        }
        if totals.min_second == u32::MAX {
            totals.min_second = 0;
        }
        if totals.min_decided == u32::MAX {
            totals.min_decided = 0;
        }
        totals
    }

    /// Rows with their stable index inside the batch.
    pub fn indexed_rows(&self) -> impl Iterator<Item = (u32, &str, &ArchivedSecondRow)> {
        indexed(&self.tenants, |t| &t.rows)
    }

    /// Click records with their stable index inside the batch.
    pub fn indexed_clicks(&self) -> impl Iterator<Item = (u32, &str, &ArchivedClickRecord)> {
        indexed(&self.tenants, |t| &t.clicks)
    }

    /// Refused records with their stable index inside the batch.
    pub fn indexed_refused(&self) -> impl Iterator<Item = (u32, &str, &ArchivedRefusedRecord)> {
        indexed(&self.tenants, |t| &t.refused)
    }

    /// Dimension rows with their stable index inside the batch.
    pub fn indexed_dims(&self) -> impl Iterator<Item = (u32, &str, &ArchivedDimRow)> {
        indexed(&self.tenants, |t| &t.dims)
    }

    /// Rollout verdict counts with their stable index inside the batch.
    pub fn indexed_verdicts(&self) -> impl Iterator<Item = (u32, &str, &ArchivedVerdictRow)> {
        indexed(&self.tenants, |t| &t.verdicts)
    }
}

impl ArchivedClickRecord {
    pub fn second(&self) -> u32 {
        (self.ts_ms.to_native() / 1000) as u32
    }
}

impl ArchivedRefusalReason {
    pub fn to_native(&self) -> RefusalReason {
        match self {
            ArchivedRefusalReason::TooLate => RefusalReason::TooLate,
            ArchivedRefusalReason::Future => RefusalReason::Future,
            ArchivedRefusalReason::Filtered => RefusalReason::Filtered,
        }
    }
}

fn indexed<'a, T: 'a>(
    tenants: &'a [ArchivedTenantRows],
    part: impl Fn(&'a ArchivedTenantRows) -> &'a rkyv::vec::ArchivedVec<T> + 'a,
) -> impl Iterator<Item = (u32, &'a str, &'a T)> + 'a {
    tenants.iter().flat_map(move |t| part(t).iter().map(move |r| (t.tenant.as_str(), r))).enumerate().map(|(i, (tenant, item))| (i as u32, tenant, item))
}

#[cfg(test)]
mod tests;
