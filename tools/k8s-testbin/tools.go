//go:build tools

// Package tools pins the upstream commands that scripts/k8s-testbin.sh builds
// straight from the module cache (go build k8s.io/kubernetes/cmd/kube-apiserver,
// go build helm.sh/helm/v4/cmd/helm), so that go mod tidy keeps their
// dependencies in go.mod/go.sum.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
