//! Reconciliation of billing, dashboards and the edges' manifests.
//!
//! For every `(tenant, hour)` in a range it sets side by side:
//! * `landing`: clicks in the per-second landing table (each edge's count);
//! * `rollup`: the hourly rollup the dashboards read (must equal landing:
//!   a difference is drift, e.g. a materialized view insert that failed
//!   after its landing part was written);
//! * `billing`: clicks and spend counted once per click id across edges
//!   (at most landing, never negative; the difference is clicks that
//!   reached several edges); billing above landing, in clicks or in spend,
//!   is an error: money counted that no edge counted;
//! * the same landing/rollup pair for refused clicks (`filtered` on the
//!   dashboards), for enrichment dimensions (against `dimensions_by_hour`
//!   and, without ad ids, `dimension_values_by_hour`) and for the campaign
//!   rollup (the landing table's clicks and spend against `campaigns_by_hour`).
//!
//! and whether each hour is final for billing, or which edges hold it back
//! (their watermark has not passed its end; retired edges never do);
//! and for every committed batch, the click records its manifest promised
//! against the records found. [`Report::ok`] is false on any drift, any
//! billing above landing or any manifest mismatch.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clickhouse::store::Family;
use crate::clickhouse::{Store, StoreError};

/// A landing table's hour next to its rollup's.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Pair {
    pub landing: u64,
    pub rollup: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HourCheck {
    pub tenant: String,
    /// Hour start, seconds since the epoch.
    pub hour: u32,
    pub landing_clicks: u64,
    pub rollup_clicks: u64,
    pub billing_clicks: i64,
    pub landing_spend_micros: u64,
    pub rollup_spend_micros: u64,
    pub billing_spend_micros: i64,
    /// Refused clicks (filtered and out of time).
    pub refused: Pair,
    pub dimension_clicks: Pair,
    pub dimension_spend_micros: Pair,
    /// Billing has marked the hour final.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Not final: the unretired edges whose committed watermark has not
    /// passed the hour's end (empty: the finalizer marks it at its next pass).
    pub held_back_by: Vec<String>,
    /// The campaign rollup's clicks and spend (its landing side is
    /// `landing_clicks` / `landing_spend_micros`).
    pub campaign_rollup_clicks: u64,
    pub campaign_rollup_spend_micros: u64,
    /// The dimension value rollup's clicks and spend (its landing side is
    /// `dimension_clicks.landing` / `dimension_spend_micros.landing`).
    pub dimension_value_rollup_clicks: u64,
    pub dimension_value_rollup_spend_micros: u64,
}

impl HourCheck {
    /// The families whose rollup disagrees with their landing table.
    pub fn drift(&self) -> Vec<Family> {
        let clicks = self.landing_clicks != self.rollup_clicks || self.landing_spend_micros != self.rollup_spend_micros;
        let refused = self.refused.landing != self.refused.rollup;
        let dims = self.dimension_clicks.landing != self.dimension_clicks.rollup || self.dimension_spend_micros.landing != self.dimension_spend_micros.rollup;
        let campaigns = self.landing_clicks != self.campaign_rollup_clicks || self.landing_spend_micros != self.campaign_rollup_spend_micros;
        let dim_values = self.dimension_clicks.landing != self.dimension_value_rollup_clicks
            || self.dimension_spend_micros.landing != self.dimension_value_rollup_spend_micros;
        [(Family::Clicks, clicks), (Family::Refused, refused), (Family::Dimensions, dims), (Family::Campaigns, campaigns), (Family::DimensionValues, dim_values)]
            .into_iter()
            .filter(|d| d.1)
            .map(|d| d.0)
            .collect()
    }

