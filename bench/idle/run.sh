#!/usr/bin/env bash
# User-space memory per idle keep-alive client connection: sluice, HAProxy and NGINX
# side by side in one invocation (this VM drifts between invocations; compare peers only
# within one), each with ONE worker, as pooling egress proxies in front of the shared
# harness's HTTPS origin (../shared/bench, read-only; configs are the harness's/ours,
# rendered into $OUT/run).
#
#   bench/idle/run.sh
#   SLUICE_BIN=/tmp/sluice-before N=8000 PEERS="sluice haproxy nginx" bench/idle/run.sh
#
# Per proxy and N (a freshly started proxy each time, only one at a time, plus the
# origin): wait for a 200 through it, warm it (WARM requests, new connection each, CONC
# at a time), RSS before, open N connections (CONC at a time) that each send ONE HTTP/1.1
# keep-alive GET, read the whole 200 and then stay idle; after SETTLE s RSS after, check
# every connection is still open (non-blocking peek -> EAGAIN, nothing sent), close them.
# The client side is clients.py (its docstring has the details). RSS = VmRSS of the
# proxy's PID summed with its descendants: sluice and HAProxy are one process; for NGINX
# that is master + worker (the master does not change; the growth is the worker's).
#
# Knobs: SLUICE_BIN (target/release/sluice), N (8000), N2 (N/2, a second run per proxy
# to show linearity; 0 = none), PEERS ("sluice haproxy nginx"), CONC (200), WARM (200),
# SETTLE (2 s), PROXY_CPUS (1) / CLIENT_CPUS (0) / ORIGIN_CPUS (0) (the harness's
# placement), PORT_OFFSET (300: every port is the harness's + this, so a harness run by
# someone else on this box does not collide), PB_WORK (/tmp/sluice-bench: the harness's
# certificates must be there, run bench/run.sh once first), OUT (results dir, default
# $PB_WORK/idle-results/<stamp>), HAPROXY_CLIENT_TIMEOUT (300s, see below; empty = the
# harness's config unchanged), HAPROXY_GLOBAL (extra lines for HAProxy's global section,
# ";"-separated, e.g. "tune.pool-low-fd-ratio 90; tune.pool-high-fd-ratio 95" to keep
# its pool; default none).
#
# Idle timeouts: sluice closes idle clients after 60 s (its default, the peer config sets
# none), NGINX after 300 s (keepalive_timeout), the harness's HAProxy after 30 s (timeout
# client / http-keep-alive). HAProxy's open phase is the slow one: above
# tune.pool-low-fd-ratio (20% of its fds, ~3,300 clients here) it stops keeping idle
# upstream connections (and above tune.pool-high-fd-ratio, 25%, it closes those it has),
# so every further request does its own TLS handshake: 8000 connections took 13-29 s on
# this shared VM, the first of them up to 31 s idle at the check, past the 30 s. So
# HAProxy runs from a copy of the harness template with those two timeouts raised to
# HAPROXY_CLIENT_TIMEOUT (under $OUT/run/pbroot; the harness is not touched); nothing
# else differs. The table shows the timeouts each proxy actually ran with.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
harness=$(cd "${BENCH_HARNESS:-$repo/../shared/bench}" && pwd)
export PB_WORK=${PB_WORK:-/tmp/sluice-bench} PB_ROOT=$harness
export SLUICE_BIN=${SLUICE_BIN:-$repo/target/release/sluice}
N=${N:-8000}; N2=${N2:-$((N / 2))}
PEERS=${PEERS:-"sluice haproxy nginx"}
CONC=${CONC:-200} WARM=${WARM:-200} SETTLE=${SETTLE:-2}
PROXY_CPUS=${PROXY_CPUS:-1} CLIENT_CPUS=${CLIENT_CPUS:-0} ORIGIN_CPUS=${ORIGIN_CPUS:-0}
PORT_OFFSET=${PORT_OFFSET:-300}
HAPROXY_CLIENT_TIMEOUT=${HAPROXY_CLIENT_TIMEOUT-300s} HAPROXY_GLOBAL=${HAPROXY_GLOBAL:-}
OUT=${OUT:-$PB_WORK/idle-results/$(date +%Y%m%d-%H%M%S)}

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- preconditions
ca=$PB_WORK/certs/ec/ca.crt
[ -f "$ca" ] || die "no harness certificates at $ca: run bench/run.sh once first"
[ -x "$SLUICE_BIN" ] || case " $PEERS " in *" sluice "*) die "no sluice binary at $SLUICE_BIN";; esac
for t in haproxy nginx curl taskset python3 ss; do command -v $t >/dev/null || die "$t not installed"; done
[ "$(nproc)" -ge 2 ] || PROXY_CPUS=0   # one core: nothing to separate

