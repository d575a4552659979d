//! The seam between the commit shell and where batches land.
//!
//! [`super::committer::commit_group`] runs the protocol against any
//! [`BatchStore`]: ClickHouse in production (`crate::clickhouse::batch_store`),
//! an in-memory store that can fail after any write or half-way through an
//! insert in the model test (`commit/tests/memory_store.rs`). The trait says
//! only what the protocol needs; everything it relies on is stated here, so a
//! new implementation (a cluster, say) knows what it must keep:
//!
//! * Ledger rows are appended, never updated; a batch's state is the highest
//!   one recorded for it, with the checksum recorded beside that state.
//! * An insert of rows may land partly (a crash mid-INSERT): any subset of
//!   its rows may be present afterwards, never a row twice from one insert.
//! * A row is found by the probe once it is durable, by `(edge, batch_seq,
//!   part, row_idx)`.

use std::future::Future;

use bytes::Bytes;
use tally_model::batch::BatchTotals;

use super::plan::{LedgerEntry, Part};
use super::rows::LedgerRow;

/// The rows of one part for one INSERT.
#[derive(Debug, Clone)]
pub struct PartRows<'a> {
    pub part: Part,
    /// The rows in `RowBinary` (`super::row_binary`), in their table's
    /// column order, which `columns` names.
    pub body: Bytes,
    pub columns: Vec<&'static str>,
    /// Whose rows they are, in the body's order: `(edge, seq, row indices)`.
    pub rows: Vec<(&'a str, u64, &'a [u32])>,
    /// Names the batches' edges and lease epochs (`crate::lease::fence`),
    /// so a later owner of an edge can kill this insert; `None` without
    /// leases.
    pub query_id: Option<String>,
}

pub trait BatchStore: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Ledger entries of `edge`'s batches with `lo <= seq <= hi`; a batch
    /// the ledger does not know is absent from the answer.
    fn ledger(&self, edge: &str, lo: u64, hi: u64) -> impl Future<Output = Result<Vec<(u64, LedgerEntry)>, Self::Error>> + Send;

    /// Rows of batch `(edge, seq)` already present, by part and index.
    /// `totals` bounds where they can be (partition pruning).
    fn rows_present(&self, edge: &str, seq: u64, totals: &BatchTotals) -> impl Future<Output = Result<Vec<(Part, u32)>, Self::Error>> + Send;

    fn append_ledger(&self, rows: &[LedgerRow]) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// One INSERT. `token` names exactly these rows (same rows, same
    /// token), for a store that can drop a re-sent insert by it.
    fn insert(&self, rows: &PartRows<'_>, token: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether each INSERT must carry one batch's rows only (a cluster: a
    /// re-sent INSERT is then the same block on every shard whatever else
    /// was being committed, which block deduplication recognises).
    fn one_batch_per_insert(&self) -> bool {
        false
    }
}
