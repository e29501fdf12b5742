#!/usr/bin/env bash
# bench/tls: TLS termination (issue 11). sluice, HAProxy, NGINX and Envoy terminate TLS 1.3
# on 127.0.0.1 with one ECDSA P-256 certificate (ALPN h2,http/1.1) and forward over pooled
# keep-alive HTTP/1.1 to the shared harness's origin on its PLAIN port, so only the
# terminating side is measured. One invocation, reps as the outer loop, a fresh proxy per
# measured run, the proxy alone on PROXY_CPUS (like ../shared/bench). See README.md.
#   bench/tls/run.sh                                   # 4 peers x 3 workloads x 3 reps, ~10 min
#   PEERS="haproxy nginx envoy" REPS=1 DURATION=3 bench/tls/run.sh   # smoke test
# Knobs (env, README.md): REPS DURATION WARMUP PEERS WORKLOADS LOADGEN_CPUS ORIGIN_CPUS PROXY_CPUS
#   WORKERS KEY_ALG KA_CONNS H2_CLIENTS H2_STREAMS NEW_CONC H2_LATENCY MAX_STEAL_PCT MAX_FOREIGN_PCT
#   MAX_ATTEMPTS SKIP_INSTALL SKIP_BUILD SLUICE_BIN SLUICE_REF_BIN BENCH_HARNESS PB_WORK
# Writes $PB_WORK/tls-results/<stamp>/{summary.md,runs.jsonl,checks.jsonl,probe.jsonl,versions.txt,run.log,raw/}.
set -euo pipefail
T_START=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export PB_ROOT=${BENCH_HARNESS:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || echo "$repo/../shared/bench")}
[ -x "$PB_ROOT/lib/results.py" ] || { echo "bench harness not found at $PB_ROOT (set BENCH_HARNESS)" >&2; exit 1; }
export PB_WORK=${PB_WORK:-/tmp/sluice-bench}

REPS=${REPS:-3}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
PEERS=${PEERS:-"sluice${SLUICE_REF_BIN:+ sluice-ref} haproxy nginx envoy"}
WORKLOADS=${WORKLOADS:-"tls-ka64 h2-ka tls-new"}
LOADGEN_CPUS=${LOADGEN_CPUS:-0}; ORIGIN_CPUS=${ORIGIN_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}
export WORKERS=${WORKERS:-1} KEY_ALG=${KEY_ALG:-ec}
KA_CONNS=${KA_CONNS:-64}; H2_CLIENTS=${H2_CLIENTS:-16}; H2_STREAMS=${H2_STREAMS:-10}; NEW_CONC=${NEW_CONC:-32}
H2_LATENCY=${H2_LATENCY:-1}; AB_MAXN=${AB_MAXN:-1000000}
export MAX_STEAL_PCT=${MAX_STEAL_PCT:-5} MAX_FOREIGN_PCT=${MAX_FOREIGN_PCT:-10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-3}; SKIP_INSTALL=${SKIP_INSTALL:-0}; SKIP_BUILD=${SKIP_BUILD:-0}
LG_TIMEOUT=$((DURATION + 30))       # hard bound on every load-generator run

export LISTEN_ADDR=127.0.0.1 ORIGIN_ADDR=127.0.0.1 ROUTE_HOST=api.example.test
export ORIGIN_HTTP_PORT=${ORIGIN_HTTP_PORT:-18080} ORIGIN_TLS_PORT=${ORIGIN_TLS_PORT:-18443} ORIGIN_STATUS_PORT=${ORIGIN_STATUS_PORT:-18081}
export CERT_DIR=$PB_WORK/certs/$KEY_ALG CA_FILE=$PB_WORK/certs/$KEY_ALG/ca.crt
TLS_DIR=$PB_WORK/tls-certs/$KEY_ALG
export TLS_CERT=$TLS_DIR/server.crt TLS_KEY=$TLS_DIR/server.key TLS_PEM=$TLS_DIR/server.pem
PROBE_PORT=39099
RUNROOT=$PB_WORK/tls-run            # rendered configs, logs, pid files of the last run
ENVOY_BIN=$PB_WORK/envoy-bin
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { log "ERROR: $*"; exit 1; }

