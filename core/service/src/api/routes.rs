use std::sync::Arc;

use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;

use tally_http::pinned::PinnedClients;
use tally_http::serve::{Handler, Peer};
use tally_http::{reply, RequestBody, Response};
use tally_model::tenant::{LiveTenants, Role, TenantId};
use tally_model::timestamp::now_ms;

use super::dense_series::{dense, DenseSeries, PointOut};
use super::params::{parse_limit, parse_range, step_name, Range};
use crate::clickhouse::store::{AdTotal, Totals};
use crate::clickhouse::Store;
use crate::metrics::{Metrics, RouteLabel, RouteOnlyLabel};
use crate::read_plan::Plan;
use crate::registry::Registry;
use crate::resolution::Resolution;

const DASHBOARD: &str = include_str!("dashboard/index.html");
const OPENAPI: &str = include_str!("../../../../deploy/openapi/core.json");

pub struct Api {
    /// As last (re)loaded: a reload (SIGHUP) replaces them.
    pub tenants: Arc<LiveTenants>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    /// What edges present to read the registry; `None`: they cannot.
    pub edge_token: Option<String>,
    /// Over TLS an edge must also present its enrolled key (as on the batch port).
    pub edges: Arc<PinnedClients>,
    /// Which edges exist, are connected, are retired (`crate::edges`).
    pub roster: Arc<crate::edges::Roster>,
    /// `[ops] token`: reads `/v1/edges`, retires edges.
    pub ops_token: Option<String>,
}

#[derive(Serialize)]
struct Series {
    ad_id: u64,
    step: &'static str,
    from: u64,
    to: u64,
    points: Vec<PointOut>,
    total: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_filtered: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct BilledAd {
    pub(super) ad_id: u64,
    pub(super) clicks: i64,
    pub(super) spend_micros: i64,
    /// Adjustment rows included (clicks that arrived after the hour was final).
    pub(super) adjustments: u64,
    /// Clicks of this ad and hour the tenant's filter dropped: not billed.
    pub(super) filtered: u64,
}

#[derive(Serialize)]
pub(super) struct BillingHour {
    /// Hour start, ms since the epoch.
    pub(super) hour: u64,
    /// True once no edge can add clicks to this hour; its numbers then come
    /// from the billing statements and change only through adjustments.
    #[serde(rename = "final")]
    pub(super) is_final: bool,
    pub(super) ads: Vec<BilledAd>,
}

#[derive(Serialize, Default)]
pub(super) struct BillingTotal {
    pub(super) clicks: i64,
    pub(super) spend_micros: i64,
    pub(super) filtered: u64,
}

#[derive(Serialize)]
struct Billing<'a> {
    from: u64,
    to: u64,
    hours: Vec<HourOut<'a>>,
    total: BillingTotal,
}

/// An hour of `GET /v1/billing` and, while it is not final, the edges whose
/// committed watermark has not passed its end (empty: every edge has, and
/// the finalizer marks it at its next pass).
#[derive(Serialize)]
struct HourOut<'a> {
    #[serde(flatten)]
    hour: &'a BillingHour,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_back_by: Option<Vec<String>>,
}

