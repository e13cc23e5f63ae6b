//! `loadgen`: creates many fake nodes and pods in a cluster and reports latencies.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kwok_loadgen::{
    RunOptions, Scenario,
    scenario::{PodKind, PodsUntil, Taint},
};
use tokio_util::sync::CancellationToken;

/// Drives a cluster with fake nodes and pods (managed by kwok) and measures, from watch
/// events, node created→Ready, pod created→scheduled→Running and delete→gone.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
struct Flags {
    /// Kubeconfig (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Scenario YAML file; the flags below override its fields.
    #[arg(long, short = 'f')]
    scenario: Option<PathBuf>,
    /// Scenario name in the report.
    #[arg(long)]
    name: Option<String>,
    /// Fake nodes to create.
    #[arg(long)]
    nodes: Option<u32>,
    /// Pods to create.
    #[arg(long)]
    pods: Option<u32>,
    /// How pods are made.
    #[arg(long, value_enum)]
    pod_kind: Option<PodKind>,
    /// Namespaces to spread pods over.
    #[arg(long)]
    namespaces: Option<u32>,
    /// Pods per Deployment or Job.
    #[arg(long)]
    pods_per_workload: Option<u32>,
    /// Target creates (and deletes) per second.
    #[arg(long)]
    rate: Option<u32>,
    /// Requests in flight at once.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Node capacity entry NAME=QUANTITY (repeatable; replaces the default capacity).
    #[arg(long, value_parser = key_value)]
    node_capacity: Vec<(String, String)>,
    /// Extra node label KEY=VALUE (repeatable).
    #[arg(long, value_parser = key_value)]
    node_label: Vec<(String, String)>,
    /// Node taint KEY[=VALUE]:EFFECT (repeatable; replaces the default kwok taint).
    #[arg(long, value_parser = taint)]
    node_taint: Vec<Taint>,
    /// Pods deleted and recreated per second once all are running.
    #[arg(long)]
    churn_rate: Option<u32>,
    /// How long churn lasts (Go-style duration: 10s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    churn_duration: Option<Duration>,
    /// Idle time once everything runs (soaks leases).
    #[arg(long, value_parser = humantime::parse_duration)]
    hold: Option<Duration>,
    /// Longest wait for each phase.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Send node and pod creates as server-side dry runs: measures the create rate only.
    #[arg(long)]
    dry_run: bool,
    /// Every pod claims one device of this DeviceClass (Dynamic Resource Allocation).
    #[arg(long)]
    device_class: Option<String>,
    /// Create bare pods bound to the nodes (`spec.nodeName`, round robin), leaving the
    /// scheduler out.
    #[arg(long)]
    bind_pods: bool,
    /// How far pods are taken: `running` or `scheduled` (bound, then deleted at once
    /// with nothing asked of a kubelet: for kwok without pod stages).
    #[arg(long, value_enum)]
    pods_until: Option<PodsUntil>,
    /// Leave what was created in place.
    #[arg(long)]
    keep: bool,
    /// Run id used in names and the run label (default: from the clock).
    #[arg(long)]
    run_id: Option<String>,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not KEY[=VALUE]:EFFECT"))?;
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    Ok(Taint {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: effect.to_owned(),
    })
}

impl Flags {
    /// The scenario file (or the default) with flags applied, checked.
    fn scenario(&self) -> Result<Scenario> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::load(path)?,
            None => Scenario::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = self.$f.clone() { s.$f = v; })* };
        }
        set!(
            name,
            nodes,
            pods,
            pod_kind,
            namespaces,
            pods_per_workload,
            rate,
            concurrency
        );
        set!(churn_rate, churn_duration, hold, timeout, pods_until);
        if !self.node_capacity.is_empty() {
            s.node_capacity = self.node_capacity.iter().cloned().collect();
        }
        s.node_labels.extend(self.node_label.iter().cloned());
        s.dry_run |= self.dry_run;
        s.bind_pods |= self.bind_pods;
        if self.device_class.is_some() {
            s.device_class = self.device_class.clone();
        }
        if !self.node_taint.is_empty() {
            s.node_taints = self.node_taint.clone();
        }
        s.validate()?;
        Ok(s)
    }
}

async fn client(flags: &Flags) -> Result<kube::Client> {
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        ..Default::default()
    };
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).with_context(|| format!("kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .context("failed to load kubeconfig")?;
    Ok(kwok_loadgen::client(config)?)
}

async fn run(flags: Flags) -> Result<bool> {
    let scenario = flags.scenario()?;
    let client = client(&flags).await?;
    client
        .apiserver_version()
        .await
        .context("failed to reach the apiserver")?;
    let cancel = CancellationToken::new();
    kwok_loadgen::cancel_on_signal(cancel.clone(), "loadgen: interrupted; stopping and cleaning up");
    let options = RunOptions {
        keep: flags.keep,
        keep_when_interrupted: false,
        progress: std::io::stderr().is_terminal(),
        run_id: flags.run_id.clone(),
        phases: None,
    };
    let report = kwok_loadgen::run(client, scenario, options, cancel).await?;
    match flags.output {
        Output::Table => print!("{}", report.table()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if let Some(why) = &report.stopped_because {
        bail!("run incomplete: {why}");
    }
    Ok(true)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOADGEN_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    match run(flags).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_should_override_defaults() {
        let f = Flags::try_parse_from(["loadgen", "--nodes", "20", "--node-taint", "a=b:NoExecute"]).unwrap();
        let s = f.scenario().unwrap();
        assert_eq!(s.nodes, 20);
        assert_eq!(
            s.node_taints,
            [Taint {
                key: "a".into(),
                value: "b".into(),
                effect: "NoExecute".into()
            }]
        );
    }

    #[test]
    fn bad_taint_effect_should_be_a_one_line_error() {
        let f = Flags::try_parse_from(["loadgen", "--node-taint", "a:Never"]).unwrap();
        let err = format!("{:#}", f.scenario().unwrap_err());
        assert!(
            err.contains("nodeTaints") && err.contains("Never") && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn malformed_flags_should_be_rejected_by_the_parser() {
        assert!(Flags::try_parse_from(["loadgen", "--node-label", "novalue"]).is_err());
        assert!(Flags::try_parse_from(["loadgen", "--node-taint", "noeffect"]).is_err());
        assert!(Flags::try_parse_from(["loadgen", "--churn-duration", "soon"]).is_err());
    }
}
