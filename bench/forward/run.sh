#!/usr/bin/env bash
# bench/forward: sluice as a forward proxy (`http_proxy`, TLS originated per
# destination) against sluice's own configured-route mode and Envoy's dynamic forward
# proxy, all in front of the bench harness's HTTPS origin, in ONE invocation with reps
# as the outer loop.
#   bench/forward/run.sh                      # REPS=3 DURATION=10, ~4 min
#   REPS=1 DURATION=5 bench/forward/run.sh    # smoke test
# Peers: sluice-route (the route table, `Host: api.example.test`), sluice-forward
# (absolute-form `GET http://127.0.0.1:18443/`, originate_tls), envoy-dfp (the same
# requests through Envoy's dynamic forward proxy, TLS 1.3 upstream).
# Workloads: ka64 (wrk -c64 keep-alive) and close32 (ab -c32, a connection per request),
# as in ../shared/bench. Proxy on CPU 1, load generator and origin on CPU 0; the
# proxy's CPU is its utime+stime over the run (harness lib/pstat.py).
# Knobs: REPS (3) DURATION (10) WARMUP (2) SLUICE_BIN (default target/release/sluice)
#   BENCH_HARNESS (../shared/bench) PB_WORK (/tmp/sluice-bench: certs and envoy-bin from
#   a previous ../shared/bench/run.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/bench/forward
harness=${BENCH_HARNESS:-$repo/../shared/bench}
export PB_WORK=${PB_WORK:-/tmp/sluice-bench}
REPS=${REPS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PEERS=${PEERS:-"sluice-route sluice-forward envoy-dfp"}
WORKLOADS=${WORKLOADS:-"ka64 close32"}
SLUICE_BIN=${SLUICE_BIN:-$repo/target/release/sluice}
ENVOY_BIN=$PB_WORK/envoy-bin
[ -x "$SLUICE_BIN" ] || { echo "no sluice binary at $SLUICE_BIN (cargo build --release)" >&2; exit 1; }
[ -x "$ENVOY_BIN" ] || { echo "no Envoy at $ENVOY_BIN: run ../shared/bench/run.sh once (it installs it)" >&2; exit 1; }

# The harness origin (:18443) and its certificates; sets ca, work (origin.sh).
work=""
set -- "$SLUICE_BIN"
# shellcheck source=bench/instructions/origin.sh
source "$repo/bench/instructions/origin.sh"
export LISTEN_PORT=19031 ADMIN_PORT=19131
target_url=http://$ORIGIN_ADDR:$ORIGIN_TLS_PORT/
out=$PB_WORK/forward-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out/raw"

start_peer() {
    local peer=$1
    case $peer in
    sluice-route)
        "$harness/lib/render.py" "$repo/bench/peers/sluice/sluice.yaml.tmpl" "$work/$peer.yaml"
        taskset -c 1 "$SLUICE_BIN" run --config "$work/$peer.yaml" >"$work/$peer.log" 2>&1 &
        ;;
    sluice-forward)
        "$harness/lib/render.py" "$here/sluice-forward.yaml.tmpl" "$work/$peer.yaml"
        "$SLUICE_BIN" check --config "$work/$peer.yaml" >/dev/null
        taskset -c 1 "$SLUICE_BIN" run --config "$work/$peer.yaml" >"$work/$peer.log" 2>&1 &
        ;;
    envoy-dfp)
        "$harness/lib/render.py" "$here/envoy-dfp.yaml.tmpl" "$work/$peer.yaml"
        taskset -c 1 "$ENVOY_BIN" -c "$work/$peer.yaml" --concurrency 1 --disable-hot-restart \
            -l warn --log-path "$work/$peer.log" &
        ;;
    esac
    PEER_PID=$!
    for _ in $(seq 1 200); do
        probe "$peer" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$peer did not answer 200 within 20 s:" >&2
    tail -5 "$work/$peer.log" >&2
    exit 1
}

# probe PEER: one request as the workload sends it.
probe() {
    if [ "$1" = sluice-route ]; then
        curl -fsS -o /dev/null --max-time 2 -H "Host: $ROUTE_HOST" "http://127.0.0.1:$LISTEN_PORT/"
    else
        curl -fsS -o /dev/null --max-time 2 -x "http://127.0.0.1:$LISTEN_PORT" "$target_url"
    fi
}

