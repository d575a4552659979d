//! Rollups that heal themselves: no operator runs `tally billing reconcile
//! --repair` after a crash.
//!
//! # Why rollups drift
//! One INSERT into a landing table (`clicks_by_second`, `refused_events`,
//! `click_dimensions`: [`Family`]) writes its own part first and then each
//! materialized view's part. A server killed in between keeps the landing
//! rows and loses some view rows. The commit protocol then probes, finds the
//! landing rows present and inserts only the rest (`Decision::Resume`), so
//! the rollups stay short of those rows while billing (click records) and
//! `1s` series stay exact.
//!
//! # What is repaired, when
//! * After a resumed commit: the committer passes the hours of the rows an
//!   earlier attempt had already written ([`plan::resumed`]) to
//!   [`Requests`], after answering the edges; the healer checks them once
//!   they are settled (below). Nothing holds up the answer.
//! * Every `interval` (default [`INTERVAL`]): the last [`RECENT_HOURS`] hours
//!   plus whatever is requested, for every family, at the minute and hour
//!   steps and the whole days holding them at the day step
//!   ([`plan::checks`]). A failed pass returns its requests and is retried
//!   on the next tick.
//!
//! Each check measures what the rollup lacks (`drift_*.sql`, per tenant and
//! hour) and, only if that is not nothing, runs `repair_*.sql` over the same
//! range, which adds exactly the difference (counts and spend as deltas,
//! users as a union). Each repaired (tenant, hour, family, step) is logged
//! and counted (`tally_core_rollup_repairs`, `tally_core_rollup_drift_clicks`).
//!
//! # Why a repair never double counts
//! A view's part is written a moment *after* its landing part is visible, so
//! a repair that compared all landing rows with the rollup could take an
//! INSERT in flight for drift and add what its view is about to add. Both
//! queries therefore count only landing rows of batches the ledger recorded
//! `Committed` more than [`SETTLE_SECS`] before the pass began: the committer
//! writes `Committed` only after every INSERT of the batch returned, and an
//! INSERT returns only after its views' parts are in, so those rows' view
//! rows (if they were not lost) are in every snapshot the repair reads. Rows
//! of batches in flight or interrupted are left out of the landing side
//! while whatever their views already wrote is in the rollup side: that can
//! only make a repair add *less* (never more), and the batch is counted on a
//! later pass once committed. The margin covers the ledger's whole-second
//! `recorded_at` and a clock skew of a few seconds between the core that
//! commits and the one that heals. The same rule holds for the operator's
//! `--repair`, which runs the same SQL. Repairing again afterwards adds
//! nothing; two repairs of one rollup *at the same moment* would both add
//! the gap, so they are serialized per server (`Store::repair_rollup`: a
//! repair while another of the same rollup runs is refused, and this pass
//! is retried on the next tick, when it measures the gap anew).
//!
//! The count logged is what the drift query found just before the repair;
//! with the same cutoff the rollup can only have grown in between, so the
//! repair added at most that.
//!
//! # Limits
//! Landing rows of a batch that stays `Started` forever (an edge that lost
//! its spool mid-commit) are never repaired into the rollups, and whatever
//! views they reached may hide other drift of the same rollup key. A rollup
//! holding *more* than its landing table is never changed, only reported by
//! `tally billing reconcile`.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::clickhouse::store::Family;
use crate::clickhouse::{Store, StoreError};
use crate::metrics::{Metrics, RollupLabel};
use crate::resolution::Resolution;
use plan::Dirty;

/// Default pause between two passes (`billing.rollup_heal_interval_ms`).
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Hours up to the current one checked on every pass.
pub const RECENT_HOURS: u32 = 3;
/// Only batches recorded committed this long before a pass count as landed.
pub const SETTLE_SECS: u32 = 5;

/// The cutoff of a repair started at `now` (seconds): see the module above.
pub fn committed_before(now: u32) -> u32 {
    now.saturating_sub(SETTLE_SECS)
}

/// As the query API names steps.
fn step_name(step: Resolution) -> &'static str {
    match step {
        Resolution::Second => "1s",
        Resolution::Minute => "1m",
        Resolution::Hour => "1h",
        Resolution::Day => "1d",
    }
}

