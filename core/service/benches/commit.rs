//! The core's batch path, one core, no network, no ClickHouse.
//!
//! `cargo bench -p tally-core --bench commit`
//!
//! Frames of 1000 clicks (about the rows `tally load` makes: half the clicks
//! on one hot ad, the rest spread over 1000 ads, 5 s of event time) through:
//! * `open`: header, checksum, bytecheck, the canonical check, semantic
//!   validation (what the receiver does with a frame it read);
//! * `commit`: the committer's `commit_group` over groups of 8 of them,
//!   against a store that answers at once and keeps nothing: ledger rows,
//!   every part's INSERT body in RowBinary and its token;
//! * `both`: the two, per frame as it arrives.
//!
//! Best of 5 runs over 64 frames each, in ns per click.

use std::time::{Duration, Instant};

use tally_core::commit::batch_store::{BatchStore, PartRows};
use tally_core::commit::committer::{commit_group, Entry, Outcome};
use tally_core::commit::plan::{LedgerEntry, Part};
use tally_core::commit::rows::LedgerRow;
use tally_model::batch::frame::{self, AlignedVec, HEADER_LEN};
use tally_model::batch::{Batch, BatchTotals, ClickRecord, SecondRow, TenantRows};

const EVENTS: u64 = 1000;
const FRAMES: usize = 64;
const GROUP: usize = 8;

/// A store that accepts everything and remembers only how many bytes it was sent.
struct Null;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl BatchStore for Null {
    type Error = Never;

    async fn ledger(&self, _: &str, _: u64, _: u64) -> Result<Vec<(u64, LedgerEntry)>, Never> {
        Ok(Vec::new())
    }

    async fn rows_present(&self, _: &str, _: u64, _: &BatchTotals) -> Result<Vec<(Part, u32)>, Never> {
        Ok(Vec::new())
    }

    async fn append_ledger(&self, rows: &[LedgerRow]) -> Result<(), Never> {
        std::hint::black_box(rows);
        Ok(())
    }

    async fn insert(&self, rows: &PartRows<'_>, token: &str) -> Result<(), Never> {
        std::hint::black_box((rows.body.len(), token));
        Ok(())
    }
}

fn batch(seq: u64) -> Batch {
    let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut clicks: Vec<ClickRecord> = (0..EVENTS)
        .map(|i| {
            let ad_id = if next(2) == 0 { 1 } else { 1 + next(1000) };
            let ts_ms = 1_700_000_000_000 + next(5000);
            ClickRecord { id_hi: seq, id_lo: i, ad_id, campaign_id: ad_id / 10, ts_ms, cost_micros: 100 + next(4900), verdict: 0, accepted_ms: ts_ms + 3 }
        })
        .collect();
    clicks.sort_by_key(|c| (c.ad_id, c.second()));
    let mut rows: Vec<SecondRow> = Vec::new();
    for c in &clicks {
        match rows.last_mut() {
            Some(r) if r.ad_id == c.ad_id && r.second == c.second() => {
                r.clicks += 1;
                r.spend_micros += c.cost_micros;
                r.user_hashes.push(c.id_lo);
            }
            _ => rows.push(SecondRow {
                ad_id: c.ad_id,
                campaign_id: c.campaign_id,
                second: c.second(),
                clicks: 1,
                spend_micros: c.cost_micros,
                user_hashes: vec![c.id_lo],
            }),
        }
    }
    let tenant = TenantRows { tenant: "bench".into(), rows, clicks, ..TenantRows::default() };
    Batch { edge: "edge-bench".into(), seq, sealed_at_ms: 0, low_watermark_ms: 0, wal_from: seq, wal_to: seq + 1, tenants: vec![tenant] }
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

fn main() {
    let frames: Vec<Vec<u8>> = (0..FRAMES as u64).map(|s| frame::encode(&batch(s))).collect();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let rows: u32 = frames.iter().map(|f| frame::decode(f).unwrap().totals().rows).sum();
    println!("{FRAMES} frames x {EVENTS} clicks, {:.0} bytes and {:.2} rows per click", bytes as f64 / (FRAMES as f64 * EVENTS as f64), rows as f64 / (FRAMES as f64 * EVENTS as f64));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    // The receiver reads each payload into an aligned buffer; these copies are that read.
    let received = || -> Vec<([u8; HEADER_LEN], AlignedVec<16>)> {
        frames
            .iter()
            .map(|f| {
                let mut payload = AlignedVec::<16>::with_capacity(f.len() - HEADER_LEN);
                payload.extend_from_slice(&f[HEADER_LEN..]);
                (f[..HEADER_LEN].try_into().unwrap(), payload)
            })
            .collect()
    };
    let open = |received: Vec<([u8; HEADER_LEN], AlignedVec<16>)>| -> Vec<Entry> {
        received
            .into_iter()
            .map(|(header, payload)| Entry::new(frame::open(&header, payload).unwrap(), frame::checksum(&header).unwrap()))
            .collect()
    };
    let commit = |entries: &[Entry]| {
        for group in entries.chunks(GROUP) {
            let outcomes = rt.block_on(commit_group(&Null, group, &mut || {})).unwrap();
            assert!(outcomes.iter().all(|o| *o == Outcome::Committed));
        }
    };
    let per_click = |d: Duration| d.as_nanos() as f64 / (FRAMES as f64 * EVENTS as f64);
    let t_open = best_of(5, || {
        let input = received();
        let start = Instant::now();
        std::hint::black_box(open(input));
        start.elapsed()
    });
    let t_commit = best_of(5, || {
        let entries = open(received());
        let start = Instant::now();
        commit(&entries);
        start.elapsed()
    });
    let t_both = best_of(5, || {
        let input = received();
        let start = Instant::now();
        commit(&open(input));
        start.elapsed()
    });
    println!("open    {:7.1} ns/click", per_click(t_open));
    println!("commit  {:7.1} ns/click", per_click(t_commit));
    println!("both    {:7.1} ns/click", per_click(t_both));
}
