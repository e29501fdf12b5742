# shellcheck shell=bash
# Shared by the scenario scripts (sourced): messages, and installing what is missing.

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
