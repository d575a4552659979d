SELECT
    toUInt32({bucket}) AS t,
    toUInt64(sum(clicks)) AS filtered
FROM tally.refused_by_{bucket}
WHERE tenant = ? AND {bucket} >= ? AND {bucket} < ? AND reason LIKE 'filtered:%'
GROUP BY t
ORDER BY t
