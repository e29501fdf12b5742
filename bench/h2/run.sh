#!/usr/bin/env bash
# bench/h2: HTTP/2 vs HTTP/1.1 upstream (sluice and Envoy) and the cost of queueing at
# limits.maxconn_per_server, all behind one h2-capable HTTPS nginx origin, in ONE
# invocation with reps as the outer loop (like ../shared/bench/run.sh). See README.md.
#   bench/h2/run.sh                                   # REPS=3 DURATION=10, ~8 min (+ build)
#   REPS=1 DURATION=5 bench/h2/run.sh                 # smoke test, ~2 min
#   PEERS="sluice-h2 envoy-h2" WORKLOADS=ka64 bench/h2/run.sh
# Knobs (env): REPS (3) DURATION (10) WARMUP (2) PEERS WORKLOADS ("ka64 close32")
#   LOADGEN_CPUS (0) ORIGIN_CPUS (0) PROXY_CPUS (1) WORKERS (1) KEY_ALG (ec)
#   ORIGIN_KEEPALIVE_REQUESTS (100000)  QUEUE_MAXCONN (16)  SLUICE_MAX_STREAMS (100)
#   MAX_STEAL_PCT (5) MAX_FOREIGN_PCT (10) MAX_ATTEMPTS (3)
#   SLUICE_BIN (skip the build, use this binary) SKIP_BUILD=1 (use target/release/sluice as is)
#   SLUICE_REF_BIN (the binary of the peers sluice-h2-ref / sluice-h1-ref)
#   SKIP_INSTALL=1 (don't run the harness's install.sh)  BENCH_HARNESS (../shared/bench)
# Writes $PB_WORK/h2-results/<stamp>/{summary.md,runs.jsonl,extras.jsonl,versions.txt,run.log,raw/}.
# The harness directory is only read and its lib/ scripts executed; nothing is written there.
set -euo pipefail
T_START=$(date +%s)
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/bench/h2
export PB_ROOT=${BENCH_HARNESS:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo "$repo/../shared/bench")}
[ -x "$PB_ROOT/lib/results.py" ] || { echo "bench harness not found at $PB_ROOT (set BENCH_HARNESS)" >&2; exit 1; }
export PB_WORK=${PB_WORK:-/tmp/sluice-bench}

REPS=${REPS:-3}
export DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PEERS=${PEERS:-"sluice-h2 sluice-h1 envoy-h2 envoy-h1 sluice-h1-mc16"}
WORKLOADS=${WORKLOADS:-"ka64 close32"}
LOADGEN_CPUS=${LOADGEN_CPUS:-0}
ORIGIN_CPUS=${ORIGIN_CPUS:-0}
PROXY_CPUS=${PROXY_CPUS:-1}
export WORKERS=${WORKERS:-1}
export KEY_ALG=${KEY_ALG:-ec}
export ORIGIN_KEEPALIVE_REQUESTS=${ORIGIN_KEEPALIVE_REQUESTS:-100000}
QUEUE_MAXCONN=${QUEUE_MAXCONN:-16}
SLUICE_MAX_STREAMS=${SLUICE_MAX_STREAMS:-100}
export MAX_STEAL_PCT=${MAX_STEAL_PCT:-5} MAX_FOREIGN_PCT=${MAX_FOREIGN_PCT:-10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-3}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
LG_TIMEOUT=$((DURATION + 30))   # hard bound on every load-generator run

export LISTEN_ADDR=127.0.0.1 ORIGIN_ADDR=127.0.0.1
export H2_ORIGIN_TLS_PORT=${H2_ORIGIN_TLS_PORT:-28443} H2_ORIGIN_STATUS_PORT=${H2_ORIGIN_STATUS_PORT:-28081}
export ROUTE_HOST=api.example.test UPSTREAM_SNI=api.example.test
export CERT_DIR=$PB_WORK/certs/$KEY_ALG CA_FILE=$PB_WORK/certs/$KEY_ALG/ca.crt
ORIGIN_URL="https://127.0.0.1:$H2_ORIGIN_TLS_PORT/"
ENVOY_BIN=$PB_WORK/envoy-bin
RUNROOT=$PB_WORK/h2-run             # rendered configs, logs, pid files of the last run
source "$PB_ROOT/lib/workloads.sh"  # wl_ka64 / wl_close32: the harness's exact commands
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

