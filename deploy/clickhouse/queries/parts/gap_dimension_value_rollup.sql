-- What a dimension value rollup (no ad_id) lacks against click_dimensions, per rollup
-- key (batches committed before the cutoff only): gap_dimension_rollup.sql without
-- ad_id. Read by repair_dimension_value_rollup.sql and drift_dimension_rollup.sql.
SELECT tenant, dimension, value, {bucket}, landing_clicks, rollup_clicks, landing_spend, rollup_spend
FROM
(
    SELECT
        tenant,
        dimension,
        value,
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
    GROUP BY tenant, dimension, value, {bucket}
) AS landing
ANY LEFT JOIN
(
    SELECT
        tenant,
        dimension,
        value,
        {bucket},
        sum(clicks) AS rollup_clicks,
        sum(spend_micros) AS rollup_spend
    FROM tally.{table}
    WHERE {bucket} >= ? AND {bucket} < ?
    GROUP BY tenant, dimension, value, {bucket}
) AS rollup USING (tenant, dimension, value, {bucket})
WHERE landing_clicks > rollup_clicks AND landing_spend >= rollup_spend
