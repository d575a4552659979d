//! Keeps every click: the cost of the boundary alone.
use tally_filter_sdk::{Batch, Filter, Verdicts};

#[derive(Default)]
struct Noop;

impl Filter for Noop {
    fn filter(&mut self, _batch: &Batch, _out: &mut Verdicts) {}
}

tally_filter_sdk::export_filter!(Noop);
