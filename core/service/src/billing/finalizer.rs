//! The shell around [`super::plan`]: every `interval`, finalize the hours
//! every unretired edge's watermark has passed and write adjustments for
//! late clicks in the `lookback` before that.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::plan::{deltas, final_before, hours, HOUR_SECS};
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
}

pub async fn run(store: Store, metrics: Arc<Metrics>, interval: Duration, lookback_hours: u32, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        match metrics.clickhouse("billing", pass(&store, lookback_hours)).await {
            Ok(p) => {
                metrics.billing_hours_finalized.inc_by(p.finalized.len() as u64);
                metrics.billing_adjustments.inc_by(p.adjustments as u64);
                if !p.finalized.is_empty() || p.adjustments > 0 {
                    tracing::info!(hours = p.finalized.len(), final_rows = p.final_rows, adjustments = p.adjustments, "billing finalized");
                }
            }
            Err(e) => tracing::warn!(error = %e, "billing finalization pass failed; will retry"),
        }
    }
}

/// One finalization pass; safe to repeat (it writes only differences).
#[tracing::instrument(name = "billing_pass", skip_all)]
pub async fn pass(store: &Store, lookback_hours: u32) -> Result<Pass, StoreError> {
    // A retired edge adds nothing more (see `crate::edges`): it holds no hour back.
    let (watermarks, retirements) = tokio::try_join!(store.edge_watermarks(), store.edge_retirements())?;
    let watermarks: Vec<u64> = unretired(watermarks, &retirements).into_iter().map(|w| w.watermark_ms).collect();
    let Some(end) = final_before(&watermarks) else { return Ok(Pass::default()) };
    let from = end.saturating_sub(lookback_hours * HOUR_SECS);
    let marked: BTreeSet<u32> = store.final_hours(from, end).await?.into_iter().collect();
    let live = store.billing_live_all(from, end).await?;
    let billed = store.billing_statements(from, end).await?;
    let todo = deltas(&live, &billed, &marked);
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
    Ok(Pass { finalized, final_rows: todo.len() - adjustments, adjustments })
}
