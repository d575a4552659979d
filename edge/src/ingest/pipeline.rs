//! The edge's in-memory state machine: dedup then per-second aggregation.
//!
//! One request's events go through [`Pipeline::ingest`] in one call, so the
//! lock around the pipeline is taken once per request, not per event, and
//! the hash tables stay warm for the whole batch.

use serde::Serialize;

use tally_model::batch::TenantRows;
use tally_model::tenant::TenantId;

use super::event::Click;
use crate::aggregate::Aggregator;
use crate::dedup::{Dedup, DedupConfig};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
}

/// The answer to one ingest request.
#[derive(Debug, Serialize, PartialEq, Eq, Default)]
pub struct Outcome {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejection>,
}

pub struct Pipeline {
    dedup: Dedup,
    aggregator: Aggregator,
}

impl Pipeline {
    pub fn new(dedup: DedupConfig) -> Pipeline {
        Pipeline { dedup: Dedup::new(dedup), aggregator: Aggregator::default() }
    }

    /// Counts a request's events: `events[i]` is the i-th event of the
    /// request, already validated or rejected with its reason.
    pub fn ingest(&mut self, tenant: &TenantId, events: Vec<Result<Click, String>>, now_ms: u64) -> Outcome {
        let mut outcome = Outcome::default();
        for (index, event) in events.into_iter().enumerate() {
            match event {
                Err(reason) => outcome.rejected.push(Rejection { index, reason }),
                Ok(click) if self.dedup.first_sighting(click.key, now_ms) => {
                    self.aggregator.add(tenant, &click);
                    outcome.accepted += 1;
                }
                Ok(_) => outcome.duplicates += 1,
            }
        }
        outcome
    }

    /// Takes the rows aggregated since the last seal.
    pub fn seal(&mut self) -> Vec<TenantRows> {
        self.aggregator.seal()
    }

    pub fn dedup(&self) -> &Dedup {
        &self.dedup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_rejects_and_aggregates() {
        let t = TenantId::parse("t").unwrap();
        let c = |key, ts_ms| Ok(Click { key, ad_id: 1, campaign_id: 0, ts_ms, cost_micros: 10, user_hash: None });
        let mut p = Pipeline::new(DedupConfig { horizon_ms: 60_000, max_entries: 100 });
        let out = p.ingest(&t, vec![c(1, 1_000), Err("bad".into()), c(1, 1_000), c(2, 2_000)], 0);
        assert_eq!(out, Outcome { accepted: 2, duplicates: 1, rejected: vec![Rejection { index: 1, reason: "bad".into() }] });
        let out = p.ingest(&t, vec![c(2, 2_000)], 10);
        assert_eq!((out.accepted, out.duplicates), (0, 1));
        let rows = p.seal();
        assert_eq!(rows[0].rows.iter().map(|r| r.clicks).sum::<u64>(), 2);
    }
}
