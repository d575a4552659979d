//! The edge's in-memory state machine: admission (time policy + dedup),
//! then aggregation of durable records, then sealing with a watermark.
//!
//! Sans-IO: the caller passes the clock and does the disk work. The life of
//! a request's clicks:
//! 1. [`Pipeline::admit`] (one lock per request): each click is refused if
//!    its event time is outside the edge's window, a duplicate if its id
//!    was seen within the horizon, else accepted, or filtered if the
//!    tenant's filter dropped it. A click id is decided once: a re-sent
//!    filtered click is a duplicate, so `filtered` counts each click once,
//!    like `clicks`. The accepted, filtered and refused ones form one WAL
//!    record (with the filter's tags and rollout counts), tracked as in
//!    flight.
//! 2. The caller makes the record durable (or not, in memory ack mode) and
//!    calls [`Pipeline::apply`] in WAL order; only then is it aggregated.
//!    If it could not be made durable, [`Pipeline::abort`] undoes step 1.
//!    Every admitted record is applied or aborted (settled) in the end.
//! 3. [`Pipeline::seal`] hands over exactly the records `[sealed, applied)`
//!    with a low watermark that no in-flight or unacknowledged click is
//!    below.
//!
//! # Duplicates of clicks in flight
//! A duplicate is acknowledged only once its first sighting is durable: a
//! request is answered "recorded" for its duplicates too, and a crash before
//! the first copy's fsync must not leave that answer standing. Between admit
//! and settle, a first sighting's key is *in flight*: dedup filed it at a
//! position (its tenant's table, ring position) in the range the admission
//! of its record filed (`inflight`, ticket -> range; positions only grow and
//! a key filed anew gets a new one, so a key is in flight iff it is held at
//! a position some unsettled record's range holds). A duplicate of an in-flight key from
//! another request lands in [`Outcome::awaits`]; in durable mode that request
//! is answered only once [`Pipeline::first_sightings`] says
//! [`FirstSightings::Durable`], or `503` on [`FirstSightings::Lost`] (the
//! first copy's write failed, so it was forgotten). Invariants:
//! * a key is in flight iff its first sighting is admitted and not yet
//!   settled; in flight implies known to dedup;
//! * `Durable` for keys means each is known to dedup and not in flight: its
//!   first sighting (or, after an abort, a later one) was applied.
//!
//! Cheap by construction: a first sighting costs nothing beyond dedup (no
//! set of keys in flight to insert into and remove from); a duplicate
//! compares its position with the ranges of the few unsettled records and,
//! if settled (almost all of them), waits for nothing; a waiting one rides on the group
//! commit it depends on, never a fsync of its own. `Lost` is also reported if
//! dedup dropped the key meanwhile (horizon, memory pressure): a `503` is
//! safe, the client retries.
//!
//! # Time policy
//! The watermark W is event time: the latest event time accepted, and never
//! less than the wall clock minus `idle_lag` (so it moves on an idle edge
//! too). A click whose event time is more than `allowed_lateness` behind W
//! is refused as too late; more than `max_future` ahead of the wall clock,
//! as from the future. Everything in between is counted in its own second,
//! however late. A request is judged against W as it was when it arrived.

use std::collections::BTreeMap;

use serde::Serialize;

use tally_filter::manifest::ModeKind;
use tally_model::batch::{ClickRecord, RefusalReason, RefusedRecord, TenantRows, VerdictRow, MODE_CANARY, MODE_SHADOW, VERDICT_COUNTED};
use tally_model::tenant::TenantId;
use tally_model::timestamp::format_millis;

use super::event::Click;
use super::record::{time_refusal_key, WalClick, WalRecord, WalTag};
use crate::aggregate::Aggregator;
use crate::dedup::{Dedup, DedupConfig, Position, Sighting};
use crate::filter::rollout::{Compared, Rollout};

/// Clicks ahead of the one being admitted whose dedup slot is prefetched
/// (`Dedup::prefetch`): the miss to memory it hides (~100 ns) is shorter
/// than admitting a few clicks, so 8 is lead enough (the dedup bench's
/// batched runs measure it); far more and the lines fetched for a big
/// request could be evicted before use.
const PREFETCH_AHEAD: usize = 8;

