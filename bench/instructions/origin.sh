# Sourced by run.sh and cputime.sh (after they set repo, harness, PB_WORK and the
# binaries in "$@"): starts the bench harness's HTTPS origin and renders sluice's bench
# config into $work. Sets ca, work, url; the origin stops when the script exits.
ca=$PB_WORK/certs/ec/ca.crt
[ -f "$ca" ] || { echo "no harness certificates at $ca: run bench/run.sh once first" >&2; exit 1; }
[ $# -gt 0 ] || set -- "$repo/target/release/sluice"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
# Everything the origin's template needs is exported before it starts.
export RUN_DIR=$work/origin PB_ROOT=$harness CERT_DIR=$PB_WORK/certs/ec \
  ORIGIN_HTTP_PORT=18080 ORIGIN_TLS_PORT=18443 ORIGIN_STATUS_PORT=18081
export WORKERS=1 LISTEN_ADDR=127.0.0.1 LISTEN_PORT=19024 ROUTE_HOST=api.example.test \
  ORIGIN_ADDR=127.0.0.1 UPSTREAM_SNI=api.example.test CA_FILE=$ca
"$harness/origin/start.sh" >"$work/origin.log" 2>&1 &
for _ in $(seq 1 100); do
  curl -fsk -o /dev/null -H "Host: $ROUTE_HOST" "https://127.0.0.1:$ORIGIN_TLS_PORT/" && break
  sleep 0.1
done
curl -fsk -o /dev/null -H "Host: $ROUTE_HOST" "https://127.0.0.1:$ORIGIN_TLS_PORT/" \
  || { echo "the origin did not start:"; cat "$work/origin.log"; exit 1; } >&2
"$harness/lib/render.py" "$repo/bench/peers/sluice/sluice.yaml.tmpl" "$work/sluice.yaml"
url=http://127.0.0.1:$LISTEN_PORT/
