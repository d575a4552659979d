//! The columnar batch a filter sees, built while the request is parsed.
//!
//! Invariant: every string column of a batch built here is UTF-8, cut at
//! character boundaries, as the contract promises a filter (`strings` in
//! `wit/filter.wit`): columns only grow by whole Rust `&str`s ([`Columns::push`])
//! and by whole columns of the same kind ([`Columns::append`]). The Rust SDK
//! relies on it to read fields without checking them again.

use crate::contract::{ClickBatch, Strings};

/// One click's fields as the filter sees them (empty strings when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClickView<'a> {
    pub ad_id: u64,
    pub campaign_id: u64,
    pub ts_ms: u64,
    pub cost_micros: u64,
    pub click_id: &'a str,
    pub user_id: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub country: &'a str,
    pub region: &'a str,
}

/// Column builder: one push per valid click, in request order.
#[derive(Debug, Default)]
pub struct Columns {
    batch: ClickBatch,
}

fn push_str(s: &mut Strings, value: &str) {
    s.bytes.extend_from_slice(value.as_bytes());
    s.ends.push(s.bytes.len() as u32);
}

fn append_strings(s: &mut Strings, other: Strings) {
    let base = s.bytes.len() as u32;
    s.bytes.extend(other.bytes);
    s.ends.extend(other.ends.into_iter().map(|e| e + base));
}

impl Columns {
    /// Appends a click and its custom attributes.
    pub fn push<'a>(&mut self, c: &ClickView<'_>, attrs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let b = &mut self.batch;
        b.ad_id.push(c.ad_id);
        b.campaign_id.push(c.campaign_id);
        b.ts_ms.push(c.ts_ms);
        b.cost_micros.push(c.cost_micros);
        push_str(&mut b.click_id, c.click_id);
        push_str(&mut b.user_id, c.user_id);
        push_str(&mut b.ip, c.ip);
        push_str(&mut b.user_agent, c.user_agent);
        push_str(&mut b.country, c.country);
        push_str(&mut b.region, c.region);
        for (k, v) in attrs {
            push_str(&mut b.attr_keys, k);
            push_str(&mut b.attr_values, v);
        }
        b.attr_ends.push(b.attr_keys.ends.len() as u32);
    }

    /// Room for `clicks` clicks without growing (strings: an average size).
    pub fn with_capacity(clicks: usize) -> Columns {
        let strings = |avg: usize| Strings { bytes: Vec::with_capacity(clicks * avg), ends: Vec::with_capacity(clicks) };
        Columns {
            batch: ClickBatch {
                ad_id: Vec::with_capacity(clicks),
                campaign_id: Vec::with_capacity(clicks),
                ts_ms: Vec::with_capacity(clicks),
                cost_micros: Vec::with_capacity(clicks),
                click_id: strings(24),
                user_id: strings(16),
                ip: strings(16),
                user_agent: strings(112),
                country: strings(2),
                region: strings(0),
                attr_ends: Vec::with_capacity(clicks),
                attr_keys: strings(0),
                attr_values: strings(0),
            },
        }
    }

    /// Appends another request's clicks after these (one call for both).
    pub fn append(&mut self, other: Columns) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let (b, o) = (&mut self.batch, other.batch);
        b.ad_id.extend(o.ad_id);
        b.campaign_id.extend(o.campaign_id);
        b.ts_ms.extend(o.ts_ms);
        b.cost_micros.extend(o.cost_micros);
        for (s, o) in [
            (&mut b.click_id, o.click_id),
            (&mut b.user_id, o.user_id),
            (&mut b.ip, o.ip),
            (&mut b.user_agent, o.user_agent),
            (&mut b.country, o.country),
            (&mut b.region, o.region),
        ] {
            append_strings(s, o);
        }
        let pairs = b.attr_keys.ends.len() as u32;
        b.attr_ends.extend(o.attr_ends.into_iter().map(|e| e + pairs));
        append_strings(&mut b.attr_keys, o.attr_keys);
        append_strings(&mut b.attr_values, o.attr_values);
    }

    pub fn len(&self) -> usize {
        self.batch.ad_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_batch(self) -> ClickBatch {
        self.batch
    }
}

