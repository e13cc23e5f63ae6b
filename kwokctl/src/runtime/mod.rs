//! Runtimes run components. `binary` runs them as local processes; the container
//! runtimes are recognised and refused with the reason when no engine answers.

mod binary;
mod container;

pub use binary::{BinaryRuntime, Status};

/// Errors selecting or using a runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime name is not one kwokctl knows.
    #[error("unknown runtime {0:?}: use binary, docker, podman, nerdctl or kind")]
    Unknown(String),
    /// A container runtime was asked for and its engine is not reachable.
    #[error(
        "runtime {runtime}: no container engine is reachable on this machine ({detail}); use --runtime binary"
    )]
    NoEngine {
        /// The runtime asked for.
        runtime: String,
        /// What the engine check said.
        detail: String,
    },
    /// A container engine answers, but kwokctl only drives the binary runtime.
    #[error("runtime {0}: container runtimes are not implemented by kwokctl yet; use --runtime binary")]
    Unsupported(String),
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
}

/// Result of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The runtime names upstream kwokctl accepts.
pub const NAMES: [&str; 5] = ["binary", "docker", "podman", "nerdctl", "kind"];

/// Selects the runtime called `name`, checking that it can run here.
pub fn select(name: &str) -> Result<BinaryRuntime> {
    match name {
        "binary" => Ok(BinaryRuntime),
        "docker" | "podman" | "nerdctl" => container::refuse(name, name),
        // kind runs its nodes as docker (or podman) containers.
        "kind" => container::refuse(name, "docker"),
        other => Err(Error::Unknown(other.to_owned())),
    }
}
