-- What a refused rollup lacks against refused_events, per rollup key (batches
-- committed before the cutoff only). Read by repair_refused_rollup.sql and
-- drift_refused_rollup.sql (their FROM).
SELECT tenant, ad_id, reason, {bucket}, landing_clicks, rollup_clicks
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
