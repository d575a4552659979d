SELECT
    ad_id,
    toUInt64(sumMerge(clicks)) AS clicks,
    toUInt64(sumMerge(spend_micros)) AS spend_micros
FROM tally.clicks_by_minute
WHERE tenant = ? AND minute >= ? AND minute < ?
GROUP BY ad_id
ORDER BY clicks DESC, ad_id ASC
LIMIT ?
