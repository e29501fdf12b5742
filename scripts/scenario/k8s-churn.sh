#!/usr/bin/env bash
# Scenario: Kubernetes churn against a real API server (issue 12).
#
#   scripts/scenario/k8s-churn.sh
#   PAIRS=200 DURATION=20 scripts/scenario/k8s-churn.sh      # a quick run
#
# Starts etcd and a real kube-apiserver (scripts/k8s-apiserver-smoke.sh in its serve
# mode; binaries from scripts/k8s-testbin.sh, built on first use, ~10 min), an origin
# (scenario-origin, plain HTTP on 127.0.0.1:0) and the driver (k8s-churn, a
# sluice-testkit bin; its header comment has the details). The driver creates the
# namespace `churn`, the IngressClass `sluice` and PAIRS Ingress + ExternalName Service
# pairs (host app<i>.churn.example; each externalName resolves to 127.0.0.1 through
# the driver's test DNS server). Then sluice starts (kubeconfig source on that
# namespace, the driver's DNS server as its resolver), and once /readyz answers the
# driver waits until every host serves. Traffic then runs: TRAFFIC_CONNS keep-alive
# connections, TRAFFIC_RPS requests a second in all, to random serving hosts; for
# BASELINE seconds alone, then for DURATION seconds with RATE changes a second,
# alternately a new Ingress + Service pair (a new host, polled every 10 ms until it
# answers 200: the event → serving latency, from the Ingress create call returning)
# and a label patch (on a Service, then on an Ingress: no config change).
#
# Printed: event → serving p50/p99/max, changes made, reloads applied / unchanged /
# rejected and Kubernetes translations changed / unchanged over the churn (from
# sluice's metrics), failed requests of all sent, sluice's CPU seconds over the churn
# window (/proc/PID/stat utime + stime; and over the traffic-only baseline), its RSS
# before the churn, peak (sampled every second) and at the end, and its VmHWM.
#
# Goals (exit 1 if one fails): event → serving p99 < GOAL_P99_MS (1000) ms, 0 failed
# requests, every new host served (within PROBE_DEADLINE), every planned change made
# (no API error), sluice alive at the end.
#
# Environment (all optional):
#   PAIRS=1000 DURATION=60 RATE=10 TRAFFIC_CONNS=4 TRAFFIC_RPS=200 BASELINE=10
#   GOAL_P99_MS=1000 PROBE_DEADLINE=30 API_TIMEOUT=900 (the API server's start, a
#   build of its binaries included)
#   DEBOUNCE     sources.kubernetes.debounce (e.g. 50ms); unset = sluice's default
#   KEEP_WORK=1  keep the temp dir (sluice's log, its config, the driver's results)
#   SLUICE_BIN   default target/release/sluice if present, else target/debug/sluice
#                (not built here: `cargo build --release -p sluice`)
#   DRIVER_BIN, ORIGIN_BIN   prebuilt k8s-churn and scenario-origin; otherwise
#                `cargo build -p sluice-testkit` builds both into target/debug
#   K8S_TESTBIN  passed on to scripts/k8s-apiserver-smoke.sh
# Needs: curl, openssl, python3 (missing Debian packages are installed with apt-get;
# that needs root). Everything it starts is stopped on exit (by PID), and its temp
# dir removed (unless KEEP_WORK). A default run takes about 1.5 minutes once the API
# server's binaries are cached.
set -euo pipefail

case "${1:-}" in
"") ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 (settings from the environment; see --help)" >&2
    exit 2
    ;;
esac

PAIRS=${PAIRS:-1000}
DURATION=${DURATION:-60}
RATE=${RATE:-10}
TRAFFIC_CONNS=${TRAFFIC_CONNS:-4}
TRAFFIC_RPS=${TRAFFIC_RPS:-200}
BASELINE=${BASELINE:-10}
GOAL_P99_MS=${GOAL_P99_MS:-1000}
PROBE_DEADLINE=${PROBE_DEADLINE:-30}
API_TIMEOUT=${API_TIMEOUT:-900}
NS=churn

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# shellcheck source=scripts/scenario/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------------------------------
# Prerequisites and binaries
# ---------------------------------------------------------------------------------------
install_missing curl:curl openssl:openssl python3:python3

START=$SECONDS
if [[ -z ${DRIVER_BIN:-} || -z ${ORIGIN_BIN:-} ]]; then
    log "cargo build -p sluice-testkit (k8s-churn, scenario-origin)"
    (cd "$ROOT" && cargo build --quiet -p sluice-testkit --bin k8s-churn --bin scenario-origin)
    echo "   built in $((SECONDS - START))s"
