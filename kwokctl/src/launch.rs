//! Starting a cluster's components in order and waiting until each answers healthy.
//!
//! # Recovery
//! [`Launch`] remembers every component it started. If one dies or a deadline passes,
//! [`Launch::abort`] stops them all, so a failed start leaves nothing running.

use std::time::{Duration, Instant};

use tracing::info;

use crate::{
    components::{ComponentSpec, sequential_prefix},
    paths::ClusterDir,
    probe::Prober,
    runtime::{Runtime, last_log_line},
};

/// Errors while bringing components up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component exited before it became healthy, or right after.
    #[error("{component} exited during start-up ({status}); its last log line: {last_log_line}")]
    Died {
        /// The component.
        component: String,
        /// Its exit status.
        status: String,
        /// The last non-empty line of its log.
        last_log_line: String,
    },
    /// A component did not become healthy in time.
    #[error("{component} was not healthy after {waited:?} ({last})")]
    Timeout {
        /// The component.
        component: String,
        /// How long we waited.
        waited: Duration,
        /// The last probe error.
        last: String,
    },
    /// The runtime could not start it.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
}

/// Result of launching.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Probe interval while waiting: short, since start-up takes seconds.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// How long every component must stay alive once all are healthy. Some exit only after
/// their health endpoint answered: kube-controller-manager starts its controllers after
/// winning its leader election, and one that cannot start exits the process (a
/// `--cluster-cidr` its nodes' podCIDRs lie outside, for one). Without this, `create`
/// and `start` said "started" while `get components` showed it stopped.
const SETTLE: Duration = Duration::from_secs(2);

/// Components started by one kwokctl command.
pub struct Launch<'a> {
    dir: &'a ClusterDir,
    runtime: &'a dyn Runtime,
    started: Vec<String>,
}

impl<'a> Launch<'a> {
    /// A launch into cluster folder `dir` by `runtime`.
    pub fn new(dir: &'a ClusterDir, runtime: &'a dyn Runtime) -> Self {
        Self {
            dir,
            runtime,
            started: Vec::new(),
        }
    }

    /// Starts `components`: those up to the apiserver ([`sequential_prefix`]) one at a
    /// time, each healthy before the next, then the rest together; then waits
    /// [`SETTLE`] to see that none of them exits once healthy.
    pub async fn run(
        &mut self,
        components: &[ComponentSpec],
        prober: &Prober,
        deadline: Instant,
    ) -> Result<()> {
        self.up(components, prober, deadline).await?;
        self.settle().await
    }

    /// [`Launch::run`] without the settling wait: for a first batch whose settling the
    /// next batch's [`Launch::run`] covers (it checks every component started so far).
    pub async fn up(
        &mut self,
        components: &[ComponentSpec],
        prober: &Prober,
        deadline: Instant,
    ) -> Result<()> {
        let split = sequential_prefix(components);
        let (first, rest) = components.split_at(split);
        for component in first {
            self.start(component)?;
            self.wait_healthy(std::slice::from_ref(component), prober, deadline)
                .await?;
        }
        for component in rest {
            self.start(component)?;
        }
        self.wait_healthy(rest, prober, deadline).await
    }

    /// Waits [`SETTLE`], failing if any component started so far exits meanwhile.
    async fn settle(&mut self) -> Result<()> {
        let settled = Instant::now() + SETTLE;
        while Instant::now() < settled {
            tokio::time::sleep(PROBE_INTERVAL).await;
            self.check_alive()?;
        }
        Ok(())
    }

    fn start(&mut self, component: &ComponentSpec) -> Result<()> {
        info!(component = %component.instance(), binary = %component.binary.display(), runtime = self.runtime.name(), "starting");
        // Recorded first: a container that was created and then failed to start is
        // still the launch's to stop.
        self.started.push(component.instance());
        self.runtime.start(self.dir, component)?;
        Ok(())
    }

    async fn wait_healthy(
        &mut self,
        components: &[ComponentSpec],
        prober: &Prober,
        deadline: Instant,
    ) -> Result<()> {
        let start = Instant::now();
        let mut pending: Vec<&ComponentSpec> = components.iter().collect();
        loop {
            self.check_alive()?;
            let mut still = Vec::new();
            let mut last = String::new();
            for component in pending {
                match prober.get(&component.health_url).await {
                    Ok(_) => info!(component = %component.instance(), elapsed = ?start.elapsed(), "healthy"),
                    Err(e) => {
                        last = e.to_string();
                        still.push(component);
                    }
                }
            }
            pending = still;
            let Some(first) = pending.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    component: first.instance(),
                    waited: start.elapsed(),
                    last,
                });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        for name in &self.started {
            if let Some(status) = self.runtime.exited(self.dir, name) {
                return Err(Error::Died {
                    component: name.clone(),
                    status,
                    last_log_line: last_log_line(self.runtime, self.dir, name),
                });
            }
        }
        Ok(())
    }

    /// Stops every component this launch started, newest first.
    pub fn abort(&mut self) {
        for name in self.started.drain(..).rev() {
            info!(component = %name, "stopping after failed start");
            let _ = self.runtime.stop(self.dir, &name);
        }
    }
}