# ---------------------------------------------------------------- peers
# peer_setup NAME -> KIND (sluice|envoy), LISTEN_PORT, ADMIN_PORT + the template variables
peer_setup() {
  unset SLUICE_PROTOCOL SLUICE_MAXCONN_PER_SERVER ENVOY_HTTP_CONFIG ENVOY_ALPN
  PEER_BIN=${SLUICE:-}
  case "$1" in
    sluice-h2)      KIND=sluice; LISTEN_PORT=29011; SLUICE_PROTOCOL=http2; SLUICE_MAXCONN_PER_SERVER=0 ;;
    sluice-h1)      KIND=sluice; LISTEN_PORT=29012; SLUICE_PROTOCOL=http1; SLUICE_MAXCONN_PER_SERVER=0 ;;
    sluice-h1-mc16) KIND=sluice; LISTEN_PORT=29015; SLUICE_PROTOCOL=http1; SLUICE_MAXCONN_PER_SERVER=$QUEUE_MAXCONN ;;
    # A second binary (SLUICE_REF_BIN), for before/after checks in one invocation.
    sluice-h2-ref)  KIND=sluice; LISTEN_PORT=29016; SLUICE_PROTOCOL=http2; SLUICE_MAXCONN_PER_SERVER=0; PEER_BIN=${SLUICE_REF:-} ;;
    sluice-h1-ref)  KIND=sluice; LISTEN_PORT=29017; SLUICE_PROTOCOL=http1; SLUICE_MAXCONN_PER_SERVER=0; PEER_BIN=${SLUICE_REF:-} ;;
    envoy-h2)       KIND=envoy;  LISTEN_PORT=29013; ENVOY_HTTP_CONFIG='http2_protocol_options: {}'; ENVOY_ALPN='"h2"' ;;
    envoy-h1)       KIND=envoy;  LISTEN_PORT=29014; ENVOY_HTTP_CONFIG='http_protocol_options: {}';  ENVOY_ALPN='"http/1.1"' ;;
    *) echo "unknown peer '$1' (known: sluice-h2 sluice-h1 sluice-h1-mc16 sluice-h2-ref sluice-h1-ref envoy-h2 envoy-h1)" >&2; return 2 ;;
  esac
  ADMIN_PORT=$((LISTEN_PORT + 100))
  export LISTEN_PORT ADMIN_PORT SLUICE_PROTOCOL SLUICE_MAXCONN_PER_SERVER SLUICE_MAX_STREAMS ENVOY_HTTP_CONFIG ENVOY_ALPN
}
for p in $PEERS; do peer_setup "$p" >/dev/null || exit 2; done
for w in $WORKLOADS; do declare -F "wl_$w" >/dev/null || { echo "unknown workload '$w'" >&2; exit 2; }; done

