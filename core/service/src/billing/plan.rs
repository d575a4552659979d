//! Billing decisions without I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::figures::{Billed, LiveBilling};

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
