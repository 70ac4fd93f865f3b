#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries (kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl), etcd, kwok and helm from the Go module proxy into a cache
# outside the repository, keyed on the versions. A no-op when the cache is complete; after a
# failure a re-run builds only the binaries still missing. Go's module and build caches are
# private to the build and deleted afterwards (~4.8 GB). One build at a time (a lock file).
#
# usage: build.sh            progress on stderr; prints the bin directory on its last line
#        build.sh --check    exit 0 and print it if the cache is complete, else exit 1 (builds nothing)
# env:   STREAMFORGE_CACHE   cache root (default ~/.cache/streamforge)
set -euo pipefail

K8S_VERSION=1.36.3
ETCD_VERSION=3.6.17
KWOK_VERSION=0.8.0
HELM_VERSION=4.3.2

cache_root=${STREAMFORGE_CACHE:-$HOME/.cache/streamforge}
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
bin="$cache_root/kube/$key/bin"
partial="$bin.partial"
tools=(kube-apiserver kube-scheduler kube-controller-manager kubectl etcd kwok helm)

complete() { for t in "${tools[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi
if [ "${1:-}" = "--check" ]; then exit 1; fi

mkdir -p "$cache_root/kube/$key"
exec 9>"$cache_root/kube/$key/.lock"
flock 9  # another build of the same versions finishes first; then we find it complete
if complete; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the Kubernetes binaries" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/streamforge-kube-build.XXXXXX")
export GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOCACHE="$work/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$partial"
started=$(date +%s)
step() { echo "build.sh: $1 ($(( $(date +%s) - started )) s)" >&2; }
missing() { [ ! -x "$partial/$1" ]; }

# k8s.io/kubernetes is consumed as a module through a wrapper with one replace per staging
# module (its own go.mod replaces them with local paths, so `go install` refuses it).
k8s_cmds=()
for cmd in kube-apiserver kube-scheduler kube-controller-manager kubectl; do
  if missing "$cmd"; then k8s_cmds+=("$cmd"); fi
done
if [ ${#k8s_cmds[@]} -gt 0 ]; then
  staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
    kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
    mount-utils pod-security-admission sample-apiserver sample-controller streaming)
  staging_version="v0.${K8S_VERSION#1.}"  # 1.36.3 -> v0.36.3
  mkdir -p "$work/k8s" && cd "$work/k8s"
  {
    echo "module streamforge.local/k8s"; echo; echo "go 1.26.0"; echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"; echo
    for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging_version"; done
  } > go.mod
  {
    echo "//go:build tools"; echo; echo "package tools"; echo; echo "import ("
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
      echo "	_ \"k8s.io/kubernetes/cmd/$cmd\""
    done
    echo ")"
  } > tools.go
  step "resolving k8s.io/kubernetes v${K8S_VERSION}"
  go mod tidy >/dev/null
  # Without these the binaries report v0.0.0-master (and clients warn about version skew).
  IFS=. read -r k8s_major k8s_minor _ <<<"$K8S_VERSION"
  ldflags="-s -w"
  ldflags+=" -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=${k8s_major}"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=${k8s_minor}"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v${K8S_VERSION}"
  for cmd in "${k8s_cmds[@]}"; do
    step "building $cmd"
    go build -trimpath -ldflags "$ldflags" -o "$partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
fi

if missing etcd; then
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
  go build -trimpath -ldflags "-s -w" -o "$partial/etcd" .
fi

if missing kwok; then
  step "building kwok v${KWOK_VERSION}"
  GOBIN="$partial" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}"
fi
if missing helm; then
  step "building helm v${HELM_VERSION}"
  GOBIN="$partial" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}" \
    "helm.sh/helm/v4/cmd/helm@v${HELM_VERSION}"
fi

rm -rf "$bin" && mv "$partial" "$bin"
step "done: $bin"
echo "$bin"
