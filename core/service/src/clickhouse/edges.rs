//! Queries about edges: what the ledger knows of each (`edge_ledger.sql`)
//! and the operators' retirements (`tally.edge_retirements`, latest change
//! per edge wins).

use serde::Serialize;

use super::sql;
use super::store::err;
use super::{Store, StoreError};
use crate::edges::status::{LedgerEdge, Retirement};

/// A row of `tally.edge_retirements`, in column order.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
struct RetirementRow {
    edge: String,
    retired: u8,
    changed_ms: u64,
    reason: String,
}

impl Store {
    /// Every edge in the ledger: last committed batch, watermark, batches
    /// started and not committed.
    pub async fn edge_ledger(&self) -> Result<Vec<LedgerEdge>, StoreError> {
        self.db.query(sql::EDGE_LEDGER).fetch_all().await.map_err(err("reading the edges' ledger"))
    }

    /// The latest retirement decision per edge ever retired.
    pub async fn edge_retirements(&self) -> Result<Vec<Retirement>, StoreError> {
        self.db.query(sql::EDGE_RETIREMENTS).fetch_all().await.map_err(err("reading edge retirements"))
    }

    /// Records that `edge` is retired (or reinstated) as of `now_ms`.
    pub async fn set_edge_retired(&self, edge: &str, retired: bool, now_ms: u64, reason: &str) -> Result<(), StoreError> {
        let row = RetirementRow { edge: edge.to_string(), retired: retired as u8, changed_ms: now_ms, reason: reason.to_string() };
        self.insert_rows("edge_retirements", &[row], None).await
    }
}
