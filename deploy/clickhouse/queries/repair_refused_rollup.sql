INSERT INTO tally.{table} (tenant, ad_id, reason, {bucket}, clicks)
SELECT tenant, ad_id, reason, {bucket}, toUInt64(landing_clicks - rollup_clicks) AS clicks
FROM ({gap})
