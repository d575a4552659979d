//! The flood rule, shared by the plugin and its native reference.
//!
//! Counts clicks per (minute, ad, source) in an ordered map: no hashing, so
//! no random seed (a filter imports nothing) and no hash flooding.

use std::collections::btree_map::{BTreeMap, Entry};

pub const FLOODING: u16 = 3;
/// Clicks of one source on one ad in one minute that are kept.
pub const LIMIT: u32 = 5;
/// Minutes before the newest one seen that are still counted.
pub const KEPT_MINUTES: u64 = 2;
/// Counters held at most: past this, new (minute, ad, source) go uncounted.
pub const MAX_KEYS: usize = 100_000;

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Ip(String),
    User(String),
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    minute: u64,
    ad_id: u64,
    source: Source,
}

/// Click counters of the recent minutes. Minutes more than [`KEPT_MINUTES`]
/// behind the newest one are forgotten as soon as a newer minute shows up;
/// a late click for a forgotten minute starts its count again.
#[derive(Default)]
pub struct Flood {
    counts: BTreeMap<Key, u32>,
    newest: u64,
}

impl Flood {
    pub fn new() -> Flood {
        Flood::default()
    }

    /// Counts one click and returns its code: [`FLOODING`] past [`LIMIT`],
    /// else 0. A click with neither IP nor user id is kept uncounted.
    pub fn verdict(&mut self, ip: &str, user_id: &str, ad_id: u64, ts_ms: u64) -> u16 {
        let source = match (ip, user_id) {
            ("", "") => return 0,
            ("", user) => Source::User(user.to_owned()),
            (ip, _) => Source::Ip(ip.to_owned()),
        };
        let minute = ts_ms / 60_000;
        if minute > self.newest {
            self.newest = minute;
            self.counts.retain(|k, _| k.minute + KEPT_MINUTES >= minute);
        }
        let key = Key { minute, ad_id, source };
        let full = self.counts.len() >= MAX_KEYS;
        let count = match self.counts.entry(key) {
            Entry::Occupied(mut e) => {
                let n = e.get_mut();
                *n = n.saturating_add(1);
                *n
            }
            Entry::Vacant(e) if !full => *e.insert(1),
            Entry::Vacant(_) => 1,
        };
        if count > LIMIT {
            FLOODING
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    const T0: u64 = 1_700_000_000_000 / MINUTE * MINUTE;

    fn run(f: &mut Flood, ip: &str, user: &str, ad: u64, ts: u64, clicks: usize) -> Vec<u16> {
        (0..clicks).map(|_| f.verdict(ip, user, ad, ts)).collect()
    }

    #[test]
    fn sixth_click_of_a_source_on_an_ad_in_a_minute_is_dropped() {
        let mut f = Flood::new();
        assert_eq!(run(&mut f, "10.1.2.3", "u", 7, T0, 8), [0, 0, 0, 0, 0, 3, 3, 3]);
        // Another ad, another source, the next minute: counted apart.
        assert_eq!(run(&mut f, "10.1.2.3", "u", 8, T0 + 59_999, 5), [0; 5]);
        assert_eq!(run(&mut f, "10.1.2.4", "u", 7, T0, 5), [0; 5]);
        assert_eq!(run(&mut f, "10.1.2.3", "u", 7, T0 + MINUTE, 5), [0; 5]);
    }

    #[test]
    fn source_is_the_ip_else_the_user_id() {
        let mut f = Flood::new();
        // Same IP, different users: one source.
        let by_ip: Vec<u16> = (0..6).map(|u| f.verdict("1.2.3.4", &format!("u{u}"), 1, T0)).collect();
        assert_eq!(by_ip, [0, 0, 0, 0, 0, 3]);
        // No IP: the user id, never confused with an IP spelled the same.
        assert_eq!(run(&mut f, "", "1.2.3.4", 1, T0, 6), [0, 0, 0, 0, 0, 3]);
        assert_eq!(run(&mut f, "", "", 1, T0, 20), [0; 20]);
    }

    #[test]
    fn minutes_older_than_the_window_are_forgotten() {
        let mut f = Flood::new();
        run(&mut f, "a", "", 1, T0, 5);
        f.verdict("b", "", 1, T0 + KEPT_MINUTES * MINUTE);
        assert_eq!(f.verdict("a", "", 1, T0), FLOODING, "still within the window");
        f.verdict("b", "", 1, T0 + (KEPT_MINUTES + 1) * MINUTE);
        assert_eq!(run(&mut f, "a", "", 1, T0, 5), [0; 5], "forgotten: counts again from 1");
    }

    #[test]
    fn counters_are_capped() {
        let mut f = Flood::new();
        for s in 0..MAX_KEYS {
            f.verdict(&s.to_string(), "", 1, T0);
        }
        assert_eq!(run(&mut f, "new", "", 1, T0, 10), [0; 10], "no room: uncounted");
        assert_eq!(run(&mut f, "0", "", 1, T0, 5), [0, 0, 0, 0, 3], "known sources still counted");
        assert_eq!(f.counts.len(), MAX_KEYS);
    }
}