// A verdict row's mode byte is the model's; the rollout's kind must encode to it.
const _: () = assert!(ModeKind::Shadow.as_u8() == MODE_SHADOW && ModeKind::Canary.as_u8() == MODE_CANARY);

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
    /// Keys of duplicates whose first sighting (in another request) is still
    /// in flight; see the module docs.
    #[serde(skip)]
    pub awaits: Vec<u128>,
}

/// Whether the first sightings of some keys are durable; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSightings {
    Durable,
    /// Some are still in flight: ask again once a group commit settled.
    Pending,
    /// Some were undone (their write failed): never acknowledge them.
    Lost,
}

#[derive(Debug, Clone, Copy)]
pub struct TimePolicy {
    pub allowed_lateness_ms: u64,
    pub max_future_ms: u64,
    pub idle_lag_ms: u64,
}

/// What the pipeline hands over to become batch `seq`.
#[derive(Debug, Clone, Default)]
pub struct Sealing {
    pub tenants: Vec<TenantRows>,
    pub wal_from: u64,
    pub wal_to: u64,
    pub low_watermark_ms: u64,
}

impl Sealing {
    /// Earliest event time of a click in it, if any.
    pub fn min_event_ms(&self) -> Option<u64> {
        self.tenants.iter().flat_map(|t| t.clicks.iter().map(|c| c.ts_ms)).min()
    }
}

/// An admitted record not yet settled.
#[derive(Debug)]
struct InFlight {
    /// Earliest event time of its clicks (`u64::MAX` if none).
    min_ts: u64,
    /// The dedup positions its admission filed: `filed_from.at..filed_to`
    /// in table `filed_from.table`.
    filed_from: Position,
    filed_to: u64,
}

/// A request's clicks, admitted but not yet applied.
#[derive(Debug)]
pub struct Admitted {
    pub ticket: u64,
    pub tenant: TenantId,
    pub record: WalRecord,
}

pub struct Pipeline {
    dedup: Dedup,
    aggregator: Aggregator,
    policy: TimePolicy,
    watermark_ms: u64,
    /// ticket -> an admitted, unsettled record; see the module docs.
    inflight: BTreeMap<u64, InFlight>,
    /// Duplicates admitted while their first sighting was in flight.
    awaited: u64,
    next_ticket: u64,
    /// WAL records `[sealed_to, applied_to)` are in the aggregator.
    sealed_to: u64,
    applied_to: u64,
}

impl Pipeline {
    /// A pipeline whose WAL records below `wal_position` are all sealed.
    pub fn new(dedup: DedupConfig, policy: TimePolicy, wal_position: u64) -> Pipeline {
        Pipeline {
            dedup: Dedup::new(dedup),
            aggregator: Aggregator::default(),
            policy,
            watermark_ms: 0,
            inflight: BTreeMap::new(),
            awaited: 0,
            next_ticket: 0,
            sealed_to: wal_position,
            applied_to: wal_position,
        }
    }

