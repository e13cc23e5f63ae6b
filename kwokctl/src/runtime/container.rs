//! The container runtimes (`docker`, `podman`): each component runs as container
//! `kwok-<cluster>-<component>` (upstream kwokctl's name and project labels) from the
//! image [`super::image`] builds of its binary, with the binary runtime's exact command
//! line.
//!
//! # Layout
//! Containers share the host's network (`--network host`): every port is on loopback
//! as in the binary runtime, so probes, `kubectl`, `etcdctl` and the components' own
//! addresses need no translation, and no bridge or iptables rule is needed (Docker runs
//! here with `--iptables=false --bridge=none`). The cluster's folder is bind-mounted at
//! its own path and is the working directory, so every path in the arguments means the
//! same inside; any other absolute path an argument names (a `--config` file, an
//! `extraVolumes` host path) is mounted the same way. Containers run as the calling
//! user, so what they write (etcd's data, the audit log) is the user's to delete.
//!
//! # Lifecycle
//! `start` creates the container the first time and starts the existing one after
//! `stop cluster` (its log continues). There is no restart policy: a component that
//! dies stays stopped, as a process does, and `start cluster` restarts it. Logs are the
//! engine's (`docker logs`). `remove_all` removes every container with the cluster's
//! project label; kwokctl makes no networks or volumes, and removes any so labelled.

use std::path::PathBuf;

use tracing::info;

use super::{Engine, Error, LogSource, Result, Runtime, Status, image};
use crate::{components::ComponentSpec, paths::ClusterDir};

/// Seconds a component gets to exit after SIGTERM before the engine kills it.
const STOP_GRACE_SECS: u32 = 15;

/// Runs components as containers of one engine.
#[derive(Debug, Clone)]
pub struct ContainerRuntime {
    engine: Engine,
}

impl ContainerRuntime {
    /// A runtime driving `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The state of container `name`: `(running, pid, exit code)`; `None` when there is
    /// no such container.
    fn inspect(&self, container: &str) -> Option<(bool, i32, i32)> {
        let out = self
            .engine
            .run(&[
                "container",
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
                container,
            ])
            .ok()?;
        let mut words = out.split_whitespace();
        let running = words.next()? == "true";
        let pid = words.next()?.parse().ok()?;
        let code = words.next()?.parse().ok()?;
        Some((running, pid, code))
    }

