SELECT
    toUInt64(sum(clicks)) AS clicks,
    toUInt64(sum(spend_micros)) AS spend_micros,
    toUInt64(uniqArray(user_hashes)) AS users
FROM tally.clicks_by_second
WHERE tenant = ? AND second >= ? AND second < ?
