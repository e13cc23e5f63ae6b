#!/usr/bin/env bash
# Upstream KWOK v0.8.0's kwok, started with kwokctl's arguments minus the two v0.8 does
# not have ("unknown flag"): --client-ca-file (it then serves HTTPS without asking for
# client certificates) and --id (the lease holder's name; v0.8 picks its own). perf's `metrics` scenario runs upstream
# through this (perf metrics --upstream-kwok perf/tools/kwok-v0.8-wrapper.sh).
set -euo pipefail
real="${KWOK_CACHE_DIR:-$HOME/.kwok/cache}/kwok-upstream/v0.8.0/kwok"
args=()
skip=0
for a in "$@"; do
  if ((skip)); then skip=0; continue; fi
  case "$a" in
    --client-ca-file=* | --id=*) ;;
    --client-ca-file | --id) skip=1 ;;
    *) args+=("$a") ;;
  esac
done
exec "$real" "${args[@]}"
