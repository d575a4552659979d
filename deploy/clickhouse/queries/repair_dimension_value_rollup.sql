INSERT INTO tally.{table} (tenant, dimension, value, {bucket}, clicks, spend_micros)
SELECT
    tenant,
    dimension,
    value,
    {bucket},
    toUInt64(landing_clicks - rollup_clicks) AS clicks,
    toUInt64(landing_spend - rollup_spend) AS spend_micros
FROM ({gap})
