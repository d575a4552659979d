//! The shell around [`super::plan`]: one task that takes batches from the
//! receiver, groups whatever is waiting (no timer: a group is what queued
//! up while the previous group committed), runs the protocol against a
//! [`BatchStore`] and answers each batch.
//!
//! Batches stay as they arrived, archived (`frame::BatchArchive`); each
//! INSERT's body is written straight from them into one buffer per thread,
//! reused across groups (`row_binary`), so a group costs no allocation per
//! row.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use xxhash_rust::xxh3::Xxh3;

use bytes::BytesMut;
use tally_model::batch::frame::BatchArchive;
use tally_model::batch::{ArchivedBatch, BatchTotals};
use tally_model::reply::{Reply, Status};
use tally_model::timestamp::now_ms;

use super::batch_store::{BatchStore, PartRows};
use super::key_order::{self, in_key_order};
use super::plan::{decide, first_occurrences, resume, writes, Counts, Decision, LedgerState, Part, PerPart, Write};
use super::row_binary;
use super::rows::{ClickRow, DimensionRow, Hashes, LandingRow, LedgerRow, PluginVerdictRow, Reason, RefusedRow};
use crate::heal::{self, plan::Dirty};
use crate::lease::fence::insert_query_id;
use crate::lease::state::Epoch;
use crate::lease::zk::Keeper;
use crate::metrics::Metrics;

/// Most batches committed in one group.
const MAX_GROUP: usize = 256;

pub struct Job {
    /// Validated by the receiver (`frame::open`).
    pub batch: BatchArchive,
    pub checksum: u64,
    pub reply: oneshot::Sender<Reply>,
    /// The edge's lease epoch the receiver found (with `[zookeeper]`).
    pub epoch: Option<Epoch>,
}

/// A batch of a group, with what the protocol needs to know of it.
pub struct Entry {
    archive: BatchArchive,
    checksum: u64,
    totals: BatchTotals,
    /// Named in every INSERT's query id, so a later owner can fence it.
    epoch: Option<Epoch>,
}

impl Entry {
    pub fn new(archive: BatchArchive, checksum: u64) -> Entry {
        Entry { totals: archive.batch().totals(), archive, checksum, epoch: None }
    }

    /// Committed under the edge's lease at `epoch`.
    pub fn with_epoch(mut self, epoch: Option<Epoch>) -> Entry {
        self.epoch = epoch;
        self
    }

    fn batch(&self) -> &ArchivedBatch {
        self.archive.batch()
    }

    fn edge(&self) -> &str {
        self.batch().edge.as_str()
    }

    fn seq(&self) -> u64 {
        self.batch().seq.to_native()
    }

