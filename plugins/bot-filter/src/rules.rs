//! The bot rules, shared by the plugin and its native reference.

pub const BOT_USER_AGENT: u16 = 1;
pub const BLOCKED_NETWORK: u16 = 2;

const AGENT_WORDS: [&str; 6] = ["bot", "crawler", "spider", "headless", "curl/", "python-requests"];
/// (network, prefix length) of IPv4 ranges no human clicks from.
const NETWORKS: [([u8; 4], u8); 3] = [([192, 0, 2, 0], 24), ([198, 51, 100, 0], 24), ([203, 0, 113, 0], 24)];

pub fn verdict(user_agent: &str, ip: &str) -> u16 {
    let ua = user_agent.as_bytes();
    if AGENT_WORDS.iter().any(|w| contains_ignore_case(ua, w.as_bytes())) {
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

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn parse_v4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in out.iter_mut() {
        *o = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}
