//! The real commit shell ([`answer_group`] and `commit_group`) against an
//! in-memory store that can fail anywhere: after any write, half-way through
//! an insert (some rows landed, some not), or after a write landed but
//! before its answer came back; re-sends regrouped at random, with the same
//! batch several times in one group.

mod memory_store;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tokio::sync::oneshot;

use tally_model::batch::frame::BatchArchive;
use tally_model::batch::{Batch, ClickRecord, DimRow, RefusalReason, RefusedRecord, SecondRow, TenantRows, VerdictRow, MODE_SHADOW};
use tally_model::reply::{Reply, Status};

use super::committer::{answer_group, Job};
use super::plan::*;
use crate::metrics::Metrics;
use memory_store::MemoryStore;

/// A batch of `edge` with `counts` rows per part (content need not add
/// up: the committer does not validate, the receiver does).
fn batch(edge: &str, seq: u64, counts: [u32; 5]) -> Batch {
    let n = |p: usize| 0..counts[p] as u64;
    let tenant = TenantRows {
        tenant: "acme".into(),
        rows: n(0).map(|i| SecondRow { ad_id: i, campaign_id: 0, second: 1_700_000_000, clicks: 1, spend_micros: 5, user_hashes: vec![] }).collect(),
        clicks: n(1)
            .map(|i| ClickRecord {
                id_hi: seq,
                id_lo: i,
                ad_id: i,
                campaign_id: 0,
                ts_ms: 1_700_000_000_000,
                cost_micros: 5,
                verdict: 0,
                accepted_ms: 1_700_000_000_000,
            })
            .collect(),
        refused: n(2)
            .map(|i| RefusedRecord { id_hi: seq, id_lo: i, ad_id: i, ts_ms: 1, reason: RefusalReason::TooLate, code: 0, at_ms: 1_700_000_000_000 })
            .collect(),
        dims: n(3)
            .map(|i| DimRow { ad_id: i, campaign_id: 0, second: 1_700_000_000, dimension: "country".into(), value: "de".into(), clicks: 1, spend_micros: 5 })
            .collect(),
        verdicts: n(4)
            .map(|i| VerdictRow {
                minute: 1_700_000_000,
                active_version: 1,
                candidate_version: 2 + i as u32,
                mode: MODE_SHADOW,
                applied_candidate: false,
                active_code: 0,
                candidate_code: 0,
                clicks: 1,
            })
            .collect(),
    };
    Batch { edge: edge.into(), seq, sealed_at_ms: 0, low_watermark_ms: 0, wal_from: 0, wal_to: 0, tenants: vec![tenant] }
}

/// Sends `batches` as one group through the real shell; the answers in order.
fn send(store: &MemoryStore, batches: &[(Batch, u64)]) -> Vec<Reply> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let metrics = Metrics::new();
    let (jobs, answers): (Vec<Job>, Vec<oneshot::Receiver<Reply>>) = batches
        .iter()
        .map(|(b, checksum)| {
            let (tx, rx) = oneshot::channel();
            (Job { batch: BatchArchive::of(b), checksum: *checksum, reply: tx, epoch: None }, rx)
        })
        .unzip();
    rt.block_on(async {
        answer_group(store, &metrics, jobs, &mut || {}).await;
        let mut out = Vec::new();
        for rx in answers {
            out.push(rx.await.expect("every job is answered"));
        }
        out
    })
}

fn checksum(seq: u64) -> u64 {
    0xC0FFEE ^ seq
}

/// Every row of `b` present exactly once.
fn complete(store: &MemoryStore, b: &Batch) -> bool {
    let t = b.totals();
    let counts =
        [(Part::Landing, t.rows), (Part::Clicks, t.click_records), (Part::Refused, t.refused), (Part::Dimensions, t.dims), (Part::Verdicts, t.verdicts)];
    counts.iter().all(|&(part, n)| (0..n).all(|i| store.times_present(part, &b.edge, b.seq, i) == 1))
}

