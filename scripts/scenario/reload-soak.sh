#!/usr/bin/env bash
# Scenario: 1,000 live reloads under load (issue 8), sluice and then NGINX the same way.
#
#   scripts/scenario/reload-soak.sh                 # sluice, then nginx
#   scripts/scenario/reload-soak.sh --sluice-only
#   scripts/scenario/reload-soak.sh --nginx-only
#
# Both halves run the same shape against the same origin (scenario-origin over TLS,
# 127.0.0.1, port 0): for WARMUP seconds the load runs (sluice: with WARMUP_RELOADS
# reloads of the soak's own mix in it, see below), then RELOADS reloads are paced over
# RELOAD_SECS (at most MAX_SECONDS) while the load keeps running:
#
#   wrk      WRK_CONNS (64) keep-alive clients, GET /
#   ab       AB_CONC (8) clients, a new connection per request (HTTP/1.0, no -k)
#   streams  STREAMS (100) loops, each always holding one slow streaming response open
#            (/drip: STREAM_SECS long, a 1 KiB chunk every 200 ms, Content-Length set);
#            first streams are staggered so they end, and are re-opened, at different
#            times, across many config generations; each one's size is checked; the
#            last ones are shortened to end with the load
#
# The reloads cycle: a shuffled A (same config, reordered), B, A, ...; one time in ten
# an invalid config instead. sluice: the file is replaced by rename and the reload is
# triggered by SIGHUP or admin POST /reload, alternately (a SIGHUP's outcome is awaited on
# sluice_config_reloads_total before the next step). nginx: `nginx -s reload`, except
# for the invalid config: `nginx -s reload` parses the file itself and refuses to signal
# when it is invalid, so that one is a plain SIGHUP to the master, which then rejects it.
#
# sluice checks (exit 1 if one fails): 0 failed requests (wrk non-2xx + socket errors, ab
# failed + non-2xx), 0 truncated streams, reload outcomes exactly as expected (applied /
# unchanged / rejected from sluice_config_reloads_total, simulated here step by step),
# the reloads took <= MAX_SECONDS, RSS growth <= 5% from after warm-up to the end, task
# count flat, upstream connections opened <= the pool size + what config B needs.
# Warm-up: sluice's RSS under this load settles over tens of seconds, and the first
# switches of the traffic to config B's backend add to it, with 10 reloads as with 1,000
# (measured: 18.8 MiB after 5 s, 22.6 after 30 s, 23.6 after 100 s of load with 10
# reloads, 23.8-24.0 with 1,000; with no load, 2,000 reloads level off at +1.2 MiB). So
# sluice's warm-up is WARMUP (60) s of load with WARMUP_RELOADS (60) reloads of
# the soak's own mix: the baseline is taken once both configs' pools are open and every
# reload path has run; growth after it is growth with the reloads.
# Task count: sluice_runtime_tasks (tokio's live task count, sampled by sluice every
# second), after warm-up against the end. Every client connection is a task, and ab's
# connections come and go, so "flat" allows AB_CONC + 16; its peak during the soak
# (read every 50 reloads) and its value once the load has stopped are printed too.
# Extra evidence: the thread count 11 s after the last reload, with the load stopped,
# must not exceed the one before the load (tokio's blocking pool, which reads and
# compiles each config, keeps an idle thread 10 s, so right after a reload there are
# more), and the open file descriptors (/proc/PID/fd) after warm-up against the end
# (they move with the ab connections in flight: allows AB_CONC + 16 and 5%).
# nginx: the same load and reloads; prints failed requests, truncated streams, worker
# processes alive at the end (the master's children: 1 when nothing piles up) and RSS
# growth summed over master and workers. These are recorded, not checked (except that
# the run happened): they are the comparison.
#
# Environment (all optional):
#   RELOADS=1000 RELOAD_SECS=100 MAX_SECONDS=120 WARMUP=60 WARMUP_RELOADS=60
#   WRK_CONNS=64 AB_CONC=8 STREAMS=100 STREAM_SECS=20
#   SLUICE_BIN, ORIGIN_BIN   prebuilt binaries; otherwise `cargo build --release` builds
#                            target/release/sluice and target/release/scenario-origin
#   BENCH_DIR=$ROOT/../shared/bench   the bench harness with the nginx peer config
# Needs: curl, openssl, python3, wrk, ab, nginx (missing Debian packages are installed
# with apt-get; that needs root). Everything it starts is stopped on exit (by PID), and
# its temp dir removed.
set -euo pipefail

