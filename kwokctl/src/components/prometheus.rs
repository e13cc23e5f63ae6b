//! Prometheus (the Debian package's binary) scraping every component of the cluster.
//!
//! The HTTPS components are scraped with the `prometheus` client certificate (group
//! `system:monitoring`, which the bootstrap RBAC policy allows to read `/metrics`); the
//! controller-manager, scheduler and metrics-server check it through their
//! authentication and authorization kubeconfigs, kwok by its CA alone.

use std::path::Path;

use serde_json::{Value, json};

use super::{Component, ComponentSpec, Context, path_arg};

/// How often every target is scraped: often enough that a test sees data in seconds.
const SCRAPE_INTERVAL: &str = "5s";

pub(super) fn component(ctx: &Context<'_>, binary: &Path, port: u16) -> ComponentSpec {
    ComponentSpec {
        name: Component::Prometheus,
        replica: 0,
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
pub fn scrape_config(ctx: &Context<'_>, components: &[ComponentSpec]) -> Value {
    let pki = ctx.dir.pki();
    let tls = json!({
        "ca_file": pki.ca_cert(),
        "cert_file": pki.client_cert(Component::Prometheus),
        "key_file": pki.client_key(Component::Prometheus),
    });
    let mut jobs: Vec<Value> = components
        .iter()
        .filter_map(|c| {
            let https = match c.name {
                Component::KubeApiserver
                | Component::KubeControllerManager
                | Component::KubeScheduler
                | Component::KwokController
                | Component::MetricsServer => true,
                Component::Etcd | Component::Prometheus => false,
                Component::Jaeger => return None,
            };
            let mut job = json!({
                "job_name": c.instance(),
                "scheme": if https { "https" } else { "http" },
                "static_configs": [{ "targets": [format!("127.0.0.1:{}", c.port)] }],
            });
            if https {
                job["tls_config"] = tls.clone();
            }
            Some(job)
        })
        .collect();
    // One per kwok replica: each lists the targets of the nodes it knows.
    for kwok in components.iter().filter(|c| c.name == Component::KwokController) {
        // The targets carry their own __scheme__ and __metrics_path__; the job's TLS
        // settings serve both the discovery request and the scrapes.
        jobs.push(json!({
            "job_name": format!("{}-metrics-discovery", kwok.instance()),
            "http_sd_configs": [{
                "url": format!("https://127.0.0.1:{}/discovery/prometheus", kwok.port),
                "tls_config": tls.clone(),
            }],
            "tls_config": tls.clone(),
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
    use crate::options::Options;

    fn component(name: Component, port: u16) -> ComponentSpec {
        ComponentSpec {
            name,
            replica: 0,
            binary: name.as_str().into(),
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
                component(Component::Etcd, 1),
                component(Component::KwokController, 2),
                component(Component::MetricsServer, 3),
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
