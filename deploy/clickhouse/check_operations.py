"""Checks of the operations queries (core/service/src/clickhouse/operations.rs), run
last by check_modern.py on chdb and on 18.16 with its sample data (`cm` is that
module), because one of them drops data: the migrations a server has recorded
(readiness), a table's monthly partitions and dropping one of them (retention).
"""

import os

QUERIES = ("applied_migrations", "table_partitions", "drop_partition")


def check(ck, cm):
    q = {name: cm.read(os.path.join("queries", name + ".sql")) for name in QUERIES}

    migrations = sorted(int(f.split("_", 1)[0]) for f in os.listdir(os.path.join(cm.HERE, "migrations")) if f.endswith(".sql"))
    got = ck.select(q["applied_migrations"], "applied_migrations", [("version", "UInt32")])
    cm.expect(got, [(v,) for v in migrations], "applied_migrations")

    # Retention drops months of every family's tables; the landing table's sample
    # rows span two months.
    months_sql = "SELECT DISTINCT toUInt32(toYYYYMM(second)) AS m FROM tally.clicks_by_second ORDER BY m"
    months = ck.select(months_sql, "landing months")
    if len(months) < 2:
        cm.fail("the sample landing rows should span two months, found %s" % months)
    got = ck.select(cm.bind(q["table_partitions"], [cm.LOCAL_DB, "clicks_by_second"]), "table_partitions", [("partition", "UInt32")])
    cm.expect(got, months, "table_partitions clicks_by_second")
    got = ck.select(cm.bind(q["table_partitions"], [cm.LOCAL_DB, "no_such_table"]), "table_partitions (no table)", [("partition", "UInt32")])
    cm.expect(got, [], "table_partitions of a table that does not exist")

    oldest, rest = months[0][0], months[1:]
    count_sql = "SELECT toUInt64(count()) AS n FROM tally.clicks_by_second WHERE toYYYYMM(second) = %d"
    kept = [(m, ck.select(count_sql % m, "rows of %d" % m)) for (m,) in rest]
    ck.run(cm.bind(q["drop_partition"], [oldest], {"database": cm.LOCAL_DB, "table": "clicks_by_second"}), "drop_partition %d" % oldest)
    cm.expect(ck.select(count_sql % oldest, "rows of the dropped month"), [(0,)], "rows left in the dropped month")
    for m, n in kept:
        cm.expect(ck.select(count_sql % m, "rows of %d after the drop" % m), n, "rows of month %d after dropping %d" % (m, oldest))
    got = ck.select(cm.bind(q["table_partitions"], [cm.LOCAL_DB, "clicks_by_second"]), "table_partitions after the drop", [("partition", "UInt32")])
    cm.expect(got, rest, "table_partitions after dropping %d" % oldest)
    # Dropping a month that holds nothing is not an error (a pass may race a merge).
    ck.run(cm.bind(q["drop_partition"], [oldest], {"database": cm.LOCAL_DB, "table": "clicks_by_second"}), "drop_partition %d again" % oldest)
