//! Runs a tenant's filter versions over a request's batch, off the async
//! workers (a hostile plugin may burn its whole deadline).

use std::sync::Arc;
use std::time::Instant;

use tally_filter::answer::Answer;
use tally_filter::host::{ClickBatch, Failure, SharedPlugin};
use tally_model::tenant::TenantId;

use super::rollout::{combine, Compared, Ran, Rollout};
use super::slot::{Loaded, TenantFilter};
use crate::metrics::{Metrics, VersionLabel};

/// The answer for the request's valid clicks (or why there is none) and,
/// with a candidate in rollout, what both versions answered per click.
pub struct Judged {
    pub answer: Result<Answer, String>,
    pub rollout: Option<(Rollout, Vec<Compared>)>,
}

fn call(loaded: &Loaded, batch: &ClickBatch) -> (Result<Answer, String>, bool) {
    let plugin: &SharedPlugin = match &loaded.plugin {
        Ok(p) => p,
        Err(load_error) => return (Err(load_error.clone()), true),
    };
    let mut p = plugin.lock().expect("plugin lock poisoned");
    let result = p.run(batch).map_err(|f| match f {
        Failure::Quarantined => format!("plugin {} (version {}) is {f}", p.name(), loaded.version),
        Failure::Failed(e) => format!("plugin {} (version {}) failed: {e}", p.name(), loaded.version),
        Failure::NoCapacity(e) => format!("plugin {} (version {}) could not run: {e}", p.name(), loaded.version),
    });
    (result, p.is_quarantined())
}

pub async fn judge(tenant: &TenantId, filter: Arc<TenantFilter>, batch: ClickBatch, keys: Vec<u128>, metrics: &Metrics) -> Judged {
    let started = Instant::now();
    let f = filter.clone();
    let ran = tokio::task::spawn_blocking(move || {
        let active = call(&f.active, &batch);
        let candidate = f.candidate.as_ref().map(|(loaded, mode)| (call(loaded, &batch), *mode));
        (active, candidate)
    })
    .await;
    let label = Metrics::tenant(tenant.as_str());
    metrics.filter_calls.get_or_create(&label).inc();
    metrics.filter_seconds.get_or_create(&label).inc_by(started.elapsed().as_secs_f64());
    let ((active, active_quarantined), candidate) = match ran {
        Ok(ran) => ran,
        Err(e) => return Judged { answer: Err(format!("filter task failed: {e}")), rollout: None },
    };
    let mut quarantined = active_quarantined;
    let record = |loaded: &Loaded, role: &'static str, result: &Result<Answer, String>| {
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
    let (answer, rollout) = combine(Ran { version: filter.active.version, result: active }, candidate, &keys);
    Judged { answer, rollout }
}