RUN_SLUICE=1
RUN_NGINX=1
case "${1:-}" in
"") ;;
--sluice-only) RUN_NGINX=0 ;;
--nginx-only) RUN_SLUICE=0 ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [--sluice-only | --nginx-only]" >&2
    exit 2
    ;;
esac

RELOADS=${RELOADS:-1000}
RELOAD_SECS=${RELOAD_SECS:-100}
MAX_SECONDS=${MAX_SECONDS:-120}
WARMUP=${WARMUP:-60}
WARMUP_RELOADS=${WARMUP_RELOADS:-60}
WRK_CONNS=${WRK_CONNS:-64}
AB_CONC=${AB_CONC:-8}
STREAMS=${STREAMS:-100}
STREAM_SECS=${STREAM_SECS:-20}
STREAM_EVERY_MS=200
STREAM_CHUNK=1024
STREAM_CHUNKS=$((STREAM_SECS * 1000 / STREAM_EVERY_MS))
# The load lasts the warm-up, the reloads, and a little slack for a late reload loop.
LOAD_SECS=$((WARMUP + RELOAD_SECS + 3))
HOST=api.example.test

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}

# shellcheck source=scripts/scenario/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------
install_missing curl:curl openssl:openssl wrk:wrk ab:apache2-utils
((!RUN_NGINX)) || install_missing nginx:nginx
command -v python3 >/dev/null || die "needs python3 (free ports, the bench's render.py)"
if ((RUN_NGINX)); then
    [[ -x $BENCH_DIR/peers/nginx/start.sh ]] || die "no nginx peer at $BENCH_DIR/peers/nginx (set BENCH_DIR)"
fi

START=$SECONDS
if { ((RUN_SLUICE)) && [[ -z ${SLUICE_BIN:-} ]]; } || [[ -z ${ORIGIN_BIN:-} ]]; then
    # Two invocations, as in port-exhaustion.sh: one would unify the two packages'
    # dependency features and build a sluice different from `cargo build -p sluice`'s.
    log "cargo build --release (sluice, scenario-origin)"
    (cd "$ROOT" && cargo build --release --quiet -p sluice --bin sluice &&
        cargo build --release --quiet -p sluice-testkit --bin scenario-origin)
    echo "   built in $((SECONDS - START))s"
fi
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
ORIGIN_BIN=${ORIGIN_BIN:-$ROOT/target/release/scenario-origin}
((RUN_SLUICE == 0)) || [[ -x $SLUICE_BIN ]] || die "no sluice binary at $SLUICE_BIN"
[[ -x $ORIGIN_BIN ]] || die "no scenario-origin binary at $ORIGIN_BIN"

# ---------------------------------------------------------------------------------------
# Bookkeeping: every process started is recorded and stopped on exit.
# ---------------------------------------------------------------------------------------
scenario_work reload-soak

# Process figures from /proc (wait_for, free_port, rss_kib, children_of and tree_rss
# come from lib.sh).
threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
fds_of() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
pct_growth() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a > 0 ? (b - a) * 100 / a : 0) }'; }

# ---------------------------------------------------------------------------------------
# Certificates and the origin (shared by both halves).
# ---------------------------------------------------------------------------------------
test_certs reload-soak "DNS:$HOST,IP:127.0.0.1"

