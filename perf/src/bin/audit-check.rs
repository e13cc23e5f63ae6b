//! `audit-check AUDIT_LOG`: which kwok replica drove which node, read from a
//! kube-apiserver audit log, and whether any node was driven by two at once (see
//! `kwok_perf::audit` and `perf/README.md`).

use std::{fs::File, io::BufReader, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use clap::Parser;
use kwok_perf::audit;

/// Reads an audit log written under `perf/audit-policy.yaml` and reports each kwok's
/// writes, the nodes it drove, Lease take-overs and double drives. Exits 1 when a node
/// was driven by two kwoks at once, 2 when the log cannot be read.
#[derive(Debug, Parser)]
#[command(name = "audit-check", version, about)]
struct Flags {
    /// The audit log (JSON lines, `audit.k8s.io/v1` events).
    log: PathBuf,
    /// The node Lease duration the kwoks ran with (`--node-lease-duration-seconds`).
    #[arg(long, default_value_t = 40)]
    lease_seconds: u64,
    /// Double drives spelled out at most.
    #[arg(long, default_value_t = 20)]
    max_findings: usize,
    /// Print the policy the log must be written under, and exit.
    #[arg(long, exclusive = true)]
    print_policy: bool,
}

fn run(flags: &Flags) -> Result<audit::Report> {
    let file = File::open(&flags.log).with_context(|| format!("failed to open {}", flags.log.display()))?;
    let lease = Duration::from_secs(flags.lease_seconds);
    audit::check(BufReader::new(file), lease).with_context(|| flags.log.display().to_string())
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.print_policy {
        print!("{}", audit::POLICY);
        return ExitCode::SUCCESS;
    }
    match run(&flags) {
        Ok(report) => {
            print!("{}", report.summary(flags.max_findings));
            if report.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("audit-check: {err:#}");
            ExitCode::from(2)
        }
    }
}
