#!/usr/bin/env bash
# The main job: build kwok-rs and the pinned control plane, create a cluster with
# the kwok controller, and show it answering.
#   bash scripts/demo.sh            # cluster "kwok"
#   KWOK_NAME=dev bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name="${KWOK_NAME:-kwok}"

echo "==> building kwok-rs (release)"
cargo build --release --workspace --bins
kwokctl=target/release/kwokctl

echo "==> control-plane binaries (built from pinned Go modules on first use; cached in ~/.kwok/cache)"
"$kwokctl" install

if "$kwokctl" get clusters | grep -qx "$name"; then
  echo "==> cluster $name exists; recreating it"
  "$kwokctl" delete cluster --name "$name"
fi
echo "==> creating cluster $name"
"$kwokctl" create cluster --name "$name"
"$kwokctl" get components --name "$name"
"$kwokctl" --name "$name" kubectl get ns
echo
echo "Done. Try: $kwokctl --name $name kubectl get pods -A"
echo "Delete:   $kwokctl delete cluster --name $name"
