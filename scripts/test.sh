#!/usr/bin/env bash
# The whole test suite: formatting and lints, then unit tests and the end-to-end
# tests against a real etcd and kube-apiserver (built on first use, then cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The e2e suite runs the real binaries: build them, and the control plane, first.
cargo build --workspace --bins
target/debug/kwokctl install
# The tools only some tests use (kectl, Jaeger, metrics-server, and the kubelet and
# kube-proxy of shards/deploy/'s real node) are built now, one at a time, rather than by
# the first test that needs them while the other e2e tests run beside it.
bash kwokctl/controlplane/build.sh kectl jaeger metrics-server kubelet kube-proxy
cargo test --workspace
