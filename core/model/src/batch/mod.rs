//! A batch: what one edge sealed at one moment, identified by `(edge, seq)`.
//!
//! Invariants the core relies on:
//! * `(edge, seq)` names exactly one content forever. An edge never reuses a
//!   sequence number for different rows; a re-send is byte-identical.
//! * Within a batch, rows of one tenant are unique per `(ad_id, campaign_id,
//!   second)`; the row's position (`row_idx`, counted over all tenants in
//!   order) is its stable identity inside the batch.
//! * `user_hashes` of a row are distinct and at most `clicks` long.

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
    pub tenants: Vec<TenantRows>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TenantRows {
    pub tenant: String,
    pub rows: Vec<SecondRow>,
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

/// Totals of a batch, recorded in the commit ledger and used to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchTotals {
    pub rows: u32,
    pub clicks: u64,
    pub min_second: u32,
    pub max_second: u32,
}

impl Batch {
    pub fn totals(&self) -> BatchTotals {
        let mut totals = BatchTotals { min_second: u32::MAX, ..BatchTotals::default() };
        for row in self.tenants.iter().flat_map(|t| t.rows.iter()) {
            totals.rows += 1;
            totals.clicks += row.clicks;
            totals.min_second = totals.min_second.min(row.second);
            totals.max_second = totals.max_second.max(row.second);
        }
        if totals.rows == 0 {
            totals.min_second = 0;
        }
        totals
    }

    /// Rows with their stable index inside the batch.
    pub fn indexed_rows(&self) -> impl Iterator<Item = (u32, &str, &SecondRow)> {
        self.tenants
            .iter()
            .flat_map(|t| t.rows.iter().map(move |r| (t.tenant.as_str(), r)))
            .enumerate()
            .map(|(i, (tenant, row))| (i as u32, tenant, row))
    }
}

#[cfg(test)]
mod tests;
