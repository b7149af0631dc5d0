#!/usr/bin/env bash
# The reverse-proxy tests (tests/proxy): the shipped nginx config run by deploy/nginx/launch.mjs
# in front of the debug tidings-server, each test on free loopback ports with temporary
# databases and nginx prefixes. Bounded in time (PROXY_TIMEOUT seconds, default 300); every
# server and nginx the tests start is stopped when they end, fail or time out.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh nginx postgres

cargo build -p tidings-server
export TIDINGS_SERVER_BIN=${TIDINGS_SERVER_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tidings-server}
# Two test files at a time: their deadlines are measured with 1.5 s of slack, plenty on 2 cores.
# `timeout` signals the runner's whole process group, servers and nginx masters included.
# cluster.test.mjs runs several processes on one PostgreSQL: a throwaway cluster for the run.
timeout --kill-after=10 "${PROXY_TIMEOUT:-300}" scripts/with-postgres.sh \
  node --test --test-concurrency=2 --test-timeout=120000 tests/proxy/*.test.mjs
