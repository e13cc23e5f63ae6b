//! `fake-apiserver`: a loopback-only stub of the Kubernetes API for measuring loadgen's
//! own create rate (see `perf/README.md` and `kwok_perf::fake_apiserver`).

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use kwok_perf::fake_apiserver::{FakeApiserver, Faults};

/// Serves a stub Kubernetes API on a loopback address: creates are echoed with 201,
/// lists are empty, watches stay quiet. Prints its URL on the first line of stdout.
#[derive(Debug, Parser)]
#[command(name = "fake-apiserver", version, about)]
struct Flags {
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for the stub here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Answer every Nth create with 429 Too Many Requests (0: never).
    #[arg(long, default_value_t = 0)]
    throttle_every: u64,
    /// Answer every Nth create that is not throttled with 503 (0: never).
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
    /// Retry-After seconds sent with a 429.
    #[arg(long, default_value_t = 1)]
    retry_after: u32,
}

async fn run(flags: Flags) -> Result<()> {
    let faults = Faults {
        throttle_every: flags.throttle_every,
        fail_every: flags.fail_every,
        retry_after_seconds: flags.retry_after,
    };
    let server = FakeApiserver::bind(flags.listen, faults).await?;
    if let Some(path) = &flags.kubeconfig {
        server.write_kubeconfig(path)?;
    }
    let mut out = std::io::stdout();
    writeln!(out, "http://{}", server.local_addr()).context("failed to print the address")?;
    out.flush().context("failed to print the address")?;
    server.serve().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Flags::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-apiserver: {e:#}");
            ExitCode::from(2)
        }
    }
}
