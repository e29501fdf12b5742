#!/usr/bin/env bash
# Where the time goes per request: sluice vs HAProxy vs NGINX on the bench harness's
# workload (plain HTTP client -> proxy, pooled TLS 1.3 proxy -> origin, 1 KiB body),
# each proxy with one worker, in two modes:
#   close      ab -c CONC -n N      (HTTP/1.0, a new client connection per request)
#   keepalive  ab -k -c CONC -n N   (persistent client connections)
# Per proxy x mode it measures, one proxy at a time, each on a freshly started proxy:
#   plain     native run: TCP segments (/proc/net/snmp InSegs/OutSegs delta) and
#             perf stat (task-clock, context switches, migrations, syscalls by tracepoint)
#             over N_PLAIN requests; then strace -c -f over N_STRACE requests
#   callgrind the proxy under valgrind --tool=callgrind --instr-atstart=no, counting only
#             during N_CG requests (callgrind_control -i on/off), analysed by cg.py
#             (Ir/request, allocator calls/request, buckets, top functions)
# Every run is preceded by WARM unmeasured requests (fills the upstream pool), and the
# origin's stub_status accepts are checked: a measured run must open no upstream conns.
#
#   bench/profile/run.sh                       # all, SLUICE_BIN=target/release/sluice
#   PROXIES=sluice STEPS=callgrind bench/profile/run.sh
#   SLUICE_BIN=target/release/sluice OUT=/tmp/prof bench/profile/run.sh
# Knobs: PROXIES ("sluice haproxy nginx"), MODES ("close keepalive"),
#   STEPS ("plain callgrind"), N_PLAIN (5000), N_STRACE (5000), N_CG (3000), CONC (16),
#   WARM (500), PROXY_CPUS (1), LOADGEN_CPUS (0: ab and origin, as in the harness),
#   OUT (bench/profile/results/<stamp>), PB_WORK (/tmp/sluice-bench: certificates),
#   BENCH_HARNESS (../shared/bench), PORT_BASE (29100: proxies listen on PORT_BASE+k,
#   the origin on PORT_BASE+80/+81/+443), NETNS (1: run everything in a private network
#   namespace so /proc/net/snmp counts only this traffic; with NETNS=0 a concurrent
#   harness run would show in the segment counts: the idle segment rate is recorded next
#   to every run for that reason).
# Under callgrind nginx's worker runs as root (-g 'user root;' appended by the wrapper):
# vgdb's FIFOs are created before the worker drops privileges.
# Output: $OUT/summary.md (tables, made by report.py), $OUT/raw/* (every raw file).
set -euo pipefail
# Run in a private network namespace (own loopback, own /proc/net/snmp): other users'
# loopback traffic on this shared VM would otherwise land in the segment counts, and no
# port can collide with a concurrent harness run. NETNS=0 runs in the host namespace.
if [ "${NETNS:-1}" = 1 ] && [ -z "${PROFILE_IN_NETNS:-}" ]; then
  exec env PROFILE_IN_NETNS=1 unshare --net -- "$0" "$@"
fi
[ -n "${PROFILE_IN_NETNS:-}" ] && ip link set lo up
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
harness=${BENCH_HARNESS:-$repo/../shared/bench}
harness=$(cd "$harness" && pwd)
export PB_WORK=${PB_WORK:-/tmp/sluice-bench} PB_ROOT=$harness
SLUICE_BIN=${SLUICE_BIN:-$repo/target/release/sluice}
PROXIES=${PROXIES:-sluice haproxy nginx}
MODES=${MODES:-close keepalive}
STEPS=${STEPS:-plain callgrind}
N_PLAIN=${N_PLAIN:-5000} N_STRACE=${N_STRACE:-5000} N_CG=${N_CG:-3000}
CONC=${CONC:-16} WARM=${WARM:-500}
PROXY_CPUS=${PROXY_CPUS:-1} LOADGEN_CPUS=${LOADGEN_CPUS:-0}
PORT_BASE=${PORT_BASE:-29100}
OUT=${OUT:-$here/results/$(date +%Y%m%d-%H%M%S)}
raw=$OUT/raw
mkdir -p "$raw"
OUT=$(cd "$OUT" && pwd) raw=$OUT/raw

