#!/usr/bin/env bash
# `make demo`: build the release server and the demo, then serve both from one process:
# the app at /, the API under /api. The database is ./tidings.db in the repository root
# (TIDINGS_DATABASE_URL overrides it); ROCKET_PORT and ROCKET_ADDRESS are honoured. Access
# control is on with the development login (TIDINGS_AUTH_DEV_LOGIN=1: the demo's "sign in
# as" screen gets a token for any name), which the server allows on loopback addresses only;
# TIDINGS_AUTH_DEV_LOGIN=0 runs the demo without access control.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tidings-server
scripts/build-demo.sh

port=${ROCKET_PORT:-8000}
host=${ROCKET_ADDRESS:-127.0.0.1}
case "$host" in 0.0.0.0 | :: | '[::]') host=127.0.0.1 ;; esac
[[ "$host" == *:* ]] && host="[$host]"
printf '\n  \033[1mtidings demo:\033[0m  \033[1;4mhttp://%s:%s\033[0m\n' "$host" "$port"
export TIDINGS_AUTH_DEV_LOGIN=${TIDINGS_AUTH_DEV_LOGIN:-1}
if [ "$TIDINGS_AUTH_DEV_LOGIN" = 0 ]; then
  printf '  open it in two windows side by side; Ctrl-C stops the server\n\n'
else
  printf '  sign in as someone in one tab and as someone else in another, then share a list;\n'
  printf '  Ctrl-C stops the server\n\n'
fi

export TIDINGS_STATIC_DIR="$PWD/demo/build"
exec "${CARGO_TARGET_DIR:-target}/release/tidings-server"
