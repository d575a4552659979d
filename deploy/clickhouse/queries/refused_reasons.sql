SELECT
    reason,
    toUInt64(sum(clicks)) AS clicks
FROM tally.refused_by_{bucket}
WHERE tenant = ? AND {bucket} >= ? AND {bucket} < ?
GROUP BY reason
ORDER BY clicks DESC, reason
LIMIT ?
