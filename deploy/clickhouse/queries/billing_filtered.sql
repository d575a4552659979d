SELECT
    toUInt32(hour) AS hour,
    ad_id,
    toUInt64(sum(clicks)) AS filtered
FROM tally.refused_by_hour
WHERE tenant = ? AND hour >= ? AND hour < ? AND reason LIKE 'filtered:%'
GROUP BY hour, ad_id
ORDER BY hour, ad_id
