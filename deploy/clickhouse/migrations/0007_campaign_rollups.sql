-- 0007 campaign rollups: the click rollups again, sorted by time first and then campaign,
-- for campaign and ranking reads. clicks_by_* are sorted (tenant, ad_id, time), so a
-- read of one campaign, or of all ads in a window, cannot skip the rows of other ads or
-- other times. campaigns_by_* hold the same rows (same columns in the same order, so
-- the click family's repair and drift SQL run on them unchanged: core::heal) sorted by
-- (tenant, time, campaign_id, ad_id): a window selects only its buckets, and within a
-- bucket one campaign's rows are contiguous. Granules of 1024 rows (not 8192): a bucket holds
-- a row per ad with clicks, so one campaign's series would read a whole granule per bucket.
-- Fed by their own views straight from tally.clicks_by_second (never chain MVs), and
-- filled from it once here (same GROUP BY as the views). Re-running is safe: the views
-- and tables are dropped and rebuilt from the landing table. No inserts run meanwhile:
-- the core migrates before it commits.
DROP TABLE IF EXISTS tally.campaigns_by_minute_mv;
DROP TABLE IF EXISTS tally.campaigns_by_hour_mv;
DROP TABLE IF EXISTS tally.campaigns_by_day_mv;
DROP TABLE IF EXISTS tally.campaigns_by_minute;
DROP TABLE IF EXISTS tally.campaigns_by_hour;
DROP TABLE IF EXISTS tally.campaigns_by_day;
CREATE TABLE IF NOT EXISTS tally.campaigns_by_minute
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    minute DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, campaign_id, ad_id)
SETTINGS index_granularity = 1024;
CREATE TABLE IF NOT EXISTS tally.campaigns_by_hour
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    hour DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, campaign_id, ad_id)
SETTINGS index_granularity = 1024;
CREATE TABLE IF NOT EXISTS tally.campaigns_by_day
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    day DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqHLL12Array, Array(UInt32))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, campaign_id, ad_id)
SETTINGS index_granularity = 1024;
INSERT INTO tally.campaigns_by_minute
SELECT tenant, ad_id, campaign_id, toStartOfMinute(second) AS minute, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, minute;
INSERT INTO tally.campaigns_by_hour
SELECT tenant, ad_id, campaign_id, toStartOfHour(second) AS hour, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, hour;
INSERT INTO tally.campaigns_by_day
SELECT tenant, ad_id, campaign_id, toStartOfDay(second) AS day, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, day;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.campaigns_by_minute_mv TO tally.campaigns_by_minute
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfMinute(second) AS minute,
    sumState(clicks) AS clicks,
    sumState(spend_micros) AS spend_micros,
    uniqHLL12ArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, minute;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.campaigns_by_hour_mv TO tally.campaigns_by_hour
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfHour(second) AS hour,
    sumState(clicks) AS clicks,
    sumState(spend_micros) AS spend_micros,
    uniqHLL12ArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, hour;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.campaigns_by_day_mv TO tally.campaigns_by_day
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfDay(second) AS day,
    sumState(clicks) AS clicks,
    sumState(spend_micros) AS spend_micros,
    uniqHLL12ArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, day;
