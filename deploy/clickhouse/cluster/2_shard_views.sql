-- Tally on a ClickHouse cluster, 2 of 3: the materialized views, each on the shard-local
-- landing table beside it (a view fires where its landing INSERT lands: the Distributed
-- table hands each shard its rows and the shard's views aggregate those). Their targets
-- are Replicated, so rollup parts replicate like the landing parts. Never chained (18.16
-- and modern disagree on chained views).
CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.campaigns_by_day_mv TO tally_shard.campaigns_by_day
AS SELECT tenant, ad_id, campaign_id, toStartOfDay(second) AS day, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally_shard.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.campaigns_by_hour_mv TO tally_shard.campaigns_by_hour
AS SELECT tenant, ad_id, campaign_id, toStartOfHour(second) AS hour, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally_shard.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.campaigns_by_minute_mv TO tally_shard.campaigns_by_minute
AS SELECT tenant, ad_id, campaign_id, toStartOfMinute(second) AS minute, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally_shard.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.clicks_by_day_mv TO tally_shard.clicks_by_day
AS SELECT tenant, ad_id, campaign_id, toStartOfDay(second) AS day, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally_shard.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.clicks_by_hour_mv TO tally_shard.clicks_by_hour
AS SELECT tenant, ad_id, campaign_id, toStartOfHour(second) AS hour, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally_shard.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.clicks_by_minute_mv TO tally_shard.clicks_by_minute
AS SELECT tenant, ad_id, campaign_id, toStartOfMinute(second) AS minute, sumState(clicks) AS clicks, sumState(spend_micros) AS spend_micros, uniqHLL12ArrayState(user_hashes) AS users
FROM tally_shard.clicks_by_second
GROUP BY tenant, ad_id, campaign_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.dimension_values_by_day_mv TO tally_shard.dimension_values_by_day
AS SELECT tenant, dimension, value, toStartOfDay(second) AS day, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally_shard.click_dimensions
GROUP BY tenant, dimension, value, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.dimension_values_by_hour_mv TO tally_shard.dimension_values_by_hour
AS SELECT tenant, dimension, value, toStartOfHour(second) AS hour, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally_shard.click_dimensions
GROUP BY tenant, dimension, value, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.dimension_values_by_minute_mv TO tally_shard.dimension_values_by_minute
AS SELECT tenant, dimension, value, toStartOfMinute(second) AS minute, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally_shard.click_dimensions
GROUP BY tenant, dimension, value, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.dimensions_by_day_mv TO tally_shard.dimensions_by_day
AS SELECT tenant, dimension, value, ad_id, toStartOfDay(second) AS day, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally_shard.click_dimensions
GROUP BY tenant, dimension, value, ad_id, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.dimensions_by_hour_mv TO tally_shard.dimensions_by_hour
AS SELECT tenant, dimension, value, ad_id, toStartOfHour(second) AS hour, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally_shard.click_dimensions
GROUP BY tenant, dimension, value, ad_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.dimensions_by_minute_mv TO tally_shard.dimensions_by_minute
AS SELECT tenant, dimension, value, ad_id, toStartOfMinute(second) AS minute, sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM tally_shard.click_dimensions
GROUP BY tenant, dimension, value, ad_id, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.refused_by_day_mv TO tally_shard.refused_by_day
AS SELECT tenant, ad_id, reason, toStartOfDay(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS day, count() AS clicks
FROM tally_shard.refused_events
GROUP BY tenant, ad_id, reason, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.refused_by_hour_mv TO tally_shard.refused_by_hour
AS SELECT tenant, ad_id, reason, toStartOfHour(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS hour, count() AS clicks
FROM tally_shard.refused_events
GROUP BY tenant, ad_id, reason, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally_shard.refused_by_minute_mv TO tally_shard.refused_by_minute
AS SELECT tenant, ad_id, reason, toStartOfMinute(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS minute, count() AS clicks
FROM tally_shard.refused_events
GROUP BY tenant, ad_id, reason, minute;
