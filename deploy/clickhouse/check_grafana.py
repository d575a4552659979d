"""Checks the SQL of the Grafana dashboard (deploy/grafana/dashboards/*.json), run by
check_modern.py on chdb and on 18.16 with its sample data (`cm` is that module).

Every panel target's `rawSql` and every query variable's `query` is taken from the
JSON, expanded as Grafana and the ClickHouse data source plugin
(grafana-clickhouse-datasource v4, pkg/macros/macros.go) expand it, and run for
several time ranges, intervals and tenants. Answers are compared with the sample data:
rankings with the API's truth, series point by point.

Expansion (see deploy/grafana/README.md):
  1. Grafana replaces dashboard variables: `${name}` and `$name` by the value as text.
  2. The plugin replaces its macros, with the panel's range [from, to] in ms (seconds
     are the ms divided by 1000, rounded down) and its interval:
       $__fromTime / $__toTime          toDateTime(<from s>) / toDateTime(<to s>)
       $__fromTime_ms / $__toTime_ms    fromUnixTimestamp64Milli(<ms>)
       $__timeFilter(c)                 c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)
       $__timeFilter_ms(c)              the same with fromUnixTimestamp64Milli(<ms>)
       $__dateFilter(c)                 c >= toDate('<from day>') AND c <= toDate('<to day>')
       $__dateTimeFilter(d, c), $__dt   (d as $__dateFilter) AND (c as $__timeFilter)
       $__timeInterval(c)               toStartOfInterval(toDateTime(c), INTERVAL <interval s> second)
       $__timeInterval_ms(c)            toStartOfInterval(toDateTime64(c, 3), INTERVAL <interval ms> millisecond)
       $__interval_s                    the interval in whole seconds, at least 1
Any other `$` left in the text fails the check.
"""

import calendar
import glob
import json
import os
import re
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARDS = os.path.join(HERE, "..", "grafana", "dashboards")
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "tally-clickhouse"}


def fail(msg):
    raise AssertionError(msg)


def expand(sql, from_ms, to_ms, interval_ms, variables):
    for name, value in variables.items():
        sql = sql.replace("${%s}" % name, value)
        sql = re.sub(r"\$%s\b" % re.escape(name), lambda _m: value, sql)
    f, t = from_ms // 1000, to_ms // 1000
    interval_s = max(interval_ms // 1000, 1)
    day = lambda s: time.strftime("%Y-%m-%d", time.gmtime(s))
    dt = lambda s: "toDateTime(%d)" % s
    dt64 = lambda ms: "fromUnixTimestamp64Milli(%d)" % ms
    with_args = {
        "timeFilter_ms": lambda c: "%s >= %s AND %s <= %s" % (c, dt64(from_ms), c, dt64(to_ms)),
        "timeFilter": lambda c: "%s >= %s AND %s <= %s" % (c, dt(f), c, dt(t)),
        "dateFilter": lambda c: "%s >= toDate('%s') AND %s <= toDate('%s')" % (c, day(f), c, day(t)),
        "dateTimeFilter": lambda d, c: "(%s >= toDate('%s') AND %s <= toDate('%s')) AND (%s >= %s AND %s <= %s)" % (
            d, day(f), d, day(t), c, dt(f), c, dt(t)),
        "timeInterval_ms": lambda c: "toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)" % (c, max(interval_ms, 1)),
        "timeInterval": lambda c: "toStartOfInterval(toDateTime(%s), INTERVAL %d second)" % (c, interval_s),
    }
    with_args["dt"] = with_args["dateTimeFilter"]
    bare = {"fromTime_ms": dt64(from_ms), "toTime_ms": dt64(to_ms), "fromTime": dt(f), "toTime": dt(t),
            "interval_s": str(interval_s)}

    def call(m):
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2).strip() else []
        return with_args[m.group(1)](*args)

    names = "|".join(sorted(with_args, key=len, reverse=True))
    sql = re.sub(r"\$__(%s)\(([^()]*)\)" % names, call, sql)
    sql = re.sub(r"\$__(%s)\b" % "|".join(sorted(bare, key=len, reverse=True)), lambda m: bare[m.group(1)], sql)
    if "$" in sql:
        fail("unexpanded macro or variable in: %s" % sql)
    return sql


