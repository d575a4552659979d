//! The tenant's series across all its ads and campaigns (`GET /v1/clicks`).
//!
//! Steps of a minute or more read the campaign rollups (`campaigns_by_*`,
//! migration 0007), sorted `(tenant, time, ...)`: a window selects only its
//! buckets, with every campaign and ad in them; totals read them through a
//! read plan (day rows for whole days, finer ones at the ragged edges).
//! 1s reads the landing table. Users per bucket and in the total are one
//! merge of the HLL states of every ad: a union (a user who clicked two ads
//! counts once), never a sum. Filtered clicks come from the refused rollups,
//! sorted by ad first, so that read scans the tenant's refused rows in the
//! range's months; refused clicks are few next to clicks.

use super::filters::FilteredPoint;
use super::sql;
use super::store::{bind_plan, err, Point, Totals};
use super::{Store, StoreError};
use crate::read_plan::Plan;
use crate::resolution::Resolution;

impl Store {
    /// The tenant's buckets with clicks in `[from, to)` (aligned to the step).
    pub async fn tenant_series(&self, tenant: &str, from: u32, to: u32, step: Resolution) -> Result<Vec<Point>, StoreError> {
        let sql = match step.rollup() {
            None => sql::TENANT_SERIES_SECOND.to_string(),
            Some((_, bucket, _)) => sql::TENANT_SERIES.replace("{bucket}", bucket),
        };
        self.db.query(&sql).bind(tenant).bind(from).bind(to).fetch_all().await.map_err(err("querying the tenant's series"))
    }

    /// The tenant's totals over `[from, to)` from the landing table alone
    /// (what its per-second series read).
    pub async fn tenant_second_totals(&self, tenant: &str, from: u32, to: u32) -> Result<Totals, StoreError> {
        let query = self.db.query(sql::TENANT_TOTAL_SECOND).bind(tenant).bind(from).bind(to);
        query.fetch_one().await.map_err(err("querying the tenant's totals"))
    }

    /// The tenant's totals over the plan's range (1m or coarser).
    pub async fn tenant_totals(&self, tenant: &str, plan: &Plan) -> Result<Totals, StoreError> {
        let query = bind_plan(self.db.query(sql::TENANT_TOTALS), "tenant totals", plan, &Resolution::ROLLUPS_COARSEST_FIRST, |q| q.bind(tenant))?;
        query.fetch_one().await.map_err(err("querying the tenant's totals"))
    }

    /// The tenant's filtered clicks per bucket in `[from, to)`; `None` for
    /// 1s steps (the refused rollups start at a minute).
    pub async fn tenant_filtered(&self, tenant: &str, from: u32, to: u32, step: Resolution) -> Result<Option<Vec<FilteredPoint>>, StoreError> {
        let Some((_, bucket, _)) = step.rollup() else { return Ok(None) };
        let sql = sql::TENANT_FILTERED.replace("{bucket}", bucket);
        let rows = self.db.query(&sql).bind(tenant).bind(from).bind(to).fetch_all().await.map_err(err("querying the tenant's filtered clicks"))?;
        Ok(Some(rows))
    }
}
