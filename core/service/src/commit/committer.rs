//! The shell around [`super::plan`]: one task that takes batches from the
//! receiver, groups whatever is waiting (no timer: a group is what queued
//! up while the previous group committed), runs the protocol against a
//! [`BatchStore`] and answers each batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use xxhash_rust::xxh3::Xxh3;

use tally_model::batch::{Batch, BatchTotals, RefusalReason};
use tally_model::reply::{Reply, Status};
use tally_model::timestamp::now_ms;

use super::batch_store::{BatchStore, PartRows};
use super::plan::{decide, first_occurrences, resume, writes, Counts, Decision, LedgerState, Part, PerPart, Write};
use super::rows::{ClickRow, DimensionRow, LandingRow, LedgerRow, PluginVerdictRow, RefusedRow};
use crate::heal::{self, plan::Dirty};
use crate::metrics::Metrics;

/// Most batches committed in one group.
const MAX_GROUP: usize = 256;

pub struct Job {
    pub batch: Batch,
    pub checksum: u64,
    pub reply: oneshot::Sender<Reply>,
}

/// A batch of a group, with what the protocol needs to know of it.
pub struct Entry {
    batch: Batch,
    checksum: u64,
    totals: BatchTotals,
}

impl Entry {
    pub fn new(batch: Batch, checksum: u64) -> Entry {
        Entry { totals: batch.totals(), batch, checksum }
    }

    fn key(&self) -> (String, u64) {
        (self.batch.edge.clone(), self.batch.seq)
    }

    fn counts(&self) -> Counts {
        let t = &self.totals;
        PerPart::from_fn(|part| match part {
            Part::Landing => t.rows,
            Part::Clicks => t.click_records,
            Part::Refused => t.refused,
            Part::Dimensions => t.dims,
            Part::Verdicts => t.verdicts,
        })
    }
}

/// How the protocol ended for one batch of a group that completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// Committed by completing an interrupted attempt, whose rows of these
    /// hours were already in: their rollups may lack them (`crate::heal`).
    Resumed {
        dirty: BTreeSet<Dirty>,
    },
    /// Committed earlier with the same content.
    Duplicate,
    /// Its `(edge, seq)` was recorded with another checksum.
    Conflict {
        recorded: u64,
    },
    /// The ledger holds a state byte this core does not know.
    Unreadable {
        state: u8,
    },
}

/// `heal` (on the core that heals rollups) hears of the hours resumed
/// commits touched, after their edges were answered.
pub async fn run<S: BatchStore>(
    store: S,
    metrics: Arc<Metrics>,
    mut jobs: mpsc::Receiver<Job>,
    abort_after_inserts: Option<u64>,
    heal: Option<Arc<heal::Requests>>,
) {
    let mut inserting_groups = 0u64;
    let mut after_inserts = || {
        inserting_groups += 1;
        if abort_after_inserts == Some(inserting_groups) {
            tracing::error!("fault injection: aborting between insert and ledger commit");
            std::process::abort();
        }
    };
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let dirty = answer_group(&store, &metrics, group, &mut after_inserts).await;
        if let Some(heal) = &heal {
            heal.add(dirty);
        }
    }
}

/// Commits one group and answers every job in it. A batch sent twice in
/// one group (a re-send that queued behind its first copy) is committed
/// once; its other copies get the same answer, `Duplicate` if it is done.
/// Returns the hours whose rollups resumed batches may have left short.
pub async fn answer_group<S: BatchStore>(store: &S, metrics: &Metrics, group: Vec<Job>, after_inserts: &mut impl FnMut()) -> BTreeSet<Dirty> {
    let started = Instant::now();
    let keys: Vec<(String, u64)> = group.iter().map(|j| (j.batch.edge.clone(), j.batch.seq)).collect();
    let unique: BTreeSet<usize> = first_occurrences(&keys).into_iter().collect();
    let mut replies: Vec<oneshot::Sender<Reply>> = Vec::with_capacity(unique.len());
    let mut entries = Vec::with_capacity(unique.len());
    let mut waiters: BTreeMap<(String, u64), Vec<oneshot::Sender<Reply>>> = BTreeMap::new();
    for (i, job) in group.into_iter().enumerate() {
        if unique.contains(&i) {
            entries.push(Entry::new(job.batch, job.checksum));
            replies.push(job.reply);
        } else {
            waiters.entry(keys[i].clone()).or_default().push(job.reply);
        }
    }
    let outcome = commit_group(store, &entries, after_inserts).await;
    metrics.commit_groups.inc();
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    for (i, (entry, reply)) in entries.iter().zip(replies).enumerate() {
        let answer = match &outcome {
            Ok(outcomes) => answer(metrics, entry, &outcomes[i]),
            Err(e) => Reply::new(Status::Retry, e.to_string()),
        };
        for extra in waiters.remove(&entry.key()).unwrap_or_default() {
            let copy = if answer.is_done() {
                metrics.batches_duplicate.inc();
                Reply::new(Status::Duplicate, "")
            } else {
                answer.clone()
            };
            let _ = extra.send(copy);
        }
        let _ = reply.send(answer);
    }
    match outcome {
        Ok(outcomes) => outcomes
            .into_iter()
            .flat_map(|o| match o {
                Outcome::Resumed { dirty } => dirty,
                _ => BTreeSet::new(),
            })
            .collect(),
        Err(e) => {
            metrics.commit_errors.inc();
            tracing::warn!(error = %e, batches = entries.len(), "group commit failed; edges will re-send");
            BTreeSet::new()
        }
    }
}