# Every connection is one fd in the client and one in the proxy (plus its pool):
# raise the soft limit to the hard one; proxy and client inherit it.
hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
FD_LIMIT=$(ulimit -n)
# Headroom for the pool (CONC upstream connections at most), listeners, logs.
max_n=$((FD_LIMIT - CONC - 100))
if [ "$N" -gt "$max_n" ]; then log "N=$N does not fit fd limit $FD_LIMIT: using N=$max_n"; N=$max_n; fi
[ "$N2" -le "$N" ] || N2=$N
# All connections go from 127.0.0.1 to one ip:port, so each needs its own local port
# (TIME_WAIT ones of the previous run included).
read -r port_lo port_hi < /proc/sys/net/ipv4/ip_local_port_range
ports=$((port_hi - port_lo + 1))
[ $((N + N2 + 2 * WARM)) -lt "$ports" ] || die "ip_local_port_range $port_lo-$port_hi ($ports ports) too narrow for N=$N + N2=$N2"

mkdir -p "$OUT/run"
: >"$OUT/results.jsonl"

# ---------------------------------------------------------------- processes (by PID only)
alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1; [ -n "$s" ] && [ "$s" != Z ]; }
descendants() { local c; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
stop_pid() { # TERM, wait <= 10 s, then KILL it and whatever it left behind (nginx workers); reap
  local pid=$1 kids i
  [ -n "$pid" ] || return 0
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && { log "$pid ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
  for i in $kids; do alive "$i" && kill -KILL "$i" 2>/dev/null || true; done
  return 0
}
ORIGIN_PID="" PEER_PID="" CLIENT_PID=""
cleanup() { stop_pid "$CLIENT_PID"; stop_pid "$PEER_PID"; stop_pid "$ORIGIN_PID"; CLIENT_PID="" PEER_PID="" ORIGIN_PID=""; }
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

port_free() { [ -z "$(ss -Htln "( sport = :$1 )")" ]; }
wait_ready() { # url pid -> 0 once a request through it returns 200 (deadline 20 s)
  local end=$((SECONDS + 20)) code
  while [ $SECONDS -lt $end ]; do
    alive "$2" || return 1
    code=$(curl -s -k -o /dev/null -w '%{http_code}' -m 2 -H "Host: $ROUTE_HOST" "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
peer_dir() { local d; for d in "$repo/bench/peers" "$harness/peers"; do [ -x "$d/$1/start.sh" ] && { echo "$d/$1"; return 0; }; done; return 1; }

# The client idle timeout and connection limit each proxy applies, read from the config
# it actually runs (sluice: its defaults when the config sets none; it has no connection
# limit but the fd limit). A limit below N or a timeout shorter than the open phase +
# SETTLE would close or refuse connections: the table's "still open" and "longest idle"
# columns show whether that happened.
peer_limits() { # peer rundir
  case $1 in
    sluice) awk '/keepalive_timeout:/ {t=$2} END {print (t ? t : "60s (default)") "; fd limit '"$FD_LIMIT"'"}' "$2/sluice.yaml" ;;
    haproxy) awk '/timeout (client|http-keep-alive)/ {printf "%s%s %s", s, $2, $3; s=", "}
                  /^[[:space:]]*maxconn/ {m=$2} END {print "; maxconn " m}' "$2/haproxy.cfg" ;;
    nginx) awk '/^[[:space:]]*keepalive_timeout/ && !t {t=$2}   # the http{} one, not upstream{}
                {for (i = 1; i < NF; i++) if ($i == "worker_connections") w=$(i+1)}
                END {sub(";", "", t); sub(";", "", w)
                     print "keepalive_timeout " t "; worker_connections " w " (clients + upstream)"}' "$2/nginx.conf" ;;
    *) echo "?" ;;
  esac
}

