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

use super::params::{parse_range, step_name};
use super::routes::{storage_error, Api};
use crate::clickhouse::store::{Point, Totals};
use crate::read_plan::Plan;
use crate::resolution::Resolution;

#[derive(Serialize)]
struct PointOut {
    /// Bucket start, ms since the epoch.
    t: u64,
    clicks: u64,
    spend_micros: u64,
    users: u64,
    /// Clicks the tenant's filter dropped (steps of a minute or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    filtered: Option<u64>,
}

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
        // As for an ad's series: clicks and spend are summed from the points;
        // users are read after them, so they cover at least those clicks.
        let total = match range.step {
            Resolution::Second => self.store.tenant_second_totals(tenant.as_str(), range.from, range.to).await,
            _ => {
                let plan = Plan::new(range.from, range.to, Resolution::Minute).expect("a range is aligned to its step");
                self.store.tenant_totals(tenant.as_str(), &plan).await
            }
        };
        let mut total = match total {
            Ok(t) => t,
            Err(e) => return storage_error(e),
        };
        total.clicks = series.iter().map(|p| p.clicks).sum();
        total.spend_micros = series.iter().map(|p| p.spend_micros).sum();
        total.users = total.users.min(total.clicks);
        let filtered_at = |t: u32| filtered.as_ref().map(|f| f.iter().find(|p| p.t == t).map_or(0, |p| p.filtered));
        let total_filtered = filtered.as_ref().map(|f| f.iter().map(|p| p.filtered).sum());
        let mut found = series.into_iter().peekable();
        let points = range
            .buckets()
            .map(|t| {
                let p = match found.peek() {
                    Some(p) if p.t == t => found.next().expect("peeked"),
                    _ => Point { t, clicks: 0, spend_micros: 0, users: 0 },
                };
                let users = p.users.min(p.clicks);
                PointOut { t: p.t as u64 * 1000, clicks: p.clicks, spend_micros: p.spend_micros, users, filtered: filtered_at(t) }
            })
            .collect();
        let (from, to) = (range.from as u64 * 1000, range.to as u64 * 1000);
        reply::json(StatusCode::OK, &TenantSeries { step: step_name(range.step), from, to, points, total, total_filtered })
    }
}