"$ORIGIN_BIN" 127.0.0.1:0 --tls "$WORK/origin.pem" "$WORK/origin.key" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_for "the origin to listen" 10 grep -q '^listening on' "$WORK/origin.log"
ORIGIN=$(sed -n 's/^listening on \([0-9.:]*\).*/\1/p' "$WORK/origin.log")
ORIGIN_PORT=${ORIGIN##*:}
log "origin: scenario-origin https://$ORIGIN"

# ---------------------------------------------------------------------------------------
# The load, against http://127.0.0.1:$1 with Host: $HOST. Results in $WORK/$2.*.
# ---------------------------------------------------------------------------------------
# stream_loop PORT FILE FIRST_CHUNKS END: slow streams one after another until END
# (epoch seconds), one line per stream in FILE: "curl_exit http_code bytes expected".
# A stream that would outlast END is shortened to end with it (so no stream is still
# running long after the rest of the load).
stream_loop() {
    local port=$1 out=$2 chunks=$3 end=$4 result rc left
    while :; do
        left=$(((end - $(date +%s)) * 1000 / STREAM_EVERY_MS))
        ((left > 0)) || break
        ((chunks <= left)) || chunks=$left
        rc=0
        result=$(curl -sS -o /dev/null --max-time $((STREAM_SECS * 3)) -H "Host: $HOST" \
            -w '%{http_code} %{size_download}' \
            "http://127.0.0.1:$port/drip/$chunks?size=$STREAM_CHUNK&every=$STREAM_EVERY_MS" 2>/dev/null) || rc=$?
        echo "$rc $result $((chunks * STREAM_CHUNK))" >>"$out"
        chunks=$STREAM_CHUNKS
    done
}

LOAD_PIDS=()
start_load() {
    local port=$1 tag=$2 end i
    end=$(($(date +%s) + LOAD_SECS))
    LOAD_PIDS=()
    for ((i = 0; i < STREAMS; i++)); do
        # Staggered first streams: they end at different times, so at every moment
        # streams of many config generations are open.
        stream_loop "$port" "$WORK/$tag.streams" $((STREAM_CHUNKS * (i + 1) / STREAMS)) "$end" &
        LOAD_PIDS+=($!)
    done
    wrk -t1 -c"$WRK_CONNS" -d"${LOAD_SECS}s" -H "Host: $HOST" "http://127.0.0.1:$port/" \
        >"$WORK/$tag.wrk" 2>&1 &
    LOAD_PIDS+=($!)
    ab -r -q -c "$AB_CONC" -t "$LOAD_SECS" -n 100000000 -H "Host: $HOST" "http://127.0.0.1:$port/" \
        >"$WORK/$tag.ab" 2>&1 &
    LOAD_PIDS+=($!)
    PIDS+=("${LOAD_PIDS[@]}")
}

# wait_load TAG: waits for wrk, ab and the stream loops (bounded by their own timeouts),
# then sets LOAD_* from their outputs.
wait_load() {
    local tag=$1 pid
    for pid in "${LOAD_PIDS[@]}"; do
        # (bash may have forgotten the status of a long-gone child: "not a child")
        wait "$pid" 2>/dev/null || true
    done
    local wrk=$WORK/$tag.wrk ab=$WORK/$tag.ab
    WRK_REQS=$(awk '/requests in/ { print $1 }' "$wrk")
    WRK_NON2XX=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$wrk")
    WRK_SOCKERR=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$wrk" |
        awk '{ print $1 + $2 + $3 + $4 }')
    AB_REQS=$(awk -F': *' '/^Complete requests/ { print $2 }' "$ab")
    AB_FAILED=$(awk -F': *' '/^Failed requests/ { print $2 }' "$ab")
    AB_NON2XX=$(awk -F': *' '/^Non-2xx responses/ { print $2 }' "$ab")
    [[ -n $WRK_REQS ]] || { echo "   wrk output:"; sed 's/^/     /' "$wrk"; WRK_REQS=0; }
    [[ -n $AB_REQS ]] || { echo "   ab output:"; tail -5 "$ab" | sed 's/^/     /'; AB_REQS=0; }
    WRK_NON2XX=${WRK_NON2XX:-0}
    WRK_SOCKERR=${WRK_SOCKERR:-0}
    AB_FAILED=${AB_FAILED:-0}
    AB_NON2XX=${AB_NON2XX:-0}
    FAILED=$((WRK_NON2XX + WRK_SOCKERR + AB_FAILED + AB_NON2XX))
    STREAMS_DONE=$(wc -l <"$WORK/$tag.streams")
    # A stream is whole if curl succeeded with a 200 and exactly the announced bytes.
    TRUNCATED=$(awk '!($1 == 0 && $2 == 200 && $3 == $4)' "$WORK/$tag.streams" | wc -l)
    echo "   wrk: $WRK_REQS requests, non-2xx $WRK_NON2XX, socket errors $WRK_SOCKERR" \
        "($(grep -o 'Socket errors.*' "$wrk" || echo none))"
    echo "   ab: $AB_REQS requests, failed $AB_FAILED, non-2xx $AB_NON2XX"
    echo "   streams: $STREAMS_DONE completed, $TRUNCATED truncated or failed"
    if ((TRUNCATED > 0)); then
        echo "   first bad streams (curl_exit code bytes expected):"
        awk '!($1 == 0 && $2 == 200 && $3 == $4)' "$WORK/$tag.streams" | head -3 | sed 's/^/     /'
    fi
}

