//! Typed access to ClickHouse for the commit protocol and the query API.

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use super::schema::{statements, BOOTSTRAP, MIGRATIONS, MODERN};
use super::sql;
use crate::billing::figures::{BatchSpan, Billed, LiveBilling};
use crate::read_plan::{Plan, TABLES};
use crate::resolution::Resolution;

const DATABASE: &str = "tally";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ClickHouse {what}: {source}")]
    Query { what: String, source: clickhouse::error::Error },
    /// The server answered something this code cannot mean: a query that
    /// does not match the code, refused rather than guessed at.
    #[error("ClickHouse {what}: unexpected {found}")]
    Unexpected { what: &'static str, found: String },
    /// A plan reads a table the query has no branch for (a caller's bug,
    /// refused rather than answered without that part of the range).
    #[error("{what} has no {table:?} table: plan it at a coarser resolution")]
    NoTable { what: &'static str, table: Resolution },
    #[error("ClickHouse {0}")]
    Url(#[from] super::failover::BadUrl),
}

impl StoreError {
    /// ClickHouse gave no answer within the query deadline ([`super::deadline`]).
    pub fn is_deadline(&self) -> bool {
        matches!(self, StoreError::Query { source, .. } if super::deadline::is_deadline(source))
    }

    /// Another repair of the same rollup is running ([`Store::repair_rollup`]).
    pub fn is_repair_running(&self) -> bool {
        matches!(self, StoreError::Query { source: clickhouse::error::Error::BadResponse(body), .. } if body.contains(QUERY_ID_RUNNING))
    }

    /// No answer from the server at all (refused, reset, unreachable).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Query { source: clickhouse::error::Error::Network(_), .. })
    }
}

/// The `query_id` of every repair of rollup `table` (see [`Store::repair_rollup`]).
pub fn repair_query_id(table: &str) -> String {
    format!("tally-repair|{table}")
}

/// ClickHouse's code for a query whose id is already running.
const QUERY_ID_RUNNING: &str = "Code: 216";

pub(super) fn err(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Query { what, source }
}

/// Where the data of each resolution lives.
impl Resolution {
    /// Rollup table, bucket column and the function mapping a second to its
    /// bucket; `None` for the per-second landing table.
    pub(super) fn rollup(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Resolution::Second => None,
            Resolution::Minute => Some(("clicks_by_minute", "minute", "toStartOfMinute")),
            Resolution::Hour => Some(("clicks_by_hour", "hour", "toStartOfHour")),
            Resolution::Day => Some(("clicks_by_day", "day", "toStartOfDay")),
        }
    }

    fn series_sql(self) -> String {
        match self.rollup() {
            None => sql::SERIES_SECOND.to_string(),
            Some((table, bucket, _)) => sql::SERIES_ROLLUP.replace("{table}", table).replace("{bucket}", bucket),
        }
    }
}

/// Binds `plan` to a query with one branch per table of `tables` (coarsest
/// first, as in `read_plan::TABLES`), each `WHERE ? < ? AND <keys> AND
/// <bucket in [from, to) outside [skip_from, skip_to)>`: the read's bounds
/// switch an empty branch off, `keys` binds the branch's own filters.
pub(super) fn bind_plan(
    mut query: clickhouse::query::Query,
    what: &'static str,
    plan: &Plan,
    tables: &[Resolution],
    keys: impl Fn(clickhouse::query::Query) -> clickhouse::query::Query,
) -> Result<clickhouse::query::Query, StoreError> {
    if let Some(r) = plan.reads().iter().find(|r| !r.is_empty() && !tables.contains(&r.table)) {
        return Err(StoreError::NoTable { what, table: r.table });
    }
    for &table in tables {
        let r = plan.read(table);
        query = keys(query.bind(r.from).bind(r.to)).bind(r.from).bind(r.to).bind(r.skip_from).bind(r.skip_to);
    }
    Ok(query)
}

