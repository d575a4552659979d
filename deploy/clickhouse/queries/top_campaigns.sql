SELECT
    campaign_id,
    toUInt64(sum(c)) AS clicks,
    toUInt64(sum(s)) AS spend_micros,
    toUInt64(uniqHLL12ArrayMerge(u)) AS users
FROM
(
    SELECT campaign_id, toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s, uniqHLL12ArrayMergeState(users) AS u
    FROM tally.campaigns_by_day
    WHERE ? < ? AND tenant = ? AND campaign_id IN (SELECT toUInt64(arrayJoin(?))) AND day >= ? AND day < ? AND (day < ? OR day >= ?)
    GROUP BY campaign_id
    UNION ALL
    SELECT campaign_id, toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s, uniqHLL12ArrayMergeState(users) AS u
    FROM tally.campaigns_by_hour
    WHERE ? < ? AND tenant = ? AND campaign_id IN (SELECT toUInt64(arrayJoin(?))) AND hour >= ? AND hour < ? AND (hour < ? OR hour >= ?)
    GROUP BY campaign_id
    UNION ALL
    SELECT campaign_id, toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s, uniqHLL12ArrayMergeState(users) AS u
    FROM tally.campaigns_by_minute
    WHERE ? < ? AND tenant = ? AND campaign_id IN (SELECT toUInt64(arrayJoin(?))) AND minute >= ? AND minute < ? AND (minute < ? OR minute >= ?)
    GROUP BY campaign_id
    UNION ALL
    SELECT campaign_id, toUInt64(sum(clicks)) AS c, toUInt64(sum(spend_micros)) AS s, uniqHLL12ArrayState(user_hashes) AS u
    FROM tally.clicks_by_second
    WHERE ? < ? AND tenant = ? AND campaign_id IN (SELECT toUInt64(arrayJoin(?))) AND second >= ? AND second < ? AND (second < ? OR second >= ?)
    GROUP BY campaign_id
)
GROUP BY campaign_id
ORDER BY clicks DESC, campaign_id ASC
