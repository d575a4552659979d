//! The enrichment lookups, shared by the plugin and its native reference.
//!
//! The country table is a stand-in for a real GeoIP database: private
//! ranges split for tests, and public ranges as MaxMind's GeoIP2 test data
//! places them.

use std::net::Ipv6Addr;
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
    let addr = ipv4(ip)?;
    NETWORKS.iter().find(|(net, len, _)| addr & mask(*len) == u32::from_be_bytes(*net)).map(|(_, _, c)| *c)
}

/// The IPv4 address `ip` names, read as `IpAddr::from_str` reads it, with
/// an IPv4-mapped IPv6 address taken as its IPv4 one. Dotted quads, the
/// common case, are read in one pass; the general IPv6 parser runs only on
/// text that can be a mapped address: its sixth group is ffff, which a
/// group of at most four hex digits can only write as "ffff" in some case.
fn ipv4(ip: &str) -> Option<u32> {
    if let Some(addr) = dotted_quad(ip.as_bytes()) {
        return Some(addr);
    }
    if !ip.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"ffff")) {
        return None;
    }
    ip.parse::<Ipv6Addr>().ok()?.to_ipv4_mapped().map(u32::from)
}

/// Four '.'-separated fields of 1-3 ASCII digits worth at most 255, none
/// with a leading zero ("0" itself is one): what `Ipv4Addr::from_str`
/// accepts.
fn dotted_quad(s: &[u8]) -> Option<u32> {
    let (mut addr, mut i) = (0u32, 0);
    for field in 0..4 {
        if field > 0 {
            (s.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        let (start, mut value) = (i, 0u32);
        while let Some(d @ b'0'..=b'9') = s.get(i).copied() {
            (i - start < 3).then_some(())?;
            value = value * 10 + u32::from(d - b'0');
            i += 1;
        }
        let digits = i - start;
        (digits > 0 && value <= 255 && !(digits > 1 && s[start] == b'0')).then_some(())?;
        addr = addr << 8 | value;
    }
    (i == s.len()).then_some(addr)
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

    /// What `ipv4` replaced: the standard library's parse of any address.
    fn ipv4_by_std(ip: &str) -> Option<u32> {
        match ip.parse().ok()? {
            std::net::IpAddr::V4(a) => Some(u32::from(a)),
            std::net::IpAddr::V6(a) => a.to_ipv4_mapped().map(u32::from),
        }
    }

    #[test]
    fn addresses_read_like_the_standard_parser() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let pieces = ["0", "1", "9", "25", "255", "256", "01", "10", "199", ".", ".", ":", "::", "ffff", "FfFf", "fff", "a", "+", " ", "1.2.3.4", "::ffff:"];
        let mut found = 0;
        for _ in 0..100_000 {
            let ip: String = (0..next(9)).map(|_| pieces[next(pieces.len())]).collect();
            let want = ipv4_by_std(&ip);
            found += usize::from(want.is_some());
            assert_eq!(ipv4(&ip), want, "{ip:?}");
        }
        for ip in ["1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3", "1.2.3.4.", "1.2.3.4 ", "+1.2.3.4", "1234.1.1.1"] {
            assert_eq!(ipv4(ip), ipv4_by_std(ip), "{ip:?}");
        }
        for ip in ["::ffff:10.4.0.1", "::FFFF:a04:1", "0:0:0:0:0:ffff:0a04:0001", "::ffff:0:0", "2001:db8::1", "::1", "::ffff", "ffff::10.4.0.1", "::fffff:10.4.0.1"] {
            assert_eq!(ipv4(ip), ipv4_by_std(ip), "{ip:?}");
        }
        assert!(found > 300, "{found} of 100000 generated strings are addresses");
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