proptest! {
    /// Whatever the crashes and however batches are regrouped on re-send,
    /// a batch answered Committed or Duplicate has each of its rows present
    /// exactly once at that moment, no row is ever present twice, and once
    /// every batch is re-sent without a crash, all are committed; also when
    /// the store asks for one batch per INSERT (a cluster).
    #[test]
    fn exactly_once_under_crashes(
        rows in proptest::collection::vec([0u32..4, 0u32..4, 0u32..3, 0u32..3, 0u32..2], 1..6),
        schedule in proptest::collection::vec(
            (proptest::collection::vec(any::<prop::sample::Index>(), 1..5), proptest::option::weighted(0.8, 0u32..14), any::<bool>()),
            1..20,
        ),
        one_batch_per_insert in any::<bool>(),
    ) {
        let store = MemoryStore::default();
        store.ask_one_batch_per_insert(one_batch_per_insert);
        let edge = |i: usize| if i % 2 == 0 { "edge-a" } else { "edge-b" };
        let batches: Vec<(Batch, u64)> = rows.iter().enumerate().map(|(i, r)| (batch(edge(i), i as u64 / 2, *r), checksum(i as u64 / 2))).collect();
        for (pick, crash_after, lands_then_fails) in schedule {
            // The same batch may be picked twice: a re-send queued behind its first copy.
            let group: Vec<(Batch, u64)> = pick.iter().map(|ix| batches[ix.index(batches.len())].clone()).collect();
            store.crash_after(crash_after, lands_then_fails);
            for ((b, _), reply) in group.iter().zip(send(&store, &group)) {
                prop_assert!(matches!(reply.status, Status::Committed | Status::Duplicate | Status::Retry), "{reply:?}");
                if reply.is_done() {
                    prop_assert!(complete(&store, b), "batch {}/{} acknowledged before all its rows were in", b.edge, b.seq);
                }
            }
            prop_assert!(store.max_times_present() <= 1, "a row landed twice");
        }
        store.crash_after(None, false);
        for ((b, _), reply) in batches.iter().zip(send(&store, &batches)) {
            prop_assert!(reply.is_done(), "{reply:?}");
            prop_assert_eq!(store.ledger_state(&b.edge, b.seq), Some(LedgerState::COMMITTED));
            prop_assert!(complete(&store, b));
        }
        prop_assert!(store.max_times_present() <= 1);
    }
}

#[test]
fn a_group_with_one_batch_twice_commits_it_once_and_answers_both() {
    let store = MemoryStore::default();
    let b = (batch("e", 7, [2, 2, 1, 1, 1]), checksum(7));
    let replies = send(&store, &[b.clone(), b.clone()]);
    assert_eq!(replies.iter().map(|r| r.status).collect::<Vec<_>>(), [Status::Committed, Status::Duplicate]);
    assert!(complete(&store, &b.0));
    assert_eq!(send(&store, &[b.clone()])[0].status, Status::Duplicate);
    assert!(complete(&store, &b.0));
}

#[test]
fn another_content_under_a_committed_id_is_refused_and_writes_nothing() {
    let store = MemoryStore::default();
    let first = (batch("e", 1, [1, 1, 0, 0, 0]), checksum(1));
    assert_eq!(send(&store, &[first.clone()])[0].status, Status::Committed);
    let forged = (batch("e", 1, [3, 3, 0, 0, 0]), 0xBAD);
    let (rows_before, tokens_before) = (store.rows_of("e", 1), store.tokens().len());
    let replies = send(&store, &[forged.clone(), forged]);
    for r in &replies {
        assert_eq!(r.status, Status::Rejected, "{r:?}");
        assert!(r.reason.starts_with("conflict: batch e/1"), "{}", r.reason);
    }
    assert_eq!((store.rows_of("e", 1), store.tokens().len()), (rows_before, tokens_before));
    // The real content is still a duplicate.
    assert_eq!(send(&store, &[first])[0].status, Status::Duplicate);
}

