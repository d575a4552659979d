//! A series as the API answers it (ad, campaign and tenant-wide alike),
//! pure: every bucket of the range present (an empty one as explicit
//! zeros, which is what a chart wants), users capped at clicks (a sketch's
//! estimate may exceed them; a click has at most one user), and the totals
//! made to agree with the points.
//!
//! ClickHouse reads are not one snapshot, so a commit may land between the
//! queries of one answer. Clicks and spend add up, so their totals are
//! summed from the points; `users` (a sketch merge) cannot be, so it is read
//! after the points and covers at least the clicks they show (committed
//! data only grows), then capped at the summed clicks.

use serde::Serialize;

use crate::clickhouse::filters::FilteredPoint;
use crate::clickhouse::store::{Point, Totals};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PointOut {
    /// Bucket start, ms since the epoch.
    pub t: u64,
    pub clicks: u64,
    pub spend_micros: u64,
    pub users: u64,
    /// Clicks the tenant's filter dropped (steps of a minute or more, and
    /// not per campaign).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct DenseSeries {
    pub points: Vec<PointOut>,
    pub total: Totals,
    /// The filtered clicks of the points, when there are any to show.
    pub total_filtered: Option<u64>,
}

/// `series` (ascending, sparse, each `t` one of `buckets`) and `filtered`
/// (any order, `None` where the step shows none) over `buckets` (seconds,
/// ascending), with `users` the total read after the points.
pub fn dense(buckets: impl Iterator<Item = u32>, series: Vec<Point>, filtered: Option<&[FilteredPoint]>, users: u64) -> DenseSeries {
    let clicks = series.iter().map(|p| p.clicks).sum();
    let total = Totals { clicks, spend_micros: series.iter().map(|p| p.spend_micros).sum(), users: users.min(clicks) };
    let filtered_at = |t: u32| filtered.map(|f| f.iter().find(|p| p.t == t).map_or(0, |p| p.filtered));
    let total_filtered = filtered.map(|f| f.iter().map(|p| p.filtered).sum());
    let mut found = series.into_iter().peekable();
    let points = buckets
        .map(|t| {
            let p = match found.peek() {
                Some(p) if p.t == t => found.next().expect("peeked"),
                _ => Point { t, clicks: 0, spend_micros: 0, users: 0 },
            };
            PointOut { t: t as u64 * 1000, clicks: p.clicks, spend_micros: p.spend_micros, users: p.users.min(p.clicks), filtered: filtered_at(t) }
        })
        .collect();
    DenseSeries { points, total, total_filtered }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u32, clicks: u64, users: u64) -> Point {
        Point { t, clicks, spend_micros: clicks * 10, users }
    }

    fn out(t: u64, clicks: u64, users: u64, filtered: Option<u64>) -> PointOut {
        PointOut { t: t * 1000, clicks, spend_micros: clicks * 10, users, filtered }
    }

    #[test]
    fn empty_buckets_are_zeros_and_totals_are_the_points_sums() {
        let series = vec![point(60, 5, 3), point(180, 2, 2)];
        let d = dense((0..240).step_by(60), series, None, 4);
        assert_eq!(d.points, vec![out(0, 0, 0, None), out(60, 5, 3, None), out(120, 0, 0, None), out(180, 2, 2, None)]);
        assert_eq!((d.total, d.total_filtered), (Totals { clicks: 7, spend_micros: 70, users: 4 }, None));
    }

    #[test]
    fn users_never_exceed_clicks_in_a_point_or_the_total() {
        // A sketch's estimate above the clicks, and a total read after a commit the points lack.
        let d = dense((0..120).step_by(60), vec![point(0, 2, 3), point(60, 1, 1)], None, 9);
        assert_eq!(d.points, vec![out(0, 2, 2, None), out(60, 1, 1, None)]);
        assert_eq!(d.total.users, 3);
    }

    #[test]
    fn filtered_clicks_join_by_bucket_in_any_order_and_default_to_zero() {
        let filtered = [FilteredPoint { t: 120, filtered: 4 }, FilteredPoint { t: 0, filtered: 1 }];
        let d = dense((0..180).step_by(60), vec![point(60, 3, 1)], Some(&filtered), 1);
        assert_eq!(d.points, vec![out(0, 0, 0, Some(1)), out(60, 3, 1, Some(0)), out(120, 0, 0, Some(4))]);
        assert_eq!(d.total_filtered, Some(5));
        let none = dense((0..60).step_by(60), Vec::new(), Some(&[]), 0);
        assert_eq!((none.points, none.total_filtered), (vec![out(0, 0, 0, Some(0))], Some(0)));
    }

    #[test]
    fn a_series_without_filtered_clicks_serializes_without_the_field() {
        let d = dense((0..60).step_by(60), vec![point(0, 1, 1)], None, 1);
        assert_eq!(serde_json::to_string(&d.points).unwrap(), r#"[{"t":0,"clicks":1,"spend_micros":10,"users":1}]"#);
    }
}
