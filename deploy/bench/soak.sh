#!/usr/bin/env bash
# Soak: a local POP (`tally demo --no-traffic`: durable acks, core, private
# ClickHouse 18.16) driven at a fixed rate for a long time, to see what short
# benchmarks never do: stalls, growing memory, a dedup horizon that does not
# hold, parts and bytes piling up in ClickHouse, counts that drift (issue 12).
#
# Usage: deploy/bench/soak.sh RATE SECONDS
#   TALLY_BIN  the binary (default target/release/tally)
#   LOAD_BIN   the generator (default TALLY_BIN; needs `tally load --report-every` and `--max-error-rate`:
#              errors are what the soak measures, so they do not end it)
#   CONNS, BATCH, ADS  the load's shape (default 8 connections x 1000-event
#              batches over HTTP/1.1, 999 ads: they fit in one top-ads answer;
#              the demo's freshness probe clicks for a tenant of its own)
#   DEDUP_KEYS the demo tenant's dedup share in click ids (default RATE x
#              min(SECONDS, 3600) + 5 %: every id of the run stays known, so
#              the covered horizon must grow with the run and never fall;
#              about 27 bytes each: 30 min at 150k/s is 283M ids, 7.6 GB)
#   OUT        where results go (default /var/tmp/bench/soak-<time>)
#
# The generator is `tally load --rate RATE --open-loop`: requests leave on
# schedule whether or not answers came back, and latency counts from the
# scheduled time, so a stall shows in latency instead of slowing the sender.
# Every 5 s (`--report-every 5`) it prints the interval's accepted rate,
# p99/p99.9 and its longest stall: the longest time between two successful
# answers, stamped in completion order by the generator itself (exact, no
# sampling; a stall still going on counts up to the report). Beside each line
# this script samples: the 1-minute load average (other work on the machine
# shows as stalls too), the time the edge's threads spent runnable but waiting
# for a CPU over the interval (run-queue delay from /proc/<pid>/task/*/schedstat:
# CPU contention, not the edge's own waits), RSS of edge, core and ClickHouse
# (VmRSS), the WAL
# fsyncs of the interval slower than 100 ms, the demo tenant's dedup entries,
# covered horizon and early evictions, the dedup memory, the spool depth, and
# ClickHouse's active parts and bytes on disk over every table of the `tally`
# database per click in the landing table.
#
# At the end: per-table parts and bytes, then exact counts of the demo tenant
# (the freshness probe clicks for a tenant of its own). What the generator saw
# accepted must equal what the edge counted and what the query API shows (top
# ads, all ads) once the POP has caught up (waits up to 180 s). Billing is
# asked too (BILLING=0 skips it): it dedups every click id over the raw click
# records, so over a long run at this rate it outlasts the API's query deadline
# and answers 504 (BENCHMARKS.md, soak section); that is reported as such.
# Exits 1 if a count differs or billing answered with another count.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || { echo "usage: $0 RATE SECONDS" >&2; exit 2; }
RATE="$1" SECS="$2"
BIN="$(realpath "${TALLY_BIN:-target/release/tally}")"
LOAD="$(realpath "${LOAD_BIN:-$BIN}")"
CONNS="${CONNS:-8}" BATCH="${BATCH:-1000}" ADS="${ADS:-999}" EVERY=5
TENANT=demo
DEDUP_KEYS="${DEDUP_KEYS:-$((RATE * (SECS < 3600 ? SECS : 3600) * 105 / 100))}"
BILLING_CHECK="${BILLING:-1}"
OUT="${OUT:-/var/tmp/bench/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
[ -x "$BIN" ] || cargo build --release --locked -p tally

