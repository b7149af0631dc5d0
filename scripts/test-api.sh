#!/usr/bin/env bash
# schemathesis against a live debug server, driven by the server's own OpenAPI document
# (/api/openapi.json): no 5xx, every status and content type documented, every body matching
# its schema. Two bounded runs (API_FUZZ_SECS each, default 40): without access control, and
# with it (a development-login token, so the sharing routes are reached). The event stream is
# left out: it never ends, and its messages are tested elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh schemathesis
cargo build -p tidings-server
ST=target/tools/schemathesis/bin/st
secs=${API_FUZZ_SECS:-40}
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

serve() {  # serve PORT [ENV...]: a server on a fresh database, waited for
  local port=$1; shift
  rm -f "$dir"/t.db*
  # No write budget: schemathesis writes thousands of times from one address, and a 429 for
  # most of them would leave the write routes untested.
  env ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT="$port" ROCKET_LOG_LEVEL=critical TIDINGS_WRITE_RATE=0 \
    TIDINGS_DATABASE_URL="sqlite://$dir/t.db" "$@" "${CARGO_TARGET_DIR:-target}/debug/tidings-server" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$dir/log" >&2; echo "server did not start" >&2; exit 1
}

fuzz() {  # fuzz PORT [st options...]
  local port=$1; shift
  timeout --kill-after=10 $((secs + 60)) "$ST" run "http://127.0.0.1:$port/api/openapi.json" \
    --url "http://127.0.0.1:$port" --max-time "$secs" --workers 2 --exclude-path /api/events \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --no-color "$@"
}

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
echo "== schemathesis, access control off"
serve "$port"
fuzz "$port"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

echo "== schemathesis, access control on (a development token)"
serve "$port" TIDINGS_AUTH_DEV_LOGIN=1
token=$(curl -fs -X POST "http://127.0.0.1:$port/api/dev/token" -H 'content-type: application/json' \
  -d '{"user": "fuzzer"}' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
fuzz "$port" -H "Authorization: Bearer $token"
