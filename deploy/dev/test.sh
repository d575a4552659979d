#!/usr/bin/env bash
# Runs every test: unit and property tests, end-to-end tests across real
# processes (private ClickHouse 18.16, core, edge), and the same SQL on a
# modern ClickHouse engine (chdb).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --workspace --locked
python3 deploy/clickhouse/check_modern.py
