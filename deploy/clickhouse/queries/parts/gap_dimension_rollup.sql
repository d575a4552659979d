-- What a dimension rollup lacks against click_dimensions, per rollup key
-- (batches committed before the cutoff only). Read by repair_dimension_rollup.sql
-- and drift_dimension_rollup.sql (their FROM).
SELECT tenant, dimension, value, ad_id, {bucket}, landing_clicks, rollup_clicks, landing_spend, rollup_spend
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
