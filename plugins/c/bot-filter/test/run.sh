#!/usr/bin/env bash
# Differential test of the C bot filter (after deploy/dev/plugins-c.sh):
# builds the Rust reference (rules.rs, as the bot-filter crate's example
# `reference`, natively) and runs difftest.py with
# the `wasmtime` package from PyPI, in a venv kept beside the other tools.
# usage: plugins/c/bot-filter/test/run.sh [N_RANDOM]   (default 200000)
set -euo pipefail

WASMTIME_PY_VERSION=50.0.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
TOOLS="${TALLY_TOOLS_DIR:-/var/tmp/tally-tools}"
VENV="$TOOLS/py-wasmtime-$WASMTIME_PY_VERSION"
COMPONENT="$ROOT/plugins/target/c/tally_plugin_bot_filter_c.wasm"

[ -f "$COMPONENT" ] || { echo "bot-filter test: $COMPONENT missing: run deploy/dev/plugins-c.sh" >&2; exit 1; }
if ! "$VENV/bin/python" -c "import wasmtime" 2>/dev/null; then
  echo "bot-filter test: installing wasmtime==$WASMTIME_PY_VERSION (PyPI) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "wasmtime==$WASMTIME_PY_VERSION"
fi
# The dev profile: what `cargo test --manifest-path plugins/Cargo.toml` has
# already built (deploy/dev/test.sh runs it first).
cargo build --locked -q --manifest-path "$ROOT/plugins/Cargo.toml" --target-dir "$ROOT/plugins/target" -p tally-plugin-bot-filter --example reference
"$VENV/bin/python" "$HERE/difftest.py" "$COMPONENT" "$ROOT/plugins/target/debug/examples/reference" "$@"
