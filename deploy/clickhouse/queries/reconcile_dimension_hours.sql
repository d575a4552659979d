SELECT
    tenant,
    toUInt32(toStartOfHour(second)) AS hour,
    toUInt64(sum(clicks)) AS landing_clicks,
    toUInt64(sum(spend_micros)) AS landing_spend_micros
FROM tally.click_dimensions
WHERE second >= ? AND second < ?
GROUP BY tenant, hour
ORDER BY tenant, hour
