#!/usr/bin/env bash
# Builds upstream KWOK's controller (sigs.k8s.io/kwok/cmd/kwok, version pinned in
# go.mod next to this script) into the kwok cache for the side-by-side benchmark:
#   ${KWOK_CACHE_DIR:-~/.kwok/cache}/kwok-upstream/<version>/kwok
# A binary already in the cache is skipped. A cold build takes many minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KWOK_CACHE_DIR:-$HOME/.kwok/cache}"
export CGO_ENABLED=0 GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:-} -p=2 -mod=readonly -trimpath"

version="$(awk '$1 == "require" && $2 == "sigs.k8s.io/kwok" { print $3; exit }' "$here/go.mod")"
[[ -n "$version" ]] || { echo "build.sh: no sigs.k8s.io/kwok requirement in $here/go.mod" >&2; exit 2; }
dir="$cache/kwok-upstream/$version"
if [[ -x "$dir/kwok" ]]; then
  echo "==> upstream kwok $version: cached at $dir/kwok"
  exit 0
fi
mkdir -p "$dir"
start=$SECONDS
echo "==> building upstream kwok $version"
( while sleep 60; do echo "    ... still building, $((SECONDS - start))s elapsed"; done ) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
# Upstream stamps its version through these variables.
ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$version"
if ! (cd "$here" && go build -ldflags "$ldflags" -o "$dir/.kwok.tmp" sigs.k8s.io/kwok/cmd/kwok); then
  rm -f "$dir/.kwok.tmp"
  echo "build.sh: building upstream kwok $version failed" >&2
  exit 1
fi
mv "$dir/.kwok.tmp" "$dir/kwok"
echo "==> built upstream kwok $version in $((SECONDS - start))s -> $dir/kwok"
