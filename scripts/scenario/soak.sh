#!/usr/bin/env bash
# Scenario: the soak (issue 14). At least REQUESTS (1,000,000) requests through sluice
# in a mix, with a reload every RELOAD_EVERY seconds, then checks that open file
# descriptors, RSS and tokio tasks are back at their baseline.
#
#   scripts/scenario/soak.sh
#   DURATION=120 REQUESTS=2000000 scripts/scenario/soak.sh
#
# The mix, all at once for DURATION (60) s, after a WARMUP (10) s round of the same:
#   wrk     32 keep-alive clients → backend h1 (HTTPS/1.1 upstream, pooled)
#   wrk     16 keep-alive clients → backend h2 (HTTP/2 upstream, multiplexed)
#   ab      4 clients, a new connection per request → h1
#   streams 4 loops of streaming responses (/drip: 10 chunks, 50 ms apart)
#   faults  requests to a backend where nothing listens (502 connect_refused: wrk,
#           3 connections pacing themselves 10 ms apart, about one request in a
#           hundred), and 2 loops of clients that leave mid-response (curl
#           --max-time 0.2 on a 2 s stream)
#   reloads config A and B (they differ in a pool setting) swapped by rename + SIGHUP
#
# Baseline and end are read with no load, once every client connection has closed:
# /proc/PID/fd, VmRSS, and sluice_runtime_tasks (tokio's live tasks). The check: fds
# and tasks at most baseline + 8, RSS at most baseline + 10%; 0 failed requests on
# the h1, h2, close and stream loads; every fault answered with its cause; every
# reload applied; the total at least REQUESTS. Figures go to stdout (bench/RESULTS.md
# keeps a run). Needs: curl, openssl, wrk, ab (installed with apt-get if missing).
# Everything it starts is stopped on exit, and its temp dir removed.
set -euo pipefail

DURATION=${DURATION:-60}
WARMUP=${WARMUP:-10}
REQUESTS=${REQUESTS:-1000000}
RELOAD_EVERY=${RELOAD_EVERY:-3}
HOST=api.example.test

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=scripts/scenario/lib.sh
source "$HERE/lib.sh"
install_missing curl:curl openssl:openssl wrk:wrk ab:apache2-utils

if [[ -z ${SLUICE_BIN:-} || -z ${ORIGIN_BIN:-} ]]; then
    log "cargo build --release (sluice, scenario-origin)"
    (cd "$ROOT" && cargo build --release --quiet -p sluice --bin sluice &&
        cargo build --release --quiet -p sluice-testkit --bin scenario-origin)
fi
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
ORIGIN_BIN=${ORIGIN_BIN:-$ROOT/target/release/scenario-origin}

scenario_work soak

test_certs soak "DNS:$HOST"

start_origin() { # NAME ARGS...
    local name=$1
    shift
    "$ORIGIN_BIN" 127.0.0.1:0 --tls "$WORK/origin.pem" "$WORK/origin.key" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    wait_for "origin $name" 10 grep -q '^listening on' "$WORK/$name.log"
    sed -n 's/^listening on \([0-9.:]*\).*/\1/p' "$WORK/$name.log"
}
H1=$(start_origin h1)
H2=$(start_origin h2 --h2)
DEAD=127.0.0.1:$(free_port)
PORT=$(free_port)
ADMIN=$(free_port)

config() { # IDLE
    cat <<EOF
runtime: {workers: 2}
log: {level: warn, access_log: false, format: json}
admin: {bind: "127.0.0.1:$ADMIN"}
listeners: [{name: egress, bind: "127.0.0.1:$PORT"}]
routes:
  - {host: h1.test, backend: h1}
  - {host: h2.test, backend: h2}
  - {host: fault.test, backend: dead}
backends:
  - name: h1
    servers: ["$H1"]
    tls: {sni: $HOST, ca_file: "$WORK/ca.pem"}
    pool: {max_idle_per_server: $1}
  - name: h2
    servers: ["$H2"]
    protocol: http2
    tls: {sni: $HOST, ca_file: "$WORK/ca.pem"}
  - name: dead
    servers: ["$DEAD"]
    retries: {attempts: 0}
EOF
}
config 64 >"$WORK/a.yaml"
config 48 >"$WORK/b.yaml"
cp "$WORK/a.yaml" "$WORK/sluice.yaml"
"$SLUICE_BIN" run --config "$WORK/sluice.yaml" >"$WORK/sluice.out" 2>"$WORK/sluice.err" &
SLUICE=$!
PIDS+=("$SLUICE")
wait_for "sluice" 10 curl -sf "http://127.0.0.1:$ADMIN/readyz"