STARTED=()
cleanup() {
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STATE="$OUT/state.json"
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(" ".join(map(str, v)) if isinstance(v, list) else v)' "$STATE" "$1"; }
"$BIN" demo --no-traffic --dedup-max-entries-per-tenant "$DEDUP_KEYS" --state-file "$STATE" --dir "$OUT/pop" >"$OUT/demo.log" 2>&1 &
POP_PID=$!
STARTED+=("$POP_PID")
for _ in $(seq 1200); do
  [ -s "$STATE" ] && break
  kill -0 "$POP_PID" 2>/dev/null || { echo "demo exited:" >&2; tail -20 "$OUT/demo.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$STATE" ] || { echo "demo not ready after 120 s" >&2; exit 1; }
read -r -a PIDS <<<"$(field pids)"
[ "${#PIDS[@]}" -eq 3 ] || { echo "expected [clickhouse, core, edge] pids, got ${PIDS[*]}" >&2; exit 1; }
CH="${PIDS[0]}" CORE="${PIDS[1]}" EDGE="${PIDS[2]}"
# Each is the demo's child (the pids come from the POP itself, not from names).
for p in "${PIDS[@]}"; do
  read -r line <"/proc/$p/stat"
  rest="${line##*) }"
  [ "$(cut -d' ' -f2 <<<"$rest")" = "$POP_PID" ] || { echo "pid $p is not a child of the demo ($POP_PID)" >&2; exit 1; }
done
EDGE_HTTP="$(field edge_http)" CORE_HTTP="$(field core_http)" CH_HTTP="$(field clickhouse_http)"
KEY="$(field ingest_key)" READ_KEY="$(field read_key)"
for _ in $(seq 100); do curl -sf "$EDGE_HTTP/metrics" >/dev/null && break; sleep 0.1; done

rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo -; }
# A metric's sum over its label sets, "-" when the binary has no such metric.
metric() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2; found = 1 } END { if (found) printf "%.0f", s; else printf "-" }' "$METRICS"; }
# The demo tenant's value of a per-tenant metric.
tenant_metric() { awk -v n="$1{tenant=\"$TENANT\"}" '$1 == n { v = $2; found = 1 } END { if (found) printf "%.0f", v; else printf "-" }' "$METRICS"; }
# WAL fsyncs so far that took more than 100 ms (histogram bucket 0.1024 s).
slow_fsyncs() { awk '$1 == "tally_edge_wal_fsync_seconds_count" { c = $2 } $1 == "tally_edge_wal_fsync_seconds_bucket{le=\"0.1024\"}" { b = $2 } END { if (c == "") print "-"; else printf "%.0f", c - b }' "$METRICS"; }
ch() { curl -sf --data-binary "$1" "$CH_HTTP/"; }
# Nanoseconds the process's threads have waited runnable on a run queue.
runq_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f", s }'; }

{
  echo "date: $(date -u +%FT%TZ); binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1)); generator: $LOAD"
  echo "machine: $(nproc) cores; uptime: $(uptime)"
  echo "load: $RATE events/s open loop for $SECS s, HTTP/1.1 $CONNS connections x $BATCH events, $ADS ads; dedup share $DEDUP_KEYS ids"
} | tee "$OUT/summary.txt"

STARTED_MS=$(($(date +%s%N) / 1000000))
"$LOAD" load --edge "$EDGE_HTTP" --key "$KEY" --rate "$RATE" --open-loop --seconds "$SECS" \
  --connections "$CONNS" --batch "$BATCH" --ads "$ADS" --report-every "$EVERY" --max-error-rate 1 >"$OUT/load.out" 2>"$OUT/load.err" &
LOAD_PID=$!
STARTED+=("$LOAD_PID")

ROW='%-10s %9s %6s %8s %8s %4s %5s %5s | %8s | %6s %6s %6s | %5s | %10s %7s %7s %7s | %7s %9s | %6s %8s %6s\n'
printf "$ROW" interval "events/s" stall p99 p99.9 err load1 runq "edge e/s" "edge" core "CH" fsync \
  "dedup" horizon evicted "dedupMB" spool "spoolB" parts "CH MB" "B/click" | tee "$OUT/samples.txt"
