#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, on a free loopback port, in a temporary directory.
#
#   scripts/pg-cluster.sh start [OWNER_PID]   prints "URL DIR"; with OWNER_PID the cluster
#                                             stops and is removed when that process exits
#   scripts/pg-cluster.sh stop DIR            stops the cluster and removes DIR
#   scripts/pg-cluster.sh restart DIR         a fast restart on the same port (fault injection)
#
# Debian's `postgresql` package is installed first if absent (scripts/setup.sh postgres).
# Tests get a fast, non-durable cluster (fsync, synchronous_commit and full_page_writes off).
# PG_CLUSTER_DURABLE=1 keeps PostgreSQL's durable defaults instead (fsync, synchronous_commit
# and full_page_writes on): what the load benchmark uses to compare writes/s with SQLite's
# synchronous=FULL.
# As root the cluster runs as the `postgres` user (initdb refuses root).
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$bin" ] || { scripts/setup.sh postgres >&2; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); }
  echo "$bin"
}

as_owner() {  # run a PostgreSQL tool as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
    console.log(s.address().port); s.close(); })'
}

case "${1:-}" in
  start)
    PG=$(pg_bin)
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PG_CLUSTER_DURABLE:-0}" = "1" ] && durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    dir=$(mktemp -d /tmp/tidings-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_owner "$PG/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
    # Several attempts: another process may take the port between the check and the start.
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      if as_owner "$PG/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
          -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $durability -c max_connections=400 -c shared_buffers=32MB" \
          start >/dev/null 2>&1; then
        echo "$port" >"$dir/port"
        if [ -n "${2:-}" ]; then
          # Cleanup when the owner goes, however it goes. Polling is fine here: this is
          # teardown, not a test waiting for something.
          owner=$2
          ( trap '' HUP INT; while kill -0 "$owner" 2>/dev/null; do sleep 1; done
            "$0" stop "$dir" ) >/dev/null 2>&1 </dev/null &
        fi
        echo "postgres://postgres@127.0.0.1:$port/postgres $dir"
        exit 0
      fi
    done
    cat "$dir/log" >&2 || true
    rm -rf "$dir"
    echo "could not start PostgreSQL" >&2
    exit 1
    ;;
  stop)
    dir=${2:?usage: $0 stop DIR}
    [ -d "$dir/data" ] && as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  restart)
    dir=${2:?usage: $0 restart DIR}
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w -t 30 restart >/dev/null
    ;;
  *)
    echo "usage: $0 start [OWNER_PID] | stop DIR | restart DIR" >&2
    exit 2
    ;;
esac
