//! The `kwokctl` binary: parses flags, runs the command, maps errors to one line.

use std::process::ExitCode;

use clap::Parser;
use kwokctl::flags::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KWOK_LOG").unwrap_or_else(|_| "kwokctl=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // kube's TLS stack needs a process-wide crypto provider; ring keeps aws-lc out.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match kwokctl::cmd::run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kwokctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
