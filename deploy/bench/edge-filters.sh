#!/usr/bin/env bash
# Edge throughput through the full local pipeline (edge -> core -> private
# ClickHouse 18.16) with a tenant filter from the registry, against no filter,
# in one run on this machine. Clicks carry a User-Agent and an IP.
# Usage: deploy/bench/edge-filters.sh [connections] [batch] [seconds]
# TALLY_BIN: the tally binary to measure; TALLY_FILTERS: which plugins (default: all, after none).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${TALLY_BIN:-target/release/tally}"
CONNS="${1:-8}" BATCH="${2:-1000}" SECS="${3:-10}"
PLUGINS=plugins/target/wasm32-wasip2/release
[ -x "$BIN" ] || cargo build --release --locked -p tally
[ -f "$PLUGINS/tally_plugin_noop.wasm" ] || cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir plugins/target
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
for plugin in ${TALLY_FILTERS:-none noop bot_filter geo_enrich flood_filter}; do
  dir="$(mktemp -d)"
  "$BIN" demo --no-traffic --state-file "$dir/state.json" --dir "$dir/pop" >"$dir/demo.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -f "$dir/state.json" ] && break; kill -0 "$pid" 2>/dev/null || { cat "$dir/demo.log"; exit 1; }; sleep 0.1; done
  edge=$(field "$dir/state.json" edge_http)
  if [ "$plugin" != none ]; then
    "$BIN" plugin --core "$(field "$dir/state.json" core_http)" --key "$(field "$dir/state.json" admin_key)" \
      push "$PLUGINS/tally_plugin_$plugin.wasm" --activate >/dev/null
    # Readiness: the edge reports the version it runs.
    for _ in $(seq 300); do curl -s "$edge/metrics" | grep -q 'tally_edge_filter_version{.*role="active"} 1' && break; sleep 0.1; done
  fi
  printf '%-13s ' "$plugin"
  "$BIN" load --edge "$edge" --key "$(field "$dir/state.json" ingest_key)" --connections "$CONNS" --batch "$BATCH" --seconds "$SECS" --browser-fields
  # How many requests shared a filter call (absent on binaries without the metric).
  curl -s "$edge/metrics" | awk '/^tally_edge_filter_calls_total/ {c=$2} /^tally_edge_filter_clicks_total/ {k=$2} END {if (c > 0 && k > 0) printf "              %d filter calls, %.1f clicks per call\n", c, k / c}'
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$dir"
done