impl<'a> HourOut<'a> {
    fn new(hour: &'a BillingHour, watermarks: &[crate::clickhouse::store::EdgeWatermark]) -> HourOut<'a> {
        let held_back_by = (!hour.is_final).then(|| crate::edges::status::held_back_by((hour.hour / 1000) as u32, watermarks));
        HourOut { hour, held_back_by }
    }
}

#[derive(Serialize)]
struct TopAds {
    from: u64,
    to: u64,
    ads: Vec<AdTotal>,
}

impl Handler for Api {
    async fn handle(self: Arc<Self>, req: http::Request<RequestBody>, peer: Peer) -> Response {
        let started = std::time::Instant::now();
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (route, resp) = match (req.method(), segments.as_slice()) {
            (&Method::GET, ["v1", "ads", ad, "clicks"]) => ("clicks", self.clicks(&req, ad).await),
            (_, ["v1", "ads", _, "clicks"]) => ("clicks", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "ads"]) => ("top_ads", self.top_ads(&req).await),
            (&Method::GET, ["v1", "clicks"]) => ("tenant_clicks", self.tenant_clicks(&req).await),
            (_, ["v1", "clicks"]) => ("tenant_clicks", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "billing"]) => ("billing", self.billing(&req).await),
            (&Method::GET, ["v1", "billing", "campaigns"]) => ("billing_campaigns", self.campaign_billing(&req).await),
            (_, ["v1", "billing", "campaigns"]) => ("billing_campaigns", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "campaigns"]) => ("top_campaigns", self.top_campaigns(&req).await),
            (_, ["v1", "campaigns"]) => ("top_campaigns", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "campaigns", id, "clicks"]) => ("campaign_clicks", self.campaign_clicks(&req, id).await),
            (_, ["v1", "campaigns", _, "clicks"]) => ("campaign_clicks", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "campaigns", id, "ads"]) => ("campaign_ads", self.campaign_ads(&req, id).await),
            (_, ["v1", "campaigns", _, "ads"]) => ("campaign_ads", reply::method_not_allowed("GET")),
            (_, ["v1", "billing"]) => ("billing", reply::method_not_allowed("GET")),
            (_, ["v1", "ads"]) => ("top_ads", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "edges"]) => ("edges", self.edges(&req).await),
            (_, ["v1", "edges"]) => ("edges", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "edges", id]) => ("edge", self.edge_status(&req, id).await),
            (_, ["v1", "edges", _]) => ("edge", reply::method_not_allowed("GET")),
            (&Method::POST, ["v1", "edges", id, "retire"]) => ("edge_retire", self.retire(&req, id).await),
            (&Method::POST, ["v1", "edges", id, "reinstate"]) => ("edge_reinstate", self.reinstate(&req, id).await),
            (_, ["v1", "edges", _, "retire" | "reinstate"]) => ("edge_retire", reply::method_not_allowed("POST")),
            (&Method::GET, ["v1", "dimensions", name]) => ("dimensions", self.dimension(&req, name).await),
            (_, ["v1", "dimensions", _]) => ("dimensions", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "refused"]) => ("refused", self.refused(&req).await),
            (_, ["v1", "refused"]) => ("refused", reply::method_not_allowed("GET")),
            (&Method::POST, ["v1", "plugins"]) => ("plugin_push", self.push_plugin(req).await),
            (&Method::GET, ["v1", "plugins"]) => ("plugins", self.plugin_state(&req)),
            (_, ["v1", "plugins"]) => ("plugins", reply::method_not_allowed("GET, POST")),
            (&Method::POST, ["v1", "plugins", "rollout"]) => ("plugin_rollout", self.rollout(req).await),
            (_, ["v1", "plugins", "rollout"]) => ("plugin_rollout", reply::method_not_allowed("POST")),
            (&Method::GET, ["v1", "plugins", "comparison"]) => ("plugin_comparison", self.comparison(&req).await),
            (_, ["v1", "plugins", "comparison"]) => ("plugin_comparison", reply::method_not_allowed("GET")),
            (&Method::GET, ["v1", "registry", "manifest"]) => ("registry_manifest", self.manifest(&req, &peer)),
            (&Method::GET, ["v1", "registry", "blobs", sha]) => ("registry_blob", self.blob(&req, &peer, sha).await),
            (_, ["v1", "registry", "manifest"] | ["v1", "registry", "blobs", _]) => ("registry", reply::method_not_allowed("GET")),
            (&Method::GET, [""] | ["dashboard"]) => ("dashboard", dashboard()),
            (&Method::GET, ["static", name]) => ("static", super::assets::serve(name)),
            (_, ["static", _]) => ("static", reply::method_not_allowed("GET")),
            (&Method::GET, ["readyz"]) => ("readyz", self.readiness().await),
            (&Method::GET, ["healthz"]) => ("healthz", reply::with_type(StatusCode::OK, "ok\n".into(), "text/plain")),
            (&Method::GET, ["openapi.json"]) => ("openapi", reply::with_type(StatusCode::OK, OPENAPI.into(), "application/json")),
            (&Method::GET, ["metrics"]) => ("metrics", reply::metrics(&self.metrics.registry)),
            (_, ["healthz" | "readyz" | "metrics" | "" | "dashboard" | "openapi.json"]) => ("other", reply::method_not_allowed("GET")),
            _ => ("other", reply::not_found()),
        };
        self.metrics.http_requests.get_or_create(&RouteLabel { route, code: resp.status().as_u16() }).inc();
        self.metrics.http_request_seconds.get_or_create(&RouteOnlyLabel { route }).observe(started.elapsed().as_secs_f64());
        if matches!(resp.status(), StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT) && route != "readyz" {
            tracing::warn!(route, %path, status = resp.status().as_u16(), "answered without data: ClickHouse failed or was too slow (see the error above)");
        }
        resp
    }
}

impl Api {
    /// The caller's tenant, the `from`, `to`, `step` and `limit` of a query
    /// for the top entries of a range, and the plan that reads the range
    /// from tables no finer than `finest` (coarser ones where they fit).
    pub(super) fn ranked_query(&self, req: &http::Request<RequestBody>, finest: Resolution) -> Result<(TenantId, Range, Plan, u32), Response> {
        let tenant = self.tenant(req)?;
        let query = req.uri().query();
        let range = parse_range(query, Resolution::Minute, now_ms()).map_err(|reason| reply::error(StatusCode::BAD_REQUEST, reason))?;
        let limit = parse_limit(query).map_err(|reason| reply::error(StatusCode::BAD_REQUEST, reason))?;
        if range.step.seconds() < finest.seconds() {
            return Err(reply::error(StatusCode::BAD_REQUEST, "filtered clicks and dimensions have steps of 1m, 1h or 1d"));
        }
        let plan = Plan::new(range.from, range.to, finest).expect("a range is aligned to its step, no finer than `finest`");
        Ok((tenant, range, plan, limit))
    }

