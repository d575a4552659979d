//! Which table answers which part of a range: the coarsest rollup for the
//! aligned middle, finer ones only at the ragged edges. Pure; the queries
//! that carry a plan are in `deploy/clickhouse/queries/` and the store binds
//! it (`crate::clickhouse::store`).
//!
//! A range `[from, to)` (seconds, aligned to the finest table it may read)
//! becomes one [`Read`] per table, coarsest first:
//!
//! ```text
//!  from                                                              to
//!   | second | minute |  hour  |        day        |  hour  | minute | second |
//!                     '------ hour cover ----------------------'
//!            '------------------ minute cover --------------------'
//! ```
//!
//! Each table's *cover* is the largest span of whole buckets of that table
//! inside the range; covers nest (60 s | 1 h | 1 d in UTC, where every
//! bucket function of the schema works). A table reads its cover minus the
//! next coarser table's cover: `[from, to)` without `[skip_from, skip_to)`,
//! so one bound pair and one hole per table, and one fixed query shape.
//!
//! Invariants (property-tested below): the pieces of all reads are disjoint
//! and cover exactly `[from, to)`; each is aligned to its table's bucket;
//! no piece holds a whole bucket of a coarser table the plan may read (the
//! coarsest possible); an empty read has `from == to`, so its query branch
//! can be switched off by a constant `from < to` (ClickHouse scans a table
//! whose sort key does not lead with time for an empty bucket range, but
//! skips a branch whose `WHERE` is constantly false).
//!
//! Sums and counts add up across tables; distinct users merge their states
//! (`uniqArrayMergeState`), whose value depends only on the set of hashes
//! merged, so a planned read answers exactly what one table would.

use crate::resolution::Resolution;

/// Every table a plan may read, coarsest first (the order of the query
/// branches).
pub const TABLES: [Resolution; 4] = [Resolution::Day, Resolution::Hour, Resolution::Minute, Resolution::Second];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range [{from}, {to}) is not aligned to {seconds} s buckets")]
pub struct Misaligned {
    pub from: u32,
    pub to: u32,
    pub seconds: u32,
}

/// What one table contributes: buckets in `[from, to)` outside
/// `[skip_from, skip_to)`, which lies within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub table: Resolution,
    pub from: u32,
    pub to: u32,
    pub skip_from: u32,
    pub skip_to: u32,
}

