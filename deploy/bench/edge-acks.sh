#!/usr/bin/env bash
# Edge throughput through the full local pipeline (edge -> core -> private
# ClickHouse 18.16), memory acks vs durable acks (WAL + group commit), in one
# run on this machine. Usage: deploy/bench/edge-acks.sh [connections] [batch] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${TALLY_BIN:-target/release/tally}"
CONNS="${1:-8}" BATCH="${2:-1000}" SECS="${3:-10}"
[ -x "$BIN" ] || cargo build --release --locked -p tally
for mode in memory durable; do
  dir="$(mktemp -d)"
  "$BIN" demo --no-traffic --ack "$mode" --state-file "$dir/state.json" --dir "$dir/pop" >"$dir/demo.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -f "$dir/state.json" ] && break; kill -0 "$pid" 2>/dev/null || { cat "$dir/demo.log"; exit 1; }; sleep 0.1; done
  edge=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["edge_http"])' "$dir/state.json")
  key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ingest_key"])' "$dir/state.json")
  printf '%-8s ' "$mode"
  "$BIN" load --edge "$edge" --key "$key" --connections "$CONNS" --batch "$BATCH" --seconds "$SECS"
  grep -h 'tally_edge_wal_fsyncs_total\|tally_edge_wal_records_total' <(curl -s "$edge/metrics") | tr '\n' ' ' ; echo
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$dir"
done