/// The landing tables that materialized views roll up by minute, hour and
/// day (`<name>_by_<bucket>`), which reconciliation compares and repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// `clicks_by_second` (clicks, spend, users).
    Clicks,
    /// `refused_events` (counts per reason; no spend).
    Refused,
    /// `click_dimensions` (clicks and spend per enrichment value).
    Dimensions,
    /// `clicks_by_second` again, rolled up sorted by time and campaign
    /// (`campaigns_by_*`, the same columns as `clicks_by_*`, so the same
    /// repair and drift SQL).
    Campaigns,
    /// `click_dimensions` again, rolled up without `ad_id`
    /// (`dimension_values_by_*`: one row per tenant, dimension, bucket and
    /// value, what tenant-wide breakdowns read).
    DimensionValues,
}

struct FamilyQueries {
    landing_hours: &'static str,
    rollup_hours: &'static str,
    repair: &'static str,
    drift: &'static str,
    /// The `{gap}` repair and drift share.
    gap: &'static str,
}

impl Family {
    pub const ALL: [Family; 5] = [Family::Clicks, Family::Refused, Family::Dimensions, Family::Campaigns, Family::DimensionValues];

    /// Also the rollup tables' prefix.
    pub fn name(self) -> &'static str {
        match self {
            Family::Clicks => "clicks",
            Family::Refused => "refused",
            Family::Dimensions => "dimensions",
            Family::Campaigns => "campaigns",
            Family::DimensionValues => "dimension_values",
        }
    }

    fn queries(self) -> FamilyQueries {
        match self {
            Family::Clicks => FamilyQueries {
                landing_hours: sql::RECONCILE_HOURS,
                rollup_hours: sql::RECONCILE_ROLLUP,
                repair: sql::REPAIR_ROLLUP,
                drift: sql::DRIFT_ROLLUP,
                gap: sql::GAP_ROLLUP,
            },
            Family::Refused => FamilyQueries {
                landing_hours: sql::RECONCILE_REFUSED_HOURS,
                rollup_hours: sql::RECONCILE_REFUSED_ROLLUP,
                repair: sql::REPAIR_REFUSED_ROLLUP,
                drift: sql::DRIFT_REFUSED_ROLLUP,
                gap: sql::GAP_REFUSED_ROLLUP,
            },
            Family::Dimensions => FamilyQueries {
                landing_hours: sql::RECONCILE_DIMENSION_HOURS,
                rollup_hours: sql::RECONCILE_DIMENSION_ROLLUP,
                repair: sql::REPAIR_DIMENSION_ROLLUP,
                drift: sql::DRIFT_DIMENSION_ROLLUP,
                gap: sql::GAP_DIMENSION_ROLLUP,
            },
            Family::Campaigns => FamilyQueries {
                landing_hours: sql::RECONCILE_HOURS,
                rollup_hours: sql::RECONCILE_CAMPAIGN_ROLLUP,
                repair: sql::REPAIR_ROLLUP,
                drift: sql::DRIFT_ROLLUP,
                gap: sql::GAP_ROLLUP,
            },
            Family::DimensionValues => FamilyQueries {
                landing_hours: sql::RECONCILE_DIMENSION_HOURS,
                rollup_hours: sql::RECONCILE_DIMENSION_VALUE_ROLLUP,
                repair: sql::REPAIR_DIMENSION_VALUE_ROLLUP,
                drift: sql::DRIFT_DIMENSION_ROLLUP,
                gap: sql::GAP_DIMENSION_VALUE_ROLLUP,
            },
        }
    }
}

/// A row of `tally.billing_statements`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct StatementRow {
    pub tenant: String,
    pub hour: u32,
    pub ad_id: u64,
    pub kind: String,
    pub clicks: i64,
    pub spend_micros: i64,
    pub recorded_at: u32,
}

