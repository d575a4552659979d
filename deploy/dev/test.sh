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
# The plugins' own unit tests (SDK, rules) on the host, and the C bot filter
# against its Rust reference on random clicks (wasmtime-py runs the component).
cargo test --locked --manifest-path plugins/Cargo.toml --target-dir plugins/target 2>&1 | tee "$log"
plugins/c/bot-filter/test/run.sh 20000 2>&1 | tee -a "$log"
cargo test --workspace --locked --lib --bins --tests 2>&1 | tee -a "$log"
python3 deploy/clickhouse/check_modern.py
# ... and the cluster schema (deploy/clickhouse/cluster/) through Distributed tables
python3 deploy/clickhouse/check_modern.py --cluster tally
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed|^[0-9]+ passed, [0-9]+ failed$' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "tally: $((passed + 1)) passed, $failed failed"