for t in valgrind callgrind_control strace ab curl perf taskset haproxy nginx python3; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
[ -x "$SLUICE_BIN" ] || { echo "no sluice binary at $SLUICE_BIN" >&2; exit 1; }
SLUICE_BIN=$(readlink -f "$SLUICE_BIN")
ca=$PB_WORK/certs/ec/ca.crt
[ -f "$ca" ] || { echo "no harness certificates at $ca: run the harness once first" >&2; exit 1; }

work=$(mktemp -d /tmp/sluice-profile.XXXXXX)
declare -a started=()          # PIDs this script started (killed on exit)
cleanup() {
  local p
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
# a reaped PID leaves the list, so the exit trap never signals a recycled PID
forget() { local p q=(); for p in "${started[@]}"; do [ "$p" = "$1" ] || q+=("$p"); done; started=("${q[@]}"); }
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Everything the harness's templates need.
export RUN_DIR=$work/origin CERT_DIR=$PB_WORK/certs/ec \
  ORIGIN_HTTP_PORT=$((PORT_BASE + 80)) ORIGIN_TLS_PORT=$((PORT_BASE + 443)) \
  ORIGIN_STATUS_PORT=$((PORT_BASE + 81))
export WORKERS=1 LISTEN_ADDR=127.0.0.1 ROUTE_HOST=api.example.test \
  ORIGIN_ADDR=127.0.0.1 UPSTREAM_SNI=api.example.test CA_FILE=$ca

peer_dir() {
  case $1 in
    sluice) echo "$repo/bench/peers/sluice" ;;
    *) echo "$harness/peers/$1" ;;
  esac
}
peer_port() { case $1 in sluice) echo $((PORT_BASE + 4)) ;; haproxy) echo $((PORT_BASE + 1)) ;; nginx) echo $((PORT_BASE + 2)) ;; esac; }

# wait_http URL DEADLINE_S [HOST]: until a 200 comes back, or fail
wait_http() {
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    curl -fs -m 2 -o /dev/null -H "Host: $ROUTE_HOST" "$url" && return 0
    sleep 0.2
  done
  return 1
}
# stop_pid PID DEADLINE_S: SIGTERM, wait until it exited (our child: reap it), else SIGKILL
stop_pid() {
  local p=$1 deadline=$(( $(date +%s) + ${2:-30} ))
  kill -TERM "$p" 2>/dev/null || return 0
  while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  forget "$p"
}
# stop a tracer (strace/perf) with SIGINT so it writes its summary; deadline 20 s
stop_tracer() {
  local p=$1 deadline=$(( $(date +%s) + 20 ))
  kill -INT "$p" 2>/dev/null || true
  while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  forget "$p"
}
origin_accepts() { curl -fs -m 5 "http://127.0.0.1:$ORIGIN_STATUS_PORT/stub" | awk 'NR == 3 {print $1}'; }
snmp_tcp() { awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else { for (i = 1; i <= NF; i++) if (n[i] == "InSegs" || n[i] == "OutSegs" || n[i] == "ActiveOpens" || n[i] == "PassiveOpens" || n[i] == "RetransSegs") printf "%s=%s ", n[i], $i; print "" } }' /proc/net/snmp; }