peer_setup() { # name -> KIND LISTEN_PORT ADMIN_PORT PEER_BIN
  PEER_BIN=${SLUICE:-}
  case "$1" in
    haproxy)    KIND=haproxy; LISTEN_PORT=39001 ;;
    nginx)      KIND=nginx;   LISTEN_PORT=39002 ;;
    envoy)      KIND=envoy;   LISTEN_PORT=39003 ;;
    sluice)     KIND=sluice;  LISTEN_PORT=39004 ;;
    sluice-ref) KIND=sluice;  LISTEN_PORT=39014; PEER_BIN=${SLUICE_REF:-} ;;
    *) echo "unknown peer '$1' (known: sluice sluice-ref haproxy nginx envoy)" >&2; return 2 ;;
  esac
  export LISTEN_PORT ADMIN_PORT=$((LISTEN_PORT + 100))
}
lg_cmd() { # workload url seconds base -> LG_TOOL, LG_CMD (clients resolve api.example.test via NS)
  case "$1" in
    tls-ka64) LG_TOOL=wrk; LG_CMD=(wrk -t1 -c"$KA_CONNS" -d"$3s" --latency --timeout 5s -H "Host: $ROUTE_HOST" "$2") ;;
    h2-ka)    LG_TOOL=h2load; LG_CMD=(h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$3")
              [ "$H2_LATENCY" = 1 ] && LG_CMD+=(--log-file "$4.h2log")
              LG_CMD+=("$2") ;;
    tls-new)  LG_TOOL=ab; LG_CMD=(ab -q -r -s 10 -t "$3" -n "$AB_MAXN" -c "$NEW_CONC" -H "Host: $ROUTE_HOST" -e "$4.csv" "$2") ;;
    *) echo "unknown workload '$1' (known: tls-ka64 h2-ka tls-new)" >&2; return 2 ;;
  esac
}
for p in $PEERS; do peer_setup "$p" >/dev/null || exit 2; done
for w in $WORKLOADS; do lg_cmd "$w" u 1 b || exit 2; done

