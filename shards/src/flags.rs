//! The `kwok` controller's flags (upstream KWOK's names), parsed with no I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;

/// `kwok --version`: the crate's version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KWOK_SOURCE_COMMIT"), ")");

/// kwok makes fake nodes and pods look alive to a real Kubernetes control plane.
#[derive(Debug, Parser)]
#[command(name = "kwok", version = VERSION, about)]
pub struct Flags {
    /// Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster config.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The address of the Kubernetes API server (overrides the kubeconfig's).
    #[arg(long)]
    pub master: Option<String>,
    /// Stage and KwokConfiguration files or folders (multi-document YAML); repeatable.
    #[arg(long = "config", short = 'c')]
    pub config: Vec<PathBuf>,
    /// Manage every node in the cluster.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub manage_all_nodes: Option<bool>,
    /// Manage nodes whose annotations match this selector.
    #[arg(long, default_value = "kwok.x-k8s.io/node=fake")]
    pub manage_nodes_with_annotation_selector: String,
    /// Manage nodes whose labels match this selector.
    #[arg(long, default_value = "")]
    pub manage_nodes_with_label_selector: String,
    /// Manage only the node with this name.
    #[arg(long, default_value = "")]
    pub manage_single_node: String,
    /// Leave the status of objects with these annotations alone.
    #[arg(long, default_value = "")]
    pub disregard_status_with_annotation_selector: String,
    /// Leave the status of objects with these labels alone.
    #[arg(long, default_value = "")]
    pub disregard_status_with_label_selector: String,
    /// CIDR that pod IPs come from when a node has no podCIDR.
    #[arg(long, default_value = "10.0.0.1/24")]
    pub cidr: String,
    /// IP reported by `NodeIP`.
    #[arg(long, default_value = "196.168.0.1")]
    pub node_ip: String,
    /// Name reported by `NodeName`.
    #[arg(long, default_value = "")]
    pub node_name: String,
    /// Kubelet port reported by `NodePort`.
    #[arg(long, default_value_t = 10247)]
    pub node_port: u16,
    /// Lease duration of nodes; 0 disables leases.
    #[arg(long, default_value_t = 40)]
    pub node_lease_duration_seconds: u32,
    /// Share the managed nodes with the other `kwok`s started with --scale-out against
    /// this cluster: each renews a member Lease, and drives only the nodes the table
    /// dealt over the live members gives it (not in upstream KWOK; needs node leases).
    #[arg(long)]
    pub scale_out: bool,
    /// With --scale-out: duration of this kwok's member Lease; a kwok that cannot renew
    /// it for this long stops driving nodes, and the others deal its nodes away.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    pub member_lease_duration_seconds: u32,
    /// Lease renewals in flight at once while they go out on time, as upstream KWOK;
    /// doubled for every sixteenth of a lease duration the oldest waiting renewal is late
    /// (or acquisition has waited), up to 64 times (not in upstream KWOK).
    #[arg(long, default_value_t = 4)]
    pub node_lease_parallelism: usize,
    /// Encoding of node Lease renewals (PUTs), a flag upstream KWOK lacks: `protobuf`, as
    /// kubelets send them (cheaper for the apiserver to decode and answer, and for kwok),
    /// or `json`, what upstream KWOK sends.
    #[arg(long, value_enum, default_value_t = LeaseEncoding::Protobuf)]
    pub node_lease_encoding: LeaseEncoding,
    /// Node Leases' `managedFields`: `strip` clears them with kwok's first renewal, so the
    /// apiserver skips its field manager on every renewal after (it tracks no fields of
    /// an object that has none); `keep` leaves them as kubelets and upstream KWOK do
    /// (not in upstream KWOK).
    #[arg(long, value_enum, default_value_t = LeaseManagedFields::Strip)]
    pub node_lease_managed_fields: LeaseManagedFields,
    /// Number of shard workers (default: number of cores).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Writes each shard keeps in flight at most; stages due beyond that wait for a slot
    /// (rendered when it frees, from the newest state of their object).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub writes_in_flight: u32,
    /// Client-side QPS limit towards the apiserver.
    #[arg(long, default_value_t = 5000.0)]
    pub kube_api_qps: f64,
    /// Client-side burst towards the apiserver.
    #[arg(long, default_value_t = 10000)]
    pub kube_api_burst: u32,
    /// Identity written into Lease holderIdentity; keep it across restarts so a restarted
    /// kwok resumes its own Leases at once (default: kwok-<hostname>-<n>, the lowest n
    /// no other kwok on this host holds, by a lock file in the temp dir).
    #[arg(long)]
    pub id: Option<String>,
    /// Custom resources to serve from the cluster: `Stage` takes the stages from Stage
    /// objects (creating the CRD and the default stages when missing), applied live.
    #[arg(long, value_delimiter = ',')]
    pub enable_crds: Vec<String>,
    /// Address of the HTTP server for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:10247")]
    pub server_address: String,
    /// File containing the default x509 certificate for HTTPS (PEM; with
    /// --tls-private-key-file the server speaks HTTPS only).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file (PEM).
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA bundle (PEM) that signs the clients of the kubelet API (the apiserver's
    /// kubelet client certificate, metrics-server's): with it, every request but
    /// /healthz, /livez and /readyz needs a client certificate it signed (the
    /// server's own certificate is self-signed without --tls-cert-file).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// OTLP/gRPC endpoint (`host:port`) to export trace spans to; empty: no tracing.
    #[arg(long, default_value = "")]
    pub tracing_endpoint: String,
    /// Traces sampled per million (0 to 1000000), when --tracing-endpoint is given.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub tracing_sampling_rate_per_million: u32,
    /// `/debug/pprof/*` on the server (KwokConfiguration `enableProfilingHandler`; no flag
    /// upstream). Off unless a configuration turns it on.
    #[arg(skip)]
    pub enable_profiling_handler: bool,
    /// How watches fetch the initial state: `stream` (watch-list: objects arrive one
    /// by one, the least memory; needs Kubernetes ≥ 1.34 or the WatchList feature),
    /// `paged` (lists of 500), `cached` (one list from the apiserver's cache).
    #[arg(long, value_enum, default_value_t = InitialList::Stream)]
    pub initial_list: InitialList,
    /// Log level as upstream's: `DEBUG`, `INFO`, `WARN`, `ERROR`, a name with an offset
    /// (`INFO-4`), or a number (-4 debug, 0 info, 4 warn, 8 error; below -4 trace).
    /// `RUST_LOG` wins when set.
    #[arg(short = 'v', long = "v", default_value = "INFO", value_parser = kwok_engine::verbosity::parse_level, allow_hyphen_values = true)]
    pub verbosity: i64,
    /// Tools that run instead of the controller.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How node Lease renewals are encoded (`--node-lease-encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaseEncoding {
    /// `application/json`.
    Json,
    /// `application/vnd.kubernetes.protobuf`, both ways.
    Protobuf,
}

/// What kwok's renewals do with a node Lease's `managedFields`
/// (`--node-lease-managed-fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaseManagedFields {
    /// Clear them (`managedFields: [{}]`) when a renewal finds any.
    Strip,
    /// Leave them to the apiserver, which updates them on every renewal.
    Keep,
}

