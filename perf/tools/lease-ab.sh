#!/usr/bin/env bash
# What a choice in how kwok renews its Leases costs the control plane (issue 27): one
# kwokctl cluster, NODES idle nodes held by one `kwok` (40 s Leases, a PUT per node
# every 10 s), restarted with the same --id (so it resumes its Leases at once) in
# alternating phases of the two sides of COMPARE:
#   encoding  `--node-lease-encoding json` against `protobuf` (the wire-encoding lever)
#   auth      kwok's client certificate (`cert`) against its bearer token (`token`,
#             kwokctl's `--kwok-auth`)
#   managed-fields  `--node-lease-managed-fields keep` against `strip` (the apiserver
#             tracks managedFields on every renewal of a Lease that has some); each
#             `keep` phase starts by deleting the Leases, so kwok makes them anew with the
#             managedFields a create records
# Every other flag is at kwok's default (protobuf renewals, managedFields stripped);
# before 2026-12-07 18:10 UTC the tool ran the encoding and auth phases with `keep`.
# Each phase settles SETTLE seconds, then measures MEASURE seconds: the CPU of
# kube-apiserver, etcd and kwok from /proc, and the renewals from kwok's /metrics (PUTs
# answered 200) and the apiserver's (`apiserver_request_total` PUT leases). Alternating
# (A, B, A, B, ...) lets drift show as a difference between the repeats. Only a summary
# is kept: perf/results/<date>-lease-encoding/ or <date>-kwok-auth/summary.md.
#
#   perf/tools/lease-ab.sh [--compare encoding|auth|managed-fields] [--nodes 5000] [--rounds 2]
#       [--settle 30] [--measure 120] [--bin target/dist] [--keep]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMPARE=encoding NODES=5000 ROUNDS=2 SETTLE=30 MEASURE=120 BIN="$ROOT/target/dist" KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --compare) COMPARE=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --measure) MEASURE=$2; shift 2 ;;
    --bin) BIN=$(cd "$2" && pwd); shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "lease-ab: unknown argument $1" >&2; exit 2 ;;
  esac
done
for b in kwok kwokctl; do
  [[ -x "$BIN/$b" ]] || { echo "lease-ab: $BIN/$b is missing (cargo build --profile dist -p kwok-shards -p kwokctl)" >&2; exit 2; }
done
case "$COMPARE" in
  encoding) PHASES=(json protobuf) AUTH=cert RESULTS=lease-encoding TITLE="Lease renewal encoding, json against protobuf" ;;
  auth) PHASES=(cert token) AUTH=token RESULTS=kwok-auth TITLE="kwok's Lease renewals with a client certificate against a bearer token" ;;
  managed-fields) PHASES=(keep strip) AUTH=cert RESULTS=lease-managed-fields TITLE="Lease renewals keeping the Leases' managedFields against clearing them" ;;
  *) echo "lease-ab: --compare $COMPARE: must be encoding, auth or managed-fields" >&2; exit 2 ;;
esac
(( NODES <= 62500 )) || { echo "lease-ab: --nodes at most 62500 (one /24 podCIDR each)" >&2; exit 2; }

NAME=leaseab ID=kwok-leaseab
WORK=$(mktemp -d /tmp/kwok-leaseab-XXXXXX)
export KWOK_WORKDIR="$WORK/kwok" KUBECONFIG="$WORK/kubeconfig"
export KWOK_CACHE_DIR="${KWOK_CACHE_DIR:-$HOME/.kwok/cache}"
unset KWOK_NAME
CDIR="$KWOK_WORKDIR/clusters/$NAME"
OUT="$ROOT/perf/results/$(date -u +%Y-%m-%d)-$RESULTS"
mkdir -p "$WORK/logs" "$OUT"
KWOK_PID="" PORT=""

log() { printf '%s %s\n' "$(date -u +%T)" "$*" >&2; }
kubectl() { "$BIN/kwokctl" --name "$NAME" kubectl "$@"; }

