#!/usr/bin/env bash
# Installs what Tally's demo and tests need on a fresh Debian machine:
# ClickHouse 18.16 (Debian package), curl, openssl and Chromium (clients
# nobody here wrote, for the conformance tests), python3-venv (the C filter's
# differential test runs wasmtime-py in a venv), and from PyPI chdb-core (a
# modern ClickHouse engine, to prove the SQL also runs on 24.x+), aioquic (an
# HTTP/3 client) and schemathesis (checks the running servers against their
# OpenAPI documents), and from npm playwright-core (drives chromium in the
# dashboard and click-tag tests), and promtool (Debian package prometheus:
# the alert rules' checks and unit tests). Idempotent.
#
#   setup.sh                everything the tests need (above, and zookeeper)
#   setup.sh --demo         only what `tally demo` needs: clickhouse-server (Debian)
#   setup.sh --demo-cluster what `tally demo --cluster` needs: clickhouse-server
#                           and zookeeper (Debian; it pulls in a Java runtime)
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${1:-}" = "--demo" ] || [ "${1:-}" = "--demo-cluster" ]; then
  packages=()
  [ -x /usr/sbin/clickhouse-server ] || packages+=(clickhouse-server)
  if [ "$1" = "--demo-cluster" ] && [ ! -f /usr/share/java/zookeeper.jar ]; then packages+=(zookeeper); fi
  if [ ${#packages[@]} -gt 0 ]; then
    echo "setup: installing ${packages[*]} (Debian packages), what tally demo${1#--demo} needs"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  fi
  command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
  echo "setup: ok for the demo ($(/usr/sbin/clickhouse-server --version 2>/dev/null | head -1 || echo clickhouse-server))"
  exit 0
fi

if [ ! -x /usr/sbin/clickhouse-server ] || ! command -v curl >/dev/null || ! command -v chromium >/dev/null || ! command -v openssl >/dev/null \
  || ! python3 -c "import ensurepip" 2>/dev/null || ! command -v promtool >/dev/null || [ ! -f /usr/share/java/zookeeper.jar ]; then
  # zookeeper: the cluster tests and tally demo --cluster run it as a child process.
  echo "setup: installing clickhouse-server, curl, openssl, chromium, python3-venv, prometheus (promtool), zookeeper (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client curl openssl chromium python3-venv prometheus zookeeper >/dev/null
fi

if ! python3 -c "import chdb, aioquic, schemathesis" 2>/dev/null; then
  echo "setup: installing chdb-core, aioquic, schemathesis (PyPI)"
  python3 -m pip install -q "chdb-core==26.9.0" "aioquic==1.7.2" "schemathesis==4.32.5"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
# Browser tests (tests/browser/) drive Debian's chromium with playwright-core
# from npm (no browser download), at the versions in its package-lock.json.
if ! command -v npm >/dev/null; then
  echo "setup: installing nodejs, npm (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd "$(dirname "$0")/../../tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
# Tenant filters (plugins/) are WebAssembly components built from source.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target (rustup)"
  rustup target add wasm32-wasip2
fi
# A tenant filter written in C (plugins/c/): clang, wasm-ld, wit-bindgen, wasm-tools.
"$(dirname "$0")/plugins-c.sh" --install-only
echo "setup: ok ($(/usr/sbin/clickhouse-server --version 2>/dev/null | head -1 || echo clickhouse-server), chdb $(python3 -c 'import chdb; print(chdb.__version__)' 2>/dev/null))"
