//! Keeps every click: the cost of the boundary alone.
struct Noop;

impl tally_filter_sdk::Filter for Noop {
    fn filter(_batch: &tally_filter_sdk::Batch, _verdicts: &mut [u16]) {}
}

tally_filter_sdk::export_filter!(Noop);