# ---------------------------------------------------------------- process bookkeeping
mkdir -p "$RUNROOT"
alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1; [ -n "$s" ] && [ "$s" != Z ]; }
descendants() { local c; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
stop_pid() { # pid pidfile: TERM, wait <= 10 s, KILL leftovers (pid + descendants), reap
  local pid=$1 pf=$2 kids i
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && { log "  $pid ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
  for i in $kids; do alive "$i" && kill -KILL "$i" 2>/dev/null || true; done
  rm -f "$pf"
}
# Left-overs of an aborted earlier run of this script: stop them by PID, only if their
# command line proves they are ours (it names $RUNROOT).
for pf in "$RUNROOT"/*.pid; do
  [ -e "$pf" ] || continue
  p=$(cat "$pf")
  if alive "$p" && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "$RUNROOT/"; then
    log "stopping stale $(basename "$pf" .pid) pid $p"; stop_pid "$p" "$pf"
  fi
  rm -f "$pf"
done
START_PID=""
start_proc() { # name cpus cmd... -> START_PID (cmd runs the server in the foreground)
  local name=$1 cpus=$2; shift 2
  taskset -c "$cpus" "$@" >"$RUNROOT/$name/console.log" 2>&1 &
  START_PID=$!
  echo "$START_PID" >"$RUNROOT/$name.pid"
}
port_free() { [ -z "$(ss -Htln "( sport = :$1 )")" ]; }
wait_ready() { # url pid -> 0 once a request through it returns 200 (<= 20 s)
  local i code
  for i in $(seq 1 200); do
    alive "$2" || return 1
    code=$(curl -s -k -o /dev/null -w '%{http_code}' -m 2 -H "Host: $ROUTE_HOST" "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
ORIGIN_PID=""; PEER_PID=""; PEER_NAME=""; SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
  [ -n "$PEER_PID" ] && stop_pid "$PEER_PID" "$RUNROOT/$PEER_NAME.pid"
  [ -n "$ORIGIN_PID" ] && stop_pid "$ORIGIN_PID" "$RUNROOT/origin.pid"
  SAMPLER_PID=""; PEER_PID=""; ORIGIN_PID=""
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
stub() { curl -s -m 2 "http://127.0.0.1:$H2_ORIGIN_STATUS_PORT/stub" | awk 'NR==3{print $1, $3}'; }  # "accepts requests"
cpu() { "$PB_ROOT/lib/pstat.py" "$@"; }
scrape() { # kind -> the proxy's counters (sluice /metrics, Envoy /stats) on stdout
  case "$1" in
    sluice) curl -s -m 3 "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -v -e '^#' -e '_bucket{' ;;
    envoy)  curl -s -m 3 "http://127.0.0.1:$ADMIN_PORT/stats?filter=^(cluster\.api_origin\.(upstream_cx_|upstream_rq_)|http\.egress\.downstream_rq_)" | grep -v ': P[0-9]' ;;
  esac
}

# ---------------------------------------------------------------- 1. install, certs, binary
[ "$SKIP_INSTALL" = 1 ] || "$PB_ROOT/lib/install.sh"
"$PB_ROOT/lib/mkcerts.sh"
command -v nginx >/dev/null && [ -x "$ENVOY_BIN" ] || { echo "need nginx and $ENVOY_BIN (run $PB_ROOT/lib/install.sh)" >&2; exit 1; }
if [ -n "${SLUICE_BIN:-}" ]; then
  src_bin=$SLUICE_BIN
else
  src_bin=$repo/target/release/sluice
  if [ "$SKIP_BUILD" != 1 ]; then
    # Other people edit the tree concurrently: a build can fail on a half-saved file; retry.
    for i in 1 2 3; do
      (cd "$repo" && cargo build --release -p sluice) && break
      [ "$i" = 3 ] && { echo "cargo build failed 3 times" >&2; exit 1; }
      log "build failed (source mid-edit?), retrying in 60 s"; sleep 60
    done
  fi
fi
[ -x "$src_bin" ] || { echo "no sluice binary at $src_bin" >&2; exit 1; }
# Private copy: a concurrent 'cargo build' must not swap the binary between reps.
SLUICE=$RUNROOT/sluice.bin
cp "$src_bin" "$SLUICE.tmp" && mv -f "$SLUICE.tmp" "$SLUICE"
SLUICE_REF=$RUNROOT/sluice-ref.bin
if [ -n "${SLUICE_REF_BIN:-}" ]; then
  cp "$SLUICE_REF_BIN" "$SLUICE_REF.tmp" && mv -f "$SLUICE_REF.tmp" "$SLUICE_REF"
elif [[ " $PEERS " == *-ref\ * ]]; then
  echo "the -ref peers need SLUICE_REF_BIN" >&2; exit 1
fi

# ---------------------------------------------------------------- 2. results dir + versions
RES=$PB_WORK/h2-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES/raw"
ln -sfn "$RES" "$PB_WORK/h2-results/latest"
exec > >(tee -a "$RES/run.log") 2>&1
{
  echo "date: $(date -Is)"; echo "kernel: $(uname -r)  cpus: $(nproc)"
  echo "sluice: $("$SLUICE" --version 2>&1 | head -1)  sha256 $(sha256sum "$SLUICE" | cut -c1-16)  built from $src_bin"
  echo "sluice tree: HEAD $(git -C "$repo" rev-parse --short HEAD 2>/dev/null) + $(git -C "$repo" status --porcelain 2>/dev/null | wc -l) uncommitted paths at bench start"
  echo "nginx (origin): $(nginx -v 2>&1)"
  echo "envoy: $("$ENVOY_BIN" --version | tr -s ' \n' ' ')"
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "ab: $(ab -V | head -1)"
  echo "knobs: REPS=$REPS DURATION=$DURATION WARMUP=$WARMUP WORKLOADS='$WORKLOADS' PEERS='$PEERS' ORIGIN_KEEPALIVE_REQUESTS=$ORIGIN_KEEPALIVE_REQUESTS QUEUE_MAXCONN=$QUEUE_MAXCONN SLUICE_MAX_STREAMS=$SLUICE_MAX_STREAMS MAX_STEAL_PCT=$MAX_STEAL_PCT MAX_FOREIGN_PCT=$MAX_FOREIGN_PCT MAX_ATTEMPTS=$MAX_ATTEMPTS"
  echo "pinning: loadgen=CPU$LOADGEN_CPUS origin=CPU$ORIGIN_CPUS proxy=CPU$PROXY_CPUS workers=$WORKERS key=$KEY_ALG"
} >"$RES/versions.txt"
cat "$RES/versions.txt"

# ---------------------------------------------------------------- 3. origin (h2 + h1 on one TLS port)
for p in $H2_ORIGIN_TLS_PORT $H2_ORIGIN_STATUS_PORT; do
  port_free "$p" || { echo "port $p busy (not ours?) -- aborting" >&2; exit 1; }
done
rm -rf "$RUNROOT/origin"; mkdir -p "$RUNROOT/origin"
BODY_1K=$(python3 -c 'import string; s=(string.ascii_letters+string.digits)*20; print(s[:1024], end="")')
RUN_DIR=$RUNROOT/origin BODY_1K=$BODY_1K "$PB_ROOT/lib/render.py" "$here/origin.conf.tmpl" "$RUNROOT/origin/nginx.conf"
start_proc origin "$ORIGIN_CPUS" nginx -p "$RUNROOT/origin" -e "$RUNROOT/origin/error.log" \
  -c "$RUNROOT/origin/nginx.conf" -g 'daemon off;'
ORIGIN_PID=$START_PID
wait_ready "$ORIGIN_URL" "$ORIGIN_PID" || { cat "$RUNROOT/origin/"*.log; exit 1; }
h2check=$(curl -s -o /dev/null -w '%{http_version} %{size_download}' --http2 --cacert "$CA_FILE" \
  --resolve "$ROUTE_HOST:$H2_ORIGIN_TLS_PORT:127.0.0.1" "https://$ROUTE_HOST:$H2_ORIGIN_TLS_PORT/")
[ "${h2check%% *}" = 2 ] || { echo "origin does not speak h2 (curl: $h2check)" >&2; exit 1; }
log "origin up (pid $ORIGIN_PID, CPU$ORIGIN_CPUS): h2 ok, body ${h2check#* } bytes, keepalive_requests $ORIGIN_KEEPALIVE_REQUESTS"

# ---------------------------------------------------------------- 4. one peer x workload x rep
start_peer() { # name -> PEER_PID, or return 1
  local name=$1 dir=$RUNROOT/$1
  rm -rf "$dir"; mkdir -p "$dir"
  port_free "$LISTEN_PORT" && port_free "$ADMIN_PORT" || { log "port $LISTEN_PORT/$ADMIN_PORT busy"; return 1; }
  PEER_NAME=$name
  if [ "$KIND" = sluice ]; then
    RUN_DIR=$dir "$PB_ROOT/lib/render.py" "$here/sluice.yaml.tmpl" "$dir/sluice.yaml"
    "$PEER_BIN" check --config "$dir/sluice.yaml" >"$dir/check.log" 2>&1 || { cat "$dir/check.log"; return 1; }
    start_proc "$name" "$PROXY_CPUS" "$PEER_BIN" run --config "$dir/sluice.yaml"
  else
    RUN_DIR=$dir "$PB_ROOT/lib/render.py" "$here/envoy.yaml.tmpl" "$dir/envoy.yaml"
    start_proc "$name" "$PROXY_CPUS" "$ENVOY_BIN" -c "$dir/envoy.yaml" --concurrency "$WORKERS" \
      --disable-hot-restart -l warn --log-path "$dir/envoy.log"
  fi
  PEER_PID=$START_PID
  if ! wait_ready "http://$LISTEN_ADDR:$LISTEN_PORT/" "$PEER_PID"; then
    log "$name failed to become ready:"; tail -20 "$dir"/*.log || true
    stop_pid "$PEER_PID" "$RUNROOT/$name.pid"; PEER_PID=""; return 1
  fi
}
queue_sampler() { # out: sluice_backend_queue_depth once a second until killed
  while :; do
    curl -s -m 1 "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^sluice_backend_queue_depth/{print $NF}' >>"$1" || true
    sleep 1
  done
}
run_one() { # peer wl rep attempt -> records runs.jsonl/extras.jsonl (or discarded.jsonl); 1 = discard
  local peer=$1 wl=$2 rep=$3 attempt=$4 url="http://$LISTEN_ADDR:$LISTEN_PORT/"
  local base="$RES/raw/$peer.$wl.$rep" out="$RES/raw/$peer.$wl.$rep.txt" csvf="$RES/raw/$peer.$wl.$rep.csv"
  local st_start st0 st1 pc0 pc1 oc0 oc1 t0 t1 lgcpu cs0 cs1 all0 all1
  st_start=$STUB_START   # taken by the caller before the proxy started (includes its readiness probe)
  if [ "$WARMUP" -gt 0 ]; then
    DURATION=$WARMUP "wl_$wl" "$url" "$RES/raw/warmup.csv"
    taskset -c "$LOADGEN_CPUS" timeout -k 5 "$LG_TIMEOUT" "${LG_CMD[@]}" >"$base.warmup.txt" 2>&1 || true
  fi
  "wl_$wl" "$url" "$csvf"
  echo "# ${LG_CMD[*]}" >"$out.cmd"
  scrape "$KIND" >"$base.metrics0.txt" || true
  [ "$KIND" = sluice ] && [ "$SLUICE_MAXCONN_PER_SERVER" != 0 ] && { : >"$base.qdepth.txt"; queue_sampler "$base.qdepth.txt" & SAMPLER_PID=$!; }
  st0=$(stub); pc0=$(cpu "$PEER_PID"); oc0=$(cpu "$ORIGIN_PID")
  cs0=$("$PB_ROOT/lib/cpustat.py" "$PROXY_CPUS"); all0=$("$PB_ROOT/lib/cpustat.py" 0-$(($(nproc) - 1)))
  t0=$(date +%s.%N)
  lgcpu=$(taskset -c "$LOADGEN_CPUS" "$PB_ROOT/lib/cpurun.py" "$out" timeout -k 5 "$LG_TIMEOUT" "${LG_CMD[@]}") \
    || log "  load generator exit status $? (see $out)"
  t1=$(date +%s.%N)
  cs1=$("$PB_ROOT/lib/cpustat.py" "$PROXY_CPUS"); all1=$("$PB_ROOT/lib/cpustat.py" 0-$(($(nproc) - 1)))
  pc1=$(cpu "$PEER_PID"); oc1=$(cpu "$ORIGIN_PID"); st1=$(stub)
  [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""; }
  scrape "$KIND" >"$base.metrics1.txt" || true
  # Guards as in the harness: VM steal, or busy CPU not explained by proxy+origin+loadgen.
  local wall steal_pct foreign_pct dest="$RES/runs.jsonl" xdest="$RES/extras.jsonl" rc=0
  wall=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")
  steal_pct=$(awk "BEGIN{printf \"%.1f\", 100 * (${all1#* } - ${all0#* }) / ($wall * $(nproc))}")
  foreign_pct=$(awk "BEGIN{printf \"%.1f\", 100 * ((${all1% *} - ${all0% *}) - ($pc1 - $pc0) - ($oc1 - $oc0) - ${lgcpu:-0}) / ($wall * $(nproc))}")
  if [ "$attempt" -lt "$MAX_ATTEMPTS" ]; then
    if awk "BEGIN{exit !($steal_pct > $MAX_STEAL_PCT)}"; then
      log "  VM steal ${steal_pct}% > ${MAX_STEAL_PCT}%: discarding this rep, will retry"; rc=1
    elif awk "BEGIN{exit !($foreign_pct > $MAX_FOREIGN_PCT)}"; then
      log "  unexplained CPU ${foreign_pct}% > ${MAX_FOREIGN_PCT}% (foreign load?): discarding this rep, will retry"
      ps -eo pid,pcpu,etimes,args --sort=-pcpu | head -8 >"$out.foreign-ps$attempt"; rc=1
    fi
  fi
  [ "$rc" = 1 ] && { dest="$RES/discarded.jsonl"; xdest="$RES/discarded-extras.jsonl"; }
  # results.py computes "since start" = acc_after - acc_start - 1 (the after-probe's own
  # connection); the st0 probe in between is one more stub_status connection: hence +1.
  "$PB_ROOT/lib/results.py" record "$dest" peer="$peer" workload="$wl" rep="$rep" \
    tool="$LG_TOOL" out="$out" csv="$csvf" wall_s="$wall" \
    acc_start="$(( ${st_start% *} + 1 ))" acc_before="${st0% *}" acc_after="${st1% *}" \
    proxy_cpu_before="$pc0" proxy_cpu_after="$pc1" origin_cpu_before="$oc0" origin_cpu_after="$oc1" \
    loadgen_cpu_s="${lgcpu:-0}" core_busy_before="${cs0% *}" core_busy_after="${cs1% *}" \
    steal_before="${all0#* }" steal_after="${all1#* }" all_busy_before="${all0% *}" all_busy_after="${all1% *}" \
    || log "  could not parse $out"
  "$here/report.py" extras "$xdest" peer="$peer" workload="$wl" rep="$rep" kind="$KIND" \
    m0="$base.metrics0.txt" m1="$base.metrics1.txt" qdepth="$base.qdepth.txt" \
    origin_req_before="${st0#* }" origin_req_after="${st1#* }" \
    || log "  could not parse the metrics of $peer"
  if [ "$rc" = 1 ]; then for f in "$out" "$csvf"; do [ -e "$f" ] && mv "$f" "$f.discarded$attempt"; done; fi
  return $rc
}
declare -A BROKEN=()
measure_peer() { # peer wl rep: a fresh proxy per attempt (cold pool, then WARMUP)
  local peer=$1 wl=$2 rep=$3 attempt ok
  peer_setup "$peer"
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    STUB_START=$(stub)   # origin conns are also counted from proxy start (probe + warm-up)
    start_peer "$peer" || { BROKEN[$peer]=1; log "$peer broken, skipping it from now on"; return 1; }
    log "$peer  $wl  rep $rep  (pid $PEER_PID, CPU$PROXY_CPUS)"
    ok=1; run_one "$peer" "$wl" "$rep" "$attempt" || ok=0
    alive "$PEER_PID" || log "  WARNING: $peer (pid $PEER_PID) died during the run; see $RUNROOT/$peer/console.log"
    stop_pid "$PEER_PID" "$RUNROOT/$peer.pid"; PEER_PID=""
    [ "$ok" = 1 ] && return 0
  done
}

# ---------------------------------------------------------------- 5. the matrix (reps outer)
for rep in $(seq 1 "$REPS"); do
  for peer in $PEERS; do
    for wl in $WORKLOADS; do
      [ -n "${BROKEN[$peer]:-}" ] && continue
      measure_peer "$peer" "$wl" "$rep" || true
    done
  done
done
cleanup

# ---------------------------------------------------------------- 6. table
echo
"$here/report.py" table "$RES" "$PEERS" "$((DURATION))" "$ORIGIN_KEEPALIVE_REQUESTS" "$QUEUE_MAXCONN" \
  "$(( $(date +%s) - T_START ))"
log "results: $RES/summary.md  (wall time $(( $(date +%s) - T_START )) s)"
