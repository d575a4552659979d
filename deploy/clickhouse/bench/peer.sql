-- The peer of deploy/bench/cpu-per-event.sh: what a user might do without Tally.
-- Raw clicks are POSTed as JSONEachRow (the fields `tally load` sends: ts in unix
-- milliseconds) into one landing table, and three materialized views keep
-- minute, hour and day rollups of the same shape as Tally's (migrations/0002):
-- clicks and spend as sum states, distinct users as a uniq state. tenant and
-- campaign_id are not in the clicks and stay at their type's default, as a raw
-- pipeline without Tally's resolution would leave them. Every view reads the
-- landing table directly (chained views do not fire on 18.16).
CREATE DATABASE IF NOT EXISTS peer;
CREATE TABLE IF NOT EXISTS peer.clicks
(
    click_id String,
    ad_id UInt64,
    ts UInt64,
    cost_micros UInt64,
    user_id String,
    tenant String,
    campaign_id UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000), 'UTC'))
ORDER BY (tenant, ad_id, ts);
CREATE TABLE IF NOT EXISTS peer.clicks_by_minute
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    minute DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, ad_id, minute, campaign_id);
CREATE TABLE IF NOT EXISTS peer.clicks_by_hour
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    hour DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, ad_id, hour, campaign_id);
CREATE TABLE IF NOT EXISTS peer.clicks_by_day
(
    tenant String,
    ad_id UInt64,
    campaign_id UInt64,
    day DateTime('UTC'),
    clicks AggregateFunction(sum, UInt64),
    spend_micros AggregateFunction(sum, UInt64),
    users AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, ad_id, day, campaign_id);
CREATE MATERIALIZED VIEW IF NOT EXISTS peer.clicks_by_minute_mv TO peer.clicks_by_minute
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfMinute(toDateTime(intDiv(ts, 1000), 'UTC')) AS minute,
    sumState(toUInt64(1)) AS clicks,
    sumState(cost_micros) AS spend_micros,
    uniqState(cityHash64(user_id)) AS users
FROM peer.clicks
GROUP BY tenant, ad_id, campaign_id, minute;
CREATE MATERIALIZED VIEW IF NOT EXISTS peer.clicks_by_hour_mv TO peer.clicks_by_hour
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfHour(toDateTime(intDiv(ts, 1000), 'UTC')) AS hour,
    sumState(toUInt64(1)) AS clicks,
    sumState(cost_micros) AS spend_micros,
    uniqState(cityHash64(user_id)) AS users
FROM peer.clicks
GROUP BY tenant, ad_id, campaign_id, hour;
CREATE MATERIALIZED VIEW IF NOT EXISTS peer.clicks_by_day_mv TO peer.clicks_by_day
AS SELECT
    tenant,
    ad_id,
    campaign_id,
    toStartOfDay(toDateTime(intDiv(ts, 1000), 'UTC')) AS day,
    sumState(toUInt64(1)) AS clicks,
    sumState(cost_micros) AS spend_micros,
    uniqState(cityHash64(user_id)) AS users
FROM peer.clicks
GROUP BY tenant, ad_id, campaign_id, day;
