//! Drops click floods: the 6th and later clicks of one source (IP, else user
//! id) on one ad within one event-time minute, with reason 3.
//!
//! The counters live in the instance across batches; losing them (the edge
//! rebuilds an instance after any failure) only lets a flood's first
//! minute through. [`rules::Flood`] is plain Rust, so the edge's tests run
//! the very same rules natively, over the same batches, as the reference.

pub mod rules;

use tally_filter_sdk::{Batch, Filter, Verdicts, KEEP};

impl Filter for rules::Flood {
    fn filter(&mut self, batch: &Batch, out: &mut Verdicts) {
        for i in 0..batch.len() {
            let code = self.verdict(batch.ip(i), batch.user_id(i), batch.ad_id(i), batch.ts_ms(i));
            if code != KEEP {
                out.drop(i, code);
            }
        }
    }
}

tally_filter_sdk::export_filter!(rules::Flood);
