SELECT
    toUInt32({bucket}) AS t,
    toUInt64(sum(clicks)) AS filtered
FROM tally.refused_by_{bucket}
WHERE tenant = ? AND {bucket} >= ? AND {bucket} < ? AND reason LIKE 'filtered:%'
    AND ad_id GLOBAL IN
    (
        SELECT ad_id
        FROM tally.campaigns_by_{bucket}
        WHERE tenant = ? AND {bucket} >= ? AND {bucket} < ?
        GROUP BY ad_id
        HAVING min(campaign_id) = ? AND max(campaign_id) = ?
    )
GROUP BY t
ORDER BY t
