SELECT
    tenant,
    toUInt32(hour) AS bucket,
    toUInt64(sumMerge(clicks)) AS rollup_clicks,
    toUInt64(sumMerge(spend_micros)) AS rollup_spend_micros
FROM tally.campaigns_by_hour
WHERE hour >= ? AND hour < ?
GROUP BY tenant, bucket
ORDER BY tenant, bucket