impl Read {
    fn nothing(table: Resolution, at: u32) -> Read {
        Read { table, from: at, to: at, skip_from: at, skip_to: at }
    }

    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }

    /// The (at most two) non-empty spans this read covers.
    pub fn pieces(&self) -> impl Iterator<Item = (u32, u32)> {
        [(self.from, self.skip_from), (self.skip_to, self.to)].into_iter().filter(|(a, b)| a < b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    from: u32,
    to: u32,
    /// In [`TABLES`] order.
    reads: [Read; 4],
}

fn aligned(from: u32, to: u32, table: Resolution) -> Result<(), Misaligned> {
    let seconds = table.seconds();
    if from.is_multiple_of(seconds) && to.is_multiple_of(seconds) && from <= to {
        Ok(())
    } else {
        Err(Misaligned { from, to, seconds })
    }
}

impl Plan {
    /// The coarsest reading of `[from, to)` from tables no finer than
    /// `finest` (the range must be aligned to it).
    pub fn new(from: u32, to: u32, finest: Resolution) -> Result<Plan, Misaligned> {
        aligned(from, to, finest)?;
        // The cover of the next coarser table, once known (None: none yet).
        let mut inner: Option<(u32, u32)> = None;
        let reads = TABLES.map(|table| {
            if table.seconds() < finest.seconds() {
                return Read::nothing(table, from);
            }
            let size = table.seconds() as u64;
            let (lo, hi) = ((from as u64).div_ceil(size) * size, to as u64 / size * size);
            if lo >= hi {
                return Read::nothing(table, from);
            }
            // Within [from, to], so it fits in u32.
            let (lo, hi) = (lo as u32, hi as u32);
            let (skip_from, skip_to) = inner.replace((lo, hi)).unwrap_or((lo, lo));
            if (skip_from, skip_to) == (lo, hi) {
                // The coarser table covers all of this one's buckets.
                return Read::nothing(table, from);
            }
            Read { table, from: lo, to: hi, skip_from, skip_to }
        });
        Ok(Plan { from, to, reads })
    }

    /// Every bucket from `table` alone: what a query read before plans (the
    /// reference a plan must equal; also `1s` totals, which read the landing
    /// table only).
    pub fn single(from: u32, to: u32, table: Resolution) -> Result<Plan, Misaligned> {
        aligned(from, to, table)?;
        let reads = TABLES.map(|t| if t == table && from < to { Read { table, from, to, skip_from: from, skip_to: from } } else { Read::nothing(t, from) });
        Ok(Plan { from, to, reads })
    }

    pub fn from(&self) -> u32 {
        self.from
    }

    pub fn to(&self) -> u32 {
        self.to
    }

    /// What `table` reads.
    pub fn read(&self, table: Resolution) -> Read {
        self.reads[TABLES.iter().position(|&t| t == table).expect("TABLES holds every resolution")]
    }

    /// Coarsest first.
    pub fn reads(&self) -> &[Read; 4] {
        &self.reads
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DAY: u32 = 86_400;

    /// Every non-empty piece of the plan, sorted, must tile [from, to), and
    /// if `coarsest`, hold no whole bucket of a coarser table.
    fn check(plan: &Plan, finest: Resolution, coarsest: bool) {
        let mut pieces: Vec<(u32, u32, Resolution)> = plan.reads().iter().flat_map(|r| r.pieces().map(move |(a, b)| (a, b, r.table))).collect();
        pieces.sort_by_key(|&(a, b, _)| (a, b));
        let mut at = plan.from();
        for &(a, b, table) in &pieces {
            assert_eq!(a, at, "gap or overlap at {a} in {plan:?}");
            assert!(a < b);
            let size = table.seconds();
            assert!(a.is_multiple_of(size) && b.is_multiple_of(size), "{table:?} piece [{a}, {b}) not aligned: {plan:?}");
            assert!(size >= finest.seconds(), "reads {table:?}, finer than {finest:?}");
            for coarser in TABLES.iter().filter(|t| coarsest && t.seconds() > size) {
                let c = coarser.seconds();
                let first = a.div_ceil(c) as u64 * c as u64;
                assert!(first + c as u64 > b as u64, "{table:?} piece [{a}, {b}) holds a whole {coarser:?} bucket: {plan:?}");
            }
            at = b;
        }
        assert_eq!(at, plan.to(), "not covered up to the end: {plan:?}");
        for r in plan.reads() {
            assert_eq!(r.is_empty(), r.pieces().next().is_none(), "empty read with pieces or the reverse: {r:?}");
            assert!(r.from <= r.skip_from && r.skip_from <= r.skip_to && r.skip_to <= r.to, "skip outside the read: {r:?}");
        }
    }

    fn finest() -> impl Strategy<Value = Resolution> {
        prop_oneof![Just(Resolution::Second), Just(Resolution::Minute), Just(Resolution::Hour), Just(Resolution::Day)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn plans_tile_the_range_with_the_coarsest_tables(
            finest in finest(),
            start in 0u32..200 * DAY,
            len in prop_oneof![0u32..120, 0u32..7200, 0u32..3 * DAY, 0u32..40 * DAY],
        ) {
            let size = finest.seconds();
            let from = start / size * size;
            let to = (from + len) / size * size;
            check(&Plan::new(from, to, finest).unwrap(), finest, true);
            let single = Plan::single(from, to, finest).unwrap();
            check(&single, finest, false);
            prop_assert!(single.reads().iter().all(|r| r.table == finest || r.is_empty()));
        }

        #[test]
        fn misaligned_ranges_are_refused(finest in finest(), from in 0u32..10 * DAY, len in 1u32..DAY) {
            let size = finest.seconds();
            let to = from + len;
            prop_assert_eq!(Plan::new(from, to, finest).is_ok(), from.is_multiple_of(size) && to.is_multiple_of(size));
        }
    }

    #[test]
    fn ragged_month() {
        // 2023-11-14 22:13:20 .. 2023-12-14 05:07:30
        let (from, to) = (1_700_000_000, 1_702_530_450);
        let plan = Plan::new(from, to, Resolution::Second).unwrap();
        let day = plan.read(Resolution::Day);
        assert_eq!((day.from, day.to), (1_700_006_400, 1_702_512_000));
        assert_eq!(plan.read(Resolution::Hour).pieces().collect::<Vec<_>>(), [(1_700_002_800, 1_700_006_400), (1_702_512_000, 1_702_530_000)]);
        assert_eq!(plan.read(Resolution::Minute).pieces().collect::<Vec<_>>(), [(1_700_000_040, 1_700_002_800), (1_702_530_000, 1_702_530_420)]);
        assert_eq!(plan.read(Resolution::Second).pieces().collect::<Vec<_>>(), [(1_700_000_000, 1_700_000_040), (1_702_530_420, 1_702_530_450)]);
        // Minute-aligned: no seconds; within one hour: no hours or days.
        let plan = Plan::new(1_700_000_040, 1_700_001_000, Resolution::Second).unwrap();
        assert!(plan.read(Resolution::Second).is_empty() && plan.read(Resolution::Hour).is_empty() && plan.read(Resolution::Day).is_empty());
        assert!(Plan::new(from, to, Resolution::Minute).is_err());
    }

    #[test]
    fn edges_of_the_u32_range() {
        let to = u32::MAX / 60 * 60;
        check(&Plan::new(to - 7 * DAY - 60, to, Resolution::Minute).unwrap(), Resolution::Minute, true);
        check(&Plan::new(u32::MAX - 10, u32::MAX, Resolution::Second).unwrap(), Resolution::Second, true);
        check(&Plan::new(5, 5, Resolution::Second).unwrap(), Resolution::Second, true);
    }
}
