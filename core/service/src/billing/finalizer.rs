//! The shell around [`super::plan`]: every `interval`, finalize the hours
//! every unretired edge's watermark has passed and write adjustments for
//! late clicks in the `lookback` before that.
//!
//! A pass reads the click records only when [`super::plan::hours_to_bill`]
//! names an hour, and then compares every hour of the lookback (one read, so
//! a click id is billed once, in the hour of its first record, and an id a
//! late copy moves to an earlier hour leaves its old one): the task keeps
//! the last successful pass's committed batches per hour in memory, so it
//! starts (process start, or leadership won on a cluster) by billing its
//! whole lookback once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::plan::{batches_per_hour, deltas, final_before, hours, hours_to_bill, HourBatches, HOUR_SECS};
use crate::clickhouse::store::StatementRow;
use crate::clickhouse::{Store, StoreError};
use crate::edges::status::unretired;
use crate::metrics::Metrics;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Hours marked final in this pass.
    pub finalized: Vec<u32>,
    pub final_rows: usize,
    pub adjustments: usize,
    /// Hours billed again from the click records.
    pub recomputed: usize,
    /// Batches per hour of the lookback, for the next pass.
    pub batches_per_hour: BTreeMap<u32, HourBatches>,
}

pub async fn run(store: Store, metrics: Arc<Metrics>, interval: Duration, lookback_hours: u32, mut shutdown: watch::Receiver<bool>) {
    let mut last: Option<BTreeMap<u32, HourBatches>> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        match metrics.clickhouse("billing", pass(&store, lookback_hours, last.as_ref())).await {
            Ok(p) => {
                metrics.billing_hours_finalized.inc_by(p.finalized.len() as u64);
                metrics.billing_adjustments.inc_by(p.adjustments as u64);
                metrics.billing_hours_recomputed.inc_by(p.recomputed as u64);
                if !p.finalized.is_empty() || p.adjustments > 0 {
                    tracing::info!(hours = p.finalized.len(), final_rows = p.final_rows, adjustments = p.adjustments, "billing finalized");
                }
                last = Some(p.batches_per_hour);
            }
            Err(e) => tracing::warn!(error = %e, "billing finalization pass failed; will retry"),
        }
    }
}

/// One finalization pass; safe to repeat (it writes only differences).
/// `last` is the previous successful pass's `batches_per_hour`.
#[tracing::instrument(name = "billing_pass", skip_all)]
pub async fn pass(store: &Store, lookback_hours: u32, last: Option<&BTreeMap<u32, HourBatches>>) -> Result<Pass, StoreError> {
    // A retired edge adds nothing more (see `crate::edges`): it holds no hour back.
    let (watermarks, retirements) = tokio::try_join!(store.edge_watermarks(), store.edge_retirements())?;
    let watermarks: Vec<u64> = unretired(watermarks, &retirements).into_iter().map(|w| w.watermark_ms).collect();
    let Some(end) = final_before(&watermarks) else { return Ok(Pass::default()) };
    let from = end.saturating_sub(lookback_hours * HOUR_SECS);
    let marked: BTreeSet<u32> = store.final_hours(from, end).await?.into_iter().collect();
    // Read before the click records: a batch inserting after this read is
    // open or committed at the next pass, so its hours are billed again then.
    let batches = batches_per_hour(&store.billing_batch_spans(from, end).await?, from, end);
    let recompute = hours_to_bill(from, end, &marked, &batches, last);
    // `recompute` decides only whether the click records are read. Once
    // they are, every hour of the lookback is compared: a late copy of a
    // click id with an earlier first record moves the id out of an hour
    // that saw no new batch, and that hour gets its adjustment too.
    let todo = if recompute.is_empty() {
        Vec::new()
    } else {
        let (live, billed) = tokio::try_join!(store.billing_live_all(from, end), store.billing_statements(from, end))?;
        deltas(&live, &billed, &marked)
    };
    let now = (tally_model::timestamp::now_ms() / 1000) as u32;
    let rows: Vec<StatementRow> = todo
        .iter()
        .map(|d| StatementRow {
            tenant: d.tenant.clone(),
            hour: d.hour,
            ad_id: d.ad_id,
            kind: if d.adjustment { "adjustment" } else { "final" }.into(),
            clicks: d.clicks,
            spend_micros: d.spend_micros,
            recorded_at: now,
        })
        .collect();
    if !rows.is_empty() {
        store.insert_statements(&rows).await?;
    }
    // Marked only after the statements are in: a crash in between is
    // repaired by the next pass, which finds the deltas already written.
    let finalized: Vec<u32> = hours(from, end).filter(|h| !marked.contains(h)).collect();
    if !finalized.is_empty() {
        store.mark_final(&finalized, now).await?;
    }
    let adjustments = todo.iter().filter(|d| d.adjustment).count();
    Ok(Pass { finalized, final_rows: todo.len() - adjustments, adjustments, recomputed: recompute.len(), batches_per_hour: batches })
}
