//! Typed access to ClickHouse for the commit protocol and the query API.

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use super::schema::{statements, BOOTSTRAP, MIGRATIONS};

const DATABASE: &str = "tally";

mod sql {
    macro_rules! query {
        ($name:literal) => {
            include_str!(concat!("../../../../deploy/clickhouse/queries/", $name, ".sql"))
        };
    }
    pub const SERIES_SECOND: &str = query!("series_second");
    pub const TOTAL_SECOND: &str = query!("total_second");
    pub const SERIES_ROLLUP: &str = query!("series_rollup");
    pub const TOTAL_ROLLUP: &str = query!("total_rollup");
    pub const TOP_ADS: &str = query!("top_ads");
    pub const LEDGER_STATES: &str = query!("ledger_states");
    pub const LANDING_ROWS_OF_BATCH: &str = query!("landing_rows_of_batch");
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ClickHouse {what}: {source}")]
    Query { what: String, source: clickhouse::error::Error },
}

fn err(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Query { what, source }
}

/// The resolution of a query, and where its data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Second,
    Minute,
    Hour,
    Day,
}

impl Step {
    pub fn seconds(self) -> u32 {
        match self {
            Step::Second => 1,
            Step::Minute => 60,
            Step::Hour => 3600,
            Step::Day => 86_400,
        }
    }

    /// Rollup table and bucket column; `None` for the per-second landing table.
    fn rollup(self) -> Option<(&'static str, &'static str)> {
        match self {
            Step::Second => None,
            Step::Minute => Some(("clicks_by_minute", "minute")),
            Step::Hour => Some(("clicks_by_hour", "hour")),
            Step::Day => Some(("clicks_by_day", "day")),
        }
    }

    fn series_sql(self) -> String {
        match self.rollup() {
            None => sql::SERIES_SECOND.to_string(),
            Some((table, bucket)) => sql::SERIES_ROLLUP.replace("{table}", table).replace("{bucket}", bucket),
        }
    }

    fn total_sql(self) -> String {
        match self.rollup() {
            None => sql::TOTAL_SECOND.to_string(),
            Some((table, bucket)) => sql::TOTAL_ROLLUP.replace("{table}", table).replace("{bucket}", bucket),
        }
    }
}

/// A row of `tally.clicks_by_second`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct LandingRow {
    pub tenant: String,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub second: u32,
    pub clicks: u64,
    pub spend_micros: u64,
    pub user_hashes: Vec<u64>,
    pub edge: String,
    pub batch_seq: u64,
    pub row_idx: u32,
}

/// A row of `tally.batches`, the commit ledger, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
pub struct LedgerRow {
    pub edge: String,
    pub seq: u64,
    pub state: u8,
    pub rows: u32,
    pub clicks: u64,
    pub checksum: u64,
    pub min_second: u32,
    pub max_second: u32,
    pub recorded_at: u32,
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
struct LedgerState {
    seq: u64,
    state: u8,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct RowIdx {
    row_idx: u32,
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
    server: Client,
    db: Client,
    version: String,
}

impl Store {
    /// Connects and learns the server version (settings differ by version).
    pub async fn connect(url: &str, user: Option<&str>, password: Option<&str>) -> Result<Store, StoreError> {
        let mut server = Client::default().with_url(url).with_validation(false);
        if let Some(user) = user {
            server = server.with_user(user);
        }
        if let Some(password) = password {
            server = server.with_password(password);
        }
        let db = server.clone().with_database(DATABASE);
        let version = server
            .query("SELECT version() AS version")
            .fetch_one::<Version>()
            .await
            .map_err(err(format!("connecting to {url}")))?
            .version;
        Ok(Store { server, db, version })
    }

    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// Applies the bootstrap and pending migrations; returns those applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
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
        Ok(done)
    }

    /// Highest ledger state per seq of `edge` in `[lo, hi]` (absent = none).
    pub async fn ledger_states(&self, edge: &str, lo: u64, hi: u64) -> Result<Vec<(u64, u8)>, StoreError> {
        let rows = self
            .db
            .query(sql::LEDGER_STATES)
            .bind(edge)
            .bind(lo)
            .bind(hi)
            .fetch_all::<LedgerState>()
            .await
            .map_err(err("reading the batch ledger"))?;
        Ok(rows.into_iter().map(|r| (r.seq, r.state)).collect())
    }

    /// Row indices of a batch already present in the landing table.
    pub async fn landing_rows_of_batch(&self, edge: &str, seq: u64, min_second: u32, max_second: u32) -> Result<Vec<u32>, StoreError> {
        let rows = self
            .db
            .query(sql::LANDING_ROWS_OF_BATCH)
            .bind(edge)
            .bind(seq)
            .bind(min_second)
            .bind(max_second)
            .fetch_all::<RowIdx>()
            .await
            .map_err(err("probing landing rows of a batch"))?;
        Ok(rows.into_iter().map(|r| r.row_idx).collect())
    }

    pub async fn insert_ledger(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        let mut insert = self.db.insert::<LedgerRow>("batches").await.map_err(err("inserting into the ledger"))?;
        for row in rows {
            insert.write(row).await.map_err(err("inserting into the ledger"))?;
        }
        insert.end().await.map_err(err("inserting into the ledger"))
    }

    /// One INSERT for all rows; the materialized views fire on it.
    pub async fn insert_landing(&self, rows: &[LandingRow]) -> Result<(), StoreError> {
        let mut insert = self.db.insert::<LandingRow>("clicks_by_second").await.map_err(err("inserting landing rows"))?;
        for row in rows {
            insert.write(row).await.map_err(err("inserting landing rows"))?;
        }
        insert.end().await.map_err(err("inserting landing rows"))
    }

    /// Buckets with data in `[from, to)` (seconds, aligned to the step).
    pub async fn series(&self, tenant: &str, ad_id: u64, from: u32, to: u32, step: Step) -> Result<Vec<Point>, StoreError> {
        self.db
            .query(&step.series_sql())
            .bind(tenant)
            .bind(ad_id)
            .bind(from)
            .bind(to)
            .fetch_all::<Point>()
            .await
            .map_err(err("querying a click series"))
    }

    pub async fn totals(&self, tenant: &str, ad_id: u64, from: u32, to: u32, step: Step) -> Result<Totals, StoreError> {
        self.db
            .query(&step.total_sql())
            .bind(tenant)
            .bind(ad_id)
            .bind(from)
            .bind(to)
            .fetch_one::<Totals>()
            .await
            .map_err(err("querying click totals"))
    }

    pub async fn top_ads(&self, tenant: &str, from: u32, to: u32, limit: u32) -> Result<Vec<AdTotal>, StoreError> {
        self.db
            .query(sql::TOP_ADS)
            .bind(tenant)
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all::<AdTotal>()
            .await
            .map_err(err("querying top ads"))
    }
}
