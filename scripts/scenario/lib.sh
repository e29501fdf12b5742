# shellcheck shell=bash
# Shared by the scenario scripts (sourced): messages, installing what is missing,
# bounded waits, free ports and process figures.

log() { printf '== %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# install_missing CMD:PKG...: installs the Debian package of each command not on PATH
# (needs root; retries once after `apt-get update`).
install_missing() {
    local pkgs=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || pkgs+=("${pair#*:}")
    done
    ((${#pkgs[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "missing ${pkgs[*]}; run as root to install them"
    log "installing ${pkgs[*]} (missing)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.1 s, bounded.
wait_for() {
    local what=$1 tries=$(($2 * 10))
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        ((tries > 0)) || die "timed out waiting for $what"
        sleep 0.1
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Process figures from /proc.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
children_of() { pgrep -P "$1" || true; }
# tree_rss PID: VmRSS of PID and its children, summed (KiB).
tree_rss() {
    local total pid
    total=$(rss_kib "$1")
    for pid in $(children_of "$1"); do
        total=$((total + $(rss_kib "$pid")))
    done
    echo "$total"
}

# Bookkeeping. scenario_work NAME makes a fresh $WORK (/tmp/NAME.XXXXXX) and an empty
# $PIDS; every process recorded in PIDS (PIDS+=($!)) is stopped on exit, then $WORK is
# removed. stop_pids stops them (and empties PIDS).
stop_pids() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
scenario_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids
    rm -rf "$WORK"
    exit "$rc"
}
scenario_work() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    trap scenario_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# test_certs LABEL SAN: a throw-away CA ($WORK/ca.pem, ca.key) and an origin
# certificate for SAN (e.g. DNS:api.test,IP:127.0.0.1) signed by it
# ($WORK/origin.pem, origin.key), EC P-256, valid two days.
test_certs() {
    local cn=${2%%,*}
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$1 test CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=${cn#*:}" -addext "subjectAltName=$2" \
        -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
        -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
        -keyout "$WORK/origin.key" -out "$WORK/origin.pem" 2>/dev/null
}
