//! The commit protocol as a pure function (see the module above): given what
//! the ledger and the landing table say, what to write, in which order.

use std::collections::BTreeSet;

/// What the ledger knows about one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LedgerState {
    Absent = 0,
    Started = 1,
    Committed = 2,
}

impl LedgerState {
    pub fn from_db(state: u8) -> LedgerState {
        match state {
            0 => LedgerState::Absent,
            1 => LedgerState::Started,
            _ => LedgerState::Committed,
        }
    }
}

/// What to do with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already committed: answer `Duplicate`.
    Duplicate,
    /// Never seen: ledger `Started`, all rows, ledger `Committed`.
    Fresh,
    /// Seen and interrupted: the landing table must be probed first.
    Probe,
    /// Insert these rows, then ledger `Committed`.
    Resume { missing: Vec<u32> },
}

pub fn decide(state: LedgerState) -> Decision {
    match state {
        LedgerState::Committed => Decision::Duplicate,
        LedgerState::Absent => Decision::Fresh,
        LedgerState::Started => Decision::Probe,
    }
}

/// After a probe: the rows of a batch of `rows` rows not yet present.
pub fn resume(rows: u32, present: &BTreeSet<u32>) -> Decision {
    Decision::Resume { missing: (0..rows).filter(|i| !present.contains(i)).collect() }
}

/// Indices of the first occurrence of each key: a batch re-sent while its
/// first send waits in the same group is committed once and answered twice.
pub fn first_occurrences<K: Ord>(keys: &[K]) -> Vec<usize> {
    let mut seen = std::collections::BTreeSet::new();
    (0..keys.len()).filter(|&i| seen.insert(&keys[i])).collect()
}

/// One write of a group commit, in the order they must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ledger `Started` for these batches (indices into the group).
    Start(Vec<usize>),
    /// Landing rows: (batch index, row indices).
    Insert(Vec<(usize, Vec<u32>)>),
    /// Ledger `Committed` for these batches.
    Finish(Vec<usize>),
}

/// The writes for a group, given each batch's row count and final decision
/// (`Probe` must have been resolved to `Resume` already). One write of each
/// kind for the whole group: rows cross into ClickHouse in one INSERT.
pub fn steps(decisions: &[(u32, Decision)]) -> Vec<Step> {
    let mut start = Vec::new();
    let mut insert = Vec::new();
    let mut finish = Vec::new();
    for (i, (rows, decision)) in decisions.iter().enumerate() {
        match decision {
            Decision::Duplicate => {}
            Decision::Fresh => {
                start.push(i);
                insert.push((i, (0..*rows).collect()));
                finish.push(i);
            }
            Decision::Resume { missing } => {
                if !missing.is_empty() {
                    insert.push((i, missing.clone()));
                }
                finish.push(i);
            }
            Decision::Probe => unreachable!("probe must be resolved before planning writes"),
        }
    }
    let mut out = Vec::new();
    if !start.is_empty() {
        out.push(Step::Start(start));
    }
    if !insert.is_empty() {
        out.push(Step::Insert(insert));
    }
    if !finish.is_empty() {
        out.push(Step::Finish(finish));
    }
    out
}