#[test]
fn another_content_under_a_started_id_is_refused_before_any_row() {
    let store = MemoryStore::default();
    store.put_ledger("e", 4, LedgerState::STARTED, 0x1111);
    let reply = &send(&store, &[(batch("e", 4, [2, 0, 0, 0, 0]), 0x2222)])[0];
    assert_eq!(reply.status, Status::Rejected);
    assert_eq!(store.rows_of("e", 4), 0);
}

#[test]
fn an_unknown_ledger_state_is_never_read_as_committed() {
    let store = MemoryStore::default();
    let b = (batch("e", 9, [1, 1, 0, 0, 0]), checksum(9));
    for unknown in [0u8, 3, 200] {
        store.put_ledger("e", 9, unknown, checksum(9));
        let reply = &send(&store, &[b.clone()])[0];
        assert_eq!(reply.status, Status::Retry, "state {unknown}: {reply:?}");
        assert!(reply.reason.contains(&format!("state {unknown}")), "{}", reply.reason);
        assert_eq!(store.rows_of("e", 9), 0);
    }
}

#[test]
fn insert_tokens_name_the_rows_and_the_part() {
    let store = MemoryStore::default();
    let b = (batch("e", 2, [1, 1, 1, 1, 1]), checksum(2));
    send(&store, &[b]);
    let tokens = store.tokens();
    assert_eq!(tokens.len(), 5);
    let parts: BTreeSet<&str> = tokens.iter().map(|t| &t[..7]).collect();
    assert_eq!(parts, ["tally-0", "tally-1", "tally-2", "tally-3", "tally-4"].into_iter().collect());
}

#[test]
fn plan_orders_start_insert_finish_and_writes_nothing_for_duplicates() {
    let none = Decision::Resume { missing: PerPart::default() };
    let w = writes(&[
        (PerPart([2, 1, 0, 0, 1]), Decision::Fresh),
        (PerPart([3; 5]), Decision::Duplicate),
        (PerPart([4; 5]), none),
        (PerPart([4; 5]), Decision::Conflict { recorded: 1 }),
        (PerPart([4; 5]), Decision::Unreadable { state: 9 }),
    ]);
    assert_eq!(
        w,
        vec![
            Write::Start(vec![0]),
            Write::Insert { part: Part::Landing, rows: vec![(0, vec![0, 1])] },
            Write::Insert { part: Part::Clicks, rows: vec![(0, vec![0])] },
            Write::Insert { part: Part::Verdicts, rows: vec![(0, vec![0])] },
            Write::Finish(vec![0, 2])
        ]
    );
    assert!(writes(&[(PerPart([5; 5]), Decision::Duplicate)]).is_empty());
    let present = PerPart([[1, 3].into_iter().collect(), BTreeSet::new(), [0].into_iter().collect(), BTreeSet::new(), [0].into_iter().collect()]);
    assert_eq!(resume(PerPart([4, 1, 1, 2, 1]), &present), Decision::Resume { missing: PerPart([vec![0, 2], vec![0], vec![], vec![0, 1], vec![]]) });
}

#[test]
fn ledger_states_decode_strictly() {
    let entry = |state, checksum| Some(LedgerEntry { state: LedgerState::from_db(state), checksum });
    assert_eq!(decide(None, 1), Decision::Fresh);
    assert_eq!(decide(entry(2, 1), 1), Decision::Duplicate);
    assert_eq!(decide(entry(1, 1), 1), Decision::Probe);
    assert_eq!(decide(entry(2, 5), 1), Decision::Conflict { recorded: 5 });
    assert_eq!(decide(entry(3, 1), 1), Decision::Unreadable { state: 3 });
    assert_eq!(decide(entry(0, 1), 1), Decision::Unreadable { state: 0 });
    let by_part: BTreeMap<u8, Option<Part>> = (0..=5).map(|n| (n, Part::from_probe(n))).collect();
    assert_eq!(by_part[&4], Some(Part::Verdicts));
    assert_eq!(by_part[&5], None);
}
