#!/usr/bin/env bash
# A real node on this machine, for trying shards/deploy/ in a cluster where pods run:
# containerd (Debian's), a kubelet and kube-proxy built from the pinned Kubernetes
# module, and a bridge network (Debian's CNI plugins). No image registry is needed: the
# sandbox image is built here from pause.c, and `load` moves a docker image in.
#
#   real-node.sh up DIR KUBECONFIG   start everything under DIR, register the node
#   real-node.sh load DIR IMAGE      copy IMAGE from docker into the node's containerd
#   real-node.sh down DIR            stop everything and remove what up made
#
# The cluster's kube-apiserver must listen where pods can reach it and advertise that
# address, so the `kubernetes` Service (through kube-proxy) and in-cluster clients work:
#   kwokctl create cluster --disable kwok-controller \
#     --extra-args kube-apiserver=bind-address=0.0.0.0 \
#     --extra-args kube-apiserver=advertise-address=10.244.0.1 \
#     --extra-args kube-apiserver=endpoint-reconciler-type=lease
# 10.244.0.1 is the bridge's address on this host (the pods' gateway, POD_CIDR's first).
#
# Needs root, containerd, runc, the CNI plugins in /usr/lib/cni, iptables, gcc, docker
# (`load`, and building the sandbox image). Found by trying on this project's VM: the
# sandbox must not lower its OOM score below containerd's (restrict_oom_score_adj), the
# kubelet must be told to run on cgroup v1 (failCgroupV1: false), and containerd 1.6
# lacks the CRI RuntimeConfig call, which the kubelet logs and works without.
#
# Environment (defaults): NODE_NAME (real-node), POD_CIDR (10.244.0.0/24), BRIDGE
# (kwokrs0), KUBELET_PORT (10350), and the kubelet/kube-proxy health and metrics ports
# KUBELET_HEALTHZ_PORT (10358), PROXY_HEALTHZ_PORT (10356), PROXY_METRICS_PORT (10349).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
node="${NODE_NAME:-real-node}"
pod_cidr="${POD_CIDR:-10.244.0.0/24}"
bridge="${BRIDGE:-kwokrs0}"
kubelet_port="${KUBELET_PORT:-10350}"
kubelet_healthz_port="${KUBELET_HEALTHZ_PORT:-10358}"
proxy_healthz_port="${PROXY_HEALTHZ_PORT:-10356}"
proxy_metrics_port="${PROXY_METRICS_PORT:-10349}"
sandbox_image="localhost/kwok-rs/pause:real-node"

die() { echo "real-node.sh: $*" >&2; exit 1; }
usage() { die "usage: real-node.sh up DIR KUBECONFIG | load DIR IMAGE | down DIR"; }

