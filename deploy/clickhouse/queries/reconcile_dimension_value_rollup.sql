SELECT
    tenant,
    toUInt32(hour) AS bucket,
    toUInt64(sum(clicks)) AS rollup_clicks,
    toUInt64(sum(spend_micros)) AS rollup_spend_micros
FROM tally.dimension_values_by_hour
WHERE hour >= ? AND hour < ?
GROUP BY tenant, bucket
ORDER BY tenant, bucket
