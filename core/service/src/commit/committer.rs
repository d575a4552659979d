//! The shell around [`super::plan`]: one task that takes batches from the
//! receiver, groups whatever is waiting (no timer: a group is what queued
//! up while the previous group committed), runs the protocol against
//! ClickHouse and answers each batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use xxhash_rust::xxh3::Xxh3;

use tally_model::batch::{Batch, BatchTotals, RefusalReason};
use tally_model::reply::{Reply, Status};
use tally_model::timestamp::now_ms;

use super::plan::{decide, first_occurrences, resume, steps, Decision, LedgerState, Step, PARTS};
use crate::clickhouse::store::{ClickRow, DimensionRow, LandingRow, LedgerRow, PluginVerdictRow, RefusedRow};
use crate::clickhouse::{Store, StoreError};
use crate::metrics::Metrics;

/// Most batches committed in one group.
const MAX_GROUP: usize = 256;

pub struct Job {
    pub batch: Batch,
    pub checksum: u64,
    pub reply: oneshot::Sender<Reply>,
}

struct Entry {
    batch: Batch,
    checksum: u64,
    totals: BatchTotals,
}

impl Entry {
    /// Rows per part, in the order of `plan::PARTS`.
    fn counts(&self) -> [u32; PARTS] {
        [self.totals.rows, self.totals.click_records, self.totals.refused, self.totals.dims, self.totals.verdicts]
    }
}

pub async fn run(store: Store, metrics: Arc<Metrics>, mut jobs: mpsc::Receiver<Job>, abort_after_inserts: Option<u64>) {
    let mut inserting_groups = 0u64;
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let keys: Vec<(String, u64)> = group.iter().map(|j| (j.batch.edge.clone(), j.batch.seq)).collect();
        let unique: BTreeSet<usize> = first_occurrences(&keys).into_iter().collect();
        let mut replies: Vec<oneshot::Sender<Reply>> = Vec::with_capacity(group.len());
        let mut entries = Vec::with_capacity(unique.len());
        let mut waiters: BTreeMap<(String, u64), Vec<oneshot::Sender<Reply>>> = BTreeMap::new();
        for (i, job) in group.into_iter().enumerate() {
            if unique.contains(&i) {
                entries.push(Entry { totals: job.batch.totals(), batch: job.batch, checksum: job.checksum });
                replies.push(job.reply);
            } else {
                waiters.entry(keys[i].clone()).or_default().push(job.reply);
            }
        }
        let outcome = commit_group(&store, &entries, &mut || {
            inserting_groups += 1;
            if abort_after_inserts == Some(inserting_groups) {
                tracing::error!("fault injection: aborting between insert and ledger commit");
                std::process::abort();
            }
        })
        .await;
        metrics.commit_groups.inc();
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        for (entry, reply) in entries.iter().zip(replies) {
            let answer = match &outcome {
                Ok(duplicates) if duplicates.contains(&(entry.batch.edge.clone(), entry.batch.seq)) => {
                    metrics.batches_duplicate.inc();
                    Reply::new(Status::Duplicate, "")
                }
                Ok(_) => {
                    metrics.batches_committed.inc();
                    metrics.clicks_committed.inc_by(entry.totals.clicks);
                    Reply::new(Status::Committed, "")
                }
                Err(e) => Reply::new(Status::Retry, e.to_string()),
            };
            // Re-sends that queued behind their first copy are duplicates of it.
            for extra in waiters.remove(&(entry.batch.edge.clone(), entry.batch.seq)).unwrap_or_default() {
                let dup = if answer.is_done() {
                    metrics.batches_duplicate.inc();
                    Reply::new(Status::Duplicate, "")
                } else {
                    answer.clone()
                };
                let _ = extra.send(dup);
            }
            let _ = reply.send(answer);
        }
        if let Err(e) = outcome {
            metrics.commit_errors.inc();
            tracing::warn!(error = %e, batches = entries.len(), "group commit failed; edges will re-send");
        }
    }
}

