//! What the healer checks and repairs, as pure functions (see the module
//! above for why these scopes, and why repairing them cannot double count).

use std::collections::BTreeSet;

use tally_model::batch::ArchivedBatch;

use crate::clickhouse::store::Family;
use crate::commit::plan::{Part, PerPart};
use crate::resolution::Resolution;

const HOUR: u32 = 3600;
const DAY: u32 = 86_400;

/// An hour whose rollups of one family may lack rows their landing table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dirty {
    pub family: Family,
    /// Hour start, seconds since the epoch.
    pub hour: u32,
}

/// The families whose rollups a part's landing table feeds (click records
/// and verdicts have no views).
pub fn families(part: Part) -> &'static [Family] {
    match part {
        Part::Landing => &[Family::Clicks, Family::Campaigns],
        Part::Refused => &[Family::Refused],
        Part::Dimensions => &[Family::Dimensions, Family::DimensionValues],
        Part::Clicks | Part::Verdicts => &[],
    }
}

/// The hours a resumed batch may have left short in the rollups: those of
/// the rows an earlier attempt already wrote (`present`), whose landing
/// part is in while their view inserts may have died with it. The rows
/// the resume inserts now reach their views in the same INSERT.
pub fn resumed(batch: &ArchivedBatch, present: &PerPart<BTreeSet<u32>>) -> BTreeSet<Dirty> {
    let mut dirty = BTreeSet::new();
    let mut add = |part: Part, idx: u32, second: u32| {
        if present[part].contains(&idx) {
            dirty.extend(families(part).iter().map(|&family| Dirty { family, hour: second / HOUR * HOUR }));
        }
    };
    for (idx, _, row) in batch.indexed_rows() {
        add(Part::Landing, idx, row.second.to_native());
    }
    for (idx, _, refused) in batch.indexed_refused() {
        add(Part::Refused, idx, (refused.ts_ms.to_native() / 1000) as u32);
    }
    for (idx, _, dim) in batch.indexed_dims() {
        add(Part::Dimensions, idx, dim.second.to_native());
    }
    dirty
}

/// One drift measurement (and, if it finds any, one repair) of a family's
/// rollup at one step over `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub family: Family,
    pub step: Resolution,
    pub from: u32,
    pub to: u32,
}

/// The checks of one pass: for every family, the `recent` hours up to the
/// one holding `now` plus the `requested` ones. Minute and hour rollups are
/// checked over each run of consecutive hours; day rollups over the whole
/// days holding them, since a day bucket only compares with its whole day
/// of landing rows.
pub fn checks(now: u32, recent: u32, requested: &BTreeSet<Dirty>) -> Vec<Check> {
    let current = now / HOUR * HOUR;
    let mut out = Vec::new();
    for family in Family::ALL {
        let mut hours: BTreeSet<u32> = (0..recent).filter_map(|back| current.checked_sub(back * HOUR)).collect();
        hours.extend(requested.iter().filter(|d| d.family == family).map(|d| d.hour));
        let days: BTreeSet<u32> = hours.iter().map(|h| h / DAY * DAY).collect();
        for step in Resolution::ROLLUPS {
            let ranges = if step == Resolution::Day { runs(&days, DAY) } else { runs(&hours, HOUR) };
            out.extend(ranges.into_iter().map(|(from, to)| Check { family, step, from, to }));
        }
    }
    out
}

