SELECT
    toUInt32(first_hour) AS hour,
    first_ad AS ad_id,
    toInt64(count()) AS clicks,
    toInt64(sum(first_cost)) AS spend_micros
FROM
(
    SELECT
        argMin(ad_id, accepted_ms) AS first_ad,
        argMin(cost_micros, accepted_ms) AS first_cost,
        toStartOfHour(argMin(second, accepted_ms)) AS first_hour
    FROM tally.click_records
    WHERE tenant = ? AND second >= ? AND second < ? AND verdict = 0
    GROUP BY id_hi, id_lo
)
GROUP BY hour, ad_id
ORDER BY hour, ad_id
