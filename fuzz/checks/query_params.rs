// Query strings (`tally_http::query`) and the API's parameters
// (`tally_core::api::params`). Needs `input.rs` included before it.

use tally_core::api::params::{parse_limit, parse_range, parse_step, step_name, DEFAULT_WINDOW_SECS, MAX_POINTS};
use tally_core::resolution::Resolution;
use tally_http::query::{get, pairs};
use tally_model::timestamp::parse_millis;

fn percent_encoded(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let steps = [Resolution::Second, Resolution::Minute, Resolution::Hour, Resolution::Day];
    match input.byte() % 2 {
        // Pairs percent-encoded come back decoded, in order.
        0 => {
            let sent: Vec<(String, String)> = (0..input.byte() % 5).map(|_| (input.text(), input.text())).collect();
            let q: Vec<String> = sent.iter().map(|(k, v)| format!("{}={}", percent_encoded(k), percent_encoded(v))).collect();
            assert_eq!(pairs(Some(&q.join("&"))), sent);
        }
        // Any query: a range is `from < to`, both aligned to its step,
        // covering what was asked within one step, at most MAX_POINTS.
        _ => {
            let default_step = steps[input.byte() as usize % 4];
            let now_ms = input.num();
            let q = String::from_utf8_lossy(input.rest()).into_owned();
            if let Ok(step) = parse_step(&q) {
                assert_eq!(step_name(step), q);
            }
            if let Ok(limit) = parse_limit(Some(&q)) {
                assert!((1..=1000).contains(&limit));
                assert!(get(Some(&q), "limit").is_some() || limit == 10);
            }
            let Ok(r) = parse_range(Some(&q), default_step, now_ms) else { return };
            let s = r.step.seconds();
            assert!(r.from < r.to && r.from % s == 0 && r.to % s == 0, "{r:?}");
            assert!((r.to - r.from) / s <= MAX_POINTS && r.buckets().count() as u32 == (r.to - r.from) / s);
            let last = |key: &str| pairs(Some(&q)).into_iter().filter(|(k, _)| k == key).last().map(|(_, v)| parse_millis(&v).unwrap());
            let to_ms = last("to").unwrap_or(now_ms);
            let from_ms = last("from").unwrap_or(to_ms.saturating_sub(DEFAULT_WINDOW_SECS as u64 * 1000));
            let (from, to, step_ms) = (r.from as u64 * 1000, r.to as u64 * 1000, s as u64 * 1000);
            assert!(from <= from_ms && from_ms < from + step_ms && to >= to_ms && to < to_ms + step_ms, "{r:?} for {from_ms}..{to_ms}");
        }
    }
}
