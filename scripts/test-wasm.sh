#!/usr/bin/env bash
# The Rust API (TodoStream, for Rust web apps, which build the crate themselves: it is not in
# the npm package) in headless Chromium through wasm-bindgen-test, against a real
# tidings-server run by the conductor (client-wasm/tests/conductor.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wasm browser

cargo build -p tidings-server
log=$(mktemp)
node client-wasm/tests/conductor.mjs > "$log" &
conductor=$!
trap 'kill $conductor 2>/dev/null; wait $conductor 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 200); do
  url=$(head -n1 "$log")
  [ -n "$url" ] && break
  kill -0 $conductor 2>/dev/null || { echo "conductor failed" >&2; exit 1; }
  sleep 0.05
done
[ -n "$url" ] || { echo "conductor did not start" >&2; exit 1; }

TIDINGS_CONDUCTOR="$url" \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER=/usr/bin/chromedriver \
WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-180} \
  cargo test -p tidings-client --target wasm32-unknown-unknown --test rust_api "$@"
