#!/usr/bin/env bash
# Scenario: the admin plane answers while the data plane is flooded (issue 13).
#
#   scripts/scenario/overload.sh            # SLUICE_BIN / ORIGIN_BIN to choose binaries
#
# sluice (2 workers, admin on its own thread) in front of scenario-origin. Two
# phases of DURATION seconds (default 20), each with a flood of FLOOD (default 6000)
# TCP connections to the data listener that never send a byte, h2load pushing
# requests through it on 200 connections to keep both workers busy, and a probe of
# the admin listener's /healthz every 20 ms (1 s timeout each):
#   wait  limits {max_client_connections: 500, when_full: wait}: the flood fills the
#         listen backlog (net.core.somaxconn) and the kernel drops the rest;
#   shed  limits {max_client_connections: 500, when_full: shed}: sluice answers the
#         clients over the limit 503 overloaded.
# Printed per phase: probes, failed probes, /healthz p50/p99/max, ListenOverflows
# (kernel) during the phase, clients shed, h2load's answers. Goal (exit 1 if missed):
# no failed probe and p99 < 100 ms in both phases.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-20}
FLOOD=${FLOOD:-6000}
install_missing h2load:nghttp2-client
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
[[ -x $SLUICE_BIN ]] || SLUICE_BIN=$ROOT/target/debug/sluice
ORIGIN_BIN=${ORIGIN_BIN:-$ROOT/target/debug/scenario-origin}
[[ -x $SLUICE_BIN && -x $ORIGIN_BIN ]] || die "build first: cargo build -p sluice -p sluice-testkit"
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$ORIGIN_BIN" 127.0.0.1:0 >"$WORK/origin.log" 2>&1 &
pids+=($!)
wait_for "the origin to listen" 10 grep -q '^listening on' "$WORK/origin.log"
ORIGIN=$(sed -n 's/^listening on \([0-9.:]*\).*/\1/p' "$WORK/origin.log")
log "origin $ORIGIN; sluice $SLUICE_BIN"

fail=0
for mode in wait shed; do
    PORT=$(free_port)
    ADMIN=$(free_port)
    cat >"$WORK/sluice.yaml" <<YAML
log: {level: warn, access_log: false}
admin: {bind: "127.0.0.1:$ADMIN"}
runtime: {workers: 2}
limits: {max_client_connections: 500, when_full: $mode}
listeners: [{name: egress, bind: "127.0.0.1:$PORT"}]
routes: [{host: "*", backend: app}]
backends: [{name: app, servers: ["$ORIGIN"]}]
YAML
    "$SLUICE_BIN" run --config "$WORK/sluice.yaml" >"$WORK/sluice-$mode.log" 2>&1 &
    spid=$!
    pids+=("$spid")
    wait_for "sluice ($mode) to answer" 15 curl -sf "http://127.0.0.1:$ADMIN/healthz"
    overflows_before=$(awk '/^TcpExt:/ {if (!h) {for (i=1;i<=NF;i++) n[i]=$i; h=1} else {for (i=1;i<=NF;i++) if (n[i]=="ListenOverflows") print $i}}' /proc/net/netstat)
    h2load -n 100000000 -c 200 -D "$DURATION" --h1 "http://127.0.0.1:$PORT/" >"$WORK/h2load-$mode.log" 2>&1 &
    hpid=$!
    python3 - "$PORT" "$ADMIN" "$DURATION" "$FLOOD" >"$WORK/probe-$mode.txt" <<'PY'
import socket, sys, threading, time, http.client
port, admin, duration, flood = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
held = []
def flood_it():
    for _ in range(flood):
        s = socket.socket(); s.setblocking(False)
        try: s.connect(("127.0.0.1", port))
        except BlockingIOError: pass
        except OSError: break
        held.append(s)
threading.Thread(target=flood_it, daemon=True).start()
lat, failed, end = [], 0, time.time() + duration
while time.time() < end:
    t = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=1)
        c.request("GET", "/healthz"); r = c.getresponse(); r.read(); c.close()
        if r.status != 200: failed += 1
        else: lat.append((time.time() - t) * 1000)
    except Exception:
        failed += 1
    time.sleep(max(0, 0.02 - (time.time() - t)))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")
print(f"{len(lat) + failed} {failed} {q(0.5):.2f} {q(0.99):.2f} {lat[-1] if lat else float('nan'):.2f} {len(held)}")
PY
    wait "$hpid" || true
    read -r probes failed p50 p99 max held <"$WORK/probe-$mode.txt"
    overflows_after=$(awk '/^TcpExt:/ {if (!h) {for (i=1;i<=NF;i++) n[i]=$i; h=1} else {for (i=1;i<=NF;i++) if (n[i]=="ListenOverflows") print $i}}' /proc/net/netstat)
    shed=$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '$1=="sluice_client_connections_shed_total" {print $2}')
    answers=$(grep -E '^status codes:' "$WORK/h2load-$mode.log" || echo "status codes: (none)")
    log "$mode: flood of $held idle connections + h2load on 200 connections for ${DURATION}s"
    printf '   admin /healthz: %s probes, %s failed; p50 %s ms, p99 %s ms, max %s ms\n' "$probes" "$failed" "$p50" "$p99" "$max"
    printf '   kernel ListenOverflows during the phase: %s; clients shed by sluice: %s\n' "$((overflows_after - overflows_before))" "${shed:-0}"
    printf '   h2load %s\n' "$answers"
    if [[ $failed != 0 ]] || ! awk -v p="$p99" 'BEGIN {exit !(p < 100)}'; then
        log "$mode: GOAL MISSED (no failed probe, p99 < 100 ms)"
        fail=1
    fi
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
done
((fail == 0)) && echo PASS || { echo FAIL; exit 1; }
