//! Runs a tenant's filter versions over requests' clicks, off the async
//! workers (a hostile plugin may burn its whole deadline), one call for the
//! requests that queued while the previous call ran ([`super::coalesce`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use tally_filter::answer::Answer;
use tally_filter::batch::Columns;
use tally_filter::contract::ClickBatch;
use tally_filter::host::SharedPlugin;
use tally_filter::manifest::Mode;
use tally_model::tenant::TenantId;

use super::failure::NoAnswer;
use super::rollout::{combine_parts, Judged, Ran};
use super::slot::{Loaded, TenantFilter};
use crate::metrics::{Metrics, VersionLabel};

/// The verdicts for one request's valid clicks (`keys`: their ids).
pub async fn judge(tenant: &TenantId, filter: Arc<TenantFilter>, columns: Columns, keys: Vec<u128>, metrics: &Arc<Metrics>) -> Judged {
    let (reply, answered) = oneshot::channel();
    if filter.queue.push(columns, keys, reply) {
        let mut runner = Runner { tenant: tenant.clone(), filter, metrics: metrics.clone(), done: false };
        tokio::task::spawn_blocking(move || runner.run());
    }
    answered.await.unwrap_or_else(|_| Judged::failed(NoAnswer::RunnerStopped))
}

/// Drains a tenant filter's queue, one call per group.
struct Runner {
    tenant: TenantId,
    filter: Arc<TenantFilter>,
    metrics: Arc<Metrics>,
    done: bool,
}

impl Runner {
    fn run(&mut self) {
        while let Some(group) = self.filter.queue.next() {
            let lens: Vec<usize> = group.parts.iter().map(|p| p.0).collect();
            let batch = group.columns.into_batch();
            // The host turns traps into errors; anything else must not leave
            // the queue without a runner.
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| call_versions(&self.tenant, &self.filter, &batch, group.keys.len(), &self.metrics)));
            let judged: Vec<Judged> = match ran {
                // Each request is combined on its own, as if called alone.
                Ok((active, candidate)) => combine_parts(active, candidate, &group.keys, &lens),
                Err(_) => lens.iter().map(|_| Judged::failed(NoAnswer::HostPanicked)).collect(),
            };
            for (judged, (_, reply)) in judged.into_iter().zip(group.parts) {
                // A request whose client went away no longer listens.
                let _ = reply.send(judged);
            }
        }
        self.done = true;
    }
}

impl Drop for Runner {
    /// A runner dropped before it emptied its queue (never started: the
    /// runtime is shutting down) fails the requests waiting in it.
    fn drop(&mut self) {
        if !self.done {
            self.filter.queue.abandon();
        }
    }
}

/// A version's result, and whether it is out of service (quarantined, not
/// loaded, or poisoned).
fn call(loaded: &Loaded, batch: &ClickBatch) -> (Result<Answer, NoAnswer>, bool) {
    let plugin: &SharedPlugin = match &loaded.plugin {
        Ok(p) => p,
        Err(load_error) => return (Err(NoAnswer::NotLoaded(load_error.clone())), true),
    };
    // Poisoned only if the host panicked mid-call: that instance is never trusted again.
    let Ok(mut p) = plugin.lock() else { return (Err(NoAnswer::Poisoned { version: loaded.version }), true) };
    let result = p.run(batch).map_err(|failure| NoAnswer::Call { plugin: p.name().to_string(), version: loaded.version, failure });
    (result, p.is_quarantined())
}

/// One call of the active version, and of the candidate if one is in
/// rollout.
fn call_versions(tenant: &TenantId, filter: &TenantFilter, batch: &ClickBatch, clicks: usize, metrics: &Metrics) -> (Ran, Option<(Ran, Mode)>) {
    let started = Instant::now();
    let (active, active_quarantined) = call(&filter.active, batch);
    let candidate = filter.candidate.as_ref().map(|(loaded, mode)| (call(loaded, batch), *mode));
    let label = Metrics::tenant(tenant.as_str());
    metrics.filter_calls.get_or_create(&label).inc();
    metrics.filter_clicks.get_or_create(&label).inc_by(clicks as u64);
    metrics.filter_seconds.get_or_create(&label).inc_by(started.elapsed().as_secs_f64());
    metrics.filter_call_seconds.0.observe(started.elapsed().as_secs_f64());
    let mut quarantined = active_quarantined;
    let record = |loaded: &Loaded, role: &'static str, result: &Result<Answer, NoAnswer>| {
        let v = VersionLabel { tenant: tenant.to_string(), role, version: loaded.version };
        if let Err(reason) = result {
            metrics.filter_version_failures.get_or_create(&v).inc();
            tracing::warn!(%tenant, role, version = loaded.version, %reason, "tenant filter failed");
        }
    };
    record(&filter.active, "active", &active);
    let candidate = candidate.map(|((result, q), mode)| {
        let loaded = &filter.candidate.as_ref().expect("ran a candidate").0;
        record(loaded, "candidate", &result);
        quarantined |= q;
        (Ran { version: loaded.version, result }, mode)
    });
    metrics.filter_quarantined.get_or_create(&label).set(quarantined as i64);
    (Ran { version: filter.active.version, result: active }, candidate)
}