fi
DRIVER_BIN=${DRIVER_BIN:-$ROOT/target/debug/k8s-churn}
ORIGIN_BIN=${ORIGIN_BIN:-$ROOT/target/debug/scenario-origin}
if [[ -z ${SLUICE_BIN:-} ]]; then
    SLUICE_BIN=$ROOT/target/release/sluice
    [[ -x $SLUICE_BIN ]] || SLUICE_BIN=$ROOT/target/debug/sluice
fi
[[ -x $SLUICE_BIN ]] || die "no sluice binary at $SLUICE_BIN (cargo build --release -p sluice)"
[[ -x $DRIVER_BIN ]] || die "no k8s-churn binary at $DRIVER_BIN"
[[ -x $ORIGIN_BIN ]] || die "no scenario-origin binary at $ORIGIN_BIN"
log "sluice: $SLUICE_BIN"

# ---------------------------------------------------------------------------------------
# Bookkeeping: every process started is recorded and stopped on exit; the API server
# script last, by SIGTERM, so its own trap stops kube-apiserver and etcd.
# ---------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/k8s-churn.XXXXXX)
PIDS=()
API_PID=
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $API_PID ]]; then
        kill -TERM "$API_PID" 2>/dev/null || true
        # Its trap gives each of its processes 10 s; bound the wait to 30 s.
        for ((i = 0; i < 300; i++)); do
            kill -0 "$API_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$API_PID" 2>/dev/null || true
        wait "$API_PID" 2>/dev/null || true
    fi
    if ((rc != 0)); then
        for f in apiserver.log sluice.err origin.log; do
            [[ -s $WORK/$f ]] || continue
            echo "---- last lines of $f" >&2
            tail -n 15 "$WORK/$f" >&2
        done
    fi
    if [[ -n ${KEEP_WORK:-} ]]; then
        echo "kept $WORK (logs, config, results)" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# wait_alive DESCRIPTION SECONDS PID COMMAND...: like wait_for, but gives up at once
