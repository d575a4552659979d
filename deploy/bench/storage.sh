#!/usr/bin/env bash
# Bytes on disk per click per ClickHouse table (active parts, right after the load
# and after OPTIMIZE TABLE ... FINAL of every table) and ClickHouse server CPU per
# event, for one or more tally binaries in one run (each gets its own fresh POP:
# `tally demo --no-traffic`, private ClickHouse 18.16, durable acks).
# CPU is utime+stime of the clickhouse-server process from /proc over the load
# window (load start until every accepted click is committed), divided by the
# clicks committed; merges that run in that window count, later ones do not.
# Usage: deploy/bench/storage.sh [seconds] [rate] [connections] [batch] -- BIN...
#   rate 0 = as fast as the POP answers; BIN defaults to target/release/tally and,
#   when present, the baseline /var/tmp/tally-baseline-target/release/tally first.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}" RATE="${2:-0}" CONNS="${3:-8}" BATCH="${4:-1000}"
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
BINS=("$@")
if [ ${#BINS[@]} -eq 0 ]; then
  [ -x /var/tmp/tally-baseline-target/release/tally ] && BINS+=(/var/tmp/tally-baseline-target/release/tally)
  [ -x target/release/tally ] || cargo build --release --locked -p tally
  BINS+=(target/release/tally)
fi
TICK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sql() { curl -sS --fail --data-binary "$2" "$1/"; }
sizes() {
  sql "$1" "SELECT table, sum(rows) AS n_rows, count() AS n_parts, sum(bytes) AS n_bytes, round(sum(bytes) / $2, 2) AS per_click
            FROM system.parts WHERE active AND database = 'tally' GROUP BY table ORDER BY n_bytes DESC FORMAT PrettyCompactNoEscapes"
  sql "$1" "SELECT concat('total bytes per click: ', toString(round(sum(bytes) / $2, 2)), ' (', toString(sum(bytes)), ' bytes, ', toString(count()), ' parts)')
            FROM system.parts WHERE active AND database = 'tally' FORMAT TSV"
}

for bin in "${BINS[@]}"; do
  dir="$(mktemp -d /var/tmp/tally-storage-bench.XXXXXX)"
  echo "=== $bin  (load: ${SECS}s, rate ${RATE}, ${CONNS} connections x ${BATCH})"
  "$bin" demo --no-traffic --state-file "$dir/state.json" --dir "$dir/pop" >"$dir/demo.log" 2>&1 &
  pop=$!
  for _ in $(seq 600); do [ -s "$dir/state.json" ] && break; kill -0 "$pop" 2>/dev/null || { cat "$dir/demo.log"; exit 1; }; sleep 0.1; done
  field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$dir/state.json" "$1"; }
  edge=$(field edge_http) key=$(field ingest_key) ch=$(field clickhouse_http)
  chpid=""
  for p in $(python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["pids"])))' "$dir/state.json"); do
    [[ "$(cat /proc/$p/comm 2>/dev/null)" == clickhouse* ]] && chpid=$p
  done
  [ -n "$chpid" ] || { echo "no private clickhouse-server among the POP's processes"; exit 1; }
  before=$(cpu_ticks "$chpid")
  "$bin" load --edge "$edge" --key "$key" --connections "$CONNS" --batch "$BATCH" --seconds "$SECS" --rate "$RATE" | tr "\r" "\n" | grep -v "^\[" | tail -n 3
  # Settled: the committed count stops moving for 3 s.
  last=-1 same=0
  while [ "$same" -lt 6 ]; do
    n=$(sql "$ch" "SELECT count() FROM tally.click_records")
    if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; last=$n; fi
    sleep 0.5
  done
  after=$(cpu_ticks "$chpid")
  clicks=$(sql "$ch" "SELECT sum(clicks) FROM tally.clicks_by_second")
  [ "$clicks" -gt 0 ] || { echo "no clicks committed"; exit 1; }
  echo "clicks committed: $clicks (click_records rows: $last)"
  python3 -c 'import sys; t, c, k = map(int, sys.argv[1:]); print("clickhouse CPU: %.2f s, %.3f us per event" % (t / k, t / k / c * 1e6))' \
    "$((after - before))" "$clicks" "$TICK"
  echo "--- right after the load"
  sizes "$ch" "$clicks"
  for t in $(sql "$ch" "SELECT name FROM system.tables WHERE database = 'tally' AND engine LIKE '%MergeTree' FORMAT TSV"); do
    sql "$ch" "OPTIMIZE TABLE tally.$t FINAL"
  done
  echo "--- after OPTIMIZE TABLE ... FINAL of every table"
  sizes "$ch" "$clicks"
  kill -TERM "$pop"; wait "$pop" || true
  rm -rf "$dir"
done