    pub(super) fn tenant(&self, req: &http::Request<RequestBody>) -> Result<TenantId, Response> {
        self.tenants.current().authenticate_bearer(reply::authorization(req.headers()), Role::Read).cloned().ok_or_else(|| {
            let mut resp = reply::error(StatusCode::UNAUTHORIZED, "missing or unknown read key (Authorization: Bearer <key>)");
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        })
    }

    #[tracing::instrument(name = "query_clicks", skip_all, fields(ad))]
    async fn clicks(&self, req: &http::Request<RequestBody>, ad: &str) -> Response {
        let tenant = match self.tenant(req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let Ok(ad_id) = ad.parse::<u64>() else {
            return reply::error(StatusCode::BAD_REQUEST, format!("ad_id {ad:?} is not an unsigned integer"));
        };
        let range = match parse_range(req.uri().query(), Resolution::Minute, now_ms()) {
            Ok(r) => r,
            Err(reason) => return reply::error(StatusCode::BAD_REQUEST, reason),
        };
        // `users` is read after the points (see `dense_series`).
        let series = self.store.series(tenant.as_str(), ad_id, range.from, range.to, range.step);
        let filtered = self.store.filtered_series(tenant.as_str(), ad_id, range.from, range.to, range.step);
        let (series, filtered) = match tokio::try_join!(series, filtered) {
            Ok(found) => found,
            Err(e) => return storage_error(e),
        };
        // Per-second series read the landing table only, and so do their
        // totals; others read the coarsest rollups that tile the range.
        let total = match range.step {
            Resolution::Second => self.store.second_totals(tenant.as_str(), ad_id, range.from, range.to).await,
            _ => {
                let plan = Plan::new(range.from, range.to, Resolution::Minute).expect("a range is aligned to its step");
                self.store.totals(tenant.as_str(), ad_id, &plan).await
            }
        };
        let users = match total {
            Ok(t) => t.users,
            Err(e) => return storage_error(e),
        };
        let DenseSeries { points, total, total_filtered } = dense(range.buckets(), series, filtered.as_deref(), users);
        reply::json(
            StatusCode::OK,
            &Series { ad_id, step: step_name(range.step), from: range.from as u64 * 1000, to: range.to as u64 * 1000, points, total, total_filtered },
        )
    }

    async fn top_ads(&self, req: &http::Request<RequestBody>) -> Response {
        let (tenant, range, plan, limit) = match self.ranked_query(req, Resolution::Second) {
            Ok(found) => found,
            Err(resp) => return resp,
        };
        match self.store.top_ads(tenant.as_str(), &plan, limit).await {
            Ok(ads) => reply::json(StatusCode::OK, &TopAds { from: range.from as u64 * 1000, to: range.to as u64 * 1000, ads }),
            Err(e) => storage_error(e),
        }
    }
}

impl Api {
    /// `GET /v1/dimensions/{name}?from=&to=&step=&limit=`: clicks per value
    /// of an enrichment dimension, most clicked first.
    async fn dimension(&self, req: &http::Request<RequestBody>, name: &str) -> Response {
        let (tenant, range, plan, limit) = match self.ranked_query(req, Resolution::Minute) {
            Ok(found) => found,
            Err(resp) => return resp,
        };
        match self.store.dimension_values(tenant.as_str(), name, &plan, limit).await {
            Ok(values) => reply::json(
                StatusCode::OK,
                &serde_json::json!({ "dimension": name, "from": range.from as u64 * 1000, "to": range.to as u64 * 1000, "values": values }),
            ),
            Err(e) => storage_error(e),
        }
    }

    /// Refused clicks per reason (`filtered:<code>` per filter reason code).
    async fn refused(&self, req: &http::Request<RequestBody>) -> Response {
        let (tenant, range, plan, limit) = match self.ranked_query(req, Resolution::Minute) {
            Ok(found) => found,
            Err(resp) => return resp,
        };
        match self.store.refused_reasons(tenant.as_str(), &plan, limit).await {
            Ok(reasons) => {
                reply::json(StatusCode::OK, &serde_json::json!({ "from": range.from as u64 * 1000, "to": range.to as u64 * 1000, "reasons": reasons }))
            }
            Err(e) => storage_error(e),
        }
    }

