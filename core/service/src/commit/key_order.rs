//! A batch's click records in `click_records`' sort key order: tenant,
//! second, then row index (the batch is the same for every row).
//!
//! ClickHouse sorts every INSERT by that key with a generic comparator, and
//! 18.16 spent 0.9 µs per row on it for clicks in arrival order (event times
//! jitter) but 0.35 µs for rows already in order, so the core hands them over
//! sorted. A comparison sort of the records was then the core's largest item
//! (8-14 % of its CPU), so the order is built without comparing records:
//! * A batch holds each tenant's records together, so tenants come in runs;
//!   only the runs are ordered by name (a handful of string compares).
//! * Within a tenant, a counting sort on the second: one pass counts, one
//!   places. It is stable, so records of one second keep their row-index
//!   order (the input is in row-index order). A batch spans a few seconds
//!   (the edge's allowed lateness), so the counts are a short array; a
//!   tenant whose records spread over far more seconds than it has records
//!   is sorted by comparison instead.
//!
//! The records are read once here: their seconds go into a reused array in
//! the pass that gathers them, and both counting passes run over that array
//! (4 bytes a record, not the archived records spread over a batch of many
//! megabytes). The order is a reused array of positions, which the caller
//! visits, so the records are read once more, when their rows are written.
//!
//! Invariant: the visit order is exactly the input sorted by (tenant,
//! second, row index); row indices are unique, so that order is total
//! (tested against a plain sort).

/// Counting sorts only when the seconds spanned are at most this many per
/// record (plus [`MIN_COUNTED_SPAN`]): the counts stay smaller than the rows.
const SPAN_PER_RECORD: usize = 4;
const MIN_COUNTED_SPAN: usize = 4096;

/// Scratch arrays, reused across calls (one per committing thread), so an
/// INSERT's ordering allocates only the rows it gathers.
#[derive(Debug, Default)]
pub struct Scratch {
    /// `seconds[p]`: the second of the `p`-th gathered row.
    seconds: Vec<u32>,
    counts: Vec<u32>,
    /// Positions of the gathered rows, in key order.
    order: Vec<u32>,
    /// Runs of one tenant, in batch order: (start, end).
    runs: Vec<(u32, u32)>,
}

/// Visits `rows` (row index, tenant, record; ascending row index) sorted by
/// (tenant, `second(record)`, row index).
pub fn in_key_order<'a, T: Copy>(
    rows: impl Iterator<Item = (u32, &'a str, T)>,
    second: impl Fn(&T) -> u32,
    scratch: &mut Scratch,
    mut visit: impl FnMut((u32, &'a str, T)),
) {
    let Scratch { seconds, counts, order, runs } = scratch;
    seconds.clear();
    runs.clear();
    let mut gathered: Vec<(u32, &'a str, T)> = Vec::with_capacity(rows.size_hint().0);
    for row in rows {
        let at = gathered.len() as u32;
        match runs.last_mut() {
            Some((start, end)) if gathered[*start as usize].1 == row.1 => *end = at + 1,
            _ => runs.push((at, at + 1)),
        }
        seconds.push(second(&row.2));
        gathered.push(row);
    }
    // Stable: runs of one tenant (if a batch ever split one) keep their order.
    runs.sort_by(|a, b| gathered[a.0 as usize].1.cmp(gathered[b.0 as usize].1));
    order.clear();
    let mut first = 0;
    while first < runs.len() {
        let name = gathered[runs[first].0 as usize].1;
        let mut last = first + 1;
        while last < runs.len() && gathered[runs[last].0 as usize].1 == name {
            last += 1;
        }
        by_second(&runs[first..last], seconds, counts, order, |p| gathered[p as usize].0);
        first = last;
    }
    for &p in order.iter() {
        visit(gathered[p as usize]);
    }
}

/// Appends one tenant's positions (its `runs`, in row-index order) to
/// `order` by second, stable. `row_idx(p)` breaks ties when sorting by
/// comparison.
fn by_second(runs: &[(u32, u32)], seconds: &[u32], counts: &mut Vec<u32>, order: &mut Vec<u32>, row_idx: impl Fn(u32) -> u32) {
    let positions = || runs.iter().flat_map(|&(start, end)| start..end);
    let (mut lo, mut hi, mut n) = (u32::MAX, 0u32, 0usize);
    for &(start, end) in runs {
        for &s in &seconds[start as usize..end as usize] {
            lo = lo.min(s);
            hi = hi.max(s);
        }
        n += (end - start) as usize;
    }
    if n == 0 {
        return;
    }
    let start = order.len();
    let span = (hi - lo) as usize + 1;
    if span > MIN_COUNTED_SPAN + SPAN_PER_RECORD * n {
        order.extend(positions());
        order[start..].sort_unstable_by_key(|&p| (seconds[p as usize], row_idx(p)));
        return;
    }
    counts.clear();
    counts.resize(span, 0);
    for p in positions() {
        counts[(seconds[p as usize] - lo) as usize] += 1;
    }
    // Each second's first position.
    let mut at = start as u32;
    for count in counts.iter_mut() {
        let here = *count;
        *count = at;
        at += here;
    }
    order.resize(start + n, 0);
    for p in positions() {
        let slot = &mut counts[(seconds[p as usize] - lo) as usize];
        order[*slot as usize] = p;
        *slot += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TENANTS: [&str; 4] = ["acme", "b", "beta", "zeta"];

    fn sorted(rows: &[(u32, &'static str, u32)]) -> Vec<(u32, &'static str, u32)> {
        let mut want = rows.to_vec();
        want.sort_by(|a, b| (a.1, a.2, a.0).cmp(&(b.1, b.2, b.0)));
        want
    }

    fn ordered(rows: &[(u32, &'static str, u32)], scratch: &mut Scratch) -> Vec<(u32, &'static str, u32)> {
        let mut got = Vec::new();
        in_key_order(rows.iter().copied(), |s| *s, scratch, |row| got.push(row));
        got
    }

    proptest! {
        #[test]
        fn same_as_a_plain_sort(
            runs in prop::collection::vec((0..TENANTS.len(), prop::collection::vec(0u32..10, 0..40)), 0..6),
            base in prop_oneof![Just(0u32), Just(1_764_000_000u32), Just(u32::MAX - 30_000)],
            far in prop::option::of(0u32..20_000),
        ) {
            // Runs of tenants in any order, a tenant possibly in two runs,
            // seconds close together or (with `far`) spread out.
            let mut rows = Vec::new();
            for (tenant, seconds) in &runs {
                for s in seconds {
                    let idx = rows.len() as u32;
                    rows.push((idx, TENANTS[*tenant], base + s + if s % 3 == 0 { far.unwrap_or(0) } else { 0 }));
                }
            }
            // One scratch for several calls, as the committer reuses it.
            let mut scratch = Scratch::default();
            for _ in 0..2 {
                prop_assert_eq!(ordered(&rows, &mut scratch), sorted(&rows));
            }
        }
    }

    #[test]
    fn sparse_seconds_are_sorted_by_comparison_and_still_right() {
        let rows: Vec<_> = (0..10u32).map(|i| (i, "t", if i % 2 == 0 { 0 } else { 1_000_000 - i })).collect();
        assert_eq!(ordered(&rows, &mut Scratch::default()), sorted(&rows));
    }
}