    /// The names of the cluster's containers (by project label).
    fn containers(&self, dir: &ClusterDir) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", project(dir));
        self.engine
            .run(&["ps", "--all", "--filter", &label, "--format", "{{.Names}}"])
            .map(|out| {
                out.lines()
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `run` arguments of `component` (after the engine's name).
    fn run_args(&self, dir: &ClusterDir, component: &ComponentSpec) -> Result<Vec<String>> {
        let image = component.image.clone().ok_or_else(|| Error::Image {
            component: component.name.to_string(),
            detail: "the cluster's configuration names no image (was it made by the binary runtime?)".into(),
        })?;
        Ok(run_args(
            &self.engine,
            dir,
            component,
            &image,
            &user(),
            &mounts(dir, component),
        ))
    }

    /// Removes every resource of kind `what` (`network`, `volume`) with the cluster's label.
    fn remove_labelled(&self, dir: &ClusterDir, what: &str) -> Result<()> {
        let label = format!("label=com.docker.compose.project={}", project(dir));
        let names = self.engine.run(&[what, "ls", "--quiet", "--filter", &label])?;
        for name in names.split_whitespace() {
            self.engine.run(&[what, "rm", name])?;
        }
        Ok(())
    }
}

impl Runtime for ContainerRuntime {
    fn name(&self) -> &'static str {
        self.engine.program()
    }

    fn prepare(&self, components: &mut [ComponentSpec], dry_run: bool) -> Result<()> {
        for component in components {
            let version = image::version_of(component.name, &component.binary);
            let reference = image::reference(component.name, &version);
            if !dry_run {
                let outcome = image::ensure(&self.engine, component.name, &component.binary, &reference)?;
                info!(component = %component.name, image = %reference, ?outcome, "image ready");
            }
            component.image = Some(reference);
        }
        Ok(())
    }

    fn start(&self, dir: &ClusterDir, component: &ComponentSpec) -> Result<()> {
        let name = container_name(dir, &component.instance());
        if self.inspect(&name).is_some() {
            self.engine.run(&["start", &name])?;
            return Ok(());
        }
        // The image may be gone since create (`docker image rm`): build it again.
        if let Some(reference) = &component.image {
            image::ensure(&self.engine, component.name, &component.binary, reference)?;
        }
        self.engine.run(&self.run_args(dir, component)?)?;
        Ok(())
    }

    fn exited(&self, dir: &ClusterDir, name: &str) -> Option<String> {
        match self.inspect(&container_name(dir, name)) {
            Some((false, _, code)) => Some(format!("container exited with code {code}")),
            None => Some("container is gone".into()),
            Some((true, ..)) => None,
        }
    }

    fn status(&self, dir: &ClusterDir, name: &str) -> Status {
        match self.inspect(&container_name(dir, name)) {
            Some((true, pid, _)) => Status::Running(pid),
            _ => Status::Stopped,
        }
    }

    fn stop(&self, dir: &ClusterDir, name: &str) -> Result<bool> {
        let container = container_name(dir, name);
        match self.inspect(&container) {
            Some((true, ..)) => {
                self.engine
                    .run(&["stop", "--time", &STOP_GRACE_SECS.to_string(), &container])?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn known(&self, dir: &ClusterDir) -> Vec<String> {
        let prefix = format!("{}-", project(dir));
        self.containers(dir)
            .into_iter()
            .filter_map(|c| c.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    fn remove_all(&self, dir: &ClusterDir) -> Result<()> {
        let containers = self.containers(dir);
        if !containers.is_empty() {
            let mut args = vec!["rm".to_owned(), "--force".into(), "--volumes".into()];
            args.extend(containers);
            self.engine.run(&args)?;
        }
        self.remove_labelled(dir, "network")?;
        self.remove_labelled(dir, "volume")
    }

    fn log_source(&self, dir: &ClusterDir, name: &str, follow: bool) -> LogSource {
        let container = container_name(dir, name);
        let mut args = vec!["logs"];
        if follow {
            args.push("--follow");
        }
        args.push(&container);
        LogSource::Command(self.engine.command(&args))
    }

    fn start_command(&self, dir: &ClusterDir, component: &ComponentSpec) -> String {
        match self.run_args(dir, component) {
            Ok(args) => self.engine.shell_line(&args),
            Err(e) => format!("# {e}"),
        }
    }

    fn stop_command(&self, dir: &ClusterDir, name: &str) -> Option<String> {
        let container = container_name(dir, name);
        matches!(self.inspect(&container), Some((true, ..))).then(|| {
            self.engine
                .shell_line(&["stop", "--time", &STOP_GRACE_SECS.to_string(), &container])
        })
    }
}

/// The project of a cluster's containers, as upstream names it: `kwok-<cluster>`.
fn project(dir: &ClusterDir) -> String {
    format!("kwok-{}", dir.name())
}

/// The container of component `name`: `kwok-<cluster>-<name>`.
pub fn container_name(dir: &ClusterDir, name: &str) -> String {
    format!("{}-{name}", project(dir))
}

/// `uid:gid` of the caller (the owner of `/proc/self`): containers write the user's
/// files as the user.
fn user() -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(me) => format!("{}:{}", me.uid(), me.gid()),
        Err(_) => "0:0".into(),
    }
}

/// What `component` reads and writes: the cluster folder, then every other absolute
/// path an argument names that exists on the host, outermost first, each once.
fn mounts(dir: &ClusterDir, component: &ComponentSpec) -> Vec<PathBuf> {
    let root = dir.root().to_path_buf();
    let mut mounts = vec![root.clone()];
    let named = component
        .args
        .iter()
        .flat_map(|arg| arg.split(['=', ',', ':']))
        .chain(component.envs.iter().flat_map(|e| e.value.split([',', ':'])))
        // "/" alone would mount the whole host.
        .filter(|word| word.starts_with('/') && word.len() > 1)
        .map(PathBuf::from)
        .filter(|path| path.exists());
    for path in named {
        if !mounts.iter().any(|m| path.starts_with(m)) {
            mounts.retain(|m| !m.starts_with(&path));
            mounts.push(path);
        }
    }
    mounts
}

/// The `run` arguments: detached, named and labelled as upstream, host network,
/// the caller's user, `mounts` at their own paths, the cluster folder as working
/// directory, the component's environment, then the image and its arguments.
fn run_args(
    engine: &Engine,
    dir: &ClusterDir,
    component: &ComponentSpec,
    image: &str,
    user: &str,
    mounts: &[PathBuf],
) -> Vec<String> {
    let project = project(dir);
    let mut args = vec![
        "run".to_owned(),
        "--detach".into(),
        format!("--name={}", container_name(dir, &component.instance())),
        "--pull=never".into(),
        "--network=host".into(),
        format!("--user={user}"),
        format!("--workdir={}", dir.root().display()),
    ];
    args.extend(
        engine
            .project_labels(&project)
            .into_iter()
            .map(|l| format!("--label={l}")),
    );
    args.extend(engine.run_flags());
    args.extend(mounts.iter().map(|m| {
        let m = m.display();
        format!("--volume={m}:{m}")
    }));
    args.extend(
        component
            .envs
            .iter()
            .map(|e| format!("--env={}={}", e.name, e.value)),
    );
    args.push(image.to_owned());
    args.extend(component.args.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{component::Component, runtime::EngineKind};

    fn component(args: &[&str]) -> ComponentSpec {
        ComponentSpec {
            name: Component::KubeScheduler,
            replica: 0,
            binary: "/c/kube-scheduler/v1/kube-scheduler".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            port: 1,
            health_url: String::new(),
            envs: Vec::new(),
            image: Some("localhost/kwok-rs/kube-scheduler:v1".into()),
        }
    }

    #[test]
    fn run_args_should_name_label_and_mount_as_upstream_on_the_host_network() {
        let dir = crate::paths::Workdir::from_env().cluster("c1");
        let c = component(&["--secure-port=1"]);
        let engine = Engine::new(EngineKind::Docker);
        let root = dir.root().display().to_string();
        let args = run_args(&engine, &dir, &c, "img:1", "1000:1000", &[dir.root().into()]);
        assert_eq!(
            args,
            [
                "run",
                "--detach",
                "--name=kwok-c1-kube-scheduler",
                "--pull=never",
                "--network=host",
                "--user=1000:1000",
                &format!("--workdir={root}"),
                "--label=com.docker.compose.project=kwok-c1",
                &format!("--volume={root}:{root}"),
                "img:1",
                "--secure-port=1",
            ]
        );
    }

    #[test]
    fn mounts_should_add_outside_paths_once_and_skip_missing_ones() {
        let dir = crate::paths::Workdir::from_env().cluster("c1");
        let outside = tempfile::tempdir().unwrap();
        let file = outside.path().join("a.yaml");
        std::fs::write(&file, "").unwrap();
        let inner = dir.root().join("pki/ca.crt");
        let c = component(&[
            &format!("--config={}", file.display()),
            &format!("--files={},{}", file.display(), outside.path().display()),
            &format!("--client-ca-file={}", inner.display()),
            "--missing=/no/such/path",
            "--bind-address=127.0.0.1",
        ]);
        let mounts = mounts(&dir, &c);
        assert_eq!(mounts, [dir.root().to_path_buf(), outside.path().to_path_buf()]);
    }
}
