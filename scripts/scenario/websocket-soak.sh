#!/usr/bin/env bash
# Scenario: 1,000 open WebSockets with echo traffic through the proxy, 100 config
# reloads while they are open (issue 10), sluice and then NGINX the same way.
#
#   scripts/scenario/websocket-soak.sh                 # sluice, then nginx
#   scripts/scenario/websocket-soak.sh --sluice-only
#
# Shape (both halves): a WebSocket echo origin (ws-origin, hyper + tokio-tungstenite,
# 127.0.0.1, port 0) behind the proxy; ws-load opens CONNS (1000) WebSockets through
# the proxy, holds them idle for IDLE_SECS (the memory figure is taken then: RSS with
# the tunnels open minus RSS before, per tunnel), then every one echoes a message each
# INTERVAL_MS for SECS seconds, each echo checked, while RELOADS (100) reloads
# alternate configs A and B (sluice: SIGHUP, outcome awaited on
# sluice_config_reloads_total; nginx: `nginx -s reload`). Then the tunnels close.
#
# sluice checks (exit 1 if one fails): every WebSocket opened, 0 dropped (a tunnel
# that ended early or an echo wrong or later than 10 s), the reloads all applied,
# sluice_tunnels_open back to 0 after the close, and user-space memory per idle
# tunnel <= MAX_TUNNEL_KIB (16). nginx: the same load and reloads; prints dropped
# tunnels, the worker processes alive after the reloads (old workers stay while their
# WebSockets are open: NGINX's pile-up of seed 002) and RSS summed over master and
# workers. Recorded, not checked: the comparison.
#
# Environment (all optional): CONNS=1000 RELOADS=100 SECS=60 IDLE_SECS=5
#   INTERVAL_MS=1000 MAX_TUNNEL_KIB=16; SLUICE_BIN, WS_ORIGIN_BIN, WS_LOAD_BIN
#   (prebuilt; otherwise `cargo build --release` builds them).
# Needs: curl, nginx (installed if missing, as root).
set -euo pipefail

CONNS=${CONNS:-1000}
RELOADS=${RELOADS:-100}
SECS=${SECS:-60}
IDLE_SECS=${IDLE_SECS:-5}
INTERVAL_MS=${INTERVAL_MS:-1000}
MAX_TUNNEL_KIB=${MAX_TUNNEL_KIB:-16}
HOST=ws.example.test

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN_SLUICE=1 RUN_NGINX=1
case ${1:-} in
--sluice-only) RUN_NGINX=0 ;;
--nginx-only) RUN_SLUICE=0 ;;
"") ;;
*)
    echo "usage: $0 [--sluice-only | --nginx-only]" >&2
    exit 2
    ;;
esac

# shellcheck source=scripts/scenario/lib.sh
source "$HERE/lib.sh"
install_missing curl:curl
((!RUN_NGINX)) || install_missing nginx:nginx
command -v python3 >/dev/null || die "needs python3 (free ports)"

if [[ -z ${SLUICE_BIN:-} || -z ${WS_ORIGIN_BIN:-} || -z ${WS_LOAD_BIN:-} ]]; then
    log "cargo build --release (sluice, ws-origin, ws-load)"
    (cd "$ROOT" && cargo build --release --quiet -p sluice --bin sluice &&
        cargo build --release --quiet -p sluice-testkit --bin ws-origin --bin ws-load)
fi
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
WS_ORIGIN_BIN=${WS_ORIGIN_BIN:-$ROOT/target/release/ws-origin}
WS_LOAD_BIN=${WS_LOAD_BIN:-$ROOT/target/release/ws-load}

