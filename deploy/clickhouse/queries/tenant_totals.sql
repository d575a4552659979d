SELECT
    toUInt64(sum(c)) AS clicks,
    toUInt64(sum(s)) AS spend_micros,
    toUInt64(uniqHLL12ArrayMerge(u)) AS users
FROM
(
    SELECT toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s, uniqHLL12ArrayMergeState(users) AS u
    FROM tally.campaigns_by_day
    WHERE ? < ? AND tenant = ? AND day >= ? AND day < ? AND (day < ? OR day >= ?)
    UNION ALL
    SELECT toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s, uniqHLL12ArrayMergeState(users) AS u
    FROM tally.campaigns_by_hour
    WHERE ? < ? AND tenant = ? AND hour >= ? AND hour < ? AND (hour < ? OR hour >= ?)
    UNION ALL
    SELECT toUInt64(sumMerge(clicks)) AS c, toUInt64(sumMerge(spend_micros)) AS s, uniqHLL12ArrayMergeState(users) AS u
    FROM tally.campaigns_by_minute
    WHERE ? < ? AND tenant = ? AND minute >= ? AND minute < ? AND (minute < ? OR minute >= ?)
)