# run_ab MODE N OUTFILE: the measured load, bounded; fails on any failed / non-2xx request
run_ab() {
  local mode=$1 n=$2 out=$3 k=""
  [ "$mode" = keepalive ] && k=-k
  timeout 600 taskset -c "$LOADGEN_CPUS" ab -q $k -c "$CONC" -n "$n" -H "Host: $ROUTE_HOST" "$url" >"$out" 2>&1 \
    || die "ab failed ($out): $(tail -3 "$out")"
  local done failed
  done=$(awk '/^Complete requests/ {print $3}' "$out")
  failed=$(awk '/^Failed requests/ {f = $3} /^Non-2xx responses/ {x = $3} END {print f + x}' "$out")
  [ "$done" = "$n" ] && [ "$failed" = 0 ] || die "$out: complete=$done failed/non-2xx=$failed"
}

# start_proxy NAME [callgrind]: starts the peer's start.sh (exec's the proxy in the
# foreground, so $! is the proxy), pinned to PROXY_CPUS; sets ppid
start_proxy() {
  local name=$1 how=${2:-plain} dir
  dir=$(peer_dir "$name")
  export LISTEN_PORT; LISTEN_PORT=$(peer_port "$name")
  export RUN_DIR=$work/run/$name; rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"
  url=http://127.0.0.1:$LISTEN_PORT/
  local path=$PATH sbin=$SLUICE_BIN
  if [ "$how" = callgrind ]; then path=$work/wrap:$PATH; sbin=$work/wrap/sluice; fi
  PATH=$path SLUICE_BIN=$sbin taskset -c "$PROXY_CPUS" "$dir/start.sh" >"$raw/$name.$mode.$how.log" 2>&1 &
  ppid=$!; started+=("$ppid")
  wait_http "$url" $([ "$how" = callgrind ] && echo 180 || echo 30) \
    || die "$name ($how) not ready: $(tail -5 "$raw/$name.$mode.$how.log")"
  # the process that does the work: nginx's worker (its master only forks it)
  tpid=$ppid
  if [ "$name" = nginx ]; then
    tpid=$(cat "/proc/$ppid/task/$ppid/children" | awk '{print $1}')
    [ -n "$tpid" ] || die "no nginx worker under $ppid"
  fi
}

# callgrind wrappers: the peers' start.sh run their config check natively, then exec
# the proxy through these, which exec valgrind on the real binary (same PID)
mkdir -p "$work/wrap" "$work/cg"
vg="valgrind --tool=callgrind --instr-atstart=no --trace-children=yes --callgrind-out-file=$work/cg/cg.%p"
cat >"$work/wrap/sluice" <<EOF
#!/bin/sh
[ "\$1" = check ] && exec "$SLUICE_BIN" "\$@"
exec $vg "$SLUICE_BIN" "\$@"
EOF
cat >"$work/wrap/haproxy" <<EOF
#!/bin/sh
for a in "\$@"; do [ "\$a" = -c ] && exec $(command -v haproxy) "\$@"; done
exec $vg $(command -v haproxy) "\$@"
EOF
# nginx: the worker must stay root under valgrind (its vgdb FIFOs are created before the
# worker drops to 'nobody', which then cannot answer callgrind_control): append
# 'user root;' to the -g directives (the only change to the peer's config)
cat >"$work/wrap/nginx" <<EOF
#!/bin/bash
for a in "\$@"; do [ "\$a" = -t ] && exec $(command -v nginx) "\$@"; done
args=(); g=0
for a in "\$@"; do
  if [ \$g = 1 ]; then a="\$a user root;"; g=0; fi
  [ "\$a" = -g ] && g=1
  args+=("\$a")
done
exec $vg $(command -v nginx) "\${args[@]}"
EOF
chmod +x "$work/wrap/"*

