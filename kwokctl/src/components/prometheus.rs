//! Prometheus (the Debian package's binary) scraping every component of the cluster.
//!
//! The HTTPS components are scraped with the `prometheus` client certificate (group
//! `system:monitoring`, which the bootstrap RBAC policy allows to read `/metrics`); the
//! controller-manager, scheduler and metrics-server check it through their
//! authentication and authorization kubeconfigs, kwok by its CA alone.

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
        image: None,
        envs: Vec::new(),
    }
}

/// The scrape configuration for `components` (those that run), plus the per-node
/// resource-metrics targets kwok lists at `/discovery/prometheus` (upstream's
/// `kwok-controller-metrics-discovery` job).
pub fn scrape_config(ctx: &Context<'_>, components: &[Component]) -> Value {
    let pki = ctx.dir.pki();
    let tls = json!({
        "ca_file": pki.ca_cert(),
        "cert_file": pki.client_cert("prometheus"),
        "key_file": pki.client_key("prometheus"),
    });
    let mut jobs: Vec<Value> = components
        .iter()
        .filter_map(|c| {
            let https = match c.name.as_str() {
                "kube-apiserver"
                | "kube-controller-manager"
                | "kube-scheduler"
                | "kwok-controller"
                | super::metrics_server::NAME => true,
                "etcd" | NAME => false,
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
    if let Some(kwok) = components.iter().find(|c| c.name == "kwok-controller") {
        // The targets carry their own __scheme__ and __metrics_path__; the job's TLS
        // settings serve both the discovery request and the scrapes.
        jobs.push(json!({
            "job_name": format!("{}-metrics-discovery", kwok.name),
            "http_sd_configs": [{
                "url": format!("https://127.0.0.1:{}/discovery/prometheus", kwok.port),
                "tls_config": tls,
            }],
            "tls_config": tls,
        }));
    }
    json!({
        "global": { "scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "15s" },
        "scrape_configs": jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    fn component(name: &str, port: u16) -> Component {
        Component {
            name: name.into(),
            binary: name.into(),
            args: Vec::new(),
            port,
            health_url: String::new(),
            image: None,
            envs: Vec::new(),
        }
    }

    #[test]
    fn kwok_should_be_scraped_over_https_and_list_the_node_targets() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let options = Options::default();
        let ctx = Context {
            options: &options,
            dir: &dir,
        };
        let config = scrape_config(
            &ctx,
            &[
                component("etcd", 1),
                component("kwok-controller", 2),
                component("metrics-server", 3),
            ],
        );
        let jobs = config["scrape_configs"].as_array().unwrap();
        let job = |name: &str| jobs.iter().find(|j| j["job_name"] == name).unwrap();
        assert_eq!(job("etcd")["scheme"], "http");
        assert_eq!(job("kwok-controller")["scheme"], "https");
        assert_eq!(job("metrics-server")["scheme"], "https");
        let cert = dir.pki().client_cert("prometheus");
        assert_eq!(job("kwok-controller")["tls_config"]["cert_file"], json!(cert));
        let discovery = job("kwok-controller-metrics-discovery");
        assert_eq!(
            discovery["http_sd_configs"][0]["url"],
            "https://127.0.0.1:2/discovery/prometheus"
        );
        assert_eq!(
            discovery["http_sd_configs"][0]["tls_config"]["cert_file"],
            json!(cert)
        );
        assert_eq!(discovery["tls_config"]["cert_file"], json!(cert));
    }
}
