#!/usr/bin/env bash
# The tidings load benchmark (issue 5): build in release mode, run every scenario against
# tidings and both baselines on loopback, and rewrite BENCHMARKS.md and the chart.
#
#   tests/load/bench.sh                  full run (about 35 minutes), rewrites BENCHMARKS.md
#   BENCH_QUICK=1 tests/load/bench.sh    small version of each scenario (about 3 minutes);
#                                        writes tests/load/results/BENCHMARKS.quick.md instead
#
# Narrow a run with BENCH_SERVERS=tidings,node,axum, BENCH_SCENARIOS=fanout,ceiling,slow,
# resume,storm,syscalls,writes,cluster, BENCH_SIZES=1000,5000, BENCH_CEILING_SIZES=1000 (the
# ceiling's stream counts), BENCH_REPS=N. A narrowed run
# replaces in BENCHMARKS.md only the sections it measured in full, and says so under each.
# BENCH_PIN=0 lets server and generator share both CPUs (default: server side on CPU 1,
# generator on CPU 0). `writes` and `cluster` run tidings on PostgreSQL too: a throwaway
# cluster with durable settings (scripts/pg-cluster.sh, PG_CLUSTER_DURABLE=1) is started for
# them, pinned with the servers, and removed at the end.
# Bounded: the whole run is killed after BENCH_TIMEOUT seconds (default 4200), and everything
# it started (servers, generator processes, the PostgreSQL cluster) is stopped on exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
results="tests/load/results"
mkdir -p "$results"

# One process may hold 20 000 files here; every server and generator needs as many as it can.
ulimit -n "$(ulimit -Hn)"

command -v node >/dev/null || { echo "bench.sh: node is required for the Node baseline" >&2; exit 1; }
command -v strace >/dev/null || echo "bench.sh: strace not found; the syscall count will be reported as failed" >&2

cargo build --release --quiet -p tidings-server -p tidings-baseline-axum -p tidings-load

# The command as given, narrowing variables included, for the report.
narrowing=""
for v in BENCH_QUICK BENCH_SCENARIOS BENCH_SERVERS BENCH_SIZES BENCH_CEILING_SIZES BENCH_REPS BENCH_PIN; do
  if [[ -n "${!v:-}" ]]; then narrowing+="$v=${!v} "; fi
done
export BENCH_COMMAND="${narrowing}tests/load/bench.sh"
if [[ "${BENCH_QUICK:-0}" == "1" ]]; then
  markdown="$results/BENCHMARKS.quick.md"
  chart="$results/fanout-p99.quick.svg"
  json="$results/results.quick.json"
else
  markdown="BENCHMARKS.md"
  chart="tests/load/fanout-p99.svg"
  json="$results/results.json"
fi
export BENCH_STARTED="$(date -u '+%Y-%m-%d %H:%M UTC')"
export BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- server protocol 2>/dev/null || echo ' (server/ or protocol/ had uncommitted changes)')"

generator=()
server_side=()
if [[ "${BENCH_PIN:-1}" != "0" && "$(nproc --all)" -ge 2 ]] && command -v taskset >/dev/null; then
  generator=(taskset -c 0)
  server_side=(taskset -c "${BENCH_SERVER_CPUS:-1}")
else
  export BENCH_PIN=0
fi

suite=""
pg_dir=""
cleanup() {
  if [[ -n "$suite" ]]; then kill -TERM -- "-$suite" 2>/dev/null || true; fi
  if [[ -n "$pg_dir" ]]; then scripts/pg-cluster.sh stop "$pg_dir" || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL for the scenarios that run tidings on it: durable settings (fsync and
# synchronous_commit on, as SQLite's synchronous=FULL), on the servers' CPU.
if target/release/tidings-load needs-postgres; then
  read -r pg_url pg_dir < <(PG_CLUSTER_DURABLE=1 "${server_side[@]}" scripts/pg-cluster.sh start $$)
  export BENCH_POSTGRES_URL="$pg_url" BENCH_POSTGRES_DIR="$pg_dir"
  BENCH_PSQL="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/psql"
  export BENCH_PSQL
fi

# Own process group, so the exit trap stops the servers and workers even if the coordinator
# itself is killed before it can.
setsid timeout --kill-after=30 "${BENCH_TIMEOUT:-4200}" \
  "${generator[@]}" target/release/tidings-load suite "$json" &
suite=$!
status=0
wait "$suite" || status=$?

target/release/tidings-load report "$json" "$markdown" "$chart"
echo "bench.sh: wrote $markdown and $chart (suite exit status $status)"
exit "$status"
