//! Runs a tenant's filter versions over requests' clicks, off the async
//! workers (a hostile plugin may burn its whole deadline), one call for the
//! requests that queued while the previous call ran ([`super::coalesce`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use tally_filter::answer::Answer;
use tally_filter::batch::Columns;
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

/// Where a queued request's part of a call's answer goes.
pub type Reply = oneshot::Sender<Judged>;

impl Judged {
    fn failed(reason: &str) -> Judged {
        Judged { answer: Err(reason.to_string()), rollout: None }
    }

    /// Each request's part of a call's answer, `lens[i]` clicks each.
    fn split(self, lens: &[usize]) -> Vec<Judged> {
        let answers: Vec<Result<Answer, String>> = match self.answer {
            Ok(a) => a.split(lens).into_iter().map(Ok).collect(),
            Err(e) => lens.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut compared = self.rollout.map(|(r, c)| (r, c.into_iter()));
        answers
            .into_iter()
            .zip(lens)
            .map(|(answer, &len)| Judged { answer, rollout: compared.as_mut().map(|(r, c)| (*r, c.by_ref().take(len).collect())) })
            .collect()
    }
}

/// The verdicts for one request's valid clicks (`keys`: their ids).
pub async fn judge(tenant: &TenantId, filter: Arc<TenantFilter>, columns: Columns, keys: Vec<u128>, metrics: &Arc<Metrics>) -> Judged {
    let (reply, answered) = oneshot::channel();
    if filter.queue.push(columns, keys, reply) {
        let mut runner = Runner { tenant: tenant.clone(), filter, metrics: metrics.clone(), done: false };
        tokio::task::spawn_blocking(move || runner.run());
    }
    answered.await.unwrap_or_else(|_| Judged::failed("the filter runner stopped before this request's turn"))
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
            let judged = std::panic::catch_unwind(AssertUnwindSafe(|| call_versions(&self.tenant, &self.filter, &batch, &group.keys, &self.metrics)))
                .unwrap_or_else(|_| Judged::failed("the filter host panicked"));
            for (judged, (_, reply)) in judged.split(&lens).into_iter().zip(group.parts) {
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

fn call(loaded: &Loaded, batch: &ClickBatch) -> (Result<Answer, String>, bool) {
    let plugin: &SharedPlugin = match &loaded.plugin {
        Ok(p) => p,
        Err(load_error) => return (Err(load_error.clone()), true),
    };
    // Poisoned only if the host panicked mid-call: that instance is never trusted again.
    let mut p = match plugin.lock() {
        Ok(p) => p,
        Err(_) => return (Err(format!("plugin version {} is unusable after a host panic", loaded.version)), true),
    };
    let result = p.run(batch).map_err(|f| match f {
        Failure::Quarantined => format!("plugin {} (version {}) is {f}", p.name(), loaded.version),
        Failure::Failed(e) => format!("plugin {} (version {}) failed: {e}", p.name(), loaded.version),
        Failure::NoCapacity(e) => format!("plugin {} (version {}) could not run: {e}", p.name(), loaded.version),
    });
    (result, p.is_quarantined())
}

/// One call of the active version, and of the candidate if one is in
/// rollout, combined into one answer.
fn call_versions(tenant: &TenantId, filter: &TenantFilter, batch: &ClickBatch, keys: &[u128], metrics: &Metrics) -> Judged {
    let started = Instant::now();
    let (active, active_quarantined) = call(&filter.active, batch);
    let candidate = filter.candidate.as_ref().map(|(loaded, mode)| (call(loaded, batch), *mode));
    let label = Metrics::tenant(tenant.as_str());
    metrics.filter_calls.get_or_create(&label).inc();
    metrics.filter_clicks.get_or_create(&label).inc_by(keys.len() as u64);
    metrics.filter_seconds.get_or_create(&label).inc_by(started.elapsed().as_secs_f64());
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
    let (answer, rollout) = combine(Ran { version: filter.active.version, result: active }, candidate, keys);
    Judged { answer, rollout }
}

#[cfg(test)]
mod tests {
    use tally_filter::answer::Tag;

    use super::*;

    #[test]
    fn a_calls_answer_splits_per_request() {
        let tag = |click: u32| Tag { click, key: "k".into(), value: "v".into() };
        let compared = |i: u16| Compared { applied_candidate: i % 2 == 0, active_code: i, candidate_code: i };
        let rollout = Rollout { active_version: 1, candidate_version: 2, mode: 1 };
        let whole = Judged { answer: Ok(Answer { codes: vec![0, 1, 2], tags: vec![tag(2)] }), rollout: Some((rollout, (0..3).map(compared).collect())) };
        let parts = whole.split(&[2, 1]);
        assert_eq!(parts[0].answer, Ok(Answer { codes: vec![0, 1], tags: vec![] }));
        assert_eq!(parts[1].answer, Ok(Answer { codes: vec![2], tags: vec![tag(0)] }));
        assert_eq!(parts[0].rollout, Some((rollout, vec![compared(0), compared(1)])));
        assert_eq!(parts[1].rollout, Some((rollout, vec![compared(2)])));
        // A failed call fails every request in it.
        let parts = Judged::failed("trap").split(&[1, 4]);
        assert!(parts.iter().all(|j| j.answer == Err("trap".to_string()) && j.rollout.is_none()));
    }
}
