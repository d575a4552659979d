//! The resolution of a time-series query: per second (the landing table)
//! or one of the rollups. Pure: where each one's data lives is the storage
//! layer's business (`crate::clickhouse::store`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Second,
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub fn seconds(self) -> u32 {
        match self {
            Resolution::Second => 1,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
            Resolution::Day => 86_400,
        }
    }

    /// The resolutions materialized views roll up to.
    pub const ROLLUPS: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];
    /// The same, in the order of a planned query's branches (`crate::read_plan`).
    pub const ROLLUPS_COARSEST_FIRST: [Resolution; 3] = [Resolution::Day, Resolution::Hour, Resolution::Minute];
}