metric() { # NAME: the sum of its series
    curl -sf "http://127.0.0.1:$ADMIN/metrics" |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d", s }'
}
reloads() { # OUTCOME
    curl -sf "http://127.0.0.1:$ADMIN/metrics" |
        awk -v o="$1" 'index($1, "sluice_config_reloads_total{") == 1 && index($1, "result=\"" o "\"") { s += $2 } END { printf "%d", s }'
}
fds_of() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
idle() { [[ $(metric sluice_client_connections) == 0 ]]; }
figures() { # → "fds rss_kib tasks"
    wait_for "every client connection to close" 30 idle
    # sluice samples its task count once a second: a reading taken now could be from
    # before the last clients left, so wait out one sampling period.
    sleep 1.2
    echo "$(fds_of "$SLUICE") $(rss_kib "$SLUICE") $(metric sluice_runtime_tasks)"
}

stream_loop() { # OUT END
    local n=0 bad=0 size
    while (($(date +%s) < $2)); do
        size=$(curl -s -o /dev/null -w '%{size_download}' -H "Host: h1.test" \
            --max-time 10 "http://127.0.0.1:$PORT/drip/10?size=1024&every=50" || true)
        n=$((n + 1))
        [[ $size == 10240 ]] || bad=$((bad + 1))
    done
    echo "$n $bad" >"$1"
}
leave_loop() { # OUT END: clients that give up 0.2 s into a 2 s stream
    local n=0
    while (($(date +%s) < $2)); do
        curl -s -o /dev/null -H "Host: h1.test" --max-time 0.2 \
            "http://127.0.0.1:$PORT/drip/20?every=100" || true
        n=$((n + 1))
    done
    echo "$n" >"$1"
}
echo 'function delay() return 10 end' >"$WORK/pace.lua"
refused() { # connect_refused answers of the dead backend so far
    curl -sf "http://127.0.0.1:$ADMIN/metrics" |
        awk 'index($1, "sluice_upstream_errors_total{") == 1 && index($1, "backend=\"dead\"") && index($1, "cause=\"connect_refused\"") { s += $2 } END { printf "%d", s }'
}
reload_loop() { # OUT END
    local n=0 next
    while (($(date +%s) < $2)); do
        sleep "$RELOAD_EVERY"
        # Always the other config, so that every reload changes something.
        if cmp -s "$WORK/sluice.yaml" "$WORK/a.yaml"; then next=b; else next=a; fi
        cp "$WORK/$next.yaml" "$WORK/new.yaml" && mv "$WORK/new.yaml" "$WORK/sluice.yaml"
        kill -HUP "$SLUICE"
        n=$((n + 1))
    done
    echo "$n" >"$1"
}

run_load() { # SECONDS TAG
    local secs=$1 tag=$2 end pids=()
    end=$(($(date +%s) + secs))
    wrk -t2 -c32 -d"${secs}s" -H "Host: h1.test" "http://127.0.0.1:$PORT/" >"$WORK/$tag.wrk1" 2>&1 &
    pids+=($!)
    wrk -t1 -c16 -d"${secs}s" -H "Host: h2.test" "http://127.0.0.1:$PORT/" >"$WORK/$tag.wrk2" 2>&1 &
    pids+=($!)
    ab -q -c4 -t "$secs" -n 100000000 -H "Host: h1.test" "http://127.0.0.1:$PORT/" >"$WORK/$tag.ab" 2>&1 &
    pids+=($!)
    for i in 1 2 3 4; do stream_loop "$WORK/$tag.stream$i" "$end" & pids+=($!); done
    wrk -t1 -c3 -d"${secs}s" -s "$WORK/pace.lua" -H "Host: fault.test" "http://127.0.0.1:$PORT/" >"$WORK/$tag.faults" 2>&1 &
    pids+=($!)
    for i in 1 2; do leave_loop "$WORK/$tag.leave$i" "$end" & pids+=($!); done
    reload_loop "$WORK/$tag.reloads" "$end" &
    pids+=($!)
    wait "${pids[@]}"
}