fn answer(metrics: &Metrics, entry: &Entry, outcome: &Outcome) -> Reply {
    let (edge, seq) = (&entry.batch.edge, entry.batch.seq);
    match *outcome {
        Outcome::Committed | Outcome::Resumed { .. } => {
            metrics.batches_committed.inc();
            metrics.clicks_committed.inc_by(entry.totals.clicks);
            Reply::new(Status::Committed, "")
        }
        Outcome::Duplicate => {
            metrics.batches_duplicate.inc();
            Reply::new(Status::Duplicate, "")
        }
        Outcome::Conflict { recorded } => {
            metrics.batches_conflicting.inc();
            tracing::error!(
                edge = %edge, seq, recorded = format_args!("{recorded:016x}"), sent = format_args!("{:016x}", entry.checksum),
                "batch conflict: this batch id was committed with other content; refused, nothing written"
            );
            Reply::new(
                Status::Rejected,
                format!(
                    "conflict: batch {edge}/{seq} is recorded with checksum {recorded:016x}, this one has {:016x}; a batch id names one content forever, so it was not committed (an edge that reused its sequence numbers, e.g. a restored or copied spool)",
                    entry.checksum
                ),
            )
        }
        Outcome::Unreadable { state } => {
            metrics.ledger_unreadable.inc();
            tracing::error!(edge = %edge, seq, state, "the ledger holds a state this core does not know; batch kept by its edge");
            Reply::new(Status::Retry, format!("the ledger holds state {state} for batch {edge}/{seq}, which this core does not know (a damaged ledger or a newer release); retry against a core that reads it"))
        }
    }
}

/// Runs the protocol for one group of distinct batches; returns how it
/// ended for each, or the store's error (then every batch is retried).
#[tracing::instrument(name = "commit_group", skip_all, fields(batches = entries.len()))]
pub async fn commit_group<S: BatchStore>(store: &S, entries: &[Entry], after_inserts: &mut impl FnMut()) -> Result<Vec<Outcome>, S::Error> {
    // 1. Ledger entries, one query per edge.
    let mut by_edge: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for e in entries {
        let range = by_edge.entry(&e.batch.edge).or_insert((e.batch.seq, e.batch.seq));
        range.0 = range.0.min(e.batch.seq);
        range.1 = range.1.max(e.batch.seq);
    }
    let mut ledger = BTreeMap::new();
    for (edge, (lo, hi)) in by_edge {
        for (seq, entry) in store.ledger(edge, lo, hi).await? {
            ledger.insert((edge.to_string(), seq), entry);
        }
    }
    // 2-3. Decide, probing interrupted batches.
    let mut decisions = Vec::with_capacity(entries.len());
    let mut resumed: BTreeMap<usize, BTreeSet<Dirty>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let decision = match decide(ledger.get(&e.key()).copied(), e.checksum) {
            Decision::Probe => {
                let mut present: PerPart<BTreeSet<u32>> = PerPart::default();
                for (part, idx) in store.rows_present(&e.batch.edge, e.batch.seq, &e.totals).await? {
                    present[part].insert(idx);
                }
                let found: usize = present.0.iter().map(BTreeSet::len).sum();
                tracing::info!(edge = %e.batch.edge, seq = e.batch.seq, present = found, "resuming an interrupted commit");
                resumed.insert(i, heal::plan::resumed(&e.batch, &present));
                resume(e.counts(), &present)
            }
            d => d,
        };
        decisions.push((e.counts(), decision));
    }
    // 3-4. Writes, in protocol order.
    let mut wrote = false;
    for write in writes(&decisions) {
        match write {
            Write::Start(ix) => store.append_ledger(&ledger_rows(entries, &ix, LedgerState::Started)).await?,
            Write::Insert { part, rows } => {
                wrote = true;
                store.insert(&part_rows(entries, part, &rows), &insert_token(entries, part, &rows)).await?;
            }
            Write::Finish(ix) => {
                // Only groups that wrote rows count (not empty heartbeats).
                if wrote {
                    after_inserts();
                }
                store.append_ledger(&ledger_rows(entries, &ix, LedgerState::Committed)).await?
            }
        }
    }
    Ok(decisions
        .iter()
        .enumerate()
        .map(|(i, (_, d))| match d {
            Decision::Duplicate => Outcome::Duplicate,
            Decision::Conflict { recorded } => Outcome::Conflict { recorded: *recorded },
            Decision::Unreadable { state } => Outcome::Unreadable { state: *state },
            Decision::Fresh => Outcome::Committed,
            Decision::Resume { .. } => Outcome::Resumed { dirty: resumed.remove(&i).unwrap_or_default() },
            Decision::Probe => unreachable!("resolved above"),
        })
        .collect())
}

fn part_rows(entries: &[Entry], part: Part, rows: &[(usize, Vec<u32>)]) -> PartRows {
    match part {
        Part::Landing => PartRows::Landing(landing_rows(entries, rows)),
        Part::Clicks => PartRows::Clicks(click_rows(entries, rows)),
        Part::Refused => PartRows::Refused(refused_rows(entries, rows)),
        Part::Dimensions => PartRows::Dimensions(dimension_rows(entries, rows)),
        Part::Verdicts => PartRows::Verdicts(verdict_rows(entries, rows)),
    }
}

fn ledger_rows(entries: &[Entry], ix: &[usize], state: LedgerState) -> Vec<LedgerRow> {
    let now = (now_ms() / 1000) as u32;
    ix.iter()
        .map(|&i| {
            let e = &entries[i];
            LedgerRow {
                edge: e.batch.edge.clone(),
                seq: e.batch.seq,
                state: state.to_db(),
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
fn insert_token(entries: &[Entry], part: Part, wanted: &[(usize, Vec<u32>)]) -> String {
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
    format!("tally-{}-{:032x}", part as u8, h.digest128())
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
