//! Per-second pre-aggregation by event time, plus the per-click records.
//!
//! Clicks are summed per `(tenant, ad, campaign, second of ts)` between two
//! seals, and again per declared dimension value the tenant's filter tagged
//! them with; the same clicks are also kept as compact records for billing,
//! and refused (too late / future / filtered) clicks as refusal records.
//! Rollout verdict counts are summed per minute and version pair. An out-of-order
//! click simply lands in its own second's row; since ClickHouse sums rows of
//! the same key, a second that appears in several batches is still counted
//! right. Sans-IO and deterministic: `seal` returns tenants and rows in a
//! fixed order and records in the order they were added, so the same WAL
//! records always make the same batch.

use std::collections::{BTreeMap, HashMap};

use tally_model::batch::{DimRow, RefusedRecord, SecondRow, TenantRows, VerdictRow};
use tally_model::tenant::TenantId;

use crate::ingest::record::WalRecord;
use crate::map_hash::MapHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RowKey {
    ad_id: u64,
    campaign_id: u64,
    second: u32,
}

#[derive(Debug, Default)]
struct Acc {
    clicks: u64,
    spend_micros: u64,
    user_hashes: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct DimKey {
    ad_id: u64,
    campaign_id: u64,
    second: u32,
    dimension: String,
    value: String,
}

#[derive(Debug, Default)]
struct TenantAcc {
    rows: HashMap<RowKey, Acc, MapHash>,
    dims: HashMap<DimKey, (u64, u64), MapHash>,
    /// Verdict rows keyed with `clicks` zeroed.
    verdicts: HashMap<VerdictRow, u64>,
    clicks: Vec<tally_model::batch::ClickRecord>,
    refused: Vec<RefusedRecord>,
}

#[derive(Debug, Default)]
pub struct Aggregator {
    tenants: HashMap<TenantId, TenantAcc>,
    clicks: u64,
}

impl Aggregator {
    fn tenant(&mut self, tenant: &TenantId) -> &mut TenantAcc {
        if !self.tenants.contains_key(tenant) {
            self.tenants.insert(tenant.clone(), TenantAcc::default());
        }
        self.tenants.get_mut(tenant).expect("inserted above")
    }

    /// Adds a durable WAL record: its clicks, tags, refusals and verdicts.
    pub fn add_record(&mut self, tenant: &TenantId, record: &WalRecord) {
        self.clicks += record.clicks.len() as u64;
        let t = self.tenant(tenant);
        for click in &record.clicks {
            let c = &click.record;
            let acc = t.rows.entry(RowKey { ad_id: c.ad_id, campaign_id: c.campaign_id, second: c.second() }).or_default();
            acc.clicks += 1;
            acc.spend_micros = acc.spend_micros.saturating_add(c.cost_micros);
            if let Some(u) = click.user_hash {
                acc.user_hashes.push(u);
            }
        }
        t.clicks.extend(record.clicks.iter().map(|c| c.record));
        for tag in &record.tags {
            let Some(c) = record.clicks.get(tag.click as usize).map(|c| &c.record) else { continue };
            let key = DimKey { ad_id: c.ad_id, campaign_id: c.campaign_id, second: c.second(), dimension: tag.dimension.clone(), value: tag.value.clone() };
            let acc = t.dims.entry(key).or_default();
            acc.0 += 1;
            acc.1 = acc.1.saturating_add(c.cost_micros);
        }
        t.refused.extend_from_slice(&record.refused);
        for v in &record.verdicts {
            *t.verdicts.entry(VerdictRow { clicks: 0, ..*v }).or_default() += v.clicks;
        }
    }

    /// Clicks added since the last seal.
    pub fn pending_clicks(&self) -> u64 {
        self.clicks
    }

    /// Takes everything added since the last seal, tenants and rows sorted.
    pub fn seal(&mut self) -> Vec<TenantRows> {
        self.clicks = 0;
        let tenants: BTreeMap<TenantId, TenantAcc> = self.tenants.drain().collect();
        tenants
            .into_iter()
            .map(|(tenant, acc)| {
                let rows = sorted(acc.rows)
                    .into_iter()
                    .map(|(k, mut acc)| {
                        acc.user_hashes.sort_unstable();
                        acc.user_hashes.dedup();
                        SecondRow {
                            ad_id: k.ad_id,
                            campaign_id: k.campaign_id,
                            second: k.second,
                            clicks: acc.clicks,
                            spend_micros: acc.spend_micros,
                            user_hashes: acc.user_hashes,
                        }
                    })
                    .collect();
                let dims = sorted(acc.dims)
                    .into_iter()
                    .map(|(k, (clicks, spend_micros))| DimRow {
                        ad_id: k.ad_id,
                        campaign_id: k.campaign_id,
                        second: k.second,
                        dimension: k.dimension,
                        value: k.value,
                        clicks,
                        spend_micros,
                    })
                    .collect();
                let verdicts = sorted(acc.verdicts).into_iter().map(|(k, clicks)| VerdictRow { clicks, ..k }).collect();
                TenantRows { tenant: tenant.to_string(), rows, clicks: acc.clicks, refused: acc.refused, dims, verdicts }
            })
            .collect()
    }
}

/// A map's entries in key order (keys are unique: no stable sort needed).
fn sorted<K: Ord, V, S>(map: HashMap<K, V, S>) -> Vec<(K, V)> {
    let mut entries: Vec<(K, V)> = map.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[cfg(test)]
mod tests;
