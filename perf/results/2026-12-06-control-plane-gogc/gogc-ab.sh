#!/bin/bash
# Ad hoc: control-plane CPU per Lease PUT with the Go components' GOGC at given values.
set -euo pipefail
BIN=/work/main/target/dist
NAME=gogcab NODES=${NODES:-5000} SETTLE=${SETTLE:-40} MEASURE=${MEASURE:-120}
PHASES=(${PHASES:-100 400 100 400})
WORK=/tmp/prof/gogc; rm -rf $WORK; mkdir -p $WORK
export KWOK_WORKDIR="$WORK/kwok" KUBECONFIG="$WORK/kubeconfig" KWOK_CACHE_DIR=$HOME/.kwok/cache
unset KWOK_NAME GOGC
CDIR="$KWOK_WORKDIR/clusters/$NAME"
kubectl() { "$BIN/kwokctl" --name "$NAME" kubectl "$@"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
puts() { kubectl get --raw /metrics | awk '/^apiserver_request_total\{/ && /resource="leases"/ && /verb="PUT"/ { s += $NF } END { print s + 0 }'; }
$BIN/kwokctl create cluster --name $NAME --disable-qps-limits "$@" > $WORK/create.log 2>&1
trap '$BIN/kwokctl delete cluster --name $NAME >/dev/null 2>&1 || true' EXIT
for ((i = 0; i < NODES; i++)); do
  printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: ab-%d\n  annotations: {kwok.x-k8s.io/node: fake}\nspec:\n  podCIDR: 10.%d.%d.0/24\n---\n' \
    "$i" $(( 10 + i / 250 )) $(( i % 250 ))
done | kubectl create -f - >/dev/null
for _ in $(seq 120); do
  ready=$(kubectl get nodes -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
  (( ready == NODES )) && break
  sleep 5
done
echo "# $ready nodes Ready $(date -u +%T)"
HZ=$(getconf CLK_TCK)
echo "phase gogc puts puts/s apiserver_ms/put etcd_ms/put kcm_ms/put sched_ms/put apiserver_cores apiserver_rss_mib"
for g in "${PHASES[@]}"; do
  $BIN/kwokctl stop cluster --name $NAME >/dev/null 2>&1
  GOGC=$g $BIN/kwokctl start cluster --name $NAME >/dev/null 2>&1
  sleep "$SETTLE"
  declare -A P T
  for c in kube-apiserver etcd kube-controller-manager kube-scheduler; do P[$c]=$(cat $CDIR/pids/$c.pid); T[$c]=$(ticks ${P[$c]}); done
  p0=$(puts); sleep "$MEASURE"; p1=$(puts)
  n=$((p1 - p0))
  row="$g $n $(python3 -c "print(round($n/$MEASURE))")"
  for c in kube-apiserver etcd kube-controller-manager kube-scheduler; do
    d=$(( $(ticks ${P[$c]}) - ${T[$c]} ))
    row="$row $(python3 -c "print(round($d*1000/$HZ/max($n,1),3))")"
  done
  d=$(( $(ticks ${P[kube-apiserver]}) - ${T[kube-apiserver]} ))
  row="$row $(python3 -c "print(round($d/$HZ/$MEASURE,2))") $(rss ${P[kube-apiserver]})"
  echo "$(date -u +%T) $row"
  grep -c . /dev/null >/dev/null || true
  tr '\0' '\n' < /proc/${P[kube-apiserver]}/environ | grep '^GOGC=' || echo "GOGC unset"
done
