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
//! Known gap: in cluster mode (`[clickhouse] cluster`) the `tally` tables are
//! Distributed and hold no parts of their own, so a pass finds nothing to
//! drop; the shards' `tally_shard` tables are not pruned.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::billing::plan::final_before;
use crate::clickhouse::{Store, StoreError};
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

pub async fn run(store: Store, metrics: Arc<Metrics>, retention: RetentionSection, lookback_hours: u32, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        let now = tally_model::timestamp::now_ms() / 1000;
        match metrics.clickhouse("retention", pass(&store, &retention, lookback_hours, now as u32)).await {
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

/// Drops every partition past its family's retention at `now` (seconds).
pub async fn pass(store: &Store, retention: &RetentionSection, lookback_hours: u32, now: u32) -> Result<Vec<Dropped>, StoreError> {
    let mut dropped = Vec::new();
    if retention.is_empty() {
        return Ok(dropped);
    }
    let watermarks: Vec<u64> = store.edge_watermarks().await?.into_iter().map(|w| w.watermark_ms).collect();
    let final_before = final_before(&watermarks);
    for family in Family::ALL {
        let Some(cutoff) = plan::cutoff(family, retention.days(family), now, lookback_hours, final_before) else { continue };
        for &table in family.tables() {
            for partition in plan::expired(&store.partitions(table).await?, cutoff) {
                store.drop_partition(table, partition).await?;
                tracing::info!(table, partition, ?family, "retention: dropped a month past its retention");
                dropped.push(Dropped { table, partition });
            }
        }
    }
    Ok(dropped)
}
