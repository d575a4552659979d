"""Imported by the bench scripts that time queries on a ClickHouse of their own
(lib/private-clickhouse.sh): statements over HTTP, the schema installed as the core
installs it, and a query timed by the server itself (query_duration_ms in
system.query_log) with the rows it read and the CPU time its threads used (user +
system, from the log's ProfileEvents): on a shared machine a query's wall time
includes the time it waited for a core, its CPU time does not. Run from the
repository's root."""

import statistics
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, "deploy/clickhouse")
import check_modern as cm  # noqa: E402


class Server:
    def __init__(self, http_port):
        self.url = "http://127.0.0.1:%s/" % http_port

    def sql(self, text, query_id=None):
        """The answer to one statement; a refused one ends the script with the server's reason."""
        u = self.url + ("?log_queries=1&query_id=" + query_id if query_id else "")
        req = urllib.request.Request(u, data=text.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=3600) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise SystemExit("ClickHouse: %s\n  in: %s" % (e.read().decode(errors="replace").strip(), text[:300]))

    def install_schema(self):
        """bootstrap.sql and every migration, in order."""
        for rel in ["bootstrap.sql"] + ["migrations/" + f for f in cm.migration_files()]:
            for stmt in cm.split_statements(cm.read(rel)):
                self.sql(stmt)

    def timed(self, name, text, runs):
        """(answer, "min .. ms  median .. ms  cpu min .. ms  median .. ms  rows read ..") over
        `runs` runs that must answer alike."""
        times, cpus, rows, answer = [], [], [], None
        for i in range(runs):
            qid = "bench-%s-%d-%d" % (name.replace(" ", "_"), i, time.time_ns())
            out = self.sql(text + " FORMAT TSV", qid)
            answer = answer if answer is not None else out
            if out != answer:
                raise SystemExit("%s: answers differ between runs" % name)
            for _ in range(50):  # the log is written a moment after the answer
                self.sql("SYSTEM FLUSH LOGS")
                r = self.sql("SELECT query_duration_ms, read_rows, arraySum(arrayFilter((v, n) -> n IN ('UserTimeMicroseconds', "
                             "'SystemTimeMicroseconds'), ProfileEvents.Values, ProfileEvents.Names)) FROM system.query_log "
                             "WHERE type = 2 AND query_id = '%s' FORMAT TSV" % qid).split()
                if r:
                    break
                time.sleep(0.1)
            times.append(int(r[0]))
            rows.append(int(r[1]))
            cpus.append(int(r[2]) / 1000)
        return answer, "min %6d ms  median %6d ms  cpu min %6d ms  median %6d ms  rows read %11d" % (
            min(times), statistics.median(times), min(cpus), statistics.median(cpus), rows[0])
