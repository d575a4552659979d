#!/usr/bin/env bash
# Per transport: events/s for 1000-event batches and requests/s for one-event
# requests, through the full edge pipeline (local POP: durable acks, core,
# private ClickHouse 18.16) and, as the baseline measured in the same run,
# through a null handler on the same transport (`tally load --null-server`).
# Usage: deploy/bench/transports.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${TALLY_BIN:-target/release/tally}"
SECS="${1:-10}"
[ -x "$BIN" ] || cargo build --release --locked -p tally
dir="$(mktemp -d)"
"$BIN" demo --no-traffic --state-file "$dir/state.json" --dir "$dir/pop" >"$dir/demo.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do [ -f "$dir/state.json" ] && break; kill -0 "$pid" || { cat "$dir/demo.log"; exit 1; }; sleep 0.1; done
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$dir/state.json" "$1"; }
key=$(field ingest_key); http=$(field edge_http); h3=$(field edge_h3); cert=$(field edge_cert)
run() { # label args...
  printf "%-34s " "$1"; shift
  "$BIN" load --seconds "$SECS" "$@" 2>/dev/null
}
for proto in 1 2 3; do
  case $proto in 1) target=(--edge "$http") ;; 2) target=(--edge "$http") ;; 3) target=(--edge "$h3" --cacert "$cert") ;; esac
  shape_batch=(--connections 2 --streams 4 --batch 1000)
  shape_tiny=(--connections 64 --streams 1 --batch 1)
  [ "$proto" = 1 ] && shape_batch=(--connections 8 --batch 1000)
  [ "$proto" != 1 ] && shape_tiny=(--connections 1 --streams 64 --batch 1)
  run "HTTP/$proto null  1000-event batches" --null-server --http $proto "${shape_batch[@]}"
  run "HTTP/$proto edge  1000-event batches" --key "$key" --http $proto "${target[@]}" "${shape_batch[@]}"
  run "HTTP/$proto null  1-event requests" --null-server --http $proto "${shape_tiny[@]}"
  run "HTTP/$proto edge  1-event requests" --key "$key" --http $proto "${target[@]}" "${shape_tiny[@]}"
done
