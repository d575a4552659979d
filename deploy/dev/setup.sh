#!/usr/bin/env bash
# Installs what Tally's demo and tests need on a fresh Debian machine:
# ClickHouse 18.16 (Debian package) and chdb-core (a modern ClickHouse engine
# for Python, used to prove the SQL also runs on 24.x+). Idempotent.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/sbin/clickhouse-server ]; then
  echo "setup: installing clickhouse-server (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi

if ! python3 -c "import chdb" 2>/dev/null; then
  echo "setup: installing chdb-core (modern ClickHouse engine for the SQL check)"
  python3 -m pip install -q "chdb-core==26.9.0"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
echo "setup: ok ($(/usr/sbin/clickhouse-server --version 2>/dev/null | head -1 || echo clickhouse-server), chdb $(python3 -c 'import chdb; print(chdb.__version__)' 2>/dev/null))"