impl Default for ClickBatch {
    fn default() -> Self {
        let empty = || Strings { bytes: Vec::new(), ends: Vec::new() };
        ClickBatch {
            ad_id: Vec::new(),
            campaign_id: Vec::new(),
            ts_ms: Vec::new(),
            cost_micros: Vec::new(),
            click_id: empty(),
            user_id: empty(),
            ip: empty(),
            user_agent: empty(),
            country: empty(),
            region: empty(),
            attr_ends: Vec::new(),
            attr_keys: empty(),
            attr_values: empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_an_arena_with_end_offsets() {
        let mut c = Columns::default();
        c.push(&ClickView { ad_id: 1, click_id: "a", ip: "10.0.0.1", user_agent: "Mozilla", ..Default::default() }, [("k", "v"), ("x", "yz")]);
        c.push(&ClickView { ad_id: 5, click_id: "bb", user_id: "u", country: "DE", ..Default::default() }, []);
        let b = c.into_batch();
        assert_eq!(b.ad_id, vec![1, 5]);
        assert_eq!((b.click_id.bytes.as_slice(), b.click_id.ends.as_slice()), (&b"abb"[..], &[1u32, 3][..]));
        assert_eq!(b.user_id.ends, vec![0, 1]);
        assert_eq!(b.ip.ends, vec![8, 8]);
        assert_eq!(b.country.ends, vec![0, 2]);
        assert_eq!(b.attr_ends, vec![2, 2]);
        assert_eq!((b.attr_values.bytes.as_slice(), b.attr_values.ends.as_slice()), (&b"vyz"[..], &[1u32, 3][..]));
    }

    type Click = (u64, String, String, Vec<(String, String)>);

    fn columns(clicks: &[Click]) -> Columns {
        let mut c = Columns::default();
        for (ad, id, ua, attrs) in clicks {
            c.push(&ClickView { ad_id: *ad, click_id: id, user_agent: ua, ts_ms: *ad * 7, ..Default::default() }, attrs.iter().map(|(k, v)| (&k[..], &v[..])));
        }
        c
    }

    /// Every string of the column, cut at its ends, is UTF-8.
    fn cut_at_characters(s: &Strings) -> bool {
        let mut start = 0;
        s.ends.iter().all(|&end| {
            let ok = std::str::from_utf8(&s.bytes[start..end as usize]).is_ok();
            start = end as usize;
            ok
        }) && start == s.bytes.len()
    }

    proptest::proptest! {
        /// Whatever characters the clicks carry, every column the filter
        /// gets is UTF-8 cut at character boundaries (the SDK reads fields
        /// unchecked).
        #[test]
        fn columns_are_cut_at_characters(requests in proptest::collection::vec(proptest::collection::vec(
            (".{0,6}", ".{0,12}", proptest::collection::vec((".{1,3}", ".{0,3}"), 0..3)), 0..5), 0..5)) {
            let mut appended = Columns::default();
            for r in &requests {
                let mut c = Columns::default();
                for (id, ua, attrs) in r {
                    c.push(&ClickView { click_id: id, user_agent: ua, ip: ua, country: id, ..Default::default() }, attrs.iter().map(|(k, v)| (&k[..], &v[..])));
                }
                appended.append(c);
            }
            let b = appended.into_batch();
            for s in [&b.click_id, &b.user_id, &b.ip, &b.user_agent, &b.country, &b.region, &b.attr_keys, &b.attr_values] {
                proptest::prop_assert!(cut_at_characters(s));
            }
        }

        /// Appending requests' columns is building one batch of all their
        /// clicks, in order.
        #[test]
        fn appending_equals_building_one_batch(requests in proptest::collection::vec(proptest::collection::vec(
            (0u64..50, "[a-z]{0,6}", "[ -~]{0,12}", proptest::collection::vec(("[a-z]{1,3}", "[a-z]{0,3}"), 0..3)), 0..5), 0..5)) {
            let mut appended = Columns::default();
            for r in &requests {
                appended.append(columns(r));
            }
            let all: Vec<Click> = requests.concat();
            proptest::prop_assert_eq!(appended.into_batch(), columns(&all).into_batch());
        }
    }
}
