#!/usr/bin/env bash
# Where kwok's CPU goes: runs a `small`-shaped loadgen scenario against a throw-away
# kwokctl cluster whose kwok is sampled by `perf record -g`, and writes to OUT:
# perf.data, loadgen's JSON report, kwok's RSS every 0.5 s (rss.txt: unix time, VmRSS,
# RssAnon, RssFile in kB) and t0 (unix time loadgen started).
#
# usage: perf/tools/cpu-profile.sh OUT [loadgen flags...]
#   default flags: --nodes 1000 --pods 10000 --namespaces 10 --rate 2000 --concurrency 512
# env: KWOK (default target-prof/dist/kwok: build it with frame pointers, see
#      perf/README.md), KWOKCTL, LOADGEN (default target/dist/...), STAGES.
set -euo pipefail
out=${1:?usage: cpu-profile.sh OUT [loadgen flags...]}
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
KWOK=${KWOK:-$root/target-prof/dist/kwok}
KWOKCTL=${KWOKCTL:-$target/dist/kwokctl}
LOADGEN=${LOADGEN:-$target/dist/loadgen}
STAGES=${STAGES:-$root/perf/results/2026-11-27-small/stages.yaml}
for bin in "$KWOK" "$KWOKCTL" "$LOADGEN"; do
  [ -x "$bin" ] || { echo "cpu-profile.sh: $bin is missing (build it first)" >&2; exit 1; }
done
command -v perf >/dev/null || { echo "cpu-profile.sh: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
[ $# -gt 0 ] || set -- --nodes 1000 --pods 10000 --namespaces 10 --rate 2000 --concurrency 512

mkdir -p "$out"
out=$(cd "$out" && pwd)
export KWOK_WORKDIR="$out/workdir" KUBECONFIG="$out/kubeconfig"
name=cpu-profile
cleanup() { "$KWOKCTL" --name "$name" delete cluster >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
"$KWOKCTL" --name "$name" create cluster --disable-qps-limits \
  --kwok-controller-binary "$KWOK" --kwok-controller-config "$STAGES"
pid=$(cat "$KWOK_WORKDIR/clusters/$name/pids/kwok-controller.pid")
perf record -F 997 -g -k CLOCK_MONOTONIC -p "$pid" -o "$out/perf.data" 2>"$out/perf-record.log" &
perf_pid=$!
(
  while kill -0 "$pid" 2>/dev/null; do
    echo "$(date +%s.%N) $(grep -E 'VmRSS|RssAnon|RssFile' "/proc/$pid/status" | awk '{printf "%s ", $2}')"
    sleep 0.5
  done
) >"$out/rss.txt" &
sleep 1
date +%s.%N >"$out/t0"
"$LOADGEN" --kubeconfig "$KWOK_WORKDIR/clusters/$name/kubeconfig.yaml" "$@" -o json >"$out/report.json"
kill -INT "$perf_pid" 2>/dev/null || true
wait "$perf_pid" || true
grep -E "VmHWM|RssAnon|RssFile" "/proc/$pid/status"
echo "cpu-profile.sh: wrote $out (split the samples with perf/tools/fold-stacks.py)"