# ---------------------------------------------------------------- environment of the templates
export WORKERS=1 LISTEN_ADDR=127.0.0.1 ROUTE_HOST=api.example.test \
  ORIGIN_ADDR=127.0.0.1 UPSTREAM_SNI=api.example.test CA_FILE=$ca CERT_DIR=$PB_WORK/certs/ec \
  ORIGIN_HTTP_PORT=$((18080 + PORT_OFFSET)) ORIGIN_TLS_PORT=$((18443 + PORT_OFFSET)) \
  ORIGIN_STATUS_PORT=$((18081 + PORT_OFFSET))

# HAProxy's start.sh renders $PB_ROOT/peers/haproxy/haproxy.cfg.tmpl: give it a PB_ROOT
# whose lib/ is the harness's and whose template has the longer client timeouts.
haproxy_root=$harness haproxy_note="harness config unchanged"
if [ -n "$HAPROXY_CLIENT_TIMEOUT$HAPROXY_GLOBAL" ]; then
  haproxy_root=$OUT/run/pbroot
  tmpl=$haproxy_root/peers/haproxy/haproxy.cfg.tmpl
  mkdir -p "$(dirname "$tmpl")"
  ln -sfn "$harness/lib" "$haproxy_root/lib"
  cp "$harness/peers/haproxy/haproxy.cfg.tmpl" "$tmpl"
  haproxy_note="harness template, copied to $tmpl with:"
  if [ -n "$HAPROXY_CLIENT_TIMEOUT" ]; then
    sed -i -E "s/^([[:space:]]*timeout (client|http-keep-alive)) .*/\1 $HAPROXY_CLIENT_TIMEOUT/" "$tmpl"
    [ "$(grep -cE "timeout (client|http-keep-alive) $HAPROXY_CLIENT_TIMEOUT\$" "$tmpl")" = 2 ] \
      || die "could not raise HAProxy's client timeouts in $tmpl"
    haproxy_note+=" timeout client + http-keep-alive $(grep -oE 'timeout client [0-9a-z]+' "$harness/peers/haproxy/haproxy.cfg.tmpl" | cut -d' ' -f3) -> $HAPROXY_CLIENT_TIMEOUT;"
  fi
  if [ -n "$HAPROXY_GLOBAL" ]; then
    lines=$(echo "$HAPROXY_GLOBAL" | tr ';' '\n' | sed -E 's/^[[:space:]]*/  /')
    awk -v add="$lines" '{print} /^global/ {print add}' "$tmpl" >"$tmpl.new" && mv "$tmpl.new" "$tmpl"
    haproxy_note+=" global + '$HAPROXY_GLOBAL';"
  fi
  haproxy_note+=" nothing else changed"
fi

{
  echo "# Idle keep-alive client connections: RSS per connection"
  echo
  echo "- date: $(date -Is), kernel $(uname -r), $(nproc) CPUs"
  echo "- sluice: $SLUICE_BIN ($("$SLUICE_BIN" --version 2>/dev/null || echo 'no --version'), sha256 $(sha256sum "$SLUICE_BIN" | cut -c1-12), built $(date -r "$SLUICE_BIN" -Is))"
  echo "- haproxy: $(haproxy -v | head -1); $haproxy_note"
  echo "- nginx: $(nginx -v 2>&1)"
  echo "- fd limit (ulimit -n, soft = hard): $FD_LIMIT; ip_local_port_range $port_lo-$port_hi"
  echo "- knobs: N=$N N2=$N2 CONC=$CONC WARM=$WARM SETTLE=${SETTLE}s PEERS='$PEERS'; proxy on CPU $PROXY_CPUS, client CPU $CLIENT_CPUS, origin CPU $ORIGIN_CPUS; WORKERS=1"
  echo "- RSS: VmRSS (kB as /proc reports, i.e. KiB) of the proxy PID + descendants; NGINX = master + worker"
  echo
} >"$OUT/results.md"
cat "$OUT/results.md" >&2