# ---------------------------------------------------------------- versions
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (work tree dirty; the binary is SLUICE_BIN, not necessarily this tree)')"
  echo "sluice binary: $SLUICE_BIN ($(stat -c '%y' "$SLUICE_BIN" | cut -d. -f1), sha256 $(sha256sum "$SLUICE_BIN" | cut -c1-12))"
  echo "kernel: $(uname -r); cpus: $(nproc)"
  echo "valgrind: $(valgrind --version)"
  echo "strace: $(strace -V | head -1)"
  echo "perf: $(perf --version)"
  echo "haproxy: $(haproxy -v | head -1)"
  echo "nginx: $(nginx -v 2>&1)"
  echo "openssl: $(openssl version 2>/dev/null)"
  echo "ab: $(ab -V | head -1)"
  echo "knobs: N_PLAIN=$N_PLAIN N_STRACE=$N_STRACE N_CG=$N_CG CONC=$CONC WARM=$WARM PROXY_CPUS=$PROXY_CPUS LOADGEN_CPUS=$LOADGEN_CPUS"
} >"$OUT/versions.txt"
cat "$OUT/versions.txt" >&2

# ---------------------------------------------------------------- origin
mkdir -p "$work/origin"
RUN_DIR=$work/origin taskset -c "$LOADGEN_CPUS" "$harness/origin/start.sh" >"$raw/origin.log" 2>&1 &
opid=$!; started+=("$opid")
deadline=$(( $(date +%s) + 20 ))
until curl -fsk -m 2 -o /dev/null -H "Host: $ROUTE_HOST" "https://127.0.0.1:$ORIGIN_TLS_PORT/"; do
  [ "$(date +%s)" -lt "$deadline" ] || die "origin did not start: $(cat "$raw/origin.log")"
  sleep 0.2
done

perf_ok=1
perf stat -e context-switches -- true >/dev/null 2>&1 || perf_ok=0
sc_events=""
if [ $perf_ok = 1 ]; then
  for s in accept4 accept epoll_wait epoll_pwait epoll_ctl read readv recvfrom recvmsg write writev \
           sendto sendmsg close shutdown setsockopt getsockopt getsockname getpeername socket connect \
           ioctl fcntl futex sched_yield brk mmap munmap madvise mprotect openat newfstatat statx \
           timerfd_settime eventfd2 splice pipe2 io_uring_enter clock_gettime; do
    [ -d /sys/kernel/tracing/events/syscalls/sys_enter_$s ] && sc_events+=",syscalls:sys_enter_$s"
  done
  perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 && sc_events="raw_syscalls:sys_enter$sc_events" || sc_events=""
fi

