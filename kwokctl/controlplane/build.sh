#!/usr/bin/env bash
# Builds the control-plane binaries from the Go wrapper modules next to this script
# (the pinned ones here; kwokctl writes a copy with generated wrappers for another
# Kubernetes version) into the kwok cache:
#   ${KWOK_CACHE_DIR:-~/.kwok/cache}/<component>/<version>/<component>
# A binary already in the cache is skipped. Usage: build.sh [component...]
# (default: all of etcd etcdctl etcdutl kube-apiserver kube-controller-manager
# kube-scheduler kubectl; kectl, jaeger, metrics-server, and kubelet and kube-proxy
# for shards/deploy/real-node/, are built only when named).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KWOK_CACHE_DIR:-$HOME/.kwok/cache}"
export CGO_ENABLED=0 GOTOOLCHAIN=local
# Two packages at a time keeps a cold Kubernetes build under ~8 GiB.
export GOFLAGS="${GOFLAGS:-} -p=2 -mod=readonly -trimpath"

modversion() { # <module dir> <module path>; nothing for a module not written (kwokctl
  # writes a generated version's wrapper only for the components it builds)
  [[ -f "$1/go.mod" ]] || return 0
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1/go.mod"
}

k8s_version="$(modversion "$here/kubernetes" k8s.io/kubernetes)"
etcd_version="$(modversion "$here/etcd" go.etcd.io/etcd/server/v3)"
jaeger_version="$(modversion "$here/jaeger" github.com/jaegertracing/jaeger)"
kectl_version="$(modversion "$here/kectl" github.com/kwok-ci/kectl)"
metrics_server_version="$(modversion "$here/metrics-server" sigs.k8s.io/metrics-server)"

version_of() {
  case "$1" in
    etcd | etcdctl | etcdutl) echo "$etcd_version" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubelet | kube-proxy)
      echo "$k8s_version" ;;
    jaeger) echo "$jaeger_version" ;;
    kectl) echo "$kectl_version" ;;
    metrics-server) echo "$metrics_server_version" ;;
    *) echo "build.sh: unknown component '$1'" >&2; exit 2 ;;
  esac
}

# k8s.io/kubernetes reports v0.0.0 unless its version variables are set at link time.
k8s_ldflags() {
  local v="${k8s_version#v}" major minor date
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local f
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "-s -w$f"
}

build_one() {
  local c="$1" version dir pkg moddir ldflags start
  version="$(version_of "$c")"
  [[ -n "$version" ]] || { echo "build.sh: no Go module for $c next to this script" >&2; exit 2; }
  dir="$cache/$c/$version"
  if [[ -x "$dir/$c" ]]; then
    echo "==> $c $version: cached at $dir/$c"
    return
  fi
  case "$c" in
    etcd) moddir="$here/etcd"; pkg=./cmd/etcd; ldflags="-s -w" ;;
    etcdctl) moddir="$here/etcd"; pkg=go.etcd.io/etcd/etcdctl/v3; ldflags="-s -w" ;;
    etcdutl) moddir="$here/etcd"; pkg=go.etcd.io/etcd/etcdutl/v3; ldflags="-s -w" ;;
    # Jaeger's own `version` output reads this (its Makefile sets it the same way).
    jaeger) moddir="$here/jaeger"; pkg=github.com/jaegertracing/jaeger/cmd/all-in-one
      ldflags="-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$jaeger_version" ;;
    kectl) moddir="$here/kectl"; pkg=github.com/kwok-ci/kectl/cmd/kectl; ldflags="-s -w" ;;
    # metrics-server's --version reads client-go's version variables (its Makefile sets them).
    metrics-server) moddir="$here/metrics-server"; pkg=sigs.k8s.io/metrics-server/cmd/metrics-server
      ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=$metrics_server_version" ;;
    *) moddir="$here/kubernetes"; pkg="k8s.io/kubernetes/cmd/$c"; ldflags="$(k8s_ldflags)" ;;
  esac
  start=$SECONDS
  echo "==> building $c $version (cold Kubernetes builds take tens of minutes on 2 cores)"
  mkdir -p "$dir"
  # Report elapsed time while the compiler is silent.
  ( while sleep 60; do echo "    ... $c still building, $((SECONDS - start))s elapsed"; done ) &
  local ticker=$!
  if ! (cd "$moddir" && go build -ldflags "$ldflags" -o "$dir/.$c.tmp" "$pkg"); then
    kill "$ticker" 2>/dev/null || true
    rm -f "$dir/.$c.tmp"
    echo "build.sh: building $c $version failed" >&2
    exit 1
  fi
  kill "$ticker" 2>/dev/null || true
  mv "$dir/.$c.tmp" "$dir/$c"
  echo "==> built $c $version in $((SECONDS - start))s -> $dir/$c"
}

components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=(etcd etcdctl etcdutl kube-apiserver kube-controller-manager kube-scheduler kubectl)
for c in "${components[@]}"; do build_one "$c"; done
