SELECT
    value,
    toUInt64(sum(clicks)) AS clicks,
    toUInt64(sum(spend_micros)) AS spend_micros
FROM tally.dimensions_by_{bucket}
WHERE tenant = ? AND dimension = ? AND {bucket} >= ? AND {bucket} < ?
GROUP BY value
ORDER BY clicks DESC, value
LIMIT ?
