"""Checks of the campaign rollups (migration 0007) and the queries over them, run by
check_modern.py on chdb and on 18.16 with its sample data (`cm` is that module):
top campaigns (ranked by clicks, then the totals of the top ones, as the store reads
them), the ads of a campaign, campaign series and totals (planned reads, equal
to one rollup alone, to the landing table and to Python), the ads' campaigns per hour
(billing per campaign), top ads on campaigns_by_* equal to the same text on the ad-first
clicks_by_*, and the click family's repair on campaigns_by_*.
"""

QUERIES = ("campaign_ranking", "top_campaigns", "campaign_ads", "campaign_series", "campaign_series_second",
           "campaign_totals", "campaign_total_second", "campaign_of_ads", "reconcile_campaign_rollup",
           "campaign_filtered_series")

ROLLUPS = [("campaigns_by_minute", "minute", 60), ("campaigns_by_hour", "hour", 3600),
           ("campaigns_by_day", "day", 86400)]

RANKED_COLS = lambda key: [(key, "UInt64"), ("clicks", "UInt64"), ("spend_micros", "UInt64"), ("users", "UInt64")]
OF_ADS_COLS = [("t", "UInt32"), ("ad_id", "UInt64"), ("campaigns", "Array(UInt64)")]


def select_of_ads(ck, cm, q, binds, what):
    """campaign_of_ads with its types checked, arrays read as text (the checker reads
    scalars only)."""
    sql = cm.bind(q["campaign_of_ads"], binds)
    ck.select("SELECT * FROM (%s) LIMIT 0" % sql, what + " (types)", OF_ADS_COLS)
    return [(t, ad, [int(x) for x in cs.strip("[]").split(",") if x]) for t, ad, cs in ck.select(
        "SELECT t, ad_id, toString(campaigns) AS campaigns FROM (%s)" % sql, what)]


def rows(cm, tenant, frm, to, size, campaign=None):
    """Landing rows of `tenant` (and `campaign`) whose bucket of `size` s is in [frm, to)."""
    for (tn, ad, c, sec, clicks, spend, users, _e, _s, _i) in cm.LANDING:
        b = sec - sec % size
        if tn == tenant and frm <= b < to and (campaign is None or c == campaign):
            yield ad, c, b, clicks, spend, users


def ranked(cm, tenant, frm, to, limit, size, key, campaign=None):
    acc = {}
    for ad, c, _b, clicks, spend, users in rows(cm, tenant, frm, to, size, campaign):
        k = c if key == "campaign_id" else ad
        n, s, u = acc.get(k, (0, 0, set()))
        acc[k] = (n + clicks, s + spend, u | set(users))
    out = sorted(((k, n, s, len(u)) for k, (n, s, u) in acc.items()), key=lambda r: (-r[1], r[0]))
    return out[:limit]


def series(cm, tenant, campaign, frm, to, size):
    acc = {}
    for _ad, _c, b, clicks, spend, users in rows(cm, tenant, frm, to, size, campaign):
        n, s, u = acc.get(b, (0, 0, set()))
        acc[b] = (n + clicks, s + spend, u | set(users))
    return [(b, n, s, len(u)) for b, (n, s, u) in sorted(acc.items())]


def total(cm, tenant, campaign, frm, to, size):
    n = s = 0
    u = set()
    for _ad, _c, _b, clicks, spend, users in rows(cm, tenant, frm, to, size, campaign):
        n, s, u = n + clicks, s + spend, u | set(users)
    return [(n, s, len(u))]


def filtered_series(cm, tenant, campaign, frm, to, size):
    """Filtered refusals per bucket of the ads whose kept clicks in [frm, to) named only
    `campaign` (a refusal carries no campaign: it is the ad's)."""
    named = {}
    for ad, c, _b, _n, _s, _u in rows(cm, tenant, frm, to, size):
        named.setdefault(ad, set()).add(c)
    acc = {}
    for ad in (a for a, cs in named.items() if cs == {campaign}):
        for b, n in cm.expected_filtered(tenant, ad, frm, to, size):
            acc[b] = acc.get(b, 0) + n
    return sorted(acc.items())