#[derive(Debug, Clone, clickhouse::Row, Serialize)]
struct FinalHourRow {
    hour: u32,
    finalized_at: u32,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct BatchSpanRow {
    first_hour: u32,
    last_hour: u32,
    committed: u64,
    open: u64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct LiveBillingRow {
    tenant: String,
    hour: u32,
    ad_id: u64,
    clicks: i64,
    spend_micros: i64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct LiveBillingOneTenant {
    hour: u32,
    ad_id: u64,
    clicks: i64,
    spend_micros: i64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct BilledRow {
    tenant: String,
    hour: u32,
    ad_id: u64,
    clicks: i64,
    spend_micros: i64,
    adjustments: u64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct EdgeWatermark {
    pub edge: String,
    pub watermark_ms: u64,
}

/// Per (tenant, hour) clicks and spend, from one source.
#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, PartialEq, Eq)]
pub struct HourTotals {
    pub hour: u32,
    pub clicks: u64,
    pub spend_micros: u64,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct TenantHourTotals {
    tenant: String,
    hour: u32,
    clicks: u64,
    spend_micros: u64,
}

fn by_tenant(rows: Vec<TenantHourTotals>) -> Vec<(String, HourTotals)> {
    rows.into_iter().map(|r| (r.tenant, HourTotals { hour: r.hour, clicks: r.clicks, spend_micros: r.spend_micros })).collect()
}

/// A committed batch's manifest: what the edge counted into it.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct Manifest {
    pub edge: String,
    pub seq: u64,
    pub clicks: u64,
    pub records: u32,
    pub lo: u32,
    pub hi: u32,
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct BatchRecords {
    pub edge: String,
    pub seq: u64,
    pub records: u64,
}

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct Point {
    pub t: u32,
    pub clicks: u64,
    pub spend_micros: u64,
    pub users: u64,
}

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq, Default)]
pub struct Totals {
    pub clicks: u64,
    pub spend_micros: u64,
    pub users: u64,
}

#[derive(Debug, Clone, Copy, clickhouse::Row, Deserialize, Serialize, PartialEq, Eq)]
pub struct AdTotal {
    pub ad_id: u64,
    pub clicks: u64,
    pub spend_micros: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Hour {
    hour: u32,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Version {
    version: String,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Applied {
    version: u32,
}

#[derive(Clone)]
pub struct Store {
    pub(super) server: Client,
    pub(super) db: Client,
    version: String,
    /// The server drops a re-sent INSERT carrying the same
    /// `insert_deduplication_token` (22.2+; 18.16 rejects the setting).
    pub(super) dedup_tokens: bool,
    /// Cluster mode (`super::cluster`); `None` on one server.
    pub(super) cluster: Option<super::cluster::ClusterMode>,
}

/// Whether a `version()` string is at least `major.minor`.
fn at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

impl Store {
    /// Connects and learns the server version (settings differ by version).
    pub async fn connect(url: &str, user: Option<&str>, password: Option<&str>) -> Result<Store, StoreError> {
        Self::connect_any(&[url.to_string()], user, password).await
    }

    /// [`Store::connect`] to whichever of `urls` accepts, moving to another
    /// when that one cannot be reached ([`super::failover`]).
    pub async fn connect_any(urls: &[String], user: Option<&str>, password: Option<&str>) -> Result<Store, StoreError> {
        let http = super::failover::http_connector(super::failover::CONNECT_TIMEOUT);
        Self::connect_with(super::failover::client(http, urls)?, urls, user, password).await
    }

    /// [`Store::connect_any`], every query under `deadline`
    /// ([`super::deadline`]): for the API, never the committer (a group
    /// commit may rightly take longer, and is retried as a whole).
    pub async fn connect_bounded(urls: &[String], user: Option<&str>, password: Option<&str>, deadline: std::time::Duration) -> Result<Store, StoreError> {
        Self::connect_with(super::deadline::client(deadline, urls)?, urls, user, password).await
    }

    async fn connect_with(client: Client, urls: &[String], user: Option<&str>, password: Option<&str>) -> Result<Store, StoreError> {
        let mut server = client.with_validation(false);
        if let Some(user) = user {
            server = server.with_user(user);
        }
        if let Some(password) = password {
            server = server.with_password(password);
        }
        let db = server.clone().with_database(DATABASE);
        let version =
            server.query("SELECT version() AS version").fetch_one::<Version>().await.map_err(err(format!("connecting to {}", urls.join(" or "))))?.version;
        let dedup_tokens = at_least(&version, 22, 2);
        Ok(Store { server, db, version, dedup_tokens, cluster: None })
    }

    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// Applies the bootstrap and pending migrations; returns those applied.
    /// In cluster mode: the cluster schema, which records no versions.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        if let Some(cluster) = &self.cluster {
            return self.migrate_cluster(cluster).await.map(|()| Vec::new());
        }
        for stmt in statements(BOOTSTRAP) {
            self.server.query(&stmt).execute().await.map_err(err("bootstrap"))?;
        }
        let applied: Vec<u32> = self
            .server
            .query("SELECT version FROM tally.schema_migrations")
            .fetch_all::<Applied>()
            .await
            .map_err(err("reading schema_migrations"))?
            .into_iter()
            .map(|a| a.version)
            .collect();
        let mut done = Vec::new();
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            for stmt in statements(m.sql) {
                self.server.query(&stmt).execute().await.map_err(err(format!("migration {:04}_{}", m.version, m.name)))?;
            }
            self.server
                .query("INSERT INTO tally.schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
                .bind(m.version)
                .bind(m.name)
                .execute()
                .await
                .map_err(err("recording migration"))?;
            done.push(m.version);
        }
        if self.dedup_tokens {
            for stmt in MODERN.iter().flat_map(|sql| statements(sql)) {
                self.server.query(&stmt).execute().await.map_err(err("enabling insert deduplication windows"))?;
            }
        }
        Ok(done)
    }

    pub async fn insert_statements(&self, rows: &[StatementRow]) -> Result<(), StoreError> {
        self.insert_rows("billing_statements", rows, None).await
    }

    pub async fn mark_final(&self, hours: &[u32], now: u32) -> Result<(), StoreError> {
        let rows: Vec<FinalHourRow> = hours.iter().map(|&hour| FinalHourRow { hour, finalized_at: now }).collect();
        self.insert_rows("billing_final_hours", &rows, None).await
    }

    pub(super) async fn insert_rows<T>(&self, table: &str, rows: &[T], token: Option<&str>) -> Result<(), StoreError>
    where
        T: clickhouse::Row + clickhouse::RowWrite + for<'a> clickhouse::Row<Value<'a> = T>,
    {
        let what = format!("inserting into {table}");
        let mut insert = self.db.insert::<T>(table).await.map_err(err(what.clone()))?;
        if let (Some(token), true) = (token, self.dedup_tokens) {
            insert = insert.with_setting("insert_deduplication_token", token).with_setting("deduplicate_blocks_in_dependent_materialized_views", "1");
        }
        for row in rows {
            insert.write(row).await.map_err(err(what.clone()))?;
        }
        insert.end().await.map_err(err(what))
    }

    /// Each edge's watermark: the highest low watermark of its committed batches.
    pub async fn edge_watermarks(&self) -> Result<Vec<EdgeWatermark>, StoreError> {
        self.db.query(sql::EDGE_WATERMARKS).fetch_all().await.map_err(err("reading edge watermarks"))
    }

    /// Exact billing from the click records, each click id counted once.
    pub async fn billing_live(&self, tenant: &str, from: u32, to: u32) -> Result<Vec<LiveBilling>, StoreError> {
        let rows =
            self.db.query(sql::BILLING_LIVE).bind(tenant).bind(from).bind(to).fetch_all::<LiveBillingOneTenant>().await.map_err(err("computing billing"))?;
        Ok(rows
            .into_iter()
            .map(|r| LiveBilling { tenant: tenant.to_string(), hour: r.hour, ad_id: r.ad_id, clicks: r.clicks, spend_micros: r.spend_micros })
            .collect())
    }

    pub async fn billing_live_all(&self, from: u32, to: u32) -> Result<Vec<LiveBilling>, StoreError> {
        let rows = self.db.query(sql::BILLING_LIVE_ALL_TENANTS).bind(from).bind(to).fetch_all::<LiveBillingRow>().await.map_err(err("computing billing"))?;
        Ok(rows.into_iter().map(|r| LiveBilling { tenant: r.tenant, hour: r.hour, ad_id: r.ad_id, clicks: r.clicks, spend_micros: r.spend_micros }).collect())
    }

    /// Committed and open batches reaching into `[from, to)`, per span of hours.
    pub async fn billing_batch_spans(&self, from: u32, to: u32) -> Result<Vec<BatchSpan>, StoreError> {
        let rows = self
            .db
            .query(sql::BILLING_BATCH_SPANS)
            .bind(from)
            .bind(to)
            .fetch_all::<BatchSpanRow>()
            .await
            .map_err(err("reading the batch ledger for billing"))?;
        Ok(rows.into_iter().map(|r| BatchSpan { first_hour: r.first_hour, last_hour: r.last_hour, committed: r.committed, open: r.open }).collect())
    }

    pub async fn billing_statements(&self, from: u32, to: u32) -> Result<Vec<Billed>, StoreError> {
        let rows = self.db.query(sql::BILLING_STATEMENTS).bind(from).bind(to).fetch_all::<BilledRow>().await.map_err(err("reading billing statements"))?;
        Ok(rows
            .into_iter()
            .map(|r| Billed { tenant: r.tenant, hour: r.hour, ad_id: r.ad_id, clicks: r.clicks, spend_micros: r.spend_micros, adjustments: r.adjustments })
            .collect())
    }

    pub async fn final_hours(&self, from: u32, to: u32) -> Result<Vec<u32>, StoreError> {
        let rows = self.db.query(sql::FINAL_HOURS).bind(from).bind(to).fetch_all::<Hour>().await.map_err(err("reading final hours"))?;
        Ok(rows.into_iter().map(|h| h.hour).collect())
    }

    /// Per (tenant, hour) totals of a landing table, by event time.
    pub async fn landing_hours(&self, family: Family, from: u32, to: u32) -> Result<Vec<(String, HourTotals)>, StoreError> {
        self.tenant_hours(family.queries().landing_hours, from, to, format!("reconciling the {} landing table", family.name())).await
    }

    /// Per (tenant, hour) totals of a family's hourly rollup.
    pub async fn rollup_hours(&self, family: Family, from: u32, to: u32) -> Result<Vec<(String, HourTotals)>, StoreError> {
        self.tenant_hours(family.queries().rollup_hours, from, to, format!("reconciling the {} hourly rollup", family.name())).await
    }

    async fn tenant_hours(&self, query: &str, from: u32, to: u32, what: String) -> Result<Vec<(String, HourTotals)>, StoreError> {
        let rows = self.db.query(query).bind(from).bind(to).fetch_all::<TenantHourTotals>().await.map_err(err(what))?;
        Ok(by_tenant(rows))
    }

    /// A query reading the `{gap}` of `family`'s rollup at `step` (its text
    /// filled in, the gap's binds given: landing range, ledger cutoff and
    /// batch range, rollup range), and the rollup table's name.
    fn gap_query(
        &self,
        family: Family,
        step: Resolution,
        query: &str,
        from: u32,
        to: u32,
        committed_before: u32,
    ) -> Option<(clickhouse::query::Query, String)> {
        let (_, bucket, bucket_fn) = step.rollup()?;
        let table = format!("{}_by_{bucket}", family.name());
        let sql = query.replace("{gap}", family.queries().gap).replace("{table}", &table).replace("{bucket}", bucket).replace("{fn}", bucket_fn);
        let query = self.db.query(&sql).bind(from).bind(to).bind(committed_before).bind(from).bind(to).bind(from).bind(to);
        Some((query, table))
    }

    /// What a rollup lacks against its landing table in `[from, to)`
    /// (aligned to the step), per tenant and hour (the day for day rollups):
    /// exactly what [`Store::repair_rollup`] with the same arguments adds.
    /// Only rows of batches the ledger recorded committed before
    /// `committed_before` (seconds) count: see `crate::heal`.
    pub async fn rollup_drift(
        &self,
        family: Family,
        step: Resolution,
        from: u32,
        to: u32,
        committed_before: u32,
    ) -> Result<Vec<(String, HourTotals)>, StoreError> {
        let Some((query, table)) = self.gap_query(family, step, family.queries().drift, from, to, committed_before) else { return Ok(Vec::new()) };
        Ok(by_tenant(query.fetch_all::<TenantHourTotals>().await.map_err(err(format!("measuring drift of {table}")))?))
    }

    /// Adds to a rollup whatever its landing table holds in `[from, to)`
    /// (aligned to the step) that the rollup lacks: counts and spend as
    /// deltas (click rollups: users as the landing users, a union, so
    /// re-adding is harmless). Only rows of batches recorded committed
    /// before `committed_before` count, so an INSERT whose views have not
    /// filled yet is never taken for drift (`crate::heal` explains why that
    /// excludes double counting). Idempotent; a rollup holding more than
    /// its landing table is left for a person to look at.
    ///
    /// Serialized: two repairs of one rollup at once would both add what it
    /// lacks. The gap is measured and added by one statement, so repairs of
    /// a rollup that run one after the other are safe; each carries the
    /// `query_id` [`repair_query_id`] of its table, which ClickHouse refuses
    /// while a query of that id runs on the server (for the same user:
    /// healer and `tally billing reconcile --repair` use one), and the
    /// second repair fails at once ([`StoreError::is_repair_running`]) and
    /// is tried again later, when it measures the gap anew.
    pub async fn repair_rollup(&self, family: Family, step: Resolution, from: u32, to: u32, committed_before: u32) -> Result<(), StoreError> {
        let Some((query, table)) = self.gap_query(family, step, family.queries().repair, from, to, committed_before) else { return Ok(()) };
        query.with_setting("query_id", repair_query_id(&table)).execute().await.map_err(err(format!("repairing {table}")))
    }

    pub async fn manifests(&self, from: u32, to: u32) -> Result<Vec<Manifest>, StoreError> {
        self.db.query(sql::RECONCILE_MANIFESTS).bind(from).bind(to).fetch_all().await.map_err(err("reading batch manifests"))
    }

    pub async fn batch_records(&self, lo: u32, hi: u32) -> Result<Vec<BatchRecords>, StoreError> {
        self.db.query(sql::RECONCILE_BATCH_RECORDS).bind(lo).bind(hi).fetch_all().await.map_err(err("counting click records per batch"))
    }

    /// Buckets with data in `[from, to)` (seconds, aligned to the step).
    pub async fn series(&self, tenant: &str, ad_id: u64, from: u32, to: u32, step: Resolution) -> Result<Vec<Point>, StoreError> {
        self.db.query(&step.series_sql()).bind(tenant).bind(ad_id).bind(from).bind(to).fetch_all::<Point>().await.map_err(err("querying a click series"))
    }

    /// An ad's totals over `[from, to)` from the landing table alone (what
    /// per-second series read).
    pub async fn second_totals(&self, tenant: &str, ad_id: u64, from: u32, to: u32) -> Result<Totals, StoreError> {
        self.db.query(sql::TOTAL_SECOND).bind(tenant).bind(ad_id).bind(from).bind(to).fetch_one::<Totals>().await.map_err(err("querying click totals"))
    }

    /// An ad's totals over the plan's range (1m or coarser; users: one merge
    /// of every rollup's states).
    pub async fn totals(&self, tenant: &str, ad_id: u64, plan: &Plan) -> Result<Totals, StoreError> {
        let query = bind_plan(self.db.query(sql::TOTALS), "click totals", plan, &Resolution::ROLLUPS_COARSEST_FIRST, |q| q.bind(tenant).bind(ad_id))?;
        query.fetch_one::<Totals>().await.map_err(err("querying click totals"))
    }

    /// The most clicked ads over the plan's range.
    pub async fn top_ads(&self, tenant: &str, plan: &Plan, limit: u32) -> Result<Vec<AdTotal>, StoreError> {
        let query = bind_plan(self.db.query(sql::TOP_ADS), "top ads", plan, &TABLES, |q| q.bind(tenant))?;
        query.bind(limit).fetch_all::<AdTotal>().await.map_err(err("querying top ads"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert!(!super::at_least("18.16.1", 22, 2));
        assert!(!super::at_least("22.1.3.7", 22, 2));
        assert!(super::at_least("22.2.1", 22, 2));
        assert!(super::at_least("26.9.2.1", 22, 2));
        assert!(!super::at_least("garbage", 22, 2));
    }
}
