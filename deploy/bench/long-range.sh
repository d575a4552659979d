#!/usr/bin/env bash
# Long-range reads, old queries against planned ones (core/service/src/read_plan.rs), in one
# run on one private ClickHouse 18.16 whose rollups are filled directly with synthetic rows
# (INSERT ... SELECT FROM numbers(), no POP): ADS ads with one row per ad and minute over
# DAYS days in clicks_by_minute (10,000 ads: 14.4M rows a day, the 1.44B clicks a day of
# issue 12 at 100 clicks per row), the matching hour and day rows, the same rows in the
# campaign rollups (campaigns_by_*), and DIM_ROWS dimension rows per minute (20 values x
# ads) in dimensions_by_*. Then, for 24 h (step 1m, a range
# ragged by minutes) and 30 days (step 1h, the finest step the API allows over 30 days,
# ragged by hours), it times top ads, dimension values and an ad's series totals:
# the text of these queries before plans (git REV, default the commit before read plans)
# bound to one rollup, and today's planned query bound as the store binds it, and checks
# that both answer the same. Times are the server's query_duration_ms (query_log), RUNS
# runs each: min and median, with the rows read.
# Usage: deploy/bench/long-range.sh [ads] [days] [runs]   (days >= 31 for the 30-day case)
set -euo pipefail
cd "$(dirname "$0")/../.."
ADS="${1:-10000}" DAYS="${2:-31}" RUNS="${3:-5}"
REV="${REV:-af2ca05^}"
dir="$(mktemp -d /var/tmp/tally-long-range.XXXXXX)"
. deploy/bench/lib/private-clickhouse.sh
private_clickhouse "$dir"
for q in top_ads dimension_values total_rollup; do git show "$REV:deploy/clickhouse/queries/$q.sql" >"$dir/old_$q.sql"; done

python3 - "$HTTP" "$ADS" "$DAYS" "$RUNS" "$dir" <<'EOF'
import os, sys, time
sys.path[:0] = ["deploy/clickhouse", "deploy/bench/lib"]
import check_modern as cm
import timed_sql

http, ads, days, runs, dirpath = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
B = cm.ts(2026, 10, 1)  # data spans [B, B + days)
DIM_VALUES, DIM_ADS = 20, 50

server = timed_sql.Server(http)
sql = server.sql
server.install_schema()

USERS = "[[toUInt32(ad * 2 + 1), toUInt32(ad * 2 + 2)]]"


def fill_clicks(table, bucket_s, day):
    """One row per ad and bucket of the day; an ad's clicks per minute are fixed, so
    every rollup holds the sums of the finer ones (and the same two users)."""
    buckets, clicks = 86400 // bucket_s, f"(50 + (ad * 7919) % 101) * {bucket_s // 60}"
    return (f"INSERT INTO tally.{table} SELECT 'bench' AS tenant, ad, toUInt64(0) AS campaign_id, "
            f"toDateTime({day} + (number % {buckets}) * {bucket_s}, 'UTC'), arrayReduce('sumState', [toUInt64({clicks})]), "
            f"arrayReduce('sumState', [toUInt64({clicks} * 1000)]), arrayReduce('uniqHLL12ArrayState', {USERS}) "
            f"FROM (SELECT number, intDiv(number, {buckets}) AS ad FROM numbers({ads * buckets}))")


def fill_dims(table, bucket_s, day):
    per_bucket, k = DIM_VALUES * DIM_ADS, bucket_s // 60
    return (f"INSERT INTO tally.{table} SELECT 'bench', 'country', concat('v', toString(10 + v)) AS value, "
            f"toUInt64(number % {DIM_ADS}) AS ad_id, toDateTime({day} + intDiv(number, {per_bucket}) * {bucket_s}, 'UTC'), "
            f"toUInt64((10 + v) * {k}), toUInt64((10 + v) * {k} * 100) "
            f"FROM (SELECT number, intDiv(number % {per_bucket}, {DIM_ADS}) AS v FROM numbers({per_bucket * (86400 // bucket_s)}))")


started = time.time()
for d in range(days):
    day = B + d * 86400
    for size, bucket in ((60, "minute"), (3600, "hour"), (86400, "day")):
        for family in ("clicks", "campaigns"):  # top ads reads campaigns_by_*, an ad's series clicks_by_*
            sql(fill_clicks(family + "_by_" + bucket, size, day))
        sql(fill_dims("dimensions_by_" + bucket, size, day))
print("filled %d days x %d ads in %.0f s:" % (days, ads, time.time() - started))
print(sql("SELECT table, sum(rows) AS n_rows, count() AS parts, formatReadableSize(sum(bytes)) AS size FROM system.parts "
          "WHERE active AND database = 'tally' AND rows > 0 GROUP BY table ORDER BY table FORMAT PrettyCompactNoEscapes"))

old = {q: open(os.path.join(dirpath, "old_%s.sql" % q)).read() for q in ("top_ads", "dimension_values", "total_rollup")}
new = {q: cm.read("queries/%s.sql" % q) for q in ("top_ads", "dimension_values", "totals")}
BUCKET = {60: "minute", 3600: "hour", 86400: "day"}

end = B + days * 86400
cases = [  # (name, from, to, step seconds)
    ("24 h, step 1m", end - 86400 - 7 * 3600 - 7 * 60, end - 7 * 3600 - 7 * 60, 60),
    ("30 days, step 1h", end - 30 * 86400 - 13 * 3600, end - 13 * 3600, 3600),
]


def run(name, text):
    return server.timed(name, text, runs)


for label, frm, to, step in cases:
    if frm < B:
        print("%s: needs %d days of data, skipped" % (label, (to - frm) // 86400 + 1))
        continue
    bucket = BUCKET[step]
    table = "clicks_by_" + bucket
    plan, one = cm.plan(frm, to, 60), cm.single(frm, to, 60)
    queries = [  # (name, what the old query reads, old, new)
        ("top ads (limit 10)", "clicks_by_minute", cm.bind(old["top_ads"], ["bench", frm, to, 10]),
         cm.bind(new["top_ads"], cm.plan_binds(cm.plan(frm, to, 1), ["bench"]) + [10])),
        ("dimension values (limit 10)", "dimensions_by_" + bucket, cm.bind(old["dimension_values"], ["bench", "country", frm, to, 10], {"bucket": bucket}),
         cm.bind(new["dimension_values"], cm.plan_binds(plan, ["bench", "country"], 3) + [10])),
        ("series totals of one ad", table, cm.bind(old["total_rollup"], ["bench", 77, frm, to], {"table": table, "bucket": bucket}),
         cm.bind(new["totals"], cm.plan_binds(plan, ["bench", 77], 3))),
    ]
    print("== %s: [%d, %d), plan %s" % (label, frm, to, [r for r in plan if r[0] < r[1]]))
    for name, reads, old_sql, new_sql in queries:
        a_old, t_old = run(name + " old", old_sql)
        a_new, t_new = run(name + " new", new_sql)
        same = "same answer" if a_old == a_new else "DIFFERENT ANSWERS:\n%s\n%s" % (a_old, a_new)
        print("%-28s old: %s  (%s)\n%-28s new: %s  (planned) %s" % (name, t_old, reads, "", t_new, same))
EOF