def of_ads(cm, tenant, frm, to):
    acc = {}
    for ad, c, b, _n, _s, _u in rows(cm, tenant, frm, to, 3600):
        acc.setdefault((b, ad), set()).add(c)
    return [(b, ad, sorted(cs)) for (b, ad), cs in sorted(acc.items())]


def ad_first(text):
    """A query over the campaign rollups rewritten for the click rollups (same columns)."""
    return text.replace("tally.campaigns_by_", "tally.clicks_by_")


def top_campaigns(ck, cm, q, reads, tenant, limit, what):
    """Top campaigns as the store reads them: campaign_ranking's top `limit` ids by clicks,
    then top_campaigns' totals of those ids (not run for none, as the store does not)."""
    ids = [r[0] for r in ck.select(cm.bind(q["campaign_ranking"], cm.plan_binds(reads, [tenant]) + [limit]),
                                   what + " (ranking)", [("campaign_id", "UInt64")])]
    if not ids:
        return []
    return ck.select(cm.bind(q["top_campaigns"], cm.plan_binds(reads, [tenant, ids])), what, RANKED_COLS("campaign_id"))


def check_queries(ck, q, phase, cm):
    ranges = [(cm.D0, cm.D1 + 86400), (cm.D0, cm.D1), (cm.H0, cm.H1), (cm.H0 + 60, cm.H1 + 60),
              (cm.D1 + 86400, cm.D1 + 2 * 86400)] + cm.ragged_ranges(cm.D0 - 86400, cm.D1 + 2 * 86400, 16, "campaigns")
    campaigns = sorted({(r[0], r[2]) for r in cm.LANDING}) + [("t1", 999), ("nobody", 100)]
    ranked_cols = {"campaign_id": RANKED_COLS("campaign_id"), "ad_id": RANKED_COLS("ad_id")}
    if ad_first(q["top_ads"]) == q["top_ads"]:
        cm.fail("top_ads reads no campaign rollup: its comparison with clicks_by_* would compare it with itself")
    for frm, to in ranges:
        m0, m1 = -(-frm // 60) * 60, to // 60 * 60
        for tenant in ("t1", "t2", "nobody"):
            for limit in (1, 2, 10):
                where = "[%s] tenant=%s [%d,%d) limit %d" % (phase, tenant, frm, to, limit)
                got = top_campaigns(ck, cm, q, cm.plan(frm, to, 1), tenant, limit, "top_campaigns " + where)
                cm.expect(got, ranked(cm, tenant, frm, to, limit, 1, "campaign_id"), "top_campaigns " + where)
                if m0 < m1:
                    ref = top_campaigns(ck, cm, q, cm.single(m0, m1, 60), tenant, limit, "top_campaigns of minutes " + where)
                    cm.expect(ref, ranked(cm, tenant, m0, m1, limit, 60, "campaign_id"), "top_campaigns of minutes " + where)
                # Top ads reads the time-first campaign rollups; the ad-first click rollups hold the
                # same rows (one per tenant, ad, campaign and bucket) and must answer alike.
                plans = [("planned", cm.plan(frm, to, 1))] + ([("minutes", cm.single(m0, m1, 60))] if m0 < m1 else [])
                for name, p in plans:
                    binds = cm.plan_binds(p, [tenant]) + [limit]
                    got = ck.select(cm.bind(q["top_ads"], binds), "top_ads %s %s" % (name, where), cm.TOP_COLS)
                    ref = ck.select(cm.bind(ad_first(q["top_ads"]), binds), "top_ads on clicks_by_* %s %s" % (name, where), cm.TOP_COLS)
                    cm.expect(got, ref, "top_ads %s %s on campaigns_by_* against clicks_by_*" % (name, where))
        for tenant, campaign in campaigns:
            where = "[%s] tenant=%s campaign=%d [%d,%d)" % (phase, tenant, campaign, frm, to)
            for limit in (1, 10):
                got = ck.select(cm.bind(q["campaign_ads"], cm.plan_binds(cm.plan(frm, to, 1), [tenant, campaign]) + [limit]),
                                "campaign_ads %s limit %d" % (where, limit), ranked_cols["ad_id"])
                cm.expect(got, ranked(cm, tenant, frm, to, limit, 1, "ad_id", campaign), "campaign_ads %s limit %d" % (where, limit))
            got = ck.select(cm.bind(q["campaign_series_second"], [tenant, campaign, frm, to]),
                            "campaign_series_second " + where, cm.SERIES_COLS)
            cm.expect(got, series(cm, tenant, campaign, frm, to, 1), "campaign_series_second " + where)
            got = ck.select(cm.bind(q["campaign_total_second"], [tenant, campaign, frm, to]),
                            "campaign_total_second " + where, cm.TOTAL_COLS)
            cm.expect(got, total(cm, tenant, campaign, frm, to, 1), "campaign_total_second " + where)
            for _table, bucket, size in ROLLUPS:
                got = ck.select(cm.bind(q["campaign_series"], [tenant, campaign, frm, to], {"bucket": bucket}),
                                "campaign_series %s %s" % (bucket, where), cm.SERIES_COLS)
                cm.expect(got, series(cm, tenant, campaign, frm, to, size), "campaign_series %s %s" % (bucket, where))
                got = ck.select(cm.bind(q["campaign_filtered_series"], [tenant, frm, to, tenant, frm, to, campaign, campaign],
                                        {"bucket": bucket}), "campaign_filtered_series %s %s" % (bucket, where), cm.FILTERED_COLS)
                cm.expect(got, filtered_series(cm, tenant, campaign, frm, to, size),
                          "campaign_filtered_series %s %s" % (bucket, where))
                if frm % size == 0 and to % size == 0:
                    got = ck.select(cm.bind(q["campaign_totals"], cm.plan_binds(cm.single(frm, to, size), [tenant, campaign], 3)),
                                    "campaign_totals of %s %s" % (bucket, where), cm.TOTAL_COLS)
                    cm.expect(got, total(cm, tenant, campaign, frm, to, size), "campaign_totals of %s %s" % (bucket, where))
            if m0 < m1:
                got = ck.select(cm.bind(q["campaign_totals"], cm.plan_binds(cm.plan(m0, m1, 60), [tenant, campaign], 3)),
                                "planned campaign_totals " + where, cm.TOTAL_COLS)
                cm.expect(got, total(cm, tenant, campaign, m0, m1, 1), "planned campaign_totals " + where)
    for frm, to in cm.BILLING_RANGES:
        for tenant in ("t1", "t2", "nobody"):
            where = "[%s] tenant=%s [%d,%d)" % (phase, tenant, frm, to)
            got = select_of_ads(ck, cm, q, [tenant, frm, to], "campaign_of_ads " + where)
            cm.expect(got, of_ads(cm, tenant, frm, to), "campaign_of_ads " + where)
    if not any(filtered_series(cm, t, c, cm.D0, cm.D1 + 86400, 60) for t, c in campaigns):
        cm.fail("no campaign has filtered clicks in the sample: campaign_filtered_series is not exercised")
    # Spot values, independent of the Python model: ad 10 has two campaigns in H0.
    got = select_of_ads(ck, cm, q, ["t1", cm.H0, cm.H1], "campaign_of_ads spot [%s]" % phase)
    cm.expect(got, [(cm.H0, 10, [100, 101]), (cm.H0, 11, [100])], "campaign_of_ads spot [%s]" % phase)
    got = top_campaigns(ck, cm, q, cm.plan(cm.D0, cm.D1 + 86400, 1), "t1", 10, "top_campaigns spot [%s]" % phase)
    cm.expect(got, [(100, 30, 3000, 11), (102, 2, 20, 1), (101, 1, 90, 2)], "top_campaigns spot [%s]" % phase)


def check_parts(ck, merged, cm):
    """Like cm.check_parts for the campaign rollups: one row per key after merges."""
    for table, bucket, _size in ROLLUPS:
        raw = ck.select("SELECT toUInt64(count()) AS n FROM tally.%s" % table, "count " + table)
        keys = ck.select("SELECT toUInt64(count()) AS n FROM (SELECT DISTINCT tenant, ad_id, campaign_id, %s "
                         "FROM tally.%s)" % (bucket, table), "count keys " + table)
        if merged and raw != keys:
            cm.fail("%s after OPTIMIZE FINAL: %s rows for %s keys" % (table, raw, keys))
        if not merged and raw == keys:
            cm.fail("%s before merges: one row per key, so state merges are not exercised" % table)


def check_repair(ck, cm):
    """The click family's repair and drift SQL on campaigns_by_* (the heal runs them
    with {table} = campaigns_by_<bucket>): views dropped while a settled batch lands,
    re-created from 0007, the drift is found per (tenant, hour or day), the repair
    makes every campaign rollup equal the landing table, and repeating it adds nothing."""
    for table, _bucket, _size in ROLLUPS:
        ck.run("SYSTEM STOP MERGES %s.%s" % (cm.LOCAL_DB, table), "stop merges %s" % table)
        ck.run("DROP TABLE %s.%s_mv" % (cm.LOCAL_DB, table), "drop %s_mv" % table)
    ck.run("INSERT INTO tally.batches (%s) VALUES %s" % (", ".join(cm.LEDGER_COLUMNS), cm.landing_values(
        [("ec", 1, 1, 2, 0, 0, 8, 991, cm.D0, cm.D1 + 3700, 0, cm.D0 + 100),
         ("ec", 1, 2, 2, 0, 0, 8, 991, cm.D0, cm.D1 + 3700, 0, cm.D0 + 101)])), "ledger of batch ec/1")
    ck.run("INSERT INTO tally.clicks_by_second (%s) VALUES ('c1', 5, 7, %d, 3, 30, [81, 82], 'ec', 1, 0), "
           "('t1', 10, 100, %d, 5, 50, [83], 'ec', 1, 1)" % (", ".join(cm.LANDING_COLUMNS), cm.D0 + 7, cm.D1 + 3700),
           "landing insert without campaign views")
    views = cm.views_from("migrations/0007_campaign_rollups.sql", "campaigns_by_")
    if len(views) != len(ROLLUPS):
        cm.fail("0007_campaign_rollups.sql should create %d campaign rollup views" % len(ROLLUPS))
    for i, stmt in enumerate(views):
        ck.run(stmt, "re-create campaign view %d" % (i + 1))
    landing = ck.select("SELECT tenant, toUInt64(sum(clicks)) AS c, toUInt64(sum(spend_micros)) AS s, "
                        "toUInt64(uniqArray(user_hashes)) AS u FROM tally.clicks_by_second GROUP BY tenant "
                        "ORDER BY tenant", "landing totals")
    lo, hi = cm.D0 - 86400, cm.D1 + 2 * 86400
    q = cm.read("queries/repair_rollup.sql")
    for table, bucket, _size in ROLLUPS:
        if cm.rollup_totals(ck, table) == landing:
            cm.fail("no drift was made in %s" % table)
        idents = {"table": table, "bucket": bucket, "fn": cm.REPAIR_FNS[bucket]}
        hour = (lambda t: t // 86400 * 86400) if bucket == "day" else (lambda t: t // 3600 * 3600)
        cm.check_drift(ck, "clicks", table, bucket, lo, hi, [("c1", hour(cm.D0 + 7), 3, 30), ("t1", hour(cm.D1 + 3700), 5, 50)])
        ck.run(cm.bind(q, cm.repair_binds(lo, hi), idents), "repair %s" % table)
        got = cm.rollup_totals(ck, table)
        if got != landing:
            cm.fail("after repair %s holds %s, landing %s" % (table, got, landing))
        cm.check_drift(ck, "clicks", table, bucket, lo, hi, [])
        cm.repair_again_adds_nothing(ck, cm.bind(q, cm.repair_binds(lo, hi), idents), table)
        ck.run("SYSTEM START MERGES %s.%s" % (cm.LOCAL_DB, table), "start merges %s" % table)
    rollup = ck.select(cm.bind(cm.read("queries/reconcile_campaign_rollup.sql"), [lo, hi]),
                       "reconcile_campaign_rollup after repair", cm.RECONCILE_ROLLUP_COLS)
    hours = ck.select(cm.bind(cm.read("queries/reconcile_hours.sql"), [lo, hi]), "reconcile_hours after repair",
                      cm.RECONCILE_HOURS_COLS)
    cm.expect(rollup, hours, "reconcile_campaign_rollup after repair against the landing table")
