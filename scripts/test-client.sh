#!/usr/bin/env bash
# The client's browser tests, on the package as it ships (pkg/, built by `make pkg` with its
# size budget): tests/client in headless Chromium against a real tidings-server, which the
# tests start, stop and restart themselves. Then the Rust API (TodoStream), which is not in
# the JavaScript package, through wasm-bindgen-test (scripts/test-wasm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh browser npm
[ -f pkg/tidings_client_bg.wasm ] || { echo "no package in pkg/: run make pkg first" >&2; exit 1; }

cargo build -p tidings-server
export TIDINGS_SERVER_BIN=${TIDINGS_SERVER_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tidings-server}
(
  cd tests
  # `timeout` signals the runner's whole process group: the servers the tests spawned go too.
  timeout --kill-after=10 "${CLIENT_TIMEOUT:-300}" \
    node --test --test-concurrency=1 --test-timeout=120000 client/*.test.mjs
)
scripts/test-wasm.sh