# 10.244.0.0/24 -> 10.244.0.1
gateway_of() { local net="${1%/*}"; echo "${net%.*}.$(( ${net##*.} + 1 ))"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ctr_() { ctr --address "$dir/containerd.sock" --namespace k8s.io "$@"; }

wait_for() { # <seconds> <what> <command...>
  local seconds="$1" what="$2"; shift 2
  for _ in $(seq 1 $((seconds * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what did not come up in ${seconds}s"
}

start() { # <name> <command...>: in the background, pid in DIR/<name>.pid, log DIR/<name>.log
  local name="$1"; shift
  setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

stop() { # <name>
  local pidfile="$dir/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

binaries() { # builds (or finds cached) kubelet, kube-proxy and kubectl; prints the cache
  # folder and the version
  local version
  version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' \
    "$repo/kwokctl/controlplane/kubernetes/go.mod")"
  bash "$repo/kwokctl/controlplane/build.sh" kubelet kube-proxy kubectl >&2
  echo "${KWOK_CACHE_DIR:-$HOME/.kwok/cache}" "$version"
}

# A failed `up`: its logs kept beside DIR's parent, everything else removed.
undo_up() {
  local kept="${TMPDIR:-/tmp}/real-node-logs-$$"
  mkdir -p "$kept" && cp "$dir"/*.log "$kept"/ 2>/dev/null || true
  echo "real-node.sh: up failed; logs kept in $kept; removing what it made" >&2
  down >&2
}

up() {
  local kubeconfig="$1" gateway cache version
  [[ -f "$kubeconfig" ]] || die "no kubeconfig at $kubeconfig"
  [[ "$(id -u)" -eq 0 ]] || die "up needs root (containerd, a bridge, iptables)"
  for tool in containerd ctr runc iptables gcc docker; do
    command -v "$tool" >/dev/null || die "$tool is not installed (Debian: containerd, runc, iptables, gcc, docker.io)"
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] ||
    die "no CNI plugins in /usr/lib/cni (Debian: containernetworking-plugins)"
  [[ ! -e "$dir/containerd.pid" ]] || die "$dir already holds a node: run down first"
  if ip link show "$bridge" >/dev/null 2>&1; then die "bridge $bridge exists: another real node runs"; fi
  for port in "$kubelet_port" "$kubelet_healthz_port" "$proxy_healthz_port" "$proxy_metrics_port"; do
    port_free "$port" || die "port $port is taken (set the *_PORT variables)"
  done
  read -r cache version < <(binaries)
  gateway="$(gateway_of "$pod_cidr")"
  # From here on a failure removes whatever was made.
  trap 'undo_up' EXIT
  mkdir -p "$dir"/{cni,ipam,containerd,kubelet,pod-logs,image}
  kubeconfig="$(cd "$(dirname "$kubeconfig")" && pwd)/$(basename "$kubeconfig")"

  # The bridge with the gateway address first: the kubelet serves on it.
  ip link add "$bridge" type bridge
  ip addr add "$gateway/${pod_cidr#*/}" dev "$bridge"
  ip link set "$bridge" up

  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$dir/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
EOF
  cat >"$dir/cni/10-bridge.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "kwok-rs-real-node", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr", "gateway": "$gateway"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  start containerd containerd --config "$dir/containerd.toml"
  wait_for 30 containerd ctr_ version

  gcc -static -O2 -o "$dir/image/pause" "$here/pause.c"
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$dir/image/Dockerfile"
  docker build -q -t "$sandbox_image" "$dir/image" >/dev/null 2>"$dir/image/build.log" \
    || die "building the sandbox image failed: $(tail -1 "$dir/image/build.log")"
  docker save "$sandbox_image" | ctr_ images import - >/dev/null

  # The apiserver's kubelet client certificate is signed by the cluster's CA.
  local ca
  ca="$("$cache/kubectl/$version/kubectl" --kubeconfig "$kubeconfig" config view --raw --minify \
    -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' 2>/dev/null)" || true
  [[ -n "$ca" ]] || die "no certificate-authority-data in $kubeconfig's current context"
  base64 -d <<<"$ca" >"$dir/ca.crt"
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/containerd.sock
address: $gateway
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: $dir/ca.crt}}
authorization: {mode: AlwaysAllow}
podLogsDir: $dir/pod-logs
podCIDR: $pod_cidr
enforceNodeAllocatable: []
evictionHard: {}
localStorageCapacityIsolation: false
EOF
  start kubelet "$cache/kubelet/$version/kubelet" --config "$dir/kubelet.yaml" \
    --kubeconfig "$kubeconfig" --hostname-override "$node" --node-ip "$gateway" \
    --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" --v=1
  wait_for 60 "the kubelet" curl -sf "http://127.0.0.1:$kubelet_healthz_port/healthz"

  # `down` cleans kube-proxy's rules up with this same binary.
  echo "$cache/kube-proxy/$version/kube-proxy" >"$dir/kube-proxy.bin"
  start kube-proxy "$cache/kube-proxy/$version/kube-proxy" --kubeconfig "$kubeconfig" \
    --hostname-override "$node" --proxy-mode iptables --cluster-cidr "$pod_cidr" \
    --healthz-bind-address "127.0.0.1:$proxy_healthz_port" \
    --metrics-bind-address "127.0.0.1:$proxy_metrics_port" --nodeport-addresses primary
  wait_for 60 kube-proxy curl -sf "http://127.0.0.1:$proxy_healthz_port/healthz"
  trap - EXIT
  echo "real-node.sh: node $node up under $dir (kubelet at $gateway:$kubelet_port)"
}

load() {
  local image="$1"
  [[ -S "$dir/containerd.sock" ]] || die "no node under $dir: run up first"
  docker image inspect "$image" >/dev/null 2>&1 || die "docker has no image $image"
  docker save "$image" | ctr_ images import - >/dev/null
  echo "real-node.sh: $image loaded into $node's containerd"
}

# The kubelet's own iptables chains (KUBE-FIREWALL, its canaries and hint); kube-proxy's go
# with `kube-proxy --cleanup`.
drop_kubelet_chains() {
  local tool table rule chain
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      "$tool-save" -t "$table" 2>/dev/null |
        grep -E -- '^-A [A-Z]+ .*-j KUBE-(FIREWALL|KUBELET-CANARY)( |$)' | sed 's/^-A/-D/' |
        while read -r rule; do eval "$tool -t $table $rule" 2>/dev/null || true; done || true
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$tool" -t "$table" -F "$chain" 2>/dev/null && "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

down() {
  [[ -d "$dir" ]] || return 0
  stop kubelet
  # Containers the kubelet left (pods not deleted first): their tasks, then them.
  if [[ -S "$dir/containerd.sock" ]]; then
    for c in $(ctr_ containers list -q 2>/dev/null); do
      ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
      ctr_ tasks delete -f "$c" >/dev/null 2>&1 || true
      ctr_ containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id [0-9a-f]* -address $dir/containerd.sock" 2>/dev/null || true
  stop kube-proxy
  if [[ -f "$dir/kube-proxy.bin" ]]; then
    "$(cat "$dir/kube-proxy.bin")" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true
  fi
  drop_kubelet_chains
  # Volumes the kubelet mounted (tokens, configmaps) and containerd's rootfs mounts.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  # Pods' veth ends go with their namespaces; a CNI netns left by a killed sandbox:
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do
    [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && ip netns del "$ns" 2>/dev/null || true
  done
  # The kubelet's pod cgroups (it does not remove its own on exit), deepest first.
  find /sys/fs/cgroup/*/kubepods* -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$dir"
  echo "real-node.sh: node $node removed"
}

[[ $# -ge 2 ]] || usage
cmd="$1"; dir="$2"
mkdir -p "$(dirname "$dir")"
dir="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"
case "$cmd" in
  up) [[ $# -eq 3 ]] || usage; up "$3" ;;
  load) [[ $# -eq 3 ]] || usage; load "$3" ;;
  down) [[ $# -eq 2 ]] || usage; down ;;
  *) usage ;;
esac
