//! Billing decisions without I/O.
//!
//! Which hours a finalizer pass bills again ([`hours_to_bill`]): exact
//! per-click-id billing costs one hour's click records per hour, so a pass
//! reads only the hours becoming final and the hours whose batches changed
//! since the last successful pass ([`batches_per_hour`], from the ledger).
//! Every click record reaches the table inside a batch whose event time
//! range covers it, after that batch's started (open) row and before its
//! committed row. So an hour no open batch reaches, with as many committed
//! batches as at the last pass, has no new records; an hour an open batch
//! reaches is billed at every pass until the batch commits (false positives
//! only: a batch reaching an hour without records in it). A finalizer
//! without a last pass (a new process or a new leader) bills every hour of
//! its lookback once.

use std::collections::{BTreeMap, BTreeSet};

use super::figures::{BatchSpan, Billed, LiveBilling};

pub const HOUR_SECS: u32 = 3600;

/// The end (exclusive, seconds) of the last final hour: every edge's
/// watermark is at or past it. `None` when no edge has committed anything.
pub fn final_before(watermarks_ms: &[u64]) -> Option<u32> {
    let min = watermarks_ms.iter().copied().min()?;
    let secs = (min / 1000).min(u32::MAX as u64) as u32;
    Some(secs / HOUR_SECS * HOUR_SECS)
}

/// A statement row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub tenant: String,
    pub hour: u32,
    pub ad_id: u64,
    pub clicks: i64,
    pub spend_micros: i64,
    /// `final` for an hour being finalized now, else `adjustment`.
    pub adjustment: bool,
}

/// What must be written so the statements equal the records, for hours
/// that are final now (`final_hours` lists those already marked).
pub fn deltas(live: &[LiveBilling], billed: &[Billed], final_hours: &BTreeSet<u32>) -> Vec<Delta> {
    let mut diff: BTreeMap<(&str, u32, u64), (i64, i64)> = BTreeMap::new();
    for l in live {
        let e = diff.entry((l.tenant.as_str(), l.hour, l.ad_id)).or_default();
        e.0 += l.clicks;
        e.1 += l.spend_micros;
    }
    for b in billed {
        let e = diff.entry((b.tenant.as_str(), b.hour, b.ad_id)).or_default();
        e.0 -= b.clicks;
        e.1 -= b.spend_micros;
    }
    diff.into_iter()
        .filter(|(_, (c, s))| *c != 0 || *s != 0)
        .map(|((tenant, hour, ad_id), (clicks, spend_micros))| Delta {
            tenant: tenant.to_string(),
            hour,
            ad_id,
            clicks,
            spend_micros,
            adjustment: final_hours.contains(&hour),
        })
        .collect()
}

/// How many batches reach one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourBatches {
    pub committed: u64,
    pub open: u64,
}

/// Batches per hour of `[from, to)` (hours no batch reaches are absent):
/// the fingerprint a pass keeps for the next one.
pub fn batches_per_hour(spans: &[BatchSpan], from: u32, to: u32) -> BTreeMap<u32, HourBatches> {
    let mut per_hour: BTreeMap<u32, HourBatches> = BTreeMap::new();
    for s in spans {
        let after_last = s.last_hour.saturating_add(HOUR_SECS).min(to);
        for h in hours(s.first_hour.max(from), after_last) {
            let e = per_hour.entry(h).or_default();
            e.committed += s.committed;
            e.open += s.open;
        }
    }
    per_hour
}

/// The hours of `[from, to)` to bill from the click records: those not yet
/// final (`marked`), those an open batch reaches, and those whose committed
/// batches differ from the last successful pass's (`last`); every hour when
/// there was none.
pub fn hours_to_bill(from: u32, to: u32, marked: &BTreeSet<u32>, now: &BTreeMap<u32, HourBatches>, last: Option<&BTreeMap<u32, HourBatches>>) -> Vec<u32> {
    let at = |m: &BTreeMap<u32, HourBatches>, h: u32| m.get(&h).copied().unwrap_or_default();
    hours(from, to)
        .filter(|&h| match last {
            None => true,
            Some(last) => !marked.contains(&h) || at(now, h).open > 0 || at(now, h).committed != at(last, h).committed,
        })
        .collect()
}

