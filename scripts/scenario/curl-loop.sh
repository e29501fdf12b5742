#!/usr/bin/env bash
# One "PHP-style" client for scripts/scenario/port-exhaustion.sh: a new curl process per
# request, so every request is a new connection that the client closes when curl exits.
#
#   curl-loop.sh OUT MAX SECONDS CURL_ARGS...
#
# Runs until MAX requests were attempted or SECONDS elapsed, whichever comes first, then
# writes counters to OUT, one `key=value` per line:
#
#   attempts ok eaddrnotavail timeout http other   (counts)
#   first_<kind>=<curl's own words for the first failure of that kind>
#
# Kinds: `eaddrnotavail` = connect() failed with EADDRNOTAVAIL ("Cannot assign requested
# address": no free local port), `timeout` = curl exit 28 (e.g. a SYN dropped by a NAT
# that has no port left), `http` = a non-2xx answer (curl --fail, exit 22; the status and
# any `sluice-error` header are kept), `other` = anything else.
#
# curl runs with -v so the errno text is visible; its stderr for the current request goes
# to OUT.curl (overwritten each time) and is only read when the request failed.
set -u

out=$1 max=$2 secs=$3
shift 3
trace=$out.curl

attempts=0 ok=0 eaddrnotavail=0 timeout=0 http=0 other=0
first_eaddrnotavail='' first_timeout='' first_http='' first_other=''

SECONDS=0
while ((attempts < max && SECONDS < secs)); do
    attempts=$((attempts + 1))
    curl -sS -v --fail -o /dev/null "$@" 2>"$trace"
    rc=$?
    if ((rc == 0)); then
        ok=$((ok + 1))
        continue
    fi
    # The lines that say why: the connect error with its errno text, curl's summary, and
    # for HTTP errors the status line and sluice's cause header.
    why="curl exit $rc: $(grep -E '^\* (Immediate connect fail|connect to .* failed)|^curl: \(|^< HTTP/|^< sluice-error' "$trace" | head -3 | tr -d '\r' | tr '\n' ' ')"
    if grep -q 'Cannot assign requested address' "$trace"; then
        eaddrnotavail=$((eaddrnotavail + 1))
        [[ -n $first_eaddrnotavail ]] || first_eaddrnotavail=$why
    elif ((rc == 28)); then
        timeout=$((timeout + 1))
        [[ -n $first_timeout ]] || first_timeout=$why
    elif ((rc == 22)); then
        http=$((http + 1))
        [[ -n $first_http ]] || first_http=$why
    else
        other=$((other + 1))
        [[ -n $first_other ]] || first_other=$why
    fi
done

{
    echo "attempts=$attempts"
    echo "ok=$ok"
    echo "eaddrnotavail=$eaddrnotavail"
    echo "timeout=$timeout"
    echo "http=$http"
    echo "other=$other"
    echo "seconds=$SECONDS"
    for kind in eaddrnotavail timeout http other; do
        var=first_$kind
        [[ -z ${!var} ]] || echo "first_$kind=${!var}"
    done
} >"$out"
rm -f "$trace"
