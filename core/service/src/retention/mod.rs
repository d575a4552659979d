//! Retention: old monthly partitions of each table family dropped, on
//! ClickHouse 18.16 (no TTL) and modern servers alike.
//!
//! # Design
//! Every table a family holds is partitioned by `toYYYYMM` of its time
//! column ([`plan::Family::tables`]), so dropping a month is `ALTER TABLE ..
//! DROP PARTITION` (`deploy/clickhouse/queries/drop_partition.sql`): no
//! mutation, no rewrite, the same on every version. Once an hour (the
//! finalizing core only, like billing) [`pass`] lists each table's active
//! partitions (`table_partitions.sql`) and drops those [`plan::expired`]
//! names. A month goes only when all of it is older than the cutoff, so
//! data lives up to a month past its retention.
//!
//! # What is never dropped
//! * Anything without a `[retention]` setting: the default keeps
//!   everything.
//! * Anything inside billing's lookback (`billing.lookback_hours`), whatever
//!   the setting: late clicks still adjust those hours.
//! * Click records and refused events of an hour that is not final (an
//!   edge's watermark holds it back): billing counts those hours from them.
//! * Billing statements and final-hour marks, the ledger (`batches`), and
//!   plugin verdicts: no family names them.
//!
//! Dropped landing rows are gone for `tally billing reconcile` too: keep a
//! landing table at least as long as the ranges you reconcile.
//!
//! # Cluster mode
//! The `tally` tables are Distributed and hold no parts of their own: a pass
//! lists and drops the partitions of the `tally_shard` tables on every
//! server of `[clickhouse]` (`url` and `servers`), by the same cutoffs
//! (finality read once, through the Distributed tables). On a Replicated
//! table a drop reaches every replica of its shard, so the replicas' own
//! drops that follow find nothing or are no-ops; a server that cannot be
//! reached fails the pass after the others were pruned (retried in an hour).
//! With several cores the pass runs on the finalizer leader only.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::billing::plan::final_before;
use crate::clickhouse::{Store, StoreError};
use crate::config::ClickHouseSection;
use crate::metrics::Metrics;
use plan::Family;

/// How often a finalizing core looks for expired partitions.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// `[retention]`: days each family is kept; an absent family is kept forever.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    pub click_records_days: Option<u32>,
    pub landing_days: Option<u32>,
    pub dimensions_days: Option<u32>,
    pub refused_days: Option<u32>,
    pub minute_rollups_days: Option<u32>,
    pub hour_rollups_days: Option<u32>,
    pub day_rollups_days: Option<u32>,
}

impl RetentionSection {
    pub fn days(&self, family: Family) -> Option<u32> {
        match family {
            Family::ClickRecords => self.click_records_days,
            Family::Landing => self.landing_days,
            Family::Dimensions => self.dimensions_days,
            Family::Refused => self.refused_days,
            Family::MinuteRollups => self.minute_rollups_days,
            Family::HourRollups => self.hour_rollups_days,
            Family::DayRollups => self.day_rollups_days,
        }
    }

    pub fn is_empty(&self) -> bool {
        Family::ALL.iter().all(|&f| self.days(f).is_none())
    }
}

/// A partition dropped by a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub table: &'static str,
    pub partition: u32,
}

/// Runs a pass every [`INTERVAL`]: finality read through `store`,
/// partitions pruned on its server, or in cluster mode on every server of
/// `clickhouse` (see [`pass`]).
pub async fn run(
    store: Store,
    clickhouse: ClickHouseSection,
    metrics: Arc<Metrics>,
    retention: RetentionSection,
    lookback_hours: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        let now = tally_model::timestamp::now_ms() / 1000;
        let prune_all = async {
            let (servers, unreachable) = servers(&store, &clickhouse).await;
            let pruned = pass(&store, &servers, &retention, lookback_hours, now as u32).await;
            unreachable.map_or(pruned, Err)
        };
        match metrics.clickhouse("retention", prune_all).await {
            Ok(dropped) => {
                metrics.retention_partitions_dropped.inc_by(dropped.len() as u64);
            }
            Err(e) => {
                metrics.retention_failures.inc();
                tracing::warn!(error = %e, "retention pass failed (nothing more dropped); retried in an hour");
            }
        }
    }
}

/// The servers a pass prunes: the store's own, or each server of the
/// cluster (connected for this pass, so one that is down at start does not
/// keep the core from starting), and the first that could not be reached.
async fn servers(store: &Store, clickhouse: &ClickHouseSection) -> (Vec<Store>, Option<StoreError>) {
    let Some(cluster) = clickhouse.cluster.as_deref() else { return (vec![store.clone()], None) };
    let (mut servers, mut unreachable) = (Vec::new(), None);
    for url in std::iter::once(&clickhouse.url).chain(&clickhouse.servers) {
        let (user, password) = (clickhouse.user.as_deref(), clickhouse.password.as_deref());
        match async { Store::connect(url, user, password).await?.in_cluster(Some(cluster)).await }.await {
            Ok(server) => servers.push(server),
            Err(e) => {
                unreachable.get_or_insert(e);
            }
        }
    }
    (servers, unreachable)
}

/// Drops every partition past its family's retention at `now` (seconds) on
/// each of `servers`: the store itself on one server, every server of a
/// cluster (their `tally_shard` tables). Finality is read through `store`.
pub async fn pass(store: &Store, servers: &[Store], retention: &RetentionSection, lookback_hours: u32, now: u32) -> Result<Vec<Dropped>, StoreError> {
    let mut dropped = Vec::new();
    if retention.is_empty() {
        return Ok(dropped);
    }
    let watermarks: Vec<u64> = store.edge_watermarks().await?.into_iter().map(|w| w.watermark_ms).collect();
    let final_before = final_before(&watermarks);
    let cutoffs: Vec<(Family, u32)> =
        Family::ALL.into_iter().filter_map(|f| Some((f, plan::cutoff(f, retention.days(f), now, lookback_hours, final_before)?))).collect();
    let mut failed = None;
    for server in servers {
        // One server away does not keep the others unpruned.
        if let Err(e) = prune(server, &cutoffs, &mut dropped).await {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(dropped), Err)
}

async fn prune(server: &Store, cutoffs: &[(Family, u32)], dropped: &mut Vec<Dropped>) -> Result<(), StoreError> {
    for &(family, cutoff) in cutoffs {
        for &table in family.tables() {
            for partition in plan::expired(&server.partitions(table).await?, cutoff) {
                server.drop_partition(table, partition).await?;
                tracing::info!(database = server.parts_database(), table, partition, ?family, "retention: dropped a month past its retention");
                dropped.push(Dropped { table, partition });
            }
        }
    }
    Ok(())
}
