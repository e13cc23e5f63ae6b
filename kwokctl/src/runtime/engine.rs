//! A container engine's command line (`docker` or `podman`): run a subcommand, read
//! its answer, say in one line why it failed.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Error, Result};

/// How long an engine gets to answer `info`.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(20);

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Docker Engine (`dockerd`), through the `docker` client.
    Docker,
    /// Podman (daemonless).
    Podman,
}

/// A container engine's CLI.
#[derive(Debug, Clone)]
pub struct Engine {
    kind: EngineKind,
}

impl Engine {
    /// The engine of `kind`, found on `PATH`.
    pub fn new(kind: EngineKind) -> Self {
        Self { kind }
    }

    /// Which engine.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// The client program.
    pub fn program(&self) -> &'static str {
        match self.kind {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }

    /// How to get the engine answering, for the one-line error.
    fn how_to_start(&self) -> &'static str {
        match self.kind {
            EngineKind::Docker => {
                "start the Docker daemon (`sudo systemctl start docker`, or without systemd \
                 `sudo dockerd --iptables=false --bridge=none &`; Debian: `apt-get install docker.io`)"
            }
            EngineKind::Podman => "install podman and runc (`apt-get install podman runc`)",
        }
    }

    /// Fails unless the engine answers `info` (for runtime `runtime`).
    pub fn check(&self, runtime: &str) -> Result<()> {
        self.info().map_err(|detail| Error::NoEngine {
            runtime: runtime.to_owned(),
            detail,
            how: self.how_to_start(),
        })
    }

    /// Runs `<engine> info`; `Err` carries why the engine is not usable.
    fn info(&self) -> Result<(), String> {
        let program = self.program();
        let mut child = Command::new(program)
            .arg("info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                if status.success() {
                    return Ok(());
                }
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!("`{program} info` failed: {}", first_line(&stderr)));
            }
            if start.elapsed() > ENGINE_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{program} info` did not answer within {}s",
                    ENGINE_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command of this engine with `args`.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(self.program());
        command.args(args).stdin(Stdio::null());
        command
    }

    /// Runs `args`; its stdout, or an error naming the command and its first error line.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String> {
        let shown = || self.shell_line(args);
        let out = self.command(args).output().map_err(|e| Error::Engine {
            command: shown(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(Error::Engine {
                command: shown(),
                detail: first_line(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `args` as a shell line of this engine (`docker rm -f kwok-a-etcd`).
    pub fn shell_line<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let words: Vec<String> = args
            .iter()
            .map(|a| crate::shell::quote(&a.as_ref().to_string_lossy()))
            .collect();
        format!("{} {}", self.program(), words.join(" "))
    }

    /// The labels that mark a cluster's containers as one project, as upstream kwokctl
    /// sets them (podman-compose's label too under podman).
    pub fn project_labels(&self, project: &str) -> Vec<String> {
        let mut labels = vec![format!("com.docker.compose.project={project}")];
        if self.kind == EngineKind::Podman {
            labels.push(format!("io.podman.compose.project={project}"));
        }
        labels
    }

    /// Flags every container of this engine needs here. Podman (with runc) asks the
    /// kernel for its own default limits (1048576 open files) and is refused any limit
    /// above the caller's hard limit; give it the caller's hard limits instead, and no
    /// more processes than the kernel can number (conmon caps them at pid_max).
    pub fn run_flags(&self) -> Vec<String> {
        match self.kind {
            EngineKind::Docker => Vec::new(),
            EngineKind::Podman => {
                let (nofile, nproc) = limits();
                vec![
                    format!("--ulimit=nofile={nofile}:{nofile}"),
                    format!("--ulimit=nproc={nproc}:{nproc}"),
                ]
            }
        }
    }
}

/// The hard limits of open files and processes to give a podman container.
fn limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let nofile = hard_limit(&limits, "Max open files").unwrap_or(1024).min(1 << 20);
    let nproc = hard_limit(&limits, "Max processes").unwrap_or(4096).min(pid_max);
    (nofile, nproc)
}

/// The hard limit on the line of `/proc/self/limits` that starts with `name`
/// (`Max open files  20000  20000  files`); none when unlimited or absent.
fn hard_limit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().nth(1)?.parse().ok()
}

/// The first non-empty line of `text`, or a placeholder.
pub(super) fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_should_get_both_project_labels_and_explicit_limits() {
        let podman = Engine::new(EngineKind::Podman);
        assert_eq!(
            podman.project_labels("kwok-a"),
            [
                "com.docker.compose.project=kwok-a",
                "io.podman.compose.project=kwok-a"
            ]
        );
        let flags = podman.run_flags();
        assert!(flags[0].starts_with("--ulimit=nofile="), "{flags:?}");
        assert!(flags[1].starts_with("--ulimit=nproc="), "{flags:?}");
        let docker = Engine::new(EngineKind::Docker);
        assert_eq!(docker.project_labels("kwok-a").len(), 1);
        assert!(docker.run_flags().is_empty());
    }

    #[test]
    fn hard_limit_should_read_the_second_number_of_its_line() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             4096                 96362                processes\n\
                      Max open files            1024                 unlimited            files\n";
        assert_eq!(hard_limit(limits, "Max processes"), Some(96362));
        assert_eq!(hard_limit(limits, "Max open files"), None);
    }

    #[test]
    fn shell_line_should_quote_each_word() {
        let docker = Engine::new(EngineKind::Docker);
        assert_eq!(docker.shell_line(&["rm", "-f", "a b"]), "docker rm -f 'a b'");
    }
}
