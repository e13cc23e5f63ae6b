//! Prometheus (the Debian package's binary) scraping every component of the cluster.
//!
//! The HTTPS components are scraped with the `prometheus` client certificate (group
//! `system:monitoring`, which the bootstrap RBAC policy allows to read `/metrics`); the
//! controller-manager and scheduler check it through their authentication and
//! authorization kubeconfigs.

use std::path::Path;

use serde_json::{Value, json};

use super::{Component, Context, path_arg};

/// How often every target is scraped: often enough that a test sees data in seconds.
const SCRAPE_INTERVAL: &str = "5s";

/// The component name.
pub const NAME: &str = "prometheus";

pub(super) fn component(ctx: &Context<'_>, binary: &Path, port: u16) -> Component {
    Component {
        name: NAME.into(),
        binary: binary.into(),
        args: vec![
            path_arg("config.file", ctx.dir.prometheus_config()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            path_arg("storage.tsdb.path", ctx.dir.prometheus_data()),
        ],
        port,
        health_url: format!("http://127.0.0.1:{port}/-/ready"),
        envs: Vec::new(),
    }
}

/// The scrape configuration for `components` (those that run).
pub fn scrape_config(ctx: &Context<'_>, components: &[Component]) -> Value {
    let pki = ctx.dir.pki();
    let tls = json!({
        "ca_file": pki.ca_cert(),
        "cert_file": pki.client_cert("prometheus"),
        "key_file": pki.client_key("prometheus"),
    });
    let jobs: Vec<Value> = components
        .iter()
        .filter_map(|c| {
            let https = match c.name.as_str() {
                "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" => true,
                "etcd" | "kwok-controller" | NAME => false,
                _ => return None,
            };
            let mut job = json!({
                "job_name": c.name,
                "scheme": if https { "https" } else { "http" },
                "static_configs": [{ "targets": [format!("127.0.0.1:{}", c.port)] }],
            });
            if https {
                job["tls_config"] = tls.clone();
            }
            Some(job)
        })
        .collect();
    json!({
        "global": { "scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "15s" },
        "scrape_configs": jobs,
    })
}
