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

/// Dedup key of "this click id was refused for its event time": the id's
/// key in another key space, so a re-sent refused click is still judged
/// anew (a future click may be in range by then) but recorded as refused
/// only once (`/v1/refused` counts clicks, not refusal answers).
pub fn time_refusal_key(key: u128) -> u128 {
    key ^ 0x7e3f_a9c1_52d8_406b_9b1e_c4f7_0a63_d285
}

impl WalRecord {
    /// The dedup keys this record decided, with the time of their first
    /// sighting: its clicks and its filtered refusals by their ids, its
    /// event-time refusals by [`time_refusal_key`].
    pub fn sightings(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        let key = |hi: u64, lo: u64| (hi as u128) << 64 | lo as u128;
        let clicks = self.clicks.iter().map(move |c| (key(c.record.id_hi, c.record.id_lo), c.record.accepted_ms));
        let refused = self.refused.iter().map(move |r| match r.reason {
            RefusalReason::Filtered => (key(r.id_hi, r.id_lo), r.at_ms),
            RefusalReason::TooLate | RefusalReason::Future => (time_refusal_key(key(r.id_hi, r.id_lo)), r.at_ms),
        });
        clicks.chain(refused)
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
