#!/usr/bin/env bash
# The KWOK user session, timed: a fresh kwokctl cluster (dist builds under
# target/dist, or KWOK_BIN), 5,000 fake nodes until all Ready, then 10,000 pods until
# all Running; prints the times and the kwok controller's peak RSS, then deletes the cluster.
set -euo pipefail
B=${KWOK_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/dist}
export KWOK_WORKDIR=$(mktemp -d /tmp/kwok-scale-XXXX)
export KWOK_CACHE_DIR=$HOME/.kwok/cache
K="$B/kwokctl --name scale"
$K create cluster --disable-qps-limits >/dev/null
ready() { $K kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l; }
running() { $K kubectl get pods -A --no-headers --field-selector=status.phase=Running 2>/dev/null | wc -l; }
t0=$(date +%s.%N)
$K scale node --replicas 5000 >/dev/null 2>&1
t1=$(date +%s.%N)
while [ "$(ready)" -lt 5000 ]; do sleep 1; done
t2=$(date +%s.%N)
$K scale pod --replicas 10000 >/dev/null 2>&1
t3=$(date +%s.%N)
while [ "$(running)" -lt 10000 ]; do sleep 2; done
t4=$(date +%s.%N)
python3 -c "
t0,t1,t2,t3,t4=$t0,$t1,$t2,$t3,$t4
print(f'5000 nodes: created in {t1-t0:.1f}s, all Ready after {t2-t0:.1f}s')
print(f'10000 pods: created in {t3-t2:.1f}s, all Running after {t4-t2:.1f}s')"
kwok_pid=$($K get components 2>/dev/null | awk '/kwok-controller/{print $2}')
grep -E "VmHWM|VmRSS" /proc/$kwok_pid/status || true
$K delete cluster >/dev/null
rm -rf "$KWOK_WORKDIR"
