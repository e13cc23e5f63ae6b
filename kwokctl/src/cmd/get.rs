//! `kwokctl get clusters|kubeconfig|components|artifacts`.

use std::fs;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::{
    flags::{GetCommand, KubeconfigArgs, Output},
    paths::{ClusterDir, Workdir},
    pki,
    probe::Prober,
    runtime::Status,
};

pub(super) async fn run(workdir: &Workdir, name: &str, what: GetCommand) -> Result<()> {
    match what {
        GetCommand::Clusters(o) => clusters(workdir, o.output).await?,
        GetCommand::Kubeconfig(args) => {
            let (dir, _) = super::existing(workdir, name)?;
            print!("{}", kubeconfig(&dir, &args)?);
        }
        GetCommand::Artifacts(args) => super::artifacts::run(workdir, name, &args)?,
        GetCommand::Components(o) => {
            let (dir, config) = super::existing(workdir, name)?;
            let rows = component_states(&dir, &config).await;
            match o.output {
                Output::Name => rows.iter().for_each(|c| println!("{}", c.name)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Output::Wide => {
                    let mut table = vec![row(["NAME", "STATUS", "PID", "PORT"])];
                    for c in &rows {
                        let pid = c.pid.map_or("-".into(), |p| p.to_string());
                        table.push(vec![c.name.clone(), c.status.into(), pid, c.port.to_string()]);
                    }
                    print!("{}", tabulate(&table));
                }
            }
        }
    }
    Ok(())
}

/// A component as `get components -o wide|json` shows it.
#[derive(Debug, Serialize)]
struct ComponentState {
    name: String,
    /// `Ready` (health endpoint answers), `NotReady` (running, not healthy) or `Stopped`:
    /// upstream's words.
    status: &'static str,
    pid: Option<i32>,
    port: u16,
}

async fn component_states(dir: &ClusterDir, config: &crate::config::ClusterConfig) -> Vec<ComponentState> {
    // Without a readable kubeconfig nothing can be probed: running counts as NotReady.
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await.ok();
    let runtime = crate::runtime::of(&config.options.runtime).ok();
    let mut rows = Vec::with_capacity(config.components.len());
    for c in &config.components {
        let state = runtime.as_ref().map(|r| r.status(dir, &c.instance()));
        let (pid, status) = match state.unwrap_or(Status::Stopped) {
            Status::Stopped => (None, "Stopped"),
            Status::Running(pid) => {
                let healthy = match &prober {
                    Some(p) => p.get(&c.health_url).await.is_ok(),
                    None => false,
                };
                (Some(pid), if healthy { "Ready" } else { "NotReady" })
            }
        };
        rows.push(ComponentState {
            name: c.instance(),
            status,
            pid,
            port: c.port,
        });
    }
    rows
}

/// A cluster as `get clusters -o wide|json` shows it.
#[derive(Debug, Serialize)]
struct ClusterState {
    name: String,
    /// Ready components of all, e.g. `5/5`.
    ready: String,
    /// `Ready`, `NotReady`, `Stopped`, or `Failed: why` (upstream's words).
    status: String,
}

async fn clusters(workdir: &Workdir, output: Output) -> Result<()> {
    let names = cluster_names(workdir)?;
    if output == Output::Name {
        names.iter().for_each(|n| println!("{n}"));
        return Ok(());
    }
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let dir = workdir.cluster(&name);
        let state = match crate::config::ClusterConfig::load(&dir.config()) {
            Err(e) => ClusterState {
                name,
                ready: "0/0".into(),
                status: format!("Failed: {e}"),
            },
            Ok(config) => {
                let comps = component_states(&dir, &config).await;
                let ready = comps.iter().filter(|c| c.status == "Ready").count();
                let running = comps.iter().filter(|c| c.status != "Stopped").count();
                let status = match (ready, running) {
                    _ if ready == comps.len() && ready > 0 => "Ready",
                    (_, 0) => "Stopped",
                    _ => "NotReady",
                };
                ClusterState {
                    name,
                    ready: format!("{ready}/{}", comps.len()),
                    status: status.into(),
                }
            }
        };
        rows.push(state);
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut table = vec![row(["NAME", "READY", "STATUS"])];
    table.extend(rows.into_iter().map(|c| vec![c.name, c.ready, c.status]));
    print!("{}", tabulate(&table));
    Ok(())
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_owned()).collect()
}

