INSERT INTO tally.{table} (tenant, dimension, value, ad_id, {bucket}, clicks, spend_micros)
SELECT
    tenant,
    dimension,
    value,
    ad_id,
    {bucket},
    toUInt64(landing_clicks - rollup_clicks) AS clicks,
    toUInt64(landing_spend - rollup_spend) AS spend_micros
FROM ({gap})