printf "$ROW" "" "" ms ms ms "" "" ms "" "RSS MB" "" "" ">100ms" entries s early "" batches "" "" "" "" | tee -a "$OUT/samples.txt"
METRICS="$OUT/metrics.txt"
seen=0 last_acc="" last_t="" last_slow=0 last_runq="$(runq_ns "$EDGE")"
# One row per interval line of the generator, sampled as it appears.
while kill -0 "$LOAD_PID" 2>/dev/null; do
  lines=$(grep -c '^interval' "$OUT/load.out" || true)
  if [ "$lines" -le "$seen" ]; then sleep 0.2; continue; fi
  seen=$lines
  line="$(grep '^interval' "$OUT/load.out" | sed -n "${lines}p")"
  curl -sf --max-time 3 "$EDGE_HTTP/metrics" >"$METRICS" || : >"$METRICS"
  now=$(date +%s.%N) acc="$(tenant_metric tally_edge_events_accepted_total)"
  edge_rate=-
  if [ -n "$last_acc" ] && [ "$last_acc" != - ] && [ "$acc" != - ]; then edge_rate=$(awk -v a="$acc" -v b="$last_acc" -v t="$now" -v u="$last_t" 'BEGIN { printf "%.0f", (a - b) / (t - u) }'); fi
  last_acc="$acc" last_t="$now"
  runq="$(runq_ns "$EDGE")" runq_ms=$(((runq - last_runq) / 1000000)) last_runq=$runq
  slow="$(slow_fsyncs)" slow_new=-
  if [ "$slow" != - ]; then slow_new=$((slow - last_slow)) last_slow=$slow; fi
  read -r parts bytes <<<"$(ch "SELECT count(), sum(bytes_on_disk) FROM system.parts WHERE database = 'tally' AND active FORMAT TSV" || echo "- -")"
  clicks="$(ch "SELECT sum(clicks) FROM tally.clicks_by_second FORMAT TSV" || echo 0)"
  read -r ival ev stall p99 p999 err <<<"$(awk '{ for (i = 1; i < NF; i++) { if ($i == "stall") s = $(i + 2); v[$i] = $(i + 1) }
    print $2, v["events/s"], s, v["p99"], v["p99.9"], v["errors"] }' <<<"$line")"
  printf "$ROW" \
    "$ival" "$ev" "$stall" "$p99" "$p999" "$err" "$(cut -d' ' -f1 /proc/loadavg)" "$runq_ms" "$edge_rate" \
    "$(rss_mb "$EDGE")" "$(rss_mb "$CORE")" "$(rss_mb "$CH")" "$slow_new" \
    "$(tenant_metric tally_edge_dedup_tenant_entries)" "$(tenant_metric tally_edge_dedup_horizon_seconds)" "$(tenant_metric tally_edge_dedup_tenant_evicted_early_total)" \
    "$(awk -v b="$(metric tally_edge_dedup_memory_bytes)" 'BEGIN { if (b == "-") print "-"; else printf "%.0f", b / 1048576 }')" \
    "$(metric tally_edge_spool_pending_batches)" "$(metric tally_edge_spool_bytes)" \
    "$parts" "$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }')" \
    "$(awk -v b="$bytes" -v c="$clicks" 'BEGIN { if (c > 0) printf "%.1f", b / c; else print "-" }')" | tee -a "$OUT/samples.txt"
done
wait "$LOAD_PID" || { echo "load failed:" >&2; cat "$OUT/load.err" >&2; exit 1; }
STARTED=("$POP_PID")
FINAL="$(grep -v '^interval' "$OUT/load.out" | tail -1)"
ENDED_MS=$(($(date +%s%N) / 1000000))
echo "load: $FINAL" | tee -a "$OUT/summary.txt"
token() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' <<<"$FINAL"; }
SENT_OK="$(token events)" REQUESTS="$(token requests)"

# Counts once the POP has caught up: the API total stops changing or matches.
FROM=$((STARTED_MS - 600000)) TO=$((ENDED_MS + 600000))
api_total() {
  curl -sf --max-time 30 -H "Authorization: Bearer $READ_KEY" "$CORE_HTTP/v1/ads?from=$FROM&to=$TO&limit=1000" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(a["clicks"] for a in d["ads"]), len(d["ads"]))'
}
prev="" stable=0
for _ in $(seq 180); do
  read -r api api_ads <<<"$(api_total || echo "- -")"
  [ "$api" = "$SENT_OK" ] && break
  if [ "$api" = "$prev" ]; then stable=$((stable + 1)); else stable=0; fi
  [ "$stable" -ge 30 ] && break
  prev="$api"
  sleep 1
