SELECT campaign_id
FROM
(
    SELECT campaign_id, toUInt64(sumMerge(clicks)) AS c
    FROM tally.campaigns_by_day
    WHERE ? < ? AND tenant = ? AND day >= ? AND day < ? AND (day < ? OR day >= ?)
    GROUP BY campaign_id
    UNION ALL
    SELECT campaign_id, toUInt64(sumMerge(clicks)) AS c
    FROM tally.campaigns_by_hour
    WHERE ? < ? AND tenant = ? AND hour >= ? AND hour < ? AND (hour < ? OR hour >= ?)
    GROUP BY campaign_id
    UNION ALL
    SELECT campaign_id, toUInt64(sumMerge(clicks)) AS c
    FROM tally.campaigns_by_minute
    WHERE ? < ? AND tenant = ? AND minute >= ? AND minute < ? AND (minute < ? OR minute >= ?)
    GROUP BY campaign_id
    UNION ALL
    SELECT campaign_id, toUInt64(sum(clicks)) AS c
    FROM tally.clicks_by_second
    WHERE ? < ? AND tenant = ? AND second >= ? AND second < ? AND (second < ? OR second >= ?)
    GROUP BY campaign_id
)
GROUP BY campaign_id
ORDER BY sum(c) DESC, campaign_id ASC
LIMIT ?
