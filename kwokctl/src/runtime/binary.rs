//! The binary runtime: each component is a detached local process with a log file
//! and a pid file.
//!
//! # Ownership
//! A pid file names the process kwokctl started, whose working directory is the
//! cluster's folder. Before signalling a pid, the runtime checks that the process is
//! alive and still works in that folder, so a recycled pid of an unrelated process is
//! never killed. That check needs no configuration, so even a half-made cluster
//! whose `kwok.yaml` was never written is cleaned up.

use std::{
    collections::HashMap,
    fs::{self, OpenOptions},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::{Error, LogSource, Result, Runtime, Status};
use crate::{components::ComponentSpec, paths::ClusterDir};

/// How long a component gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Runs components as local processes.
#[derive(Debug, Default)]
pub struct BinaryRuntime {
    /// The processes this value started, by component: kwokctl's children, watched for
    /// an early exit and reaped when stopped (a zombie would look alive).
    children: Mutex<HashMap<String, Child>>,
}

impl Runtime for BinaryRuntime {
    fn name(&self) -> &'static str {
        "binary"
    }

    fn prepare(&self, _components: &mut [ComponentSpec], _dry_run: bool) -> Result<()> {
        Ok(())
    }

    /// Starts `component` detached (own process group, stdin closed, output appended
    /// to its log) and records its pid.
    fn start(&self, dir: &ClusterDir, component: &ComponentSpec) -> Result<()> {
        let err = |action, source| Error::Process {
            action,
            component: component.instance(),
            source,
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.log(component.instance()))
            .map_err(|e| err("open the log of", e))?;
        let child = Command::new(&component.binary)
            .args(&component.args)
            .envs(component.envs.iter().map(|e| (&e.name, &e.value)))
            .current_dir(dir.root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| err("open the log of", e))?)
            .stderr(log)
            // Its own process group: Ctrl-C in the shell that ran kwokctl does not reach it.
            .process_group(0)
            .spawn()
            .map_err(|e| err("start", e))?;
        fs::write(dir.pid(component.instance()), child.id().to_string())
            .map_err(|e| err("record the pid of", e))?;
        self.children().insert(component.instance(), child);
        Ok(())
    }

    fn exited(&self, _dir: &ClusterDir, name: &str) -> Option<String> {
        let mut children = self.children();
        let status = children.get_mut(name)?.try_wait().ok()??;
        Some(status.to_string())
    }

    /// The status of component `name` from its pid file.
    fn status(&self, dir: &ClusterDir, name: &str) -> Status {
        match read_pid(&dir.pid(name)) {
            Some(pid) if owned_by(pid, dir.root()) => Status::Running(pid),
            _ => Status::Stopped,
        }
    }

    /// Stops component `name` (SIGTERM, then SIGKILL after a grace period) and removes
    /// its pid file.
    fn stop(&self, dir: &ClusterDir, name: &str) -> Result<bool> {
        let pid_file = dir.pid(name);
        let stopped = match self.status(dir, name) {
            Status::Stopped => false,
            Status::Running(pid) => {
                terminate(name, pid)?;
                true
            }
        };
        let _ = fs::remove_file(&pid_file);
        if let Some(mut child) = self.children().remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(stopped)
    }

    /// Components with a pid file.
    fn known(&self, dir: &ClusterDir) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir.root().join("pids")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.path().file_stem()?.to_str().map(str::to_owned))
            .collect()
    }

    /// Processes leave nothing behind but the folder.
    fn remove_all(&self, _dir: &ClusterDir) -> Result<()> {
        Ok(())
    }

    fn log_source(&self, dir: &ClusterDir, name: &str, _follow: bool) -> LogSource {
        LogSource::File(dir.log(name))
    }

    fn start_command(&self, dir: &ClusterDir, c: &ComponentSpec) -> String {
        let envs: String = c
            .envs
            .iter()
            .map(|e| format!("{}={} ", e.name, crate::shell::quote(&e.value)))
            .collect();
        let args: Vec<String> = c.args.iter().map(|a| crate::shell::quote(a)).collect();
        format!(
            "{envs}{} {} >>{} 2>&1 &",
            c.binary.display(),
            args.join(" "),
            dir.log(c.instance()).display()
        )
    }

    fn stop_command(&self, dir: &ClusterDir, name: &str) -> Option<String> {
        match self.status(dir, name) {
            Status::Running(pid) => Some(format!("kill {pid} # {name}")),
            Status::Stopped => None,
        }
    }
}

impl BinaryRuntime {
    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Child>> {
        // A panic elsewhere cannot leave the map half-updated: take it as it is.
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`].
fn terminate(name: &str, pid: i32) -> Result<()> {
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    if !wait_gone(pid, STOP_GRACE) {
        let _ = kill(target, Signal::SIGKILL);
        if !wait_gone(pid, Duration::from_secs(5)) {
            return Err(Error::Unkillable {
                component: name.to_owned(),
                pid,
            });
        }
    }
    Ok(())
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is alive (not a zombie) and works in the cluster folder `root`.
fn owned_by(pid: i32, root: &Path) -> bool {
    let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
    alive(pid) && cwd.is_ok_and(|cwd| fs::canonicalize(root).is_ok_and(|root| cwd == root))
}

/// Whether `pid` exists and is not a zombie (an exited process nobody reaped yet).
fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_should_see_this_process_and_not_a_reaped_child() {
        assert!(alive(std::process::id() as i32));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn owned_by_should_require_the_cluster_folder_as_working_directory() {
        let me = std::process::id() as i32;
        let cwd = std::env::current_dir().unwrap();
        assert!(owned_by(me, &cwd));
        let other = tempfile::tempdir().unwrap();
        assert!(!owned_by(me, other.path()));
    }
}