# ---------------------------------------------------------------- origin
for p in "$ORIGIN_HTTP_PORT" "$ORIGIN_TLS_PORT" "$ORIGIN_STATUS_PORT"; do port_free "$p" || die "port $p busy (PORT_OFFSET moves all ports)"; done
export RUN_DIR=$OUT/run/origin; mkdir -p "$RUN_DIR"
taskset -c "$ORIGIN_CPUS" "$harness/origin/start.sh" >"$RUN_DIR/console.log" 2>&1 &
ORIGIN_PID=$!
wait_ready "https://127.0.0.1:$ORIGIN_TLS_PORT/" "$ORIGIN_PID" || { cat "$RUN_DIR"/*.log >&2; die "origin did not start"; }
log "origin pid $ORIGIN_PID on :$ORIGIN_TLS_PORT"

# ---------------------------------------------------------------- one proxy, one N
measure() { # peer n
  local peer=$1 n=$2 pdir PORT
  pdir=$(peer_dir "$peer") || die "no peer '$peer' in $repo/bench/peers or $harness/peers"
  PORT=$(. "$pdir/peer.env"; echo "$PORT")
  export LISTEN_PORT=$((PORT + PORT_OFFSET)) RUN_DIR=$OUT/run/$peer.$n
  mkdir -p "$RUN_DIR"
  port_free "$LISTEN_PORT" || die "port $LISTEN_PORT busy"
  # start.sh renders the config into RUN_DIR and execs the proxy: $! is the proxy.
  local root=$harness; [ "$peer" = haproxy ] && root=$haproxy_root
  PB_ROOT=$root taskset -c "$PROXY_CPUS" "$pdir/start.sh" >"$RUN_DIR/console.log" 2>&1 &
  PEER_PID=$!
  wait_ready "http://$LISTEN_ADDR:$LISTEN_PORT/" "$PEER_PID" \
    || { cat "$RUN_DIR"/*.log >&2; die "$peer did not answer 200 within 20 s"; }
  local limits; limits=$(peer_limits "$peer" "$RUN_DIR")
  log "$peer pid $PEER_PID on :$LISTEN_PORT, N=$n, client idle timeout; conn limit: $limits"
  taskset -c "$CLIENT_CPUS" python3 "$here/clients.py" measure --port "$LISTEN_PORT" \
    --host-header "$ROUTE_HOST" --pid "$PEER_PID" --n "$n" --conc "$CONC" --warm "$WARM" \
    --settle "$SETTLE" --status-url "http://127.0.0.1:$ORIGIN_STATUS_PORT/stub" --origin-port "$ORIGIN_TLS_PORT" \
    --label "$peer" --limits "$limits" >"$RUN_DIR/result.json" &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || die "clients.py failed for $peer N=$n"
  CLIENT_PID=""
  cat "$RUN_DIR/result.json" >>"$OUT/results.jsonl"
  stop_pid "$PEER_PID"; PEER_PID=""
}

for n in "$N" $([ "$N2" -gt 0 ] && echo "$N2"); do
  for peer in $PEERS; do measure "$peer" "$n"; done
done

python3 "$here/clients.py" report "$OUT/results.jsonl" >>"$OUT/results.md"
{
  echo
  echo "KB / conn = (RSS after − RSS before) / connections still open at the check (user space"
  echo "only: socket buffers are kernel memory). \"upstream conns\": origin accepts during the open"
  echo "phase; the proxy's ESTABLISHED connections to the origin before it and at the check (those"
  echo "held are in the Δ). \"longest idle at check\" = since the first connection got its response;"
  echo "it must stay below the idle timeout. NGINX allocates and initialises all worker_connections"
  echo "slots at worker start, so their share is in RSS before (about 0.4 KB per slot: worker RSS"
  echo "4.5 MB with 1024 slots, 11.0 MB with 16384, 2026-12-01). Figures below ~0.5 KB/conn are at"
  echo "this method's noise floor (a few MB of Δ; allocator reuse of the warm-up's memory)."
  echo "Raw: $OUT/results.jsonl; rendered configs and logs: $OUT/run/."
} >>"$OUT/results.md"
cleanup
cat "$OUT/results.md"
