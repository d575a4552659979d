-- 0005 tenant filters: enrichment dimensions, filtered clicks in rollups, and
-- plugin rollout comparisons.
--
-- click_dimensions: per (tenant, ad, campaign, second, dimension, value) per shipped
-- batch, pre-aggregated at the edge from the tags the tenant's filter set on kept
-- clicks (only dimensions the tenant declared). Committed by the same ledger protocol
-- as clicks_by_second ((edge, batch_seq, row_idx) identifies a row); its rollups hang
-- directly off it, like the click rollups (never chain MVs).
CREATE TABLE IF NOT EXISTS tally.click_dimensions
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(second)
ORDER BY (tenant, dimension, second, ad_id);
CREATE TABLE IF NOT EXISTS tally.dimensions_by_minute
(
    tenant String,
    dimension String,
    value String,
    ad_id UInt64,
    minute DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = SummingMergeTree((clicks, spend_micros))
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, dimension, minute, value, ad_id);
CREATE TABLE IF NOT EXISTS tally.dimensions_by_hour
(
    tenant String,
    dimension String,
    value String,
    ad_id UInt64,
    hour DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = SummingMergeTree((clicks, spend_micros))
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, dimension, hour, value, ad_id);
CREATE TABLE IF NOT EXISTS tally.dimensions_by_day
(
    tenant String,
    dimension String,
    value String,
    ad_id UInt64,
    day DateTime('UTC'),
    clicks UInt64,
    spend_micros UInt64
)
ENGINE = SummingMergeTree((clicks, spend_micros))
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, dimension, day, value, ad_id);
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.dimensions_by_minute_mv TO tally.dimensions_by_minute
AS SELECT tenant, dimension, value, ad_id, toStartOfMinute(second) AS minute, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, ad_id, minute;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.dimensions_by_hour_mv TO tally.dimensions_by_hour
AS SELECT tenant, dimension, value, ad_id, toStartOfHour(second) AS hour, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, ad_id, hour;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.dimensions_by_day_mv TO tally.dimensions_by_day
AS SELECT tenant, dimension, value, ad_id, toStartOfDay(second) AS day, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally.click_dimensions
GROUP BY tenant, dimension, value, ad_id, day;
-- Refused clicks (filtered:<code>, too_late, future) per event-time bucket, so
-- dashboards show `filtered` next to `clicks` without reading refused_events. Edges
-- decide a click id once, so a re-sent filtered click is not counted again.
CREATE TABLE IF NOT EXISTS tally.refused_by_minute
(
    tenant String,
    ad_id UInt64,
    reason String,
    minute DateTime('UTC'),
    clicks UInt64
)
ENGINE = SummingMergeTree(clicks)
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, ad_id, minute, reason);
CREATE TABLE IF NOT EXISTS tally.refused_by_hour
(
    tenant String,
    ad_id UInt64,
    reason String,
    hour DateTime('UTC'),
    clicks UInt64
)
ENGINE = SummingMergeTree(clicks)
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, ad_id, hour, reason);
CREATE TABLE IF NOT EXISTS tally.refused_by_day
(
    tenant String,
    ad_id UInt64,
    reason String,
    day DateTime('UTC'),
    clicks UInt64
)
ENGINE = SummingMergeTree(clicks)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, ad_id, day, reason);
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.refused_by_minute_mv TO tally.refused_by_minute
AS SELECT tenant, ad_id, reason, toStartOfMinute(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS minute, count() AS clicks
FROM tally.refused_events
GROUP BY tenant, ad_id, reason, minute;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.refused_by_hour_mv TO tally.refused_by_hour
AS SELECT tenant, ad_id, reason, toStartOfHour(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS hour, count() AS clicks
FROM tally.refused_events
GROUP BY tenant, ad_id, reason, hour;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.refused_by_day_mv TO tally.refused_by_day
AS SELECT tenant, ad_id, reason, toStartOfDay(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS day, count() AS clicks
FROM tally.refused_events
GROUP BY tenant, ad_id, reason, day;
-- Plugin rollout: per minute (edge clock) and version pair, how many clicks got
-- which code from the active and from the candidate version (65535: that version
-- failed), and whose verdict applied. Committed by the ledger protocol.
CREATE TABLE IF NOT EXISTS tally.plugin_verdicts
(
    tenant String,
    minute DateTime('UTC'),
    active_version UInt32,
    candidate_version UInt32,
    mode UInt8 /* 1 = shadow, 2 = canary */,
    applied_candidate UInt8,
    active_code UInt16,
    candidate_code UInt16,
    clicks UInt64,
    edge String,
    batch_seq UInt64,
    row_idx UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute);
