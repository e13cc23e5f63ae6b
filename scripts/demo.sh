#!/usr/bin/env bash
# The main job: build kwok-rs and the pinned control plane, create a cluster with
# the kwok controller, and show it answering.
#   bash scripts/demo.sh            # cluster "kwok"
#   KWOK_NAME=dev bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name="${KWOK_NAME:-kwok}"

# The control plane's Go build (minutes on a first run, nothing once cached) starts
# now, beside the Rust build rather than after it; its output goes to a log.
gobuild_log="${TMPDIR:-/tmp}/kwok-demo-controlplane-build.log"
echo "==> control-plane binaries: building from pinned Go modules in the background (log: $gobuild_log)"
# Its own session, so an interrupted demo stops `go` and the compilers too.
setsid bash kwokctl/controlplane/build.sh > "$gobuild_log" 2>&1 &
gobuild=$!
trap 'kill -- -"$gobuild" 2>/dev/null || true' EXIT

echo "==> building kwokctl and kwok (release)"
cargo build --release -p kwokctl -p kwok-shards --bins
kwokctl=target/release/kwokctl

echo "==> waiting for the control-plane build"
if ! wait "$gobuild"; then
  tail -5 "$gobuild_log" >&2
  echo "demo.sh: the control-plane build failed (log: $gobuild_log)" >&2
  exit 1
fi
trap - EXIT
grep -E '^==> (built|.*cached)' "$gobuild_log" || true
"$kwokctl" install

if "$kwokctl" get clusters | grep -qx "$name"; then
  echo "==> cluster $name exists; recreating it"
  "$kwokctl" delete cluster --name "$name"
fi
echo "==> creating cluster $name"
"$kwokctl" create cluster --name "$name"
"$kwokctl" get components --name "$name" -o wide
"$kwokctl" --name "$name" kubectl get ns

echo "==> 10 fake nodes, then a Deployment of 20 pods"
nodes="${TMPDIR:-/tmp}/kwok-demo-nodes.yaml"
deploy="${TMPDIR:-/tmp}/kwok-demo-deployment.yaml"
# The labels a kubelet gives its node: kube-scheduler's default topology spread keys on
# kubernetes.io/hostname, and without it every replica lands on the same node.
for i in $(seq 0 9); do
  printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-%s\n  annotations: {kwok.x-k8s.io/node: fake}\n' "$i"
  printf '  labels: {type: kwok, kubernetes.io/hostname: kwok-node-%s, kubernetes.io/os: linux, kubernetes.io/arch: amd64}\n---\n' "$i"
done > "$nodes"
cat > "$deploy" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo, namespace: default}
spec:
  replicas: 20
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers: [{name: app, image: fake}]
YAML
"$kwokctl" --name "$name" kubectl apply -f "$nodes"
"$kwokctl" --name "$name" kubectl wait --for=condition=Ready node --all --timeout=60s
# A node the controller-manager saw NotReady keeps the node.kubernetes.io/not-ready taint
# until its next node check (every 5 s), as with a real kubelet; pods made before then
# avoid it, so wait for every such taint to go.
for _ in $(seq 60); do
  tainted="$("$kwokctl" --name "$name" kubectl get nodes -o jsonpath='{range .items[*]}{.spec.taints}{"\n"}{end}' | grep -c not-ready || true)"
  [ "$tainted" = 0 ] && break
  sleep 1
done
# The default ServiceAccount appears a moment after start-up; retry until pods are accepted.
for _ in $(seq 30); do
  "$kwokctl" --name "$name" kubectl apply -f "$deploy" && break
  sleep 1
done
"$kwokctl" --name "$name" kubectl rollout status deployment/demo --timeout=120s
"$kwokctl" --name "$name" kubectl get nodes
"$kwokctl" --name "$name" kubectl get pods -o wide | sed -n 1,8p
echo "==> pods per node"
"$kwokctl" --name "$name" kubectl get pods -l app=demo -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | uniq -c
echo
echo "Done. Try: $kwokctl --name $name kubectl get pods -A"
echo "Delete:   $kwokctl delete cluster --name $name"
