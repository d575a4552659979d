//! A [`BatchStore`] in memory that can crash anywhere: after any number of
//! ledger writes and inserted rows, a write fails (an insert half-way, its
//! earlier rows landed), and optionally a write lands but its answer is lost.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tally_model::batch::BatchTotals;

use crate::commit::batch_store::{BatchStore, PartRows};
use crate::commit::plan::{LedgerEntry, LedgerState, Part};
use crate::commit::rows::LedgerRow;

#[derive(Debug, thiserror::Error)]
#[error("injected crash")]
pub struct Crash;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (edge, seq) -> every (state byte, checksum) appended.
    ledger: BTreeMap<(String, u64), Vec<(u8, u64)>>,
    /// (part, edge, seq, row_idx) -> times inserted.
    rows: BTreeMap<(Part, String, u64, u32), u32>,
    /// Writes (ledger rows, inserted rows) that succeed before the crash.
    budget: Option<u32>,
    /// Whether the write that exhausts the budget lands before failing.
    lands_then_fails: bool,
    /// Tokens of every insert, in order.
    tokens: Vec<String>,
    /// Asks the committer for one batch per INSERT, as a cluster does.
    one_batch_per_insert: bool,
}

impl Inner {
    /// Whether one more write may land; `Err` is the crash.
    fn spend(&mut self) -> Result<bool, Crash> {
        match &mut self.budget {
            None => Ok(true),
            Some(0) => Err(Crash),
            Some(n) => {
                *n -= 1;
                Ok(*n > 0 || !self.lands_then_fails)
            }
        }
    }
}

impl MemoryStore {
    /// The next attempt crashes after `writes` writes; `None` never crashes.
    pub fn crash_after(&self, writes: Option<u32>, lands_then_fails: bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.budget = writes;
        inner.lands_then_fails = lands_then_fails;
    }

    pub fn times_present(&self, part: Part, edge: &str, seq: u64, idx: u32) -> u32 {
        self.inner.lock().unwrap().rows.get(&(part, edge.to_string(), seq, idx)).copied().unwrap_or(0)
    }

    pub fn max_times_present(&self) -> u32 {
        self.inner.lock().unwrap().rows.values().copied().max().unwrap_or(0)
    }

    pub fn rows_of(&self, edge: &str, seq: u64) -> usize {
        self.inner.lock().unwrap().rows.keys().filter(|(_, e, s, _)| e == edge && *s == seq).count()
    }

    pub fn ledger_state(&self, edge: &str, seq: u64) -> Option<u8> {
        self.inner.lock().unwrap().ledger.get(&(edge.to_string(), seq)).and_then(|v| v.iter().map(|(s, _)| *s).max())
    }

    /// Writes a raw ledger row, as a damaged ledger or a newer release would.
    pub fn put_ledger(&self, edge: &str, seq: u64, state: u8, checksum: u64) {
        self.inner.lock().unwrap().ledger.entry((edge.to_string(), seq)).or_default().push((state, checksum));
    }

    pub fn ask_one_batch_per_insert(&self, yes: bool) {
        self.inner.lock().unwrap().one_batch_per_insert = yes;
    }

    pub fn tokens(&self) -> Vec<String> {
        self.inner.lock().unwrap().tokens.clone()
    }
}

fn keys(rows: &PartRows<'_>) -> Vec<(String, u64, u32)> {
    rows.rows.iter().flat_map(|(edge, seq, idxs)| idxs.iter().map(move |idx| (edge.to_string(), *seq, *idx))).collect()
}

impl BatchStore for MemoryStore {
    type Error = Crash;

    async fn ledger(&self, edge: &str, lo: u64, hi: u64) -> Result<Vec<(u64, LedgerEntry)>, Crash> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .ledger
            .range((edge.to_string(), lo)..=(edge.to_string(), hi))
            .filter_map(|((_, seq), states)| {
                let (state, checksum) = states.iter().copied().max_by_key(|(s, _)| *s)?;
                Some((*seq, LedgerEntry { state: LedgerState::from_db(state), checksum }))
            })
            .collect())
    }

    async fn rows_present(&self, edge: &str, seq: u64, _totals: &BatchTotals) -> Result<Vec<(Part, u32)>, Crash> {
        let inner = self.inner.lock().unwrap();
        Ok(inner.rows.keys().filter(|(_, e, s, _)| e == edge && *s == seq).map(|(p, _, _, i)| (*p, *i)).collect())
    }

    async fn append_ledger(&self, rows: &[LedgerRow]) -> Result<(), Crash> {
        let mut inner = self.inner.lock().unwrap();
        // One INSERT of ledger rows is one write: it lands whole or not at all.
        if !inner.spend()? {
            for r in rows {
                inner.ledger.entry((r.edge.clone(), r.seq)).or_default().push((r.state, r.checksum));
            }
            inner.budget = Some(0);
            return Err(Crash);
        }
        for r in rows {
            inner.ledger.entry((r.edge.clone(), r.seq)).or_default().push((r.state, r.checksum));
        }
        Ok(())
    }

    fn one_batch_per_insert(&self) -> bool {
        self.inner.lock().unwrap().one_batch_per_insert
    }

    async fn insert(&self, rows: &PartRows<'_>, token: &str) -> Result<(), Crash> {
        let mut inner = self.inner.lock().unwrap();
        assert!(!inner.one_batch_per_insert || rows.rows.len() == 1, "an INSERT of {} batches where one was asked for", rows.rows.len());
        inner.tokens.push(token.to_string());
        // Not atomic: each row is a separate chance to crash.
        for (edge, seq, idx) in keys(rows) {
            let lands = inner.spend()?;
            *inner.rows.entry((rows.part, edge, seq, idx)).or_default() += 1;
            if !lands {
                inner.budget = Some(0);
                return Err(Crash);
            }
        }
        Ok(())
    }
}
