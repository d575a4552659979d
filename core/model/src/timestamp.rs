//! Timestamps as the public API spells them: integer milliseconds since the
//! Unix epoch, or an RFC 3339 string (`2026-11-23T10:00:00.250Z`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 timestamp or a decimal millisecond count into ms since
/// the epoch. Times before the epoch are refused: no click happened then.
pub fn parse_millis(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| format!("timestamp {s:?} is out of range"));
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("timestamp {s:?} is neither ms since the epoch nor RFC 3339: {e}"))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| format!("timestamp {s:?} is before 1970"))
}

/// The wall clock, ms since the epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Formats ms since the epoch as RFC 3339 (UTC), for logs and messages.
pub fn format_millis(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        assert_eq!(parse_millis("1700000000123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_millis("2023-11-14T22:13:20.123Z").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_millis("2023-11-14T23:13:20+01:00").unwrap(), 1_700_000_000_000);
        assert!(parse_millis("1969-12-31T23:59:59Z").is_err());
        assert!(parse_millis("yesterday").is_err());
        assert!(parse_millis("").is_err());
        assert!(parse_millis("99999999999999999999999").is_err());
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