    /// Exact per-hour, per-ad billing: statements for final hours, live
    /// records (each click id once) for the others.
    #[tracing::instrument(name = "query_billing", skip_all)]
    async fn billing(&self, req: &http::Request<RequestBody>) -> Response {
        let tenant = match self.tenant(req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let range = match billing_range(req) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        match self.billed_hours(&tenant, range).await {
            Ok((hours, total)) => {
                let watermarks = match self.unretired_watermarks().await {
                    Ok(w) => w,
                    Err(resp) => return resp,
                };
                let hours = hours.iter().map(|h| HourOut::new(h, &watermarks)).collect();
                reply::json(StatusCode::OK, &Billing { from: range.from as u64 * 1000, to: range.to as u64 * 1000, hours, total })
            }
            Err(resp) => resp,
        }
    }

    /// Exact billing per hour and ad over `range` (hourly), and its total.
    pub(super) async fn billed_hours(&self, tenant: &TenantId, range: Range) -> Result<(Vec<BillingHour>, BillingTotal), Response> {
        // The finalizer writes an hour's statements before marking it final,
        // and reads are not one snapshot: the marks are read first, so an
        // hour shown final always has its statements.
        let final_hours = self.store.final_hours(range.from, range.to).await.map_err(storage_error)?;
        // Live billing groups every click record of the range by id, the
        // costliest read there is: a range of final hours only never needs it.
        let any_live = range.buckets().any(|hour| !final_hours.contains(&hour));
        let live = async {
            match any_live {
                true => self.store.billing_live(tenant.as_str(), range.from, range.to).await,
                false => Ok(Vec::new()),
            }
        };
        let fetched = tokio::try_join!(
            self.store.billing_statements(range.from, range.to),
            live,
            self.store.billing_filtered(tenant.as_str(), range.from, range.to),
        );
        let (billed, live, filtered) = fetched.map_err(storage_error)?;
        let mut total = BillingTotal::default();
        let hours = range
            .buckets()
            .map(|hour| {
                let is_final = final_hours.contains(&hour);
                let mut ads: Vec<BilledAd> = if is_final {
                    billed
                        .iter()
                        .filter(|b| b.hour == hour && b.tenant == tenant.as_str() && (b.clicks != 0 || b.spend_micros != 0))
                        .map(|b| BilledAd { ad_id: b.ad_id, clicks: b.clicks, spend_micros: b.spend_micros, adjustments: b.adjustments, filtered: 0 })
                        .collect()
                } else {
                    live.iter()
                        .filter(|l| l.hour == hour)
                        .map(|l| BilledAd { ad_id: l.ad_id, clicks: l.clicks, spend_micros: l.spend_micros, adjustments: 0, filtered: 0 })
                        .collect()
                };
                for f in filtered.iter().filter(|f| f.hour == hour) {
                    match ads.iter_mut().find(|a| a.ad_id == f.ad_id) {
                        Some(ad) => ad.filtered = f.filtered,
                        None => ads.push(BilledAd { ad_id: f.ad_id, clicks: 0, spend_micros: 0, adjustments: 0, filtered: f.filtered }),
                    }
                }
                ads.sort_by_key(|a| a.ad_id);
                for ad in &ads {
                    total.clicks += ad.clicks;
                    total.spend_micros += ad.spend_micros;
                    total.filtered += ad.filtered;
                }
                BillingHour { hour: hour as u64 * 1000, is_final, ads }
            })
            .collect();
        Ok((hours, total))
    }
}

/// The `from`, `to` (and `step`, only `1h`) of a billing query.
pub(super) fn billing_range(req: &http::Request<RequestBody>) -> Result<Range, Response> {
    match parse_range(req.uri().query(), Resolution::Hour, now_ms()) {
        Ok(r) if r.step == Resolution::Hour => Ok(r),
        Ok(_) => Err(reply::error(StatusCode::BAD_REQUEST, "billing is hourly: step must be 1h")),
        Err(reason) => Err(reply::error(StatusCode::BAD_REQUEST, reason)),
    }
}

/// `504` when ClickHouse did not answer within the query deadline, `503`
/// when it failed otherwise (unreachable, refused the query).
pub(super) fn storage_error(e: crate::clickhouse::StoreError) -> Response {
    tracing::error!(error = %e, deadline = e.is_deadline(), "query failed");
    if e.is_deadline() {
        reply::error(StatusCode::GATEWAY_TIMEOUT, format!("ClickHouse did not answer within the query deadline: {e}; it may be overloaded or hung"))
    } else {
        reply::error(StatusCode::SERVICE_UNAVAILABLE, format!("ClickHouse unavailable: {e}"))
    }
}

fn dashboard() -> Response {
    let mut resp = reply::with_type(StatusCode::OK, DASHBOARD.into(), "text/html; charset=utf-8");
    // Revalidated, so a new release's page never runs against old scripts.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
