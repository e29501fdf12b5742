#!/usr/bin/env bash
# Benchmarks sluice against HAProxy, NGINX and Envoy with the shared harness
# (../shared/bench, see its README), in one invocation so the ratios are comparable.
#   bench/run.sh                                  # full matrix, ~15 min
#   PEERS="sluice haproxy" REPS=1 bench/run.sh    # a subset
# Any knob of the harness (REPS, DURATION, WORKLOADS, PEERS, ...) passes through.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_HARNESS:-$repo/../shared/bench}
[ -x "$harness/run.sh" ] || { echo "bench harness not found at $harness (set BENCH_HARNESS)" >&2; exit 1; }
(cd "$repo" && cargo build --release -p sluice)
export PEER_DIRS=$repo/bench/peers${PEER_DIRS:+:$PEER_DIRS}
export PEERS=${PEERS:-"sluice haproxy nginx envoy"}
exec "$harness/run.sh"
