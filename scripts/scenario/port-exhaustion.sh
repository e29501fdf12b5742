#!/usr/bin/env bash
# shellcheck disable=SC2154 # direct_* and sluice_* counters are assigned by `clients`
# Scenario: ephemeral-port (and NAT port) exhaustion, without and with sluice.
#
#   sudo scripts/scenario/port-exhaustion.sh          # local ports, plain HTTP (default)
#   sudo scripts/scenario/port-exhaustion.sh --nat    # a NAT gateway's ports, HTTPS
#
# The client is "PHP-style": one curl process per request, so one new TCP connection
# per request, closed by the client when curl exits. Two phases, each in a freshly built
# set of network namespaces with identical settings:
#
#   direct      the client calls the origin itself: it runs out of ports
#   via sluice  the client sends the same requests to sluice over a Unix socket, and
#               sluice forwards them over at most POOL_SIZE pooled connections
#
# Default mode (local ports). Whoever closes a TCP connection first keeps its 4-tuple
# in TIME_WAIT for 60 s (fixed in Linux, TCP_TIMEWAIT_LEN), so that (source IP, port)
# cannot connect to the same destination again until then. The client namespace gets
# net.ipv4.ip_local_port_range = 1,000 ports and net.ipv4.tcp_tw_reuse = 0 (both are
# per network namespace): with reuse off, connect() will not take over a TIME_WAIT port
# either, so after ~1,000 requests every connect() fails with EADDRNOTAVAIL, "Cannot
# assign requested address" (curl exit 7) for the rest of the minute. (tcp_tw_reuse
# defaults to 2, i.e. on for loopback only; it is off for real hosts talking to remote
# origins, which this veth pair models.) The origin never closes first, so the
# TIME_WAITs are all on the client. Through sluice, the client's connections are Unix
# socket connections, which have no ports and no TIME_WAIT, and sluice reuses a few
# long-lived upstream TCP connections, so the 1,000 ports are never needed.
#
# --nat mode (the seed's case: a NAT gateway's ErrorPortAllocation). An HTTPS client
# that closes with TLS data still unread (e.g. TLS 1.3 session tickets) sends RST, which
# leaves no TIME_WAIT on the client (curl here: none after HTTPS calls), so local ports
# are not the limit any more: the NAT is. The client reaches the HTTPS origin through a
# router namespace whose SNAT rule maps everything to one IP and NAT_PORTS (1,000)
# ports. A real NAT gateway keeps a port allocated for a while after the connection
# closes (a cool-down, or until its idle timeout). Linux does not: when short of ports
# it evicts SNAT entries in TIME_WAIT/CLOSE (nf_nat_used_tuple_harder; with the plain
# SNAT rule, 1,600 short connections went through 1,000 ports in 12 s here). So the
# router models the gateway by hiding the client's FIN/RST from connection tracking:
# each mapping is then held NAT_HOLD seconds after the connection's last packet. When
# all ports are held the router drops new SYNs, as a full gateway does, and the client
# sees connect timeouts (curl exit 28). Through sluice: ≤ POOL_SIZE mappings.
#
# Environment (all optional):
#   DURATION=60         seconds of the "via sluice" phase
#   PARALLEL=4          client loops running at once
#   POOL_SIZE=8         sluice's connection limit to the origin; the check is against it
#   PORTS=1000          local ports in the client namespace (default mode)
#   NAT_PORTS=1000      SNAT ports in the router namespace (--nat)
#   NAT_HOLD=120        seconds the router holds a mapping after its last packet (--nat);
#                       also its idle timeout for live connections: keep it > DURATION
#   DIRECT_MAX=1500     the direct phase stops after this many requests...
#   DIRECT_SECONDS=20   ...or this many seconds (25 in --nat mode)
#   SLUICE_BIN, ORIGIN_BIN  prebuilt binaries; otherwise `cargo build --release` builds
#                       target/release/sluice and target/release/scenario-origin
#
# Exit status: 0 when the direct phase hit the limit (EADDRNOTAVAIL, or connect timeouts
# with --nat), the sluice phase had no error at all, and sluice used ≤ POOL_SIZE upstream
# connections (peak open at the origin, and sluice_upstream_connections_opened_total).
# Needs root (namespaces, sysctls), ip, curl; --nat also nft and openssl. Everything it
# creates (namespaces named sluice-px-<pid>-*, with 10.200.x.0/24 addresses that exist
# only inside them, processes, a temp dir) is removed on exit, also on failure.
set -euo pipefail

