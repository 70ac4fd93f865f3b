#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries (kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl), etcd, kwok and helm from the Go module proxy into a cache
# outside the repository, keyed on the versions. A no-op when the cache is complete.
# Go's module and build caches are private to the build and deleted afterwards (~4.8 GB).
#
# usage: build.sh            prints the bin directory on its last line
# env:   STREAMFORGE_CACHE   cache root (default ~/.cache/streamforge)
set -euo pipefail

K8S_VERSION=1.36.3
ETCD_VERSION=3.6.17
KWOK_VERSION=0.8.0
HELM_VERSION=4.3.2

cache_root=${STREAMFORGE_CACHE:-$HOME/.cache/streamforge}
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
bin="$cache_root/kube/$key/bin"
tools=(kube-apiserver kube-scheduler kube-controller-manager kubectl etcd kwok helm)

complete() { for t in "${tools[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the Kubernetes binaries" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/streamforge-kube-build.XXXXXX")
export GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOCACHE="$work/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$bin.partial"
started=$(date +%s)
step() { echo "build.sh: $1 ($(( $(date +%s) - started )) s)" >&2; }

# k8s.io/kubernetes is consumed as a module through a wrapper with one replace per staging module.
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-controller streaming)
mkdir -p "$work/k8s" && cd "$work/k8s"
{
  echo "module streamforge.local/k8s"; echo; echo "go 1.26.0"; echo
  echo "require k8s.io/kubernetes v${K8S_VERSION}"; echo
  for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m v0.${K8S_VERSION#1.}"; done
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
step "resolving k8s.io/kubernetes v${K8S_VERSION}"
go mod tidy -e >/dev/null 2>&1 || go mod tidy
ver="-X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#1.}"
ver="${ver%.*}"  # gitMinor is the minor number only
ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=v${K8S_VERSION}"
for cmd in kube-apiserver kube-scheduler kube-controller-manager kubectl; do
  step "building $cmd"
  go build -trimpath -ldflags "-s -w $ver" -o "$bin.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done

mkdir -p "$work/etcd" && cd "$work/etcd"
cat > go.mod <<GOMOD
module streamforge.local/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v${ETCD_VERSION}
)
GOMOD
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
GO
cat > main.go <<'GO'
// etcd's own main package lives in the repository root, which is not a module of its own;
// etcdmain.Main is what it calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
step "building etcd v${ETCD_VERSION}"
go mod tidy >/dev/null
go build -trimpath -ldflags "-s -w" -o "$bin.partial/etcd" .

step "building kwok v${KWOK_VERSION}"
GOBIN="$bin.partial" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}"
step "building helm v${HELM_VERSION}"
GOBIN="$bin.partial" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}" "helm.sh/helm/v4/cmd/helm@v${HELM_VERSION}"

rm -rf "$bin" && mv "$bin.partial" "$bin"
step "done: $bin"
echo "$bin"