/// Hours in `[from, to)`, as hour starts in seconds.
pub fn hours(from: u32, to: u32) -> impl Iterator<Item = u32> {
    (from / HOUR_SECS * HOUR_SECS..to).step_by(HOUR_SECS as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(tenant: &str, hour: u32, ad_id: u64, clicks: i64) -> LiveBilling {
        LiveBilling { tenant: tenant.into(), hour, ad_id, clicks, spend_micros: clicks * 10 }
    }

    fn billed(tenant: &str, hour: u32, ad_id: u64, clicks: i64) -> Billed {
        Billed { tenant: tenant.into(), hour, ad_id, clicks, spend_micros: clicks * 10, adjustments: 0 }
    }

    fn span(first_hour: u32, last_hour: u32, committed: u64) -> BatchSpan {
        BatchSpan { first_hour, last_hour, committed, open: 0 }
    }

    fn counts(v: &[(u32, u64, u64)]) -> BTreeMap<u32, HourBatches> {
        v.iter().map(|&(h, committed, open)| (h, HourBatches { committed, open })).collect()
    }

    #[test]
    fn batches_count_in_every_hour_they_reach_inside_the_range() {
        let open = BatchSpan { open: 1, ..span(7200, 7200, 0) };
        let per_hour = batches_per_hour(&[span(0, 7200, 2), span(3600, 3600, 1), span(10_800, 14_400, 5), open], 3600, 10_800);
        assert_eq!(per_hour, counts(&[(3600, 3, 0), (7200, 2, 1)]));
        // A batch spanning to the end of time stops at the range.
        assert_eq!(batches_per_hour(&[span(0, u32::MAX / HOUR_SECS * HOUR_SECS, 1)], 0, 7200), counts(&[(0, 1, 0), (3600, 1, 0)]));
    }

    #[test]
    fn bills_hours_becoming_final_and_hours_that_changed() {
        let marked: BTreeSet<u32> = [0, 3600, 7200, 10_800].into_iter().collect();
        let last = counts(&[(0, 4, 0), (3600, 2, 0), (10_800, 1, 1)]);
        let now = counts(&[(0, 4, 0), (3600, 3, 0), (7200, 1, 0), (10_800, 1, 1), (14_400, 1, 0)]);
        // 0 unchanged and final: not read; 3600 and 7200 got a batch; 10800
        // has a batch still open (it may be inserting); 14400 becomes final.
        assert_eq!(hours_to_bill(0, 18_000, &marked, &now, Some(&last)), vec![3600, 7200, 10_800, 14_400]);
        // Nothing new and nothing open: nothing final is read again.
        let settled = counts(&[(0, 4, 0), (3600, 2, 0)]);
        assert!(hours_to_bill(0, 14_400, &marked, &settled, Some(&settled)).is_empty());
        // A new finalizer bills every hour once.
        assert_eq!(hours_to_bill(0, 14_400, &marked, &settled, None), vec![0, 3600, 7200, 10_800]);
    }

    proptest::proptest! {
        /// Batches are started (open, inserting), then committed, between
        /// and during passes: every hour a batch inserting since the last
        /// pass's ledger read reaches (the only hours that can have new click
        /// records) is billed.
        #[test]
        fn every_hour_a_batch_inserted_into_is_billed(
            settled in proptest::collection::vec((0u32..12, 0u32..4), 0..12),
            // (first hour, hours, open at the last pass, committed by now)
            moving in proptest::collection::vec((0u32..12, 0u32..4, proptest::bool::ANY, proptest::bool::ANY), 0..6),
            marked in proptest::collection::btree_set(0u32..12, 0..12),
        ) {
            let at = |first: u32, len: u32, open: bool| {
                BatchSpan { first_hour: first * HOUR_SECS, last_hour: (first + len) * HOUR_SECS, committed: u64::from(!open), open: u64::from(open) }
            };
            let old: Vec<BatchSpan> = settled.iter().map(|&(f, l)| at(f, l, false)).collect();
            // A batch not yet started at the last pass is absent from it.
            let last_spans: Vec<BatchSpan> = old.iter().copied().chain(moving.iter().filter(|m| m.2).map(|&(f, l, ..)| at(f, l, true))).collect();
            let now_spans: Vec<BatchSpan> = old.iter().copied().chain(moving.iter().map(|&(f, l, _, done)| at(f, l, !done))).collect();
            let (from, to) = (2 * HOUR_SECS, 10 * HOUR_SECS);
            let marked: BTreeSet<u32> = marked.into_iter().map(|h| h * HOUR_SECS).collect();
            let last = batches_per_hour(&last_spans, from, to);
            let now = batches_per_hour(&now_spans, from, to);
            let billed = hours_to_bill(from, to, &marked, &now, Some(&last));
            for &(f, l, ..) in &moving {
                let s = at(f, l, false);
                for h in hours(s.first_hour.max(from), s.last_hour.saturating_add(HOUR_SECS).min(to)) {
                    proptest::prop_assert!(billed.contains(&h), "hour {h} got click records but is not billed");
                }
            }
            let last = batches_per_hour(&old, from, to);
            for h in hours(from, to).filter(|h| !marked.contains(h)) {
                proptest::prop_assert!(billed.contains(&h), "hour {h} becomes final but is not billed");
            }
            // Without new or open batches, no final hour is read again.
            proptest::prop_assert!(hours_to_bill(from, to, &marked, &last, Some(&last)).iter().all(|h| !marked.contains(h)));
        }
    }

    #[test]
    fn final_hour_is_the_slowest_edge() {
        assert_eq!(final_before(&[]), None);
        assert_eq!(final_before(&[7_200_500, 10_800_000]), Some(7_200));
        assert_eq!(final_before(&[7_199_999]), Some(3_600));
    }

    #[test]
    fn writes_only_what_differs_and_labels_late_ones() {
        let final_hours: BTreeSet<u32> = [3600].into_iter().collect();
        let d = deltas(&[live("a", 0, 1, 5), live("a", 3600, 1, 7), live("b", 3600, 2, 1)], &[billed("a", 3600, 1, 6), billed("a", 0, 1, 5)], &final_hours);
        assert_eq!(
            d,
            vec![
                Delta { tenant: "a".into(), hour: 3600, ad_id: 1, clicks: 1, spend_micros: 10, adjustment: true },
                Delta { tenant: "b".into(), hour: 3600, ad_id: 2, clicks: 1, spend_micros: 10, adjustment: true },
            ]
        );
        // First finalization of hour 0 for a new tenant: a final row.
        let d = deltas(&[live("c", 0, 9, 2)], &[], &final_hours);
        assert!(!d[0].adjustment);
        // Applying the deltas makes the next pass write nothing.
        assert!(deltas(&[live("a", 0, 1, 5)], &[billed("a", 0, 1, 5)], &final_hours).is_empty());
        assert_eq!(hours(3599, 7201).collect::<Vec<_>>(), vec![0, 3600, 7200]);
    }
}