/// Runs the protocol for one group; returns the identities that were
/// already committed (answered `Duplicate`).
#[tracing::instrument(name = "commit_group", skip_all, fields(batches = entries.len()))]
async fn commit_group(store: &Store, entries: &[Entry], after_inserts: &mut impl FnMut()) -> Result<BTreeSet<(String, u64)>, StoreError> {
    // 1. Ledger states, one query per edge.
    let mut by_edge: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for e in entries {
        let range = by_edge.entry(&e.batch.edge).or_insert((e.batch.seq, e.batch.seq));
        range.0 = range.0.min(e.batch.seq);
        range.1 = range.1.max(e.batch.seq);
    }
    let mut states: BTreeMap<(String, u64), LedgerState> = BTreeMap::new();
    for (edge, (lo, hi)) in by_edge {
        for (seq, state) in store.ledger_states(edge, lo, hi).await? {
            states.insert((edge.to_string(), seq), LedgerState::from_db(state));
        }
    }
    // 2-3. Decide, probing interrupted batches.
    let mut decisions = Vec::with_capacity(entries.len());
    let mut duplicates = BTreeSet::new();
    for e in entries {
        let key = (e.batch.edge.clone(), e.batch.seq);
        let state = states.get(&key).copied().unwrap_or(LedgerState::Absent);
        let decision = match decide(state) {
            Decision::Probe => {
                let mut present: [BTreeSet<u32>; PARTS] = Default::default();
                for (part, idx) in store.batch_rows_present(&e.batch.edge, e.batch.seq, &e.totals).await? {
                    if part < PARTS {
                        present[part].insert(idx);
                    }
                }
                let found: usize = present.iter().map(BTreeSet::len).sum();
                tracing::info!(edge = %e.batch.edge, seq = e.batch.seq, present = found, "resuming an interrupted commit");
                resume(e.counts(), &present)
            }
            Decision::Duplicate => {
                duplicates.insert(key);
                Decision::Duplicate
            }
            d => d,
        };
        decisions.push((e.counts(), decision));
    }
    // 3-4. Writes, in protocol order.
    let mut wrote = false;
    for step in steps(&decisions) {
        match step {
            Step::Start(ix) => store.insert_ledger(&ledger_rows(entries, &ix, LedgerState::Started)).await?,
            Step::Insert { part, rows } => {
                wrote = true;
                let token = insert_token(entries, part, &rows);
                match part {
                    0 => store.insert_landing(&landing_rows(entries, &rows), &token).await?,
                    1 => store.insert_click_records(&click_rows(entries, &rows), &token).await?,
                    2 => store.insert_refused(&refused_rows(entries, &rows), &token).await?,
                    3 => store.insert_dimensions(&dimension_rows(entries, &rows), &token).await?,
                    _ => store.insert_plugin_verdicts(&verdict_rows(entries, &rows), &token).await?,
                }
            }
            Step::Finish(ix) => {
                // Only groups that wrote rows count (not empty heartbeats).
                if wrote {
                    after_inserts();
                }
                store.insert_ledger(&ledger_rows(entries, &ix, LedgerState::Committed)).await?
            }
        }
    }
    Ok(duplicates)
}

fn ledger_rows(entries: &[Entry], ix: &[usize], state: LedgerState) -> Vec<LedgerRow> {
    let now = (now_ms() / 1000) as u32;
    ix.iter()
        .map(|&i| {
            let e = &entries[i];
            LedgerRow {
                edge: e.batch.edge.clone(),
                seq: e.batch.seq,
                state: state as u8,
                rows: e.totals.rows,
                click_records: e.totals.click_records,
                refused: e.totals.refused,
                clicks: e.totals.clicks,
                checksum: e.checksum,
                min_second: e.totals.min_second,
                max_second: e.totals.max_second,
                low_watermark_ms: e.batch.low_watermark_ms,
                recorded_at: now,
            }
        })
        .collect()
}

/// Names the exact rows of one INSERT: the same rows of the same batches
/// always give the same token, so a server that deduplicates by token drops
/// a re-sent insert (a second line behind the ledger).
fn insert_token(entries: &[Entry], part: usize, wanted: &[(usize, Vec<u32>)]) -> String {
    let mut h = Xxh3::new();
    for (i, idxs) in wanted {
        let batch = &entries[*i].batch;
        h.update(batch.edge.as_bytes());
        h.update(&[0]);
        h.update(&batch.seq.to_le_bytes());
        h.update(&entries[*i].checksum.to_le_bytes());
        for idx in idxs {
            h.update(&idx.to_le_bytes());
        }
    }
    format!("tally-{part}-{:032x}", h.digest128())
}

