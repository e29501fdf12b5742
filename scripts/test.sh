#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests through the real binary (real
# sockets, real TLS, in-process origins), and `sluice check` on every example config.
# Needs the Rust toolchain and `ss` (iproute2, present on any Linux); the clients the
# forward-proxy tests drive (curl, PHP curl, Python requests) are installed by
# scripts/test-deps.sh if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
# The Kubernetes tests run a real kube-apiserver and etcd, built from their Go modules
# (about 10 minutes the first time on 2 cores, then cached in ~/.cache/sluice).
scripts/k8s-testbin.sh >/dev/null
# One build of every target with the feature set the tests unify: the test run, the
# benches' build and the CI scenarios then reuse it (a `-p sluice` build resolves
# features differently and recompiled a quarter of the tree).
cargo build --workspace --all-targets --locked
for f in examples/*.yaml; do
  target/debug/sluice check --config "$f"
done
# The Helm chart: lint, the rendered deploy/manifests/ current, its configs valid.
scripts/helm-check.sh
cargo test --workspace --locked "$@"