/// Consecutive starts of `size`-long buckets merged into `[from, to)` ranges.
fn runs(starts: &BTreeSet<u32>, size: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &s in starts {
        match out.last_mut() {
            Some((_, to)) if *to == s => *to = s + size,
            _ => out.push((s, s + size)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_model::batch::frame::BatchArchive;
    use tally_model::batch::{Batch, DimRow, RefusalReason, RefusedRecord, SecondRow, TenantRows};

    const H: u32 = 1_700_000_000 / HOUR * HOUR;

    fn batch() -> Batch {
        let row = |second| SecondRow { ad_id: 1, campaign_id: 0, second, clicks: 1, spend_micros: 10, user_hashes: vec![] };
        let refused = |ts_ms| RefusedRecord { id_hi: 0, id_lo: 1, ad_id: 1, ts_ms, reason: RefusalReason::TooLate, code: 0, at_ms: ts_ms };
        let dim = |second| DimRow { ad_id: 1, campaign_id: 0, second, dimension: "country".into(), value: "DE".into(), clicks: 1, spend_micros: 10 };
        let tenants = vec![
            TenantRows {
                tenant: "a".into(),
                rows: vec![row(H + 5), row(H + HOUR + 1)],
                refused: vec![refused((H as u64 - 10) * 1000)],
                ..TenantRows::default()
            },
            TenantRows { tenant: "b".into(), rows: vec![row(H + 2 * HOUR)], dims: vec![dim(H + 7)], ..TenantRows::default() },
        ];
        Batch { edge: "e".into(), seq: 1, sealed_at_ms: 0, low_watermark_ms: 0, wal_from: 0, wal_to: 0, tenants }
    }

    fn present(parts: &[(Part, &[u32])]) -> PerPart<BTreeSet<u32>> {
        let mut p: PerPart<BTreeSet<u32>> = PerPart::default();
        for (part, idx) in parts {
            p[*part].extend(idx.iter().copied());
        }
        p
    }

    #[test]
    fn a_resume_dirties_the_hours_of_rows_already_present_only() {
        // Landing rows are indexed across tenants: 0 and 1 are tenant a's, 2 is b's.
        let p = present(&[(Part::Landing, &[0, 2]), (Part::Clicks, &[0]), (Part::Refused, &[0])]);
        let archive = BatchArchive::of(&batch());
        let got: Vec<Dirty> = resumed(archive.batch(), &p).into_iter().collect();
        let want = [
            Dirty { family: Family::Clicks, hour: H },
            Dirty { family: Family::Clicks, hour: H + 2 * HOUR },
            Dirty { family: Family::Refused, hour: H - HOUR },
            // The landing table feeds the campaign rollups too.
            Dirty { family: Family::Campaigns, hour: H },
            Dirty { family: Family::Campaigns, hour: H + 2 * HOUR },
        ];
        assert_eq!(got, want);
        // Nothing present: the resume inserts everything, views included.
        assert!(resumed(archive.batch(), &PerPart::default()).is_empty());
        // Click records and verdicts have no rollups.
        assert!(resumed(archive.batch(), &present(&[(Part::Clicks, &[0]), (Part::Verdicts, &[0])])).is_empty());
        assert_eq!(
            resumed(archive.batch(), &present(&[(Part::Dimensions, &[0])])).into_iter().collect::<Vec<_>>(),
            // click_dimensions feeds both dimension families.
            [Dirty { family: Family::Dimensions, hour: H }, Dirty { family: Family::DimensionValues, hour: H }]
        );
    }

    #[test]
    fn checks_cover_recent_and_requested_hours_in_runs_and_whole_days() {
        let now = H + 1234;
        let day = H / DAY * DAY;
        let old = day - 3 * DAY + 5 * HOUR;
        let requested = BTreeSet::from([Dirty { family: Family::Clicks, hour: old }, Dirty { family: Family::Clicks, hour: H - 2 * HOUR }]);
        let got = checks(now, 2, &requested);
        let of = |family| got.iter().filter(|c| c.family == family).map(|c| (c.step, c.from, c.to)).collect::<Vec<_>>();
        // Requested H-2h joins the recent run H-1h..H+1h; the old hour stands alone.
        let mut want = vec![
            (Resolution::Minute, old, old + HOUR),
            (Resolution::Minute, H - 2 * HOUR, H + HOUR),
            (Resolution::Hour, old, old + HOUR),
            (Resolution::Hour, H - 2 * HOUR, H + HOUR),
        ];
        let days: BTreeSet<u32> = [old, H - 2 * HOUR, H].iter().map(|h| h / DAY * DAY).collect();
        want.extend(runs(&days, DAY).into_iter().map(|(f, t)| (Resolution::Day, f, t)));
        want.sort_by_key(|(s, f, _)| (Resolution::ROLLUPS.iter().position(|r| r == s), *f));
        assert_eq!(of(Family::Clicks), want);
        // Other families: the recent hours only.
        let recent: Vec<_> = of(Family::Refused).into_iter().filter(|(s, _, _)| *s != Resolution::Day).collect();
        assert_eq!(recent, [(Resolution::Minute, H - HOUR, H + HOUR), (Resolution::Hour, H - HOUR, H + HOUR)]);
        assert!(of(Family::Dimensions).iter().all(|(s, f, t)| *s != Resolution::Day || (f % DAY == 0 && t % DAY == 0 && f < &H && &H < t)));
    }

    #[test]
    fn runs_merge_only_adjacent_buckets() {
        assert_eq!(runs(&BTreeSet::from([0, 10, 20, 40]), 10), [(0, 30), (40, 50)]);
        assert!(runs(&BTreeSet::new(), 10).is_empty());
    }
}
