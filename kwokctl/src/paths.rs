//! Where kwokctl keeps things: the work dir (`~/.kwok`), its cache and cluster folders.

use std::path::{Path, PathBuf};

use crate::{component::Component, pki::PkiPaths};

/// The kwokctl work dir: `$KWOK_WORKDIR`, else `~/.kwok`.
#[derive(Debug, Clone)]
pub struct Workdir {
    root: PathBuf,
    cache: PathBuf,
}

impl Workdir {
    /// Resolves the work dir from the environment. `$KWOK_CACHE_DIR` moves only the
    /// binary cache, so tests can isolate clusters while sharing built binaries.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let root = std::env::var_os("KWOK_WORKDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".kwok"));
        let cache = std::env::var_os("KWOK_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("cache"));
        Self { root, cache }
    }

    /// The default configuration file, `kwok.yaml` in the work dir.
    pub fn default_config(&self) -> PathBuf {
        self.root.join("kwok.yaml")
    }

    /// The folder holding one folder per cluster.
    pub fn clusters(&self) -> PathBuf {
        self.root.join("clusters")
    }

    /// The binary cache: `<component>/<version>/<component>`.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// The folder of cluster `name`.
    pub fn cluster(&self, name: &str) -> ClusterDir {
        ClusterDir {
            root: self.clusters().join(name),
        }
    }
}

/// The files of one cluster, under `~/.kwok/clusters/NAME/`.
#[derive(Debug, Clone)]
pub struct ClusterDir {
    root: PathBuf,
}

impl ClusterDir {
    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cluster's name: its folder's.
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `kwok.yaml`: the resolved configuration, enough to start the cluster again.
    pub fn config(&self) -> PathBuf {
        self.root.join("kwok.yaml")
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig.yaml")
    }

    /// The kubeconfig a control-plane component uses to reach the apiserver.
    pub fn component_kubeconfig(&self, component: impl AsRef<str>) -> PathBuf {
        let component = component.as_ref();
        self.root.join("kubeconfigs").join(format!("{component}.yaml"))
    }

    /// The PKI folder.
    pub fn pki(&self) -> PkiPaths {
        PkiPaths::new(self.root.join("pki"))
    }

    /// The logs folder.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A component's log file.
    pub fn log(&self, component: impl AsRef<str>) -> PathBuf {
        let component = component.as_ref();
        self.logs().join(format!("{component}.log"))
    }

    /// A component's pid file.
    pub fn pid(&self, component: impl AsRef<str>) -> PathBuf {
        let component = component.as_ref();
        self.root.join("pids").join(format!("{component}.pid"))
    }

    /// The audit policy copied from `--kube-audit-policy`.
    pub fn audit_policy(&self) -> PathBuf {
        self.root.join("audit-policy.yaml")
    }

    /// kube-apiserver's audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.logs().join("audit.log")
    }

    /// The kube-scheduler configuration made from `--kube-scheduler-config`.
    pub fn scheduler_config(&self) -> PathBuf {
        self.root.join("kube-scheduler-config.yaml")
    }

    /// Stage and KwokConfiguration documents for the kwok controller.
    pub fn kwok_config(&self) -> PathBuf {
        self.root.join("kwok-controller-config.yaml")
    }

    /// Prometheus's scrape configuration.
    pub fn prometheus_config(&self) -> PathBuf {
        self.root.join("prometheus.yaml")
    }

    /// kube-apiserver's `--egress-selector-config-file`: its traffic to nodes goes
    /// through kwok.
    pub fn egress_selector_config(&self) -> PathBuf {
        self.root.join("egress-selector.yaml")
    }

    /// kube-apiserver's `--tracing-config-file` (when Jaeger runs).
    pub fn apiserver_tracing_config(&self) -> PathBuf {
        self.root.join("apiserver-tracing-config.yaml")
    }

    /// Prometheus's data.
    pub fn prometheus_data(&self) -> PathBuf {
        self.root.join(Component::Prometheus.as_str())
    }

    /// etcd's data dir.
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join(Component::Etcd.as_str())
    }

    /// Every folder a new cluster needs.
    pub fn folders(&self) -> [PathBuf; 5] {
        [
            self.root.join("pki"),
            self.logs(),
            self.root.join("pids"),
            self.root.join("kubeconfigs"),
            self.etcd_data(),
        ]
    }
}
