SELECT
    ad_id,
    toUInt64(sum(c)) AS clicks,
    toUInt64(sum(s)) AS spend_micros
FROM
(
    SELECT ad_id, toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s
    FROM tally.campaigns_by_day
    WHERE ? < ? AND tenant = ? AND day >= ? AND day < ? AND (day < ? OR day >= ?)
    GROUP BY ad_id
    UNION ALL
    SELECT ad_id, toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s
    FROM tally.campaigns_by_hour
    WHERE ? < ? AND tenant = ? AND hour >= ? AND hour < ? AND (hour < ? OR hour >= ?)
    GROUP BY ad_id
    UNION ALL
    SELECT ad_id, toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s
    FROM tally.campaigns_by_minute
    WHERE ? < ? AND tenant = ? AND minute >= ? AND minute < ? AND (minute < ? OR minute >= ?)
    GROUP BY ad_id
    UNION ALL
    SELECT ad_id, toUInt64(sum(clicks)) AS c, toUInt64(sum(spend_micros)) AS s
    FROM tally.clicks_by_second
    WHERE ? < ? AND tenant = ? AND second >= ? AND second < ? AND (second < ? OR second >= ?)
    GROUP BY ad_id
)
GROUP BY ad_id
ORDER BY clicks DESC, ad_id ASC
LIMIT ?
