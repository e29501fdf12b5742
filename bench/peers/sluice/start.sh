#!/usr/bin/env bash
# Peer contract (../shared/bench/README.md): render the config into $RUN_DIR, then exec
# the proxy in the foreground. The binary is this checkout's release build
# (bench/run.sh builds it first); SLUICE_BIN overrides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SLUICE_BIN:-$here/../../../target/release/sluice}
[ -x "$bin" ] || { echo "no sluice binary at $bin: run 'cargo build --release' (bench/run.sh does)" >&2; exit 1; }
"$PB_ROOT/lib/render.py" "$here/sluice.yaml.tmpl" "$RUN_DIR/sluice.yaml"
"$bin" check --config "$RUN_DIR/sluice.yaml"
exec "$bin" run --config "$RUN_DIR/sluice.yaml"
