//! Edges that come and go: which edges exist, how far each has committed,
//! and their retirement.
//!
//! * Registration needs no table: an edge is known once it is enrolled
//!   (`[[edges]]`, it may connect) and registered by its first batch in the
//!   ledger (`tally.batches`), which also holds its last batch and its
//!   committed low watermark ([`status::LedgerEdge`]).
//! * Retirement is an operator's decision, kept in ClickHouse
//!   (`tally.edge_retirements`, one row per change, the latest wins) so every
//!   core reads the same: a retired edge's watermark no longer holds billing
//!   finality back ([`status::unretired`]). An edge is retired only once
//!   drained ([`status::retire_check`]): not connected to this core (a
//!   stopping edge ships what it holds first), no other core holding its
//!   lease (with `[zookeeper]`: that core serves it, and a core keeps an
//!   edge's lease while it runs, so retire through the owner; leases that
//!   cannot be read refuse the retirement) and no batch the ledger shows
//!   started but not committed; `force` overrides that, never an unknown name.
//!   Batches an edge never sent are not visible to the core: retire a killed
//!   edge only after starting it once to drain, or accept that its unsent
//!   clicks stay on its disk.
//! * A retired edge that ships again is answered `Retry` with the reason
//!   (`tally_core_batches_refused_retired`), never `Rejected`: its batches
//!   stay on its disk, nothing is lost, and `reinstate` (an explicit call)
//!   lets them commit; clicks they add to hours already final become
//!   adjustments, as for any late click.
//! * [`Roster`] is this core's view: the retired set (refreshed from
//!   ClickHouse every pass of [`run`], set at once by this core's own
//!   retire/reinstate calls) and the edges connected to it now. [`run`] also
//!   sets the per-edge metrics, labelled only by enrolled edges so their
//!   number stays bounded by the config.
//!
//! [`status`] holds the decisions as pure functions.

pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::clickhouse::{Store, StoreError};
use crate::lease::zk::{Keeper, Refusal};
use crate::metrics::{EdgeLabel, Metrics};
use status::{statuses, EdgeStatus};

#[derive(Default)]
pub struct Roster {
    enrolled: Vec<String>,
    retired: RwLock<BTreeSet<String>>,
    /// Bumped by every local change, so a refresh read before it does not
    /// undo it.
    changes: AtomicU64,
    connections: Mutex<BTreeMap<String, usize>>,
    /// Several cores: the edge leases, which name the core serving each edge.
    leases: OnceLock<Arc<Keeper>>,
}

/// Held while an edge's batch connection lasts.
pub struct Connected {
    roster: Arc<Roster>,
    edge: String,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut connections = self.roster.connections.lock().expect("roster lock poisoned");
        if let Some(n) = connections.get_mut(&self.edge) {
            *n -= 1;
            if *n == 0 {
                connections.remove(&self.edge);
            }
        }
    }
}

impl Roster {
    pub fn new(enrolled: Vec<String>) -> Roster {
        Roster { enrolled, ..Roster::default() }
    }

    pub fn enrolled(&self) -> &[String] {
        &self.enrolled
    }

    pub fn is_retired(&self, edge: &str) -> bool {
        self.retired.read().expect("roster lock poisoned").contains(edge)
    }

    pub fn set_retired(&self, edge: &str, retired: bool) {
        let mut set = self.retired.write().expect("roster lock poisoned");
        self.changes.fetch_add(1, Ordering::SeqCst);
        if retired {
            set.insert(edge.to_string());
        } else {
            set.remove(edge);
        }
    }

    pub fn connect(self: &Arc<Self>, edge: &str) -> Connected {
        *self.connections.lock().expect("roster lock poisoned").entry(edge.to_string()).or_default() += 1;
        Connected { roster: self.clone(), edge: edge.to_string() }
    }

    pub fn is_connected(&self, edge: &str) -> bool {
        self.connections.lock().expect("roster lock poisoned").contains_key(edge)
    }

    /// With several cores: read the edge leases for each edge's owning core.
    pub fn read_leases(&self, keeper: Arc<Keeper>) {
        let _ = self.leases.set(keeper);
    }

    /// This core's id among several (`None` without leases).
    pub fn core_id(&self) -> Option<&str> {
        self.leases.get().map(|k| k.core_id())
    }

    /// Who holds each edge's lease now (empty without leases).
    pub async fn lease_owners(&self) -> Result<BTreeMap<String, String>, Refusal> {
        match self.leases.get() {
            Some(keeper) => keeper.lease_owners().await,
            None => Ok(BTreeMap::new()),
        }
    }

    /// Every known edge's status, read from ClickHouse (and the leases) now.
    /// Leases that cannot be read leave `owning_core` empty (a retirement
    /// reads them itself and is refused then).
    pub async fn statuses(&self, store: &Store, now_ms: u64) -> Result<Vec<EdgeStatus>, StoreError> {
        let (ledger, retirements) = tokio::try_join!(store.edge_ledger(), store.edge_retirements())?;
        let owners = self.lease_owners().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the edge leases: owning cores unknown");
            BTreeMap::new()
        });
        Ok(statuses(&self.enrolled, &ledger, &retirements, |e| self.is_connected(e), &owners, now_ms))
    }

    pub async fn refresh(&self, store: &Store, metrics: &Metrics) -> Result<(), StoreError> {
        let before = self.changes.load(Ordering::SeqCst);
        let all = self.statuses(store, tally_model::timestamp::now_ms()).await?;
        {
            let mut set = self.retired.write().expect("roster lock poisoned");
            if self.changes.load(Ordering::SeqCst) == before {
                *set = all.iter().filter(|s| s.retired).map(|s| s.edge.clone()).collect();
            }
        }
        for s in all.iter().filter(|s| s.enrolled) {
            let label = EdgeLabel { edge: s.edge.clone() };
            metrics.edge_retired.get_or_create(&label).set(s.retired as i64);
            match s.lag_seconds {
                Some(lag) if s.holds_finality => {
                    metrics.edge_watermark_lag.get_or_create(&label).set(lag as i64);
                }
                // Retired or never committed: no lag to alert on.
                _ => {
                    metrics.edge_watermark_lag.remove(&label);
                }
            }
        }
        Ok(())
    }
}

/// Every `interval`: the retired set from ClickHouse, and the per-edge metrics.
pub async fn run(store: Store, roster: Arc<Roster>, metrics: Arc<Metrics>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        if let Err(e) = roster.refresh(&store, &metrics).await {
            tracing::warn!(error = %e, "reading the edges' state failed; will retry");
        }
    }
}
