#!/usr/bin/env bash
# Campaign reads over long ranges, the ad-first click rollups (clicks_by_*, sorted
# (tenant, ad_id, time, campaign_id)) against the campaign rollups of migration 0007
# (campaigns_by_*, sorted (tenant, time, campaign_id, ad_id)), in one run on one private
# ClickHouse 18.16 whose rollups are filled directly with the same synthetic rows
# (INSERT ... SELECT FROM numbers(), no POP): ADS ads, one row per ad and hour and per ad and
# day over DAYS days, and per ad and minute over the last 2 days only (10,000 ads: 14.4M
# minute rows a day, the 1.44B clicks a day of issue 12 at 100 clicks per row; the planned
# reads below touch minutes only at the edges of the 24 h case, and fewer minute rows only
# make the ad-sorted tables look better), CAMPAIGNS campaigns (campaign = ad mod
# CAMPAIGNS, so a campaign's ads are spread over the ad-sorted table). For 24 h (step 1m,
# ragged by minutes) and 30 days (step 1h, ragged by hours) it times the campaign queries
# exactly as the store binds them (deploy/clickhouse/queries/, planned by
# core/service/src/read_plan.rs) on both table sets, top ads included (which read
# clicks_by_* until 2026-12-02; top campaigns only on campaigns_by_*, below), and checks
# that both answer the same. Times are the
# server's query_duration_ms (query_log): min and median of RUNS runs, with the CPU time
# the query's threads used (user + system; on a shared machine wall time includes waiting
# for a core) and the rows read.
# It also times top dimension values on dimensions_by_* (sorted (tenant, dimension, time,
# value, ad_id)) with a row per ad and value (DIM_VALUES countries) and bucket: day rows
# over DAYS days, hour rows on the first and the last 2 days, minute rows in the two hours
# where the 24 h case is ragged. Those are the only buckets the two cases read, and the
# time-first sort key skips the others, so the missing buckets cost only fill time.
# dimension_values_by_* (migration 0010, no ad_id) are filled from those rows summed over
# the ads, so both hold the same clicks; the store reads them since 2026-12-02.
# Top campaigns is timed as the store reads it (campaign_ranking, then top_campaigns of
# the ranked campaigns), against the one-query text at git BASE (default: the commit before
# the two steps), which must answer the same; so is dimension values if its text changed.
# Usage: deploy/bench/campaigns.sh [ads] [days] [runs] [campaigns]   (days >= 31 for the 30-day case)
set -euo pipefail
cd "$(dirname "$0")/../.."
ADS="${1:-10000}" DAYS="${2:-31}" RUNS="${3:-5}" CAMPAIGNS="${4:-1000}" DIM_VALUES="${DIM_VALUES:-20}"
BASE="${BASE:-0fef20c}"
dir="$(mktemp -d /var/tmp/tally-campaigns.XXXXXX)"
. deploy/bench/lib/private-clickhouse.sh
private_clickhouse "$dir"
mkdir "$dir/base"
for q in top_campaigns dimension_values; do git show "$BASE:deploy/clickhouse/queries/$q.sql" >"$dir/base/$q.sql"; done

python3 - "$HTTP" "$ADS" "$DAYS" "$RUNS" "$CAMPAIGNS" "$DIM_VALUES" "$dir/base" "$BASE" <<'PYEOF'
import os, sys, time
sys.path[:0] = ["deploy/clickhouse", "deploy/bench/lib"]
import check_modern as cm
import timed_sql

http, ads, days, runs, campaigns, dim_values = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
base_dir, base_rev = sys.argv[7], sys.argv[8]
B = cm.ts(2026, 10, 1)  # data spans [B, B + days)

server = timed_sql.Server(http)
sql = server.sql
server.install_schema()


