#!/usr/bin/env bash
# Which load-balancing rule should be the default? Three plain-HTTP origins behind
# one sluice backend; one of them is slow (a degraded server: SLOW_MS per request,
# the others FAST_MS). wrk keeps 64 connections busy through sluice for DURATION
# seconds per rule, REPS rounds with the rules interleaved (this VM is noisy: compare
# within a run). Reports req/s, p50, p99 and the share of requests the slow origin got.
#
#   bench/balance/run.sh                         # REPS=3 DURATION=10
#   REPS=1 DURATION=5 bench/balance/run.sh
#
# Needs wrk (installed by ../shared/bench/lib/install.sh). CPU placement: sluice on
# CPU 1, origins and wrk on CPU 0.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-10}
FAST_MS=${FAST_MS:-1}
SLOW_MS=${SLOW_MS:-20}
RULES=${RULES:-"round_robin least_request p2c"}
command -v wrk >/dev/null || { echo "wrk is missing: run ../shared/bench/lib/install.sh" >&2; exit 1; }

(cd "$repo" && cargo build --release --quiet -p sluice --bin sluice &&
  cargo build --release --quiet -p sluice-testkit --bin scenario-origin)
work=$(mktemp -d /tmp/sluice-balance.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Start an origin on 127.0.0.1:0; echo its address.
origin() {
  local name=$1 delay=$2
  taskset -c 0 "$repo/target/release/scenario-origin" 127.0.0.1:0 --delay-ms "$delay" >"$work/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q "listening on" "$work/$name.out"; then
      sed -n 's/^listening on \([^ ]*\).*/\1/p' "$work/$name.out"
      return
    fi
    sleep 0.05
  done
  echo "origin $name did not start" >&2
  exit 1
}
fast1=$(origin fast1 "$FAST_MS")
fast2=$(origin fast2 "$FAST_MS")
slow=$(origin slow "$SLOW_MS")

requests_of() { curl -s "http://$1/stats" | sed -n 's/.*requests=\([0-9]*\).*/\1/p'; }

results=$work/results.tsv
for rep in $(seq "$REPS"); do
  for rule in $RULES; do
    port=$((20000 + RANDOM % 20000))
    cat >"$work/sluice.yaml" <<EOF
runtime: {workers: 1}
log: {level: warn, access_log: false}
listeners: [{name: egress, bind: "127.0.0.1:$port", backlog: 4096}]
routes: [{host: "*", backend: app}]
backends:
  - name: app
    servers: ["$fast1", "$fast2", "$slow"]
    balance: $rule
EOF
    taskset -c 1 "$repo/target/release/sluice" run --config "$work/sluice.yaml" 2>"$work/sluice.err" &
    spid=$!
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$port/" && break
      sleep 0.05
    done
    before_slow=$(requests_of "$slow")
    before_all=$(( $(requests_of "$fast1") + $(requests_of "$fast2") + before_slow ))
    out=$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
    after_slow=$(requests_of "$slow")
    after_all=$(( $(requests_of "$fast1") + $(requests_of "$fast2") + after_slow ))
    kill "$spid"; wait "$spid" 2>/dev/null || true
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    share=$(awk -v s=$((after_slow - before_slow)) -v a=$((after_all - before_all)) 'BEGIN {printf "%.1f", a ? 100*s/a : 0}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$rule" "$rps" "$p50" "$p99" "$share" "${errors:-none}" | tee -a "$results"
  done
done

echo
echo "origins: 2 × ${FAST_MS} ms, 1 × ${SLOW_MS} ms; wrk -c64 -d${DURATION}s keep-alive; medians over $REPS reps"
echo
echo "| balance | req/s (median) | p50 | p99 | slow origin's share | errors |"
echo "|---|---|---|---|---|---|"
for rule in $RULES; do
  awk -F'\t' -v r="$rule" '$2==r' "$results" | sort -t$'\t' -k3 -g |
    awk -F'\t' -v n="$REPS" 'NR==int((n+1)/2) {printf "| %s | %s | %s | %s | %s%% | %s |\n", $2, $3, $4, $5, $6, $7}'
done
