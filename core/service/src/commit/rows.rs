//! The rows a batch becomes, one struct per table it lands in, in that
//! table's column order (the `clickhouse` crate writes them positionally,
//! see `crate::clickhouse`). Every row carries the batch identity (`edge`,
//! `batch_seq`, `row_idx`) the commit protocol probes for.

use serde::Serialize;

/// A row of `tally.clicks_by_second`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct LandingRow {
    pub tenant: String,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub second: u32,
    pub clicks: u64,
    pub spend_micros: u64,
    pub user_hashes: Vec<u64>,
    pub edge: String,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.click_records`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct ClickRow {
    pub tenant: String,
    pub id_hi: u64,
    pub id_lo: u64,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub ts_ms: u64,
    pub second: u32,
    pub cost_micros: u64,
    pub verdict: u8,
    pub accepted_ms: u64,
    pub edge: String,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.refused_events`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct RefusedRow {
    pub tenant: String,
    pub id_hi: u64,
    pub id_lo: u64,
    pub ad_id: u64,
    pub ts_ms: u64,
    pub reason: String,
    pub at: u32,
    pub edge: String,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.click_dimensions`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct DimensionRow {
    pub tenant: String,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub second: u32,
    pub dimension: String,
    pub value: String,
    pub clicks: u64,
    pub spend_micros: u64,
    pub edge: String,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.plugin_verdicts`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct PluginVerdictRow {
    pub tenant: String,
    pub minute: u32,
    pub active_version: u32,
    pub candidate_version: u32,
    pub mode: u8,
    pub applied_candidate: u8,
    pub active_code: u16,
    pub candidate_code: u16,
    pub clicks: u64,
    pub edge: String,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.batches`, the commit ledger, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct LedgerRow {
    pub edge: String,
    pub seq: u64,
    pub state: u8,
    pub rows: u32,
    pub click_records: u32,
    pub refused: u32,
    pub clicks: u64,
    pub checksum: u64,
    pub min_second: u32,
    pub max_second: u32,
    pub low_watermark_ms: u64,
    pub recorded_at: u32,
}