def fill(table, bucket_s, day):
    """One row per ad and bucket of the day, the same in both table sets; an ad's clicks
    per minute are fixed, so every rollup holds the sums of the finer ones."""
    buckets, clicks = 86400 // bucket_s, f"(50 + (ad * 7919) % 101) * {bucket_s // 60}"
    return (f"INSERT INTO tally.{table} SELECT 'bench' AS tenant, ad, toUInt64(ad % {campaigns}) AS campaign_id, "
            f"toDateTime({day} + (number % {buckets}) * {bucket_s}, 'UTC'), arrayReduce('sumState', [toUInt64({clicks})]), "
            f"arrayReduce('sumState', [toUInt64({clicks} * 1000)]), "
            f"arrayReduce('uniqHLL12ArrayState', [[toUInt32(ad * 2 + 1), toUInt32(ad * 2 + 2)]]) "
            f"FROM (SELECT number, intDiv(number, {buckets}) AS ad FROM numbers({ads * buckets}))")


def fill_dims(table, bucket_s, start, n_buckets):
    """One row per ad, value and bucket from `start`, clicks fixed per ad, value and minute."""
    per, k = dim_values * ads, bucket_s // 60
    return (f"INSERT INTO tally.{table} SELECT 'bench', 'country', concat('v', toString(10 + v)) AS value, ad AS ad_id, "
            f"toDateTime({start} + intDiv(number, {per}) * {bucket_s}, 'UTC'), toUInt64((10 + v + ad % 7) * {k}), "
            f"toUInt64((10 + v + ad % 7) * {k} * 100) "
            f"FROM (SELECT number, intDiv(number % {per}, {ads}) AS v, number % {ads} AS ad FROM numbers({per * n_buckets}))")


started = time.time()
for d in range(days):
    for size, bucket in ((60, "minute"), (3600, "hour"), (86400, "day")):
        if size == 60 and d < days - 2:
            continue
        for family in ("clicks", "campaigns"):
            sql(fill("%s_by_%s" % (family, bucket), size, B + d * 86400))
end = B + days * 86400
sql(fill_dims("dimensions_by_day", 86400, B, days))
for d in sorted({0, days - 2, days - 1}):
    sql(fill_dims("dimensions_by_hour", 3600, B + d * 86400, 24))
for hour in (end - 86400 - 8 * 3600, end - 8 * 3600):  # the ragged hours of the 24 h case below
    sql(fill_dims("dimensions_by_minute", 60, hour, 60))
for bucket in ("minute", "hour", "day"):
    sql(f"INSERT INTO tally.dimension_values_by_{bucket} SELECT tenant, dimension, value, {bucket}, sum(clicks), "
        f"sum(spend_micros) FROM tally.dimensions_by_{bucket} GROUP BY tenant, dimension, value, {bucket}")
print("filled %d days x %d ads (%d campaigns; minutes: the last 2 days; %d dimension values) in %.0f s:"
      % (days, ads, campaigns, dim_values, time.time() - started), flush=True)
print(sql("SELECT table, sum(rows) AS n_rows, count() AS parts, formatReadableSize(sum(bytes)) AS size FROM system.parts "
          "WHERE active AND database = 'tally' AND rows > 0 GROUP BY table ORDER BY table FORMAT PrettyCompactNoEscapes"))


def run(name, text):
    return server.timed(name, text, runs)


q = {n: cm.read("queries/%s.sql" % n) for n in ("campaign_ranking", "top_campaigns", "campaign_ads", "campaign_totals", "campaign_series",
                                                 "top_ads", "dimension_values")}
base = {n: open(os.path.join(base_dir, n + ".sql")).read() for n in ("top_campaigns", "dimension_values")}
ad_first = lambda text: text.replace("tally.campaigns_by_", "tally.clicks_by_")


def ranking(text, plan_binds):
    """A ranking's text bound to the plan as often as the text reads it, then the limit 10."""
    reads = (text.count("?") - 1) // len(plan_binds)
    return cm.bind(text, plan_binds * reads + [10])


