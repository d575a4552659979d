SELECT
    tenant,
    toUInt32(toStartOfHour({bucket})) AS bucket,
    toUInt64(sum(landing_clicks - rollup_clicks)) AS missing_clicks,
    toUInt64(0) AS missing_spend_micros
FROM
(
    SELECT
        tenant,
        ad_id,
        reason,
        {fn}(toDateTime(intDiv(ts_ms, 1000), 'UTC')) AS {bucket},
        count() AS landing_clicks
    FROM tally.refused_events
    WHERE ts_ms >= ? * 1000 AND ts_ms < ? * 1000
      AND (edge, batch_seq) IN
      (
          SELECT edge, seq
          FROM tally.batches
          WHERE state = 2 AND recorded_at < toDateTime(?) AND max_second >= toDateTime(?) AND min_second < toDateTime(?)
      )
    GROUP BY tenant, ad_id, reason, {bucket}
) AS landing
ANY LEFT JOIN
(
    SELECT
        tenant,
        ad_id,
        reason,
        {bucket},
        sum(clicks) AS rollup_clicks
    FROM tally.{table}
    WHERE {bucket} >= ? AND {bucket} < ?
    GROUP BY tenant, ad_id, reason, {bucket}
) AS rollup USING (tenant, ad_id, reason, {bucket})
WHERE landing_clicks > rollup_clicks
GROUP BY tenant, bucket
ORDER BY tenant, bucket