    /// Billing counts what no edge counted (clicks or spend), or below zero.
    pub fn billing_exceeds_landing(&self) -> bool {
        let (clicks, spend) = (self.billing_clicks, self.billing_spend_micros);
        clicks < 0 || spend < 0 || clicks as u64 > self.landing_clicks || spend as u64 > self.landing_spend_micros
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BatchCheck {
    pub edge: String,
    pub seq: u64,
    pub manifest_records: u64,
    pub records_found: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub from: u32,
    pub to: u32,
    pub hours: Vec<HourCheck>,
    pub batches_checked: usize,
    pub batch_mismatches: Vec<BatchCheck>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.batch_mismatches.is_empty() && self.hours.iter().all(|h| h.drift().is_empty() && !h.billing_exceeds_landing())
    }
}

pub async fn reconcile(store: &Store, from: u32, to: u32) -> Result<Report, StoreError> {
    let mut hours: BTreeMap<(String, u32), HourCheck> = BTreeMap::new();
    fn entry<'a>(hours: &'a mut BTreeMap<(String, u32), HourCheck>, tenant: &str, hour: u32) -> &'a mut HourCheck {
        hours.entry((tenant.to_string(), hour)).or_insert_with(|| HourCheck { tenant: tenant.into(), hour, ..HourCheck::default() })
    }
    for family in Family::ALL {
        for (tenant, t) in store.landing_hours(family, from, to).await? {
            let e = entry(&mut hours, &tenant, t.hour);
            match family {
                Family::Clicks => (e.landing_clicks, e.landing_spend_micros) = (t.clicks, t.spend_micros),
                Family::Refused => e.refused.landing = t.clicks,
                Family::Dimensions => (e.dimension_clicks.landing, e.dimension_spend_micros.landing) = (t.clicks, t.spend_micros),
                // The landing tables of the click and dimension families, set above.
                Family::Campaigns | Family::DimensionValues => {}
            }
        }
        for (tenant, t) in store.rollup_hours(family, from, to).await? {
            let e = entry(&mut hours, &tenant, t.hour);
            match family {
                Family::Clicks => (e.rollup_clicks, e.rollup_spend_micros) = (t.clicks, t.spend_micros),
                Family::Refused => e.refused.rollup = t.clicks,
                Family::Dimensions => (e.dimension_clicks.rollup, e.dimension_spend_micros.rollup) = (t.clicks, t.spend_micros),
                Family::Campaigns => (e.campaign_rollup_clicks, e.campaign_rollup_spend_micros) = (t.clicks, t.spend_micros),
                Family::DimensionValues => (e.dimension_value_rollup_clicks, e.dimension_value_rollup_spend_micros) = (t.clicks, t.spend_micros),
            }
        }
    }
    for b in store.billing_live_all(from, to).await? {
        let e = entry(&mut hours, &b.tenant, b.hour);
        e.billing_clicks += b.clicks;
        e.billing_spend_micros += b.spend_micros;
    }
    let final_hours = store.final_hours(from, to).await?;
    let (watermarks, retirements) = tokio::try_join!(store.edge_watermarks(), store.edge_retirements())?;
    let watermarks = crate::edges::status::unretired(watermarks, &retirements);
    for h in hours.values_mut() {
        h.is_final = final_hours.contains(&h.hour);
        if !h.is_final {
            h.held_back_by = crate::edges::status::held_back_by(h.hour, &watermarks);
        }
    }
    let manifests = store.manifests(from, to).await?;
    let mut batch_mismatches = Vec::new();
    if let (Some(lo), Some(hi)) = (manifests.iter().map(|m| m.lo).min(), manifests.iter().map(|m| m.hi).max()) {
        let found: BTreeMap<(String, u64), u64> = store.batch_records(lo, hi).await?.into_iter().map(|r| ((r.edge, r.seq), r.records)).collect();
        for m in &manifests {
            let records_found = found.get(&(m.edge.clone(), m.seq)).copied().unwrap_or(0);
            if records_found != m.records as u64 {
                batch_mismatches.push(BatchCheck { edge: m.edge.clone(), seq: m.seq, manifest_records: m.records as u64, records_found });
            }
        }
    }
    Ok(Report { from, to, hours: hours.into_values().collect(), batches_checked: manifests.len(), batch_mismatches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_above_landing_in_clicks_or_spend_is_an_error() {
        let ok = HourCheck {
            landing_clicks: 3,
            rollup_clicks: 3,
            billing_clicks: 2,
            landing_spend_micros: 30,
            rollup_spend_micros: 30,
            billing_spend_micros: 20,
            ..Default::default()
        };
        assert!(!ok.billing_exceeds_landing());
        assert!(HourCheck { billing_spend_micros: 31, ..ok.clone() }.billing_exceeds_landing(), "spend billed that no edge counted");
        assert!(HourCheck { billing_clicks: 4, ..ok.clone() }.billing_exceeds_landing());
        assert!(HourCheck { billing_spend_micros: i64::MIN, ..ok.clone() }.billing_exceeds_landing(), "a wrapped sum");
        let report = Report { hours: vec![HourCheck { billing_spend_micros: -2, ..ok }], ..Default::default() };
        assert!(!report.ok());
    }
}
