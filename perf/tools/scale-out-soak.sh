#!/usr/bin/env bash
# Scale-out soak (issue 25): REPLICAS `kwok --scale-out` processes share NODES nodes of a
# kwokctl cluster whose apiserver writes an audit log (perf/audit-policy.yaml). Every
# minute one kwok is killed (SIGKILL) and one started: on odd minutes the killed --id
# again (it resumes its own Leases), on even minutes a new --id (the others take the
# killed one's nodes over, then deal a share to the new one). Pods are deleted and
# recreated every 15 s, node readiness is sampled every 5 s. At the end, `audit-check`
# reads the audit log for nodes driven by two kwoks at once, and pod IPs are checked
# for duplicates. Only a summary is kept: perf/results/<date>-scale-out-soak[-SUFFIX]/.
# The kwok killed is the one started longest ago, so each takes its turn.
#
# --stall-seconds S: every third minute, instead of a kill, the kwok started longest ago
# is stopped (SIGSTOP) for S seconds and then continued, as a kwok frozen by its machine
# would be: the others take its nodes over meanwhile, and the audit log shows whether it
# wrote for them when it woke.
#
#   perf/tools/scale-out-soak.sh [--minutes 30] [--nodes 300] [--pods 600]
#       [--replicas 3] [--churn 20] [--stall-seconds 0] [--ready-delay 20s]
#       [--no-pod-cidr] [--bin target/dist] [--suffix NAME] [--keep]
#
# --no-pod-cidr: the nodes have no podCIDR, so every pod takes its IP from kwok's
# --cidr, each kwok from the stripe of the IP slot it holds (as in kwokctl's clusters).
#
# --ready-delay D: pods become Running D after they are created (the pod-ready stage's
# delay annotation), so a kwok always has stage timers pending: a stopped one finds them
# overdue when it wakes. --keep keeps the work dir, with the cluster's logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MINUTES=30 NODES=300 PODS=600 REPLICAS=3 CHURN=20 STALL=0 READY_DELAY="" BIN="$ROOT/target/dist" SUFFIX="" KEEP=0 POD_CIDR=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --pods) PODS=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --churn) CHURN=$2; shift 2 ;;
    --stall-seconds) STALL=$2; shift 2 ;;
    --ready-delay) READY_DELAY=$2; shift 2 ;;
    --bin) BIN=$(cd "$2" && pwd); shift 2 ;;
    --suffix) SUFFIX="-$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-pod-cidr) POD_CIDR=0; shift ;;
    *) echo "scale-out-soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
for b in kwok kwokctl audit-check; do
  [[ -x "$BIN/$b" ]] || { echo "scale-out-soak: $BIN/$b is missing (cargo build -p kwok-shards -p kwokctl -p kwok-perf)" >&2; exit 2; }
done
(( NODES <= 62500 )) || { echo "scale-out-soak: --nodes at most 62500 (one /24 podCIDR each)" >&2; exit 2; }

NAME=soak
WORK=$(mktemp -d /tmp/kwok-soak-XXXXXX)
export KWOK_WORKDIR="$WORK/kwok" KUBECONFIG="$WORK/kubeconfig"
# The shared binary cache (kwokctl's default is inside KWOK_WORKDIR: it would fetch anew).
export KWOK_CACHE_DIR="${KWOK_CACHE_DIR:-$HOME/.kwok/cache}"
unset KWOK_NAME
CDIR="$KWOK_WORKDIR/clusters/$NAME"
mkdir -p "$WORK/logs"
EVENTS="$WORK/events.tsv"   # seconds-since-start  what  id
declare -A PID PORT          # id -> pid, port of the kwoks started here
ORDER=()                     # ids, the one started longest ago first
STALLERS=()                  # the background waits that continue stopped kwoks
START=$(date +%s)

log() { printf '%s %s\n' "$(date -u +%T)" "$*" >&2; }
event() { printf '%s\t%s\t%s\n' "$(( $(date +%s) - START ))" "$1" "$2" >> "$EVENTS"; log "$1 $2"; }
kubectl() { "$BIN/kwokctl" --name "$NAME" kubectl "$@"; }

