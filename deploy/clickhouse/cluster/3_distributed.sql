-- Tally on a ClickHouse cluster, 3 of 3: database tally holds a Distributed table per
-- shard-local table, same name and columns, so every file in queries/ runs unchanged.
-- {{cluster}} is replaced by [clickhouse] cluster (the remote_servers name) before running.
-- Sharding keys are deterministic (never rand()): a re-sent INSERT routes every row to the
-- shard it went to before, so the shard's block deduplication can recognise it.
-- landing rows: a hot ad spreads over the shards second by second; rollups are merged on read
CREATE TABLE IF NOT EXISTS tally.clicks_by_second AS tally_shard.clicks_by_second
ENGINE = Distributed({{cluster}}, tally_shard, clicks_by_second, cityHash64(tenant, ad_id, second));

-- each (tenant, click id) on one shard: billing's per-id dedup is shard-local
CREATE TABLE IF NOT EXISTS tally.click_records AS tally_shard.click_records
ENGINE = Distributed({{cluster}}, tally_shard, click_records, cityHash64(tenant, id_hi, id_lo));

-- like click_records: a refused click id is counted once
CREATE TABLE IF NOT EXISTS tally.refused_events AS tally_shard.refused_events
ENGINE = Distributed({{cluster}}, tally_shard, refused_events, cityHash64(tenant, id_hi, id_lo));

-- as clicks_by_second
CREATE TABLE IF NOT EXISTS tally.click_dimensions AS tally_shard.click_dimensions
ENGINE = Distributed({{cluster}}, tally_shard, click_dimensions, cityHash64(tenant, ad_id, second));

-- summed on read
CREATE TABLE IF NOT EXISTS tally.plugin_verdicts AS tally_shard.plugin_verdicts
ENGINE = Distributed({{cluster}}, tally_shard, plugin_verdicts, cityHash64(tenant, minute, edge));

-- an edge's whole ledger on one shard: highest state per (edge, seq) is shard-local
CREATE TABLE IF NOT EXISTS tally.batches AS tally_shard.batches
ENGINE = Distributed({{cluster}}, tally_shard, batches, cityHash64(edge));

-- summed on read
CREATE TABLE IF NOT EXISTS tally.billing_statements AS tally_shard.billing_statements
ENGINE = Distributed({{cluster}}, tally_shard, billing_statements, cityHash64(tenant, hour, ad_id));

-- ReplacingMergeTree by hour: each hour on one shard
CREATE TABLE IF NOT EXISTS tally.billing_final_hours AS tally_shard.billing_final_hours
ENGINE = Distributed({{cluster}}, tally_shard, billing_final_hours, cityHash64(hour));

-- ReplacingMergeTree by edge: each edge on one shard
CREATE TABLE IF NOT EXISTS tally.edge_retirements AS tally_shard.edge_retirements
ENGINE = Distributed({{cluster}}, tally_shard, edge_retirements, cityHash64(edge));

-- A component on one shard (by its hash), on every replica of it (quorum insert).
CREATE TABLE IF NOT EXISTS tally.plugin_components AS tally_shard.plugin_components
ENGINE = Distributed({{cluster}}, tally_shard, plugin_components, cityHash64(sha256));

-- Rollups: written by their views on the landing row's shard and, for repairs, through
-- these tables; every read merges states across shards, so any deterministic key is exact.

CREATE TABLE IF NOT EXISTS tally.clicks_by_minute AS tally_shard.clicks_by_minute
ENGINE = Distributed({{cluster}}, tally_shard, clicks_by_minute, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.clicks_by_hour AS tally_shard.clicks_by_hour
ENGINE = Distributed({{cluster}}, tally_shard, clicks_by_hour, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.clicks_by_day AS tally_shard.clicks_by_day
ENGINE = Distributed({{cluster}}, tally_shard, clicks_by_day, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.campaigns_by_minute AS tally_shard.campaigns_by_minute
ENGINE = Distributed({{cluster}}, tally_shard, campaigns_by_minute, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.campaigns_by_hour AS tally_shard.campaigns_by_hour
ENGINE = Distributed({{cluster}}, tally_shard, campaigns_by_hour, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.campaigns_by_day AS tally_shard.campaigns_by_day
ENGINE = Distributed({{cluster}}, tally_shard, campaigns_by_day, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.dimension_values_by_minute AS tally_shard.dimension_values_by_minute
ENGINE = Distributed({{cluster}}, tally_shard, dimension_values_by_minute, cityHash64(tenant, dimension, value));

CREATE TABLE IF NOT EXISTS tally.dimension_values_by_hour AS tally_shard.dimension_values_by_hour
ENGINE = Distributed({{cluster}}, tally_shard, dimension_values_by_hour, cityHash64(tenant, dimension, value));

CREATE TABLE IF NOT EXISTS tally.dimension_values_by_day AS tally_shard.dimension_values_by_day
ENGINE = Distributed({{cluster}}, tally_shard, dimension_values_by_day, cityHash64(tenant, dimension, value));

CREATE TABLE IF NOT EXISTS tally.dimensions_by_minute AS tally_shard.dimensions_by_minute
ENGINE = Distributed({{cluster}}, tally_shard, dimensions_by_minute, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.dimensions_by_hour AS tally_shard.dimensions_by_hour
ENGINE = Distributed({{cluster}}, tally_shard, dimensions_by_hour, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.dimensions_by_day AS tally_shard.dimensions_by_day
ENGINE = Distributed({{cluster}}, tally_shard, dimensions_by_day, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.refused_by_minute AS tally_shard.refused_by_minute
ENGINE = Distributed({{cluster}}, tally_shard, refused_by_minute, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.refused_by_hour AS tally_shard.refused_by_hour
ENGINE = Distributed({{cluster}}, tally_shard, refused_by_hour, cityHash64(tenant, ad_id));

CREATE TABLE IF NOT EXISTS tally.refused_by_day AS tally_shard.refused_by_day
ENGINE = Distributed({{cluster}}, tally_shard, refused_by_day, cityHash64(tenant, ad_id));