# Time in microseconds, and sleeping without forking (the reload loop must keep up
# with ~10 reloads a second on a busy machine): `read -t` on a pipe nothing writes to.
now_us() { echo $((${EPOCHREALTIME/./})); }
exec {NEVER}<> <(:)
sleep_us() { read -r -t "$(printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)))" -u "$NEVER" || true; }
# pace I T0_US SECS COUNT: sleeps until step I's slot (COUNT steps spread evenly over SECS).
pace() {
    local due=$(($2 + $1 * $3 * 1000000 / $4)) t
    t=$(now_us)
    ((due <= t)) || sleep_us $((due - t))
}
# secs_since T0_US: elapsed seconds, one decimal.
secs_since() { local d=$(($(now_us) - $1)); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }

# The step kinds, the same for both halves: every tenth is invalid; the others cycle a
# shuffled A, B, A. Sets KIND (no subshell: see pace).
step_kind() {
    local i=$1 kinds=(shuffled B A)
    if ((i % 10 == 9)); then
        KIND=invalid
    else
        KIND=${kinds[$(((i - i / 10) % 3))]}
    fi
}

# reload_step I: one sluice reload of kind step_kind(I), by POST /reload (even I) or
# SIGHUP (odd I), counted into the caller's exp_applied / exp_unchanged / exp_rejected,
# current and trigger_errors (bash's dynamic scope: they are run_sluice's locals).
reload_step() {
    local i=$1 kind before code
    step_kind "$i"
    kind=$KIND
    cp "$dir/$kind.yaml" "$dir/next.yaml"
    mv "$dir/next.yaml" "$dir/sluice.yaml"
    if [[ $kind == invalid ]]; then
        exp_rejected=$((exp_rejected + 1))
    elif [[ $kind == B && $current != B ]] || [[ $kind != B && $current == B ]]; then
        exp_applied=$((exp_applied + 1))
    else
        exp_unchanged=$((exp_unchanged + 1)) # A after A, shuffled A after A
    fi
    [[ $kind == invalid ]] || { [[ $kind == B ]] && current=B || current=A; }
    if ((i % 2 == 0)); then
        code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
            --unix-socket "$admin" http://sluice/reload || echo 000)
        if [[ $kind == invalid && $code != 400 ]] || [[ $kind != invalid && $code != 200 ]]; then
            trigger_errors=$((trigger_errors + 1))
            ((trigger_errors > 3)) || echo "   reload $i ($kind) by POST /reload answered $code"
        fi
    else
        before=$(reloads_total)
        kill -HUP "$pid"
        hup_done() { (($(reloads_total) > before)); }
        if ! (wait_for "the SIGHUP reload" 5 hup_done); then
            trigger_errors=$((trigger_errors + 1))
            ((trigger_errors > 3)) || echo "   reload $i ($kind) by SIGHUP: no outcome within 5s"
        fi
    fi
}

FAILURES=()
fail() { FAILURES+=("$*"); }