def check_provisioning():
    """The provisioned data source is the one the dashboards name; a dashboards provider exists."""
    prov = os.path.join(HERE, "..", "grafana", "provisioning")
    with open(os.path.join(prov, "datasources", "tally-clickhouse.yaml")) as fh:
        ds = fh.read()
    for key in ("uid", "type"):
        if not re.search(r"^\s+%s: %s$" % (key, re.escape(DATASOURCE[key])), ds, re.M):
            fail("provisioning/datasources/tally-clickhouse.yaml: %s is not %s" % (key, DATASOURCE[key]))
    with open(os.path.join(prov, "dashboards", "tally.yaml")) as fh:
        if not re.search(r"^\s+type: file$", fh.read(), re.M):
            fail("provisioning/dashboards/tally.yaml: no file provider")


def queries():
    """(where, kind, sql) of every target and query variable of every dashboard."""
    files = sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))
    if not files:
        fail("no dashboards in %s" % DASHBOARDS)
    out = []
    for path in files:
        with open(path) as fh:
            board = json.load(fh)
        name = os.path.basename(path)
        for v in board.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                if v.get("datasource") != DATASOURCE:
                    fail("%s variable %s: datasource %s, expected %s" % (name, v["name"], v.get("datasource"), DATASOURCE))
                out.append(("%s variable %s" % (name, v["name"]), "variable " + v["name"], v["query"]))
        for p in board["panels"]:
            for tgt in p.get("targets", []):
                if tgt.get("datasource") != DATASOURCE or tgt.get("editorType") != "sql" or not tgt.get("rawSql"):
                    fail("%s panel %r: every target is raw SQL on %s" % (name, p["title"], DATASOURCE))
                out.append(("%s panel %r" % (name, p["title"]), p["title"], tgt["rawSql"]))
    return out


def select(ck, sql, what):
    """Rows as tuples: integers, floats, DateTime as unix seconds, strings."""
    out = ck.run(sql.rstrip() + " FORMAT TabSeparatedWithNamesAndTypes", what)
    lines = [ln for ln in out.split("\n") if ln]
    types = lines[1].split("\t")

    def value(v, ty):
        if ty.startswith(("UInt", "Int")):
            return int(v)
        if ty.startswith("Float"):
            return float(v)
        if ty.startswith("DateTime"):
            return calendar.timegm(time.strptime(v, "%Y-%m-%d %H:%M:%S"))
        return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "0": "\0"}.get(m.group(1), m.group(1)), v)

    return lines[0].split("\t"), [tuple(value(v, ty) for v, ty in zip(ln.split("\t"), types)) for ln in lines[2:]]


def money(rows, col):
    """Spend in currency units back to micros (exact for the sample's amounts)."""
    return [tuple(round(v * 1e6) if i == col else v for i, v in enumerate(r)) for r in rows]


# Grafana's interval picks the table (the guards in the SQL): below 1 min the landing
# seconds, below 30 min minutes, below 12 h hours, else days; a bucket is the interval,
# at least the table's own.
def series_table(interval_s, finest):
    for size, below in ((1, 60), (60, 1800), (3600, 43200)):
        if size >= finest and interval_s < below:
            return size
    return 86400


def expected_series(items, f, t, interval_s, finest):
    size = series_table(interval_s, finest)
    step = max(interval_s, size)
    acc = {}
    for sec, clicks, spend, users in items:
        b = sec - sec % size
        if b - b % size >= f - f % size and b < t:
            k = b - b % step
            n, s, u = acc.get(k, (0, 0, set()))
            acc[k] = (n + clicks, s + spend, u | set(users))
    return [(k, n, s, len(u)) for k, (n, s, u) in sorted(acc.items())]


def check(ck, cm, campaigns):
    try:
        return check_all(ck, cm, campaigns)
    except AssertionError as e:
        cm.fail("grafana: %s" % e)


