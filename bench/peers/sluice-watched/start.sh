#!/usr/bin/env bash
# bench/peers/sluice with the dashboard's load on its admin listener: every second,
# GET / once a minute (the page), /pools, /config and /metrics (the page's poll) and
# /metrics again (a Prometheus scrape). The poller is detached (setsid, reparented to
# init), so the CPU the harness measures for this PID is sluice's alone; it stops
# when sluice does.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SLUICE_BIN:-$here/../../../target/release/sluice}
[ -x "$bin" ] || { echo "no sluice binary at $bin: run 'cargo build --release' (bench/run.sh does)" >&2; exit 1; }
export ADMIN_PORT=$((LISTEN_PORT + 1))
"$PB_ROOT/lib/render.py" "$here/sluice.yaml.tmpl" "$RUN_DIR/sluice.yaml"
"$bin" check --config "$RUN_DIR/sluice.yaml"
admin="http://127.0.0.1:$ADMIN_PORT"
pid=$$
(setsid bash -c '
  i=0
  while kill -0 '"$pid"' 2>/dev/null; do
    if (( i % 60 == 0 )); then curl -s -o /dev/null '"$admin"'/; fi
    for p in /pools /config /metrics /metrics; do curl -s -o /dev/null '"$admin"'$p; done
    i=$((i + 1)); sleep 1
  done' </dev/null >/dev/null 2>&1 &)
exec "$bin" run --config "$RUN_DIR/sluice.yaml"