    fn key(&self) -> (String, u64) {
        (self.edge().to_string(), self.seq())
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
/// commits touched, after their edges were answered. With `leases`, a
/// batch is committed only while its edge's lease is still held at the
/// epoch the receiver found; otherwise it is answered `Retry`.
pub async fn run<S: BatchStore>(
    store: S,
    metrics: Arc<Metrics>,
    mut jobs: mpsc::Receiver<Job>,
    abort_after_inserts: Option<u64>,
    heal: Option<Arc<heal::Requests>>,
    leases: Option<Arc<Keeper>>,
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
        if let Some(keeper) = &leases {
            group = still_leased(keeper, &metrics, group);
            if group.is_empty() {
                continue;
            }
        }
        let dirty = answer_group(&store, &metrics, group, &mut after_inserts).await;
        if let Some(heal) = &heal {
            heal.add(dirty);
        }
    }
}

/// The jobs whose edge's lease is held at the epoch they were received
/// under: checked before every group, since the lease may have been lost
/// (session gone) while they queued. The others are answered `Retry`.
fn still_leased(keeper: &Keeper, metrics: &Metrics, group: Vec<Job>) -> Vec<Job> {
    group
        .into_iter()
        .filter_map(|job| {
            let edge = job.batch.batch().edge.as_str();
            let now = keeper.epoch(edge);
            if now.is_some() && now == job.epoch {
                return Some(job);
            }
            metrics.lease_refusals.inc();
            tracing::warn!(%edge, seq = job.batch.batch().seq.to_native(), "edge lease lost before its batch was committed; answered Retry");
            let reason = format!("core {} lost the lease of edge {edge} before committing this batch; send it to another core", keeper.core_id());
            let _ = job.reply.send(Reply::not_owner(reason));
            None
        })
        .collect()
}

/// Commits one group and answers every job in it. A batch sent twice in
/// one group (a re-send that queued behind its first copy) is committed
/// once; its other copies get the same answer, `Duplicate` if it is done.
/// Returns the hours whose rollups resumed batches may have left short.
pub async fn answer_group<S: BatchStore>(store: &S, metrics: &Metrics, group: Vec<Job>, after_inserts: &mut impl FnMut()) -> BTreeSet<Dirty> {
    let started = Instant::now();
    let keys: Vec<(String, u64)> = group.iter().map(|j| (j.batch.batch().edge.to_string(), j.batch.batch().seq.to_native())).collect();
    let unique: BTreeSet<usize> = first_occurrences(&keys).into_iter().collect();
    let mut replies: Vec<oneshot::Sender<Reply>> = Vec::with_capacity(unique.len());
    let mut entries = Vec::with_capacity(unique.len());
    let mut waiters: BTreeMap<(String, u64), Vec<oneshot::Sender<Reply>>> = BTreeMap::new();
    for (i, job) in group.into_iter().enumerate() {
        if unique.contains(&i) {
            entries.push(Entry::new(job.batch, job.checksum).with_epoch(job.epoch));
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
    // Answered: their buffers can take the next frames.
    let batches = entries.len();
    for entry in entries {
        crate::receiver::spare::recycle(entry.archive.into_payload());
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
            tracing::warn!(error = %e, batches, "group commit failed; edges will re-send");
            BTreeSet::new()
        }
    }
}

fn answer(metrics: &Metrics, entry: &Entry, outcome: &Outcome) -> Reply {
    let (edge, seq) = (entry.edge(), entry.seq());
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
        let range = by_edge.entry(e.edge()).or_insert((e.seq(), e.seq()));
        range.0 = range.0.min(e.seq());
        range.1 = range.1.max(e.seq());
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
                for (part, idx) in store.rows_present(e.edge(), e.seq(), &e.totals).await? {
                    present[part].insert(idx);
                }
                let found: usize = present.0.iter().map(BTreeSet::len).sum();
                tracing::info!(edge = %e.edge(), seq = e.seq(), present = found, "resuming an interrupted commit");
                resumed.insert(i, heal::plan::resumed(e.batch(), &present));
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
                if store.one_batch_per_insert() {
                    for one in rows.chunks(1) {
                        store.insert(&part_rows(entries, part, one), &insert_token(entries, part, one)).await?;
                    }
                } else {
                    store.insert(&part_rows(entries, part, &rows), &insert_token(entries, part, &rows)).await?;
                }
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

thread_local! {
    /// The INSERT bodies' buffer: split off for each INSERT and reclaimed
    /// once that INSERT is done with it, so it grows once, not per group.
    static BODY: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    /// The click records' ordering arrays, grown once, not per group.
    static ORDER: RefCell<key_order::Scratch> = RefCell::new(key_order::Scratch::default());
}

/// The wanted rows of one part, written straight from the archived batches.
fn part_rows<'a>(entries: &'a [Entry], part: Part, wanted: &'a [(usize, Vec<u32>)]) -> PartRows<'a> {
    // Taken out for this call and put back after: `part_rows` runs to its end
    // without an `.await`, so no other call on this thread sees it taken.
    let mut order = ORDER.take();
    let (body, columns) = BODY.with_borrow_mut(|body| {
        let mut columns = Vec::new();
        let mut out = Rows { body, columns: Some(&mut columns) };
        for (i, idxs) in wanted {
            let e = &entries[*i];
            let (batch, edge, batch_seq) = (e.batch(), e.edge(), e.seq());
            match part {
                Part::Landing => picked(batch.indexed_rows(), idxs).for_each(|(row_idx, tenant, r)| {
                    out.write(&LandingRow {
                        tenant,
                        ad_id: r.ad_id.to_native(),
                        campaign_id: r.campaign_id.to_native(),
                        second: r.second.to_native(),
                        clicks: r.clicks.to_native(),
                        spend_micros: r.spend_micros.to_native(),
                        user_hashes: Hashes(&r.user_hashes),
                        edge,
                        batch_seq,
                        row_idx,
                    })
                }),
                Part::Clicks => in_key_order(
                    picked(batch.indexed_clicks(), idxs),
                    |c| c.second(),
                    &mut order,
                    |(row_idx, tenant, c)| {
                        out.write_click(&ClickRow {
                            tenant,
                            id_hi: c.id_hi.to_native(),
                            id_lo: c.id_lo.to_native(),
                            ad_id: c.ad_id.to_native(),
                            second: c.second(),
                            cost_micros: c.cost_micros.to_native(),
                            verdict: c.verdict,
                            accepted_ms: c.accepted_ms.to_native(),
                            edge,
                            batch_seq,
                            row_idx,
                        })
                    },
                ),
                Part::Refused => picked(batch.indexed_refused(), idxs).for_each(|(row_idx, tenant, r)| {
                    out.write(&RefusedRow {
                        tenant,
                        id_hi: r.id_hi.to_native(),
                        id_lo: r.id_lo.to_native(),
                        ad_id: r.ad_id.to_native(),
                        ts_ms: r.ts_ms.to_native(),
                        reason: Reason { reason: r.reason.to_native(), code: r.code.to_native() },
                        at: (r.at_ms.to_native() / 1000) as u32,
                        edge,
                        batch_seq,
                        row_idx,
                    })
                }),
                Part::Dimensions => picked(batch.indexed_dims(), idxs).for_each(|(row_idx, tenant, d)| {
                    out.write(&DimensionRow {
                        tenant,
                        ad_id: d.ad_id.to_native(),
                        campaign_id: d.campaign_id.to_native(),
                        second: d.second.to_native(),
                        dimension: d.dimension.as_str(),
                        value: d.value.as_str(),
                        clicks: d.clicks.to_native(),
                        spend_micros: d.spend_micros.to_native(),
                        edge,
                        batch_seq,
                        row_idx,
                    })
                }),
                Part::Verdicts => picked(batch.indexed_verdicts(), idxs).for_each(|(row_idx, tenant, v)| {
                    out.write(&PluginVerdictRow {
                        tenant,
                        minute: v.minute.to_native(),
                        active_version: v.active_version.to_native(),
                        candidate_version: v.candidate_version.to_native(),
                        mode: v.mode,
                        applied_candidate: v.applied_candidate as u8,
                        active_code: v.active_code.to_native(),
                        candidate_code: v.candidate_code.to_native(),
                        clicks: v.clicks.to_native(),
                        edge,
                        batch_seq,
                        row_idx,
                    })
                }),
            }
        }
        (body.split().freeze(), columns)
    });
    ORDER.set(order);
    let rows = wanted.iter().map(|(i, idxs)| (entries[*i].edge(), entries[*i].seq(), idxs.as_slice())).collect();
    let leased = wanted.iter().filter_map(|(i, _)| entries[*i].epoch.map(|epoch| (entries[*i].edge(), epoch, entries[*i].seq())));
    let query_id = Some(insert_query_id(part as u8, leased)).filter(|_| wanted.iter().any(|(i, _)| entries[*i].epoch.is_some()));
    PartRows { part, body, columns, rows, query_id }
}

/// Where rows are written: the body, and the column names (taken from the
/// first row).
struct Rows<'b> {
    body: &'b mut BytesMut,
    columns: Option<&'b mut Vec<&'static str>>,
}

impl Rows<'_> {
    fn write(&mut self, row: &impl serde::Serialize) {
        row_binary::encode(self.body, self.columns.take(), row).expect("the row structs use only the column types RowBinary writes");
    }

    /// The same bytes as [`Rows::write`], through the click rows' own
    /// writer once the column names are taken.
    fn write_click(&mut self, row: &ClickRow<'_>) {
        if self.columns.is_some() {
            self.write(row);
        } else {
            row.write_to(self.body);
        }
    }
}

/// The items of `indexed` whose index is in `wanted` (ascending, as the
/// plan lists them), in one pass.
fn picked<'a, T: 'a>(indexed: impl Iterator<Item = (u32, &'a str, &'a T)>, wanted: &'a [u32]) -> impl Iterator<Item = (u32, &'a str, &'a T)> {
    let mut wanted = wanted.iter().copied().peekable();
    indexed.filter(move |(idx, _, _)| wanted.next_if_eq(idx).is_some())
}

fn ledger_rows(entries: &[Entry], ix: &[usize], state: LedgerState) -> Vec<LedgerRow> {
    let now = (now_ms() / 1000) as u32;
    ix.iter()
        .map(|&i| {
            let e = &entries[i];
            LedgerRow {
                edge: e.edge().to_string(),
                seq: e.seq(),
                state: state.to_db(),
                rows: e.totals.rows,
                click_records: e.totals.click_records,
                refused: e.totals.refused,
                clicks: e.totals.clicks,
                checksum: e.checksum,
                min_second: e.totals.min_second,
                max_second: e.totals.max_second,
                low_watermark_ms: e.batch().low_watermark_ms.to_native(),
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
        let e = &entries[*i];
        h.update(e.edge().as_bytes());
        h.update(&[0]);
        h.update(&e.seq().to_le_bytes());
        h.update(&e.checksum.to_le_bytes());
        // The indices' bytes in order, a chunk at a time (the same digest).
        let mut chunk = [0u8; 256];
        for idxs in idxs.chunks(chunk.len() / 4) {
            for (at, idx) in idxs.iter().enumerate() {
                chunk[at * 4..at * 4 + 4].copy_from_slice(&idx.to_le_bytes());
            }
            h.update(&chunk[..idxs.len() * 4]);
        }
    }
    format!("tally-{}-{:032x}", part as u8, h.digest128())
}