fn now_secs() -> u32 {
    (tally_model::timestamp::now_ms() / 1000) as u32
}

/// Hours resumed commits touched, each due once its batch is settled.
#[derive(Default)]
pub struct Requests {
    due: Mutex<BTreeMap<Dirty, u32>>,
    added: Notify,
}

impl Requests {
    /// Called after a group with resumed batches committed.
    pub fn add(&self, dirty: BTreeSet<Dirty>) {
        if dirty.is_empty() {
            return;
        }
        // +1: the ledger's recorded_at is a whole second at most this old.
        let ready = now_secs() + SETTLE_SECS + 1;
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        for d in dirty {
            due.insert(d, ready);
        }
        self.added.notify_one();
    }

    fn take_due(&self, now: u32) -> BTreeSet<Dirty> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let ready: BTreeSet<Dirty> = due.iter().filter(|(_, at)| **at <= now).map(|(d, _)| *d).collect();
        due.retain(|d, _| !ready.contains(d));
        ready
    }

    fn put_back(&self, dirty: BTreeSet<Dirty>, now: u32) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        for d in dirty {
            due.entry(d).or_insert(now);
        }
    }
}

/// One (tenant, bucket) of a rollup the healer added rows to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub family: Family,
    pub step: Resolution,
    pub tenant: String,
    /// The hour (the day for day rollups).
    pub bucket: u32,
    pub clicks: u64,
    pub spend_micros: u64,
}

pub async fn run(store: Store, metrics: Arc<Metrics>, requests: Arc<Requests>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = requests.added.notified() => {
                // The requested batches count as landed only once settled.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(SETTLE_SECS as u64 + 2)) => {}
                    _ = tally_http::serve::stopped(&mut shutdown) => return,
                }
            }
            _ = tally_http::serve::stopped(&mut shutdown) => return,
        }
        let now = now_secs();
        let requested = requests.take_due(now);
        match metrics.clickhouse("heal", pass(&store, now, &requested)).await {
            Ok(repairs) => {
                for r in repairs {
                    let label = RollupLabel { family: r.family.name(), step: step_name(r.step) };
                    metrics.rollup_repairs.get_or_create(&label).inc();
                    metrics.rollup_drift_clicks.get_or_create(&label).inc_by(r.clicks);
                    tracing::warn!(
                        tenant = %r.tenant, bucket = %tally_model::timestamp::format_millis(r.bucket as u64 * 1000), family = r.family.name(),
                        step = step_name(r.step), clicks = r.clicks, spend_micros = r.spend_micros,
                        "rollup repaired: it lacked rows its landing table holds"
                    );
                }
            }
            Err(e) if e.is_repair_running() => {
                tracing::info!(error = %e, "another repair of a rollup is running (tally billing reconcile --repair?); this pass is retried on the next tick");
                requests.put_back(requested, now);
            }
            Err(e) => {
                metrics.rollup_heal_failures.inc();
                tracing::warn!(error = %e, "rollup healing pass failed; will retry");
                requests.put_back(requested, now);
            }
        }
    }
}

/// One pass at `now` over the recent hours and `requested`; returns what
/// it repaired. Safe to repeat, and beside another repair through the same
/// server (see the module docs).
#[tracing::instrument(name = "rollup_heal_pass", skip_all, fields(requested = requested.len()))]
pub async fn pass(store: &Store, now: u32, requested: &BTreeSet<Dirty>) -> Result<Vec<Repair>, StoreError> {
    let cutoff = committed_before(now);
    let mut repairs = Vec::new();
    for c in plan::checks(now, RECENT_HOURS, requested) {
        let drift = store.rollup_drift(c.family, c.step, c.from, c.to, cutoff).await?;
        if drift.is_empty() {
            continue;
        }
        store.repair_rollup(c.family, c.step, c.from, c.to, cutoff).await?;
        repairs.extend(drift.into_iter().map(|(tenant, t)| Repair {
            family: c.family,
            step: c.step,
            tenant,
            bucket: t.hour,
            clicks: t.clicks,
            spend_micros: t.spend_micros,
        }));
    }
    Ok(repairs)
}
