//! The commit protocol's [`BatchStore`] on ClickHouse: the ledger is
//! `tally.batches` (a row per state change; reads take the highest state
//! and the checksum recorded with it, never relying on merges), rows go to their landing tables with one INSERT
//! each, and the probe is `batch_rows_present.sql`.

use serde::Deserialize;
use tally_model::batch::BatchTotals;

use super::sql;
use super::store::{err, Store, StoreError};
use crate::commit::batch_store::{BatchStore, PartRows};
use crate::commit::plan::{LedgerEntry, LedgerState, Part};
use crate::commit::rows::LedgerRow;

#[derive(Debug, clickhouse::Row, Deserialize)]
struct LedgerStateRow {
    seq: u64,
    state: u8,
    checksum: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct PresentRow {
    part: u8,
    row_idx: u32,
}

impl BatchStore for Store {
    type Error = StoreError;

    async fn ledger(&self, edge: &str, lo: u64, hi: u64) -> Result<Vec<(u64, LedgerEntry)>, StoreError> {
        let rows =
            self.db.query(sql::LEDGER_STATES).bind(edge).bind(lo).bind(hi).fetch_all::<LedgerStateRow>().await.map_err(err("reading the batch ledger"))?;
        Ok(rows.into_iter().map(|r| (r.seq, LedgerEntry { state: LedgerState::from_db(r.state), checksum: r.checksum })).collect())
    }

    async fn rows_present(&self, edge: &str, seq: u64, totals: &BatchTotals) -> Result<Vec<(Part, u32)>, StoreError> {
        let by_event_time = (totals.min_second, totals.max_second);
        let by_decision = (totals.min_decided, totals.max_decided);
        // One (edge, seq, range) per UNION ALL arm, in the arms' order.
        let mut query = self.db.query(sql::BATCH_ROWS_PRESENT);
        for part in Part::ALL {
            let (lo, hi) = match part {
                Part::Landing | Part::Clicks | Part::Dimensions => by_event_time,
                Part::Refused | Part::Verdicts => by_decision,
            };
            query = query.bind(edge).bind(seq).bind(lo).bind(hi);
        }
        let rows = query.fetch_all::<PresentRow>().await.map_err(err("probing the rows of a batch"))?;
        rows.into_iter()
            .map(|r| {
                Part::from_probe(r.part)
                    .map(|p| (p, r.row_idx))
                    .ok_or(StoreError::Unexpected { what: "probing the rows of a batch", found: format!("part {}", r.part) })
            })
            .collect()
    }

    fn one_batch_per_insert(&self) -> bool {
        self.cluster.is_some()
    }

    async fn append_ledger(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        self.insert_rows("batches", rows, None).await
    }

    /// The materialized views fire on the landing inserts. The body is
    /// already `RowBinary`: it is sent as it is, in one chunk.
    async fn insert(&self, rows: &PartRows<'_>, token: &str) -> Result<(), StoreError> {
        let table = match rows.part {
            Part::Landing => "clicks_by_second",
            Part::Clicks => "click_records",
            Part::Refused => "refused_events",
            Part::Dimensions => "click_dimensions",
            Part::Verdicts => "plugin_verdicts",
        };
        let what = format!("inserting into {table}");
        let columns: Vec<String> = rows.columns.iter().map(|c| format!("`{c}`")).collect();
        let mut insert = self.db.insert_formatted_with(format!("INSERT INTO `{table}`({}) FORMAT RowBinary", columns.join(",")));
        if self.dedup_tokens {
            insert = insert.with_setting("insert_deduplication_token", token).with_setting("deduplicate_blocks_in_dependent_materialized_views", "1");
        }
        if let Some(query_id) = &rows.query_id {
            insert = insert.with_setting("query_id", query_id.as_str());
        }
        insert.send(rows.body.clone()).await.map_err(err(what.clone()))?;
        insert.end().await.map_err(err(what))
    }
}