MODE=plain
case "${1:-}" in
"") ;;
--nat) MODE=nat ;;
-h | --help)
    sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [--nat]" >&2
    exit 2
    ;;
esac

DURATION=${DURATION:-60}
PARALLEL=${PARALLEL:-4}
POOL_SIZE=${POOL_SIZE:-8}
PORTS=${PORTS:-1000}
NAT_PORTS=${NAT_PORTS:-1000}
NAT_HOLD=${NAT_HOLD:-120}
DIRECT_MAX=${DIRECT_MAX:-1500}
if [[ $MODE == nat ]]; then
    DIRECT_SECONDS=${DIRECT_SECONDS:-25}
else
    DIRECT_SECONDS=${DIRECT_SECONDS:-20}
fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PREFIX="sluice-px-$$"
START=$SECONDS

# shellcheck source=scripts/scenario/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "needs root (network namespaces and their sysctls)"
command -v ip >/dev/null || die "needs iproute2 (ip)"
install_missing curl:curl
[[ $MODE != nat ]] || install_missing nft:nftables openssl:openssl

if [[ -z ${SLUICE_BIN:-} || -z ${ORIGIN_BIN:-} ]]; then
    # Two invocations: building both packages in one would unify their dependencies'
    # features and rebuild a sluice binary different from `cargo build -p sluice`'s.
    log "cargo build --release (sluice, scenario-origin)"
    (cd "$ROOT" && cargo build --release --quiet -p sluice --bin sluice &&
        cargo build --release --quiet -p sluice-testkit --bin scenario-origin)
    echo "   built in $((SECONDS - START))s"
fi
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
ORIGIN_BIN=${ORIGIN_BIN:-$ROOT/target/release/scenario-origin}
[[ -x $SLUICE_BIN ]] || die "no sluice binary at $SLUICE_BIN"
[[ -x $ORIGIN_BIN ]] || die "no scenario-origin binary at $ORIGIN_BIN"
START=$SECONDS # the wall time reported at the end excludes the build

# ---------------------------------------------------------------------------------------
# Bookkeeping and cleanup: every process we start and every namespace we create is
# recorded, and removed on exit whatever the reason.
# ---------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/sluice-px.XXXXXX)
LAB_PIDS=()
LAB_NS=()

lab_down() {
    local pid ns
    for pid in "${LAB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${LAB_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    LAB_PIDS=()
    for ns in "${LAB_NS[@]}"; do
        # Anything still running inside is ours (a curl loop cut short by an error).
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    LAB_NS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    lab_down
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}