/// Picks the wanted `(batch, row indices)` out of one part of the entries.
fn pick<'a, T: 'a, R>(
    entries: &'a [Entry],
    wanted: &[(usize, Vec<u32>)],
    part: impl Fn(&'a Batch) -> Box<dyn Iterator<Item = (u32, &'a str, &'a T)> + 'a>,
    make: impl Fn(&'a Batch, u32, &'a str, &'a T) -> R,
) -> Vec<R> {
    let mut out = Vec::new();
    for (i, idxs) in wanted {
        let batch = &entries[*i].batch;
        let idxs: BTreeSet<u32> = idxs.iter().copied().collect();
        out.extend(part(batch).filter(|(idx, _, _)| idxs.contains(idx)).map(|(idx, tenant, item)| make(batch, idx, tenant, item)));
    }
    out
}

fn landing_rows(entries: &[Entry], wanted: &[(usize, Vec<u32>)]) -> Vec<LandingRow> {
    pick(
        entries,
        wanted,
        |b| Box::new(b.indexed_rows()),
        |batch, idx, tenant, row| LandingRow {
            tenant: tenant.to_string(),
            ad_id: row.ad_id,
            campaign_id: row.campaign_id,
            second: row.second,
            clicks: row.clicks,
            spend_micros: row.spend_micros,
            user_hashes: row.user_hashes.clone(),
            edge: batch.edge.clone(),
            batch_seq: batch.seq,
            row_idx: idx,
        },
    )
}

fn click_rows(entries: &[Entry], wanted: &[(usize, Vec<u32>)]) -> Vec<ClickRow> {
    pick(
        entries,
        wanted,
        |b| Box::new(b.indexed_clicks()),
        |batch, idx, tenant, c| ClickRow {
            tenant: tenant.to_string(),
            id_hi: c.id_hi,
            id_lo: c.id_lo,
            ad_id: c.ad_id,
            campaign_id: c.campaign_id,
            ts_ms: c.ts_ms,
            second: c.second(),
            cost_micros: c.cost_micros,
            verdict: c.verdict,
            accepted_ms: c.accepted_ms,
            edge: batch.edge.clone(),
            batch_seq: batch.seq,
            row_idx: idx,
        },
    )
}

fn refused_rows(entries: &[Entry], wanted: &[(usize, Vec<u32>)]) -> Vec<RefusedRow> {
    pick(
        entries,
        wanted,
        |b| Box::new(b.indexed_refused()),
        |batch, idx, tenant, r| RefusedRow {
            tenant: tenant.to_string(),
            id_hi: r.id_hi,
            id_lo: r.id_lo,
            ad_id: r.ad_id,
            ts_ms: r.ts_ms,
            reason: match r.reason {
                RefusalReason::Filtered => format!("filtered:{}", r.code),
                other => other.as_str().to_string(),
            },
            at: (r.at_ms / 1000) as u32,
            edge: batch.edge.clone(),
            batch_seq: batch.seq,
            row_idx: idx,
        },
    )
}

fn dimension_rows(entries: &[Entry], wanted: &[(usize, Vec<u32>)]) -> Vec<DimensionRow> {
    pick(
        entries,
        wanted,
        |b| Box::new(b.indexed_dims()),
        |batch, idx, tenant, d| DimensionRow {
            tenant: tenant.to_string(),
            ad_id: d.ad_id,
            campaign_id: d.campaign_id,
            second: d.second,
            dimension: d.dimension.clone(),
            value: d.value.clone(),
            clicks: d.clicks,
            spend_micros: d.spend_micros,
            edge: batch.edge.clone(),
            batch_seq: batch.seq,
            row_idx: idx,
        },
    )
}

fn verdict_rows(entries: &[Entry], wanted: &[(usize, Vec<u32>)]) -> Vec<PluginVerdictRow> {
    pick(
        entries,
        wanted,
        |b| Box::new(b.indexed_verdicts()),
        |batch, idx, tenant, v| PluginVerdictRow {
            tenant: tenant.to_string(),
            minute: v.minute,
            active_version: v.active_version,
            candidate_version: v.candidate_version,
            mode: v.mode,
            applied_candidate: v.applied_candidate as u8,
            active_code: v.active_code,
            candidate_code: v.candidate_code,
            clicks: v.clicks,
            edge: batch.edge.clone(),
            batch_seq: batch.seq,
            row_idx: idx,
        },
    )
}
