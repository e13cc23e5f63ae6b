//! kwokctl: creates and manages clusters of real control-plane processes (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler) plus the kwok controller.
//!
//! Components are described as plain data ([`components`]) and run by a runtime
//! ([`runtime`]); binaries come from the cache or are built from pinned Go modules
//! ([`binaries`]).

pub mod auth;
pub mod binaries;
pub mod client;
pub mod cmd;
pub mod component;
pub mod components;
pub mod config;
pub mod download;
pub mod dra;
pub mod flags;
pub mod go_modules;
pub mod kube_version;
pub mod kubeconfig;
pub mod launch;
pub mod options;
pub mod path_error;
pub mod paths;
pub mod pinned;
pub mod pki;
pub mod ports;
pub mod priority;
pub mod probe;
pub mod runtime;
pub mod scale;
pub mod settings;
pub mod shell;
pub mod snapshot;
pub mod userconfig;
