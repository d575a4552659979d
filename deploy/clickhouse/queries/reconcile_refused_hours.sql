SELECT
    tenant,
    toUInt32(toStartOfHour(toDateTime(intDiv(ts_ms, 1000), 'UTC'))) AS hour,
    toUInt64(count()) AS landing_clicks,
    toUInt64(0) AS landing_spend_micros
FROM tally.refused_events
WHERE ts_ms >= ? * 1000 AND ts_ms < ? * 1000
GROUP BY tenant, hour
ORDER BY tenant, hour
