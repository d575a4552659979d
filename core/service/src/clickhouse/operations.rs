//! What operations asks of ClickHouse: readiness (the server answers, the
//! schema is current) and retention (a table's monthly partitions, dropping
//! one). See `crate::retention` for when a partition may go. In cluster mode
//! (`super::cluster`) the `tally` tables are Distributed and hold no parts:
//! partitions are those of the server's `tally_shard` tables, listed and
//! dropped per server.

use serde::Deserialize;

use super::schema::MIGRATIONS;
use super::sql;
use super::store::{err, Store, StoreError};

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Version {
    version: u32,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Partition {
    partition: u32,
}

impl Store {
    /// Migrations this binary knows that the server has not recorded
    /// (empty: the schema is current). Fails if the server does not answer.
    /// In cluster mode the schema records no versions (the core applied it
    /// whole at start), so only the answer counts.
    pub async fn pending_migrations(&self) -> Result<Vec<u32>, StoreError> {
        let applied = self.db.query(sql::APPLIED_MIGRATIONS).fetch_all::<Version>().await.map_err(err("reading applied migrations"))?;
        if self.cluster.is_some() {
            return Ok(Vec::new());
        }
        Ok(MIGRATIONS.iter().map(|m| m.version).filter(|v| !applied.iter().any(|a| a.version == *v)).collect())
    }

    /// The database whose tables hold this server's parts: `tally`, or on a
    /// cluster's server `tally_shard` (the `tally` tables are Distributed).
    pub fn parts_database(&self) -> &'static str {
        if self.cluster.is_some() {
            "tally_shard"
        } else {
            "tally"
        }
    }

    /// The active partitions of `table` on this server (`toYYYYMM` values; 0 for others).
    pub async fn partitions(&self, table: &'static str) -> Result<Vec<u32>, StoreError> {
        let database = self.parts_database();
        let rows = self.db.query(sql::TABLE_PARTITIONS).bind(database).bind(table).fetch_all::<Partition>().await;
        Ok(rows.map_err(err(format!("listing partitions of {database}.{table}")))?.into_iter().map(|p| p.partition).collect())
    }

    /// Drops month `partition` of `table` (one of `retention::plan::Family::tables`)
    /// on this server (on a Replicated table, on every replica of its shard).
    pub async fn drop_partition(&self, table: &'static str, partition: u32) -> Result<(), StoreError> {
        let database = self.parts_database();
        let query = sql::DROP_PARTITION.replace("{database}", database).replace("{table}", table);
        self.db.query(&query).bind(partition).execute().await.map_err(err(format!("dropping partition {partition} of {database}.{table}")))
    }
}
