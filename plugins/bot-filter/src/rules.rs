//! The bot rules, shared by the plugin and its native reference.
//!
//! The User-Agent words are looked for in one pass over the User-Agent
//! (`tally_filter_words`: a 16-byte-wide prefilter on each word's first
//! three bytes, ASCII case folded, then the whole word), rather than one
//! scan per word. [`Rules`] is built once per instance and kept.

use tally_filter_words::Words;

pub const BOT_USER_AGENT: u16 = 1;
pub const BLOCKED_NETWORK: u16 = 2;

/// Words a bot's User-Agent contains, matched ASCII case-insensitively.
const AGENT_WORDS: [&str; 6] = ["bot", "crawler", "spider", "headless", "curl/", "python-requests"];
/// (network, prefix length) of IPv4 ranges no human clicks from.
const NETWORKS: [([u8; 4], u8); 3] = [([192, 0, 2, 0], 24), ([198, 51, 100, 0], 24), ([203, 0, 113, 0], 24)];

/// The rules, with the matcher built.
pub struct Rules {
    agent_words: Words,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::new()
    }
}

impl Rules {
    pub fn new() -> Rules {
        Rules { agent_words: Words::new(&AGENT_WORDS, true) }
    }

    pub fn verdict(&self, user_agent: &str, ip: &str) -> u16 {
        if self.agent_words.in_text(user_agent.as_bytes()) {
            return BOT_USER_AGENT;
        }
        if let Some(addr) = parse_v4(ip) {
            let addr = u32::from_be_bytes(addr);
            for (net, len) in NETWORKS {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                if addr & mask == u32::from_be_bytes(net) & mask {
                    return BLOCKED_NETWORK;
                }
            }
        }
        0
    }
}

/// Four '.'-separated fields, each what `u8::from_str` accepts (an optional
/// '+', then ASCII digits worth at most 255), in one pass over the bytes.
fn parse_v4(s: &str) -> Option<[u8; 4]> {
    let s = s.as_bytes();
    let mut out = [0u8; 4];
    let mut i = 0;
    for (field, o) in out.iter_mut().enumerate() {
        if field > 0 {
            (s.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        if s.get(i) == Some(&b'+') {
            i += 1;
        }
        let (start, mut value) = (i, 0u32);
        while let Some(d @ b'0'..=b'9') = s.get(i).copied() {
            value = value * 10 + u32::from(d - b'0');
            (value <= 255).then_some(())?;
            i += 1;
        }
        (i > start).then_some(())?;
        *o = value as u8;
    }
    (i == s.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift64: `next(n)` is in `0..n`, the same on every run.
    fn xorshift(mut state: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        }
    }

    /// The per-word scan the one-pass matcher replaced: the meaning it must keep.
    fn names_a_bot_word_by_word(ua: &str) -> bool {
        let ua = ua.as_bytes();
        AGENT_WORDS.iter().any(|w| ua.windows(w.len()).any(|win| win.eq_ignore_ascii_case(w.as_bytes())))
    }

    #[test]
    fn agent_words_match_like_a_case_insensitive_scan_per_word() {
        let rules = Rules::new();
        let agents = [
            "",
            "Googlebot/2.1",
            "BOT",
            "bOt",
            "bo",
            "b o t",
            "robot",
            "CRAWLER",
            "crawle",
            "Spider",
            "HeadlessChrome/124",
            "headles",
            "curl/8.5.0",
            "CURL/",
            "curl",
            "curl /",
            "python-requests/2.31",
            "Python-Requests",
            "python-request",
            "python_requests",
            "botté",
            "ßbot",
            "\u{212a}bot",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0",
            "bbot",
            "spidespider",
            "crawlecrawler",
        ];
        for ua in agents {
            let want = names_a_bot_word_by_word(ua);
            assert_eq!(rules.verdict(ua, "") == BOT_USER_AGENT, want, "{ua:?}");
        }
        // Random strings of word prefixes (whole words included) in mixed
        // case, with other characters between: matches and near misses.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut bots = 0;
        for _ in 0..20_000 {
            let mut ua = String::new();
            for _ in 0..next(5) {
                let word = AGENT_WORDS[next(AGENT_WORDS.len())];
                for c in word[..1 + next(word.len())].chars() {
                    ua.push(if next(2) == 0 { c.to_ascii_uppercase() } else { c });
                }
                if next(3) == 0 {
                    ua.push([' ', 'x', '\u{df}', '\u{212a}'][next(4)]);
                }
            }
            let want = names_a_bot_word_by_word(&ua);
            bots += usize::from(want);
            assert_eq!(rules.verdict(&ua, "") == BOT_USER_AGENT, want, "{ua:?}");
        }
        assert!((2_000..18_000).contains(&bots), "{bots} of 20000 generated agents name a bot");
    }

    /// The parse the one-pass one replaced: the meaning it must keep.
    fn parse_v4_by_fields(s: &str) -> Option<[u8; 4]> {
        let mut out = [0u8; 4];
        let mut parts = s.split('.');
        for o in out.iter_mut() {
            *o = parts.next()?.parse().ok()?;
        }
        parts.next().is_none().then_some(out)
    }

    #[test]
    fn ipv4_parses_like_four_u8_fields() {
        let mut next = xorshift(0x1234_5678_9abc_def1);
        let alphabet = b"0123456789012345....+-a ";
        let mut parsed = 0;
        for _ in 0..50_000 {
            let ip: String = (0..next(17)).map(|_| alphabet[next(alphabet.len())] as char).collect();
            let want = parse_v4_by_fields(&ip);
            parsed += usize::from(want.is_some());
            assert_eq!(parse_v4(&ip), want, "{ip:?}");
        }
        for ip in ["1.2.3.4", "+1.+02.003.255", "0.0.0.0", "256.1.1.1", "1.2.3.4.", ".1.2.3", "1..2.3", "1.2.3.+", "1.2.3.4 "] {
            assert_eq!(parse_v4(ip), parse_v4_by_fields(ip), "{ip:?}");
        }
        assert!(parsed > 30, "{parsed} of 50000 generated strings are addresses");
    }

    #[test]
    fn blocked_networks_need_a_whole_ipv4_address() {
        let rules = Rules::new();
        for (ip, want) in [
            ("192.0.2.1", BLOCKED_NETWORK),
            ("198.51.100.255", BLOCKED_NETWORK),
            ("203.0.113.0", BLOCKED_NETWORK),
            ("192.0.3.1", 0),
            ("192.0.2", 0),
            ("192.0.2.1.5", 0),
            ("192.0.2.256", 0),
            ("::ffff:192.0.2.1", 0),
            ("", 0),
        ] {
            assert_eq!(rules.verdict("Mozilla/5.0", ip), want, "{ip}");
        }
        assert_eq!(rules.verdict("curl/8.0", "192.0.2.1"), BOT_USER_AGENT, "the User-Agent is checked first");
    }
}
