//! Drives a cluster with many fake nodes and pods and measures, from watch events, how
//! fast the control plane and kwok make them Ready, Running and gone.
//!
//! [`run::run`] carries out a [`scenario::Scenario`] and returns a [`report::Report`];
//! the `loadgen` binary is a thin CLI over it, and `perf/` calls it in-process.

pub mod devices;
pub mod driver;
pub mod measure;
pub mod objects;
pub mod report;
pub mod run;
pub mod scenario;
mod watch;

pub use report::Report;
pub use run::{RunOptions, run};
pub use scenario::Scenario;

/// A client for [`run`]: `config` with kube's built-in retry layer turned off, because
/// the run's driver retries throttling (429) and server errors itself and counts every
/// retry in the report; under kube's layer (on by default) they would go unseen.
pub fn client(mut config: kube::Config) -> kube::Result<kube::Client> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

/// Cancels `cancel` on the first SIGINT (Ctrl-C) or SIGTERM, printing `message`, so a
/// run stopped either way still reports and deletes what it made: `kill` and CI
/// timeouts send SIGTERM, which would otherwise end the process with its objects (and,
/// under `perf`, a whole control plane) left behind.
pub fn cancel_on_signal(cancel: tokio_util::sync::CancellationToken, message: &'static str) {
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                // Without the handler only Ctrl-C stops a run cleanly; wait on that alone.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            () = terminate => {}
        }
        eprintln!("{message}");
        cancel.cancel();
    });
}