# ---------------------------------------------------------------- runs
t0=$(date +%s)
for name in $PROXIES; do
  for mode in $MODES; do
    for step in $STEPS; do
      case $step in
      plain)
        log "$name $mode: plain (segments, perf, strace)"
        start_proxy "$name" plain
        run_ab "$mode" "$WARM" "$raw/$name.$mode.warm.ab.txt"
        ls "/proc/$tpid/task" >"$raw/$name.$mode.threads.txt"
        # idle segment rate on the box (other users' loopback traffic), 2 s
        s0=$(snmp_tcp); sleep 2; s1=$(snmp_tcp)
        printf 'idle_2s_before: %s\nidle_2s_after: %s\n' "$s0" "$s1" >"$raw/$name.$mode.snmp.txt"
        a0=$(origin_accepts)
        if [ $perf_ok = 1 ]; then
          perf stat -x, -o "$raw/$name.$mode.perf.csv" -e "task-clock,context-switches,cpu-migrations${sc_events:+,$sc_events}" \
            -p "$tpid" >/dev/null 2>&1 &
          perfpid=$!; started+=("$perfpid"); sleep 0.5
        fi
        s0=$(snmp_tcp); ts0=$(date +%s.%N)
        run_ab "$mode" "$N_PLAIN" "$raw/$name.$mode.plain.ab.txt"
        s1=$(snmp_tcp); ts1=$(date +%s.%N)
        [ $perf_ok = 1 ] && stop_tracer "$perfpid"
        printf 'run_before: %s\nrun_after: %s\nrun_seconds: %s\nrequests: %s\n' "$s0" "$s1" \
          "$(awk -v a="$ts0" -v b="$ts1" 'BEGIN {printf "%.3f", b - a}')" "$N_PLAIN" >>"$raw/$name.$mode.snmp.txt"
        a1=$(origin_accepts)
        echo "plain $((a1 - a0 - 1))" >"$raw/$name.$mode.upstream-conns.txt"
        # strace: every thread of the proxy (plus any it creates)
        targs=(); for t in /proc/$tpid/task/*; do targs+=(-p "${t##*/}"); done
        strace -c -f -o "$raw/$name.$mode.strace.txt" "${targs[@]}" 2>"$raw/$name.$mode.strace.err" &
        stpid=$!; started+=("$stpid"); sleep 1
        a0=$(origin_accepts)
        run_ab "$mode" "$N_STRACE" "$raw/$name.$mode.strace.ab.txt"
        stop_tracer "$stpid"
        a1=$(origin_accepts)
        echo "strace $((a1 - a0 - 1))" >>"$raw/$name.$mode.upstream-conns.txt"
        echo "$N_STRACE" >"$raw/$name.$mode.strace.n"
        # the syscall sequence of a few requests, one at a time (for reading, not counting)
        targs=(); for t in /proc/$tpid/task/*; do targs+=(-p "${t##*/}"); done
        strace -f -tt -s 64 -o "$raw/$name.$mode.strace-seq.txt" "${targs[@]}" 2>/dev/null &
        stpid=$!; started+=("$stpid"); sleep 1
        CONC=1 run_ab "$mode" 3 "$raw/$name.$mode.seq.ab.txt"
        stop_tracer "$stpid"
        stop_pid "$ppid" 30
        ;;
      callgrind)
        log "$name $mode: callgrind"
        rm -f "$work/cg/"*
        start_proxy "$name" callgrind
        run_ab "$mode" "$WARM" "$raw/$name.$mode.cgwarm.ab.txt"
        a0=$(origin_accepts)
        timeout 60 callgrind_control -i on "$tpid" >/dev/null 2>&1 || die "callgrind_control -i on $tpid"
        run_ab "$mode" "$N_CG" "$raw/$name.$mode.cg.ab.txt"
        timeout 60 callgrind_control -i off "$tpid" >/dev/null 2>&1 || die "callgrind_control -i off $tpid"
        timeout 120 callgrind_control -d "$tpid" >/dev/null 2>&1 || die "callgrind_control -d $tpid"
        a1=$(origin_accepts)
        echo "callgrind $((a1 - a0 - 1))" >>"$raw/$name.$mode.upstream-conns.txt"
        stop_pid "$ppid" 60
        f=$(ls -S "$work/cg/cg.$tpid".* 2>/dev/null | head -1)
        [ -n "$f" ] && [ -s "$f" ] || die "no callgrind dump for $tpid: $(ls "$work/cg")"
        cp "$f" "$raw/$name.$mode.cg"
        echo "$N_CG" >"$raw/$name.$mode.cg.n"
        python3 "$here/cg.py" "$raw/$name.$mode.cg" "$N_CG" --top 30 --json "$raw/$name.$mode.cg.json" \
          >"$raw/$name.$mode.cg.txt"
        callgrind_annotate --inclusive=yes "$raw/$name.$mode.cg" 2>/dev/null | head -80 >"$raw/$name.$mode.cg.annotate-incl.txt" || true
        callgrind_annotate "$raw/$name.$mode.cg" 2>/dev/null | head -80 >"$raw/$name.$mode.cg.annotate-self.txt" || true
        gzip -f "$raw/$name.$mode.cg"
        log "$name $mode: $(head -3 "$raw/$name.$mode.cg.txt" | tail -2 | tr '\n' ' ')"
        ;;
      *) die "unknown step $step" ;;
      esac
    done
  done
done
log "runs took $(( $(date +%s) - t0 )) s"
python3 "$here/report.py" "$OUT" >"$OUT/summary.md"
log "summary: $OUT/summary.md"
cat "$OUT/summary.md"