log "warm-up: ${WARMUP}s of the mix"
run_load "$WARMUP" warm
read -r FDS0 RSS0 TASKS0 <<<"$(figures)"
APPLIED0=$(reloads applied)
REFUSED0=$(refused)
log "baseline (idle after warm-up): fds $FDS0, rss $RSS0 KiB, tasks $TASKS0"

log "soak: ${DURATION}s of the mix, a reload every ${RELOAD_EVERY}s"
run_load "$DURATION" soak
read -r FDS1 RSS1 TASKS1 <<<"$(figures)"
log "after (idle): fds $FDS1, rss $RSS1 KiB, tasks $TASKS1"
# Tasks that end on their own after the load (lingering closes, abandoned streams
# finishing) may take a few seconds; sluice samples the count every second. Wait up
# to SETTLE (30) s for it to come back, and say how long it took.
SETTLE=${SETTLE:-30}
settled=0
TASKS_SEEN=$TASKS1
while ((TASKS1 > TASKS0 + 8 && settled < SETTLE)); do
    sleep 1
    settled=$((settled + 1))
    TASKS1=$(metric sluice_runtime_tasks)
    TASKS_SEEN="$TASKS_SEEN $TASKS1"
done
echo "   tasks after the load, once a second: $TASKS_SEEN"
FDS1=$(fds_of "$SLUICE")
RSS1=$(rss_kib "$SLUICE")

wrk_count() { awk '/requests in/ { print $1 }' "$1"; }
wrk_bad() { awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"; }
W1=$(wrk_count "$WORK/soak.wrk1")
W2=$(wrk_count "$WORK/soak.wrk2")
AB=$(awk '/^Complete requests/ { print $3 }' "$WORK/soak.ab")
AB_BAD=$(awk '/^Failed requests|^Non-2xx/ { n += $3 } END { print n + 0 }' "$WORK/soak.ab")
read -r S S_BAD <<<"$(cat "$WORK"/soak.stream* | awk '{ n += $1; b += $2 } END { print n, b }')"
F=$(wrk_count "$WORK/soak.faults")
F_BAD=$((F - ($(refused) - REFUSED0)))
L=$(cat "$WORK"/soak.leave* | awk '{ n += $1 } END { print n }')
RELOADS=$(cat "$WORK/soak.reloads")
# The last SIGHUP may still be being applied.
all_reloads() { [[ $(($(reloads applied) - APPLIED0)) -ge $RELOADS ]]; }
wait_for "the last reload to be applied" 10 all_reloads
APPLIED=$(($(reloads applied) - APPLIED0))
TOTAL=$((W1 + W2 + AB + S + F + L))
BAD=$(($(wrk_bad "$WORK/soak.wrk1") + $(wrk_bad "$WORK/soak.wrk2") + AB_BAD + S_BAD))

printf '   requests: %d in all (keep-alive h1 %d, h2 upstream %d, close-per-request %d, streams %d, refused %d and clients leaving %d = %.2f%% faults)\n' \
    "$TOTAL" "$W1" "$W2" "$AB" "$S" "$F" "$L" "$(awk -v f="$((F + L))" -v t="$TOTAL" 'BEGIN { print f * 100 / t }')"
echo "   failed (not faults): $BAD; faults answered wrongly: $F_BAD; reloads: $RELOADS sent, $APPLIED applied"
echo "   fds $FDS0 → $FDS1, rss $RSS0 → $RSS1 KiB ($(awk -v a="$RSS0" -v b="$RSS1" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')%), tasks $TASKS0 → $TASKS1"

fail=0
check() { # DESCRIPTION CONDITION...
    local what=$1
    shift
    if "$@"; then echo "   ok: $what"; else echo "   FAIL: $what"; fail=1; fi
}
check "at least $REQUESTS requests" test "$TOTAL" -ge "$REQUESTS"
check "no failed request outside the faults" test "$BAD" -eq 0
check "every fault answered 502 connect_refused" test "$F_BAD" -eq 0
check "every reload applied" test "$APPLIED" -ge "$RELOADS"
check "fds back to baseline (+8)" test "$FDS1" -le $((FDS0 + 8))
check "tasks back to baseline (+8)" test "$TASKS1" -le $((TASKS0 + 8))
check "rss within 10% of baseline" test "$RSS1" -le $((RSS0 + RSS0 / 10))
grep -q '"level":"ERROR"\|panicked' "$WORK/sluice.err" && { echo "   FAIL: errors in sluice's log"; fail=1; }
exit "$fail"
