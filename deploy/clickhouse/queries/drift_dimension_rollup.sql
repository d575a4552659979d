SELECT
    tenant,
    toUInt32(toStartOfHour({bucket})) AS bucket,
    toUInt64(sum(landing_clicks - rollup_clicks)) AS missing_clicks,
    toUInt64(sum(landing_spend - rollup_spend)) AS missing_spend_micros
FROM
(
    SELECT
        tenant,
        dimension,
        value,
        ad_id,
        {fn}(second) AS {bucket},
        sum(clicks) AS landing_clicks,
        sum(spend_micros) AS landing_spend
    FROM tally.click_dimensions
    WHERE second >= ? AND second < ?
      AND (edge, batch_seq) IN
      (
          SELECT edge, seq
          FROM tally.batches
          WHERE state = 2 AND recorded_at < toDateTime(?) AND max_second >= toDateTime(?) AND min_second < toDateTime(?)
      )
    GROUP BY tenant, dimension, value, ad_id, {bucket}
) AS landing
ANY LEFT JOIN
(
    SELECT
        tenant,
        dimension,
        value,
        ad_id,
        {bucket},
        sum(clicks) AS rollup_clicks,
        sum(spend_micros) AS rollup_spend
    FROM tally.{table}
    WHERE {bucket} >= ? AND {bucket} < ?
    GROUP BY tenant, dimension, value, ad_id, {bucket}
) AS rollup USING (tenant, dimension, value, ad_id, {bucket})
WHERE landing_clicks > rollup_clicks AND landing_spend >= rollup_spend
GROUP BY tenant, bucket
ORDER BY tenant, bucket
