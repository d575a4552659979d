SELECT
    tenant,
    toUInt32(toStartOfHour({bucket})) AS bucket,
    toUInt64(sum(landing_clicks - rollup_clicks)) AS missing_clicks,
    toUInt64(0) AS missing_spend_micros
FROM ({gap})
GROUP BY tenant, bucket
ORDER BY tenant, bucket
