//! The protocol against a model of ClickHouse that can fail anywhere: after
//! any write, or half-way through an insert (some rows landed, some not).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::plan::*;

#[derive(Default)]
struct Model {
    ledger: BTreeMap<u32, LedgerState>,
    /// (part, batch, row) -> times inserted
    landing: BTreeMap<(usize, u32, u32), u32>,
}

type Counts = [u32; PARTS];

/// Runs one group commit attempt of `batches` (id, rows per part); `budget`
/// is how many row/ledger writes succeed before the "crash". Returns the
/// batches acknowledged (Committed or Duplicate) if it completed.
fn attempt(m: &mut Model, batches: &[(u32, Counts)], budget: &mut u32) -> Option<Vec<u32>> {
    let spend = |n: &mut u32| -> bool {
        if *n == 0 {
            return false;
        }
        *n -= 1;
        true
    };
    let mut decisions = Vec::new();
    for &(id, rows) in batches {
        let state = m.ledger.get(&id).copied().unwrap_or(LedgerState::Absent);
        let d = match decide(state) {
            Decision::Probe => {
                let present: [BTreeSet<u32>; PARTS] =
                    std::array::from_fn(|p| m.landing.keys().filter(|(q, b, _)| *q == p && *b == id).map(|(_, _, r)| *r).collect());
                resume(rows, &present)
            }
            d => d,
        };
        decisions.push((rows, d));
    }
    for step in steps(&decisions) {
        let finish = matches!(step, Step::Finish(_));
        match step {
            Step::Start(ix) | Step::Finish(ix) => {
                if !spend(budget) {
                    return None;
                }
                for i in ix {
                    let s = m.ledger.entry(batches[i].0).or_insert(LedgerState::Absent);
                    *s = (*s).max(if finish { LedgerState::Committed } else { LedgerState::Started });
                }
            }
            Step::Insert { part, rows } => {
                // Non-atomic: each row is a separate chance to crash.
                for (i, idxs) in rows {
                    for r in idxs {
                        if !spend(budget) {
                            return None;
                        }
                        *m.landing.entry((part, batches[i].0, r)).or_default() += 1;
                    }
                }
            }
        }
    }
    Some(batches.iter().map(|b| b.0).collect())
}

proptest! {
    /// Whatever the crashes and however batches are regrouped on re-send,
    /// every acknowledged batch ends with each of its rows present exactly
    /// once, and no row is ever present twice.
    #[test]
    fn exactly_once_under_crashes(
        rows in proptest::collection::vec([0u32..4, 0u32..4, 0u32..3, 0u32..3, 0u32..2], 1..6),
        schedule in proptest::collection::vec((proptest::collection::vec(any::<prop::sample::Index>(), 1..4), 0u32..12), 1..20),
    ) {
        let mut m = Model::default();
        let batches: Vec<(u32, Counts)> = rows.iter().enumerate().map(|(i, r)| (i as u32, *r)).collect();
        let mut acked = BTreeSet::new();
        for (pick, budget) in schedule {
            let sent: Vec<(u32, Counts)> = pick.iter().map(|ix| batches[ix.index(batches.len())]).collect();
            let group: Vec<(u32, Counts)> = first_occurrences(&sent).into_iter().map(|i| sent[i]).collect();
            let mut budget = budget;
            if let Some(done) = attempt(&mut m, &group, &mut budget) {
                acked.extend(done);
            }
            prop_assert!(m.landing.values().all(|&n| n == 1), "a row landed twice");
        }
        // Eventually every batch is re-sent with no crash.
        let mut unlimited = u32::MAX;
        acked.extend(attempt(&mut m, &batches, &mut unlimited).unwrap());
        for &(id, n) in &batches {
            prop_assert!(acked.contains(&id));
            prop_assert_eq!(m.ledger[&id], LedgerState::Committed);
            for (p, count) in n.iter().enumerate() {
                for r in 0..*count {
                    prop_assert_eq!(m.landing.get(&(p, id, r)).copied(), Some(1));
                }
            }
        }
        prop_assert!(m.landing.values().all(|&n| n == 1));
    }
}

#[test]
fn duplicate_writes_nothing_and_order_is_start_insert_finish() {
    let none = Decision::Resume { missing: Default::default() };
    let s = steps(&[([2, 1, 0, 0, 1], Decision::Fresh), ([3, 3, 3, 3, 3], Decision::Duplicate), ([4, 4, 4, 4, 4], none)]);
    assert_eq!(
        s,
        vec![
            Step::Start(vec![0]),
            Step::Insert { part: 0, rows: vec![(0, vec![0, 1])] },
            Step::Insert { part: 1, rows: vec![(0, vec![0])] },
            Step::Insert { part: 4, rows: vec![(0, vec![0])] },
            Step::Finish(vec![0, 2])
        ]
    );
    assert!(steps(&[([5; 5], Decision::Duplicate)]).is_empty());
    let present = [[1, 3].into_iter().collect(), BTreeSet::new(), [0].into_iter().collect(), BTreeSet::new(), [0].into_iter().collect()];
    assert_eq!(resume([4, 1, 1, 2, 1], &present), Decision::Resume { missing: [vec![0, 2], vec![0], vec![], vec![0, 1], vec![]] });
}
