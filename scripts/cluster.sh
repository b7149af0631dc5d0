#!/usr/bin/env bash
# `make cluster`: the demo served by two tidings processes on one PostgreSQL, behind nginx
# with the shipped config (deploy/nginx/nginx.conf), all local and all stopped by Ctrl-C.
# PORT (default 8080) is nginx's port. The PostgreSQL cluster is a throwaway one made by
# scripts/pg-cluster.sh (fsync off: a local demonstration, not a place to keep data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh postgres nginx npm
cargo build --release -p tidings-server
scripts/build-demo.sh

pids=()
dir=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$dir" ] && scripts/pg-cluster.sh stop "$dir"
}
trap cleanup EXIT INT TERM

read -r url dir < <(scripts/pg-cluster.sh start $$)
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
upstreams=()
for i in 1 2; do
  port=$(free_port)
  TIDINGS_DATABASE_URL="$url" TIDINGS_STATIC_DIR="$PWD/demo/build" TIDINGS_TRUST_IP_HEADER=1 \
    ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT="$port" ROCKET_LOG_LEVEL=critical \
    "${CARGO_TARGET_DIR:-target}/release/tidings-server" &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  upstreams+=(--upstream "127.0.0.1:$port")
  echo "  tidings process $i: http://127.0.0.1:$port (pid ${pids[-1]})"
done
echo "  PostgreSQL: $url"
node deploy/nginx/launch.mjs "${upstreams[@]}" --port "${PORT:-8080}" &
pids+=($!)
printf '\n  \033[1mtidings cluster:\033[0m  \033[1;4mhttp://127.0.0.1:%s\033[0m  (nginx in front of both)\n' "${PORT:-8080}"
printf '  kill one process (kill <pid>) and watch the page carry on; Ctrl-C stops everything\n\n'
wait "${pids[-1]}"
