//! Which monthly partitions a table family may drop (pure).

use serde::{Deserialize, Serialize};

/// A table family and the tables it holds. Each is partitioned by
/// `toYYYYMM(<its time column>)` (a test checks the migrations say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `click_records`: what billing counts hours that are not final from.
    ClickRecords,
    /// `clicks_by_second`: the landing table of `1s` series.
    Landing,
    /// `click_dimensions`: enrichment rows per second.
    Dimensions,
    /// `refused_events`: refused and filtered clicks (billing reads the
    /// filtered ones of hours that are not final).
    Refused,
    MinuteRollups,
    HourRollups,
    DayRollups,
}

impl Family {
    pub const ALL: [Family; 7] =
        [Family::ClickRecords, Family::Landing, Family::Dimensions, Family::Refused, Family::MinuteRollups, Family::HourRollups, Family::DayRollups];

    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Family::ClickRecords => &["click_records"],
            Family::Landing => &["clicks_by_second"],
            Family::Dimensions => &["click_dimensions"],
            Family::Refused => &["refused_events"],
            Family::MinuteRollups => &["clicks_by_minute", "refused_by_minute", "dimensions_by_minute", "campaigns_by_minute", "dimension_values_by_minute"],
            Family::HourRollups => &["clicks_by_hour", "refused_by_hour", "dimensions_by_hour", "campaigns_by_hour", "dimension_values_by_hour"],
            Family::DayRollups => &["clicks_by_day", "refused_by_day", "dimensions_by_day", "campaigns_by_day", "dimension_values_by_day"],
        }
    }

    /// Billing reads it for hours that are not final yet.
    pub fn billing_reads(self) -> bool {
        matches!(self, Family::ClickRecords | Family::Refused)
    }
}

/// The first second after month `yyyymm` (a `toYYYYMM` partition), or
/// `None` for a value that is no month.
pub fn month_end(yyyymm: u32) -> Option<u32> {
    let (year, month) = (yyyymm / 100, yyyymm % 100);
    if !(1970..=2105).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    u32::try_from(days_from_civil(year as i64, month) * 86_400).ok()
}

/// Days from 1970-01-01 to the first of `month` of `year` (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Before what second a family's rows may go: `keep_days` back from `now`,
/// never inside billing's lookback, and for tables billing reads never at
/// or after the first hour that is not final (`final_before`; `None`: no
/// hour is final, nothing goes). `None`: keep everything.
pub fn cutoff(family: Family, keep_days: Option<u32>, now: u32, lookback_hours: u32, final_before: Option<u32>) -> Option<u32> {
    let keep = u64::from(keep_days?) * 86_400;
    let keep = keep.max(u64::from(lookback_hours) * 3600);
    let mut cutoff = u64::from(now).checked_sub(keep)? as u32;
    if family.billing_reads() {
        cutoff = cutoff.min(final_before?);
    }
    Some(cutoff)
}

/// The partitions wholly before `cutoff`, oldest first; partitions that
/// are no month are never named (kept, whatever they are).
pub fn expired(partitions: &[u32], cutoff: u32) -> Vec<u32> {
    let mut out: Vec<u32> = partitions.iter().copied().filter(|&p| month_end(p).is_some_and(|end| end <= cutoff)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn month_ends_are_the_first_second_of_the_next_month() {
        assert_eq!(month_end(197001), Some(31 * 86_400));
        assert_eq!(month_end(202402), Some(1_709_251_200)); // 2024-03-01, leap year
        assert_eq!(month_end(202312), Some(1_704_067_200)); // 2024-01-01
        assert_eq!(month_end(202613), None);
        assert_eq!(month_end(0), None);
    }

    #[test]
    fn nothing_is_dropped_unless_configured() {
        for family in Family::ALL {
            assert_eq!(cutoff(family, None, 2_000_000_000, 48, Some(2_000_000_000)), None);
        }
    }

    #[test]
    fn billing_lookback_and_finality_bound_the_cutoff() {
        let now = 1_800_000_000;
        // A day of retention is less than the 48 h lookback: the lookback wins.
        assert_eq!(cutoff(Family::Landing, Some(1), now, 48, None), Some(now - 48 * 3600));
        assert_eq!(cutoff(Family::Landing, Some(30), now, 48, None), Some(now - 30 * 86_400));
        // Click records of hours not final stay, however old.
        assert_eq!(cutoff(Family::ClickRecords, Some(30), now, 48, Some(now - 90 * 86_400)), Some(now - 90 * 86_400));
        assert_eq!(cutoff(Family::ClickRecords, Some(30), now, 48, None), None);
        assert_eq!(cutoff(Family::Refused, Some(30), now, 48, Some(now)), Some(now - 30 * 86_400));
    }

    /// `month_end` is what a partition holds only if every table is
    /// partitioned by month.
    #[test]
    fn every_table_of_a_family_is_partitioned_by_month() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/clickhouse/migrations");
        let mut sql = String::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            sql.push_str(&std::fs::read_to_string(f).unwrap());
        }
        for family in Family::ALL {
            for table in family.tables() {
                let head = format!("CREATE TABLE IF NOT EXISTS tally.{table}\n");
                let at = sql.rfind(&head).unwrap_or_else(|| panic!("no CREATE TABLE for {table}"));
                let body = &sql[at + head.len()..];
                let body = &body[..body.find("CREATE ").unwrap_or(body.len())];
                assert!(body.contains("PARTITION BY toYYYYMM("), "{table} is not partitioned by toYYYYMM");
            }
        }
    }

    proptest! {
        /// A dropped partition holds no second at or after the cutoff, and
        /// every month wholly before it is dropped.
        #[test]
        fn exactly_the_months_wholly_before_the_cutoff_expire(months in proptest::collection::vec((1970u32..2100, 1u32..13), 0..20), cutoff in 0u32..u32::MAX) {
            let partitions: Vec<u32> = months.iter().map(|(y, m)| y * 100 + m).collect();
            let out = expired(&partitions, cutoff);
            for p in &partitions {
                let end = month_end(*p).unwrap();
                prop_assert_eq!(out.contains(p), end <= cutoff);
            }
        }
    }
}
