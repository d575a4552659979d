-- Tally on a ClickHouse cluster, 1 of 3: the shard-local tables (database tally_shard).
-- The end state of the single-node schema (bootstrap.sql + migrations/), not its history:
-- same table names, same columns in the same order (a test compares them with a
-- single-node install), engines made Replicated* under /clickhouse/tables/{shard}/tally/<table>
-- with the server's {shard} and {replica} macros. Applied on every server at core start
-- when [clickhouse] cluster is set; idempotent (IF NOT EXISTS). Column meanings: see the
-- single-node migrations.
-- replicated_deduplication_window: how many recent blocks per table ZooKeeper remembers, so
-- a re-sent INSERT (same rows, same order) is dropped on the shard: raised from 100 to 10000
-- (the second line of exactly-once; the ledger protocol is the first).
CREATE DATABASE IF NOT EXISTS tally_shard;
CREATE TABLE IF NOT EXISTS tally_shard.clicks_by_second
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    second DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64,
    user_hashes Array(UInt32),
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/clicks_by_second', '{replica}')
PARTITION BY toYYYYMM(second)
ORDER BY (tenant, ad_id, second)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.click_records
(
    tenant String,
    id_hi UInt64,
    id_lo UInt64,
    ad_id UInt64,
    second DateTime('UTC'),
    cost_micros UInt64,
    verdict UInt8,
    accepted_ms UInt64,
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/click_records', '{replica}')
PARTITION BY toYYYYMM(second)
ORDER BY (tenant, second, batch_seq, row_idx)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.refused_events
(
    tenant String,
    id_hi UInt64,
    id_lo UInt64,
    ad_id UInt64,
    ts_ms UInt64,
    reason String,
    at DateTime('UTC'),
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/refused_events', '{replica}')
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, at)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.click_dimensions
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    second DateTime('UTC'),
    dimension String,
    value String,
    clicks UInt64,
    spend_micros UInt64,
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/click_dimensions', '{replica}')
PARTITION BY toYYYYMM(second)
ORDER BY (tenant, dimension, second, ad_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.plugin_verdicts
(
    tenant String,
    minute DateTime('UTC'),
    active_version UInt32,
    candidate_version UInt32,
    mode UInt8,
    applied_candidate UInt8,
    active_code UInt16,
    candidate_code UInt16,
    clicks UInt64,
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/plugin_verdicts', '{replica}')
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.batches
(
    edge String,
    seq UInt64,
    state UInt8,
    rows UInt32,
    click_records UInt32,
    refused UInt32,
    clicks UInt64,
    checksum UInt64,
    min_second DateTime('UTC'),
    max_second DateTime('UTC'),
    low_watermark_ms UInt64,
    recorded_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/batches', '{replica}', state)
ORDER BY (edge, seq)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.billing_statements
(
    tenant String,
    hour DateTime('UTC'),
    ad_id UInt64,
    kind String,
    clicks Int64,
    spend_micros Int64,
    recorded_at DateTime('UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/billing_statements', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, ad_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.billing_final_hours
(
    hour DateTime('UTC'),
    finalized_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/billing_final_hours', '{replica}')
ORDER BY hour
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.edge_retirements
(
    edge String,
    retired UInt8,
    changed_ms UInt64,
    reason String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/edge_retirements', '{replica}', changed_ms)
ORDER BY edge
SETTINGS replicated_deduplication_window = 10000;

-- Plugin components by sha256 (migration 0009): every core's registry reads them.
CREATE TABLE IF NOT EXISTS tally_shard.plugin_components
(
    sha256 String,
    bytes Array(UInt8),
    stored_ms UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/plugin_components', '{replica}', stored_ms)
ORDER BY sha256
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.clicks_by_minute
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    minute DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tally/clicks_by_minute', '{replica}')
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, ad_id, minute, campaign_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.clicks_by_hour
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    hour DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tally/clicks_by_hour', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, ad_id, hour, campaign_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.clicks_by_day
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    day DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tally/clicks_by_day', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, ad_id, day, campaign_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.campaigns_by_minute
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    minute DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tally/campaigns_by_minute', '{replica}')
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, campaign_id, ad_id)
SETTINGS replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS tally_shard.campaigns_by_hour
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    hour DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tally/campaigns_by_hour', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, campaign_id, ad_id)
SETTINGS replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS tally_shard.campaigns_by_day
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    day DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tally/campaigns_by_day', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, campaign_id, ad_id)
SETTINGS replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS tally_shard.dimensions_by_minute
(
    tenant String,
    dimension String,
    value String,
    ad_id UInt64,
    minute DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/dimensions_by_minute', '{replica}', (clicks, spend_micros))
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, dimension, minute, value, ad_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.dimensions_by_hour
(
    tenant String,
    dimension String,
    value String,
    ad_id UInt64,
    hour DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/dimensions_by_hour', '{replica}', (clicks, spend_micros))
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, dimension, hour, value, ad_id)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.dimensions_by_day
(
    tenant String,
    dimension String,
    value String,
    ad_id UInt64,
    day DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/dimensions_by_day', '{replica}', (clicks, spend_micros))
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, dimension, day, value, ad_id)
SETTINGS replicated_deduplication_window = 10000;

-- dimension_values_by_*: migration 0010 fills them from click_dimensions on one server; a
-- cluster that ran before them gets them empty here, and `tally billing reconcile --from ..
-- --to .. --repair` over its history fills them (their drift is what they lack).
CREATE TABLE IF NOT EXISTS tally_shard.dimension_values_by_minute
(
    tenant String,
    dimension String,
    value String,
    minute DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/dimension_values_by_minute', '{replica}', (clicks, spend_micros))
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, dimension, minute, value)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.dimension_values_by_hour
(
    tenant String,
    dimension String,
    value String,
    hour DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/dimension_values_by_hour', '{replica}', (clicks, spend_micros))
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, dimension, hour, value)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.dimension_values_by_day
(
    tenant String,
    dimension String,
    value String,
    day DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/dimension_values_by_day', '{replica}', (clicks, spend_micros))
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, dimension, day, value)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.refused_by_minute
(
    tenant String,
    ad_id UInt64,
    reason String,
    minute DateTime('UTC'),
    clicks UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/refused_by_minute', '{replica}', clicks)
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, ad_id, minute, reason)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.refused_by_hour
(
    tenant String,
    ad_id UInt64,
    reason String,
    hour DateTime('UTC'),
    clicks UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/refused_by_hour', '{replica}', clicks)
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, ad_id, hour, reason)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS tally_shard.refused_by_day
(
    tenant String,
    ad_id UInt64,
    reason String,
    day DateTime('UTC'),
    clicks UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tally/refused_by_day', '{replica}', clicks)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, ad_id, day, reason)
SETTINGS replicated_deduplication_window = 10000;
