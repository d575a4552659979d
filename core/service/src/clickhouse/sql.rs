//! Every query the service runs, compiled in from `deploy/clickhouse/queries/`
//! (where `check_modern.py` runs the same text on chdb and 18.16).

macro_rules! query {
    ($name:literal) => {
        include_str!(concat!("../../../../deploy/clickhouse/queries/", $name, ".sql"))
    };
}
pub const SERIES_SECOND: &str = query!("series_second");
pub const TOTAL_SECOND: &str = query!("total_second");
pub const SERIES_ROLLUP: &str = query!("series_rollup");
/// Planned reads (`crate::read_plan`): one branch per table, coarsest first.
pub const TOTALS: &str = query!("totals");
pub const TOP_ADS: &str = query!("top_ads");
pub const LEDGER_STATES: &str = query!("ledger_states");
pub const BATCH_ROWS_PRESENT: &str = query!("batch_rows_present");
/// Fencing: a new lease owner stops older owners' inserts (`crate::lease`).
pub const KILL_STALE_INSERTS: &str = query!("kill_stale_inserts");
/// The committer's deadline: an INSERT that timed out is stopped (`super::stalled`).
pub const KILL_TIMED_OUT_INSERT: &str = query!("kill_timed_out_insert");
pub const KILL_EVERY_INSERT: &str = query!("kill_every_insert");
pub const EDGE_WATERMARKS: &str = query!("edge_watermarks");
pub const EDGE_LEDGER: &str = query!("edge_ledger");
pub const EDGE_RETIREMENTS: &str = query!("edge_retirements");
/// The plugin registry's shared components (`crate::registry`).
pub const PLUGIN_COMPONENT: &str = query!("plugin_component");
pub const BILLING_LIVE: &str = query!("billing_live");
pub const BILLING_LIVE_ALL_TENANTS: &str = query!("billing_live_all_tenants");
/// The finalizer's change detector (`crate::billing::plan::batches_per_hour`).
pub const BILLING_BATCH_SPANS: &str = query!("billing_batch_spans");
pub const BILLING_STATEMENTS: &str = query!("billing_statements");
pub const FINAL_HOURS: &str = query!("final_hours");
pub const RECONCILE_HOURS: &str = query!("reconcile_hours");
pub const RECONCILE_ROLLUP: &str = query!("reconcile_rollup");
pub const RECONCILE_MANIFESTS: &str = query!("reconcile_manifests");
pub const RECONCILE_BATCH_RECORDS: &str = query!("reconcile_batch_records");
pub const REPAIR_ROLLUP: &str = query!("repair_rollup");
pub const RECONCILE_REFUSED_HOURS: &str = query!("reconcile_refused_hours");
pub const RECONCILE_REFUSED_ROLLUP: &str = query!("reconcile_refused_rollup");
pub const REPAIR_REFUSED_ROLLUP: &str = query!("repair_refused_rollup");
pub const RECONCILE_DIMENSION_HOURS: &str = query!("reconcile_dimension_hours");
pub const RECONCILE_DIMENSION_ROLLUP: &str = query!("reconcile_dimension_rollup");
pub const REPAIR_DIMENSION_ROLLUP: &str = query!("repair_dimension_rollup");
/// Dimension value rollups (`dimension_values_by_*`, migration 0010).
pub const RECONCILE_DIMENSION_VALUE_ROLLUP: &str = query!("reconcile_dimension_value_rollup");
pub const REPAIR_DIMENSION_VALUE_ROLLUP: &str = query!("repair_dimension_value_rollup");
pub const DRIFT_ROLLUP: &str = query!("drift_rollup");
/// What a rollup lacks per key: the `{gap}` both its repair and its drift read.
pub const GAP_ROLLUP: &str = query!("parts/gap_rollup");
pub const GAP_REFUSED_ROLLUP: &str = query!("parts/gap_refused_rollup");
pub const GAP_DIMENSION_ROLLUP: &str = query!("parts/gap_dimension_rollup");
pub const GAP_DIMENSION_VALUE_ROLLUP: &str = query!("parts/gap_dimension_value_rollup");
pub const DRIFT_REFUSED_ROLLUP: &str = query!("drift_refused_rollup");
pub const DRIFT_DIMENSION_ROLLUP: &str = query!("drift_dimension_rollup");
pub const SERIES_FILTERED: &str = query!("series_filtered");
pub const DIMENSION_VALUES: &str = query!("dimension_values");
pub const REFUSED_REASONS: &str = query!("refused_reasons");
pub const BILLING_FILTERED: &str = query!("billing_filtered");
pub const PLUGIN_COMPARISON: &str = query!("plugin_comparison");
pub const APPLIED_MIGRATIONS: &str = query!("applied_migrations");
pub const TABLE_PARTITIONS: &str = query!("table_partitions");
pub const DROP_PARTITION: &str = query!("drop_partition");
/// Campaign rollups (`campaigns_by_*`, migration 0007).
pub const CAMPAIGN_RANKING: &str = query!("campaign_ranking");
pub const TOP_CAMPAIGNS: &str = query!("top_campaigns");
pub const CAMPAIGN_ADS: &str = query!("campaign_ads");
pub const CAMPAIGN_SERIES: &str = query!("campaign_series");
pub const CAMPAIGN_SERIES_SECOND: &str = query!("campaign_series_second");
pub const CAMPAIGN_TOTALS: &str = query!("campaign_totals");
pub const CAMPAIGN_TOTAL_SECOND: &str = query!("campaign_total_second");
pub const CAMPAIGN_OF_ADS: &str = query!("campaign_of_ads");
pub const CAMPAIGN_FILTERED_SERIES: &str = query!("campaign_filtered_series");
pub const RECONCILE_CAMPAIGN_ROLLUP: &str = query!("reconcile_campaign_rollup");
/// The tenant's series across all ads (`clickhouse::tenant_series`).
pub const TENANT_SERIES: &str = query!("tenant_series");
pub const TENANT_SERIES_SECOND: &str = query!("tenant_series_second");
pub const TENANT_TOTALS: &str = query!("tenant_totals");
pub const TENANT_TOTAL_SECOND: &str = query!("tenant_total_second");
pub const TENANT_FILTERED: &str = query!("tenant_filtered");