    /// Step 1; see the module docs. `events[i]` is the request's i-th event;
    /// `rollout` names the versions whose answers the clicks compare.
    pub fn admit(
        &mut self,
        tenant: &TenantId,
        events: impl IntoIterator<Item = Result<Click, String>, IntoIter: ExactSizeIterator + AsRef<[Result<Click, String>]>>,
        rollout: Option<Rollout>,
        now_ms: u64,
    ) -> (Outcome, Option<Admitted>) {
        let mut events = events.into_iter();
        self.advance(now_ms);
        // Assigned only if the request leaves a record.
        let ticket = self.next_ticket;
        let earliest = self.watermark_ms.saturating_sub(self.policy.allowed_lateness_ms);
        let latest = now_ms.saturating_add(self.policy.max_future_ms);
        let mut outcome = Outcome::default();
        let filed_from = self.dedup.next_position(tenant);
        let mut record = WalRecord {
            lsn: 0,
            tenant: tenant.to_string(),
            clicks: Vec::with_capacity(events.len()),
            refused: Vec::new(),
            tags: Vec::new(),
            verdicts: Vec::new(),
        };
        // Comparisons of the clicks decided here (first sightings), like the clicks themselves.
        let mut compared: BTreeMap<Compared, u64> = BTreeMap::new();
        for index in 0.. {
            let Some(event) = events.next() else { break };
            if let Some(Ok(ahead)) = events.as_ref().get(PREFETCH_AHEAD - 1) {
                self.dedup.prefetch(tenant, ahead.key);
            }
            let click = match event {
                Ok(click) => click,
                Err(reason) => {
                    outcome.rejected.push(Rejection { index, reason });
                    continue;
                }
            };
            let refusal = if click.ts_ms < earliest {
                Some((RefusalReason::TooLate, format!("ts {} is older than the edge accepts (before {})", format_millis(click.ts_ms), format_millis(earliest))))
            } else if click.ts_ms > latest {
                Some((RefusalReason::Future, format!("ts {} is in the future (after {})", format_millis(click.ts_ms), format_millis(latest))))
            } else {
                None
            };
            if let Some((reason, text)) = refusal {
                outcome.rejected.push(Rejection { index, reason: text });
                if !self.dedup.first_sighting(tenant, time_refusal_key(click.key), now_ms) {
                    continue;
                }
                record.refused.push(RefusedRecord {
                    id_hi: (click.key >> 64) as u64,
                    id_lo: click.key as u64,
                    ad_id: click.ad_id,
                    ts_ms: click.ts_ms,
                    reason,
                    code: 0,
                    at_ms: now_ms,
                });
                continue;
            }
            if let Sighting::Duplicate { filed_at } = self.dedup.sight(tenant, click.key, now_ms) {
                outcome.duplicates += 1;
                // A repeat within this request (filed at or after `filed_from`) is acknowledged with its record.
                if self.in_flight(Position { table: filed_from.table, at: filed_at }) {
                    outcome.awaits.push(click.key);
                }
                continue;
            }
            if let Some(c) = click.compared {
                *compared.entry(c).or_default() += 1;
            }
            if click.verdict != 0 {
                outcome.rejected.push(Rejection { index, reason: format!("dropped by the tenant's filter (reason code {})", click.verdict) });
                record.refused.push(RefusedRecord {
                    id_hi: (click.key >> 64) as u64,
                    id_lo: click.key as u64,
                    ad_id: click.ad_id,
                    ts_ms: click.ts_ms,
                    reason: RefusalReason::Filtered,
                    code: click.verdict,
                    at_ms: now_ms,
                });
            } else {
                outcome.accepted += 1;
                let at = record.clicks.len() as u32;
                record.tags.extend(click.tags.into_iter().map(|(dimension, value)| WalTag { click: at, dimension, value }));
                record.clicks.push(WalClick {
                    record: ClickRecord {
                        id_hi: (click.key >> 64) as u64,
                        id_lo: click.key as u64,
                        ad_id: click.ad_id,
                        campaign_id: click.campaign_id,
                        ts_ms: click.ts_ms,
                        cost_micros: click.cost_micros,
                        verdict: VERDICT_COUNTED,
                        accepted_ms: now_ms,
                    },
                    user_hash: click.user_hash,
                });
            }
        }
        if let Some(latest) = record.clicks.iter().map(|c| c.record.ts_ms).max() {
            self.watermark_ms = self.watermark_ms.max(latest);
        }
        if let Some(r) = rollout {
            let minute = (now_ms / 60_000 * 60) as u32;
            record.verdicts = compared
                .into_iter()
                .map(|(c, clicks)| VerdictRow {
                    minute,
                    active_version: r.active_version,
                    candidate_version: r.candidate_version,
                    mode: r.mode.kind().as_u8(),
                    applied_candidate: c.applied_candidate,
                    active_code: c.active_code,
                    candidate_code: c.candidate_code,
                    clicks,
                })
                .collect();
        }
        self.awaited += outcome.awaits.len() as u64;
        if record.clicks.is_empty() && record.refused.is_empty() {
            return (outcome, None);
        }
        self.next_ticket += 1;
        let min_ts = record.clicks.iter().map(|c| c.record.ts_ms).min().unwrap_or(u64::MAX);
        self.inflight.insert(ticket, InFlight { min_ts, filed_from, filed_to: self.dedup.next_position(tenant).at });
        (outcome, Some(Admitted { ticket, tenant: tenant.clone(), record }))
    }

