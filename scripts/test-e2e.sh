#!/usr/bin/env bash
# The demo's end-to-end tests: the debug server, the demo build (svelte-check included), then
# tests/e2e in headless Chromium, each test against its own server on a free port with a
# temporary database. Bounded in time (E2E_TIMEOUT seconds, default 300); everything the
# tests start (servers, browsers) is stopped when they end, fail or time out.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh browser

cargo build -p tidings-server
scripts/build-demo.sh
scripts/setup.sh npm

export TIDINGS_SERVER_BIN=${TIDINGS_SERVER_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tidings-server}
export TIDINGS_STATIC_DIR=$PWD/demo/build
cd tests
# `timeout` runs the runner in its own process group and signals the whole group, so the
# servers the tests spawned go too; each Chromium exits when its Playwright pipe closes.
timeout --kill-after=10 "${E2E_TIMEOUT:-300}" \
  node --test --test-concurrency=1 --test-timeout=120000 e2e/*.test.mjs
