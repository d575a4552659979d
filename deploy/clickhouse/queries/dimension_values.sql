SELECT
    value,
    toUInt64(sum(c)) AS clicks,
    toUInt64(sum(s)) AS spend_micros
FROM
(
    SELECT value, toUInt64(sum(clicks)) AS c, toUInt64(sum(spend_micros)) AS s
    FROM tally.dimension_values_by_day
    WHERE ? < ? AND tenant = ? AND dimension = ? AND day >= ? AND day < ? AND (day < ? OR day >= ?)
    GROUP BY value
    UNION ALL
    SELECT value, toUInt64(sum(clicks)) AS c, toUInt64(sum(spend_micros)) AS s
    FROM tally.dimension_values_by_hour
    WHERE ? < ? AND tenant = ? AND dimension = ? AND hour >= ? AND hour < ? AND (hour < ? OR hour >= ?)
    GROUP BY value
    UNION ALL
    SELECT value, toUInt64(sum(clicks)) AS c, toUInt64(sum(spend_micros)) AS s
    FROM tally.dimension_values_by_minute
    WHERE ? < ? AND tenant = ? AND dimension = ? AND minute >= ? AND minute < ? AND (minute < ? OR minute >= ?)
    GROUP BY value
)
GROUP BY value
ORDER BY clicks DESC, value
LIMIT ?
