-- What a click rollup lacks against clicks_by_second, per rollup key: the rows of
-- batches committed before the cutoff (see core/service/src/heal), landing side by
-- side with the rollup. Read by repair_rollup.sql (adds it) and drift_rollup.sql
-- (measures it) (their FROM).
SELECT tenant, ad_id, campaign_id, {bucket}, landing_clicks, rollup_clicks, landing_spend, rollup_spend, landing_users
FROM
(
    SELECT
        tenant,
        ad_id,
        campaign_id,
        {fn}(second) AS {bucket},
        sum(clicks) AS landing_clicks,
        sum(spend_micros) AS landing_spend,
        groupUniqArrayArray(user_hashes) AS landing_users
    FROM tally.clicks_by_second
    WHERE second >= ? AND second < ?
      AND (edge, batch_seq) IN
      (
          SELECT edge, seq
          FROM tally.batches
          WHERE state = 2 AND recorded_at < toDateTime(?) AND max_second >= toDateTime(?) AND min_second < toDateTime(?)
      )
    GROUP BY tenant, ad_id, campaign_id, {bucket}
) AS landing
ANY LEFT JOIN
(
    SELECT
        tenant,
        ad_id,
        campaign_id,
        {bucket},
        sumMerge(clicks) AS rollup_clicks,
        sumMerge(spend_micros) AS rollup_spend
    FROM tally.{table}
    WHERE {bucket} >= ? AND {bucket} < ?
    GROUP BY tenant, ad_id, campaign_id, {bucket}
) AS rollup USING (tenant, ad_id, campaign_id, {bucket})
WHERE landing_clicks > rollup_clicks AND landing_spend >= rollup_spend
