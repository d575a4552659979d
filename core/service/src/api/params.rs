//! Query parameters, parsed and checked without I/O.

use tally_http::query::{get, pairs};
use tally_model::timestamp::parse_millis;

use crate::resolution::Resolution;

/// Most points one series may return.
pub const MAX_POINTS: u32 = 10_000;
/// Default window when `from`/`to` are omitted.
pub const DEFAULT_WINDOW_SECS: u32 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Seconds since the epoch, aligned down to the step.
    pub from: u32,
    /// Exclusive, aligned up to the step.
    pub to: u32,
    pub step: Resolution,
}

impl Range {
    pub fn buckets(&self) -> impl Iterator<Item = u32> {
        let step = self.step.seconds();
        (self.from..self.to).step_by(step as usize)
    }
}

pub fn parse_step(s: &str) -> Result<Resolution, String> {
    match s {
        "1s" => Ok(Resolution::Second),
        "1m" => Ok(Resolution::Minute),
        "1h" => Ok(Resolution::Hour),
        "1d" => Ok(Resolution::Day),
        other => Err(format!("step {other:?} must be one of 1s, 1m, 1h, 1d")),
    }
}

pub fn step_name(step: Resolution) -> &'static str {
    match step {
        Resolution::Second => "1s",
        Resolution::Minute => "1m",
        Resolution::Hour => "1h",
        Resolution::Day => "1d",
    }
}

/// Parses `from`, `to` (ms or RFC 3339) and `step` from a query string.
pub fn parse_range(query: Option<&str>, default_step: Resolution, now_ms: u64) -> Result<Range, String> {
    let mut from = None;
    let mut to = None;
    let mut step = default_step;
    for (key, value) in pairs(query) {
        match key.as_str() {
            "from" => from = Some(parse_millis(&value).map_err(|e| format!("from: {e}"))?),
            "to" => to = Some(parse_millis(&value).map_err(|e| format!("to: {e}"))?),
            "step" => step = parse_step(&value)?,
            "limit" => {}
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    let to_ms = to.unwrap_or(now_ms);
    let from_ms = from.unwrap_or(to_ms.saturating_sub(DEFAULT_WINDOW_SECS as u64 * 1000));
    if from_ms >= to_ms {
        return Err("from must be before to".into());
    }
    let s = step.seconds() as u64;
    let from = from_ms / 1000 / s * s;
    let to = (to_ms.div_ceil(1000)).div_ceil(s) * s;
    if to > u32::MAX as u64 {
        return Err("to is beyond 2106".into());
    }
    if (to - from) / s > MAX_POINTS as u64 {
        return Err(format!("range holds more than {MAX_POINTS} points at step {}; use a coarser step", step_name(step)));
    }
    Ok(Range { from: from as u32, to: to as u32, step })
}

pub fn parse_limit(query: Option<&str>) -> Result<u32, String> {
    match get(query, "limit") {
        None => Ok(10),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(format!("limit {v:?} must be 1..=1000")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_500;

    #[test]
    fn aligns_and_defaults() {
        let r = parse_range(Some("from=1700000030500&to=1700000150000&step=1m"), Resolution::Second, NOW).unwrap();
        assert_eq!((r.from, r.to, r.step), (1_699_999_980, 1_700_000_160, Resolution::Minute));
        assert_eq!(r.buckets().count(), 3);
        let d = parse_range(None, Resolution::Minute, NOW).unwrap();
        assert_eq!(d.to, 1_700_000_040);
        let rfc = parse_range(Some("from=2023-11-14T22%3A13%3A20Z&to=2023-11-14T22:13:25Z&step=1s"), Resolution::Minute, NOW).unwrap();
        assert_eq!((rfc.from, rfc.to), (1_700_000_000, 1_700_000_005));
    }

    #[test]
    fn rejects_bad_parameters() {
        for q in ["step=5m", "from=x", "from=2000&to=1000", "from=0&to=1700000000000&step=1s", "bogus=1"] {
            assert!(parse_range(Some(q), Resolution::Minute, NOW).is_err(), "{q}");
        }
        assert_eq!(parse_limit(Some("limit=5")).unwrap(), 5);
        assert_eq!(parse_limit(None).unwrap(), 10);
        assert!(parse_limit(Some("limit=0")).is_err());
    }
}
