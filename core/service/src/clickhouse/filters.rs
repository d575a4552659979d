//! Queries about tenant filters: filtered clicks (also per reason),
//! enrichment dimensions and plugin rollout comparisons. Rollup steps only: none of these reads
//! per-click tables.

use serde::{Deserialize, Serialize};

use super::sql;
use super::store::err;
use super::{Store, StoreError};
use crate::resolution::Resolution;

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct FilteredPoint {
    pub t: u32,
    pub filtered: u64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct DimensionValue {
    pub value: String,
    pub clicks: u64,
    pub spend_micros: u64,
}

/// Refused clicks of one reason: `filtered:<code>` per filter reason code,
/// `too_late`, `future`.
#[derive(Debug, Clone, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReasonCount {
    pub reason: String,
    pub clicks: u64,
}

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct FilteredHour {
    pub hour: u32,
    pub ad_id: u64,
    pub filtered: u64,
}

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct VerdictCount {
    pub active_version: u32,
    pub candidate_version: u32,
    pub mode: u8,
    pub applied_candidate: u8,
    pub active_code: u16,
    pub candidate_code: u16,
    pub clicks: u64,
}

/// The bucket column (and table suffix) of a rollup step.
fn bucket(step: Resolution) -> Result<&'static str, String> {
    step.rollup().map(|(_, bucket, _)| bucket).ok_or_else(|| "filtered clicks and dimensions have steps of 1m, 1h or 1d".to_string())
}

impl Store {
    /// Filtered clicks of an ad per bucket in `[from, to)`; `None` for 1s steps.
    pub async fn filtered_series(&self, tenant: &str, ad_id: u64, from: u32, to: u32, step: Resolution) -> Result<Option<Vec<FilteredPoint>>, StoreError> {
        let Ok(bucket) = bucket(step) else { return Ok(None) };
        let sql = sql::SERIES_FILTERED.replace("{bucket}", bucket);
        let rows = self.db.query(&sql).bind(tenant).bind(ad_id).bind(from).bind(to).fetch_all().await.map_err(err("querying filtered clicks"))?;
        Ok(Some(rows))
    }

    /// Clicks per value of a dimension in `[from, to)`, most clicked first.
    pub async fn dimension_values(
        &self,
        tenant: &str,
        dimension: &str,
        from: u32,
        to: u32,
        step: Resolution,
        limit: u32,
    ) -> Result<Result<Vec<DimensionValue>, String>, StoreError> {
        let bucket = match bucket(step) {
            Ok(b) => b,
            Err(reason) => return Ok(Err(reason)),
        };
        let sql = sql::DIMENSION_VALUES.replace("{bucket}", bucket);
        let rows = self.db.query(&sql).bind(tenant).bind(dimension).bind(from).bind(to).bind(limit).fetch_all().await.map_err(err("querying a dimension"))?;
        Ok(Ok(rows))
    }

    /// A tenant's refused clicks per reason in `[from, to)`, most first.
    pub async fn refused_reasons(
        &self,
        tenant: &str,
        from: u32,
        to: u32,
        step: Resolution,
        limit: u32,
    ) -> Result<Result<Vec<ReasonCount>, String>, StoreError> {
        let bucket = match bucket(step) {
            Ok(b) => b,
            Err(reason) => return Ok(Err(reason)),
        };
        let sql = sql::REFUSED_REASONS.replace("{bucket}", bucket);
        let rows = self.db.query(&sql).bind(tenant).bind(from).bind(to).bind(limit).fetch_all().await.map_err(err("querying refused reasons"))?;
        Ok(Ok(rows))
    }

    pub async fn billing_filtered(&self, tenant: &str, from: u32, to: u32) -> Result<Vec<FilteredHour>, StoreError> {
        let query = self.db.query(sql::BILLING_FILTERED).bind(tenant).bind(from).bind(to).bind(tenant).bind(from).bind(to);
        query.fetch_all().await.map_err(err("reading filtered clicks for billing"))
    }

    pub async fn plugin_comparison(&self, tenant: &str, from: u32, to: u32) -> Result<Vec<VerdictCount>, StoreError> {
        self.db.query(sql::PLUGIN_COMPARISON).bind(tenant).bind(from).bind(to).fetch_all().await.map_err(err("reading plugin verdicts"))
    }
}
