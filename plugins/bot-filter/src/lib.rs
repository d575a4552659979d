//! Drops clicks from bots: User-Agents that name themselves (reason 1) and
//! IPs from data-centre or documentation ranges (reason 2).
//!
//! [`rules::verdict`] is plain Rust, so the edge's tests compile the very
//! same rules natively as the reference the plugin must agree with.

pub mod rules;

struct BotFilter;

impl tally_filter_sdk::Filter for BotFilter {
    fn filter(batch: &tally_filter_sdk::Batch, verdicts: &mut [u16]) {
        for (i, v) in verdicts.iter_mut().enumerate() {
            *v = rules::verdict(batch.user_agent(i), batch.ip(i));
        }
    }
}

tally_filter_sdk::export_filter!(BotFilter);
