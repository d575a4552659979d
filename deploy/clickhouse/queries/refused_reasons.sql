SELECT
    reason,
    toUInt64(sum(c)) AS clicks
FROM
(
    SELECT reason, toUInt64(sum(clicks)) AS c
    FROM tally.refused_by_day
    WHERE ? < ? AND tenant = ? AND day >= ? AND day < ? AND (day < ? OR day >= ?)
    GROUP BY reason
    UNION ALL
    SELECT reason, toUInt64(sum(clicks)) AS c
    FROM tally.refused_by_hour
    WHERE ? < ? AND tenant = ? AND hour >= ? AND hour < ? AND (hour < ? OR hour >= ?)
    GROUP BY reason
    UNION ALL
    SELECT reason, toUInt64(sum(clicks)) AS c
    FROM tally.refused_by_minute
    WHERE ? < ? AND tenant = ? AND minute >= ? AND minute < ? AND (minute < ? OR minute >= ?)
    GROUP BY reason
)
GROUP BY reason
ORDER BY clicks DESC, reason
LIMIT ?
