//! The enrichment lookups, shared by the plugin and its native reference.
//!
//! The country table is a stand-in for a real GeoIP database: private
//! ranges split for tests, and public ranges as MaxMind's GeoIP2 test data
//! places them.

use std::net::IpAddr;
use std::sync::OnceLock;

use tally_filter_words::Words;

/// Dimension keys of the tags.
pub const COUNTRY: &str = "country";
pub const DEVICE: &str = "device";

/// (network, prefix length, country), non-overlapping.
const NETWORKS: [([u8; 4], u8, &str); 13] = [
    ([10, 1, 0, 0], 16, "US"),
    ([10, 2, 0, 0], 16, "DE"),
    ([10, 3, 0, 0], 16, "FR"),
    ([10, 4, 0, 0], 16, "JP"),
    ([10, 5, 0, 0], 16, "BR"),
    ([10, 6, 0, 0], 16, "IN"),
    ([2, 125, 160, 0], 24, "GB"),
    ([67, 43, 156, 0], 24, "BT"),
    ([81, 2, 69, 0], 24, "GB"),
    ([89, 160, 20, 0], 24, "SE"),
    ([175, 16, 199, 0], 24, "CN"),
    ([202, 196, 224, 0], 20, "PH"),
    ([216, 160, 83, 0], 24, "US"),
];

/// The click's country: the one it carried if any, else its IPv4 address's
/// (IPv4-mapped IPv6 included), else none.
pub fn country<'a>(ip: &str, carried: &'a str) -> Option<&'a str> {
    if !carried.is_empty() {
        return Some(carried);
    }
    let addr = match ip.parse().ok()? {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4_mapped()?,
    };
    let addr = u32::from(addr);
    NETWORKS.iter().find(|(net, len, _)| addr & mask(*len) == u32::from_be_bytes(*net)).map(|(_, _, c)| *c)
}

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// Words of a mobile device's User-Agent (case as sent).
const MOBILE_WORDS: [&str; 3] = ["Mobile", "Android", "iPhone"];

/// "mobile" or "desktop" from the User-Agent; none when there is none.
/// The words are looked for in one pass (`tally_filter_words`), not one
/// scan each.
pub fn device(user_agent: &str) -> Option<&'static str> {
    static MOBILE: OnceLock<Words> = OnceLock::new();
    if user_agent.is_empty() {
        None
    } else if MOBILE.get_or_init(|| Words::new(&MOBILE_WORDS, false)).in_text(user_agent.as_bytes()) {
        Some("mobile")
    } else {
        Some("desktop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_comes_from_the_click_else_its_address() {
        assert_eq!(country("10.1.2.3", ""), Some("US"));
        assert_eq!(country("10.2.255.255", ""), Some("DE"));
        assert_eq!(country("81.2.69.142", ""), Some("GB"));
        assert_eq!(country("202.196.239.1", ""), Some("PH"));
        assert_eq!(country("::ffff:10.4.0.1", ""), Some("JP"));
        assert_eq!(country("10.1.2.3", "NZ"), Some("NZ"));
        assert_eq!(country("", "NZ"), Some("NZ"));
        for unknown in ["10.7.0.1", "8.8.8.8", "202.196.240.1", "::1", "", "10.1.2", "not an ip"] {
            assert_eq!(country(unknown, ""), None, "{unknown}");
        }
    }

    #[test]
    fn networks_are_aligned_and_disjoint() {
        for (i, (net, len, _)) in NETWORKS.iter().enumerate() {
            let net = u32::from_be_bytes(*net);
            assert_eq!(net & mask(*len), net, "{i}: host bits set");
            for (other, olen, _) in &NETWORKS[i + 1..] {
                let common = mask(*len.min(olen));
                assert_ne!(net & common, u32::from_be_bytes(*other) & common, "{i} overlaps");
            }
        }
    }

    #[test]
    fn device_from_user_agent() {
        assert_eq!(device("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"), Some("mobile"));
        assert_eq!(device("Mozilla/5.0 (Linux; Android 14)"), Some("mobile"));
        assert_eq!(device("Mozilla/5.0 (X11; Linux x86_64)"), Some("desktop"));
        assert_eq!(device(""), None);
        assert_eq!(device("Mozilla/5.0 (Linux; android 14; mobile)"), Some("desktop"), "the words' case counts");
    }
}