/// How watches fetch the initial state (`--initial-list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitialList {
    /// Watch-list streaming (`sendInitialEvents`).
    Stream,
    /// Paginated lists from etcd.
    Paged,
    /// One list served from the apiserver's watch cache.
    Cached,
}

/// Subcommands (without one, kwok runs the controller).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Works with Stage files.
    #[command(subcommand)]
    Stage(StageCommand),
}

/// `kwok stage …`.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Dry-runs stages on one object and prints each step and the object after it.
    Run(RunArgs),
}

impl Flags {
    /// The log filter `--v` asks for.
    pub fn log_level(&self) -> &'static str {
        kwok_engine::verbosity::filter_name(self.verbosity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_all_nodes_should_accept_go_style_booleans() {
        let bare = Flags::try_parse_from(["kwok", "--manage-all-nodes"]).unwrap();
        let explicit = Flags::try_parse_from(["kwok", "--manage-all-nodes=false"]).unwrap();
        assert_eq!(bare.manage_all_nodes, Some(true));
        assert_eq!(explicit.manage_all_nodes, Some(false));
    }

    #[test]
    fn defaults_should_match_upstream() {
        let f = Flags::try_parse_from(["kwok"]).unwrap();
        assert_eq!(f.manage_nodes_with_annotation_selector, "kwok.x-k8s.io/node=fake");
        assert_eq!(f.cidr, "10.0.0.1/24");
        assert_eq!(f.server_address, "127.0.0.1:10247");
        assert_eq!(f.log_level(), "info");
    }

    #[test]
    // The spellings themselves are engine::verbosity's tests; this checks the wiring.
    fn v_should_take_upstreams_level_names_and_numbers() {
        let level = |v: &str| {
            Flags::try_parse_from(["kwok", &format!("--v={v}")])
                .map(|f| f.log_level())
                .ok()
        };
        assert_eq!(level("WARN"), Some("warn"));
        assert_eq!(level("DEBUG-4"), Some("trace"));
        let f = Flags::try_parse_from(["kwok", "-v", "-4"]).unwrap();
        assert_eq!(f.log_level(), "debug");
        let err = Flags::try_parse_from(["kwok", "--v=LOUD"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid level name \"LOUD\""), "{err}");
    }

    #[test]
    fn lease_renewals_should_default_to_protobuf_as_kubelets_send_them() {
        let f = Flags::try_parse_from(["kwok"]).unwrap();
        assert_eq!(f.node_lease_encoding, LeaseEncoding::Protobuf);
        let f = Flags::try_parse_from(["kwok", "--node-lease-encoding=json"]).unwrap();
        assert_eq!(f.node_lease_encoding, LeaseEncoding::Json);
    }

    #[test]
    fn enable_crds_should_split_on_commas() {
        let f = Flags::try_parse_from(["kwok", "--enable-crds=Stage,Metric"]).unwrap();
        assert_eq!(f.enable_crds, ["Stage", "Metric"]);
    }
}

/// `kwok stage run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stage files or folders (multi-document YAML); default: the default node and pod stages.
    #[arg(long = "config", value_name = "STAGES.yaml")]
    pub config: Vec<PathBuf>,
    /// The object to run the stages on (YAML or JSON).
    #[arg(long, value_name = "OBJECT.yaml")]
    pub object: PathBuf,
    /// The clock at the start (RFC 3339); default: the object's creationTimestamp, else now.
    #[arg(long)]
    pub now: Option<Timestamp>,
    /// Seed of the random choices (weights, jitter).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many stages.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// List every stage that can apply (upstream's rule: a weight-0 match beside a
    /// positive weight cannot) with its weight, delay range and requests, instead of running.
    #[arg(long)]
    pub all: bool,
    /// Output of --all: `text`, or `yaml`/`json` in the format of upstream's golden
    /// stage tests (`kustomize/stage/**/testdata/*.output.yaml`).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// With --all: render as upstream's stage tests do, so the output diffs against
    /// their golden files: runtime functions print as stand-ins (`<Now>`,
    /// `<NodeIPWith("node")>`), the clock reads 2006-01-02T15:04:05Z unless --now is
    /// given, and patches without a type are merge patches.
    #[arg(long, requires = "all")]
    pub golden: bool,
}

/// `kwok stage run -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// YAML, upstream's golden format (with --all).
    Yaml,
    /// JSON, the same fields.
    Json,
}
