#!/usr/bin/env bash
# CPU microseconds per accepted event, per process (edge, core, ClickHouse
# server, the load generator), for a local POP (`tally demo --no-traffic`:
# durable acks, core, private ClickHouse 18.16) driven by `tally load`, plus
# events/s, requests/s and p50/p99 latency as `tally load` reports them.
# Throughput on a shared 2-core machine swings by tens of percent; CPU time
# per event per process is the steadier measure (issue 14).
#
# Usage: deploy/bench/cpu-per-event.sh [--perf] [--seconds N] [--out DIR] [--only IDS]
#   --only        comma-separated subset of h1-batch,h3-batch,h3-single,h1-single,peer
#   TALLY_BIN     the binary measured (default target/release/tally)
#   BASELINE_BIN  optional: every shape also runs with this binary, interleaved
#                 with TALLY_BIN's runs, and both are printed side by side
#   LOAD_BIN      the generator for every run (default TALLY_BIN): one
#                 generator for both binaries, so only the POP differs; it must
#                 know `tally load --clickhouse-table` for the peer
#   PERF=1        same as --perf; SECONDS_PER_SHAPE same as --seconds (10)
#
# Method. Each shape runs against a fresh POP (its own ClickHouse data, no
# merges left over from the shape before). CPU is utime+stime from
# /proc/<pid>/stat, read right before the generator starts and right after it
# exits, in clock ticks (`getconf CLK_TCK`); the generator's own is its
# cutime+cstime as seen by the subshell that waited for it. Accepted events
# are the edge's `tally_edge_events_accepted_total` over the same window (for
# the peer: rows counted in its landing table). The edge and core pids are the
# POP's (state file, `pids`: [ClickHouse,] core, edge); ClickHouse is the
# demo's one other child, found by walking the demo's process tree.
# Core and ClickHouse work trails the edge by about a ship interval (and
# merges come later still): short windows undercount them; keep >= 10 s.
#
# The peer: what a user might do instead. Raw clicks POSTed as `JSONEachRow`
# in 1000-row bodies over keep-alive HTTP/1.1 straight into the same
# ClickHouse 18.16, database `peer`, landing table + three materialized views
# shaped like Tally's minute/hour/day rollups (deploy/clickhouse/bench/peer.sql).
#
# --perf: an extra, unmeasured pass of the HTTP/1.1 batch shape per binary
# under `perf record -F 499 -g -p <pid>` of edge, core and ClickHouse; the top symbols
# (`perf report --no-children`, >= 1 %) are written next to the results.
#
# Output: a Markdown table (also in OUT/table.md), raw lines (OUT/raw.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

PERF="${PERF:-0}" SECS="${SECONDS_PER_SHAPE:-10}" OUT="" ONLY="h1-batch,h3-batch,h3-single,h1-single,peer"
while [ $# -gt 0 ]; do
  case "$1" in
    --perf) PERF=1 ;;
    --seconds) SECS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    *) echo "usage: $0 [--perf] [--seconds N] [--out DIR] [--only IDS]" >&2; exit 2 ;;
  esac
  shift
done
BIN="$(realpath "${TALLY_BIN:-target/release/tally}")"
BASE="${BASELINE_BIN:+$(realpath "$BASELINE_BIN")}"
LOAD="$(realpath "${LOAD_BIN:-$BIN}")"
OUT="${OUT:-/var/tmp/bench/cpu-per-event-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
HZ="$(getconf CLK_TCK)"
[ -x "$BIN" ] || cargo build --release --locked -p tally
for b in "$BIN" ${BASE:+"$BASE"} "$LOAD"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 1; }; done