# ---------------------------------------------------------------- process bookkeeping
mkdir -p "$RUNROOT"
alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1; [ -n "$s" ] && [ "$s" != Z ]; }
descendants() { local c; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
stop_pid() { # pid pidfile: TERM, wait <= 10 s, KILL leftovers (pid + descendants), reap
  local pid=$1 pf=$2 kids i; kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && { log "  $pid ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
  for i in $kids; do alive "$i" && kill -KILL "$i" 2>/dev/null || true; done
  rm -f "$pf"
}
for pf in "$RUNROOT"/*.pid; do   # left-overs of an aborted run: ours only if the cmdline names $RUNROOT
  [ -e "$pf" ] || continue; p=$(cat "$pf")
  if alive "$p" && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "$RUNROOT/"; then log "stopping stale $(basename "$pf" .pid) pid $p"; stop_pid "$p" "$pf"; fi
  rm -f "$pf"
done
START_PID=""
start_proc() { # name cpus cmd... -> START_PID (cmd runs the server in the foreground)
  local name=$1 cpus=$2; shift 2
  taskset -c "$cpus" "$@" >"$RUNROOT/$name/console.log" 2>&1 &
  START_PID=$!; echo "$START_PID" >"$RUNROOT/$name.pid"
}
port_free() { [ -z "$(ss -Htln "( sport = :$1 )")" ]; }
CURL=(curl -s --cacert "$CA_FILE" -m 2)
wait_ready() { # url pid [curl args] -> 0 once a GET returns 200; polls, deadline 20 s
  local url=$1 pid=$2 deadline=$((SECONDS + 20)); shift 2
  while [ $SECONDS -lt $deadline ] && alive "$pid"; do
    [ "$("${CURL[@]}" "$@" -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ] && return 0; sleep 0.1
  done
  return 1
}
ORIGIN_PID=""; PEER_PID=""; PEER_NAME=""; PROBE_PID=""; LG_PID=""
cleanup() { # everything this script started that still runs, by PID
  [ -n "$LG_PID" ] && stop_pid "$LG_PID" "$RUNROOT/lg.pid"; [ -n "$PROBE_PID" ] && stop_pid "$PROBE_PID" "$RUNROOT/probe.pid"
  [ -n "$PEER_PID" ] && stop_pid "$PEER_PID" "$RUNROOT/$PEER_NAME.pid"; [ -n "$ORIGIN_PID" ] && stop_pid "$ORIGIN_PID" "$RUNROOT/origin.pid"
  LG_PID=""; PROBE_PID=""; PEER_PID=""; ORIGIN_PID=""
}
exec 3>&1                            # fd 3: the console, for traps firing inside a redirected command
trap 'cleanup >&3 2>&1' EXIT
trap 'log "interrupted" >&3; exit 130' INT TERM
cpu() { "$PB_ROOT/lib/pstat.py" "$@"; }
accepts() { curl -s -m 2 "http://127.0.0.1:$ORIGIN_STATUS_PORT/stub" | awk 'NR==3{print $1}'; }
passive_opens() { awk '/^Tcp:/{ if (!c) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i } else print $c }' /proc/net/snmp; }
# Clients connect to https://api.example.test:PORT/ (real SNI + Host, every tool alike): the
# name resolves to 127.0.0.1 through a private /etc/hosts bind-mounted in a mount namespace
# around the client only (the machine's /etc/hosts is untouched).
HOSTS_FILE=$RUNROOT/hosts
NS=(unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$HOSTS_FILE")
scrape() { # kind -> the proxy's own counters
  case "$1" in
    haproxy) "$here/report.py" haproxy-stat "$RUNROOT/$PEER_NAME/haproxy.sock" ;;
    envoy)   curl -s -m 3 "http://127.0.0.1:$ADMIN_PORT/stats?filter=^(listener\.[0-9]|http\.ingress\.downstream_(cx|rq)_total|cluster\.api_origin\.upstream_cx_total)" ;;
    nginx)   curl -s -m 3 "http://127.0.0.1:$ADMIN_PORT/stub" ;;
    sluice)  curl -s -m 3 "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -v -e '^#' -e '_bucket{' ;;
  esac
}

# ---------------------------------------------------------------- 1. install, certs, binaries
[ "$SKIP_INSTALL" = 1 ] || "$PB_ROOT/lib/install.sh"
"$PB_ROOT/lib/mkcerts.sh"            # the harness's test CA (+ origin cert)
"$here/mkcert.sh" "$TLS_DIR" "$CA_FILE" "$ROUTE_HOST" "$KEY_ALG"   # our listener cert, same CA
for b in haproxy nginx wrk h2load ab unshare; do command -v "$b" >/dev/null || die "need $b (run $PB_ROOT/lib/install.sh)"; done
[ -x "$ENVOY_BIN" ] || die "need $ENVOY_BIN (run $PB_ROOT/lib/install.sh)"
echo "127.0.0.1 $ROUTE_HOST" >"$HOSTS_FILE"
[ "$("${NS[@]}" getent hosts "$ROUTE_HOST" | awk '{print $1}')" = 127.0.0.1 ] \
  || die "cannot resolve $ROUTE_HOST in a private mount namespace (unshare --mount needs CAP_SYS_ADMIN)"
if [[ " $PEERS " == *" sluice"* ]]; then
  src_bin=${SLUICE_BIN:-$repo/target/release/sluice}
  if [ -z "${SLUICE_BIN:-}" ] && [ "$SKIP_BUILD" != 1 ]; then
    for i in 1 2 3; do   # others edit the tree concurrently: a half-saved file fails the build; retry
      (cd "$repo" && cargo build --release -p sluice) && break
      [ "$i" = 3 ] && die "cargo build failed 3 times"; log "build failed (source mid-edit?), retrying in 60 s"; sleep 60
    done
  fi
  [ -x "$src_bin" ] || die "no sluice binary at $src_bin"
  SLUICE=$RUNROOT/sluice.bin; cp "$src_bin" "$SLUICE.tmp" && mv -f "$SLUICE.tmp" "$SLUICE"   # private copy
  if [[ " $PEERS " == *" sluice-ref "* ]]; then
    [ -x "${SLUICE_REF_BIN:-}" ] || die "peer sluice-ref needs SLUICE_REF_BIN"
    SLUICE_REF=$RUNROOT/sluice-ref.bin; cp "$SLUICE_REF_BIN" "$SLUICE_REF.tmp" && mv -f "$SLUICE_REF.tmp" "$SLUICE_REF"
  fi
fi

# ---------------------------------------------------------------- 2. results dir + versions
RES=$PB_WORK/tls-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES/raw"; ln -sfn "$RES" "$PB_WORK/tls-results/latest"
exec > >(tee -a "$RES/run.log") 2>&1 3>&1
{
  echo "date: $(date -Is)"; echo "kernel: $(uname -r)  cpus: $(nproc)"
  [ -n "${SLUICE:-}" ] && echo "sluice: $("$SLUICE" --version 2>&1 | head -1)  sha256 $(sha256sum "$SLUICE" | cut -c1-16) from $src_bin; tree HEAD $(git -C "$repo" rev-parse --short HEAD) + $(git -C "$repo" status --porcelain | wc -l) uncommitted paths"
  [ -n "${SLUICE_REF:-}" ] && echo "sluice-ref: $("$SLUICE_REF" --version 2>&1 | head -1)  sha256 $(sha256sum "$SLUICE_REF" | cut -c1-16) from $SLUICE_REF_BIN"
  echo "haproxy: $(haproxy -v | head -1)"; echo "nginx: $(nginx -v 2>&1)"; echo "envoy: $("$ENVOY_BIN" --version | tr -s ' \n' ' ')"
  echo "wrk: $(wrk -v 2>&1 | head -1)"; echo "ab: $(ab -V | head -1)"; echo "h2load: $(h2load --version)"
  echo "openssl: $(openssl version)"; echo "cert: $(openssl x509 -in "$TLS_CERT" -noout -subject -ext subjectAltName | tr -s '\n ' ' ')$(openssl pkey -in "$TLS_KEY" -noout -text 2>/dev/null | grep -m1 -E 'NIST CURVE|Private-Key')"
  echo "knobs: REPS=$REPS DURATION=$DURATION WARMUP=$WARMUP PEERS='$PEERS' WORKLOADS='$WORKLOADS' KA_CONNS=$KA_CONNS H2_CLIENTS=$H2_CLIENTS H2_STREAMS=$H2_STREAMS NEW_CONC=$NEW_CONC H2_LATENCY=$H2_LATENCY MAX_STEAL_PCT=$MAX_STEAL_PCT MAX_FOREIGN_PCT=$MAX_FOREIGN_PCT MAX_ATTEMPTS=$MAX_ATTEMPTS"
  echo "pinning: loadgen=CPU$LOADGEN_CPUS origin=CPU$ORIGIN_CPUS proxy=CPU$PROXY_CPUS workers=$WORKERS key=$KEY_ALG"
} >"$RES/versions.txt"
cat "$RES/versions.txt"

# ---------------------------------------------------------------- 3. what the clients really do (probe.py)
probe() { # label args... : one client run against the probe server -> PROBE (a line of probe.jsonl)
  local label=$1 out=$RUNROOT/probe/$(( ++NPROBE )).jsonl; shift
  "$here/probe.py" "$TLS_CERT" "$TLS_KEY" "$PROBE_PORT" "$out" >"$RUNROOT/probe/console.log" 2>&1 & PROBE_PID=$!
  echo "$PROBE_PID" >"$RUNROOT/probe.pid"
  local deadline=$((SECONDS + 10)); until ! port_free "$PROBE_PORT"; do [ $SECONDS -lt $deadline ] && alive "$PROBE_PID" || die "probe.py did not start"; sleep 0.05; done
  "${NS[@]}" timeout -k 2 20 "$@" >"$RUNROOT/probe/$NPROBE.out" 2>&1 || true
  stop_pid "$PROBE_PID" "$RUNROOT/probe.pid"; PROBE_PID=""
  PROBE=$("$here/report.py" probe "$out" "$label"); echo "$PROBE" | tee -a "$RES/probe.jsonl"
}
NPROBE=0; rm -rf "$RUNROOT/probe"; mkdir -p "$RUNROOT/probe"; PU="https://$ROUTE_HOST:$PROBE_PORT/"
port_free "$PROBE_PORT" || die "port $PROBE_PORT busy"
probe "wrk -t1 -c2 (tls-ka64)" wrk -t1 -c2 -d1s -H "Host: $ROUTE_HOST" "$PU"
[[ $PROBE == *"\"sni\": \"$ROUTE_HOST\", \"alpn\": \"None\", \"tls\": \"TLSv1.3\""* ]] || die "wrk: unexpected SNI/TLS"
probe "h2load -c2 (h2-ka)" h2load -n 4 -c 2 "$PU"
[[ $PROBE == *"\"sni\": \"$ROUTE_HOST\", \"alpn\": \"h2\", \"tls\": \"TLSv1.3\""* ]] || die "h2load: unexpected SNI/ALPN"
probe "ab -n 200 -c 4 (tls-new)" ab -q -n 200 -c 4 -H "Host: $ROUTE_HOST" "$PU"
[[ $PROBE == *"\"requests\": 200, \"sni\": \"$ROUTE_HOST\", \"alpn\": \"None\", \"tls\": \"TLSv1.3\", \"resumed\": 0, \"max_requests_per_conn\": 1}" ]] \
  || die "ab: not one new connection + full handshake per request"
# control, not a workload: wrk reconnecting after 'Connection: close' resumes its sessions (so the probe sees resumption)
probe "wrk -c2 -H 'Connection: close' (control)" wrk -t1 -c2 -d1s -H "Connection: close" -H "Host: $ROUTE_HOST" "$PU"
[[ $PROBE != *'"resumed": 0,'* ]] || log "WARNING: the control client resumed no session: is probe.py's resumption detection working?"

# ---------------------------------------------------------------- 4. origin (the harness's, plain port used)
for p in $ORIGIN_HTTP_PORT $ORIGIN_TLS_PORT $ORIGIN_STATUS_PORT; do port_free "$p" || die "port $p busy (not ours?)"; done
export RUN_DIR=$RUNROOT/origin; rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
start_proc origin "$ORIGIN_CPUS" "$PB_ROOT/origin/start.sh"; ORIGIN_PID=$START_PID
ORIGIN_URL="http://$ORIGIN_ADDR:$ORIGIN_HTTP_PORT/"
wait_ready "$ORIGIN_URL" "$ORIGIN_PID" -H "Host: $ROUTE_HOST" || { cat "$RUN_DIR"/*.log; die "origin did not start"; }
curl -s -m 2 -H "Host: $ROUTE_HOST" -o "$RUNROOT/origin.body" "$ORIGIN_URL"
[ "$(wc -c <"$RUNROOT/origin.body")" = 1024 ] || die "origin body is not 1 KiB"
log "origin up (pid $ORIGIN_PID, CPU$ORIGIN_CPUS), upstream $ORIGIN_URL, 1 KiB body"

# ---------------------------------------------------------------- 5. peers: start + TLS/ALPN/body checks
start_peer() { # name -> PEER_PID, or return 1
  local name=$1 dir=$RUNROOT/$1 url="https://$ROUTE_HOST:$LISTEN_PORT/"
  rm -rf "$dir"; mkdir -p "$dir"; export RUN_DIR=$dir; PEER_NAME=$name
  port_free "$LISTEN_PORT" && port_free "$ADMIN_PORT" || { log "port $LISTEN_PORT/$ADMIN_PORT busy"; return 1; }
  case "$KIND" in
    haproxy) "$PB_ROOT/lib/render.py" "$here/haproxy.cfg.tmpl" "$dir/haproxy.cfg"; haproxy -c -q -f "$dir/haproxy.cfg" || return 1
             start_proc "$name" "$PROXY_CPUS" haproxy -db -f "$dir/haproxy.cfg" ;;
    nginx)   "$PB_ROOT/lib/render.py" "$here/nginx.conf.tmpl" "$dir/nginx.conf"
             nginx -q -t -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || return 1
             start_proc "$name" "$PROXY_CPUS" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' ;;
    envoy)   "$PB_ROOT/lib/render.py" "$here/envoy.yaml.tmpl" "$dir/envoy.yaml"
             start_proc "$name" "$PROXY_CPUS" "$ENVOY_BIN" -c "$dir/envoy.yaml" --concurrency "$WORKERS" \
               --disable-hot-restart -l warn --log-path "$dir/envoy.log" ;;
    sluice)  "$PB_ROOT/lib/render.py" "$here/sluice.yaml.tmpl" "$dir/sluice.yaml"
             "$PEER_BIN" check --config "$dir/sluice.yaml" >"$dir/check.log" 2>&1 || { cat "$dir/check.log"; return 1; }
             start_proc "$name" "$PROXY_CPUS" "$PEER_BIN" run --config "$dir/sluice.yaml" ;;
  esac
  PEER_PID=$START_PID; local rs=(--resolve "$ROUTE_HOST:$LISTEN_PORT:127.0.0.1")
  if ! wait_ready "$url" "$PEER_PID" "${rs[@]}"; then
    log "$name failed to become ready:"; tail -20 "$dir"/*.log || true
    stop_pid "$PEER_PID" "$RUNROOT/$name.pid"; PEER_PID=""; return 1
  fi
  # h2 and http/1.1 over TLS 1.3, 200 + the origin's body; TLS 1.2 must be refused
  local h2 h1 t12 ok=1 body_ok=yes
  tls_get() { # h2|h1 -> "code=.. http=.. TLSvX CIPHER alpn=.."; body in $dir/body.$1
    local v; v=$("${CURL[@]}" "${rs[@]}" -v "--http${2}" -o "$dir/body.$1" -w 'code=%{http_code} http=%{http_version}' "$url" 2>"$dir/curl-$1.log") || true
    echo "$v $(grep -o -m1 'SSL connection using [^ ]* / [^ ]*' "$dir/curl-$1.log" | cut -d' ' -f4,6) alpn=$(grep -o -m1 'ALPN: server accepted [^ ]*' "$dir/curl-$1.log" | cut -d' ' -f4)"; }
  h2=$(tls_get h2 2); h1=$(tls_get h1 1.1)
  if "${CURL[@]}" "${rs[@]}" --tlsv1.2 --tls-max 1.2 -o /dev/null "$url"; then t12=NO; ok=0; else t12=yes; fi
  [[ "$h2" == "code=200 http=2 TLSv1.3 "*" alpn=h2" ]] || ok=0
  [[ "$h1" == "code=200 http=1.1 TLSv1.3 "*" alpn=http/1.1" ]] || ok=0
  cmp -s "$dir/body.h2" "$RUNROOT/origin.body" && cmp -s "$dir/body.h1" "$RUNROOT/origin.body" || { body_ok=NO; ok=0; }
  [ -n "${CHECKED[$name]:-}" ] || printf '{"peer": "%s", "h2": "%s", "h1": "%s", "no_tls12": "%s", "body_ok": "%s"}\n' \
    "$name" "$h2" "$h1" "$t12" "$body_ok" >>"$RES/checks.jsonl"
  CHECKED[$name]=1
  [ "$ok" = 1 ] && return 0
  log "ERROR: $name fails the TLS checks: h2 [$h2] h1 [$h1] TLS1.2 refused: $t12, body ok: $body_ok"
  stop_pid "$PEER_PID" "$RUNROOT/$name.pid"; PEER_PID=""; return 1
}

# ---------------------------------------------------------------- 6. one peer x workload x rep
run_lg() { # [wrapper...]: the load generator, in the background so that a signal's trap runs at once
  local rc=0; taskset -c "$LOADGEN_CPUS" "$@" "${NS[@]}" timeout -k 5 "$LG_TIMEOUT" "${LG_CMD[@]}" & LG_PID=$!
  wait "$LG_PID" || rc=$?; LG_PID=""; return $rc; }
run_one() { # peer wl rep attempt -> runs.jsonl (or discarded.jsonl); return 1 = discard
  local peer=$1 wl=$2 rep=$3 attempt=$4 url="https://$ROUTE_HOST:$LISTEN_PORT/" base="$RES/raw/$1.$2.$3"
  local out="$base.txt" pc0 pc1 oc0 oc1 cs0 cs1 all0 all1 acc0 acc1 po0 po1 t0 t1 lgcpu
  if [ "$WARMUP" -gt 0 ]; then lg_cmd "$wl" "$url" "$WARMUP" "$base.warmup"; run_lg >"$base.warmup.txt" 2>&1 || true; rm -f "$base.warmup.h2log" "$base.warmup.csv"; fi
  lg_cmd "$wl" "$url" "$DURATION" "$base"
  echo "# ${LG_CMD[*]}" >"$out.cmd"
  scrape "$KIND" >"$base.stats0.txt" 2>&1 || true      # TCP to an admin port: before PassiveOpens
  po0=$(passive_opens); acc0=$(accepts); pc0=$(cpu "$PEER_PID"); oc0=$(cpu "$ORIGIN_PID")
  cs0=$("$PB_ROOT/lib/cpustat.py" "$PROXY_CPUS"); all0=$("$PB_ROOT/lib/cpustat.py" 0-$(($(nproc) - 1)))
  t0=$(date +%s.%N)
  run_lg "$PB_ROOT/lib/cpurun.py" "$out" >"$base.lgcpu" || log "  load generator exit status $? (see $out)"
  lgcpu=$(cat "$base.lgcpu"); rm -f "$base.lgcpu"
  t1=$(date +%s.%N)
  cs1=$("$PB_ROOT/lib/cpustat.py" "$PROXY_CPUS"); all1=$("$PB_ROOT/lib/cpustat.py" 0-$(($(nproc) - 1)))
  pc1=$(cpu "$PEER_PID"); oc1=$(cpu "$ORIGIN_PID"); acc1=$(accepts); po1=$(passive_opens)
  scrape "$KIND" >"$base.stats1.txt" 2>&1 || true
  # guards as in the harness: VM steal, or busy CPU not explained by proxy + origin + load generator
  local wall steal_pct foreign_pct dest="$RES/runs.jsonl" rc=0
  wall=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")
  steal_pct=$(awk "BEGIN{printf \"%.1f\", 100 * (${all1#* } - ${all0#* }) / ($wall * $(nproc))}")
  foreign_pct=$(awk "BEGIN{printf \"%.1f\", 100 * ((${all1% *} - ${all0% *}) - ($pc1 - $pc0) - ($oc1 - $oc0) - ${lgcpu:-0}) / ($wall * $(nproc))}")
  if [ "$attempt" -lt "$MAX_ATTEMPTS" ]; then
    if awk "BEGIN{exit !($steal_pct > $MAX_STEAL_PCT)}"; then log "  VM steal ${steal_pct}% > ${MAX_STEAL_PCT}%: discarding, will retry"; rc=1
    elif awk "BEGIN{exit !($foreign_pct > $MAX_FOREIGN_PCT)}"; then
      log "  unexplained CPU ${foreign_pct}% > ${MAX_FOREIGN_PCT}% (foreign load?): discarding, will retry"
      ps -eo pid,pcpu,etimes,args --sort=-pcpu | head -8 >"$out.foreign-ps$attempt"; rc=1
    fi
  fi
  [ "$rc" = 1 ] && dest="$RES/discarded.jsonl"
  "$here/report.py" record "$dest" peer="$peer" workload="$wl" rep="$rep" kind="$KIND" tool="$LG_TOOL" \
    out="$out" csv="$base.csv" h2log="$base.h2log" stats0="$base.stats0.txt" stats1="$base.stats1.txt" wall_s="$wall" \
    acc_before="$acc0" acc_after="$acc1" passive_before="$po0" passive_after="$po1" \
    proxy_cpu_before="$pc0" proxy_cpu_after="$pc1" origin_cpu_before="$oc0" origin_cpu_after="$oc1" \
    loadgen_cpu_s="${lgcpu:-0}" core_busy_before="${cs0% *}" core_busy_after="${cs1% *}" \
    steal_before="${all0#* }" steal_after="${all1#* }" all_busy_before="${all0% *}" all_busy_after="${all1% *}" \
    || log "  could not parse $out"
  rm -f "$base.h2log"                                   # per-request log: large, parsed above
  if [ "$rc" = 1 ]; then for f in "$out" "$base.csv"; do [ -e "$f" ] && mv "$f" "$f.discarded$attempt"; done; fi
  return $rc
}
declare -A BROKEN=() CHECKED=()
measure_peer() { # peer wl rep: a fresh proxy per attempt (cold pool, then WARMUP)
  local peer=$1 wl=$2 rep=$3 attempt ok
  peer_setup "$peer"
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    start_peer "$peer" || { BROKEN[$peer]=1; log "ERROR: $peer broken, skipping it from now on"; return 1; }
    log "$peer  $wl  rep $rep  (pid $PEER_PID, CPU$PROXY_CPUS)"
    ok=1; run_one "$peer" "$wl" "$rep" "$attempt" || ok=0
    alive "$PEER_PID" || log "  WARNING: $peer (pid $PEER_PID) died during the run; see $RUNROOT/$peer/console.log"
    stop_pid "$PEER_PID" "$RUNROOT/$peer.pid"; PEER_PID=""
    [ "$ok" = 1 ] && return 0
  done
}

# ---------------------------------------------------------------- 7. the matrix (reps outer)
for rep in $(seq 1 "$REPS"); do
  for peer in $PEERS; do
    for wl in $WORKLOADS; do
      [ -n "${BROKEN[$peer]:-}" ] || measure_peer "$peer" "$wl" "$rep" || true
    done
  done
done
cleanup

# ---------------------------------------------------------------- 8. table
echo; echo "TLS termination, medians of $REPS x ${DURATION}s ($RES)"
if [ -s "$RES/runs.jsonl" ]; then "$here/report.py" table "$RES"; log "results: $RES/summary.md  (wall time $(( $(date +%s) - T_START )) s)"; fi
[ ${#BROKEN[@]} = 0 ] || die "broken peers: ${!BROKEN[*]} (see the log above)"
