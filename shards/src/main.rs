//! The `kwok` controller binary: parse, resolve, run; errors are one line, exit 2.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{CommandFactory, FromArgMatches};
use kwok_engine::stage::load::Documents;
use kwok_shards::{
    controller, dryrun,
    flags::{Command, Flags, StageCommand},
    kwok_config, server,
    settings::{self, Settings},
};
use tokio::signal::unix::{SignalKind, signal};

// mimalloc holds up better than glibc malloc under many small per-object allocations.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Heap profiling: every allocation is tracked (slow); the profile is written on exit.
#[cfg(all(feature = "dhat-heap", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

#[tokio::main]
async fn main() -> ExitCode {
    #[cfg(all(feature = "dhat-heap", not(feature = "mimalloc")))]
    let _profiler = dhat::Profiler::new_heap();
    let matches = Flags::command().get_matches();
    let mut flags = match Flags::from_arg_matches(&matches) {
        Ok(flags) => flags,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| flags.log_level().into()),
        )
        // kwokctl sends the output to a log file: no colour codes there.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The --config files are read once: options of KwokConfiguration documents fill
    // the flags not given explicitly, Stage documents become the stages.
    let docs = match settings::read_documents(&flags.config)
        .and_then(|docs| kwok_config::apply(&mut flags, &matches, &docs).map(|()| docs))
    {
        Ok(docs) => docs,
        Err(err) => {
            eprintln!("kwok: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run(flags, docs).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kwok: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(flags: Flags, docs: Documents) -> Result<()> {
    if let Some(Command::Stage(StageCommand::Run(args))) = &flags.command {
        print!("{}", dryrun::run(args)?);
        return Ok(());
    }
    let settings = Settings::resolve(&flags, docs)?;
    let listener = server::bind(&flags.server_address).await?;
    let config = kwok_shards::config(&flags).await?;
    let client = kwok_shards::client::build(&config).context("failed to make the API client")?;
    let version = client
        .apiserver_version()
        .await
        .context("failed to reach the apiserver")?;
    tracing::info!(server_version = %version.git_version, shards = settings.shards, "connected");
    controller::run(client, config, settings, listener, shutdown()).await
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
