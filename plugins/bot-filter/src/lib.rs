//! Drops clicks from bots: User-Agents that name themselves (reason 1) and
//! IPs from data-centre or documentation ranges (reason 2).
//!
//! [`rules::verdict`] is plain Rust, so the edge's tests compile the very
//! same rules natively as the reference the plugin must agree with.

pub mod rules;

use tally_filter_sdk::{Batch, Filter, Verdicts, KEEP};

#[derive(Default)]
struct BotFilter;

impl Filter for BotFilter {
    fn filter(&mut self, batch: &Batch, out: &mut Verdicts) {
        for i in 0..batch.len() {
            let code = rules::verdict(batch.user_agent(i), batch.ip(i));
            if code != KEEP {
                out.drop(i, code);
            }
        }
    }
}

tally_filter_sdk::export_filter!(BotFilter);
