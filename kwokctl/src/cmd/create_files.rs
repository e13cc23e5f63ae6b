//! The files `create cluster` derives from its inputs (audit policy, scheduler
//! configuration, kwok's documents, Prometheus's scrape configuration, kube-apiserver's
//! tracing configuration), and the `--dry-run` script. Every input file is read and
//! checked here, before anything is made.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{
    component::Component,
    components::{ComponentSpec, Context, jaeger, metrics_server, prometheus},
    config::ClusterConfig,
    paths::ClusterDir,
    runtime::Runtime,
    settings::Settings,
};

/// Files to write into the cluster folder: (path, contents).
pub(super) fn extra_files(
    ctx: &Context<'_>,
    s: &Settings,
    components: &[ComponentSpec],
) -> Result<Vec<(PathBuf, String)>> {
    let dir = ctx.dir;
    let mut files = Vec::new();
    if let Some(policy) = &s.options.kube_audit_policy {
        let text = read_yaml_mapping("--kube-audit-policy", policy)?.1;
        files.push((dir.audit_policy(), text));
    }
    if let Some(path) = &s.options.kube_scheduler_config {
        let (mut config, _) = read_yaml_mapping("--kube-scheduler-config", path)?;
        config["clientConnection"]["kubeconfig"] = json!(dir.component_kubeconfig(Component::KubeScheduler));
        if s.options.disable_qps_limits {
            config["clientConnection"]["qps"] = json!(5000);
            config["clientConnection"]["burst"] = json!(10000);
        }
        // One scheduler per cluster: leader election would only add Lease writes.
        config["leaderElection"]["leaderElect"] = json!(false);
        files.push((dir.scheduler_config(), serde_saphyr::to_string(&config)?));
    }
    if !s.kwok_documents.is_empty() {
        files.push((dir.kwok_config(), s.kwok_documents.join("\n---\n") + "\n"));
    }
    let egress_flag = format!(
        "--egress-selector-config-file={}",
        dir.egress_selector_config().display()
    );
    if components.iter().any(|c| c.args.contains(&egress_flag)) {
        let egress = crate::components::kube_apiserver::egress_selector_config(ctx);
        files.push((dir.egress_selector_config(), serde_saphyr::to_string(&egress)?));
    }
    if let Some(endpoint) = jaeger::otlp_endpoint(ctx) {
        let config = jaeger::apiserver_tracing_config(&endpoint);
        files.push((dir.apiserver_tracing_config(), serde_saphyr::to_string(&config)?));
    }
    if s.runs(Component::Prometheus) {
        let config = prometheus::scrape_config(ctx, components);
        files.push((dir.prometheus_config(), serde_saphyr::to_string(&config)?));
    }
    Ok(files)
}

/// Checks the input files early, before any binary is looked for or built.
pub(super) fn check_inputs(s: &Settings) -> Result<()> {
    if let Some(policy) = &s.options.kube_audit_policy {
        read_yaml_mapping("--kube-audit-policy", policy)?;
    }
    if let Some(path) = &s.options.kube_scheduler_config {
        read_yaml_mapping("--kube-scheduler-config", path)?;
    }
    Ok(())
}

/// Reads `path` given by `flag`; it must be a YAML mapping.
fn read_yaml_mapping(flag: &str, path: &Path) -> Result<(Value, String)> {
    let text = fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
    let value: Value = serde_saphyr::from_str(&text).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_owned();
        anyhow::anyhow!("{flag} {}: not valid YAML: {first}", path.display())
    })?;
    if !value.is_object() {
        bail!("{flag} {}: not a YAML mapping", path.display());
    }
    Ok((value, text))
}

/// Finds Prometheus: `explicit`, else `prometheus` on PATH.
pub(super) fn prometheus_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if let Some(path) = explicit {
        if executable(path) {
            return Ok(path.into());
        }
        bail!(
            "prometheus binary {} does not exist or is not executable",
            path.display()
        );
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("prometheus"))
        .find(|p| executable(p))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "prometheus is enabled but no prometheus binary is on PATH; install it \
                 (Debian: apt-get install prometheus) or pass --prometheus-binary"
            )
        })
}

/// What `create cluster` would do, as a shell script.
pub(super) fn dry_run_script(
    dir: &ClusterDir,
    config: &ClusterConfig,
    files: &[(PathBuf, String)],
    runtime: &dyn Runtime,
) -> String {
    let mut out = String::new();
    let root = dir.root().display();
    let _ = writeln!(
        out,
        "# kwokctl create cluster --name {} (dry run)",
        config.metadata.name
    );
    for folder in dir.folders() {
        let _ = writeln!(out, "mkdir -p {}", folder.display());
    }
    let _ = writeln!(
        out,
        "# generate the CA, serving and client certificates in {root}/pki"
    );
    if config.options.kwok_auth == crate::auth::KwokAuth::Token {
        let _ = writeln!(
            out,
            "# write kwok's random token to {} (the apiserver's --token-auth-file)",
            dir.pki().token_auth_file().display()
        );
    }
    let _ = writeln!(
        out,
        "# write {} and {root}/kubeconfigs/*.yaml",
        dir.kubeconfig().display()
    );
    let _ = writeln!(out, "# write {}", dir.config().display());
    for (path, text) in files {
        let _ = writeln!(out, "cat <<'EOF' >{}\n{}EOF", path.display(), with_newline(text));
    }
    out.push_str(&start_commands(dir, config, runtime));
    if let Some(c) = config.component(Component::MetricsServer) {
        let _ = writeln!(
            out,
            "# before {} starts: create its RBAC, the ExternalName Service kube-system/metrics-server \
             (127.0.0.1:{}) and the APIService {}; then wait until that is Available",
            c.name,
            c.port,
            metrics_server::API_SERVICE
        );
    }
    out
}

/// The commands that start `config`'s components, as a shell script (`create cluster`
/// and `start cluster` with `--dry-run`).
pub(super) fn start_commands(dir: &ClusterDir, config: &ClusterConfig, runtime: &dyn Runtime) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cd {}", dir.root().display());
    for c in &config.components {
        if let Some(image) = &c.image {
            let _ = writeln!(
                out,
                "# build image {image} from {} unless it holds that binary already",
                c.binary.display()
            );
        }
        let _ = writeln!(out, "{}", runtime.start_command(dir, c));
    }
    out
}

fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.into()
    } else {
        format!("{text}\n")
    }
}
