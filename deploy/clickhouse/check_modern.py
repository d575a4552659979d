#!/usr/bin/env python3
"""Check Tally's ClickHouse SQL (deploy/clickhouse) for real.

Default: runs against a modern ClickHouse engine embedded in Python (PyPI
`chdb-core`, `chdb.session.Session(path)`) in a temporary directory.

  python3 deploy/clickhouse/check_modern.py
  python3 deploy/clickhouse/check_modern.py --clickhouse-client-port 9000   # 18.16 via clickhouse-client
  python3 deploy/clickhouse/check_modern.py --http-port 8123                # any server via HTTP

What it does, with the very same SQL files the service uses:
  1. applies bootstrap.sql and migrations/*.sql in order (statements split the way
     the Rust runner splits them: on ';' at line end, comment-only lines dropped),
     records them in tally.schema_migrations, then applies everything a second time
     to prove the DDL is idempotent;
  2. inserts landing rows in several INSERTs (two rows in the same ad/minute, the
     same second in two batches, overlapping user hashes, two days in two months)
     plus commit-ledger rows;
  3. runs every file in queries/ with '?' bound like the `clickhouse` crate binds
     (integers bare, strings quoted, arrays as [..]) and {table}/{bucket} over all
     three rollups, checks output column names and types exactly, and asserts the
     rollup results equal (a) the same aggregation computed from the landing table
     in SQL and (b) the expected values computed in Python;
  4. OPTIMIZE ... FINAL on every table and checks everything again (state merges).

Against a server the script uses the database `tally` and refuses to touch an
existing one unless --reset is given (which DROPs it first). Exit status is 0 only
if everything passed; the last line is `check_modern: N statements ok`.
"""

import argparse
import calendar
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

ROLLUPS = [  # (table, bucket column, bucket size in seconds): the closed set Rust uses
    ("clicks_by_minute", "minute", 60),
    ("clicks_by_hour", "hour", 3600),
    ("clicks_by_day", "day", 86400),
]

SERIES_COLS = [("t", "UInt32"), ("clicks", "UInt64"), ("spend_micros", "UInt64"), ("users", "UInt64")]
TOTAL_COLS = [("clicks", "UInt64"), ("spend_micros", "UInt64"), ("users", "UInt64")]
TOP_COLS = [("ad_id", "UInt64"), ("clicks", "UInt64"), ("spend_micros", "UInt64")]
LEDGER_COLS = [("seq", "UInt64"), ("state", "UInt8")]
LANDING_ROWS_COLS = [("row_idx", "UInt32")]


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


# --------------------------------------------------------------------------- backends

class Backend:
    name = "?"

    def execute(self, sql):
        """Run one statement; return its TabSeparated* text output."""
        raise NotImplementedError

    def close(self):
        pass


