//! Drops clicks from bots: User-Agents that name themselves (reason 1) and
//! IPs from data-centre or documentation ranges (reason 2).
//!
//! [`rules::Rules`] is plain Rust, so the edge's tests compile the very
//! same rules natively as the reference the plugin must agree with. The
//! instance builds them (their automaton) once and keeps them across calls.

pub mod rules;

use tally_filter_sdk::{Batch, Filter, Verdicts, KEEP};

#[derive(Default)]
struct BotFilter {
    rules: rules::Rules,
}

impl Filter for BotFilter {
    fn filter(&mut self, batch: &Batch, out: &mut Verdicts) {
        for i in 0..batch.len() {
            let code = self.rules.verdict(batch.user_agent(i), batch.ip(i));
            if code != KEEP {
                out.drop(i, code);
            }
        }
    }
}

tally_filter_sdk::export_filter!(BotFilter);
