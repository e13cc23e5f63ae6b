//! The pinned versions: the Go wrapper modules embedded in kwokctl (from
//! `kwokctl/controlplane/`) and the versions their go.mod files require.

use std::sync::LazyLock;

/// The Go wrapper modules, embedded so an installed kwokctl can build the control
/// plane without a source checkout. Paths are relative to `kwokctl/controlplane/`.
pub(crate) const SOURCES: &[(&str, &str)] = &[
    ("build.sh", include_str!("../controlplane/build.sh")),
    ("kubernetes/go.mod", KUBE_GO_MOD),
    (
        "kubernetes/go.sum",
        include_str!("../controlplane/kubernetes/go.sum"),
    ),
    (
        "kubernetes/tools.go",
        include_str!("../controlplane/kubernetes/tools.go"),
    ),
    (
        "kubernetes/node_tools.go",
        include_str!("../controlplane/kubernetes/node_tools.go"),
    ),
    ("etcd/go.mod", ETCD_GO_MOD),
    ("etcd/go.sum", include_str!("../controlplane/etcd/go.sum")),
    ("etcd/tools.go", include_str!("../controlplane/etcd/tools.go")),
    (
        "etcd/cmd/etcd/main.go",
        include_str!("../controlplane/etcd/cmd/etcd/main.go"),
    ),
    ("kectl/go.mod", KECTL_GO_MOD),
    ("kectl/go.sum", include_str!("../controlplane/kectl/go.sum")),
    ("kectl/tools.go", include_str!("../controlplane/kectl/tools.go")),
];

/// The Kubernetes wrapper module's go.mod (its version is the pinned one).
const KUBE_GO_MOD: &str = include_str!("../controlplane/kubernetes/go.mod");
/// etcd's wrapper module's go.mod.
const ETCD_GO_MOD: &str = include_str!("../controlplane/etcd/go.mod");

/// kectl's wrapper module, which pins the version upstream KWOK v0.8 runs.
const KECTL_GO_MOD: &str = include_str!("../controlplane/kectl/go.mod");

/// Jaeger's wrapper module: built only for clusters that run Jaeger (`--jaeger-port`).
pub(crate) const JAEGER_SOURCES: [(&str, &str); 3] = [
    ("jaeger/go.mod", include_str!("../controlplane/jaeger/go.mod")),
    ("jaeger/go.sum", include_str!("../controlplane/jaeger/go.sum")),
    ("jaeger/tools.go", include_str!("../controlplane/jaeger/tools.go")),
];

/// metrics-server's wrapper module: built only for clusters that run it.
pub(crate) const METRICS_SERVER_SOURCES: [(&str, &str); 3] = [
    (
        "metrics-server/go.mod",
        include_str!("../controlplane/metrics-server/go.mod"),
    ),
    (
        "metrics-server/go.sum",
        include_str!("../controlplane/metrics-server/go.sum"),
    ),
    (
        "metrics-server/tools.go",
        include_str!("../controlplane/metrics-server/tools.go"),
    ),
];

/// The pinned metrics-server version, read from the embedded go.mod.
pub static METRICS_SERVER_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(METRICS_SERVER_SOURCES[0].1, "sigs.k8s.io/metrics-server"));

/// The pinned Jaeger version, read from the embedded go.mod.
pub static JAEGER_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(JAEGER_SOURCES[0].1, "github.com/jaegertracing/jaeger"));

/// The pinned Kubernetes version, read from the embedded go.mod.
pub static KUBE_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(KUBE_GO_MOD, "k8s.io/kubernetes"));

/// The pinned etcd version, read from the embedded go.mod.
pub static ETCD_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(ETCD_GO_MOD, "go.etcd.io/etcd/server/v3"));

/// The pinned kectl version, read from the embedded go.mod.
pub static KECTL_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(KECTL_GO_MOD, "github.com/kwok-ci/kectl"));

/// The version of this project's own binaries (`kwok`, `kwokctl`).
pub const KWOK_VERSION: &str = env!("CARGO_PKG_VERSION");

fn require_version(go_mod: &str, module: &str) -> String {
    go_mod
        .lines()
        .map(|l| l.trim().trim_start_matches("require").trim())
        .find_map(|l| {
            l.strip_prefix(module)?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("embedded go.mod does not require {module}"))
}