# Two file descriptors per tunnel in the proxy, one per WebSocket in each of
# ws-load and the origin.
ulimit -n $((CONNS * 4 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

scenario_work websocket-soak

"$WS_ORIGIN_BIN" >"$WORK/origin.out" 2>&1 &
PIDS+=($!)
origin_up() { grep -q ':' "$WORK/origin.out"; }
wait_for "the ws origin" 10 origin_up
ORIGIN=$(head -1 "$WORK/origin.out")
log "ws origin on $ORIGIN"

# start_load PORT TAG: ws-load through 127.0.0.1:PORT, its output in $WORK/TAG.load.
start_load() {
    "$WS_LOAD_BIN" --target "127.0.0.1:$1" --host "$HOST" --conns "$CONNS" \
        --idle-secs "$IDLE_SECS" --secs "$SECS" --interval-ms "$INTERVAL_MS" \
        >"$WORK/$2.load" 2>"$WORK/$2.load.err" &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
}
# load_line TAG PATTERN SECONDS: waits for ws-load to print a line matching PATTERN.
load_line() {
    local tag=$1 pattern=$2
    seen() { grep -q "$pattern" "$WORK/$tag.load"; }
    wait_for "ws-load: $pattern" "$3" seen
}
# finish_load TAG: waits for ws-load's end and reads its summary into OPENED DROPPED
# FAILED_OPEN ECHOES.
finish_load() {
    local summary
    wait "$LOAD_PID" || true
    summary=$(tail -1 "$WORK/$1.load")
    OPENED=$(sed -n 's/.*"opened":\([0-9]*\).*/\1/p' <<<"$summary")
    FAILED_OPEN=$(sed -n 's/.*"failed_open":\([0-9]*\).*/\1/p' <<<"$summary")
    ECHOES=$(sed -n 's/.*"echoes":\([0-9]*\).*/\1/p' <<<"$summary")
    DROPPED=$(sed -n 's/.*"dropped":\([0-9]*\).*/\1/p' <<<"$summary")
    [[ -n $OPENED ]] || die "ws-load ($1) printed no summary: $(tail -3 "$WORK/$1.load.err")"
    echo "   ws-load: opened $OPENED (failed $FAILED_OPEN), echoes $ECHOES, dropped $DROPPED"
    grep -m3 'dropped\|failed' "$WORK/$1.load.err" | sed 's/^/     /' || true
}
# The reloads are paced over the traffic phase's first 80%.
reload_gap_us() { echo $((SECS * 800000 / RELOADS)); }

FAILURES=()
fail() { FAILURES+=("$*"); }

run_sluice() {
    log "sluice: $CONNS WebSockets, $RELOADS reloads over ${SECS}s of echo traffic"
    local port admin dir=$WORK/sluice
    mkdir -p "$dir"
    port=$(free_port)
    admin=$dir/admin.sock
    for v in A B; do
        local queue=5s
        [[ $v == A ]] || queue=6s
        cat >"$dir/$v.yaml" <<EOF
log: {format: json, access_log: false}
admin: {bind: "unix:$admin"}
listeners: [{name: ws, bind: "127.0.0.1:$port", backlog: 4096}]
routes: [{host: "*", backend: ws}]
backends:
  - name: ws
    servers: ["$ORIGIN"]
    timeouts: {queue: $queue, tunnel: 10m}
EOF
    done
    cp "$dir/A.yaml" "$dir/sluice.yaml"
    "$SLUICE_BIN" run --config "$dir/sluice.yaml" >"$dir/out.log" 2>"$dir/err.log" &
    local pid=$!
    PIDS+=("$pid")
    metrics() { curl -sf --unix-socket "$admin" http://sluice/metrics; }
    metric() { metrics | awk -v m="$1" 'index($1, m "{") == 1 || $1 == m { s += $NF } END { printf "%d\n", s }'; }
    wait_for "sluice to serve" 20 metrics
    local rss0 rss_open per
    rss0=$(rss_kib "$pid")
    start_load "$port" sluice
    load_line sluice '^open ' 120
    rss_open=$(rss_kib "$pid")
    local open
    open=$(metric sluice_tunnels_open)
    per=$(awk -v a="$rss0" -v b="$rss_open" -v n="$open" 'BEGIN { printf "%.1f", n ? (b - a) / n : 0 }')
    echo "   rss $rss0 KiB before, $rss_open KiB with $open idle tunnels open: $per KiB per tunnel"
    load_line sluice '^idle done' $((IDLE_SECS + 30))
    local i t0 before applied0
    applied0=$(metric 'sluice_config_reloads_total{result="applied"}')
    t0=$(date +%s%N)
    for ((i = 0; i < RELOADS; i++)); do
        local v=B
        ((i % 2 == 0)) || v=A
        cp "$dir/$v.yaml" "$dir/next.yaml"
        mv "$dir/next.yaml" "$dir/sluice.yaml"
        before=$(metric sluice_config_reloads_total)
        kill -HUP "$pid"
        reloaded() { (($(metric sluice_config_reloads_total) > before)); }
        wait_for "reload $i" 10 reloaded
        local due=$((t0 / 1000 + (i + 1) * $(reload_gap_us))) now
        now=$(($(date +%s%N) / 1000))
        ((due <= now)) || sleep "$(awk -v us=$((due - now)) 'BEGIN { printf "%.3f", us / 1e6 }')"
    done
    local applied=$(($(metric 'sluice_config_reloads_total{result="applied"}') - applied0))
    echo "   $RELOADS reloads: $applied applied, tunnels open after them: $(metric sluice_tunnels_open)"
    finish_load sluice
    closed() { (($(metric sluice_tunnels_open) == 0)); }
    wait_for "the tunnels to close" 30 closed
    echo "   after the close: tunnels open 0, rss $(rss_kib "$pid") KiB; closed by reason:" \
        "$(metrics | awk '/^sluice_tunnels_closed_total/ { sub(/.*reason="/, "", $1); sub(/".*/, "", $1); printf "%s=%s ", $1, $2 }')"
    S_SUMMARY="opened $OPENED/$CONNS, dropped $DROPPED, echoes $ECHOES, $applied/$RELOADS reloads applied, $per KiB per idle tunnel (RSS)"
    ((OPENED == CONNS)) || fail "sluice: only $OPENED of $CONNS WebSockets opened"
    ((DROPPED == 0)) || fail "sluice: $DROPPED WebSockets dropped"
    ((applied == RELOADS)) || fail "sluice: $applied of $RELOADS reloads applied"
    awk -v p="$per" -v m="$MAX_TUNNEL_KIB" 'BEGIN { exit !(p <= m) }' ||
        fail "sluice: $per KiB per idle tunnel (> $MAX_TUNNEL_KIB)"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

run_nginx() {
    log "nginx: the same $CONNS WebSockets and $RELOADS reloads (nginx -s reload)"
    local port run=$WORK/nginx
    mkdir -p "$run/logs"
    port=$(free_port)
    for v in A B; do
        local ka=60s
        [[ $v == A ]] || ka=61s
        cat >"$run/$v.conf" <<EOF
worker_processes 1;
daemon off;
pid $run/nginx.pid;
error_log $run/error.log warn;
worker_rlimit_nofile $((CONNS * 4 + 1024));
events { worker_connections $((CONNS * 3 + 512)); }
http {
  access_log off;
  keepalive_timeout $ka;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream ws { server $ORIGIN; }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      proxy_pass http://ws;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 600s;
    }
  }
}
EOF
    done
    cp "$run/A.conf" "$run/nginx.conf"
    nginx -p "$run" -c "$run/nginx.conf" >"$run/out.log" 2>&1 &
    local master=$!
    PIDS+=("$master")
    up() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; }
    wait_for "nginx to serve" 20 up
    local rss0 rss_open per
    rss0=$(tree_rss "$master")
    start_load "$port" nginx
    load_line nginx '^open ' 120
    rss_open=$(tree_rss "$master")
    per=$(awk -v a="$rss0" -v b="$rss_open" -v n="$CONNS" 'BEGIN { printf "%.1f", (b - a) / n }')
    echo "   rss $rss0 KiB before, $rss_open KiB with $CONNS idle WebSockets open: $per KiB per tunnel"
    load_line nginx '^idle done' $((IDLE_SECS + 30))
    local i t0 peak=1 w
    t0=$(date +%s%N)
    for ((i = 0; i < RELOADS; i++)); do
        local v=B
        ((i % 2 == 0)) || v=A
        cp "$run/$v.conf" "$run/nginx.conf"
        nginx -q -p "$run" -c "$run/nginx.conf" -s reload 2>>"$run/reload.err" || true
        w=$(children_of "$master" | wc -l)
        ((w <= peak)) || peak=$w
        local due=$((t0 / 1000 + (i + 1) * $(reload_gap_us))) now
        now=$(($(date +%s%N) / 1000))
        ((due <= now)) || sleep "$(awk -v us=$((due - now)) 'BEGIN { printf "%.3f", us / 1e6 }')"
    done
    local workers rss_after
    workers=$(children_of "$master" | wc -l) rss_after=$(tree_rss "$master")
    echo "   after $RELOADS reloads: $workers worker processes alive (peak $peak), rss $rss_after KiB (master + workers)"
    finish_load nginx
    N_SUMMARY="opened $OPENED/$CONNS, dropped $DROPPED, echoes $ECHOES, $workers workers alive after the reloads (peak $peak), rss $rss_open -> $rss_after KiB, $per KiB per idle tunnel (RSS)"
}

((RUN_SLUICE == 0)) || run_sluice
((RUN_NGINX == 0)) || run_nginx
echo
echo "summary: $CONNS WebSockets, $RELOADS reloads during ${SECS}s of echo traffic"
((RUN_SLUICE == 0)) || echo "  sluice  $S_SUMMARY"
((RUN_NGINX == 0)) || echo "  nginx   $N_SUMMARY"
if ((${#FAILURES[@]})); then
    printf 'FAIL: %s\n' "${FAILURES[@]}"
    exit 1
fi
echo PASS
