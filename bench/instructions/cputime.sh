#!/usr/bin/env bash
# User and kernel CPU time per request of the proxy process (utime/stime from
# /proc/PID/stat), to see how much of a request's CPU is sluice's own code and how much
# the kernel's: the part no user-space change can remove.
#   bench/instructions/cputime.sh                   # target/release/sluice
#   bench/instructions/cputime.sh /tmp/before target/release/sluice
# Same origin and config as run.sh (the bench harness's HTTPS nginx origin); the proxy
# is pinned to CPU 1 and ab to CPU 0; 2,000 warm-up requests, then N measured, once with
# a new connection per request and once keep-alive. Times are in clock ticks (10 ms):
# keep N large. Page faults are minor faults of the proxy (memory the allocator took
# back from the kernel, or handed back and touched again).
# Knobs: N (20000), CONC (16), PB_WORK (/tmp/sluice-bench).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
harness=${BENCH_HARNESS:-$repo/../shared/bench}
export PB_WORK=${PB_WORK:-/tmp/sluice-bench} PB_ROOT=$harness
N=${N:-20000} CONC=${CONC:-16}
command -v ab >/dev/null || apt-get install -y apache2-utils >/dev/null
source "$(dirname "$0")/origin.sh"
tck=$(getconf CLK_TCK)
for bin in "$@"; do
  for mode in close keepalive; do
    k=""; [ $mode = keepalive ] && k=-k
    taskset -c 1 "$bin" run --config "$work/sluice.yaml" >"$work/sluice.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do curl -fs -o /dev/null -H "Host: $ROUTE_HOST" "$url" && break; sleep 0.1; done
    taskset -c 0 ab -q $k -c "$CONC" -n 2000 -H "Host: $ROUTE_HOST" "$url" >/dev/null
    read -r f0 u0 s0 < <(awk '{print $10, $14, $15}' /proc/$pid/stat)
    taskset -c 0 ab -q $k -c "$CONC" -n "$N" -H "Host: $ROUTE_HOST" "$url" >"$work/ab.txt"
    read -r f1 u1 s1 < <(awk '{print $10, $14, $15}' /proc/$pid/stat)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$bin $mode: user $(( (u1-u0)*1000000/tck/N )) us/req, sys $(( (s1-s0)*1000000/tck/N )) us/req, page faults $(( (f1-f0)*100/N )) per 100 req"
  done
done
