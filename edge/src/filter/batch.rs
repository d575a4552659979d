//! The columnar batch a filter sees, built while the request is parsed.

use crate::filter::host::{ClickBatch, Strings};

/// Column builder: one push per valid click, in request order.
#[derive(Debug, Default)]
pub struct Columns {
    batch: ClickBatch,
}

fn push_str(s: &mut Strings, value: &str) {
    s.bytes.extend_from_slice(value.as_bytes());
    s.ends.push(s.bytes.len() as u32);
}

impl Columns {
    #[allow(clippy::too_many_arguments)]
    pub fn push(&mut self, ad_id: u64, campaign_id: u64, ts_ms: u64, cost_micros: u64, click_id: &str, user_id: &str, ip: &str, user_agent: &str) {
        let b = &mut self.batch;
        b.ad_id.push(ad_id);
        b.campaign_id.push(campaign_id);
        b.ts_ms.push(ts_ms);
        b.cost_micros.push(cost_micros);
        push_str(&mut b.click_id, click_id);
        push_str(&mut b.user_id, user_id);
        push_str(&mut b.ip, ip);
        push_str(&mut b.user_agent, user_agent);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_an_arena_with_end_offsets() {
        let mut c = Columns::default();
        c.push(1, 2, 3, 4, "a", "", "10.0.0.1", "Mozilla");
        c.push(5, 6, 7, 8, "bb", "u", "", "");
        let b = c.into_batch();
        assert_eq!(b.ad_id, vec![1, 5]);
        assert_eq!((b.click_id.bytes.as_slice(), b.click_id.ends.as_slice()), (&b"abb"[..], &[1u32, 3][..]));
        assert_eq!(b.user_id.ends, vec![0, 1]);
        assert_eq!(b.ip.ends, vec![8, 8]);
    }
}
