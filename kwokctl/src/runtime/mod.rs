//! Runtimes run components. `binary` runs them as local processes; `docker` and
//! `podman` run each one as a container from an image kwokctl builds locally from the
//! same binary, with the same command line. `nerdctl` and `kind` are recognised and
//! refused with what they lack.
//!
//! Every runtime sits behind [`Runtime`]: the commands (`create`, `start`, `stop`,
//! `delete`, `logs`, …) never ask which one they hold.

mod binary;
mod container;
mod engine;
pub mod image;

use std::path::PathBuf;

pub use binary::BinaryRuntime;
pub use container::ContainerRuntime;
pub use engine::{Engine, EngineKind};

use crate::{components::ComponentSpec, paths::ClusterDir};

/// Errors selecting or using a runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime name is not one kwokctl knows.
    #[error("unknown runtime {0:?}: use binary, docker, podman, nerdctl or kind")]
    Unknown(String),
    /// A container runtime was asked for and its engine does not answer.
    #[error("runtime {runtime}: {detail}; {how}")]
    NoEngine {
        /// The runtime asked for.
        runtime: String,
        /// What the engine check said.
        detail: String,
        /// How to start or install the engine.
        how: &'static str,
    },
    /// A runtime kwokctl-rs cannot drive on this machine, with what it lacks.
    #[error("runtime {runtime}: {lacks}; use --runtime binary, docker or podman")]
    Unsupported {
        /// The runtime asked for.
        runtime: String,
        /// What is missing.
        lacks: &'static str,
    },
    /// A process could not be started or stopped.
    #[error("failed to {action} {component}: {source}")]
    Process {
        /// What was being done.
        action: &'static str,
        /// The component.
        component: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A process did not stop.
    #[error("{component} (pid {pid}) did not exit after SIGKILL")]
    Unkillable {
        /// The component.
        component: String,
        /// Its pid.
        pid: i32,
    },
    /// A container engine command failed.
    #[error("{command} failed: {detail}")]
    Engine {
        /// The command, as a shell line (`docker start kwok-a-etcd`).
        command: String,
        /// Its first error line.
        detail: String,
    },
    /// An image could not be assembled.
    #[error("failed to build the image of {component}: {detail}")]
    Image {
        /// The component.
        component: String,
        /// Why.
        detail: String,
    },
}

/// Result of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The runtime names upstream kwokctl accepts.
pub const NAMES: [&str; 5] = ["binary", "docker", "podman", "nerdctl", "kind"];

/// Whether a component runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Running as this host pid.
    Running(i32),
    /// Not running (or not there at all).
    Stopped,
}

/// Where a component's log is read from.
#[derive(Debug)]
pub enum LogSource {
    /// A file the component appends to.
    File(PathBuf),
    /// A command that prints it (`docker logs NAME`), on stdout and stderr.
    Command(std::process::Command),
}

/// Runs the components of one cluster.
///
/// A cluster's runtime is named in its `kwok.yaml`; every method takes the cluster's
/// folder, so one value serves any cluster.
pub trait Runtime: std::fmt::Debug + Send + Sync {
    /// The runtime's name (`binary`, `docker`, …).
    fn name(&self) -> &'static str;

    /// Readies what `components` need before any starts: a container runtime builds
    /// (or finds, up to date) each one's image and records it in
    /// [`ComponentSpec::image`]; a dry run only names the images.
    fn prepare(&self, components: &mut [ComponentSpec], dry_run: bool) -> Result<()>;

    /// Starts `component` detached: it keeps running after kwokctl exits.
    fn start(&self, dir: &ClusterDir, component: &ComponentSpec) -> Result<()>;

    /// How component `name`, started by this value, ended, if it has (`exit status: 1`).
    fn exited(&self, dir: &ClusterDir, name: &str) -> Option<String>;

    /// Whether component `name` runs.
    fn status(&self, dir: &ClusterDir, name: &str) -> Status;

    /// Stops component `name`, gracefully first; whether something was stopped.
    fn stop(&self, dir: &ClusterDir, name: &str) -> Result<bool>;

    /// The components this runtime holds for the cluster (running or not), beyond
    /// those in its configuration: pid files, containers.
    fn known(&self, dir: &ClusterDir) -> Vec<String>;

    /// Removes whatever the runtime made for the cluster besides its folder (containers,
    /// networks, volumes); the components are stopped first.
    fn remove_all(&self, dir: &ClusterDir) -> Result<()>;

    /// Where component `name`'s log is read from; `follow` keeps printing new lines.
    fn log_source(&self, dir: &ClusterDir, name: &str, follow: bool) -> LogSource;

    /// The shell line that starts `component` (for `--dry-run`).
    fn start_command(&self, dir: &ClusterDir, component: &ComponentSpec) -> String;

    /// The shell line that stops component `name`, if it runs (for `--dry-run`).
    fn stop_command(&self, dir: &ClusterDir, name: &str) -> Option<String>;
}

/// The last non-empty line of component `name`'s log, the likeliest reason it died.
pub fn last_log_line(runtime: &dyn Runtime, dir: &ClusterDir, name: &str) -> String {
    let text = match runtime.log_source(dir, name, false) {
        LogSource::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
        LogSource::Command(mut command) => command
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
            .unwrap_or_default(),
    };
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty log)")
        .to_owned()
}

/// Selects the runtime called `name` for a command that starts components: a
/// container engine must answer.
pub fn select(name: &str) -> Result<Box<dyn Runtime>> {
    let runtime = of(name)?;
    if let Some(engine) = engine_of(name) {
        engine.check(name)?;
    }
    Ok(runtime)
}

/// The runtime called `name` without checking its engine: for commands that only
/// look, stop or remove (a stopped engine then shows every component stopped).
pub fn of(name: &str) -> Result<Box<dyn Runtime>> {
    match name {
        "binary" => Ok(Box::new(BinaryRuntime::default())),
        "docker" | "podman" => {
            let engine = engine_of(name).expect("docker and podman have engines");
            Ok(Box::new(ContainerRuntime::new(engine)))
        }
        "nerdctl" => Err(Error::Unsupported {
            runtime: name.into(),
            lacks: "kwokctl-rs does not drive nerdctl: its Go module (github.com/containerd/nerdctl) \
                    is not served by this machine's module proxy and no nerdctl is installed to test against",
        }),
        "kind" => Err(Error::Unsupported {
            runtime: name.into(),
            lacks: "kind needs the kind binary and a kind node image (kindest/node), and no image \
                    registry is reachable to pull one",
        }),
        other => Err(Error::Unknown(other.to_owned())),
    }
}

/// The engine a runtime drives, if it is a container runtime kwokctl runs.
pub fn engine_of(name: &str) -> Option<Engine> {
    match name {
        "docker" => Some(Engine::new(EngineKind::Docker)),
        "podman" => Some(Engine::new(EngineKind::Podman)),
        _ => None,
    }
}
