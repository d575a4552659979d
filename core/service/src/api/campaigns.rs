//! Campaign routes (read key; the tenant is always the key's):
//!
//! * `GET /v1/campaigns?from=&to=&limit=`: top campaigns by clicks, with
//!   spend and distinct users
//! * `GET /v1/campaigns/{id}/clicks?from=&to=&step=`: a campaign's series,
//!   like `/v1/ads/{ad}/clicks`
//! * `GET /v1/campaigns/{id}/ads?from=&to=&limit=`: the ads of a campaign
//! * `GET /v1/billing/campaigns?from=&to=`: exact hourly billing per
//!   campaign ([`super::campaign_billing`])
//!
//! All read rollups, never per-click tables: the campaign rollups
//! (`campaigns_by_*`, sorted by time, then campaign) through read plans, so
//! long ranges read day and hour rows and finer ones only at the ragged
//! edges; per-second parts read the landing table. Campaign 0 holds the
//! clicks that named no campaign. A campaign's series has `filtered` per
//! point and `total_filtered` (steps of 1m or coarser, like an ad's): the
//! filtered clicks of the ads that named only this campaign in the range
//! (a refused click carries its ad, not its campaign:
//! `clickhouse::campaigns`). `/v1/campaigns` has no filtered count; the
//! dashboard reads each campaign's series for it, as it does per ad.

use http::StatusCode;
use serde::Serialize;

use tally_http::{reply, RequestBody, Response};
use tally_model::timestamp::now_ms;

use super::campaign_billing::{by_campaign, CampaignHour};
use super::dense_series::{dense, DenseSeries, PointOut};
use super::params::{parse_range, step_name};
use super::routes::{billing_range, storage_error, Api, BillingTotal};
use crate::clickhouse::campaigns::{CampaignAd, CampaignTotal};
use crate::clickhouse::store::Totals;
use crate::read_plan::Plan;
use crate::resolution::Resolution;

#[derive(Serialize)]
struct TopCampaigns {
    from: u64,
    to: u64,
    campaigns: Vec<CampaignTotal>,
}

#[derive(Serialize)]
struct CampaignAds {
    campaign_id: u64,
    from: u64,
    to: u64,
    ads: Vec<CampaignAd>,
}

#[derive(Serialize)]
struct CampaignSeries {
    campaign_id: u64,
    step: &'static str,
    from: u64,
    to: u64,
    points: Vec<PointOut>,
    total: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_filtered: Option<u64>,
}

#[derive(Serialize)]
struct CampaignBilling {
    from: u64,
    to: u64,
    hours: Vec<CampaignHour>,
    total: BillingTotal,
}

fn campaign_id(id: &str) -> Result<u64, Response> {
    id.parse::<u64>().map_err(|_| reply::error(StatusCode::BAD_REQUEST, format!("campaign id {id:?} is not an unsigned integer")))
}

impl Api {
    pub(super) async fn top_campaigns(&self, req: &http::Request<RequestBody>) -> Response {
        let (tenant, range, plan, limit) = match self.ranked_query(req, Resolution::Second) {
            Ok(found) => found,
            Err(resp) => return resp,
        };
        match self.store.top_campaigns(tenant.as_str(), &plan, limit).await {
            Ok(mut campaigns) => {
                // An estimate of users may exceed the clicks; a click has at most one user.
                campaigns.iter_mut().for_each(|c| c.users = c.users.min(c.clicks));
                reply::json(StatusCode::OK, &TopCampaigns { from: range.from as u64 * 1000, to: range.to as u64 * 1000, campaigns })
            }
            Err(e) => storage_error(e),
        }
    }

    pub(super) async fn campaign_ads(&self, req: &http::Request<RequestBody>, id: &str) -> Response {
        let (tenant, range, plan, limit) = match self.ranked_query(req, Resolution::Second) {
            Ok(found) => found,
            Err(resp) => return resp,
        };
        let campaign_id = match campaign_id(id) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        match self.store.campaign_ads(tenant.as_str(), campaign_id, &plan, limit).await {
            Ok(mut ads) => {
                ads.iter_mut().for_each(|a| a.users = a.users.min(a.clicks));
                reply::json(StatusCode::OK, &CampaignAds { campaign_id, from: range.from as u64 * 1000, to: range.to as u64 * 1000, ads })
            }
            Err(e) => storage_error(e),
        }
    }

    #[tracing::instrument(name = "query_campaign_clicks", skip_all, fields(campaign = id))]
    pub(super) async fn campaign_clicks(&self, req: &http::Request<RequestBody>, id: &str) -> Response {
        let tenant = match self.tenant(req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let campaign_id = match campaign_id(id) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let range = match parse_range(req.uri().query(), Resolution::Minute, now_ms()) {
            Ok(r) => r,
            Err(reason) => return reply::error(StatusCode::BAD_REQUEST, reason),
        };
        let series = self.store.campaign_series(tenant.as_str(), campaign_id, range.from, range.to, range.step);
        let filtered = self.store.campaign_filtered_series(tenant.as_str(), campaign_id, range.from, range.to, range.step);
        let (series, filtered) = match tokio::try_join!(series, filtered) {
            Ok(found) => found,
            Err(e) => return storage_error(e),
        };
        // As for an ad's series: 1s totals read the landing table only, the
        // others the coarsest rollups; `users` is read after the points.
        let total = match range.step {
            Resolution::Second => self.store.campaign_second_totals(tenant.as_str(), campaign_id, range.from, range.to).await,
            _ => {
                let plan = Plan::new(range.from, range.to, Resolution::Minute).expect("a range is aligned to its step");
                self.store.campaign_totals(tenant.as_str(), campaign_id, &plan).await
            }
        };
        let users = match total {
            Ok(t) => t.users,
            Err(e) => return storage_error(e),
        };
        let DenseSeries { points, total, total_filtered } = dense(range.buckets(), series, filtered.as_deref(), users);
        let from = range.from as u64 * 1000;
        reply::json(
            StatusCode::OK,
            &CampaignSeries { campaign_id, step: step_name(range.step), from, to: range.to as u64 * 1000, points, total, total_filtered },
        )
    }

    /// Exact hourly billing per campaign: `/v1/billing` grouped by campaign.
    #[tracing::instrument(name = "query_campaign_billing", skip_all)]
    pub(super) async fn campaign_billing(&self, req: &http::Request<RequestBody>) -> Response {
        let tenant = match self.tenant(req) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let range = match billing_range(req) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let (hours, total) = match self.billed_hours(&tenant, range).await {
            Ok(found) => found,
            Err(resp) => return resp,
        };
        // Read after billing: a click billed above is in the rollup by now
        // unless its view row was lost (then healed on a later pass).
        let ad_campaigns = match self.store.ad_campaigns(tenant.as_str(), range.from, range.to).await {
            Ok(found) => found,
            Err(e) => return storage_error(e),
        };
        let hours = by_campaign(hours, &ad_campaigns);
        reply::json(StatusCode::OK, &CampaignBilling { from: range.from as u64 * 1000, to: range.to as u64 * 1000, hours, total })
    }
}
