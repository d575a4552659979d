//! What one admitted request leaves behind: the record the WAL makes
//! durable, the aggregator applies and a batch seals. The pipeline's
//! vocabulary; the spool stores it without looking inside.
//!
//! Its rkyv layout is part of the spool's format: changing it bumps
//! `spool::FORMAT`.

use rkyv::{Archive, Deserialize, Serialize};

use tally_model::batch::{ClickRecord, RefusalReason, RefusedRecord, VerdictRow};

/// One admitted request of one tenant.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    pub lsn: u64,
    pub tenant: String,
    pub clicks: Vec<WalClick>,
    pub refused: Vec<RefusedRecord>,
    /// Enrichment of `clicks` by the tenant's filter.
    pub tags: Vec<WalTag>,
    /// What the plugin versions in rollout answered for this request.
    pub verdicts: Vec<VerdictRow>,
}

impl WalRecord {
    /// The click ids this record decided, as dedup keys with the time of
    /// their first sighting: its clicks and its filtered refusals (a click
    /// refused for its event time was never known to dedup).
    pub fn sightings(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        let key = |hi: u64, lo: u64| (hi as u128) << 64 | lo as u128;
        let clicks = self.clicks.iter().map(move |c| (key(c.record.id_hi, c.record.id_lo), c.record.accepted_ms));
        let filtered = self.refused.iter().filter(|r| r.reason == RefusalReason::Filtered).map(move |r| (key(r.id_hi, r.id_lo), r.at_ms));
        clicks.chain(filtered)
    }
}

/// Dimension `dimension` = `value` on click `clicks[click]` of the record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WalTag {
    pub click: u32,
    pub dimension: String,
    pub value: String,
}

/// A click as the aggregator needs it: the billing record plus the user.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalClick {
    pub record: ClickRecord,
    pub user_hash: Option<u64>,
}