# load PEER WORKLOAD SECONDS OUTFILE: the load generator on CPU 0.
load() {
    local peer=$1 wl=$2 secs=$3 file=$4
    local proxy="http://127.0.0.1:$LISTEN_PORT/"
    case $wl in
    ka64)
        if [ "$peer" = sluice-route ]; then
            # Through a script too (host.lua), so the load generator costs the same.
            taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency --timeout 5s -s "$here/host.lua" "$proxy" >"$file"
        else
            TARGET_URL=$target_url TARGET_AUTHORITY=$ORIGIN_ADDR:$ORIGIN_TLS_PORT \
                taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency --timeout 5s -s "$here/absolute.lua" "$proxy" >"$file"
        fi
        ;;
    close32)
        if [ "$peer" = sluice-route ]; then
            taskset -c 0 ab -q -r -s 10 -t "$secs" -n 1000000 -c 32 -H "Host: $ROUTE_HOST" "$proxy" >"$file"
        else
            taskset -c 0 ab -q -r -s 10 -t "$secs" -n 1000000 -c 32 -X "127.0.0.1:$LISTEN_PORT" "$target_url" >"$file"
        fi
        ;;
    esac
}

# rps FILE: requests per second from wrk's or ab's output; non2xx FILE: failures.
rps() { awk '/^Requests per second:/ { print $4 } /^Requests\/sec:/ { print $2 }' "$1"; }
bad() {
    awk '/^Non-2xx responses:/ { n += $3 } /^Failed requests:/ { n += $3 } /Socket errors:/ { n += 1 }
         /Non-2xx or 3xx responses:/ { n += $5 } END { print n + 0 }' "$1"
}

echo "peer workload rep rps cpu_ms_per_1k bad" >"$out/runs.txt"
for rep in $(seq 1 "$REPS"); do
    for wl in $WORKLOADS; do
        for peer in $PEERS; do
            start_peer "$peer"
            [ "$WARMUP" -gt 0 ] && load "$peer" "$wl" "$WARMUP" /dev/null
            cpu0=$("$harness/lib/pstat.py" "$PEER_PID")
            raw=$out/raw/$peer.$wl.$rep.txt
            load "$peer" "$wl" "$DURATION" "$raw"
            cpu1=$("$harness/lib/pstat.py" "$PEER_PID")
            kill "$PEER_PID"
            wait "$PEER_PID" 2>/dev/null || true
            r=$(rps "$raw")
            cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v r="$r" -v d="$DURATION" 'BEGIN { printf "%.1f", (b - a) * 1000 / (r * d / 1000) }')
            printf '%s %s %s %s %s %s\n' "$peer" "$wl" "$rep" "$r" "$cpu" "$(bad "$raw")" | tee -a "$out/runs.txt"
        done
    done
done

python3 - "$out/runs.txt" >"$out/summary.md" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for peer, wl, rep, rps, cpu, bad in rows:
    by.setdefault((wl, peer), []).append((float(rps), float(cpu), int(bad)))
print("| workload | peer | req/s (median) | min-max | proxy CPU-ms/1k req | failed |")
print("|---|---|---|---|---|---|")
for (wl, peer), v in sorted(by.items()):
    r = [x[0] for x in v]; c = [x[1] for x in v]
    print(f"| {wl} | {peer} | {statistics.median(r):.0f} | {min(r):.0f}-{max(r):.0f} | {statistics.median(c):.1f} | {sum(x[2] for x in v)} |")
for wl in sorted({k[0] for k in by}):
    med = {p: (statistics.median([x[0] for x in v]), statistics.median([x[1] for x in v])) for (w, p), v in by.items() if w == wl}
    if "sluice-forward" in med:
        f = med["sluice-forward"]
        for other in ("sluice-route", "envoy-dfp"):
            if other in med:
                o = med[other]
                print(f"\n{wl}: sluice-forward / {other}: req/s {f[0] / o[0]:.2f}x, CPU per request {f[1] / o[1]:.2f}x")
EOF
cat "$out/summary.md"
echo "results: $out"
