#!/usr/bin/env bash
# What the end-to-end tests need beyond the Rust toolchain, installed if missing:
# the real clients of the forward-proxy tests (curl, PHP's curl extension, Python's
# requests on the system Python, /usr/bin/python3) and of the HTTP/2 listener tests
# (h2load from nghttp2-client; httpx with HTTP/2, i.e. httpx[http2]: Debian's httpx
# and h2 on the same system Python, which PEP 668 keeps pip out of). Needs root to
# install.
set -euo pipefail
source "$(dirname "$0")/scenario/lib.sh"
pkgs=()
command -v curl >/dev/null || pkgs+=(curl)
php -r 'exit(function_exists("curl_init") ? 0 : 1);' 2>/dev/null || pkgs+=(php-cli php-curl)
/usr/bin/python3 -c 'import requests' 2>/dev/null || pkgs+=(python3-requests)
command -v h2load >/dev/null || pkgs+=(nghttp2-client)
# The Kubernetes tests' API server: its certificates are made with openssl.
command -v openssl >/dev/null || pkgs+=(openssl)
command -v ss >/dev/null || pkgs+=(iproute2)
# The dashboard test drives headless Chromium through chromedriver.
command -v chromedriver >/dev/null || pkgs+=(chromium chromium-driver)
/usr/bin/python3 -c 'import httpx, h2' 2>/dev/null || pkgs+=(python3-httpx python3-h2)
((${#pkgs[@]})) || exit 0
[[ $(id -u) == 0 ]] || die "the tests need ${pkgs[*]}; run as root to install them"
log "installing ${pkgs[*]} (needed by the tests)"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
