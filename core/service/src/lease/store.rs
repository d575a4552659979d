//! The lease applied to the commit seam: a [`BatchStore`] that writes for
//! an edge only while this core holds the edge's lease. The committer
//! checks every batch's lease before a group ([`crate::commit::committer`]);
//! this checks again before every write of the group (no round trip), so a
//! session lost in the middle of a long group stops its remaining INSERTs
//! at once instead of letting them land after a new owner's fence.

use std::sync::Arc;

use tally_model::batch::BatchTotals;

use super::zk::Keeper;
use crate::commit::batch_store::{BatchStore, PartRows};
use crate::commit::plan::{LedgerEntry, Part};
use crate::commit::rows::LedgerRow;

pub struct LeasedStore<S> {
    inner: S,
    keeper: Arc<Keeper>,
}

impl<S> LeasedStore<S> {
    pub fn new(inner: S, keeper: Arc<Keeper>) -> LeasedStore<S> {
        LeasedStore { inner, keeper }
    }

    fn held<'e>(&self, mut edges: impl Iterator<Item = &'e str>) -> Result<(), LeaseLost> {
        match edges.find(|edge| self.keeper.epoch(edge).is_none()) {
            Some(edge) => Err(LeaseLost(edge.to_string())),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("core lost the lease of edge {0} during the commit; nothing more is written for it here")]
pub struct LeaseLost(String);

#[derive(Debug, thiserror::Error)]
pub enum LeasedError<E> {
    #[error(transparent)]
    Store(E),
    #[error(transparent)]
    Lost(#[from] LeaseLost),
}

impl<S: BatchStore> BatchStore for LeasedStore<S> {
    type Error = LeasedError<S::Error>;

    async fn ledger(&self, edge: &str, lo: u64, hi: u64) -> Result<Vec<(u64, LedgerEntry)>, Self::Error> {
        self.inner.ledger(edge, lo, hi).await.map_err(LeasedError::Store)
    }

    async fn rows_present(&self, edge: &str, seq: u64, totals: &BatchTotals) -> Result<Vec<(Part, u32)>, Self::Error> {
        self.inner.rows_present(edge, seq, totals).await.map_err(LeasedError::Store)
    }

    async fn append_ledger(&self, rows: &[LedgerRow]) -> Result<(), Self::Error> {
        self.held(rows.iter().map(|r| r.edge.as_str()))?;
        self.inner.append_ledger(rows).await.map_err(LeasedError::Store)
    }

    async fn insert(&self, rows: &PartRows<'_>, token: &str) -> Result<(), Self::Error> {
        self.held(rows.rows.iter().map(|(edge, _, _)| *edge))?;
        self.inner.insert(rows, token).await.map_err(LeasedError::Store)
    }

    fn one_batch_per_insert(&self) -> bool {
        self.inner.one_batch_per_insert()
    }
}
