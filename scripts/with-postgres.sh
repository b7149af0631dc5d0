#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster: TIDINGS_TEST_POSTGRES_URL and
# TIDINGS_TEST_POSTGRES_DIR point at it, and it is stopped and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r url dir < <(scripts/pg-cluster.sh start $$)
trap 'scripts/pg-cluster.sh stop "$dir"' EXIT
export TIDINGS_TEST_POSTGRES_URL="$url" TIDINGS_TEST_POSTGRES_DIR="$dir"
"$@"