# Everything started here is stopped by pid on exit.
STARTED=()
cleanup() {
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
# Forgets a pid once it is stopped (so a reused pid is never signalled).
forget() {
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}
trap 'exit 130' INT TERM

# utime+stime of a process, in clock ticks (fields 14 and 15 of its stat; the
# fields are counted after the command name, which may hold spaces).
ticks() {
  local line rest
  read -r line <"/proc/$1/stat"
  rest="${line##*) }"
  set -- $rest
  echo $((${12} + ${13}))
}

# The direct children of a process.
children() {
  local f line rest
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    rest="${line##*) }"
    set -- $rest
    if [ "$2" = "$PARENT" ]; then echo "${f//[^0-9]/}"; fi
  done
}

# Sum of a Prometheus metric's samples (all label sets) at URL.
metric() {
  curl -sf "$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(" ".join(map(str, v)) if isinstance(v, list) else v)' "$STATE" "$1"; }

# Starts a fresh POP of binary $1 in $2; sets POP_PID, STATE, EDGE, CORE, CH,
# the addresses and keys.
start_pop() {
  local bin="$1" dir="$2"
  mkdir -p "$dir"
  STATE="$dir/state.json"
  "$bin" demo --no-traffic --state-file "$STATE" --dir "$dir/pop" >"$dir/demo.log" 2>&1 &
  POP_PID=$!
  STARTED+=("$POP_PID")
  for _ in $(seq 1200); do
    [ -s "$STATE" ] && break
    kill -0 "$POP_PID" 2>/dev/null || { echo "demo exited:" >&2; tail -20 "$dir/demo.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$STATE" ] || { echo "demo not ready after 120 s" >&2; exit 1; }
  local pids
  read -r -a pids <<<"$(field pids)"
  [ "${#pids[@]}" -eq 3 ] || { echo "expected [clickhouse, core, edge] pids, got ${pids[*]}" >&2; exit 1; }
  CORE="${pids[1]}" EDGE="${pids[2]}" CH=""
  local kids
  kids="$(PARENT="$POP_PID" children)"
  for p in $kids; do
    if [ "$p" != "$CORE" ] && [ "$p" != "$EDGE" ]; then
      [ -z "$CH" ] || { echo "more than one other child of the demo: $CH $p" >&2; exit 1; }
      CH="$p"
    fi
  done
  for p in "$CORE" "$EDGE"; do
    grep -qx "$p" <<<"$kids" || { echo "pid $p is not a child of the demo ($POP_PID)" >&2; exit 1; }
  done
  [ -n "$CH" ] || { echo "no ClickHouse child of the demo" >&2; exit 1; }
  EDGE_HTTP="$(field edge_http)" EDGE_H3="$(field edge_h3)" CERT="$(field edge_cert)"
  KEY="$(field ingest_key)" CH_HTTP="$(field clickhouse_http)"
  for _ in $(seq 100); do curl -sf "$EDGE_HTTP/metrics" >/dev/null && break; sleep 0.1; done
}

stop_pop() {
  kill -TERM "$POP_PID" 2>/dev/null || true
  wait "$POP_PID" 2>/dev/null || true
  forget "$POP_PID"
  # The demo stops its children; one left behind (a killed demo) is stopped by pid.
  for p in "$EDGE" "$CORE" "$CH"; do kill -0 "$p" 2>/dev/null && kill -TERM "$p"; done
  rm -rf "$(dirname "$STATE")/pop"
}

# Runs the generator ($LOAD load ARGS...) and records, over exactly its run,
# each process's CPU ticks and the accepted events ($1: how to count them).
# Sets D_EDGE D_CORE D_CH D_GEN EVENTS LOADLINE.
measure() {
  local count="$1"; shift
  local e0 c0 h0 n0 gen_file="$OUT/gen.$$"
  n0="$($count)"
  e0="$(ticks "$EDGE")" c0="$(ticks "$CORE")" h0="$(ticks "$CH")"
  (
    "$LOAD" load --seconds "$SECS" "$@" >"$OUT/load.out" 2>"$OUT/load.err" || { cat "$OUT/load.err" >&2; exit 1; }
    read -r line <"/proc/$BASHPID/stat"
    rest="${line##*) }"
    set -- $rest
    echo $((${14} + ${15})) >"$gen_file"
  )
  D_EDGE=$(($(ticks "$EDGE") - e0)) D_CORE=$(($(ticks "$CORE") - c0)) D_CH=$(($(ticks "$CH") - h0))
  EVENTS=$(($($count) - n0))
  D_GEN="$(cat "$gen_file")"
  rm -f "$gen_file"
  LOADLINE="$(tail -1 "$OUT/load.out")"
}

edge_accepted() { metric "$EDGE_HTTP" tally_edge_events_accepted_total; }
peer_rows() { curl -sf "$CH_HTTP/?query=SELECT%20count()%20FROM%20peer.clicks"; }

# µs of CPU per event for a tick count.
per_event() { awk -v t="$1" -v n="$EVENTS" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else printf "n/a" }'; }
# An integer with thousands separators.
group() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
# A value from the load line: the token after $1.
from_load() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { printf "%s", $(i + 1); exit } }' <<<"$LOADLINE"; }

ROWS=()
# record SHAPE BINARY-LABEL BATCH [no-pop-columns]
record() {
  local shape="$1" label="$2" batch="$3" peer="${4:-}"
  local ev_s rq_s p50 p99 edge core
  ev_s="$(from_load events/s)" rq_s="$(from_load requests/s)" p50="$(from_load p50)" p99="$(from_load p99)"
  edge="$(per_event "$D_EDGE")" core="$(per_event "$D_CORE")"
  [ -n "$peer" ] && edge="—" core="—"
  local per_req
  per_req="$(awk -v e="$edge" -v b="$batch" 'BEGIN { if (e == "—") print e; else printf "%.1f", e * b }')"
  ROWS+=("| $shape | $label | $(group "$ev_s") | $(group "$rq_s") | $p50 / $p99 | $edge | $per_req | $core | $(per_event "$D_CH") | $(per_event "$D_GEN") |")
  echo "raw shape=\"$shape\" binary=$label seconds=$SECS events=$EVENTS ticks_edge=$D_EDGE ticks_core=$D_CORE ticks_clickhouse=$D_CH ticks_generator=$D_GEN clk_tck=$HZ load: $LOADLINE" | tee -a "$OUT/raw.txt"
}

SHAPES=(
  "h1-batch|HTTP/1.1, 8 connections x 1000-event batches|1000|--http 1 --connections 8 --batch 1000"
  "h3-batch|HTTP/3, 2 connections x 4 streams x 1000|1000|--http 3 --connections 2 --streams 4 --batch 1000"
  "h3-single|HTTP/3, 1 connection x 64 streams x 1 event|1|--http 3 --connections 1 --streams 64 --batch 1"
  "h1-single|HTTP/1.1, 64 connections x 1 event|1|--http 1 --connections 64 --batch 1"
)
if [ -n "$BASE" ]; then BINS=("before|$BASE" "after|$BIN"); else BINS=("tally|$BIN"); fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "uptime before: $(uptime)"
  for b in "${BINS[@]}"; do echo "binary ${b%%|*}: ${b#*|} ($(stat -c %y "${b#*|}" | cut -d. -f1))"; done
  echo "generator: $LOAD; seconds per shape: $SECS"
} | tee "$OUT/machine.txt"

n=0
for s in "${SHAPES[@]}"; do
  IFS='|' read -r id shape batch args <<<"$s"
  [[ ",$ONLY," == *",$id,"* ]] || continue
  for b in "${BINS[@]}"; do
    label="${b%%|*}" bin="${b#*|}"
    n=$((n + 1))
    start_pop "$bin" "$OUT/run-$n-$id-$label"
    target=(--edge "$EDGE_HTTP")
    case "$args" in *"--http 3"*) target=(--edge "$EDGE_H3" --cacert "$CERT") ;; esac
    # shellcheck disable=SC2086
    measure edge_accepted --key "$KEY" "${target[@]}" $args
    record "$shape" "$label" "$batch"
    if [ "$PERF" = 1 ] && [ "$id" = h1-batch ]; then
      perf record -F 499 -g -p "$EDGE" -o "$OUT/perf-$label-edge.data" -- sleep "$SECS" >"$OUT/perf-$label-edge.log" 2>&1 &
      pe=$!; STARTED+=("$pe")
      perf record -F 499 -g -p "$CORE" -o "$OUT/perf-$label-core.data" -- sleep "$SECS" >"$OUT/perf-$label-core.log" 2>&1 &
      pc=$!; STARTED+=("$pc")
      perf record -F 499 -g -p "$CH" -o "$OUT/perf-$label-clickhouse.data" -- sleep "$SECS" >"$OUT/perf-$label-clickhouse.log" 2>&1 &
      ph=$!; STARTED+=("$ph")
      # shellcheck disable=SC2086
      "$LOAD" load --seconds "$SECS" --key "$KEY" "${target[@]}" $args >"$OUT/perf-$label-load.out" 2>/dev/null
      wait "$pe" "$pc" "$ph" || true
      forget "$pe"; forget "$pc"; forget "$ph"
      for role in edge core clickhouse; do
        perf report -i "$OUT/perf-$label-$role.data" --no-children --stdio --percent-limit 1 -g none 2>/dev/null \
          | grep -E '^ +[0-9.]+%' | head -25 >"$OUT/perf-$label-$role.txt" || true # head may cut perf off (SIGPIPE)
        echo "perf top symbols, $label $role (HTTP/1.1 8 x 1000, $(tail -1 "$OUT/perf-$label-load.out" | awk '{print $2}') events/s under perf):"
        cat "$OUT/perf-$label-$role.txt"
      done
    fi
    stop_pop
  done
