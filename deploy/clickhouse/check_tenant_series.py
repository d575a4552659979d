"""Checks of the tenant-wide series (`GET /v1/clicks`), run by check_modern.py on chdb
and on 18.16 with its sample data (`cm` is that module): the tenant's series over the
campaign rollups and the landing table (1s), its planned totals, and its filtered clicks
over the refused rollups, equal to Python over every ad and campaign of the tenant,
never another tenant's. Users are one HLL union across ads; the sample data has no
user shared by two ads, so tests/e2e/tenant_series.rs is what tells a union from a sum.
"""

import check_campaigns as cc

QUERIES = ("tenant_series", "tenant_series_second", "tenant_totals", "tenant_total_second", "tenant_filtered")

BUCKETS = [("minute", 60), ("hour", 3600), ("day", 86400)]


def expected_filtered(cm, tenant, frm, to, size):
    """Filtered refusals of every ad of `tenant` per bucket b (of the event second)."""
    acc = {}
    for (tn, _hi, _lo, _ad, ts_ms, reason, _at, _e, _s, _i) in cm.REFUSED:
        sec = ts_ms // 1000
        b = sec - sec % size
        if tn == tenant and cm.is_filtered(reason) and frm <= b < to:
            acc[b] = acc.get(b, 0) + 1
    return sorted(acc.items())


def check_queries(ck, q, phase, cm):
    ranges = [(cm.D0, cm.D1 + 86400), (cm.D0, cm.D1), (cm.H0, cm.H1), (cm.H0 + 60, cm.H1 + 60),
              (cm.D1 + 86400, cm.D1 + 2 * 86400)] + cm.ragged_ranges(cm.D0 - 86400, cm.D1 + 2 * 86400, 16, "tenant")
    for frm, to in ranges:
        m0, m1 = -(-frm // 60) * 60, to // 60 * 60
        for tenant in ("t1", "t2", "nobody"):
            where = "[%s] tenant=%s [%d,%d)" % (phase, tenant, frm, to)
            got = ck.select(cm.bind(q["tenant_series_second"], [tenant, frm, to]), "tenant_series_second " + where, cm.SERIES_COLS)
            cm.expect(got, cc.series(cm, tenant, None, frm, to, 1), "tenant_series_second " + where)
            got = ck.select(cm.bind(q["tenant_total_second"], [tenant, frm, to]), "tenant_total_second " + where, cm.TOTAL_COLS)
            cm.expect(got, cc.total(cm, tenant, None, frm, to, 1), "tenant_total_second " + where)
            for bucket, size in BUCKETS:
                got = ck.select(cm.bind(q["tenant_series"], [tenant, frm, to], {"bucket": bucket}),
                                "tenant_series %s %s" % (bucket, where), cm.SERIES_COLS)
                cm.expect(got, cc.series(cm, tenant, None, frm, to, size), "tenant_series %s %s" % (bucket, where))
                got = ck.select(cm.bind(q["tenant_filtered"], [tenant, frm, to], {"bucket": bucket}),
                                "tenant_filtered %s %s" % (bucket, where), cm.FILTERED_COLS)
                cm.expect(got, expected_filtered(cm, tenant, frm, to, size), "tenant_filtered %s %s" % (bucket, where))
                if frm % size == 0 and to % size == 0:
                    got = ck.select(cm.bind(q["tenant_totals"], cm.plan_binds(cm.single(frm, to, size), [tenant], 3)),
                                    "tenant_totals of %s %s" % (bucket, where), cm.TOTAL_COLS)
                    cm.expect(got, cc.total(cm, tenant, None, frm, to, size), "tenant_totals of %s %s" % (bucket, where))
            if m0 < m1:
                got = ck.select(cm.bind(q["tenant_totals"], cm.plan_binds(cm.plan(m0, m1, 60), [tenant], 3)),
                                "planned tenant_totals " + where, cm.TOTAL_COLS)
                cm.expect(got, cc.total(cm, tenant, None, m0, m1, 1), "planned tenant_totals " + where)
    # Independent of the Python model: the planned totals equal the landing table's.
    got = ck.select(cm.bind(q["tenant_totals"], cm.plan_binds(cm.plan(cm.D0, cm.D1 + 86400, 60), ["t1"], 3)),
                    "tenant_totals spot [%s]" % phase, cm.TOTAL_COLS)
    landing = ck.select("SELECT toUInt64(sum(clicks)) AS clicks, toUInt64(sum(spend_micros)) AS spend_micros, "
                        "toUInt64(uniqArray(user_hashes)) AS users FROM tally.clicks_by_second WHERE tenant = 't1' "
                        "AND second >= %d AND second < %d" % (cm.D0, cm.D1 + 86400), "landing totals of t1", cm.TOTAL_COLS)
    cm.expect(got, landing, "tenant_totals spot against the landing table [%s]" % phase)
