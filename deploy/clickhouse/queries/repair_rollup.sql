INSERT INTO tally.{table}
SELECT
    tenant,
    ad_id,
    campaign_id,
    {bucket},
    sumState(toUInt64(landing_clicks - rollup_clicks)) AS clicks,
    sumState(toUInt64(landing_spend - rollup_spend)) AS spend_micros,
    uniqHLL12ArrayState(landing_users) AS users
FROM ({gap})
GROUP BY tenant, ad_id, campaign_id, {bucket}