# veth NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a cable between two namespaces. The interfaces
# are created directly inside them, so nothing appears in the host's namespace.
veth() {
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

new_ns() {
    ip netns add "$1"
    LAB_NS+=("$1")
    ip -n "$1" link set lo up
}

# ---------------------------------------------------------------------------------------
# The lab: client namespace (curl, and sluice in the second phase) and origin namespace;
# with --nat a router namespace in between. Built fresh for each phase, so the second
# phase does not start with the first one's TIME_WAITs or NAT mappings.
# ---------------------------------------------------------------------------------------
if [[ $MODE == plain ]]; then
    ORIGIN_IP=10.200.1.2
    ORIGIN_PORT=8080
    ORIGIN_URL="http://$ORIGIN_IP:$ORIGIN_PORT/"
    DIRECT_CURL=("$ORIGIN_URL")
else
    ORIGIN_IP=10.200.3.2
    ORIGIN_PORT=8443
    ORIGIN_NAME=origin.test
    ORIGIN_URL="https://$ORIGIN_NAME:$ORIGIN_PORT/"
    DIRECT_CURL=(--cacert "$WORK/ca.pem" --resolve "$ORIGIN_NAME:$ORIGIN_PORT:$ORIGIN_IP" "$ORIGIN_URL")
fi

# A throw-away CA and a certificate for origin.test signed by it (--nat only).
make_certs() { test_certs sluice-px "DNS:$ORIGIN_NAME"; }

lab_up() {
    local tag=$1
    CLI_NS="$PREFIX-$tag-client"
    ORG_NS="$PREFIX-$tag-origin"
    GW_NS=""
    new_ns "$CLI_NS"
    new_ns "$ORG_NS"

    if [[ $MODE == plain ]]; then
        veth "$CLI_NS" px0 10.200.1.1/24 "$ORG_NS" px0 "$ORIGIN_IP/24"
        # The two knobs, set in the client namespace only (they are per-netns):
        # ~1,000 local ports, and no reuse of ports still in TIME_WAIT.
        in_ns "$CLI_NS" sysctl -q -w \
            "net.ipv4.ip_local_port_range=40000 $((40000 + PORTS - 1))" \
            net.ipv4.tcp_tw_reuse=0
    else
        GW_NS="$PREFIX-$tag-router"
        new_ns "$GW_NS"
        veth "$CLI_NS" px0 10.200.2.1/24 "$GW_NS" pxc 10.200.2.2/24
        veth "$GW_NS" pxo 10.200.3.1/24 "$ORG_NS" px0 "$ORIGIN_IP/24"
        ip -n "$CLI_NS" route add 10.200.3.0/24 via 10.200.2.2
        # The origin only ever talks to the router's outside address (10.200.3.1).
        # Router: forwards, and SNATs the client subnet to 10.200.3.1 with NAT_PORTS
        # source ports (rules below). A mapping lives as long as its conntrack entry,
        # which expires NAT_HOLD s after the connection's last packet in every state
        # it can be left in once the client's FIN/RST are hidden (ESTABLISHED, or
        # FIN_WAIT/CLOSE_WAIT/LAST_ACK when the origin answers a TLS close_notify
        # with its own FIN). These conntrack sysctls are per network namespace too.
        in_ns "$GW_NS" sysctl -q -w net.ipv4.ip_forward=1 \
            "net.netfilter.nf_conntrack_tcp_timeout_established=$NAT_HOLD" \
            "net.netfilter.nf_conntrack_tcp_timeout_fin_wait=$NAT_HOLD" \
            "net.netfilter.nf_conntrack_tcp_timeout_close_wait=$NAT_HOLD" \
            "net.netfilter.nf_conntrack_tcp_timeout_last_ack=$NAT_HOLD"
        in_ns "$GW_NS" nft -f - <<EOF
table ip sluice_px {
    # The gateway's port hold: the client's FIN/RST bypass connection tracking (and are
    # dropped below), so the mapping stays established until NAT_HOLD expires instead
    # of being freed (Linux would evict closing mappings when short of ports).
    chain raw {
        type filter hook prerouting priority raw; policy accept;
        iifname "pxc" tcp flags & (fin | rst) != 0 notrack
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state untracked drop
    }
    # ~1,000 ports on one outside address: when all are held, new SYNs are dropped.
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "pxo" ip saddr 10.200.2.0/24 meta l4proto tcp snat to 10.200.3.1:40000-$((40000 + NAT_PORTS - 1))
    }
}
EOF
    fi

    # The origin: HTTP/1.1 keep-alive, never closes first, counts connections (/stats).
    local tls_args=()
    [[ $MODE == plain ]] || tls_args=(--tls "$WORK/origin.pem" "$WORK/origin.key")
    in_ns "$ORG_NS" "$ORIGIN_BIN" "$ORIGIN_IP:$ORIGIN_PORT" "${tls_args[@]}" \
        >"$WORK/$tag-origin.log" 2>&1 &
    LAB_PIDS+=($!)
    wait_for "the origin to listen" 10 grep -q '^listening on' "$WORK/$tag-origin.log"
}

origin_stats() {
    local scheme=http
    [[ $MODE == plain ]] || scheme=https
    in_ns "$ORG_NS" curl -sS -k --max-time 5 "$scheme://$ORIGIN_IP:$ORIGIN_PORT/stats"
}

