SELECT DISTINCT toUInt32(hour) AS hour
FROM tally.billing_final_hours
WHERE hour >= ? AND hour < ?
ORDER BY hour
