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