# stat_field KEY "open=1 peak_open=2 ...": one value out of a /stats line.
stat_field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# conntrack_stat NAME: a connection-tracking counter of the router, summed over CPUs
# (/proc/net/stat/nf_conntrack: a header line, then one line of hex values per CPU).
conntrack_stat() {
    local col total=0 v
    col=$(in_ns "$GW_NS" head -1 /proc/net/stat/nf_conntrack | tr ' ' '\n' | grep -n -x "$1" | cut -d: -f1)
    [[ -n $col ]] || { echo "?"; return; }
    for v in $(in_ns "$GW_NS" tail -n +2 /proc/net/stat/nf_conntrack | awk -v c="$col" '{ print $c }'); do
        total=$((total + 16#$v))
    done
    echo "$total"
}

time_wait_count() { in_ns "$1" ss -Htan state time-wait | wc -l; }

# run_clients TAG MAX_TOTAL SECONDS CURL_ARGS...: PARALLEL client loops in the client
# namespace; prints the summed counters as shell assignments TAG_<key>=<n> and keeps
# the first error of each kind in $WORK/TAG.errors.
run_clients() {
    local tag=$1 max=$2 secs=$3 i pids=()
    shift 3
    local per=$(((max + PARALLEL - 1) / PARALLEL))
    for ((i = 1; i <= PARALLEL; i++)); do
        in_ns "$CLI_NS" "$HERE/curl-loop.sh" "$WORK/$tag.$i" "$per" "$secs" \
            --connect-timeout 2 --max-time 10 "$@" &
        pids+=($!)
        LAB_PIDS+=($!)
    done
    wait "${pids[@]}" || true
    for ((i = 1; i <= PARALLEL; i++)); do
        [[ -s $WORK/$tag.$i ]] || return 1 # a loop died without writing its counters
    done
    awk -F= -v tag="$tag" '
        $1 ~ /^(attempts|ok|eaddrnotavail|timeout|http|other)$/ { s[$1] += $2 }
        $1 == "seconds" && $2 > secs { secs = $2 }
        END {
            for (k in s) printf "%s_%s=%d\n", tag, k, s[k]
            printf "%s_seconds=%d\n", tag, secs
        }' "$WORK/$tag".[0-9]*
    grep -h '^first_' "$WORK/$tag".[0-9]* | sort -t= -k1,1 -u >"$WORK/$tag.errors" || true
}

# clients TAG ...: run_clients in the background (so a signal is handled at once, not
# after the run), then define its TAG_* counters here.
clients() {
    run_clients "$@" >"$WORK/$1.counters" &
    LAB_PIDS+=($!)
    wait $! || die "a client loop failed"
    # shellcheck disable=SC1090
    source "$WORK/$1.counters"
}

show_errors() {
    [[ -s $WORK/$1.errors ]] || return 0
    echo "   first error of each kind:"
    sed 's/^first_\([a-z]*\)=/     \1: /' "$WORK/$1.errors"
}

# ---------------------------------------------------------------------------------------
# Phase 1: the client calls the origin directly.
# ---------------------------------------------------------------------------------------
[[ $MODE == plain ]] || make_certs

if [[ $MODE == plain ]]; then
    log "phase 1, direct: curl -> http://$ORIGIN_IP:$ORIGIN_PORT (client netns: $PORTS local ports, tcp_tw_reuse=0)"
else
    log "phase 1, direct: curl -> router (SNAT, $NAT_PORTS ports, held ${NAT_HOLD}s) -> https://$ORIGIN_NAME:$ORIGIN_PORT"
fi
lab_up direct
if [[ $MODE == plain ]]; then
    echo "   client netns sysctls: $(in_ns "$CLI_NS" sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' ') / tcp_tw_reuse=$(in_ns "$CLI_NS" sysctl -n net.ipv4.tcp_tw_reuse)"
fi
echo "   $PARALLEL client loops, one curl per request, until $DIRECT_MAX requests or ${DIRECT_SECONDS}s"
clients direct "$DIRECT_MAX" "$DIRECT_SECONDS" "${DIRECT_CURL[@]}"
DIRECT_ERRORS=$((direct_eaddrnotavail + direct_timeout + direct_http + direct_other))
DIRECT_TW=$(time_wait_count "$CLI_NS")
DIRECT_STATS=$(origin_stats)
if [[ $MODE == nat ]]; then
    DIRECT_MAPPINGS=$(in_ns "$GW_NS" sysctl -n net.netfilter.nf_conntrack_count)
    DIRECT_NAT_DROPS=$(conntrack_stat insert_failed)
fi
echo "   attempts=$direct_attempts ok=$direct_ok errors=$DIRECT_ERRORS" \
    "(eaddrnotavail=$direct_eaddrnotavail timeout=$direct_timeout http=$direct_http other=$direct_other)" \
    "in ${direct_seconds}s"
echo "   client TIME_WAIT sockets: $DIRECT_TW; origin: $DIRECT_STATS"
[[ $MODE == plain ]] || echo "   router: NAT mappings (conntrack entries) held: $DIRECT_MAPPINGS;" \
    "SYNs dropped for want of a free port (conntrack insert_failed): $DIRECT_NAT_DROPS"
show_errors direct
lab_down

# ---------------------------------------------------------------------------------------
# Phase 2: the same client through sluice, over its Unix socket. sluice runs in the
# client namespace, so its upstream connections are bound by the same port range (or
# go through the same kind of NAT).
# ---------------------------------------------------------------------------------------
log "phase 2, via sluice: curl --unix-socket -> sluice (pool of $POOL_SIZE) -> origin, ${DURATION}s"
lab_up sluice
SOCK=$WORK/sluice.sock
ADMIN=$WORK/admin.sock
if [[ $MODE == plain ]]; then
    TLS_LINE=""
else
    TLS_LINE="    tls: {ca_file: \"$WORK/ca.pem\", sni: $ORIGIN_NAME}"
fi
cat >"$WORK/sluice.yaml" <<EOF
# Generated by scripts/scenario/port-exhaustion.sh
log: {level: info, format: json, access_log: false}
admin: {bind: "unix:$ADMIN"}
listeners:
  - name: app
    bind: "unix:$SOCK"
routes:
  - host: "*"
    backend: origin
backends:
  - name: origin
    servers: ["$ORIGIN_IP:$ORIGIN_PORT"]
$TLS_LINE
    # At most POOL_SIZE requests in flight, hence at most POOL_SIZE connections; nothing
    # retires during the run, so every connection opened is still open at the end.
    limits: {maxconn_per_server: $POOL_SIZE}
    pool:
      max_idle_per_server: $POOL_SIZE
      idle_timeout: $((DURATION + 60))s
      max_requests_per_connection: 0
      max_lifetime: 0s
EOF
in_ns "$CLI_NS" "$SLUICE_BIN" check --config "$WORK/sluice.yaml" >/dev/null ||
    die "sluice check rejected the generated config"
in_ns "$CLI_NS" "$SLUICE_BIN" run --config "$WORK/sluice.yaml" \
    >"$WORK/sluice.out" 2>"$WORK/sluice.err" &
SLUICE_PID=$!
LAB_PIDS+=("$SLUICE_PID")
sluice_ready() {
    kill -0 "$SLUICE_PID" || return 0 # exited: reported below rather than waited for
    curl -sf --max-time 1 --unix-socket "$ADMIN" http://sluice/readyz
}
wait_for "sluice /readyz" 20 sluice_ready
kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice exited at start: $(tail -5 "$WORK/sluice.err")"

echo "   $PARALLEL client loops, one curl per request, for ${DURATION}s"
clients sluice 1000000000 "$DURATION" --unix-socket "$SOCK" "http://${ORIGIN_NAME:-origin.test}/"
SLUICE_ERRORS=$((sluice_eaddrnotavail + sluice_timeout + sluice_http + sluice_other))
SLUICE_TW=$(time_wait_count "$CLI_NS")
SLUICE_STATS=$(origin_stats)
METRICS=$(curl -sS --max-time 5 --unix-socket "$ADMIN" http://sluice/metrics)
# metric NAME: the sum of a metric's samples (all label sets).
metric() {
    awk -v m="$1" 'index($1, m "{") == 1 || $1 == m { s += $NF } END { printf "%d\n", s }' <<<"$METRICS"
}
OPENED=$(metric sluice_upstream_connections_opened_total)
REUSED=$(metric sluice_upstream_connections_reused_total)
UPSTREAM_ERRS=$(metric sluice_upstream_errors_total)
PEAK_OPEN=$(stat_field peak_open "$SLUICE_STATS")
if [[ $MODE == nat ]]; then
    SLUICE_MAPPINGS=$(in_ns "$GW_NS" sysctl -n net.netfilter.nf_conntrack_count)
    SLUICE_NAT_DROPS=$(conntrack_stat insert_failed)
fi
echo "   attempts=$sluice_attempts ok=$sluice_ok errors=$SLUICE_ERRORS" \
    "(eaddrnotavail=$sluice_eaddrnotavail timeout=$sluice_timeout http=$sluice_http other=$sluice_other)" \
    "in ${sluice_seconds}s"
echo "   client-netns TIME_WAIT sockets: $SLUICE_TW; origin: $SLUICE_STATS"
echo "   sluice metrics: upstream_connections_opened_total=$OPENED reused_total=$REUSED upstream_errors_total=$UPSTREAM_ERRS"
[[ $MODE == plain ]] || echo "   router: NAT mappings (conntrack entries) held: $SLUICE_MAPPINGS;" \
    "SYNs dropped for want of a free port: $SLUICE_NAT_DROPS"
show_errors sluice
if ((SLUICE_ERRORS > 0)) || ! kill -0 "$SLUICE_PID" 2>/dev/null; then
    echo "   sluice stderr (last lines):"
    tail -5 "$WORK/sluice.err" | sed 's/^/     /'
fi
lab_down

# ---------------------------------------------------------------------------------------
# Verdict
# ---------------------------------------------------------------------------------------
failures=()
if [[ $MODE == plain ]]; then
    DIRECT_KIND="EADDRNOTAVAIL"
    DIRECT_HITS=$direct_eaddrnotavail
else
    DIRECT_KIND="connect timeout: NAT out of ports"
    DIRECT_HITS=$direct_timeout
fi
((DIRECT_HITS > 0)) || failures+=("the direct run never hit the limit (no $DIRECT_KIND errors)")
((sluice_ok > 0)) || failures+=("no request succeeded through sluice")
((SLUICE_ERRORS == 0)) || failures+=("$SLUICE_ERRORS errors through sluice")
[[ -n $PEAK_OPEN ]] || failures+=("could not read the origin's /stats")
((${PEAK_OPEN:-999999} <= POOL_SIZE)) || failures+=("origin saw $PEAK_OPEN connections open at once from sluice (> $POOL_SIZE)")
((OPENED <= POOL_SIZE)) || failures+=("sluice opened $OPENED upstream connections (> $POOL_SIZE)")
((OPENED > 0)) || failures+=("sluice reports no upstream connection (metrics unreadable?)")

echo
echo "summary ($MODE mode, $([[ $MODE == plain ]] && echo "$PORTS local ports" || echo "$NAT_PORTS NAT ports"), $PARALLEL clients, pool size $POOL_SIZE)"
printf '  %-11s ok=%d errors=%d (%s) attempts=%d duration=%ds\n' "direct:" \
    "$direct_ok" "$DIRECT_ERRORS" "$DIRECT_KIND: $DIRECT_HITS" "$direct_attempts" "$direct_seconds"
printf '  %-11s ok=%d errors=%d duration=%ds upstream_connections=%d (peak open at origin %s, opened_total %d)\n' "via sluice:" \
    "$sluice_ok" "$SLUICE_ERRORS" "$sluice_seconds" "$OPENED" "${PEAK_OPEN:-?}" "$OPENED"
echo "  wall time: $((SECONDS - START))s (without the build)"
if ((${#failures[@]})); then
    printf 'FAIL: %s\n' "${failures[@]}"
    exit 1
fi
echo "PASS"
