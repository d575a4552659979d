-- 0002 rollups: per-minute, per-hour and per-day AggregatingMergeTree tables, each fed
-- by its own materialized view that reads DIRECTLY from tally.clicks_by_second
-- (chained MVs fire on modern ClickHouse but not on 18.16, so never chain them).
-- users holds uniqArrayState(user_hashes): distinct users without arrayJoin, which
-- would multiply clicks/spend. Read with sumMerge / uniqArrayMerge.
-- Bucket functions use the UTC timezone of the DateTime('UTC') column on both engines.
-- Tables are created before their views; MV column order and names match the table.
CREATE TABLE IF NOT EXISTS tally.clicks_by_minute
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    minute DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqArray, Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, ad_id, minute, campaign_id);
CREATE TABLE IF NOT EXISTS tally.clicks_by_hour
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    hour DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqArray, Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, ad_id, hour, campaign_id);
CREATE TABLE IF NOT EXISTS tally.clicks_by_day
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    day DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniqArray, Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, ad_id, day, campaign_id);
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.clicks_by_minute_mv TO tally.clicks_by_minute
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfMinute(second) AS minute,
    sumState(clicks) AS clicks,
    sumState(spend_micros) AS spend_micros,
    uniqArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, minute;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.clicks_by_hour_mv TO tally.clicks_by_hour
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfHour(second) AS hour,
    sumState(clicks) AS clicks,
    sumState(spend_micros) AS spend_micros,
    uniqArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, hour;
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.clicks_by_day_mv TO tally.clicks_by_day
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfDay(second) AS day,
    sumState(clicks) AS clicks,
    sumState(spend_micros) AS spend_micros,
    uniqArrayState(user_hashes) AS users
FROM tally.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, day;
