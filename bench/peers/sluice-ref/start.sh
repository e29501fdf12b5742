#!/usr/bin/env bash
# A second sluice, configured exactly like bench/peers/sluice, running the binary named
# by SLUICE_REF_BIN (e.g. a build of the commit before a change), so one harness
# invocation compares before and after:
#   SLUICE_REF_BIN=/tmp/sluice-before PEERS="sluice sluice-ref haproxy nginx" bench/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -n "${SLUICE_REF_BIN:-}" ] || { echo "set SLUICE_REF_BIN to the reference sluice binary" >&2; exit 1; }
export SLUICE_BIN=$SLUICE_REF_BIN
exec "$here/../sluice/start.sh"