cleanup() {
  [[ -n "$KWOK_PID" ]] && kill -KILL "$KWOK_PID" 2>/dev/null || true
  "$BIN/kwokctl" delete cluster --name "$NAME" >/dev/null 2>&1 || true
  if (( KEEP )); then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# utime + stime of a process, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Starts kwok for phase $1 (stopping the one before) and waits until ready: the phase
# names its Lease encoding, its credential (`cert`: a copy of kwok's kubeconfig with
# its client certificate in place of the token kwokctl gave it), or what it does with
# the Leases' managedFields.
start_kwok() {
  if [[ -n "$KWOK_PID" ]]; then kill -TERM "$KWOK_PID"; wait "$KWOK_PID" 2>/dev/null || true; fi
  PORT=$(free_port)
  # kwok's defaults but for what the phase compares.
  local kubeconfig="$CDIR/kubeconfigs/kwok-controller.yaml" encoding=protobuf managed=strip
  case "$1" in
    json|protobuf) encoding=$1 ;;
    strip) managed=strip ;;
    keep) managed=keep
      kubectl delete --raw /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases >/dev/null ;;
    cert) kubeconfig="$WORK/kwok-cert.yaml"
      sed -E "s|^( *)token: .*|\1client-certificate: $CDIR/pki/kwok-controller.crt\n\1client-key: $CDIR/pki/kwok-controller.key|" \
        "$CDIR/kubeconfigs/kwok-controller.yaml" >"$kubeconfig"
      grep -q client-certificate "$kubeconfig" || { echo "lease-ab: kwok's kubeconfig has no token to replace" >&2; exit 1; } ;;
  esac
  "$BIN/kwok" --kubeconfig="$kubeconfig" \
    --server-address="127.0.0.1:$PORT" --id="$ID" --manage-all-nodes=true \
    --node-lease-duration-seconds=40 --node-lease-encoding="$encoding" \
    --node-lease-managed-fields="$managed" >>"$WORK/logs/kwok-$1.log" 2>&1 &
  KWOK_PID=$!
  for _ in $(seq 300); do
    [[ "$(curl -s "http://127.0.0.1:$PORT/readyz" || true)" == ok ]] && return
    kill -0 "$KWOK_PID" 2>/dev/null || { echo "kwok exited; see $WORK/logs/kwok-$1.log" >&2; tail -5 "$WORK/logs/kwok-$1.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "kwok not ready after 60 s" >&2; exit 1
}

# Lease PUTs kwok saw answered 200, and that the apiserver counted.
kwok_puts() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^kwok_apiserver_requests_total\{/ && /verb="put"/ && /code="200"/ { s += $NF } END { print s + 0 }'
}
apiserver_puts() {
  kubectl get --raw /metrics | awk '/^apiserver_request_total\{/ && /resource="leases"/ && /verb="PUT"/ { s += $NF } END { print s + 0 }'
}
# Leases whose renewTime is older than their duration now (expired).
expired() {
  kubectl -n kube-node-lease get leases -o 'jsonpath={range .items[*]}{.spec.renewTime} {.spec.leaseDurationSeconds}{"\n"}{end}' \
    | python3 -c 'import sys, datetime as d
now = d.datetime.now(d.timezone.utc); n = 0
for line in sys.stdin:
    t, s = line.split()
    n += (now - d.datetime.fromisoformat(t.replace("Z", "+00:00"))).total_seconds() > int(s)
print(n)'
}

log "cluster in $WORK"
"$BIN/kwokctl" create cluster --name "$NAME" --disable-qps-limits --kwok-auth "$AUTH" >"$WORK/logs/create.log" 2>&1
kill -KILL "$(cat "$CDIR/pids/kwok-controller.pid")"   # the kwok started below drives the nodes
APISERVER=$(cat "$CDIR/pids/kube-apiserver.pid") ETCD=$(cat "$CDIR/pids/etcd.pid")
start_kwok "${PHASES[0]}"
for ((i = 0; i < NODES; i++)); do
  printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: ab-%d\n  annotations: {kwok.x-k8s.io/node: fake}\nspec:\n  podCIDR: 10.%d.%d.0/24\n---\n' \
    "$i" $(( 10 + i / 250 )) $(( i % 250 ))
done | kubectl create -f - >/dev/null
for _ in $(seq 120); do
  ready=$(kubectl get nodes -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
  (( ready == NODES )) && break
  sleep 5
done
(( ready == NODES )) || { echo "only $ready/$NODES nodes Ready" >&2; exit 1; }
log "$NODES nodes Ready"

HZ=$(getconf CLK_TCK)
ROWS=""
for ((r = 1; r <= ROUNDS; r++)); do
  for enc in "${PHASES[@]}"; do
    start_kwok "$enc"
    sleep "$SETTLE"
    a0=$(ticks "$APISERVER") e0=$(ticks "$ETCD") k0=$(ticks "$KWOK_PID") p0=$(kwok_puts) s0=$(apiserver_puts)
    sleep "$MEASURE"
    a1=$(ticks "$APISERVER") e1=$(ticks "$ETCD") k1=$(ticks "$KWOK_PID") p1=$(kwok_puts) s1=$(apiserver_puts)
    x=$(expired)
    row=$(python3 -c "
hz, m = $HZ, $MEASURE
puts, seen = $p1 - $p0, $s1 - $s0
ms = lambda t: 1000.0 * t / hz / max(puts, 1)
print(f'| $r | $enc | {puts} | {seen} | {puts / m:.0f} | {ms($a1 - $a0):.3f} | {ms($e1 - $e0):.3f} | {ms($k1 - $k0):.3f} | {($a1 - $a0) / hz / m:.2f} | $x |')")
    log "$row"
    ROWS+="$row"$'\n'
  done
done

{
  echo "# $TITLE — $(date -u +%Y-%m-%d)"
  echo
  echo "\`perf/tools/lease-ab.sh --compare $COMPARE --nodes $NODES --rounds $ROUNDS --settle $SETTLE --measure $MEASURE\`:"
  echo "one kwokctl cluster (\`--disable-qps-limits\`), $NODES idle nodes with 40 s Leases held by one"
  echo "\`kwok --id=$ID\` (commit $(git -C "$ROOT" rev-parse --short HEAD), \`$BIN/kwok\`), restarted for each"
  echo "phase as the second column says (\`--node-lease-encoding\`, kwok's credential, or \`--node-lease-managed-fields\`;"
  echo "the others at kwok's defaults, protobuf and strip); ${SETTLE} s to settle, then ${MEASURE} s measured."
  echo "$(nproc) cores, $("$BIN/kwokctl" --version 2>/dev/null | head -1)."
  echo
  echo "| round | $COMPARE | PUTs (kwok, 200) | PUTs (apiserver) | PUTs/s | kube-apiserver CPU ms / PUT | etcd CPU ms / PUT | kwok CPU ms / PUT | kube-apiserver cores | leases expired at the end |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "$ROWS"
} > "$OUT/summary.md"
log "wrote $OUT/summary.md"
cat "$OUT/summary.md"
