//! Synthetic clicks with exact ground truth.
//!
//! [`ClickGen`] is deterministic for a seed: a hot ad takes a configurable
//! share of traffic, timestamps jitter backwards (out of order), and a share
//! of events are exact re-sends of earlier ones (duplicates). It records the
//! truth — what a correct pipeline must count per (ad, second) — so tests
//! can compare click for click. [`drive`] posts its batches to an edge at a
//! target rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use tally_http::client::Client;

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub seed: u64,
    /// Ads are numbered 1..=ads; ad 1 is the hot one.
    pub ads: u64,
    pub hot_share: f64,
    pub duplicate_share: f64,
    /// Timestamps are `now - U(0, jitter_ms)`.
    pub jitter_ms: u64,
    pub users: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { seed: 1, ads: 50, hot_share: 0.5, duplicate_share: 0.02, jitter_ms: 3000, users: 10_000 }
    }
}

/// Counts a correct pipeline must report for one (ad, second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truth {
    pub clicks: u64,
    pub spend_micros: u64,
}

pub struct ClickGen {
    opts: GenOptions,
    rng: fastrand::Rng,
    next_id: u64,
    recent: Vec<String>,
    /// (ad, second) -> truth
    pub truth: BTreeMap<(u64, u64), Truth>,
    pub unique: u64,
    pub duplicates: u64,
}

impl ClickGen {
    pub fn new(opts: GenOptions) -> ClickGen {
        let rng = fastrand::Rng::with_seed(opts.seed);
        ClickGen { opts, rng, next_id: 0, recent: Vec::new(), truth: BTreeMap::new(), unique: 0, duplicates: 0 }
    }

    /// `n` events as JSON objects, about `now_ms`.
    pub fn events(&mut self, n: usize, now_ms: u64) -> Vec<String> {
        (0..n).map(|_| self.event(now_ms)).collect()
    }

    fn event(&mut self, now_ms: u64) -> String {
        if !self.recent.is_empty() && self.rng.f64() < self.opts.duplicate_share {
            self.duplicates += 1;
            return self.recent[self.rng.usize(..self.recent.len())].clone();
        }
        self.next_id += 1;
        let ad = if self.rng.f64() < self.opts.hot_share { 1 } else { self.rng.u64(1..=self.opts.ads) };
        let ts = now_ms - self.rng.u64(0..=self.opts.jitter_ms);
        let cost = self.rng.u64(100..5000);
        let user = self.rng.u64(0..self.opts.users);
        let event = json!({
            "click_id": format!("s{}-{}", self.opts.seed, self.next_id),
            "ad_id": ad,
            "ts": ts,
            "campaign_id": ad / 10,
            "cost_micros": cost,
            "user_id": format!("u{user}"),
        })
        .to_string();
        let t = self.truth.entry((ad, ts / 1000)).or_default();
        t.clicks += 1;
        t.spend_micros += cost;
        self.unique += 1;
        if self.recent.len() < 4096 {
            self.recent.push(event.clone());
        } else {
            let i = self.rng.usize(..self.recent.len());
            self.recent[i] = event.clone();
        }
        event
    }

    /// Total truth for one ad.
    pub fn ad_total(&self, ad: u64) -> Truth {
        self.truth
            .range((ad, 0)..(ad + 1, 0))
            .fold(Truth::default(), |acc, (_, t)| Truth { clicks: acc.clicks + t.clicks, spend_micros: acc.spend_micros + t.spend_micros })
    }
}

pub fn json_array(events: &[String]) -> String {
    format!("[{}]", events.join(","))
}

#[derive(Debug, Default)]
pub struct TrafficStats {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub errors: AtomicU64,
}

/// Posts generated clicks to `edge` at about `rate` events/s in batches of
/// `batch` until `stop` turns true.
pub async fn drive(edge: String, ingest_key: String, rate: u64, batch: usize, opts: GenOptions, stats: Arc<TrafficStats>, mut stop: watch::Receiver<bool>) {
    let client = Client::new();
    let url = format!("{edge}/v1/clicks");
    let mut generator = ClickGen::new(opts);
    let per_tick = (rate / 10).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tally_http::serve::stopped(&mut stop) => return,
        }
        let mut left = per_tick;
        while left > 0 {
            let n = left.min(batch);
            left -= n;
            let body = json_array(&generator.events(n, now_ms()));
            stats.requests.fetch_add(1, Ordering::Relaxed);
            match client.post_json(&url, Some(&ingest_key), body).await {
                Ok(reply) if reply.status.is_success() => {
                    if let Ok(v) = reply.json() {
                        stats.accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        stats.duplicates.fetch_add(v["duplicates"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        stats.rejected.fetch_add(v["rejected"].as_array().map_or(0, |r| r.len() as u64), Ordering::Relaxed);
                    }
                }
                Ok(reply) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(status = %reply.status, body = %reply.text(), "edge refused a batch");
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "posting to the edge failed");
                }
            }
        }
    }
}

pub use tally_model::timestamp::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_truthful() {
        let mut a = ClickGen::new(GenOptions { duplicate_share: 0.3, ..GenOptions::default() });
        let mut b = ClickGen::new(GenOptions { duplicate_share: 0.3, ..GenOptions::default() });
        let ea = a.events(1000, 1_700_000_000_000);
        assert_eq!(ea, b.events(1000, 1_700_000_000_000));
        assert_eq!(a.unique + a.duplicates, 1000);
        assert!(a.duplicates > 100);
        let distinct: std::collections::BTreeSet<_> = ea.iter().collect();
        assert_eq!(distinct.len() as u64, a.unique);
        assert_eq!(a.truth.values().map(|t| t.clicks).sum::<u64>(), a.unique);
    }
}
