//! What billing compares: the exact count from the click records and what
//! the statements say, per (tenant, hour, ad). Plain values, so the pure
//! [`super::plan`] does not depend on the storage layer that reads them.

/// Exact billing of one (tenant, hour, ad), from the click records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBilling {
    pub tenant: String,
    pub hour: u32,
    pub ad_id: u64,
    pub clicks: i64,
    pub spend_micros: i64,
}

/// What the statements say of one (tenant, hour, ad).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billed {
    pub tenant: String,
    pub hour: u32,
    pub ad_id: u64,
    pub clicks: i64,
    pub spend_micros: i64,
    pub adjustments: u64,
}

/// The batches whose event times run from `first_hour` through `last_hour`
/// (hour starts, seconds): how many are committed, how many open (started,
/// not committed: inserting now or cut off). What the finalizer's change
/// detector reads from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub first_hour: u32,
    pub last_hour: u32,
    pub committed: u64,
    pub open: u64,
}