class ChdbBackend(Backend):
    def __init__(self):
        try:
            from chdb.session import Session
        except ImportError as e:
            fail("cannot import chdb (pip install chdb-core): %s" % e)
        self.dir = tempfile.mkdtemp(prefix="tally-check-chdb-")
        self.sess = Session(os.path.join(self.dir, "db"))
        self.name = "chdb " + self.execute("SELECT version()").strip()

    def execute(self, sql):
        try:
            res = self.sess.query(sql, "TabSeparated")
        except Exception as e:  # chdb raises on any server-side error
            raise RuntimeError(str(e).strip())
        err = getattr(res, "error_message", None)
        if callable(err):
            err = err()
        if err:
            raise RuntimeError(str(err).strip())
        return res.bytes().decode() if hasattr(res, "bytes") else str(res)

    def close(self):
        try:
            self.sess.close()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class ClientBackend(Backend):
    """Native protocol through `clickhouse-client --multiquery` (works with 18.16)."""

    def __init__(self, client, host, port):
        self.cmd = [client, "--host", host, "--port", str(port), "--multiquery"]
        self.name = "clickhouse-client %s:%s server %s" % (
            host, port, self.execute("SELECT version()").strip())

    def execute(self, sql):
        p = subprocess.run(self.cmd, input=sql + "\n", capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError((p.stderr or p.stdout).strip())
        return p.stdout


class HttpBackend(Backend):
    """HTTP interface, the transport the Rust `clickhouse` crate uses."""

    def __init__(self, host, port):
        self.url = "http://%s:%s/" % (host, port)
        self.name = "http %s:%s server %s" % (host, port, self.execute("SELECT version()").strip())

    def execute(self, sql):
        req = urllib.request.Request(self.url, data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(e.read().decode(errors="replace").strip())


# --------------------------------------------------------------------------- helpers

class Checker:
    def __init__(self, backend):
        self.b = backend
        self.ok = 0

    def run(self, sql, what):
        try:
            out = self.b.execute(sql)
        except RuntimeError as e:
            fail("%s failed on %s:\n  error: %s\n  sql: %s" % (what, self.b.name, e, sql.strip()))
        self.ok += 1
        return out

    def select(self, sql, what, cols=None):
        """Run a SELECT as the crate does (query text + appended FORMAT clause).

        Returns rows as tuples of ints (all our result columns are integers)."""
        out = self.run(sql.rstrip() + " FORMAT TabSeparatedWithNamesAndTypes", what)
        lines = out.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) < 2:
            fail("%s: no header in output %r" % (what, out))
        names, types = lines[0].split("\t"), lines[1].split("\t")
        if cols is not None and list(zip(names, types)) != cols:
            fail("%s on %s: output columns %s, expected %s" % (
                what, self.b.name, list(zip(names, types)), cols))
        rows = []
        for ln in lines[2:]:
            try:
                rows.append(tuple(int(v) for v in ln.split("\t")))
            except ValueError:
                fail("%s: non-integer row %r" % (what, ln))
        return rows


def split_statements(text):
    """Split a migration file exactly like the Rust runner: statements end with ';'
    at the end of a line; lines that hold only a '--' comment are dropped."""
    stmts, buf = [], []
    for line in text.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).rstrip()[:-1].strip()
            buf = []
            if stmt:
                stmts.append(stmt)
    if "\n".join(buf).strip():
        fail("unterminated statement (no ';' at line end): %r" % "\n".join(buf))
    return stmts


