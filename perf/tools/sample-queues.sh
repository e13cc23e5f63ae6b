#!/usr/bin/env bash
# Where a `perf` run's writes wait: kwok's queues and the apiserver's, every 10 s.
#
#   perf/tools/sample-queues.sh record OUT [SIDE]
#     Run beside `perf <scenario>`: waits for SIDE's cluster (default `ours`: `perf-ours`,
#     the newest under /tmp/kwok-perf-*), then every 10 s until it is deleted saves
#     kube-apiserver's API Priority and Fairness gauges and counters and its request
#     durations for pods and leases (OUT/api-<unix s>.txt), and kwok's own /metrics
#     (OUT/kwok-<unix s>.txt; read with the cluster's admin certificate, as both are).
#   perf/tools/sample-queues.sh digest OUT
#     One line per interval: kwok's leases held, lease pressure (0 calm, 1 behind,
#     2 at risk), renewal slots, lease queue, worst lateness (s), stage writes queued
#     and out; kwok's requests/s and mean seconds per request; the apiserver's APF wait
#     and execution (ms) and queued requests for kwok's flow schema; and the rate and
#     mean duration (ms) of PATCH pods/status and PUT leases as the apiserver served them.
set -euo pipefail

record() {
  local out=${1:?usage: sample-queues.sh record OUT [SIDE]} side=${2:-ours}
  mkdir -p "$out"
  local kc
  until kc=$(ls -t /tmp/kwok-perf-*/kwok/clusters/perf-"$side"/kubeconfig.yaml 2>/dev/null | head -1) && [ -n "$kc" ]; do
    sleep 1
  done
  local dir server cert key
  dir=$(dirname "$kc")
  server=$(awk '$1 == "server:" { print $2; exit }' "$kc")
  cert=$dir/pki/admin.crt key=$dir/pki/admin.key
  until curl -sfk --cert "$cert" --key "$key" "$server/readyz" >/dev/null 2>&1; do sleep 1; done
  echo "$(date +%T) $side: sampling $server every 10 s into $out"
  local names='apiserver_flowcontrol_(request_wait_duration_seconds_(sum|count)|current_inqueue_requests|current_executing_seats|request_execution_seconds_(sum|count)|current_limit_seats)'
  names+='|apiserver_request_duration_seconds_(sum|count)\{[^}]*(pods|leases)'
  local ts pid addr
  while [ -e "$kc" ]; do
    ts=$(date +%s)
    curl -sfk --max-time 8 --cert "$cert" --key "$key" "$server/metrics" 2>/dev/null |
      grep -E "^($names)" >"$out/api-$ts.txt" || true
    # The kwok of this cluster: kwokctl gives it its own kubeconfig.
    pid=$(pgrep -f -- "--kubeconfig=$dir/kubeconfigs/kwok-controller" | head -1 || true)
    if [ -n "$pid" ]; then
      addr=$(tr '\0' '\n' </proc/"$pid"/cmdline | sed -n 's/^--server-address=//p')
      curl -sk --max-time 5 --cert "$cert" --key "$key" "https://$addr/metrics" >"$out/kwok-$ts.txt" 2>/dev/null || true
    fi
    sleep 10
  done
  echo "$(date +%T) $side: cluster gone"
}

digest() {
  python3 - "${1:?usage: sample-queues.sh digest OUT}" <<'EOF'
import glob, re, sys

def load(folder, prefix):
    samples = {}
    for path in glob.glob(f"{folder}/{prefix}-*.txt"):
        values = {}
        for line in open(path):
            if line.startswith("#") or not line.strip():
                continue
            key, _, value = line.rpartition(" ")
            try:
                values[key] = float(value)
            except ValueError:
                pass
        samples[int(re.search(r"-(\d+)\.txt$", path).group(1))] = values
    return samples

def total(values, pattern):
    return sum(v for k, v in values.items() if re.search(pattern, k))

api, kwok = load(sys.argv[1], "api"), load(sys.argv[1], "kwok")
flow = r'flow_schema="kwokctl-kwok-controller"'
patch_pods = r'resource="pods".*subresource="status".*verb="PATCH"'
put_leases = r'resource="leases".*verb="PUT"'
print("time     held press slots leaseq latemax writes | kwok req/s ms/req | apf wait ms exec ms queued"
      " | PATCH pods/status /s ms | PUT leases /s ms")
previous = None
for t in sorted(set(api) & set(kwok)):
    a, k = api[t], kwok[t]
    if previous:
        pa, pk, pt = previous
        dt = t - pt
        def rate(m, pm, count, total_=None):
            n = total(m, count) - total(pm, count)
            s = total(m, total_) - total(pm, total_) if total_ else 0
            return n, 1000 * s / n if n else 0.0
        kn, kms = rate(k, pk, r"^kwok_apiserver_request_seconds_count", r"^kwok_apiserver_request_seconds_sum")
        _, wait = rate(a, pa, rf"request_wait_duration_seconds_count.*{flow}", rf"request_wait_duration_seconds_sum.*{flow}")
        _, exe = rate(a, pa, rf"request_execution_seconds_count.*{flow}.*regular", rf"request_execution_seconds_sum.*{flow}.*regular")
        pn, pms = rate(a, pa, rf"request_duration_seconds_count\{{.*{patch_pods}", rf"request_duration_seconds_sum\{{.*{patch_pods}")
        ln, lms = rate(a, pa, rf"request_duration_seconds_count\{{.*{put_leases}", rf"request_duration_seconds_sum\{{.*{put_leases}")
        print(f"{t % 100000:5d} {total(k, r'^kwok_leases_held'):7.0f} {total(k, r'^kwok_lease_pressure'):5.0f}"
              f" {total(k, r'^kwok_lease_slots'):5.0f} {total(k, r'^kwok_lease_queue_depth'):6.0f}"
              f" {total(k, r'^kwok_lease_renewal_lateness_max'):7.1f} {total(k, r'^kwok_batcher_queue_depth'):6.0f}"
              f" | {kn / dt:10.0f} {kms:6.1f} | {wait:11.1f} {exe:7.1f} {total(a, rf'current_inqueue_requests.*{flow}'):6.0f}"
              f" | {pn / dt:20.0f} {pms:5.1f} | {ln / dt:13.0f} {lms:5.1f}")
    previous = (a, k, t)
EOF
}

case ${1:-} in
  record) shift; record "$@" ;;
  digest) shift; digest "$@" ;;
  *) echo "usage: sample-queues.sh record OUT [SIDE] | digest OUT" >&2; exit 2 ;;
esac
