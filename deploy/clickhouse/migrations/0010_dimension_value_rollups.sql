-- 0010 dimension value rollups: the dimension rollups without ad_id, for tenant-wide
-- breakdowns (GET /v1/dimensions/{name}: clicks per country, device, ...). dimensions_by_*
-- are keyed (tenant, dimension, time, value, ad_id), so a breakdown over all ads reads a
-- row per ad and value in every bucket (10.6M rows for 30 days at 10,000 ads x 20 values);
-- dimension_values_by_* hold one row per (tenant, dimension, time, value): a bucket is as
-- many rows as the dimension has values. Same columns as dimensions_by_* less ad_id, so
-- their repair and drift SQL differ only in the key (queries/parts/gap_dimension_value_rollup.sql).
-- Fed by their own views straight from tally.click_dimensions (never chain MVs), and
-- filled from it once here (same GROUP BY as the views). Re-running is safe: the views
-- and tables are dropped and rebuilt from the landing table. No inserts run meanwhile:
-- the core migrates before it commits.
DROP TABLE IF EXISTS tally.dimension_values_by_minute_mv;
DROP TABLE IF EXISTS tally.dimension_values_by_hour_mv;
DROP TABLE IF EXISTS tally.dimension_values_by_day_mv;
DROP TABLE IF EXISTS tally.dimension_values_by_minute;
DROP TABLE IF EXISTS tally.dimension_values_by_hour;
DROP TABLE IF EXISTS tally.dimension_values_by_day;
CREATE TABLE IF NOT EXISTS tally.dimension_values_by_minute
(
    tenant String,
    dimension String,
    value String,
    minute DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = SummingMergeTree((clicks, spend_micros))
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, dimension, minute, value);
CREATE TABLE IF NOT EXISTS tally.dimension_values_by_hour
(
    tenant String,
    dimension String,
    value String,
    hour DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = SummingMergeTree((clicks, spend_micros))
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, dimension, hour, value);
CREATE TABLE IF NOT EXISTS tally.dimension_values_by_day
(
    tenant String,
    dimension String,
    value String,
    day DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = SummingMergeTree((clicks, spend_micros))
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, dimension, day, value);
INSERT INTO tally.dimension_values_by_minute
SELECT tenant, dimension, value, toStartOfMinute(second) AS minute, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, minute;
INSERT INTO tally.dimension_values_by_hour
SELECT tenant, dimension, value, toStartOfHour(second) AS hour, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, hour;
INSERT INTO tally.dimension_values_by_day
SELECT tenant, dimension, value, toStartOfDay(second) AS day, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, day;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.dimension_values_by_minute_mv TO tally.dimension_values_by_minute
AS SELECT tenant, dimension, value, toStartOfMinute(second) AS minute, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, minute;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.dimension_values_by_hour_mv TO tally.dimension_values_by_hour
AS SELECT tenant, dimension, value, toStartOfHour(second) AS hour, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, hour;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.dimension_values_by_day_mv TO tally.dimension_values_by_day
AS SELECT tenant, dimension, value, toStartOfDay(second) AS day, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, day;
