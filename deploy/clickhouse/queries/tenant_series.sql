SELECT
    toUInt32({bucket}) AS t,
    toUInt64(sumMerge(clicks)) AS clicks,
    toUInt64(sumMerge(spend_micros)) AS spend_micros,
    toUInt64(uniqHLL12ArrayMerge(users)) AS users
FROM tally.campaigns_by_{bucket}
WHERE tenant = ? AND {bucket} >= ? AND {bucket} < ?
GROUP BY t
ORDER BY t
