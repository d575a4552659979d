//! `GET /v1/clicks?from=&to=&step=` (read key): the tenant's series across
//! all its ads and campaigns, what the dashboard's tiles and main chart show
//! until an ad or campaign is picked. Same shape as `/v1/ads/{ad}/clicks`
//! without `ad_id`: dense points, totals, and filtered clicks for steps of a
//! minute or more. Read from rollups (`clickhouse::tenant_series`), 1s from
//! the landing table; the tenant is always the key's.

use http::StatusCode;
use serde::Serialize;

use tally_http::{reply, RequestBody, Response};
use tally_model::timestamp::now_ms;

use super::dense_series::{dense, DenseSeries, PointOut};
use super::params::{parse_range, step_name};
use super::routes::{storage_error, Api};
use crate::clickhouse::store::Totals;
use crate::read_plan::Plan;
use crate::resolution::Resolution;

#[derive(Serialize)]
struct TenantSeries {
    step: &'static str,
    from: u64,
    to: u64,
    points: Vec<PointOut>,
    total: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_filtered: Option<u64>,
}

impl Api {
    #[tracing::instrument(name = "query_tenant_clicks", skip_all)]
    pub(super) async fn tenant_clicks(&self, req: &http::Request<RequestBody>) -> Response {
        let tenant = match self.tenant(req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let range = match parse_range(req.uri().query(), Resolution::Minute, now_ms()) {
            Ok(r) => r,
            Err(reason) => return reply::error(StatusCode::BAD_REQUEST, reason),
        };
        let series = self.store.tenant_series(tenant.as_str(), range.from, range.to, range.step);
        let filtered = self.store.tenant_filtered(tenant.as_str(), range.from, range.to, range.step);
        let (series, filtered) = match tokio::try_join!(series, filtered) {
            Ok(found) => found,
            Err(e) => return storage_error(e),
        };
        // As for an ad's series, `users` is read after the points.
        let total = match range.step {
            Resolution::Second => self.store.tenant_second_totals(tenant.as_str(), range.from, range.to).await,
            _ => {
                let plan = Plan::new(range.from, range.to, Resolution::Minute).expect("a range is aligned to its step");
                self.store.tenant_totals(tenant.as_str(), &plan).await
            }
        };
        let users = match total {
            Ok(t) => t.users,
            Err(e) => return storage_error(e),
        };
        let DenseSeries { points, total, total_filtered } = dense(range.buckets(), series, filtered.as_deref(), users);
        let (from, to) = (range.from as u64 * 1000, range.to as u64 * 1000);
        reply::json(StatusCode::OK, &TenantSeries { step: step_name(range.step), from, to, points, total, total_filtered })
    }
}