cleanup() {
  for id in "${!PID[@]}"; do kill -KILL "${PID[$id]}" 2>/dev/null || true; done
  (( KEEP )) && [[ -d "$CDIR/logs" ]] && cp -r "$CDIR/logs" "$WORK/cluster-logs"
  "$BIN/kwokctl" delete cluster --name "$NAME" >/dev/null 2>&1 || true
  if (( KEEP )); then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts `kwok --scale-out --id=$1` and waits until it is ready.
start_kwok() {
  local id=$1 port; port=$(free_port)
  "$BIN/kwok" --kubeconfig="$CDIR/kubeconfigs/kwok-controller.yaml" \
    --server-address="127.0.0.1:$port" --id="$id" --scale-out >>"$WORK/logs/$id.log" 2>&1 &
  PID[$id]=$! PORT[$id]=$port
  ORDER+=("$id")
  for _ in $(seq 300); do
    [[ "$(curl -s "http://127.0.0.1:$port/readyz" || true)" == ok ]] && { event start "$id"; return; }
    kill -0 "${PID[$id]}" 2>/dev/null || { echo "kwok $id exited; see its log" >&2; tail -5 "$WORK/logs/$id.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "kwok $id not ready after 60 s" >&2; exit 1
}

kill_kwok() {
  local id=$1
  kill -KILL "${PID[$id]}" 2>/dev/null || true
  wait "${PID[$id]}" 2>/dev/null || true
  forget "$id"
  event kill "$id"
}

forget() {
  local id=$1 keep=() o
  unset "PID[$id]" "PORT[$id]"
  for o in "${ORDER[@]}"; do [[ $o == "$id" ]] || keep+=("$o"); done
  ORDER=("${keep[@]}")
}

# Stops kwok $1 for STALL seconds, then lets it go on (in the background); it goes to
# the end of the turn order.
stall_kwok() {
  local id=$1 pid=${PID[$1]}
  kill -STOP "$pid"
  event stop "$id"
  ( sleep "$STALL"; kill -CONT "$pid" 2>/dev/null; printf '%s\t%s\t%s\n' "$(( $(date +%s) - START ))" continue "$id" >>"$EVENTS" ) &
  STALLERS+=($!)
  forget "$id"
  PID[$id]=$pid
  ORDER+=("$id")
}

# Nodes whose Ready condition is not True (of ours, `so-*`).
not_ready() {
  kubectl get nodes -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null \
    | grep '^so-' | grep -vc '=True$' || true
}

nodes_yaml() {
  for ((i = 0; i < NODES; i++)); do
    printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: so-%d\n  annotations: {kwok.x-k8s.io/node: fake}\n' "$i"
    if (( POD_CIDR )); then printf 'spec:\n  podCIDR: 10.%d.%d.0/24\n' $(( 10 + i / 250 )) $(( i % 250 )); fi
    printf -- '---\n'
  done
}

# Pods $1..$2-1, named p-N, each on node so-(N mod NODES).
pods_yaml() {
  local annotations=""
  [[ -z "$READY_DELAY" ]] || annotations=", annotations: {pod-ready.stage.kwok.x-k8s.io/delay: $READY_DELAY}"
  for ((i = $1; i < $2; i++)); do
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p-%d, namespace: default%s}\nspec:\n  nodeName: so-%d\n  containers: [{name: c, image: fake}]\n---\n' "$i" "$annotations" $(( i % NODES ))
  done
}

# Applies pods $1..$2-1, retrying while the namespace's default ServiceAccount is missing.
create_pods() {
  for _ in $(seq 60); do
    pods_yaml "$1" "$2" | kubectl apply -f - >/dev/null 2>"$WORK/apply.err" && return
    sleep 2
  done
  cat "$WORK/apply.err" >&2; exit 1
}

wait_ready() {
  local deadline=$(( $(date +%s) + $1 )) ready
  while (( $(date +%s) < deadline )); do
    ready=$(kubectl get nodes -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c '^so-.*=True$' || true)
    (( ready == NODES )) && return
    sleep 5
  done
  echo "only $ready/$NODES nodes Ready after $1 s" >&2; exit 1
}

log "cluster in $WORK"
"$BIN/kwokctl" create cluster --name "$NAME" --kube-audit-policy "$ROOT/perf/audit-policy.yaml" >"$WORK/logs/create.log" 2>&1
kill -KILL "$(cat "$CDIR/pids/kwok-controller.pid")"   # kwoks started below drive the nodes
NEXT=0
for ((r = 0; r < REPLICAS; r++)); do start_kwok "soak-$NEXT"; NEXT=$((NEXT + 1)); done
nodes_yaml | kubectl create -f - >/dev/null
create_pods 0 "$PODS"
wait_ready 300
event ready "all"

SAMPLES=0 NOT_READY_SAMPLES=0 NOT_READY_MAX=0 NOT_READY_NODE_SAMPLES=0 UNEXPECTED_EXITS=0
OLDEST=0 NEWEST=$PODS
sample() {
  local n; n=$(not_ready)
  SAMPLES=$((SAMPLES + 1)) NOT_READY_NODE_SAMPLES=$((NOT_READY_NODE_SAMPLES + n))
  if (( n > 0 )); then NOT_READY_SAMPLES=$((NOT_READY_SAMPLES + 1)); event not-ready "$n"; fi
  (( n > NOT_READY_MAX )) && NOT_READY_MAX=$n
  for id in "${!PID[@]}"; do
    if ! kill -0 "${PID[$id]}" 2>/dev/null; then
      UNEXPECTED_EXITS=$((UNEXPECTED_EXITS + 1)); forget "$id"; event exited "$id"
    fi
  done
}
churn() {
  local names=() i
  for ((i = OLDEST; i < OLDEST + CHURN; i++)); do names+=("p-$i"); done
  kubectl delete pods "${names[@]}" --wait=false >/dev/null 2>&1 || true
  OLDEST=$((OLDEST + CHURN))
  create_pods "$NEWEST" $((NEWEST + CHURN))
  NEWEST=$((NEWEST + CHURN))
}

SOAK_START=$(date +%s)
for ((m = 1; m <= MINUTES; m++)); do
  victim=${ORDER[0]}
  if (( STALL > 0 && m % 3 == 0 )); then
    stall_kwok "$victim"
  else
    kill_kwok "$victim"
    if (( m % 2 == 1 )); then start_kwok "$victim"; else start_kwok "soak-$NEXT"; NEXT=$((NEXT + 1)); fi
  fi
  minute_end=$(( SOAK_START + m * 60 ))
  tick=0
  while (( $(date +%s) < minute_end )); do
    sample
    tick=$((tick + 1))
    (( tick % 3 == 0 )) && churn
    sleep 5
  done
done
(( ${#STALLERS[@]} == 0 )) || wait "${STALLERS[@]}"
event settle "30s"
sleep 30
sample

IPS=$(kubectl get pods -o 'jsonpath={range .items[*]}{.status.phase} {.status.podIP}{"\n"}{end}')
RUNNING=$(grep -c '^Running ' <<<"$IPS" || true)
PODS_NOW=$(grep -c . <<<"$IPS" || true)
DUP_IPS=$(awk '$1 == "Running" && $2 != "" {print $2}' <<<"$IPS" | sort | uniq -d | wc -l)
# kube-apiserver rotates its audit log at 100 MB (lumberjack's default when
# --audit-log-maxsize is unset), keeping the older part as audit-<time>.log: read them
# all, oldest first (their names sort by time), then the current one.
AUDIT_LOG="$WORK/audit-all.log"
cat $(ls "$CDIR"/logs/audit-*.log 2>/dev/null | sort) "$CDIR/logs/audit.log" >"$AUDIT_LOG"
AUDIT_RC=0
"$BIN/audit-check" "$AUDIT_LOG" --lease-seconds 40 >"$WORK/audit-check.txt" 2>&1 || AUDIT_RC=$?

DIR="$ROOT/perf/results/$(date -u +%F)-scale-out-soak$SUFFIX"
mkdir -p "$DIR"
{
  echo "# Scale-out soak: ${MINUTES}-minute run"
  echo
  echo "\`perf/tools/scale-out-soak.sh --minutes $MINUTES --nodes $NODES --pods $PODS --replicas $REPLICAS --churn $CHURN --stall-seconds $STALL${READY_DELAY:+ --ready-delay $READY_DELAY}$( (( POD_CIDR )) || echo ' --no-pod-cidr') --bin $(realpath --relative-to="$ROOT" "$BIN")\`, started $(date -u -d "@$START" +'%F %T') UTC."
  echo
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- kwok-rs commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- shards perf kwokctl || echo ' + uncommitted changes')"
  echo "- kwok: $("$BIN/kwok" --version 2>/dev/null | head -1) ($BIN); 40 s node Leases; each kwok \`--scale-out --id=soak-N\`"
  echo "- $REPLICAS kwoks at a time; each minute the one started longest ago SIGKILLed, then on odd minutes the same --id restarted, on even minutes a new --id started"
  if (( STALL > 0 )); then echo "- every third minute, instead of a kill, that kwok stopped (SIGSTOP) for $STALL s and continued (\`--stall-seconds $STALL\`)"; fi
  echo "- $NODES nodes ($( (( POD_CIDR )) && echo 'each with a podCIDR' || echo 'without podCIDRs: pod IPs from --cidr, by IP slot')), $PODS pods (set on nodes by spec.nodeName${READY_DELAY:+, Running $READY_DELAY after creation}); every 15 s the $CHURN oldest pods deleted and $CHURN new ones created"
  echo
  echo "## Results"
  echo
  echo "| figure | value |"
  echo "|---|---:|"
  echo "| kwoks killed | $(grep -c $'\tkill\t' "$EVENTS" || true) |"
  echo "| kwoks stopped and continued | $(grep -c $'\tstop\t' "$EVENTS" || true) |"
  echo "| kwoks started (incl. the first $REPLICAS) | $(grep -c $'\tstart\t' "$EVENTS" || true) |"
  echo "| kwoks that exited on their own | $UNEXPECTED_EXITS |"
  echo "| readiness samples (every 5 s) | $SAMPLES |"
  echo "| samples with a node NotReady | $NOT_READY_SAMPLES |"
  echo "| most nodes NotReady in one sample | $NOT_READY_MAX |"
  echo "| pods at the end / Running | $PODS_NOW / $RUNNING |"
  echo "| duplicate pod IPs among Running pods | $DUP_IPS |"
  echo "| audit log | $(wc -l <"$AUDIT_LOG") events, $(du -h "$AUDIT_LOG" | cut -f1) |"
  echo "| audit-check exit code (0: no double drive) | $AUDIT_RC |"
  echo
  echo "## audit-check"
  echo
  echo '```'
  cat "$WORK/audit-check.txt"
  echo '```'
  echo
  echo "## Timeline (seconds from start)"
  echo
  echo '```'
  cat "$EVENTS"
  echo '```'
} >"$DIR/summary.md"
log "summary: $DIR/summary.md"
cat "$DIR/summary.md"
