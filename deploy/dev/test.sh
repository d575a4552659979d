#!/usr/bin/env bash
# Runs every test: unit and property tests, the tenant filter plugins built
# from source and run by the edge's wasmtime host, end-to-end tests across
# real processes (private ClickHouse 18.16, core, edges), and the same SQL on
# a modern ClickHouse engine (chdb). Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/../.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The example filters are real components, built from source first.
# (always into plugins/target, where the tests look, whatever CARGO_TARGET_DIR says)
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir plugins/target
# ... and the second-language one (C); this installs its tools on first use.
deploy/dev/plugins-c.sh
cargo test --workspace --locked --lib --bins --tests 2>&1 | tee "$log"
python3 deploy/clickhouse/check_modern.py
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "tally: $((passed + 1)) passed, $failed failed"
