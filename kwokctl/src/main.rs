//! The `kwokctl` binary: parses flags, runs the command, maps errors to one line.

use std::process::ExitCode;

use kwokctl::flags::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_passing_through(std::env::args_os());
    let level = cli.verbosity.map_or("warn", kwok_engine::verbosity::filter_name);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KWOK_LOG")
                .unwrap_or_else(|_| format!("kwokctl={level}").into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // kube's TLS stack needs a process-wide crypto provider; ring keeps aws-lc out.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match kwokctl::cmd::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kwokctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