done
curl -sf --max-time 10 "$EDGE_HTTP/metrics" >"$METRICS" || : >"$METRICS"
EDGE_ACC="$(tenant_metric tally_edge_events_accepted_total)"
BILLING=- BILLING_NOTE="not asked (BILLING=0)"
if [ "$BILLING_CHECK" != 0 ]; then
  read -r code secs <<<"$(curl -s --max-time 300 -o "$OUT/billing.json" -w '%{http_code} %{time_total}' \
    -H "Authorization: Bearer $READ_KEY" "$CORE_HTTP/v1/billing?from=$FROM&to=$TO" || echo "000 -")"
  if [ "$code" = 200 ]; then
    BILLING="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(a["clicks"] + a.get("adjustments", 0) for h in d["hours"] for a in h["ads"]))' "$OUT/billing.json")"
    BILLING_NOTE="answered in $secs s"
  else
    BILLING_NOTE="answered $code after $secs s: $(head -c 300 "$OUT/billing.json" 2>/dev/null)"
  fi
fi

{
  echo
  echo "ClickHouse, database tally, active parts per table (after the run):"
  ch "SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes, round(sum(bytes_on_disk) / $SENT_OK, 2) AS bytes_per_click FROM system.parts WHERE database = 'tally' AND active GROUP BY table ORDER BY bytes DESC FORMAT PrettyCompactNoEscapes"
  ch "SELECT 'total', count(), sum(rows), sum(bytes_on_disk), round(sum(bytes_on_disk) / $SENT_OK, 2) FROM system.parts WHERE database = 'tally' AND active FORMAT TSV"
  echo
  echo "longest stall over the run: $(awk '{ for (i = 1; i < NF; i++) if ($i == "stall") print $(i + 2) }' <<<"$FINAL") ms (between successful answers, from the generator)"
  echo "intervals with a stall over 250 ms: $(awk 'NR > 2 && $3 + 0 > 250' "$OUT/samples.txt" | wc -l) of $(awk 'NR > 2' "$OUT/samples.txt" | wc -l)"
  echo "dedup ($TENANT): $(tenant_metric tally_edge_dedup_tenant_entries) ids, covered horizon $(tenant_metric tally_edge_dedup_horizon_seconds) s, early evictions $(tenant_metric tally_edge_dedup_tenant_evicted_early_total), share $DEDUP_KEYS"
  echo "generator: $REQUESTS requests, $SENT_OK events accepted; errors $(awk -F'errors ' '{ print $2 }' <<<"$FINAL" | cut -d'}' -f1)}"
  echo "edge accepted ($TENANT): $EDGE_ACC"
  echo "query API (top ads, $api_ads ads): $api"
  echo "billing: $BILLING ($BILLING_NOTE)"
  # The finalizer re-reads every click record of its lookback (48 h) each pass (10 s): once an
  # hour of this run is final, that query is the heaviest thing on the machine.
  echo "billing finalizer passes failed: $(grep -c 'billing finalization pass failed' "$OUT/pop/core.log" 2>/dev/null || true)"
} | tee -a "$OUT/summary.txt"
ok=1
[ "$api" = "$SENT_OK" ] || ok=0
[ "$EDGE_ACC" = "$SENT_OK" ] || ok=0
[ "$BILLING" = - ] || [ "$BILLING" = "$SENT_OK" ] || ok=0
if [ "$ok" = 1 ] && [ "$BILLING" != - ]; then
  echo "counts: exact (generator = edge = API = billing)"
elif [ "$ok" = 1 ]; then
  echo "counts: exact (generator = edge = API); billing not compared: $BILLING_NOTE"
else
  echo "counts: DIFFER"
fi | tee -a "$OUT/summary.txt"
echo "uptime after: $(uptime)" | tee -a "$OUT/summary.txt"
stop_started=$(date +%s.%N)
kill -TERM "$POP_PID" 2>/dev/null || true
wait "$POP_PID" 2>/dev/null || true
echo "the POP stopped in $(awk -v a="$stop_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after SIGTERM" | tee -a "$OUT/summary.txt"
STARTED=()
rm -rf "$OUT/pop"
echo "results: $OUT"
[ "$ok" = 1 ]
