//! The commit protocol as a pure function (see the module above): given what
//! the ledger and the landing tables say, what to write, in which order.

use std::collections::BTreeSet;
use std::ops::{Index, IndexMut};

/// The tables a batch's rows go to, each with its own row index space.
/// The discriminant is the `part` column of `batch_rows_present.sql` and
/// part of every insert token, so it never changes for a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// Per-second rows (`clicks_by_second`), which the rollup views read.
    Landing = 0,
    /// Per-click records for billing (`click_records`).
    Clicks = 1,
    /// Refused clicks (`refused_events`).
    Refused = 2,
    /// Enrichment dimension rows (`click_dimensions`).
    Dimensions = 3,
    /// Rollout verdict counts (`plugin_verdicts`).
    Verdicts = 4,
}

impl Part {
    /// Every part, in the order their inserts are written.
    pub const ALL: [Part; 5] = [Part::Landing, Part::Clicks, Part::Refused, Part::Dimensions, Part::Verdicts];

    /// Strict decoding of the probe's `part` column: an unknown number is
    /// a query that does not match this code, never silently some part.
    pub fn from_probe(n: u8) -> Option<Part> {
        Part::ALL.into_iter().find(|p| *p as u8 == n)
    }
}

/// One value per [`Part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerPart<T>(pub [T; 5]);

impl<T> PerPart<T> {
    pub fn from_fn(mut f: impl FnMut(Part) -> T) -> PerPart<T> {
        PerPart(Part::ALL.map(&mut f))
    }

    pub fn iter(&self) -> impl Iterator<Item = (Part, &T)> {
        Part::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T> Index<Part> for PerPart<T> {
    type Output = T;
    fn index(&self, part: Part) -> &T {
        &self.0[part as usize]
    }
}

impl<T> IndexMut<Part> for PerPart<T> {
    fn index_mut(&mut self, part: Part) -> &mut T {
        &mut self.0[part as usize]
    }
}

/// Rows per part of one batch.
pub type Counts = PerPart<u32>;

/// Row indices per part.
pub type RowIndices = PerPart<Vec<u32>>;

/// What the ledger holds for one batch (highest state wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LedgerState {
    /// An attempt wrote `Started`; its rows may be partly present.
    Started,
    /// Every row is present.
    Committed,
    /// A byte this core does not know: a damaged ledger or a newer release.
    Unknown(u8),
}

impl LedgerState {
    pub const STARTED: u8 = 1;
    pub const COMMITTED: u8 = 2;

    /// Strict: only the states this core writes are read as such.
    pub fn from_db(state: u8) -> LedgerState {
        match state {
            LedgerState::STARTED => LedgerState::Started,
            LedgerState::COMMITTED => LedgerState::Committed,
            other => LedgerState::Unknown(other),
        }
    }

    pub fn to_db(self) -> u8 {
        match self {
            LedgerState::Started => LedgerState::STARTED,
            LedgerState::Committed => LedgerState::COMMITTED,
            LedgerState::Unknown(b) => b,
        }
    }
}

/// A batch's ledger entry: its highest state and the checksum of the
/// content that state was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerEntry {
    pub state: LedgerState,
    pub checksum: u64,
}

/// What to do with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already committed with this content: answer `Duplicate`.
    Duplicate,
    /// Never seen: ledger `Started`, all rows, ledger `Committed`.
    Fresh,
    /// Seen and interrupted: the tables must be probed first.
    Probe,
    /// Insert these rows, then ledger `Committed`.
    Resume { missing: RowIndices },
    /// `(edge, seq)` names other content in the ledger: a batch id names
    /// one content forever, so this is refused and nothing is written.
    Conflict { recorded: u64 },
    /// The ledger holds a state this core cannot read: nothing is written
    /// and the edge keeps the batch until a core that reads it answers.
    Unreadable { state: u8 },
}

pub fn decide(entry: Option<LedgerEntry>, checksum: u64) -> Decision {
    let Some(entry) = entry else { return Decision::Fresh };
    if let LedgerState::Unknown(state) = entry.state {
        return Decision::Unreadable { state };
    }
    if entry.checksum != checksum {
        return Decision::Conflict { recorded: entry.checksum };
    }
    match entry.state {
        LedgerState::Committed => Decision::Duplicate,
        LedgerState::Started => Decision::Probe,
        LedgerState::Unknown(_) => unreachable!("handled above"),
    }
}

/// After a probe: the rows of a batch (`counts` rows per part) not yet present.
pub fn resume(counts: Counts, present: &PerPart<BTreeSet<u32>>) -> Decision {
    Decision::Resume { missing: PerPart::from_fn(|p| (0..counts[p]).filter(|i| !present[p].contains(i)).collect()) }
}

/// Indices of the first occurrence of each key: a batch re-sent while its
/// first send waits in the same group is committed once and answered twice.
pub fn first_occurrences<K: Ord>(keys: &[K]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    (0..keys.len()).filter(|&i| seen.insert(&keys[i])).collect()
}

/// One write of a group commit, in the order they must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Ledger `Started` for these batches (indices into the group).
    Start(Vec<usize>),
    /// Rows of one part: (batch index, row indices); one INSERT.
    Insert { part: Part, rows: Vec<(usize, Vec<u32>)> },
    /// Ledger `Committed` for these batches.
    Finish(Vec<usize>),
}

/// The writes for a group, given each batch's row counts and final decision
/// (`Probe` must have been resolved to `Resume` already). One write of each
/// kind for the whole group: rows cross into ClickHouse one INSERT per table.
pub fn writes(decisions: &[(Counts, Decision)]) -> Vec<Write> {
    let mut start = Vec::new();
    let mut insert: PerPart<Vec<(usize, Vec<u32>)>> = PerPart::default();
    let mut finish = Vec::new();
    for (i, (counts, decision)) in decisions.iter().enumerate() {
        match decision {
            Decision::Duplicate | Decision::Conflict { .. } | Decision::Unreadable { .. } => {}
            Decision::Fresh => {
                start.push(i);
                for (p, n) in counts.iter() {
                    if *n > 0 {
                        insert[p].push((i, (0..*n).collect()));
                    }
                }
                finish.push(i);
            }
            Decision::Resume { missing } => {
                for (p, rows) in missing.iter() {
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
        out.push(Write::Start(start));
    }
    for (part, rows) in Part::ALL.into_iter().zip(insert.0) {
        if !rows.is_empty() {
            out.push(Write::Insert { part, rows });
        }
    }
    if !finish.is_empty() {
        out.push(Write::Finish(finish));
    }
    out
}
