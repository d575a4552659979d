//! What operations asks of ClickHouse: readiness (the server answers, the
//! schema is current) and retention (a table's monthly partitions, dropping
//! one). See `crate::retention` for when a partition may go. In cluster mode
//! (`super::cluster`) the `tally` tables are Distributed and hold no parts,
//! so retention finds nothing to drop there (a known gap: the shards'
//! `tally_shard` tables are not pruned).

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

    /// The active partitions of `table` (`toYYYYMM` values; 0 for others).
    pub async fn partitions(&self, table: &'static str) -> Result<Vec<u32>, StoreError> {
        let rows = self.db.query(sql::TABLE_PARTITIONS).bind(table).fetch_all::<Partition>().await.map_err(err(format!("listing partitions of {table}")))?;
        Ok(rows.into_iter().map(|p| p.partition).collect())
    }

    /// Drops month `partition` of `table` (one of `retention::plan::Family::tables`).
    pub async fn drop_partition(&self, table: &'static str, partition: u32) -> Result<(), StoreError> {
        let query = sql::DROP_PARTITION.replace("{table}", table);
        self.db.query(&query).bind(partition).execute().await.map_err(err(format!("dropping partition {partition} of {table}")))
    }
}
