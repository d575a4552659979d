//! Enrichment: keeps every click and tags it with its `country` (carried by
//! the click, else looked up from its IPv4 address) and its `device`
//! (mobile or desktop, from the User-Agent).
//!
//! [`rules`] is plain Rust, so the edge's tests compile the very same
//! lookups natively as the reference the plugin must agree with.

pub mod rules;

use tally_filter_sdk::{Batch, Filter, Verdicts};

#[derive(Default)]
struct GeoEnrich;

impl Filter for GeoEnrich {
    fn filter(&mut self, batch: &Batch, out: &mut Verdicts) {
        for i in 0..batch.len() {
            if let Some(country) = rules::country(batch.ip(i), batch.country(i)) {
                out.tag(i, rules::COUNTRY, country);
            }
            if let Some(device) = rules::device(batch.user_agent(i)) {
                out.tag(i, rules::DEVICE, device);
            }
        }
    }
}

tally_filter_sdk::export_filter!(GeoEnrich);
