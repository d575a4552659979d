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

/// A batch's rows go to several tables ("parts"), each with its own row
/// index space: the per-second rows, the click records, the refused events,
/// the dimension rows and the rollout verdict counts.
pub const PARTS: usize = 5;

/// Row indices per part.
pub type PartRows = [Vec<u32>; PARTS];

/// What to do with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already committed: answer `Duplicate`.
    Duplicate,
    /// Never seen: ledger `Started`, all rows, ledger `Committed`.
    Fresh,
    /// Seen and interrupted: the tables must be probed first.
    Probe,
    /// Insert these rows, then ledger `Committed`.
    Resume { missing: PartRows },
}

pub fn decide(state: LedgerState) -> Decision {
    match state {
        LedgerState::Committed => Decision::Duplicate,
        LedgerState::Absent => Decision::Fresh,
        LedgerState::Started => Decision::Probe,
    }
}

/// After a probe: the rows of a batch (`counts` rows per part) not yet present.
pub fn resume(counts: [u32; PARTS], present: &[BTreeSet<u32>; PARTS]) -> Decision {
    Decision::Resume { missing: std::array::from_fn(|p| (0..counts[p]).filter(|i| !present[p].contains(i)).collect()) }
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
    /// Rows of one part: (batch index, row indices); one INSERT.
    Insert { part: usize, rows: Vec<(usize, Vec<u32>)> },
    /// Ledger `Committed` for these batches.
    Finish(Vec<usize>),
}

/// The writes for a group, given each batch's row counts and final decision
/// (`Probe` must have been resolved to `Resume` already). One write of each
/// kind for the whole group: rows cross into ClickHouse one INSERT per table.
pub fn steps(decisions: &[([u32; PARTS], Decision)]) -> Vec<Step> {
    let mut start = Vec::new();
    let mut insert: [Vec<(usize, Vec<u32>)>; PARTS] = Default::default();
    let mut finish = Vec::new();
    for (i, (counts, decision)) in decisions.iter().enumerate() {
        match decision {
            Decision::Duplicate => {}
            Decision::Fresh => {
                start.push(i);
                for (p, n) in counts.iter().enumerate() {
                    if *n > 0 {
                        insert[p].push((i, (0..*n).collect()));
                    }
                }
                finish.push(i);
            }
            Decision::Resume { missing } => {
                for (p, rows) in missing.iter().enumerate() {
                    if !rows.is_empty() {
                        insert[p].push((i, rows.clone()));
                    }
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
    for (part, rows) in insert.into_iter().enumerate() {
        if !rows.is_empty() {
            out.push(Step::Insert { part, rows });
        }
    }
    if !finish.is_empty() {
        out.push(Step::Finish(finish));
    }
    out
}