done

# The peer, in a fresh POP of TALLY_BIN (Tally idle): its ClickHouse only.
if [[ ",$ONLY," != *",peer,"* ]]; then
  :
elif ! "$LOAD" load --help | grep -q -- --clickhouse-table; then
  echo "peer skipped: $LOAD has no \`load --clickhouse-table\` (set LOAD_BIN)" | tee -a "$OUT/raw.txt"
else
n=$((n + 1))
start_pop "$BIN" "$OUT/run-$n-peer"
# Statements split the way Tally's migration runner splits them: on ';' at
# line end, comment-only lines dropped.
while IFS= read -r -d '' stmt; do
  curl -sf --data-binary "$stmt" "$CH_HTTP/" >/dev/null || { echo "peer DDL failed: $stmt" >&2; curl -s --data-binary "$stmt" "$CH_HTTP/" >&2; exit 1; }
done < <(python3 -c '
import re, sys
text = "\n".join(l for l in open(sys.argv[1]) .read().splitlines() if not l.strip().startswith("--"))
for stmt in re.split(r";[ \t]*$", text, flags=re.M):
    if stmt.strip():
        sys.stdout.write(stmt.strip() + "\0")
' deploy/clickhouse/bench/peer.sql)
measure peer_rows --edge "$CH_HTTP" --clickhouse-table peer.clicks --http 1 --connections 8 --batch 1000
record "peer: JSONEachRow into ClickHouse + 3 MVs, 8 connections x 1000 rows" "ClickHouse 18.16" 1000 peer
stop_pop
fi

echo "uptime after: $(uptime)" | tee -a "$OUT/machine.txt"
{
  echo
  echo "| load | binary | events/s | requests/s | latency ms p50 / p99 | edge µs CPU/event | edge µs/request | core µs/event | ClickHouse µs/event | generator µs/event |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/table.md"
echo "results: $OUT"