def sql_literal(v):
    """Literal as the `clickhouse` crate renders a bound value client-side."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(sql_literal(x) for x in v) + "]"
    raise TypeError(v)


def bind(sql, params, idents=None):
    for k, v in (idents or {}).items():
        sql = sql.replace("{" + k + "}", v)
    if re.search(r"\{[a-z_]+\}", sql):
        fail("unfilled identifier placeholder in: %s" % sql)
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        fail("query has %d '?' but %d binds: %s" % (len(parts) - 1, len(params), sql))
    out = parts[0]
    for p, rest in zip(params, parts[1:]):
        out += sql_literal(p) + rest
    return out


def read(rel):
    with open(os.path.join(HERE, rel)) as f:
        return f.read()


def migration_files():
    d = os.path.join(HERE, "migrations")
    files = sorted(f for f in os.listdir(d) if re.match(r"^\d{4}_[a-z0-9_]+\.sql$", f))
    if not files:
        fail("no migrations in %s" % d)
    versions = [int(f[:4]) for f in files]
    if versions != list(range(1, len(files) + 1)):
        fail("migration versions are not 1..N without gaps: %s" % files)
    return files


# --------------------------------------------------------------------------- sample data

def ts(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


D0 = ts(2023, 11, 30)  # two days in two different months (two partitions)
D1 = ts(2023, 12, 1)

# (tenant, ad_id, campaign_id, second, clicks, spend_micros, user_hashes, edge, batch_seq, row_idx)
# grouped by INSERT (one INSERT per shipped batch, so rollups get several partial states)
BATCHES = [
    [
        ("t1", 10, 100, D0 + 3600 + 5, 3, 300, [1, 2, 3], "e1", 1, 0),
        ("t1", 10, 100, D0 + 3600 + 17, 2, 250, [3, 4], "e1", 1, 1),   # same ad/minute as row 0
        ("t1", 11, 100, D0 + 3600 + 17, 7, 700, [5], "e1", 1, 2),
        ("t1", 10, 101, D0 + 3600 + 59, 1, 90, [4, 6], "e1", 1, 3),    # same minute, other campaign
    ],
    [
        ("t1", 10, 100, D0 + 3600 + 5, 1, 100, [1, 7], "e1", 2, 0),    # same second as e1/1 row 0
        ("t1", 10, 100, D0 + 7200 + 30, 4, 400, [2, 8], "e1", 2, 1),
        ("t2", 10, 200, D0 + 3600 + 5, 9, 900, [1, 2], "e1", 2, 2),    # other tenant, same ad id
    ],
    [
        ("t1", 10, 100, D1 + 60 + 1, 5, 500, [1, 9, 10], "e2", 1, 0),
        ("t1", 11, 100, D1 + 60 + 2, 2, 150, [], "e2", 1, 1),           # no user hashes
        ("t1", 10, 100, D1 + 5 * 3600, 6, 600, [10, 11, 12], "e2", 1, 2),
        ("t1", 12, 102, D1 + 5 * 3600 + 1, 2, 20, [13], "e2", 1, 3),
    ],
]
LANDING = [r for b in BATCHES for r in b]

# (edge, seq, state, rows, clicks, checksum, min_second, max_second, recorded_at)
LEDGER = [
    ("e1", 1, 1, 4, 13, 111, D0 + 3605, D0 + 3659, D0 + 4000),
    ("e1", 1, 2, 4, 13, 111, D0 + 3605, D0 + 3659, D0 + 4001),
    ("e1", 2, 1, 3, 14, 222, D0 + 3605, D0 + 7230, D0 + 8000),
    ("e1", 2, 2, 3, 14, 222, D0 + 3605, D0 + 7230, D0 + 8001),
    ("e1", 3, 1, 2, 5, 333, D1, D1 + 1, D1 + 100),               # started, never committed
    ("e2", 1, 2, 4, 15, 444, D1 + 61, D1 + 18001, D1 + 20000),   # committed without a visible 1
]


def landing_values(rows):
    return ", ".join(
        "(%s)" % ", ".join(sql_literal(v) for v in r) for r in rows)


def expected_series(tenant, ad, frm, to, size):
    """Python truth with bucket semantics: buckets b with frm <= b < to."""
    acc = {}
    for (tn, a, _c, sec, clicks, spend, users, _e, _s, _i) in LANDING:
        if tn != tenant or a != ad:
            continue
        b = sec - sec % size
        if not (frm <= b < to):
            continue
        c, s, u = acc.get(b, (0, 0, set()))
        acc[b] = (c + clicks, s + spend, u | set(users))
    return [(b, c, s, len(u)) for b, (c, s, u) in sorted(acc.items())]


def expected_total(tenant, ad, frm, to, size):
    c = s = 0
    u = set()
    for (tn, a, _c, sec, clicks, spend, users, _e, _s, _i) in LANDING:
        b = sec - sec % size
        if tn == tenant and a == ad and frm <= b < to:
            c, s, u = c + clicks, s + spend, u | set(users)
    return [(c, s, len(u))]


def expected_top(tenant, frm, to, limit):
    acc = {}
    for (tn, a, _c, sec, clicks, spend, _u, _e, _s, _i) in LANDING:
        b = sec - sec % 60
        if tn == tenant and frm <= b < to:
            c, s = acc.get(a, (0, 0))
            acc[a] = (c + clicks, s + spend)
    rows = sorted(((a, c, s) for a, (c, s) in acc.items()), key=lambda r: (-r[1], r[0]))
    return rows[:limit]


# --------------------------------------------------------------------------- the check

def apply_schema(ck, record):
    files = [("bootstrap.sql", None)] + [
        (os.path.join("migrations", f), f) for f in migration_files()]
    for rel, mig in files:
        for i, stmt in enumerate(split_statements(read(rel))):
            ck.run(stmt, "%s statement %d" % (rel, i + 1))
        if record and mig:
            ck.run("INSERT INTO tally.schema_migrations (version, name, applied_at) "
                   "VALUES (%d, %s, now())" % (int(mig[:4]), sql_literal(mig[:-4])),
                   "record migration %s" % mig)


def check_queries(ck, phase):
    q = {name: read(os.path.join("queries", name + ".sql")) for name in (
        "series_second", "total_second", "series_rollup", "total_rollup",
        "top_ads", "ledger_states", "landing_rows_of_batch")}
    for name, text in q.items():
        if text.rstrip().endswith(";"):
            fail("queries/%s.sql must not end with ';'" % name)

    pairs = sorted({(r[0], r[1]) for r in LANDING}) + [("t1", 999), ("nobody", 10)]
    ranges = [
        (D0, D1 + 86400),                 # everything
        (D0, D1),                         # first day only
        (D0 + 3600, D0 + 7200),           # one hour
        (D0 + 3600 + 60, D0 + 7200 + 60), # minute aligned, not hour aligned
        (D1 + 86400, D1 + 2 * 86400),     # empty
    ]

    def landing_ref(fn, tenant, ad, frm, to, series):
        head = "toUInt32(%s(second)) AS t, " % fn if series else ""
        tail = " GROUP BY t ORDER BY t" if series else ""
        return ("SELECT %stoUInt64(sum(clicks)) AS clicks, toUInt64(sum(spend_micros)) AS "
                "spend_micros, toUInt64(uniqArray(user_hashes)) AS users FROM tally.clicks_by_second "
                "WHERE tenant = %s AND ad_id = %d AND second >= %d AND second < %d%s" % (
                    head, sql_literal(tenant), ad, frm, to, tail))

    for tenant, ad in pairs:
        for frm, to in ranges:
            where = "[%s] tenant=%s ad=%d [%d,%d)" % (phase, tenant, ad, frm, to)
            # per-second queries
            got = ck.select(bind(q["series_second"], [tenant, ad, frm, to]),
                            "series_second " + where, SERIES_COLS)
            exp = expected_series(tenant, ad, frm, to, 1)
            if got != exp:
                fail("series_second %s: got %s expected %s" % (where, got, exp))
            got = ck.select(bind(q["total_second"], [tenant, ad, frm, to]),
                            "total_second " + where, TOTAL_COLS)
            exp = expected_total(tenant, ad, frm, to, 1)
            if got != exp:
                fail("total_second %s: got %s expected %s" % (where, got, exp))
            # rollups
            for table, bucket, size, fn in [r + (f,) for r, f in zip(
                    ROLLUPS, ("toStartOfMinute", "toStartOfHour", "toStartOfDay"))]:
                idents = {"table": table, "bucket": bucket}
                aligned = frm % size == 0 and to % size == 0
                got = ck.select(bind(q["series_rollup"], [tenant, ad, frm, to], idents),
                                "series_rollup %s %s" % (table, where), SERIES_COLS)
                exp = expected_series(tenant, ad, frm, to, size)
                if got != exp:
                    fail("series_rollup %s %s: got %s expected (python) %s" % (table, where, got, exp))
                if aligned:
                    ref = ck.select(landing_ref(fn, tenant, ad, frm, to, True),
                                    "landing reference series %s %s" % (table, where), SERIES_COLS)
                    if got != ref:
                        fail("series_rollup %s %s: rollup %s != landing %s" % (table, where, got, ref))
                got = ck.select(bind(q["total_rollup"], [tenant, ad, frm, to], idents),
                                "total_rollup %s %s" % (table, where), TOTAL_COLS)
                exp = expected_total(tenant, ad, frm, to, size)
                if got != exp:
                    fail("total_rollup %s %s: got %s expected (python) %s" % (table, where, got, exp))
                if aligned:
                    ref = ck.select(landing_ref(fn, tenant, ad, frm, to, False),
                                    "landing reference total %s %s" % (table, where), TOTAL_COLS)
                    if got != ref:
                        fail("total_rollup %s %s: rollup %s != landing %s" % (table, where, got, ref))

    for tenant in ("t1", "t2", "nobody"):
        for frm, to in ranges:
            for limit in (1, 2, 10):
                where = "[%s] tenant=%s [%d,%d) limit %d" % (phase, tenant, frm, to, limit)
                got = ck.select(bind(q["top_ads"], [tenant, frm, to, limit]),
                                "top_ads " + where, TOP_COLS)
                exp = expected_top(tenant, frm, to, limit)
                if got != exp:
                    fail("top_ads %s: got %s expected %s" % (where, got, exp))

    for edge, lo, hi in (("e1", 0, 10), ("e1", 2, 3), ("e2", 1, 1), ("e3", 0, 100)):
        got = sorted(ck.select(bind(q["ledger_states"], [edge, lo, hi]),
                               "ledger_states [%s] %s %d..%d" % (phase, edge, lo, hi), LEDGER_COLS))
        states = {}
        for (e, seq, st, *_rest) in LEDGER:
            if e == edge and lo <= seq <= hi:
                states[seq] = max(states.get(seq, 0), st)
        exp = sorted(states.items())
        if got != exp:
            fail("ledger_states [%s] %s %d..%d: got %s expected %s" % (phase, edge, lo, hi, got, exp))

    batch_keys = sorted({(r[7], r[8]) for r in LANDING}) + [("e9", 1)]
    for edge, seq in batch_keys:
        rows = [r for r in LANDING if r[7] == edge and r[8] == seq]
        lo = min((r[3] for r in rows), default=D0)
        hi = max((r[3] for r in rows), default=D1)
        for (a, b) in ((lo, hi), (lo + 1, hi)):
            got = ck.select(bind(q["landing_rows_of_batch"], [edge, seq, a, b]),
                            "landing_rows_of_batch [%s] %s/%d" % (phase, edge, seq), LANDING_ROWS_COLS)
            exp = sorted((r[9],) for r in rows if a <= r[3] <= b)
            if got != exp:
                fail("landing_rows_of_batch [%s] %s/%d [%d,%d]: got %s expected %s" % (
                    phase, edge, seq, a, b, got, exp))


TABLES = ["clicks_by_second", "batches"] + [r[0] for r in ROLLUPS]


def check_parts(ck, merged):
    """Rollup rows on disk: several per key before merging, one per key after."""
    for table, bucket, _size in ROLLUPS:
        raw = ck.select("SELECT toUInt64(count()) AS n FROM tally.%s" % table, "count " + table)
        keys = ck.select("SELECT toUInt64(count()) AS n FROM (SELECT DISTINCT tenant, ad_id, "
                         "campaign_id, %s FROM tally.%s)" % (bucket, table), "count keys " + table)
        if merged and raw != keys:
            fail("%s after OPTIMIZE FINAL: %s rows for %s keys" % (table, raw, keys))
        if not merged and not raw[0][0] > keys[0][0]:
            fail("%s before merges: %s rows for %s keys; expected partial states to be "
                 "spread over several rows (did the MV fire for every INSERT?)" % (table, raw, keys))
    raw = ck.select("SELECT toUInt64(count()) AS n FROM tally.batches", "count batches")
    exp = len({(r[0], r[1]) for r in LEDGER}) if merged else len(LEDGER)
    if raw != [(exp,)]:
        fail("tally.batches holds %s rows, expected %d (%s)" % (
            raw, exp, "merged" if merged else "unmerged"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clickhouse-client-port", type=int, metavar="PORT",
                    help="check a running server (e.g. 18.16) through clickhouse-client on this native TCP port")
    ap.add_argument("--http-port", type=int, metavar="PORT",
                    help="check a running server through its HTTP port (the Rust client's transport)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--client", default="clickhouse-client", help="clickhouse-client binary")
    ap.add_argument("--reset", action="store_true",
                    help="DROP DATABASE tally on the server first if it exists")
    args = ap.parse_args()

    backend = None
    try:
        if args.clickhouse_client_port and args.http_port:
            fail("give at most one of --clickhouse-client-port / --http-port")
        try:
            if args.clickhouse_client_port:
                backend = ClientBackend(args.client, args.host, args.clickhouse_client_port)
            elif args.http_port:
                backend = HttpBackend(args.host, args.http_port)
            else:
                backend = ChdbBackend()
        except (RuntimeError, OSError) as e:
            fail("cannot connect: %s" % e)
        print("check_modern: engine %s" % backend.name)
        ck = Checker(backend)

        if not isinstance(backend, ChdbBackend):
            exists = ck.run("SELECT count() FROM system.databases WHERE name = 'tally'",
                            "look for database tally").strip()
            if exists != "0":
                if not args.reset:
                    fail("database tally already exists on %s; rerun with --reset to DROP it" % backend.name)
                ck.run("DROP DATABASE tally", "drop database tally")

        apply_schema(ck, record=True)
        apply_schema(ck, record=False)  # second run: every statement must be idempotent
        got = ck.select("SELECT version FROM tally.schema_migrations ORDER BY version",
                        "read schema_migrations")
        exp = [(int(f[:4]),) for f in migration_files()]
        if got != exp:
            fail("schema_migrations holds %s, expected %s" % (got, exp))

        # Keep every INSERT in its own part until the "merged" phase, so the first
        # pass reads several partial aggregate states per key (and both ledger rows
        # of a batch) and really exercises sumMerge / uniqArrayMerge / max(state).
        for t in TABLES:
            ck.run("SYSTEM STOP MERGES tally.%s" % t, "stop merges %s" % t)

        for i, b in enumerate(BATCHES):
            ck.run("INSERT INTO tally.clicks_by_second (tenant, ad_id, campaign_id, second, clicks, "
                   "spend_micros, user_hashes, edge, batch_seq, row_idx) VALUES " + landing_values(b),
                   "landing insert %d" % (i + 1))
        for row in LEDGER:  # one INSERT per ledger write, as the service does
            ck.run("INSERT INTO tally.batches (edge, seq, state, rows, clicks, checksum, min_second, "
                   "max_second, recorded_at) VALUES " + landing_values([row]), "ledger insert")

        check_parts(ck, merged=False)
        check_queries(ck, "unmerged")
        for t in TABLES:
            ck.run("SYSTEM START MERGES tally.%s" % t, "start merges %s" % t)
            ck.run("OPTIMIZE TABLE tally.%s FINAL" % t, "optimize %s" % t)
        check_parts(ck, merged=True)
        check_queries(ck, "merged")
        got = ck.select("SELECT toUInt64(count(state)) AS n FROM tally.batches FINAL "
                        "WHERE edge = 'e1' AND seq = 1", "ledger FINAL")
        if got != [(1,)]:
            fail("ReplacingMergeTree did not collapse e1/1: %s" % got)
        got = ck.select("SELECT state FROM tally.batches FINAL WHERE edge = 'e1' AND seq = 1",
                        "ledger FINAL state")
        if got != [(2,)]:
            fail("ReplacingMergeTree kept state %s for e1/1, expected 2" % got)

        if not isinstance(backend, ChdbBackend):
            ck.run("DROP DATABASE tally", "drop database tally (cleanup)")
    except CheckFailed as e:
        print("check_modern: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        if backend is not None:
            backend.close()
    print("check_modern: %d statements ok (%s)" % (ck.ok, backend.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
