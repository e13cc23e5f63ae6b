//! The `kwok` controller binary: parse, resolve, run; errors are one line, exit 2.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{CommandFactory, FromArgMatches};
use kwok_engine::stage::load::Documents;
use kwok_shards::{
    controller, dryrun,
    flags::{Command, Flags, StageCommand},
    kwok_config, otel, server,
    settings::{self, Settings},
    tls,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

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
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The --config files are read once: options of KwokConfiguration documents fill
    // the flags not given explicitly, Stage documents become the stages. They may name
    // the tracing endpoint, so their warnings go through a logger of their own.
    let log_level = flags.log_level();
    let early = tracing_subscriber::fmt()
        .with_env_filter(log_filter(log_level))
        .finish();
    let docs = tracing::subscriber::with_default(early, || {
        settings::read_documents(&flags.config)
            .and_then(|docs| kwok_config::apply(&mut flags, &matches, &docs).map(|()| docs))
    });
    let docs = match docs {
        Ok(docs) => docs,
        Err(err) => {
            eprintln!("kwok: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let _otel = match init_logs(&flags) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("kwok: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(flags, docs).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kwok: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags, docs: Documents) -> Result<()> {
    if let Some(Command::Stage(StageCommand::Run(args))) = &flags.command {
        print!("{}", dryrun::run(args)?);
        return Ok(());
    }
    let settings = Settings::resolve(&flags, docs)?;
    let tls = tls::load(
        flags.tls_cert_file.as_deref(),
        flags.tls_private_key_file.as_deref(),
        flags.client_ca_file.as_deref(),
    )?;
    let options = server::Options {
        tls,
        self_signed: flags.tls_cert_file.is_none(),
        client_auth: flags.client_ca_file.is_some(),
        profiling: flags.enable_profiling_handler,
    };
    let listener = server::bind(&flags.server_address, options).await?;
    let mut config = kwok_shards::config(&flags).await?;
    // Every client below is made from this config: all of them name this kwok.
    kwok_shards::client::identify(&mut config, &settings.id)?;
    let traced = !flags.tracing_endpoint.is_empty();
    let client = kwok_shards::client::build(&config, traced).context("failed to make the API client")?;
    // Stage writes go over an HTTP/2 connection apart from the watches' (see
    // `client` module docs: a watch sharing a connection with hundreds of writes falls
    // behind and the apiserver closes it).
    let writes =
        kwok_shards::client::build(&config, traced).context("failed to make the stage writes' API client")?;
    let version = client
        .apiserver_version()
        .await
        .context("failed to reach the apiserver")?;
    tracing::info!(server_version = %version.git_version, shards = settings.shards, "connected");
    controller::run(client, writes, config, settings, listener, shutdown()).await
}

/// `RUST_LOG` when set, else the `--v` level.
fn log_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into())
}

/// Logs to stdout; spans to `--tracing-endpoint` when one is given (the guard flushes
/// them at exit).
fn init_logs(flags: &Flags) -> Result<Option<otel::Guard>> {
    let logs = tracing_subscriber::fmt::layer()
        // kwokctl sends the output to a log file: no colour codes there.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_filter(otel::without_spans(log_filter(flags.log_level())));
    let config = otel::Config {
        endpoint: flags.tracing_endpoint.clone(),
        sampling_rate_per_million: flags.tracing_sampling_rate_per_million,
        instance: flags.id.clone().unwrap_or_else(|| "kwok".into()),
    };
    let (spans, guard) = otel::layer(&config)?.unzip();
    tracing_subscriber::registry().with(logs).with(spans).init();
    // Said once the subscriber exists; said inside `otel::layer` it went nowhere.
    if guard.is_some() {
        tracing::info!(
            endpoint = %config.endpoint,
            rate_per_million = config.sampling_rate_per_million,
            "exporting trace spans over OTLP/gRPC"
        );
    }
    Ok(guard)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