cases = [  # (name, from, to, step seconds)
    ("24 h, step 1m", end - 86400 - 7 * 3600 - 7 * 60, end - 7 * 3600 - 7 * 60, 60),
    ("30 days, step 1h", end - 30 * 86400 - 13 * 3600, end - 13 * 3600, 3600),
]
CAMPAIGN = 77
for label, frm, to, step in cases:
    if frm < B:
        print("%s: needs %d days of data, skipped" % (label, (to - frm) // 86400 + 1))
        continue
    bucket = {60: "minute", 3600: "hour"}[step]
    plan = cm.plan(frm, to, 1)
    queries = [  # (name, the store's text over campaigns_by_*; ad_first gives the same over clicks_by_*)
        ("ads of a campaign (limit 10)", cm.bind(q["campaign_ads"], cm.plan_binds(plan, ["bench", CAMPAIGN]) + [10])),
        ("campaign totals", cm.bind(q["campaign_totals"], cm.plan_binds(cm.plan(frm, to, 60), ["bench", CAMPAIGN], 3))),
        ("campaign series", cm.bind(q["campaign_series"], ["bench", CAMPAIGN, frm, to], {"bucket": bucket})),
        ("top ads (limit 10)", ranking(q["top_ads"], cm.plan_binds(plan, ["bench"]))),
    ]
    print("== %s: [%d, %d), plan %s" % (label, frm, to, [r for r in plan if r[0] < r[1]]))
    for name, text in queries:
        a_new, t_new = run(name + " campaigns", text)
        a_old, t_old = run(name + " clicks", ad_first(text))
        same = "same answer" if a_old == a_new else "DIFFERENT ANSWERS:\n%s\n%s" % (a_old, a_new)
        print("%-30s clicks_by_*:    %s\n%-30s campaigns_by_*: %s  %s" % (name, t_old, "", t_new, same))
    # Top campaigns as the store reads them: the ranking, then the totals of its campaigns.
    a_old, t_old = run("top campaigns before", ranking(base["top_campaigns"], cm.plan_binds(plan, ["bench"])))
    a_rank, t_rank = run("campaign ranking", cm.bind(q["campaign_ranking"], cm.plan_binds(plan, ["bench"]) + [10]))
    top = [int(c) for c in a_rank.split()]
    a_new, t_new = run("top campaigns", cm.bind(q["top_campaigns"], cm.plan_binds(plan, ["bench", top])))
    same = "same answer" if a_old == a_new else "DIFFERENT ANSWERS:\n%s\n%s" % (a_old, a_new)
    print("%-30s before (%s): %s\n%-30s today, ranking: %s\n%-30s today, totals:  %s  %s"
          % ("top campaigns (limit 10)", base_rev, t_old, "", t_rank, "", t_new, same))
    # The totals step at the API's largest limit, its IN set against has(), which scans the ids per row.
    a_rank, t_rank = run("campaign ranking 1000", cm.bind(q["campaign_ranking"], cm.plan_binds(plan, ["bench"]) + [1000]))
    top = [int(c) for c in a_rank.split()]
    has_text = q["top_campaigns"].replace("campaign_id IN (SELECT toUInt64(arrayJoin(?)))", "has(?, campaign_id)")
    a_has, t_has = run("top campaigns totals has()", cm.bind(has_text, cm.plan_binds(plan, ["bench", top])))
    a_in, t_in = run("top campaigns totals IN", cm.bind(q["top_campaigns"], cm.plan_binds(plan, ["bench", top])))
    same = "same answer" if a_has == a_in else "DIFFERENT ANSWERS"
    print("%-30s ranking: %s\n%-30s totals, has():  %s\n%-30s totals, IN set: %s  %s"
          % ("top campaigns (limit 1000)", t_rank, "", t_has, "", t_in, same))
    name, binds = "dimension values (limit 10)", cm.plan_binds(cm.plan(frm, to, 60), ["bench", "country"], 3)
    a_new, t_new = run(name + " today", ranking(q["dimension_values"], binds))
    if base["dimension_values"] == q["dimension_values"]:
        print("%-30s today:          %s  (same text at %s)" % (name, t_new, base_rev))
    else:
        a_old, t_old = run(name + " before", ranking(base["dimension_values"], binds))
        same = "same answer" if a_old == a_new else "DIFFERENT ANSWERS:\n%s\n%s" % (a_old, a_new)
        print("%-30s before:         %s\n%-30s today:          %s  %s" % (name, t_old, "", t_new, same))
PYEOF
