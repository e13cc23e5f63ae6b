//! `KwokConfiguration` documents (`config.kwok.x-k8s.io/v1alpha1`) in `--config`
//! files: their `options` become flag values, except for flags given on the command
//! line (or by environment), which win — as upstream KWOK resolves them.

use anyhow::{Result, bail};
use clap::{ArgMatches, parser::ValueSource};
use kwok_engine::stage::load::Documents;
use serde::Deserialize;
use serde_json::Value;

use crate::flags::Flags;

const API_VERSION: &str = "config.kwok.x-k8s.io/v1alpha1";

/// A KwokConfiguration document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KwokConfiguration {
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
    #[serde(default)]
    options: Options,
    /// Where spans go: the `--tracing-*` flags' values when those are not given.
    #[serde(default)]
    tracing: Tracing,
}

/// `tracing`: Kubernetes' TracingConfiguration fields.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Tracing {
    endpoint: Option<String>,
    sampling_rate_per_million: Option<u32>,
}

/// `options`: upstream's field names. The last group is accepted and has no effect
/// here (contention profiling, play-stage parallelism: the shards replace them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Options {
    #[serde(rename = "enableCRDs")]
    enable_crds: Option<Vec<String>>,
    cidr: Option<String>,
    #[serde(rename = "nodeIP")]
    node_ip: Option<String>,
    node_name: Option<String>,
    node_port: Option<u16>,
    manage_single_node: Option<String>,
    manage_all_nodes: Option<bool>,
    manage_nodes_with_annotation_selector: Option<String>,
    manage_nodes_with_label_selector: Option<String>,
    disregard_status_with_annotation_selector: Option<String>,
    disregard_status_with_label_selector: Option<String>,
    server_address: Option<String>,
    node_lease_duration_seconds: Option<u32>,
    node_lease_parallelism: Option<usize>,
    tls_cert_file: Option<std::path::PathBuf>,
    tls_private_key_file: Option<std::path::PathBuf>,
    /// Upstream's default is true; ours false (see [`apply`]).
    enable_profiling_handler: Option<bool>,
    /// Upstream serves profiling only when this is true too (its default).
    enable_debugging_handlers: Option<bool>,
    // Accepted, no effect here.
    enable_contention_profiling: Option<Value>,
    pod_play_stage_parallelism: Option<Value>,
    node_play_stage_parallelism: Option<Value>,
    pods_on_node_sync_parallelism: Option<Value>,
    enable_pods_on_node_sync_list_pager: Option<Value>,
    enable_pods_on_node_sync_stream_watch: Option<Value>,
}

/// Applies the KwokConfiguration documents of `flags.config` (later files win) to
/// every flag `matches` says was left at its default.
///
/// `enableProfilingHandler` is the one option whose default differs from upstream's
/// (true there): profiling is off unless a configuration asks for it, and then served
/// only when `enableDebuggingHandlers` is not false, as upstream gates it.
pub fn apply(flags: &mut Flags, matches: &ArgMatches, docs: &Documents) -> Result<()> {
    let mut debugging = true;
    for (config, _) in read(docs)? {
        let options = &config.options;
        let unset = |id: &str| {
            !matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = options.$field.clone() {
                    if unset(stringify!($field)) {
                        flags.$field = value.into();
                    }
                }
            )*};
        }
        set!(
            enable_crds,
            cidr,
            node_ip,
            node_name,
            node_port,
            manage_single_node,
            manage_all_nodes,
            manage_nodes_with_annotation_selector,
            manage_nodes_with_label_selector,
            disregard_status_with_annotation_selector,
            disregard_status_with_label_selector,
            server_address,
            node_lease_duration_seconds,
            node_lease_parallelism,
            tls_cert_file,
            tls_private_key_file
        );
        if let Some(on) = options.enable_profiling_handler {
            flags.enable_profiling_handler = on;
        }
        debugging = options.enable_debugging_handlers.unwrap_or(debugging);
        if let Some(endpoint) = config.tracing.endpoint.filter(|_| unset("tracing_endpoint")) {
            flags.tracing_endpoint = endpoint;
        }
        let rate = config.tracing.sampling_rate_per_million;
        if let Some(rate) = rate.filter(|_| unset("tracing_sampling_rate_per_million")) {
            flags.tracing_sampling_rate_per_million = rate;
        }
    }
    flags.enable_profiling_handler &= debugging;
    Ok(())
}

