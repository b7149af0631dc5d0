#!/usr/bin/env bash
# `make demo`: build the release server and the demo, then serve both from one process:
# the app at /, the API under /api. The database is ./tidings.db in the repository root
# (TIDINGS_DATABASE_URL overrides it); ROCKET_PORT and ROCKET_ADDRESS are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tidings-server
scripts/build-demo.sh

port=${ROCKET_PORT:-8000}
host=${ROCKET_ADDRESS:-127.0.0.1}
case "$host" in 0.0.0.0 | :: | '[::]') host=127.0.0.1 ;; esac
[[ "$host" == *:* ]] && host="[$host]"
printf '\n  \033[1mtidings demo:\033[0m  \033[1;4mhttp://%s:%s\033[0m\n' "$host" "$port"
printf '  open it in two windows side by side; Ctrl-C stops the server\n\n'

export TIDINGS_STATIC_DIR="$PWD/demo/build"
exec target/release/tidings-server
