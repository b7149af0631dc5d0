#!/usr/bin/env bash
# Install what building and testing tidings needs, skipping whatever is already there.
# Usage: scripts/setup.sh [wasm] [browser] [postgres] [nginx] [schemathesis] [npm] [js-tools]
#        (no argument: everything)
set -euo pipefail
cd "$(dirname "$0")/.."

want() { [ $# -eq 0 ] || [[ " $ALL " == *" $1 "* ]]; }
ALL="$*"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; exit 1; fi
}

if [ -z "$ALL" ] || want wasm; then
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  # The package's build (scripts/build-pkg.sh) uses a dated nightly with std's sources.
  . scripts/pkg-toolchain.sh
  if ! rustup run "$PKG_TOOLCHAIN" rustc --version >/dev/null 2>&1 ||
     ! rustup +"$PKG_TOOLCHAIN" component list --installed 2>/dev/null | grep -q '^rust-src' ||
     ! rustup +"$PKG_TOOLCHAIN" target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "installing $PKG_TOOLCHAIN with rust-src and wasm32 (for the npm package's build)"
    rustup toolchain install "$PKG_TOOLCHAIN" --profile minimal --component rust-src \
      --target wasm32-unknown-unknown
  fi
  # The CLI must be exactly the wasm-bindgen version in Cargo.lock.
  WB_VER=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
  if [ -n "$WB_VER" ] && ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WB_VER"; then
    say "installing wasm-bindgen-cli $WB_VER (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$WB_VER"
  fi
fi

if [ -z "$ALL" ] || want browser; then
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    say "installing Debian's chromium and chromium-driver"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  fi
fi

if [ -z "$ALL" ] || want postgres; then
  # Server binaries only: the tests make clusters of their own (scripts/pg-cluster.sh).
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "installing Debian's postgresql (for the PostgreSQL backend's tests)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
fi

if [ -z "$ALL" ] || want nginx; then
  # The reverse-proxy tests run the shipped config (deploy/nginx) on Debian's nginx; nginx-light
  # has all it uses (proxy, upstream keep-alive, limit_conn, gzip). Where an init system runs,
  # the package also starts a system nginx on port 80; the tests never use that one.
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    say "installing Debian's nginx-light"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light
  fi
fi

if [ -z "$ALL" ] || want schemathesis; then
  # The API fuzzer the tests run against the OpenAPI document, pinned, in a venv of its own.
  ST_VERSION=4.32.5
  ST_VENV=target/tools/schemathesis
  if ! "$ST_VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
      say "installing Debian's python3-venv"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    say "installing schemathesis $ST_VERSION (PyPI) into $ST_VENV"
    rm -rf "$ST_VENV"
    python3 -m venv "$ST_VENV"
    "$ST_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
  fi
fi

# npm ci in $1, only when its lock file changed since the last install.
npm_ci() {
  [ -f "$1/package.json" ] || return 0
  if [ ! -f "$1/node_modules/.package-lock.json" ] ||
     [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    say "npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ -z "$ALL" ] || want npm; then
  # demo/ links ../pkg (file:../pkg): npm ci works before pkg/ exists, the link resolves later.
  for dir in demo tests client-wasm tests/load/baselines/node; do
    npm_ci "$dir"
  done
elif want js-tools; then
  # client-wasm's build and check tools alone (tsc, ESLint for make lint), not every npm tree.
  npm_ci client-wasm
fi