fn read(docs: &Documents) -> Result<Vec<(KwokConfiguration, String)>> {
    let mut found = Vec::new();
    for (value, source) in &docs.others {
        let place = format!("{}:{}", source.file, source.line);
        match value.get("kind").and_then(Value::as_str) {
            Some("KwokConfiguration") => {}
            // kwokctl configurations may share the file; they are not ours to read.
            Some("KwokctlConfiguration") => continue,
            // Upstream's kinds for the kubelet API and metrics: read by `settings`.
            Some(kind) if kwok_engine::stage::load::KUBELET_API_KINDS.contains(&kind) => continue,
            // Upstream skips what it does not know with a warning (its stage sets ship a
            // StorageClass beside the Stages), and so do we.
            Some(kind) => {
                tracing::warn!(
                    "{place}: unsupported kind {kind:?} skipped (kwok reads Stage and KwokConfiguration)"
                );
                continue;
            }
            None => bail!("{place}: document without a kind"),
        }
        let config: KwokConfiguration = serde_path_to_error::deserialize(value)
            .map_err(|e| anyhow::anyhow!("{place}: KwokConfiguration field {}: {}", e.path(), e.inner()))?;
        if config.api_version != API_VERSION {
            bail!(
                "{place}: KwokConfiguration apiVersion {:?} (expected {API_VERSION})",
                config.api_version
            );
        }
        found.push((config, place));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    fn resolve(config: &str, args: &[&str]) -> Result<Flags> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kwok.yaml");
        std::fs::write(&path, config).unwrap();
        let mut argv = vec!["kwok".to_owned(), format!("--config={}", path.display())];
        argv.extend(args.iter().map(|a| a.to_string()));
        let matches = Flags::command().try_get_matches_from(argv)?;
        let mut flags = Flags::from_arg_matches(&matches)?;
        let docs = crate::settings::read_documents(&flags.config)?;
        apply(&mut flags, &matches, &docs)?;
        Ok(flags)
    }

    const CONFIG: &str = "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n  cidr: 10.1.0.1/16\n  nodeIP: 10.9.9.9\n  manageAllNodes: true\n  enableCRDs: [Stage]\n  nodeLeaseDurationSeconds: 20\n  enableProfilingHandler: true\n";

    #[test]
    fn options_should_fill_flags_left_at_their_defaults() {
        let f = resolve(CONFIG, &[]).unwrap();
        assert_eq!(f.cidr, "10.1.0.1/16");
        assert_eq!(f.node_ip, "10.9.9.9");
        assert_eq!(f.manage_all_nodes, Some(true));
        assert_eq!(f.enable_crds, ["Stage"]);
        assert_eq!(f.node_lease_duration_seconds, 20);
        assert!(f.enable_profiling_handler);
        assert!(f.tracing_endpoint.is_empty());
    }

    #[test]
    fn profiling_should_be_off_by_default_and_gated_by_debugging_handlers() {
        let header = "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\n";
        assert!(!resolve(header, &[]).unwrap().enable_profiling_handler);
        let gated =
            format!("{header}options:\n  enableProfilingHandler: true\n  enableDebuggingHandlers: false\n");
        assert!(!resolve(&gated, &[]).unwrap().enable_profiling_handler);
    }

    #[test]
    fn tracing_and_tls_should_come_from_the_configuration_unless_flagged() {
        let config = "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\n\
                      options:\n  tlsCertFile: /c.crt\n  tlsPrivateKeyFile: /c.key\n\
                      tracing:\n  endpoint: localhost:4317\n  samplingRatePerMillion: 10\n";
        let f = resolve(config, &[]).unwrap();
        assert_eq!(f.tls_cert_file.as_deref(), Some(std::path::Path::new("/c.crt")));
        assert_eq!(
            f.tls_private_key_file.as_deref(),
            Some(std::path::Path::new("/c.key"))
        );
        assert_eq!(f.tracing_endpoint, "localhost:4317");
        assert_eq!(f.tracing_sampling_rate_per_million, 10);
        let f = resolve(config, &["--tracing-endpoint=other:4317"]).unwrap();
        assert_eq!(f.tracing_endpoint, "other:4317");
        assert_eq!(f.tracing_sampling_rate_per_million, 10);
    }

    #[test]
    fn command_line_flags_should_win_over_options() {
        let f = resolve(CONFIG, &["--cidr=10.2.0.1/24", "--node-lease-duration-seconds=0"]).unwrap();
        assert_eq!(f.cidr, "10.2.0.1/24");
        assert_eq!(f.node_lease_duration_seconds, 0);
        assert_eq!(f.node_ip, "10.9.9.9");
    }

    #[test]
    fn an_unknown_option_should_name_file_line_and_field() {
        let err = resolve(
            "---\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n  cidrs: x\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("kwok.yaml:2: KwokConfiguration field options"),
            "{err}"
        );
        assert!(err.contains("cidrs"), "{err}");
    }

    #[test]
    fn a_document_of_another_kind_should_be_skipped_as_upstream_does() {
        resolve("apiVersion: v1\nkind: ConfigMap\n", &[]).unwrap();
        resolve("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\n", &[]).unwrap();
        let err = resolve("apiVersion: v1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("kwok.yaml:1: document without a kind"), "{err}");
    }
}
