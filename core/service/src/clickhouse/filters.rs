//! Queries about tenant filters: filtered clicks (also per reason),
//! enrichment dimensions and plugin rollout comparisons. Rollup steps only: none of these reads
//! per-click tables.

use serde::{Deserialize, Serialize};

use super::sql;
use super::store::{bind_plan, err};
use super::{Store, StoreError};
use crate::read_plan::Plan;
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

impl Store {
    /// Filtered clicks of an ad per bucket in `[from, to)`; `None` for 1s steps.
    pub async fn filtered_series(&self, tenant: &str, ad_id: u64, from: u32, to: u32, step: Resolution) -> Result<Option<Vec<FilteredPoint>>, StoreError> {
        let Some((_, bucket, _)) = step.rollup() else { return Ok(None) };
        let sql = sql::SERIES_FILTERED.replace("{bucket}", bucket);
        let rows = self.db.query(&sql).bind(tenant).bind(ad_id).bind(from).bind(to).fetch_all().await.map_err(err("querying filtered clicks"))?;
        Ok(Some(rows))
    }

    /// Clicks per value of a dimension over the plan's range (1m or
    /// coarser), most clicked first. Reads `dimension_values_by_*` (one row
    /// per value and bucket, no ad_id), so the rows read grow with the
    /// dimension's values, not with the tenant's ads.
    pub async fn dimension_values(&self, tenant: &str, dimension: &str, plan: &Plan, limit: u32) -> Result<Vec<DimensionValue>, StoreError> {
        let query =
            bind_plan(self.db.query(sql::DIMENSION_VALUES), "dimension values", plan, &Resolution::ROLLUPS_COARSEST_FIRST, |q| q.bind(tenant).bind(dimension))?;
        query.bind(limit).fetch_all().await.map_err(err("querying a dimension"))
    }

    /// A tenant's refused clicks per reason over the plan's range (1m or
    /// coarser), most first.
    pub async fn refused_reasons(&self, tenant: &str, plan: &Plan, limit: u32) -> Result<Vec<ReasonCount>, StoreError> {
        let query = bind_plan(self.db.query(sql::REFUSED_REASONS), "refused reasons", plan, &Resolution::ROLLUPS_COARSEST_FIRST, |q| q.bind(tenant))?;
        query.bind(limit).fetch_all().await.map_err(err("querying refused reasons"))
    }

    pub async fn billing_filtered(&self, tenant: &str, from: u32, to: u32) -> Result<Vec<FilteredHour>, StoreError> {
        let query = self.db.query(sql::BILLING_FILTERED).bind(tenant).bind(from).bind(to).bind(tenant).bind(from).bind(to).bind(tenant).bind(from).bind(to);
        query.fetch_all().await.map_err(err("reading filtered clicks for billing"))
    }

    pub async fn plugin_comparison(&self, tenant: &str, from: u32, to: u32) -> Result<Vec<VerdictCount>, StoreError> {
        self.db.query(sql::PLUGIN_COMPARISON).bind(tenant).bind(from).bind(to).fetch_all().await.map_err(err("reading plugin verdicts"))
    }
}
