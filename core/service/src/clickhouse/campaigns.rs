//! Queries about campaigns, over the campaign rollups (`campaigns_by_*`,
//! migration 0007: the click rollups sorted by time, then campaign) and,
//! for per-second parts, the landing table. Planned reads (`crate::read_plan`)
//! read the coarsest rollup that fits each part of a range.
//!
//! Filtered clicks per campaign: a refusal (`refused_events`, the sealed
//! batch's refused record) carries the ad, not the campaign, so a
//! campaign's filtered clicks are the refused rollups' filtered clicks of
//! the ads whose kept clicks in the range named only that campaign. An ad
//! that named several campaigns, or whose every click was dropped, counts
//! under none: nothing is split by guess (as in `api::campaign_billing`).

use serde::{Deserialize, Serialize};

use super::filters::FilteredPoint;
use super::sql;
use super::store::{bind_plan, err, Point, Totals};
use super::{Store, StoreError};
use crate::read_plan::{Plan, TABLES};
use crate::resolution::Resolution;

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct CampaignTotal {
    /// 0: clicks that named no campaign.
    pub campaign_id: u64,
    pub clicks: u64,
    pub spend_micros: u64,
    /// Distinct users (uniqHLL12: exact up to 16, about 1.6 % off above).
    pub users: u64,
}

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct CampaignAd {
    pub ad_id: u64,
    pub clicks: u64,
    pub spend_micros: u64,
    pub users: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Ranked {
    campaign_id: u64,
}

/// The campaigns an ad's clicks named in one hour (sorted, usually one).
#[derive(Debug, Clone, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct AdCampaigns {
    pub hour: u32,
    pub ad_id: u64,
    pub campaigns: Vec<u64>,
}

impl Store {
    /// A tenant's campaigns over the plan's range (any finest table), most
    /// clicked first.
    ///
    /// Two queries over the same plan: the first ranks every campaign by
    /// clicks alone, the second merges clicks, spend and distinct users of
    /// the top `limit` only. Merging users for every campaign cost about
    /// four times the ranking (BENCHMARKS.md); one query cannot share the
    /// ranking between its `UNION ALL` branches on 18.16, and filtering after
    /// the union would ship every row's states from the shards of a cluster.
    /// The order (clicks, then id) needs no other column, so over rows that
    /// do not change between the two (final hours) the answer is the
    /// one-query answer; over live rows it is the top campaigns a moment
    /// earlier with their totals now. The second filters with
    /// `IN (SELECT toUInt64(arrayJoin(?)))`, a set built once per branch: `has(?, id)`
    /// scans the whole list for every row, up to 1000 ids times every row
    /// read. Each query has its own deadline, so the route answers 504 after
    /// at most twice the query deadline; with several servers the two may
    /// run on different replicas (the same committed rows, so the same
    /// answer over final hours).
    pub async fn top_campaigns(&self, tenant: &str, plan: &Plan, limit: u32) -> Result<Vec<CampaignTotal>, StoreError> {
        let ranking = bind_plan(self.db.query(sql::CAMPAIGN_RANKING), "top campaigns", plan, &TABLES, |q| q.bind(tenant))?;
        let top: Vec<u64> = ranking.bind(limit).fetch_all::<Ranked>().await.map_err(err("ranking campaigns"))?.into_iter().map(|r| r.campaign_id).collect();
        if top.is_empty() {
            return Ok(Vec::new());
        }
        let query = bind_plan(self.db.query(sql::TOP_CAMPAIGNS), "top campaigns", plan, &TABLES, |q| q.bind(tenant).bind(&top))?;
        query.fetch_all().await.map_err(err("querying top campaigns"))
    }

    /// The ads of one campaign over the plan's range, most clicked first.
    pub async fn campaign_ads(&self, tenant: &str, campaign_id: u64, plan: &Plan, limit: u32) -> Result<Vec<CampaignAd>, StoreError> {
        let query = bind_plan(self.db.query(sql::CAMPAIGN_ADS), "campaign ads", plan, &TABLES, |q| q.bind(tenant).bind(campaign_id))?;
        query.bind(limit).fetch_all().await.map_err(err("querying the ads of a campaign"))
    }

    /// A campaign's buckets with data in `[from, to)` (aligned to the step).
    pub async fn campaign_series(&self, tenant: &str, campaign_id: u64, from: u32, to: u32, step: Resolution) -> Result<Vec<Point>, StoreError> {
        let sql = match step.rollup() {
            None => sql::CAMPAIGN_SERIES_SECOND.to_string(),
            Some((_, bucket, _)) => sql::CAMPAIGN_SERIES.replace("{bucket}", bucket),
        };
        let query = self.db.query(&sql).bind(tenant).bind(campaign_id).bind(from).bind(to);
        query.fetch_all().await.map_err(err("querying a campaign series"))
    }

    /// Filtered clicks per bucket in `[from, to)` of the ads that named only
    /// this campaign there (see the module); `None` for 1s steps.
    pub async fn campaign_filtered_series(
        &self,
        tenant: &str,
        campaign_id: u64,
        from: u32,
        to: u32,
        step: Resolution,
    ) -> Result<Option<Vec<FilteredPoint>>, StoreError> {
        let Some((_, bucket, _)) = step.rollup() else { return Ok(None) };
        let sql = sql::CAMPAIGN_FILTERED_SERIES.replace("{bucket}", bucket);
        let query = self.db.query(&sql).bind(tenant).bind(from).bind(to).bind(tenant).bind(from).bind(to).bind(campaign_id).bind(campaign_id);
        Ok(Some(query.fetch_all().await.map_err(err("querying a campaign's filtered clicks"))?))
    }

    /// A campaign's totals over `[from, to)` from the landing table alone
    /// (what its per-second series read).
    pub async fn campaign_second_totals(&self, tenant: &str, campaign_id: u64, from: u32, to: u32) -> Result<Totals, StoreError> {
        let query = self.db.query(sql::CAMPAIGN_TOTAL_SECOND).bind(tenant).bind(campaign_id).bind(from).bind(to);
        query.fetch_one().await.map_err(err("querying campaign totals"))
    }

    /// A campaign's totals over the plan's range (1m or coarser).
    pub async fn campaign_totals(&self, tenant: &str, campaign_id: u64, plan: &Plan) -> Result<Totals, StoreError> {
        let query =
            bind_plan(self.db.query(sql::CAMPAIGN_TOTALS), "campaign totals", plan, &Resolution::ROLLUPS_COARSEST_FIRST, |q| q.bind(tenant).bind(campaign_id))?;
        query.fetch_one().await.map_err(err("querying campaign totals"))
    }

    /// Per hour in `[from, to)` (aligned to hours) and ad, the campaigns its
    /// clicks named.
    pub async fn ad_campaigns(&self, tenant: &str, from: u32, to: u32) -> Result<Vec<AdCampaigns>, StoreError> {
        let query = self.db.query(sql::CAMPAIGN_OF_ADS).bind(tenant).bind(from).bind(to);
        query.fetch_all().await.map_err(err("reading the campaigns of ads"))
    }
}