    /// Step 2: aggregates a record that is now durable (its `lsn` set).
    pub fn apply(&mut self, admitted: &Admitted) {
        self.inflight.remove(&admitted.ticket);
        self.aggregate(&admitted.tenant, &admitted.record);
    }

    fn aggregate(&mut self, tenant: &TenantId, record: &WalRecord) {
        self.aggregator.add_record(tenant, record);
        self.applied_to = self.applied_to.max(record.lsn + 1);
    }

    /// Undoes `admit` for a record that could not be made durable: its
    /// clicks were never acknowledged, so a retry must count them.
    pub fn abort(&mut self, admitted: &Admitted) {
        self.inflight.remove(&admitted.ticket);
        for (key, _) in admitted.record.sightings() {
            self.dedup.forget(&admitted.tenant, key);
        }
    }

    /// Whether dedup position `p` holds a first sighting of an unsettled
    /// record; see the module docs.
    fn in_flight(&self, p: Position) -> bool {
        self.inflight.values().any(|f| f.filed_from.table == p.table && (f.filed_from.at..f.filed_to).contains(&p.at))
    }

    /// Whether the first sightings of `keys` (an [`Outcome::awaits`]) are
    /// durable yet; see the module docs.
    pub fn first_sightings(&self, keys: &[u128]) -> FirstSightings {
        let positions: Option<Vec<Position>> = keys.iter().map(|&k| self.dedup.position(k)).collect();
        match positions {
            None => FirstSightings::Lost,
            Some(p) if p.iter().any(|&p| self.in_flight(p)) => FirstSightings::Pending,
            Some(_) => FirstSightings::Durable,
        }
    }

    /// Duplicates so far that had to wait for their first sighting's write.
    pub fn awaited(&self) -> u64 {
        self.awaited
    }

    /// At start-up, a record read back from the WAL: its clicks are known to
    /// dedup again, and, if not yet sealed, aggregated.
    pub fn replay(&mut self, tenant: &TenantId, record: &WalRecord) {
        for (key, at_ms) in record.sightings() {
            self.dedup.first_sighting(tenant, key, at_ms);
        }
        if let Some(latest) = record.clicks.iter().map(|c| c.record.ts_ms).max() {
            self.watermark_ms = self.watermark_ms.max(latest);
        }
        if record.lsn >= self.sealed_to {
            self.aggregate(tenant, record);
        }
    }

    /// The WAL position the next record gets in memory ack mode.
    pub fn applied_to(&self) -> u64 {
        self.applied_to
    }

    /// Step 3. `held_min_event_ms` is the earliest event time of clicks the
    /// caller still holds in unacknowledged batches.
    pub fn seal(&mut self, now_ms: u64, held_min_event_ms: Option<u64>) -> Sealing {
        self.advance(now_ms);
        let inflight_min = self.inflight.values().map(|f| f.min_ts).min();
        let low_watermark_ms =
            [Some(self.watermark_ms.saturating_sub(self.policy.allowed_lateness_ms)), inflight_min, held_min_event_ms].into_iter().flatten().min().unwrap_or(0);
        let sealing = Sealing { tenants: self.aggregator.seal(), wal_from: self.sealed_to, wal_to: self.applied_to, low_watermark_ms };
        self.sealed_to = self.applied_to;
        sealing
    }

    fn advance(&mut self, now_ms: u64) {
        self.watermark_ms = self.watermark_ms.max(now_ms.saturating_sub(self.policy.idle_lag_ms));
    }

    pub fn pending_clicks(&self) -> u64 {
        self.aggregator.pending_clicks()
    }

    pub fn watermark_ms(&self) -> u64 {
        self.watermark_ms
    }

    pub fn dedup(&self) -> &Dedup {
        &self.dedup
    }

    /// For what happens to dedup outside admission: restoring snapshots at
    /// start, and upkeep off the request path (`spool::dedup_snapshot`).
    pub fn dedup_mut(&mut self) -> &mut Dedup {
        &mut self.dedup
    }
}

#[cfg(test)]
mod tests;
