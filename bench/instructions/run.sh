#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: a deterministic
# figure for before/after comparisons of one code path, where req/s and CPU time on this
# shared 2-core VM drift by 30% (kernel time is not included: compare syscall counts
# with strace -c if a change may add syscalls).
#   bench/instructions/run.sh                       # target/release/sluice
#   bench/instructions/run.sh /tmp/before target/release/sluice
# Each binary gets the bench harness's HTTPS origin (nginx, from ../shared/bench), is
# warmed up with 500 requests, then counted over N requests with CONC clients, once
# with a new connection per request (ab, the PHP case) and once keep-alive (ab -k).
# Knobs: N (3000), CONC (16), PB_WORK (/tmp/sluice-bench, where the harness left its
# certificates: run bench/run.sh once first), KEEP_DIR (keep the callgrind files there,
# named BIN.MODE.cg, for callgrind_annotate).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
harness=${BENCH_HARNESS:-$repo/../shared/bench}
export PB_WORK=${PB_WORK:-/tmp/sluice-bench} PB_ROOT=$harness
N=${N:-3000} CONC=${CONC:-16}
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
command -v ab >/dev/null || apt-get install -y apache2-utils >/dev/null
source "$(dirname "$0")/origin.sh"
for bin in "$@"; do
  for mode in close keepalive; do
    k=""; [ $mode = keepalive ] && k=-k
    out=$work/cg.out
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" \
      "$bin" run --config "$work/sluice.yaml" >"$work/sluice.log" 2>&1 &
    vpid=$!
    for _ in $(seq 1 200); do
      curl -fs -o /dev/null -H "Host: $ROUTE_HOST" "$url" && break
      sleep 0.1
    done
    ab -q $k -c "$CONC" -n 500 -H "Host: $ROUTE_HOST" "$url" >/dev/null
    callgrind_control -i on "$vpid" >/dev/null
    ab -q $k -c "$CONC" -n "$N" -H "Host: $ROUTE_HOST" "$url" >"$work/ab.txt"
    callgrind_control -i off "$vpid" >/dev/null
    callgrind_control -d "$vpid" >/dev/null
    kill "$vpid"; wait "$vpid" 2>/dev/null || true
    failed=$(awk '/Failed requests/ {f = $3} /Non-2xx responses/ {n = $3} END {print f + n}' "$work/ab.txt")
    # Counting the error path would say nothing about the request path: refuse.
    [ "$failed" = 0 ] || { echo "$bin $mode: $failed requests failed or were not 2xx" >&2; cat "$work/sluice.log" >&2; exit 1; }
    ir=$(callgrind_annotate "$(ls -S "$out".* | head -1)" 2>/dev/null \
      | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
    printf '%-40s %-9s failed=%s instructions/request=%d\n' "$bin" "$mode" "$failed" $((ir / N))
    if [ -n "${KEEP_DIR:-}" ]; then
      mkdir -p "$KEEP_DIR"; cp "$(ls -S "$out".* | head -1)" "$KEEP_DIR/$(basename "$bin").$mode.cg"
    fi
    rm -f "$out".*
  done
done