# =======================================================================================
# sluice
# =======================================================================================
run_sluice() {
    log "sluice: $RELOADS reloads over ${RELOAD_SECS}s under load (wrk -c$WRK_CONNS, ab -c$AB_CONC, $STREAMS streams of ${STREAM_SECS}s)"
    local port admin dir=$WORK/sluice
    mkdir -p "$dir"
    port=$(free_port)
    admin=$dir/admin.sock
    # Pool size: every connection the backends may hold at once (maxconn_per_server, one
    # server each), none retired during the run. `api` and `alt` serve wrk and ab
    # (queueing beyond their slots), `stream` the slow streams. Config B routes the
    # host to `alt` and changes `alt` (timeouts.response, retries) without changing its
    # pool key, so B needs no connection beyond the pool size: B_EXTRA=0.
    local api_pool=16 stream_pool=$STREAMS
    POOL_SIZE=$((api_pool + api_pool + stream_pool))
    B_EXTRA=0
    local pool="    pool: {max_idle_per_server: $STREAMS, idle_timeout: 3600s, max_requests_per_connection: 0, max_lifetime: 0s}"
    local tls="    tls: {ca_file: \"$WORK/ca.pem\", sni: $HOST}"
    # config_text VARIANT: A, B, or invalid; the routes and backends come out in a
    # fixed order; `shuffled` is derived from A below.
    config_text() {
        local v=$1 target=api alt_timeout=30s alt_retries=2 r
        [[ $v == B ]] && target=alt alt_timeout=20s alt_retries=1
        cat <<EOF
# Generated by scripts/scenario/reload-soak.sh ($v)
log: {level: info, format: json, access_log: false}
admin: {bind: "unix:$admin"}
listeners:
  - {name: egress, bind: "127.0.0.1:$port"}
routes:
EOF
        echo "  - {host: \"$HOST\", backend: $target}"
        echo "  - {host: \"$HOST\", path_prefix: /drip/, backend: stream}"
        for r in $(seq 1 20); do
            echo "  - {host: \"r$r.example.test\", backend: $([[ $((r % 2)) == 0 ]] && echo api || echo alt)}"
        done
        [[ $v == invalid ]] && echo "  - {host: \"bad.example.test\", backend: missing}"
        cat <<EOF
backends:
  - name: api
    servers: ["127.0.0.1:$ORIGIN_PORT"]
$tls
    limits: {maxconn_per_server: $api_pool}
$pool
  - name: alt
    servers: ["127.0.0.1:$ORIGIN_PORT"]
$tls
    limits: {maxconn_per_server: $api_pool}
$pool
    timeouts: {response: $alt_timeout}
    retries: {attempts: $alt_retries}
  - name: stream
    servers: ["127.0.0.1:$ORIGIN_PORT"]
$tls
    limits: {maxconn_per_server: $stream_pool}
$pool
EOF
    }
    config_text A >"$dir/A.yaml"
    config_text B >"$dir/B.yaml"
    config_text invalid >"$dir/invalid.yaml"
    # The shuffled A: the same header, routes and backends in a random order, and the
    # keys of each route map reversed.
    {
        sed -n '1,/^routes:/p' "$dir/A.yaml"
        sed -n '/^routes:/,/^backends:/p' "$dir/A.yaml" | grep '^  - ' | shuf |
            sed -E 's/\{host: ("[^"]*"), (path_prefix: [^,]*, )?backend: ([a-z]*)\}/{backend: \3, \2host: \1}/'
        echo "backends:"
        awk '/^backends:/ { on = 1; next } on && /^  - / { n++ } on { b[n] = b[n] $0 "\n" }
             END { for (i = n; i >= 1; i--) printf "%s", b[i] }' "$dir/A.yaml"
    } >"$dir/shuffled.yaml"
    for v in A B shuffled; do
        "$SLUICE_BIN" check --config "$dir/$v.yaml" >/dev/null || die "sluice check rejects config $v"
    done
    if "$SLUICE_BIN" check --config "$dir/invalid.yaml" >/dev/null 2>&1; then
        die "sluice check accepts the invalid config"
    fi
    if "$SLUICE_BIN" check --help 2>/dev/null | grep -q -- --diff; then
        "$SLUICE_BIN" check --config "$dir/shuffled.yaml" --diff "$dir/A.yaml" | sed 's/^/   check --diff shuffled A: /'
        "$SLUICE_BIN" check --config "$dir/B.yaml" --diff "$dir/A.yaml" | sed 's/^/   check --diff B: /'
    fi

    cp "$dir/A.yaml" "$dir/sluice.yaml"
    "$SLUICE_BIN" run --config "$dir/sluice.yaml" >"$dir/out.log" 2>"$dir/err.log" &
    local pid=$!
    PIDS+=("$pid")
    sluice_ready() {
        kill -0 "$pid" || return 0
        curl -sf --max-time 1 --unix-socket "$admin" http://sluice/readyz
    }
    wait_for "sluice /readyz" 20 sluice_ready
    kill -0 "$pid" 2>/dev/null || die "sluice exited at start: $(tail -5 "$dir/err.log")"
    metrics() { curl -sS --max-time 5 --unix-socket "$admin" http://sluice/metrics; }
    # metric NAME: the sum of a metric's samples (all label sets).
    metric() {
        metrics | awk -v m="$1" 'index($1, m "{") == 1 || $1 == m { s += $NF } END { printf "%d\n", s }'
    }
    reloads_total() { metric sluice_config_reloads_total; }
    # tasks: sluice_runtime_tasks (sluice refreshes it every second).
    tasks() { metric sluice_runtime_tasks; }
    metrics | grep -q '^sluice_runtime_tasks ' || die "sluice exports no sluice_runtime_tasks gauge"
    curl -sf -H "Host: $HOST" "http://127.0.0.1:$port/" >/dev/null || die "no 200 through sluice"

    local thr_start
    thr_start=$(threads_of "$pid")
    start_load "$port" sluice
    # The warm-up is a duration of load, not a synchronisation. sluice's memory under
    # this load takes tens of seconds to settle, and the first reloads add to it (alt's
    # pool for config B, its connections' buffers, and the blocking-pool threads that
    # read and compile configs: each one that first allocates gets an allocator arena
    # of its own). So the warm-up runs WARMUP_RELOADS steps of the soak's own mix
    # (shuffled A, B, A, invalid; POST /reload and SIGHUP) spread over WARMUP seconds:
    # the baseline is taken when every pool of both configs is open and every reload
    # path has run, and what grows after it grows with the reloads. (With only B/A
    # switches in the warm-up, measured on 2026-12-01 with jemalloc: +6.5% in the first
    # 100 soak reloads, then flat to the end.)
    local exp_applied=0 exp_unchanged=0 exp_rejected=0 trigger_errors=0 current=A
    local t0 i
    t0=$(now_us)
    for ((i = 0; i < WARMUP_RELOADS; i++)); do
        pace "$i" "$t0" "$WARMUP" "$WARMUP_RELOADS"
        reload_step "$i"
    done
    pace "$WARMUP_RELOADS" "$t0" "$WARMUP" "$WARMUP_RELOADS"
    local rss0 thr0 fd0 opened0 tasks0
    rss0=$(rss_kib "$pid") thr0=$(threads_of "$pid") fd0=$(fds_of "$pid")
    opened0=$(metric sluice_upstream_connections_opened_total) tasks0=$(tasks)
    echo "   after warm-up (${WARMUP}s of load, $WARMUP_RELOADS reloads of the same mix): rss ${rss0} KiB, tasks $tasks0," \
        "threads $thr0 ($thr_start before the load), fds $fd0, upstream opened $opened0"

    local tasks_peak=$tasks0 tk trajectory=""
    t0=$(now_us)
    for ((i = 0; i < RELOADS; i++)); do
        pace "$i" "$t0" "$RELOAD_SECS" "$RELOADS"
        reload_step "$i"
        if ((i % 50 == 49)); then
            tk=$(tasks)
            ((tk <= tasks_peak)) || tasks_peak=$tk
            ((i % 100 != 99)) || trajectory+=" $(rss_kib "$pid")/$tk"
        fi
    done
    local took
    took=$(secs_since "$t0")
    local rss1 thr1 fd1 opened1 tasks1 t_end
    t_end=$(now_us)
    rss1=$(rss_kib "$pid") thr1=$(threads_of "$pid") fd1=$(fds_of "$pid")
    opened1=$(metric sluice_upstream_connections_opened_total) tasks1=$(tasks)
    ((tasks1 <= tasks_peak)) || tasks_peak=$tasks1
    local m applied unchanged rejected generation
    m=$(metrics)
    applied=$(awk '$1 == "sluice_config_reloads_total{result=\"applied\"}" { print $2 }' <<<"$m")
    unchanged=$(awk '$1 == "sluice_config_reloads_total{result=\"unchanged\"}" { print $2 }' <<<"$m")
    rejected=$(awk '$1 == "sluice_config_reloads_total{result=\"rejected\"}" { print $2 }' <<<"$m")
    generation=$(awk '$1 == "sluice_config_generation" { print $2 }' <<<"$m")
    echo "   $RELOADS reloads in ${took}s: applied ${applied:-?} unchanged ${unchanged:-?} rejected ${rejected:-?}" \
        "(expected $exp_applied / $exp_unchanged / $exp_rejected), generation ${generation:-?}, trigger errors $trigger_errors"
    echo "   every 100 reloads, rss KiB/tasks:$trajectory"
    echo "   at the end: rss ${rss1} KiB ($(pct_growth "$rss0" "$rss1")%), tasks $tasks1 (peak seen $tasks_peak), threads $thr1, fds $fd1," \
        "upstream opened $opened1 (during the soak: $((opened1 - opened0)); bound: pool $POOL_SIZE + B $B_EXTRA)"
    wait_load sluice
    kill -0 "$pid" 2>/dev/null || fail "sluice: died during the soak"
    # Once the load has stopped, the client connections' tasks are gone; what is left is
    # sluice's own (listeners, admin, pools' connections, background loops).
    # Threads: the reloads read and compile on tokio's blocking pool, whose threads
    # stay 10 s after their last job, so right after the last reload there are a few
    # more; a leaked thread would still be there 11 s later.
    local tasks2=0 thr2=0 rss2=0 idle_us
    if kill -0 "$pid" 2>/dev/null; then
        idle_us=$((11000000 - ($(now_us) - t_end)))
        ((idle_us < 2000000)) && idle_us=2000000 # and the task gauge's next samples
        sleep_us "$idle_us"
        tasks2=$(tasks) thr2=$(threads_of "$pid") rss2=$(rss_kib "$pid")
    fi
    echo "   after the load stopped ($(secs_since "$t_end")s after the last reload): tasks $tasks2, threads $thr2, fds $(fds_of "$pid"), rss $rss2 KiB"

    S_FAILED=$FAILED S_TRUNC=$TRUNCATED S_RSS="$rss0 -> $rss1 KiB ($(pct_growth "$rss0" "$rss1")%)"
    S_TASKS="tasks $tasks0 -> $tasks1 (peak $tasks_peak; $tasks2 once the load stopped), threads $thr0 -> $thr1 ($thr_start before the load, $thr2 once idle), fds $fd0 -> $fd1"
    S_OPENED="$opened1 in all, $((opened1 - opened0)) during the soak" S_TOOK=$took
    ((FAILED == 0)) || fail "sluice: $FAILED failed requests"
    ((TRUNCATED == 0)) || fail "sluice: $TRUNCATED truncated streams"
    ((STREAMS_DONE >= STREAMS)) || fail "sluice: only $STREAMS_DONE streams completed"
    ((trigger_errors == 0)) || fail "sluice: $trigger_errors reloads did not answer as expected"
    [[ ${applied:-x} == "$exp_applied" && ${unchanged:-x} == "$exp_unchanged" && ${rejected:-x} == "$exp_rejected" ]] ||
        fail "sluice: reload outcomes ${applied:-?}/${unchanged:-?}/${rejected:-?}, expected $exp_applied/$exp_unchanged/$exp_rejected"
    awk -v t="$took" -v m="$MAX_SECONDS" 'BEGIN { exit !(t <= m) }' || fail "sluice: reloads took ${took}s (> ${MAX_SECONDS}s)"
    ((rss1 * 100 <= rss0 * 105)) || fail "sluice: RSS grew $(pct_growth "$rss0" "$rss1")% (> 5%)"
    ((tasks1 <= tasks0 + AB_CONC + 16)) || fail "sluice: runtime tasks $tasks0 -> $tasks1 (> +$AB_CONC + 16)"
    ((thr2 <= thr_start)) || fail "sluice: threads $thr_start before the load, $thr2 11s after the last reload"
    ((fd1 <= fd0 + AB_CONC + 16 + fd0 / 20)) || fail "sluice: open fds $fd0 -> $fd1"
    ((opened1 <= POOL_SIZE + B_EXTRA)) || fail "sluice: $opened1 upstream connections opened (> $POOL_SIZE + $B_EXTRA)"
    stop_pid "$pid"
}

# Stops one process of ours (by PID) and waits for it.
stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# =======================================================================================
# NGINX, with the bench's nginx peer config
# =======================================================================================
run_nginx() {
    log "nginx: $RELOADS reloads over ${RELOAD_SECS}s under the same load (bench peer config: $BENCH_DIR/peers/nginx)"
    local port run=$WORK/nginx
    mkdir -p "$run"
    port=$(free_port)
    # The peer's start.sh renders its template into RUN_DIR and execs the nginx master
    # in the foreground, so $! is the master.
    RUN_DIR=$run PB_ROOT=$BENCH_DIR LISTEN_ADDR=127.0.0.1 LISTEN_PORT=$port ROUTE_HOST=$HOST \
        ORIGIN_ADDR=127.0.0.1 ORIGIN_TLS_PORT=$ORIGIN_PORT UPSTREAM_SNI=$HOST CA_FILE=$WORK/ca.pem \
        WORKERS=1 "$BENCH_DIR/peers/nginx/start.sh" >"$run/start.log" 2>&1 &
    local master=$!
    PIDS+=("$master")
    nginx_up() { curl -sf --max-time 1 -H "Host: $HOST" "http://127.0.0.1:$port/" >/dev/null; }
    wait_for "nginx to serve" 20 nginx_up
    local conf=$run/nginx.conf
    cp "$conf" "$run/A.conf"
    # B: another setting; the shuffled A: two directives swapped; invalid: an unknown
    # directive.
    sed 's/^  keepalive_timeout 300s;/  keepalive_timeout 299s;/' "$run/A.conf" >"$run/B.conf"
    awk '/^  access_log off;/ { held = $0; next } { print } held && /^  server_tokens off;/ { print held; held = "" }' \
        "$run/A.conf" >"$run/shuffled.conf"
    sed 's/^  server_tokens off;/  server_tokens off;\n  no_such_directive on;/' "$run/A.conf" >"$run/invalid.conf"
    for v in A B shuffled; do
        nginx -q -t -p "$run" -e "$run/error.log" -c "$run/$v.conf" 2>/dev/null || die "nginx -t rejects config $v"
    done
    if nginx -q -t -p "$run" -e "$run/error.log" -c "$run/invalid.conf" 2>/dev/null; then
        die "nginx accepts the invalid config"
    fi

    start_load "$port" nginx
    sleep "$WARMUP"
    local rss0 workers0
    rss0=$(tree_rss "$master") workers0=$(children_of "$master" | wc -l)
    echo "   after warm-up: rss ${rss0} KiB (master + workers), $workers0 workers"

    local t0 i kind reload_errors=0 peak_workers=$workers0 w
    t0=$(now_us)
    for ((i = 0; i < RELOADS; i++)); do
        pace "$i" "$t0" "$RELOAD_SECS" "$RELOADS"
        step_kind "$i"
        kind=$KIND
        cp "$run/$kind.conf" "$run/next.conf"
        mv "$run/next.conf" "$conf"
        if [[ $kind == invalid ]]; then
            kill -HUP "$master" # `nginx -s reload` would refuse to send it (see the top)
        elif ! nginx -q -p "$run" -e "$run/error.log" -c "$conf" -s reload 2>>"$run/reload.err"; then
            reload_errors=$((reload_errors + 1))
        fi
        if ((i % 50 == 49)); then
            w=$(children_of "$master" | wc -l)
            ((w <= peak_workers)) || peak_workers=$w
        fi
    done
    local took rss1 workers1
    took=$(secs_since "$t0")
    rss1=$(tree_rss "$master") workers1=$(children_of "$master" | wc -l)
    ((workers1 <= peak_workers)) || peak_workers=$workers1
    echo "   $RELOADS reloads in ${took}s ($reload_errors \`nginx -s reload\` failures)"
    echo "   at the end: rss ${rss1} KiB ($(pct_growth "$rss0" "$rss1")%), $workers1 worker processes alive (peak seen $peak_workers)"
    wait_load nginx
    local workers_after
    workers_after=$(children_of "$master" | wc -l)
    echo "   after the load stopped: $workers_after worker processes"
    N_FAILED=$FAILED N_TRUNC=$TRUNCATED N_WORKERS="$workers1 (peak $peak_workers; $workers_after once the load stopped)"
    N_RSS="$rss0 -> $rss1 KiB ($(pct_growth "$rss0" "$rss1")%)" N_TOOK=$took
    kill -0 "$master" 2>/dev/null || fail "nginx: the master died during the soak"
    awk -v t="$took" -v m="$MAX_SECONDS" 'BEGIN { exit !(t <= m) }' ||
        fail "nginx: the reloads took ${took}s (> ${MAX_SECONDS}s): the figures are not from under load"
    ((WRK_REQS > 0 && AB_REQS > 0)) || fail "nginx: the load did not run"
    stop_pid "$master"
}

((RUN_SLUICE == 0)) || run_sluice
((RUN_NGINX == 0)) || run_nginx

echo
echo "summary: $RELOADS reloads (1 in 10 invalid) over ${RELOAD_SECS}s; wrk -c$WRK_CONNS keep-alive, ab -c$AB_CONC close, $STREAMS streams open"
if ((RUN_SLUICE)); then
    printf '  %-7s reloads %ss, failed requests %s, truncated streams %s, RSS %s, %s, upstream opened %s (bound %s)\n' \
        sluice "$S_TOOK" "$S_FAILED" "$S_TRUNC" "$S_RSS" "$S_TASKS" "$S_OPENED" "$((POOL_SIZE + B_EXTRA))"
fi
if ((RUN_NGINX)); then
    printf '  %-7s reloads %ss, failed requests %s, truncated streams %s, RSS %s (sum over master + workers), workers alive at the end %s\n' \
        nginx "$N_TOOK" "$N_FAILED" "$N_TRUNC" "$N_RSS" "$N_WORKERS"
fi
if ((${#FAILURES[@]})); then
    printf 'FAIL: %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "PASS"
