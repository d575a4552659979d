"""check_modern.py --cluster NAME: the cluster schema (deploy/clickhouse/cluster/) under
the same checks as the single-node schema.

On chdb (no ZooKeeper, no replication) the shard-local tables get the non-replicated
engine of the same family (ReplicatedAggregatingMergeTree('/path', '{replica}', args)
-> AggregatingMergeTree(args)); everything else runs as written: the
replicated_deduplication_window setting, the views in tally_shard, the Distributed
tables with their sharding keys over a cluster NAME of one local shard (a config file
for chdb), every INSERT of the sample data through them with insert_distributed_sync=1,
and every query file read through them (distributed_product_mode=global, as the core
sets), unmerged and after OPTIMIZE FINAL of the local tables, plus the repair queries.
Checked there: the DDL is valid and idempotent on a modern engine, the query layer
gives the single-node answers through Distributed tables. Not checked there:
replication, quorum inserts, block deduplication and more than one shard (the
cluster e2e test runs those on 18.16 with ZooKeeper), and the insert-token and
retention checks (check_dedup_token, check_operations), which are single-node only.

Against a server (--http-port of one member of a real cluster NAME, e.g. 18.16 with
ZooKeeper, and --member-http-ports of the others, which get the schema too) the files
run unmodified and the HTTP requests carry the core's cluster settings (insert_quorum =
the replicas per shard of NAME). There the merged phase is skipped: 18.16 answered
OPTIMIZE ... FINAL on its Replicated tables with "Unknown log entry type: 0".
"""

import os
import re
import tempfile

CHDB_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <%s><shard><internal_replication>true</internal_replication>
      <replica><host>localhost</host><port>9000</port></replica>
    </shard></%s>
  </remote_servers>
</clickhouse>
"""

FILES = ["cluster/1_shard_tables.sql", "cluster/2_shard_views.sql", "cluster/3_distributed.sql"]

REPLICATED = re.compile(r"ENGINE = Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, (.*))?\)$", re.M)


def chdb_path(name, directory):
    """A chdb connection path whose engine knows cluster `name` as one local shard
    (chdb counts a replica local when its port is the configured tcp_port)."""
    config = os.path.join(directory, "cluster.xml")
    with open(config, "w") as fh:
        fh.write(CHDB_CONFIG % (name, name))
    return "%s?config-file=%s" % (os.path.join(directory, "db"), config)


def without_replication(stmt):
    return REPLICATED.sub(lambda m: "ENGINE = %s%s" % (m.group(1), "(%s)" % m.group(2) if m.group(2) else ""), stmt)


def apply_schema(ck, cm):
    """bootstrap.sql then the cluster files, each twice in a row (the core applies
    them at every start)."""
    chdb = isinstance(ck.b, cm.ChdbBackend)
    for server in [cm.Checker(m) for m in cm.MEMBERS] + [ck]:
        for rel in ["bootstrap.sql"] + FILES:
            for attempt in (1, 2):
                for i, stmt in enumerate(cm.split_statements(cm.read(rel))):
                    stmt = stmt.replace("{{cluster}}", cm.CLUSTER)
                    if chdb:
                        stmt = without_replication(stmt)
                        if "Replicated" in stmt:
                            cm.fail("%s statement %d: a replicated engine the chdb check cannot substitute" % (rel, i + 1))
                    server.run(stmt, "%s statement %d (run %d) on %s" % (rel, i + 1, attempt, server.b.name))
    engines = ck.select("SELECT DISTINCT engine FROM system.tables WHERE database = 'tally' "
                        "AND name != 'schema_migrations'", "engines of database tally")
    if engines != [("Distributed",)]:
        cm.fail("database tally should hold only Distributed tables (and schema_migrations): %s" % engines)
