#!/usr/bin/env bash
# Smoke test of the binaries from scripts/k8s-testbin.sh: start etcd and a real
# kube-apiserver on free 127.0.0.1 ports with openssl-made certificates, wait
# for /readyz, create and list a Namespace, install the Gateway API standard
# CRDs and wait until they are Established. Everything is stopped on exit.
#
#   scripts/k8s-apiserver-smoke.sh            # builds the testbin if needed
#   K8S_TESTBIN=/path/to/dir scripts/k8s-apiserver-smoke.sh
#
# Needs: bash, openssl, curl, python3 (stdlib only). Timeouts: READY_TIMEOUT
# (default 120 s) for etcd/apiserver readiness, CRD_TIMEOUT (default 60 s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
READY_TIMEOUT=${READY_TIMEOUT:-120}
CRD_TIMEOUT=${CRD_TIMEOUT:-60}
start=$SECONDS
log() { printf '[k8s-smoke %4ss] %s\n' "$((SECONDS - start))" "$*" >&2; }

bin=${K8S_TESTBIN:-$("$root/scripts/k8s-testbin.sh" | tail -n1)}
for f in kube-apiserver etcd gateway-crds; do
  [[ -e $bin/$f ]] || { log "missing $bin/$f"; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-k8s-smoke.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  local i p t0=$SECONDS
  # Stop in reverse order (apiserver before etcd); SIGKILL whatever is left
  # after STOP_TIMEOUT seconds.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill "$p" 2>/dev/null || continue
    while kill -0 "$p" 2>/dev/null && ((SECONDS - t0 < ${STOP_TIMEOUT:-10})); do sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  log "stopped in $((SECONDS - t0))s"
  if ((rc != 0)); then
    for l in "$work"/*.log; do
      [[ -f $l ]] || continue
      log "---- last lines of $(basename "$l")"
      tail -n 25 "$l" >&2
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports: bind to :0 all at once, so the three are distinct.
read -r etcd_port peer_port api_port < <(python3 - <<'EOF'
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
EOF
)

# ---- certificates ---------------------------------------------------------
pki=$work/pki
mkdir -p "$pki"
ossl() { openssl "$@" 2>>"$work/openssl.txt"; }
ossl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 1 \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=sluice-smoke-ca"
sign() { # name subject extfile-lines
  local name=$1 subj=$2 ext=$3
  printf '%s\n' "$ext" >"$pki/$name.ext"
  ossl req -new -nodes -newkey rsa:2048 -keyout "$pki/$name.key" \
    -out "$pki/$name.csr" -subj "$subj"
  ossl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -sha256 -days 1 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
}
sign serving "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
sign admin "/O=system:masters/CN=sluice-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
log "certificates in $pki"

# ---- etcd -----------------------------------------------------------------
etcd_url=http://127.0.0.1:$etcd_port
peer_url=http://127.0.0.1:$peer_port
etcd_flags=(
  --name=smoke
  --data-dir="$work/etcd"
  --listen-client-urls="$etcd_url"
  --advertise-client-urls="$etcd_url"
  --listen-peer-urls="$peer_url"
  --initial-advertise-peer-urls="$peer_url"
  --initial-cluster="smoke=$peer_url"
  --log-level=warn
)
log "etcd ${etcd_flags[*]}"
"$bin/etcd" "${etcd_flags[@]}" >"$work/etcd.log" 2>&1 &
pids+=($!)
etcd_t0=$SECONDS
until curl -fsS --max-time 2 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"'; do
  kill -0 "${pids[0]}" 2>/dev/null || { log "etcd exited"; exit 1; }
  ((SECONDS - etcd_t0 < READY_TIMEOUT)) || { log "etcd not healthy after ${READY_TIMEOUT}s"; exit 1; }
  sleep 0.2
done
log "etcd healthy on $etcd_url after $((SECONDS - etcd_t0))s"

# ---- kube-apiserver -------------------------------------------------------
api_flags=(
  --etcd-servers="$etcd_url"
  --bind-address=127.0.0.1
  --advertise-address=127.0.0.1
  --endpoint-reconciler-type=none   # 1.37 refuses a loopback IP in the kubernetes Endpoints
  --secure-port="$api_port"
  --cert-dir="$work/apiserver-certs"
  --tls-cert-file="$pki/serving.crt"
  --tls-private-key-file="$pki/serving.key"
  --client-ca-file="$pki/ca.crt"
  --authorization-mode=RBAC
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$pki/sa.pub"
  --service-account-signing-key-file="$pki/sa.key"
  --service-cluster-ip-range=10.0.0.0/24
  --disable-admission-plugins=ServiceAccount
  --enable-priority-and-fairness=false
  --profiling=false
)
log "kube-apiserver flags:"
printf '  %s\n' "${api_flags[@]}" >&2
"$bin/kube-apiserver" "${api_flags[@]}" >"$work/kube-apiserver.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")

api=https://127.0.0.1:$api_port
kc() { # curl as the system:masters admin
  curl -sS --max-time 10 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}
api_t0=$SECONDS
until [[ $(kc "$api/readyz" 2>/dev/null) == ok ]]; do
  kill -0 "$api_pid" 2>/dev/null || { log "kube-apiserver exited"; exit 1; }
  ((SECONDS - api_t0 < READY_TIMEOUT)) || {
    log "kube-apiserver not ready after ${READY_TIMEOUT}s"
    kc "$api/readyz?verbose" >&2 || true
    exit 1
  }
  sleep 0.2
done
ready_s=$((SECONDS - api_t0))
log "kube-apiserver ready on $api after ${ready_s}s ($(kc "$api/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])'))"

# ---- namespace ------------------------------------------------------------
# Serve mode (the Rust testkit's real API server): write a kubeconfig for the
# system:masters admin, say so on stdout, and run until SIGTERM.
if [[ -n ${SERVE_KUBECONFIG:-} ]]; then
  cat >"$SERVE_KUBECONFIG" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "$api", certificate-authority: "$pki/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$pki/admin.crt", client-key: "$pki/admin.key"}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
KC
  echo "ready $api"
  sleep infinity &
  pids+=($!)
  wait "$!"
fi

ns=sluice-smoke
kc -f -H 'Content-Type: application/json' -X POST "$api/api/v1/namespaces" \
  -d "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\"}}" >/dev/null
kc -f "$api/api/v1/namespaces" | python3 -c '
import json, sys
names = [i["metadata"]["name"] for i in json.load(sys.stdin)["items"]]
print("namespaces:", " ".join(names), file=sys.stderr)
sys.exit(0 if sys.argv[1] in names else 1)' "$ns"
log "created and listed namespace $ns"

# ---- Gateway API CRDs -----------------------------------------------------
# Each file may hold several YAML documents; the apiserver takes YAML as is.
docs=$work/docs
mkdir -p "$docs"
for f in "$bin"/gateway-crds/*.yaml; do
  awk -v out="$docs/$(basename "$f" .yaml)" '
    /^---[[:space:]]*$/ { n++; next }
    { print > (out "." n+0 ".yaml") }' "$f"
done
crds=()
for d in "$docs"/*.yaml; do
  grep -q '[^[:space:]]' "$d" || continue
  kind=$(sed -n 's/^kind:[[:space:]]*//p' "$d" | head -n1)
  name=$(awk '/^metadata:/{m=1;next} m&&/^  name:/{gsub(/"/,"",$2);print $2;exit}' "$d")
  case $kind in
  CustomResourceDefinition) path=/apis/apiextensions.k8s.io/v1/customresourcedefinitions; crds+=("$name") ;;
  ValidatingAdmissionPolicy) path=/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies ;;
  ValidatingAdmissionPolicyBinding) path=/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings ;;
  *) log "unexpected kind '$kind' in $d"; exit 1 ;;
  esac
  code=$(kc -o "$work/post.out" -w '%{http_code}' -H 'Content-Type: application/yaml' \
    -X POST "$api$path" --data-binary @"$d")
  [[ $code == 201 ]] || { log "POST $kind $name: HTTP $code"; cat "$work/post.out" >&2; exit 1; }
  log "created $kind $name"
done

crd_t0=$SECONDS
pending=("${crds[@]}")
while ((${#pending[@]})); do
  left=()
  for n in "${pending[@]}"; do
    kc -f "$api/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$n" | python3 -c '
import json, sys
c = json.load(sys.stdin).get("status", {}).get("conditions", [])
sys.exit(0 if any(x["type"] == "Established" and x["status"] == "True" for x in c) else 1)' ||
      left+=("$n")
  done
  pending=("${left[@]}")
  ((${#pending[@]})) || break
  ((SECONDS - crd_t0 < CRD_TIMEOUT)) || { log "not Established after ${CRD_TIMEOUT}s: ${pending[*]}"; exit 1; }
  sleep 0.2
done
log "${#crds[@]} Gateway API CRDs Established after $((SECONDS - crd_t0))s"

# The new API group is served: list (empty) HTTPRoutes in the namespace.
kc -f "$api/apis/gateway.networking.k8s.io/v1/namespaces/$ns/httproutes" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["kind"] == "HTTPRouteList", d["kind"]'
log "gateway.networking.k8s.io/v1 httproutes served"

log "OK: apiserver ready in ${ready_s}s, total $((SECONDS - start))s"