# when PID has exited.
wait_alive() {
    local what=$1 tries=$(($2 * 10)) pid=$3
    shift 3
    while ! "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || die "$what: the process exited"
        tries=$((tries - 1))
        ((tries > 0)) || die "timed out waiting for $what"
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------------------
# The API server, the origin, the driver
# ---------------------------------------------------------------------------------------
log "kube-apiserver + etcd (scripts/k8s-apiserver-smoke.sh, serve mode)"
t=$SECONDS
SERVE_KUBECONFIG=$WORK/kubeconfig "$ROOT/scripts/k8s-apiserver-smoke.sh" \
    >"$WORK/apiserver.out" 2>"$WORK/apiserver.log" &
API_PID=$!
wait_alive "the API server" "$API_TIMEOUT" "$API_PID" grep -q '^ready ' "$WORK/apiserver.out"
echo "   $(sed -n 's/^ready //p' "$WORK/apiserver.out") ready after $((SECONDS - t))s"

"$ORIGIN_BIN" 127.0.0.1:0 >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
PIDS+=("$ORIGIN_PID")
wait_alive "the origin to listen" 10 "$ORIGIN_PID" grep -q '^listening on' "$WORK/origin.log"
ORIGIN=$(sed -n 's/^listening on \([0-9.:]*\).*/\1/p' "$WORK/origin.log")
log "origin: scenario-origin http://$ORIGIN"

log "driver: namespace $NS, IngressClass sluice, $PAIRS Ingress + ExternalName Service pairs"
"$DRIVER_BIN" --kubeconfig "$WORK/kubeconfig" --origin-port "${ORIGIN##*:}" \
    --dns-file "$WORK/dns" --handoff "$WORK/handoff" --results "$WORK/results" \
    --pairs "$PAIRS" --duration "$DURATION" --rate "$RATE" --namespace "$NS" \
    --traffic-conns "$TRAFFIC_CONNS" --traffic-rps "$TRAFFIC_RPS" --baseline "$BASELINE" \
    --probe-deadline "$PROBE_DEADLINE" --clk-tck "$(getconf CLK_TCK)" &
DRIVER_PID=$!
PIDS+=("$DRIVER_PID")
wait_alive "the driver's pairs" 600 "$DRIVER_PID" test -s "$WORK/dns"
DNS=$(sed -n 's/^dns=//p' "$WORK/dns")

# ---------------------------------------------------------------------------------------
# sluice
# ---------------------------------------------------------------------------------------
PORT=$(free_port)
ADMIN_PORT=$(free_port)
[[ $PORT != "$ADMIN_PORT" ]] || ADMIN_PORT=$(free_port)
cat >"$WORK/sluice.yaml" <<EOF
# Generated by scripts/scenario/k8s-churn.sh
log: {level: info, format: json, access_log: false}
admin: {bind: "127.0.0.1:$ADMIN_PORT"}
resolver: {nameservers: ["$DNS"], timeout: 500ms, attempts: 1}
listeners:
  - {name: egress, bind: "127.0.0.1:$PORT"}
sources: {kubernetes: {kubeconfig: "$WORK/kubeconfig", namespaces: [$NS]${DEBOUNCE:+, debounce: $DEBOUNCE}}}
EOF
log "sluice: kubernetes source on namespace $NS (debounce ${DEBOUNCE:-default}), listener 127.0.0.1:$PORT, admin 127.0.0.1:$ADMIN_PORT"
STARTED_MS=$(now_ms)
"$SLUICE_BIN" run --config "$WORK/sluice.yaml" >"$WORK/sluice.out" 2>"$WORK/sluice.err" &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
wait_alive "sluice /readyz" 120 "$SLUICE_PID" curl -sf --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz"
printf 'pid=%s\nlisten=127.0.0.1:%s\nadmin=127.0.0.1:%s\nstarted_ms=%s\n' \
    "$SLUICE_PID" "$PORT" "$ADMIN_PORT" "$STARTED_MS" >"$WORK/handoff.tmp"
mv "$WORK/handoff.tmp" "$WORK/handoff"

# The driver prints as it goes; its figures come back in $WORK/results.
rc=0
wait "$DRIVER_PID" || rc=$?
((rc == 0)) || die "the driver failed (exit $rc)"
# shellcheck disable=SC1091
source "$WORK/results"

FAILURES=()
fail() { FAILURES+=("$*"); }
kill -0 "$SLUICE_PID" 2>/dev/null || fail "sluice died during the run"
awk -v p="$LAT_P99_MS" -v g="$GOAL_P99_MS" 'BEGIN { exit !(p < g) }' ||
    fail "event → serving p99 ${LAT_P99_MS} ms (goal < $GOAL_P99_MS ms)"
((REQ_FAILED == 0)) || fail "$REQ_FAILED of $REQ_TOTAL requests failed"
((NEVER_SERVED == 0)) || fail "$NEVER_SERVED new hosts never served within ${PROBE_DEADLINE}s"
((API_ERRORS == 0 && CHANGES == CHANGES_PLANNED)) ||
    fail "$CHANGES of $CHANGES_PLANNED changes made ($API_ERRORS API errors)"
EXTRA=$((CHANGES - CREATES))

echo
echo "summary: $PAIRS Ingress + Service pairs, then $RATE changes/s for ${DURATION}s under $TRAFFIC_RPS req/s ($TRAFFIC_CONNS keep-alive connections)"
echo "  sluice $SLUICE_BIN: /readyz ${READY_S}s after start, all $PAIRS hosts serving after ${SYNC_S}s (CPU ${SYNC_CPU_S}s, RSS $SYNC_RSS_KIB KiB)"
echo "  event → serving ($LAT_N new hosts): p50 $LAT_P50_MS ms, p99 $LAT_P99_MS ms, max $LAT_MAX_MS ms; never served $NEVER_SERVED; odd answers before serving $PROBE_ODD"
echo "  changes: $CHANGES ($CREATES new pairs, $EXTRA label patches), slowest API call $API_MAX_MS ms"
echo "  rebuilds: reloads applied $RELOADS_APPLIED, unchanged $RELOADS_UNCHANGED, rejected $RELOADS_REJECTED for $CHANGES changes;" \
    "translations changed $TRANSLATIONS_CHANGED, unchanged $TRANSLATIONS_UNCHANGED"
echo "  requests: $REQ_FAILED failed of $REQ_TOTAL ($REQ_CHURN during the churn); p50 $REQ_P50_MS ms, p99 $REQ_P99_MS ms"
echo "  sluice CPU: ${CPU_S}s over ${WINDOW_S}s (${CPU_PCT}% of a core); traffic alone ${BASE_CPU_PCT}%"
echo "  sluice RSS: $RSS_BEFORE_KIB KiB before the churn, peak $RSS_PEAK_KIB, end $RSS_FINAL_KIB; VmHWM $HWM_KIB KiB"
echo "  total time $((SECONDS - START))s"
if ((${#FAILURES[@]})); then
    printf 'FAIL: %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "PASS"