def check_all(ck, cm, campaigns):
    check_provisioning()
    found = queries()
    kinds = {kind for _w, kind, _s in found}
    expected_kinds = {"variable tenant", "variable campaign", "variable dimension", "Clicks and users",
                      "Filtered (invalid) clicks", "Top campaigns", "Top ads", "Ads of campaign ${campaign}",
                      "Refused clicks by reason", "Clicks by ${dimension}"}
    if kinds != expected_kinds:
        fail("dashboard queries are %s; this check knows %s: add checks for new panels" % (sorted(kinds), sorted(expected_kinds)))
    ranges = [(cm.D0 * 1000, (cm.D1 + 86400) * 1000), (cm.H0 * 1000 + 4500, cm.H1 * 1000 + 40999),
              ((cm.D0 + 5) * 1000, (cm.D1 + 5 * 3600 + 2) * 1000), ((cm.D1 + 86400) * 1000, (cm.D1 + 2 * 86400) * 1000)]
    landing = lambda tenant: [(r[3], r[4], r[5], r[6]) for r in cm.LANDING if r[0] == tenant]
    filtered = lambda tenant: [(r[4] // 1000, 1, 0, []) for r in cm.REFUSED if r[0] == tenant and r[5].startswith("filtered:")]
    runs = 0
    for tenant in ("t1", "t2", "nobody"):
        for from_ms, to_ms in ranges:
            f, t = from_ms // 1000, to_ms // 1000
            for interval_ms in (1000, 20000, 60000, 300000, 1800000, 3600000, 43200000, 86400000):
                interval_s = interval_ms // 1000
                variables = {"tenant": tenant, "campaign": "100", "dimension": "country"}
                for where, kind, raw in found:
                    if kind.startswith("variable") or (kind not in ("Clicks and users", "Filtered (invalid) clicks") and interval_ms != 60000):
                        continue  # rankings and variables do not depend on the interval: once per range
                    sql = expand(raw, from_ms, to_ms, interval_ms, variables)
                    what = "%s tenant=%s [%d,%d) ms interval %d ms" % (where, tenant, from_ms, to_ms, interval_ms)
                    cols, rows = select(ck, sql, what)
                    runs += 1
                    if kind == "Clicks and users":
                        cm.expect(cols, ["time", "clicks", "spend", "users"], what + " columns")
                        cm.expect(money(rows, 2), expected_series(landing(tenant), f, t, interval_s, 1), what)
                    elif kind == "Filtered (invalid) clicks":
                        cm.expect(cols, ["time", "filtered"], what + " columns")
                        exp = [(k, n) for k, n, _s, _u in expected_series(filtered(tenant), f, t, interval_s, 60)]
                        cm.expect(rows, exp, what)
                    elif kind == "Top campaigns":
                        cm.expect(money(rows, 2), campaigns.ranked(cm, tenant, f, t, 20, 1, "campaign_id"), what)
                    elif kind == "Top ads":
                        cm.expect(money(rows, 2), campaigns.ranked(cm, tenant, f, t, 20, 1, "ad_id"), what)
                    elif kind == "Ads of campaign ${campaign}":
                        cm.expect(money(rows, 2), campaigns.ranked(cm, tenant, f, t, 20, 1, "ad_id", 100), what)
                    elif kind == "Refused clicks by reason":
                        cm.expect(rows, cm.expected_refused_reasons(tenant, f - f % 60, -(-t // 60) * 60, 60, 20), what)
                    elif kind == "Clicks by ${dimension}":
                        exp = cm.expected_dimension_values(tenant, "country", f - f % 60, -(-t // 60) * 60, 60, 20)
                        cm.expect(money(rows, 2), exp, what)
        variables = {"tenant": tenant}
        for where, kind, raw in found:
            if not kind.startswith("variable"):
                continue
            f, t = cm.D0, cm.D1 + 86400
            _cols, rows = select(ck, expand(raw, f * 1000, t * 1000, 60000, variables), where)
            runs += 1
            if kind == "variable tenant":
                exp = sorted({(r[0],) for r in cm.LANDING})
            elif kind == "variable campaign":
                exp = sorted({(r[2],) for r in cm.LANDING if r[0] == tenant})
            else:
                exp = sorted({(r[4],) for r in cm.DIMENSIONS if r[0] == tenant})
            cm.expect(rows, exp, "%s tenant=%s" % (where, tenant))
    return runs
