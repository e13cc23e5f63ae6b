#!/usr/bin/env bash
# Installs and starts what `kwokctl create cluster --runtime docker|podman` needs on a
# Debian machine, and what shards/deploy/real-node/ needs beside docker (containerd,
# iptables, the CNI plugins); used by .ci/run, safe to run again. Found by trying on
# CI's VM:
# - Debian's docker.io (Docker Engine 20.10) works with a newer docker CLI on PATH
#   (the API version is negotiated).
# - No systemd: dockerd is started here, in the background, without iptables and the
#   default bridge (the VM refuses both); kwokctl uses host networking, so neither is
#   needed. Its log goes to /tmp/kwok-dockerd.log.
# - podman needs runc as its OCI runtime: crun refuses the VM's hybrid cgroup layout.
#   Installing runc (and not crun) makes podman pick it; kwokctl passes explicit
#   `--ulimit nofile/nproc` (podman's defaults exceed the caller's hard limits).
set -euo pipefail

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# A real node for shards/deploy/'s test (shards/deploy/real-node/real-node.sh).
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    $sudo systemctl start docker
  else
    $sudo setsid nohup dockerd --iptables=false --bridge=none >/tmp/kwok-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/kwok-dockerd.log" >&2; exit 1; }
fi
# Podman's runtime must be runc where crun cannot run (hybrid cgroups).
if [ "$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null)" != "runc" ]; then
  $sudo mkdir -p /etc/containers/containers.conf.d
  printf '[engine]\nruntime = "runc"\n' | $sudo tee /etc/containers/containers.conf.d/kwok-runc.conf >/dev/null
fi
docker version --format 'docker: client {{.Client.Version}}, server {{.Server.Version}}'
podman version --format 'podman: {{.Client.Version}}'