/// Left-aligned columns separated by three spaces, as kubectl prints tables.
fn tabulate(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let last = r.len().saturating_sub(1);
        for (i, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.len() + 3));
            }
        }
        out.push('\n');
    }
    out
}

/// The cluster's admin kubeconfig with upstream's `get kubeconfig` edits: another
/// host, no server verification, or a client certificate for another user and groups.
fn kubeconfig(dir: &ClusterDir, args: &KubeconfigArgs) -> Result<String> {
    let path = dir.kubeconfig();
    let text = fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    let mut config: Value =
        serde_saphyr::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))?;
    let cluster = config
        .pointer_mut("/clusters/0/cluster")
        .and_then(Value::as_object_mut)
        .with_context(|| format!("{} names no cluster", path.display()))?;
    if !args.host.is_empty() {
        let server = cluster.get("server").and_then(Value::as_str).unwrap_or_default();
        let server = with_host(server, &args.host).with_context(|| format!("--host {:?}", args.host))?;
        cluster.insert("server".into(), server.into());
    }
    if args.insecure_skip_tls_verify {
        cluster.remove("certificate-authority-data");
        cluster.insert("insecure-skip-tls-verify".into(), true.into());
    }
    let default_groups = args.groups.len() == 1 && args.groups[0] == pki::ADMIN_GROUP;
    if args.user != pki::ADMIN_USER || !default_groups {
        let groups: Vec<&str> = args
            .groups
            .iter()
            .map(String::as_str)
            .filter(|g| !g.is_empty())
            .collect();
        let (cert, key) = pki::sign_client(&dir.pki(), &args.user, &groups)?;
        let user = config
            .pointer_mut("/users/0/user")
            .and_then(Value::as_object_mut)
            .with_context(|| format!("{} names no user", path.display()))?;
        use base64::Engine as _;
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        user.insert("client-certificate-data".into(), b64(&cert).into());
        user.insert("client-key-data".into(), b64(&key).into());
    }
    Ok(serde_saphyr::to_string(&config)?)
}

/// `server` with its host replaced: `host:port` replaces both, a bare host keeps the port.
fn with_host(server: &str, host: &str) -> Result<String> {
    let (scheme, rest) = server.split_once("://").unwrap_or(("https", server));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let has_port = |s: &str| match s.rsplit_once(':') {
        Some((h, p)) => {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    };
    let new = if has_port(host) {
        host.to_owned()
    } else {
        let Some((_, port)) = authority.rsplit_once(':').filter(|_| has_port(authority)) else {
            bail!("the server {server:?} has no port to keep");
        };
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    Ok(format!("{scheme}://{new}{path}"))
}

/// Names of the clusters in the work dir, sorted.
pub(super) fn cluster_names(workdir: &Workdir) -> Result<Vec<String>> {
    let dir = workdir.clusters();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_host_should_keep_the_port_of_a_bare_host() {
        let s = "https://127.0.0.1:6443";
        assert_eq!(with_host(s, "10.0.0.1").unwrap(), "https://10.0.0.1:6443");
        assert_eq!(
            with_host(s, "example.com:443").unwrap(),
            "https://example.com:443"
        );
        assert_eq!(with_host(s, "::1").unwrap(), "https://[::1]:6443");
        assert_eq!(with_host(s, "[::1]:7000").unwrap(), "https://[::1]:7000");
        assert!(with_host("https://example.com", "10.0.0.1").is_err());
    }

    #[test]
    fn tabulate_should_align_columns() {
        let t = tabulate(&[row(["NAME", "STATUS"]), row(["kube-apiserver", "Ready"])]);
        assert_eq!(t, "NAME             STATUS\nkube-apiserver   Ready\n");
    }
}
