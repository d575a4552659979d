SELECT
    first_tenant AS tenant,
    toUInt32(first_hour) AS hour,
    first_ad AS ad_id,
    toInt64(count()) AS clicks,
    toInt64(sum(first_cost)) AS spend_micros
FROM
(
    SELECT
        tenant AS first_tenant,
        argMin(ad_id, accepted_ms) AS first_ad,
        argMin(cost_micros, accepted_ms) AS first_cost,
        toStartOfHour(argMin(second, accepted_ms)) AS first_hour
    FROM tally.click_records
    WHERE second >= ? AND second < ? AND verdict = 0
    GROUP BY tenant, id_hi, id_lo
)
GROUP BY tenant, hour, ad_id
ORDER BY tenant, hour, ad_id
