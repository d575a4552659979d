#!/usr/bin/env bash
# CPU microseconds per accepted event per role on the cluster topology of
# `tally demo --cluster --no-traffic` (ZooKeeper, 2 shards x 2 replicas of
# ClickHouse 18.16, 2 cores with edge leases, 2 edges; durable acks), driven
# by one `tally load` per edge at the same time. The figures feed the
# capacity estimate in deploy/cluster/README.md.
#
# Usage: deploy/bench/cluster-cpu.sh [--seconds N] [--settle N] [--out DIR]
#   TALLY_BIN  the binary measured and used as generator (default target/release/tally)
#   LOAD_ARGS  the generator's shape per edge (default: --http 1 --connections 4 --batch 1000)
#
# Method: as deploy/bench/cpu-per-event.sh. CPU is utime+stime from
# /proc/<pid>/stat of every process of the demo (roles from each one's command
# line), read right before the generators start and again --settle seconds
# after they exit (default 5: the cores commit, replicas fetch and views fill
# about a ship interval behind the edges, so the window covers that work).
# Accepted events are the edges' `tally_edge_events_accepted_total` of the
# demo tenant over the load window; the script then waits until the cluster's per-second table
# (through any core's API) holds every accepted click, and says if it does not.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=20 SETTLE=5 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS="$2"; shift ;;
    --settle) SETTLE="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: $0 [--seconds N] [--settle N] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
BIN="$(realpath "${TALLY_BIN:-target/release/tally}")"
[ -x "$BIN" ] || { echo "not executable: $BIN (cargo build --release --locked -p tally)" >&2; exit 1; }
LOAD_ARGS="${LOAD_ARGS:---http 1 --connections 4 --batch 1000}"
OUT="${OUT:-/var/tmp/bench/cluster-cpu-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
HZ="$(getconf CLK_TCK)"
STATE="$OUT/state.json"

POP_PID=""
GENS=()
cleanup() {
  for p in "${GENS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if [ -n "$POP_PID" ]; then kill -INT "$POP_PID" 2>/dev/null || true; wait "$POP_PID" 2>/dev/null || true; fi
  rm -rf "$OUT/pop"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks() {
  local line rest
  read -r line <"/proc/$1/stat" || { echo 0; return; }
  rest="${line##*) }"
  set -- $rest
  echo $((${12} + ${13}))
}
# A tenant's sample of a Prometheus counter at URL (the demo's freshness
# probe clicks for a tenant of its own, which is left out).
metric() {
  curl -sf "$1/metrics" | awk -v m="$2{tenant=\"$3\"}" '$1 == m { s += $2 } END { printf "%.0f\n", s }'
}
json() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($1)" "$STATE"; }

"$BIN" demo --cluster --no-traffic --state-file "$STATE" --dir "$OUT/pop" >"$OUT/demo.log" 2>&1 &
POP_PID=$!
for _ in $(seq 1800); do
  [ -s "$STATE" ] && break
  kill -0 "$POP_PID" 2>/dev/null || { echo "demo exited:" >&2; tail -20 "$OUT/demo.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$STATE" ] || { echo "cluster demo not ready after 180 s" >&2; exit 1; }

TENANT="$(json 's["tenant"]')" KEY="$(json 's["ingest_key"]')" READ_KEY="$(json 's["read_key"]')"
read -r -a EDGES <<<"$(json '" ".join(e["http"] for e in s["edges"])')"
read -r -a CORES <<<"$(json '" ".join(c["http"] for c in s["cores"])')"
read -r -a PIDS <<<"$(json '" ".join(map(str, s["pids"]))')"

# The role of each process, from its command line.
declare -A ROLE
for p in "${PIDS[@]}"; do
  cmd="$(tr '\0' ' ' <"/proc/$p/cmdline")"
  case "$cmd" in
    *clickhouse*) ROLE[$p]=clickhouse ;;
    *zookeeper*) ROLE[$p]=zookeeper ;;
    *" core "*|*" core") ROLE[$p]=core ;;
    *" edge "*|*" edge") ROLE[$p]=edge ;;
    *) echo "unknown process $p: $cmd" >&2; exit 1 ;;
  esac
done
for e in "${EDGES[@]}"; do for _ in $(seq 100); do curl -sf "$e/metrics" >/dev/null && break; sleep 0.1; done; done

accepted() { local s=0 e; for e in "${EDGES[@]}"; do s=$((s + $(metric "$e" tally_edge_events_accepted_total "$TENANT"))); done; echo "$s"; }

declare -A T0
for p in "${PIDS[@]}"; do T0[$p]="$(ticks "$p")"; done
n0="$(accepted)"
start_ms="$(date +%s%3N)"
i=0
for e in "${EDGES[@]}"; do
  i=$((i + 1))
  "$BIN" load --seconds "$SECS" --edge "$e" --key "$KEY" $LOAD_ARGS >"$OUT/load-$i.out" 2>"$OUT/load-$i.err" &
  GENS+=($!)
done
gen_ticks=0
for g in "${GENS[@]}"; do wait "$g" || { echo "a generator failed:" >&2; cat "$OUT"/load-*.err >&2; exit 1; }; done
GENS=()
events=$(($(accepted) - n0))
sleep "$SETTLE"
declare -A SUM
for p in "${PIDS[@]}"; do r="${ROLE[$p]}"; SUM[$r]=$(( ${SUM[$r]:-0} + $(ticks "$p") - ${T0[$p]} )); done

# Every accepted click reaches the cluster (read through the second core).
end_ms=$(( $(date +%s%3N) + 1000 ))
seen=0
for _ in $(seq 120); do
  seen="$(curl -sf -H "Authorization: Bearer $READ_KEY" "${CORES[-1]}/v1/clicks?from=$((start_ms - 60000))&to=$end_ms&step=1m" \
    | python3 -c 'import json,sys; print(sum(p["clicks"] for p in json.load(sys.stdin)["points"]))' 2>/dev/null || echo 0)"
  [ "$seen" -ge "$events" ] && break
  sleep 1
done

per_event() { awk -v t="$1" -v n="$events" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else printf "n/a" }'; }
{
  echo "cluster demo (2 edges, 2 cores, 2 shards x 2 replicas, ZooKeeper), load per edge: $LOAD_ARGS, $SECS s + $SETTLE s settle"
  echo "accepted events: $events ($(awk -v n="$events" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }') events/s); read back through core 2: $seen"
  echo
  echo "| role | processes | µs CPU per event (all of the role's processes) |"
  echo "|---|---:|---:|"
  for r in edge core clickhouse zookeeper; do
    count=0; for p in "${PIDS[@]}"; do [ "${ROLE[$p]}" = "$r" ] && count=$((count + 1)); done
    echo "| $r | $count | $(per_event "${SUM[$r]:-0}") |"
  done
  for f in "$OUT"/load-*.out; do echo "load $(basename "$f"): $(tail -1 "$f")"; done
} | tee "$OUT/table.md"
[ "$seen" -ge "$events" ] || { echo "only $seen of $events accepted clicks were read back" >&2; exit 1; }
