//! End-to-end tests: they run the built `kwokctl` (and through it `kwok` and the real
//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler) as a user would.
//!
//! Build the binaries first: `cargo build --workspace --bins` (the README's test
//! command does). Each test gets its own work dir and kubeconfig; the binary cache is
//! shared (`$KWOK_CACHE_DIR`, default `~/.kwok/cache`).

#[path = "../../support/upstream_module.rs"]
mod upstream_module;
mod util;
mod wait;

mod artifacts;
mod cluster;
mod controller;
mod create_errors;
mod create_options;
mod deploy;
mod dra;
mod errors;
mod faults;
mod jaeger;
mod kube_version;
mod kubelet_api;
mod kubelet_crds;
mod kwok;
mod kwok_replicas;
mod kwok_server;
mod lease_encoding;
mod lease_managed_fields;
mod metrics_server;
mod priority;
mod upstream_stages;

mod cli;
mod clusters;
mod completion;
mod kectl;
mod loadgen;
mod record;
mod runtimes;
mod scale;
mod scale_kinds;
mod scale_out;
mod snapshot;
mod volumes;
