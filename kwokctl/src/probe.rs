//! Health probes: one HTTP(S) GET against a component, trusting the cluster CA.

use std::path::Path;

use kube::{Client, Config, config::KubeConfigOptions};

/// A probe failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The probe client could not be built.
    #[error("failed to build a client from {path}: {message}")]
    Client {
        /// The kubeconfig used.
        path: String,
        /// Why.
        message: String,
    },
    /// The endpoint did not answer 2xx.
    #[error("{url}: {message}")]
    Unhealthy {
        /// The URL.
        url: String,
        /// What came back.
        message: String,
    },
}

/// Result of probes.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Probes endpoints of one cluster with the admin identity and the cluster's CA.
#[derive(Clone)]
pub struct Prober {
    config: Config,
}

impl Prober {
    /// A prober using the kubeconfig at `path` (its CA and client certificate).
    pub async fn from_kubeconfig(path: &Path) -> Result<Self> {
        let client_err = |message: String| Error::Client {
            path: path.display().to_string(),
            message,
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| client_err(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| client_err(e.to_string()))?;
        Ok(Self { config })
    }

    /// GETs `url` and returns the body when the answer is 2xx.
    pub async fn get(&self, url: &str) -> Result<String> {
        let unhealthy = |message: String| Error::Unhealthy {
            url: url.to_owned(),
            message,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| unhealthy(e.to_string()))?;
        let mut config = self.config.clone();
        config.cluster_url = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str())
        )
        .parse()
        .map_err(|e: http::uri::InvalidUri| unhealthy(e.to_string()))?;
        config.connect_timeout = Some(std::time::Duration::from_secs(2));
        config.read_timeout = Some(std::time::Duration::from_secs(5));
        let client = Client::try_from(config).map_err(|e| unhealthy(e.to_string()))?;
        let request = http::Request::get(uri.path())
            .body(Vec::new())
            .map_err(|e| unhealthy(e.to_string()))?;
        client
            .request_text(request)
            .await
            .map_err(|e| unhealthy(one_line(&e.to_string())))
    }
}

/// A probe answer as one line: the failed checks of a verbose `/readyz` or `/livez`
/// body (`[-]name failed: …` lines), else its lines joined, so a health error stays
/// one line.
fn one_line(message: &str) -> String {
    let failed: Vec<&str> = message
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[-]"))
        .map(|l| l.split_whitespace().next().unwrap_or(l))
        .collect();
    if !failed.is_empty() {
        let head = message.lines().next().unwrap_or_default();
        let head = head.split("[+]").next().unwrap_or(head).trim();
        return format!("{head} failed checks: {}", failed.join(", "));
    }
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_verbose_readyz_answer_should_become_one_line_naming_the_failed_checks() {
        let body = "ApiError: [+]ping ok\n[+]etcd ok\n[-]informer-sync failed: reason withheld\n\
                    [+]log ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n\
                    readyz check failed: Error (ErrorResponse { status: \"503\" })";
        assert_eq!(
            one_line(body),
            "ApiError: failed checks: informer-sync, poststarthook/rbac/bootstrap-roles"
        );
        assert_eq!(one_line("connection refused\n  at x"), "connection refused; at x");
    }
}
