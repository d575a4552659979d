SELECT
    tenant,
    toUInt32(hour) AS hour,
    ad_id,
    toInt64(sum(clicks)) AS billed_clicks,
    toInt64(sum(spend_micros)) AS billed_spend_micros,
    toUInt64(countIf(kind = 'adjustment')) AS adjustments
FROM tally.billing_statements
WHERE hour >= ? AND hour < ?
GROUP BY tenant, hour, ad_id
ORDER BY tenant, hour, ad_id
