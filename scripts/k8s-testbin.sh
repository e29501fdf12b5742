#!/usr/bin/env bash
# Build (once, cached) a real kube-apiserver, etcd and helm from Go modules,
# plus the Gateway API standard CRDs, for sluice's Kubernetes tests.
#
#   scripts/k8s-testbin.sh            # builds if needed; last stdout line = dir
#   dir=$(scripts/k8s-testbin.sh | tail -n1)
#
# Output: ${SLUICE_K8S_CACHE:-$HOME/.cache/sluice/k8s-testbin}/<key>/ holding
# kube-apiserver, etcd, helm and gateway-crds/*.yaml. <key> is a sha256 over
# this script, tools/k8s-testbin's go.mod, go.sum and *.go files, and the
# Go version, so a bump of any of them rebuilds into a new directory.
#
# Needs only go (1.26.x) and the Go module proxy. Progress goes to stderr.
set -euo pipefail

GATEWAY_API_VERSION=v1.6.3   # v1.7.0 needs a newer Go than 1.26
HELM_VERSION=v4.3.1          # keep in step with tools/k8s-testbin/go.mod
K8S_VERSION=v1.37.2          # keep in step with tools/k8s-testbin/go.mod

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod="$root/tools/k8s-testbin"
cache="${SLUICE_K8S_CACHE:-$HOME/.cache/sluice/k8s-testbin}"
start=$SECONDS

log() { printf '[k8s-testbin %4ss] %s\n' "$((SECONDS - start))" "$*" >&2; }

command -v go >/dev/null || { log "go not found on PATH"; exit 1; }
goversion=$(go env GOVERSION)

key=$(
  {
    printf 'go=%s\n' "$goversion"
    sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
    (cd "$mod" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-16
)
out="$cache/$key"

have_all() {
  local d=$1
  [[ -x $d/kube-apiserver && -x $d/etcd && -x $d/helm ]] &&
    compgen -G "$d/gateway-crds/*.yaml" >/dev/null
}

if have_all "$out"; then
  log "cached: $out"
  printf '%s\n' "$out"
  exit 0
fi

log "building into $out ($goversion, kubernetes $K8S_VERSION, helm $HELM_VERSION, gateway-api $GATEWAY_API_VERSION)"
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build-$key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

build() { # name pkg [extra ldflags...]
  local name=$1 pkg=$2 t=$SECONDS
  shift 2
  log "go build $name ($pkg)"
  (cd "$mod" && go build -p 2 -trimpath -ldflags="-s -w $*" -o "$tmp/$name" "$pkg")
  log "built $name in $((SECONDS - t))s ($(du -h "$tmp/$name" | cut -f1))"
}

t=$SECONDS
log "go mod download (module cache: $(go env GOMODCACHE))"
(cd "$mod" && go mod download)
log "modules ready in $((SECONDS - t))s"

kv=k8s.io/component-base/version
cv=k8s.io/client-go/pkg/version
k8s_minor=${K8S_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ld=""
for p in $kv $cv; do
  k8s_ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor -X $p.gitTreeState=clean"
done

build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ld"
build helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

t=$SECONDS
log "gateway-api $GATEWAY_API_VERSION CRDs"
gwdir=$(cd "$tmp" && GOFLAGS= go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[[ -d $gwdir/config/crd/standard ]] || { log "no config/crd/standard in '$gwdir'"; exit 1; }
mkdir -p "$tmp/gateway-crds"
cp "$gwdir"/config/crd/standard/*.yaml "$tmp/gateway-crds/"
chmod u+w "$tmp/gateway-crds"/*.yaml
log "copied $(ls "$tmp/gateway-crds" | wc -l) CRD files in $((SECONDS - t))s"

"$tmp/etcd" --version >/dev/null
"$tmp/kube-apiserver" --version >&2
"$tmp/helm" version --short >&2

# Publish atomically: a concurrent or interrupted run never leaves a half dir.
chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "done in $((SECONDS - start))s: $(du -sh "$out" | cut -f1)"
printf '%s\n' "$out"
