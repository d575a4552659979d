SELECT
    toUInt32(hour) AS t,
    ad_id,
    arraySort(groupUniqArray(campaign_id)) AS campaigns
FROM tally.campaigns_by_hour
WHERE tenant = ? AND hour >= ? AND hour < ?
GROUP BY t, ad_id
ORDER BY t, ad_id
