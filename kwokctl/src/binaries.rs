//! Finding the component binaries: an explicit path, then the cache, then `PATH`,
//! and otherwise building them from the pinned Go modules embedded in kwokctl.

use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::LazyLock,
    time::{Duration, Instant},
};

/// Errors while finding, checking or building a binary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path given explicitly does not exist or is not executable.
    #[error(
        "{component} binary {path} does not exist or is not executable{}",
        build_hint(component)
    )]
    Missing {
        /// Component name.
        component: String,
        /// The path that was given.
        path: PathBuf,
    },
    /// A binary reports another version than the pinned one.
    #[error("{component} binary {path} is not version {expected} (it says: {found})")]
    WrongVersion {
        /// Component name.
        component: String,
        /// The binary.
        path: PathBuf,
        /// The pinned version.
        expected: String,
        /// The first line it printed.
        found: String,
    },
    /// The Go build failed.
    #[error(
        "failed to build {components} from the pinned Go modules (exit status {status}); is Go 1.26 installed?"
    )]
    Build {
        /// Which components were being built.
        components: String,
        /// The build script's exit status.
        status: String,
    },
    /// The deadline passed during a build, which was stopped (the cache keeps only
    /// complete binaries).
    #[error("the deadline passed while building {components}; the build was stopped")]
    Deadline {
        /// Which components were being built.
        components: String,
    },
    /// An I/O error on a named path.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How to get a binary kwokctl can build, for a message about a missing one.
fn build_hint(component: &str) -> String {
    match component {
        "kwok" => String::new(),
        c => format!(
            "; leave its --{c}-binary out and kwokctl builds the pinned version (or: bash kwokctl/controlplane/build.sh {c})"
        ),
    }
}

/// Result of binary lookups.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The Go wrapper modules, embedded so an installed kwokctl can build the control
/// plane without a source checkout. Paths are relative to `kwokctl/controlplane/`.
const SOURCES: &[(&str, &str)] = &[
    ("build.sh", include_str!("../controlplane/build.sh")),
    (
        "kubernetes/go.mod",
        include_str!("../controlplane/kubernetes/go.mod"),
    ),
    (
        "kubernetes/go.sum",
        include_str!("../controlplane/kubernetes/go.sum"),
    ),
    (
        "kubernetes/tools.go",
        include_str!("../controlplane/kubernetes/tools.go"),
    ),
    ("etcd/go.mod", include_str!("../controlplane/etcd/go.mod")),
    ("etcd/go.sum", include_str!("../controlplane/etcd/go.sum")),
    ("etcd/tools.go", include_str!("../controlplane/etcd/tools.go")),
    (
        "etcd/cmd/etcd/main.go",
        include_str!("../controlplane/etcd/cmd/etcd/main.go"),
    ),
    ("kectl/go.mod", KECTL_GO_MOD),
    ("kectl/go.sum", include_str!("../controlplane/kectl/go.sum")),
    ("kectl/tools.go", include_str!("../controlplane/kectl/tools.go")),
];

/// kectl's wrapper module, which pins the version upstream KWOK v0.8 runs.
const KECTL_GO_MOD: &str = include_str!("../controlplane/kectl/go.mod");

/// Jaeger's wrapper module: built only for clusters that run Jaeger (`--jaeger-port`).
const JAEGER_SOURCES: [(&str, &str); 3] = [
    ("jaeger/go.mod", include_str!("../controlplane/jaeger/go.mod")),
    ("jaeger/go.sum", include_str!("../controlplane/jaeger/go.sum")),
    ("jaeger/tools.go", include_str!("../controlplane/jaeger/tools.go")),
];

/// metrics-server's wrapper module: built only for clusters that run it.
const METRICS_SERVER_SOURCES: [(&str, &str); 3] = [
    (
        "metrics-server/go.mod",
        include_str!("../controlplane/metrics-server/go.mod"),
    ),
    (
        "metrics-server/go.sum",
        include_str!("../controlplane/metrics-server/go.sum"),
    ),
    (
        "metrics-server/tools.go",
        include_str!("../controlplane/metrics-server/tools.go"),
    ),
];

/// The pinned metrics-server version, read from the embedded go.mod.
pub static METRICS_SERVER_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(METRICS_SERVER_SOURCES[0].1, "sigs.k8s.io/metrics-server"));

/// The pinned Jaeger version, read from the embedded go.mod.
pub static JAEGER_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(JAEGER_SOURCES[0].1, "github.com/jaegertracing/jaeger"));

/// The pinned Kubernetes version, read from the embedded go.mod.
pub static KUBE_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(SOURCES[1].1, "k8s.io/kubernetes"));

/// The pinned etcd version, read from the embedded go.mod.
pub static ETCD_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(SOURCES[4].1, "go.etcd.io/etcd/server/v3"));

/// The pinned kectl version, read from the embedded go.mod.
pub static KECTL_VERSION: LazyLock<String> =
    LazyLock::new(|| require_version(KECTL_GO_MOD, "github.com/kwok-ci/kectl"));

/// The version of this project's own binaries (`kwok`, `kwokctl`).
pub const KWOK_VERSION: &str = env!("CARGO_PKG_VERSION");

fn require_version(go_mod: &str, module: &str) -> String {
    go_mod
        .lines()
        .map(|l| l.trim().trim_start_matches("require").trim())
        .find_map(|l| {
            l.strip_prefix(module)?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("embedded go.mod does not require {module}"))
}

/// A component binary kwokctl knows how to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// etcd server.
    Etcd,
    /// etcdctl.
    Etcdctl,
    /// etcdutl (offline snapshot restore; etcdctl 3.6 no longer restores).
    Etcdutl,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// kubectl.
    Kubectl,
    /// kectl: kubectl-like commands straight on etcd (`kwokctl kectl`). Built on first
    /// use, not by `kwokctl install`: only that command needs it.
    Kectl,
    /// Jaeger all-in-one, for `--jaeger-port`. Built on first use, not by `kwokctl
    /// install`: a cold build takes minutes and most clusters never run it.
    Jaeger,
    /// metrics-server, for `--enable metrics-server`. Built on first use, like Jaeger.
    MetricsServer,
    /// This project's `kwok` controller.
    Kwok,
}

impl Binary {
    /// The binaries `kwokctl install` builds from the Go modules: the control plane and
    /// the tools kwokctl itself runs ([`Binary::Kectl`] is built on first use).
    pub const GO_BUILT: [Binary; 7] = [
        Binary::Etcd,
        Binary::Etcdctl,
        Binary::Etcdutl,
        Binary::KubeApiserver,
        Binary::KubeControllerManager,
        Binary::KubeScheduler,
        Binary::Kubectl,
    ];

    /// The file name.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Etcd => "etcd",
            Binary::Etcdctl => "etcdctl",
            Binary::Etcdutl => "etcdutl",
            Binary::KubeApiserver => "kube-apiserver",
            Binary::KubeControllerManager => "kube-controller-manager",
            Binary::KubeScheduler => "kube-scheduler",
            Binary::Kubectl => "kubectl",
            Binary::Kectl => "kectl",
            Binary::Jaeger => "jaeger",
            Binary::MetricsServer => "metrics-server",
            Binary::Kwok => "kwok",
        }
    }

    /// The pinned version.
    pub fn version(self) -> &'static str {
        match self {
            Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl => &ETCD_VERSION,
            Binary::Kwok => KWOK_VERSION,
            Binary::Jaeger => &JAEGER_VERSION,
            Binary::MetricsServer => &METRICS_SERVER_VERSION,
            Binary::Kectl => &KECTL_VERSION,
            _ => &KUBE_VERSION,
        }
    }

    /// The arguments that make it print its version.
    fn version_args(self) -> &'static [&'static str] {
        match self {
            Binary::Etcdctl | Binary::Etcdutl | Binary::Jaeger => &["version"],
            Binary::Kubectl => &["version", "--client"],
            _ => &["--version"],
        }
    }

    /// Where the cache keeps it.
    pub fn cache_path(self, cache: &Path) -> PathBuf {
        cache.join(self.name()).join(self.version()).join(self.name())
    }
}

/// Finds binaries for one kwokctl invocation.
#[derive(Debug, Clone)]
pub struct Finder {
    cache: PathBuf,
    /// When a build must be stopped, if ever.
    deadline: Option<Instant>,
}

/// How often a running build is checked against the deadline.
const BUILD_POLL: Duration = Duration::from_millis(200);

impl Finder {
    /// A finder over the cache at `cache`.
    pub fn new(cache: impl Into<PathBuf>) -> Self {
        Self {
            cache: cache.into(),
            deadline: None,
        }
    }

    /// Stops a build still running at `deadline` (with its `go` processes) and fails
    /// with [`Error::Deadline`].
    #[must_use]
    pub fn deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The cache folder.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// Resolves `binary`: `explicit` if given (it must exist and have the pinned
    /// version), else the cache, else `PATH` (only at the pinned version), else
    /// `None`: the caller builds what is missing with [`Finder::build`].
    pub fn find(&self, binary: Binary, explicit: Option<&Path>) -> Result<Option<PathBuf>> {
        if let Some(path) = explicit {
            if !is_executable(path) {
                return Err(Error::Missing {
                    component: binary.name().into(),
                    path: path.into(),
                });
            }
            check_version(binary, path)?;
            return Ok(Some(path.into()));
        }
        let cached = binary.cache_path(&self.cache);
        if is_executable(&cached) {
            return Ok(Some(cached));
        }
        match binary {
            Binary::Kwok => return Ok(sibling_of_current_exe(binary.name())),
            // kectl prints no version, so only the cache's (built from the pinned
            // module) is known to be the pinned one.
            Binary::Kectl => return Ok(None),
            _ => {}
        }
        Ok(on_path(binary.name()).filter(|p| check_version(binary, p).is_ok()))
    }

    /// Like [`Finder::find`], building the Go-built binaries that are missing.
    pub fn find_or_build(&self, binary: Binary, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = self.find(binary, explicit)? {
            return Ok(path);
        }
        if binary == Binary::Kwok {
            return Err(Error::Missing {
                component: "kwok".into(),
                path: "kwok (next to kwokctl or on PATH)".into(),
            });
        }
        self.build(&[binary])?;
        Ok(binary.cache_path(&self.cache))
    }

    /// [`Finder::find_or_build`], or in a dry run the path it would use, building nothing.
    pub fn locate(&self, binary: Binary, explicit: Option<&Path>, dry_run: bool) -> Result<PathBuf> {
        if dry_run {
            let found = self.find(binary, explicit)?;
            return Ok(found.unwrap_or_else(|| binary.cache_path(&self.cache)));
        }
        self.find_or_build(binary, explicit)
    }

    /// Builds `binaries` into the cache from the embedded Go modules; what is cached is skipped.
    /// Progress (what is built, elapsed time) goes to stderr.
    pub fn build(&self, binaries: &[Binary]) -> Result<()> {
        // One build at a time per cache: kwokctl runs started together (tests, scripts)
        // would otherwise write the same sources at once. A waiter then finds the
        // binaries built and build.sh skips them. The lock goes with the file handle.
        let io = |action, path: PathBuf| move |source| Error::Io { action, path, source };
        fs::create_dir_all(&self.cache).map_err(io("create", self.cache.clone()))?;
        let lock_path = self.cache.join(".build.lock");
        let lock = fs::File::create(&lock_path).map_err(io("create", lock_path.clone()))?;
        lock.lock().map_err(io("lock", lock_path))?;
        let src = self.unpack_sources()?;
        let names: Vec<&str> = binaries.iter().map(|b| b.name()).collect();
        let run_err = |source| Error::Io {
            action: "run",
            path: src.join("build.sh"),
            source,
        };
        let mut child = Command::new("bash")
            .arg(src.join("build.sh"))
            .args(&names)
            .env("KWOK_CACHE_DIR", &self.cache)
            // Its own process group, so a deadline stops `go` and the compilers too.
            .process_group(0)
            .spawn()
            .map_err(run_err)?;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(run_err)? {
                break status;
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(Error::Deadline {
                    components: names.join(", "),
                });
            }
            std::thread::sleep(BUILD_POLL);
        };
        if !status.success() {
            return Err(Error::Build {
                components: names.join(", "),
                status: status.to_string(),
            });
        }
        Ok(())
    }

    /// Writes the embedded Go modules to `cache/src/<versions>/` and returns that folder.
    fn unpack_sources(&self) -> Result<PathBuf> {
        let dir = self
            .cache
            .join("src")
            .join(format!("kubernetes-{}-etcd-{}", *KUBE_VERSION, *ETCD_VERSION));
        for (rel, text) in SOURCES
            .iter()
            .chain(&JAEGER_SOURCES)
            .chain(&METRICS_SERVER_SOURCES)
        {
            let path = dir.join(rel);
            let parent = path.parent().expect("embedded sources are in folders");
            fs::create_dir_all(parent).map_err(|source| Error::Io {
                action: "create",
                path: parent.into(),
                source,
            })?;
            fs::write(&path, text).map_err(|source| Error::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
        }
        Ok(dir)
    }
}

/// How upstream KWOK v0.8's `kwok --version` starts.
const UPSTREAM_KWOK_VERSION_PREFIX: &str = "kwok version v0.8.";

/// Runs `path` with its version flag and checks the pinned version is in the output.
pub fn check_version(binary: Binary, path: &Path) -> Result<()> {
    let expected = binary.version();
    let output = Command::new(path)
        .args(binary.version_args())
        .output()
        .map_err(|source| Error::Io {
            action: "run",
            path: path.into(),
            source,
        })?;
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    // etcd prints "3.6.16" without the leading v. Upstream KWOK v0.8's kwok takes the
    // flags kwokctl passes, so it may stand in for ours (perf/ compares the two).
    let upstream_kwok = binary == Binary::Kwok && text.starts_with(UPSTREAM_KWOK_VERSION_PREFIX);
    if output.status.success() && (text.contains(expected.trim_start_matches('v')) || upstream_kwok) {
        return Ok(());
    }
    Err(Error::WrongVersion {
        component: binary.name().into(),
        path: path.into(),
        expected: expected.into(),
        found: text.lines().next().unwrap_or("nothing").trim().into(),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn sibling_of_current_exe(name: &str) -> Option<PathBuf> {
    let sibling = std::env::current_exe().ok()?.with_file_name(name);
    if is_executable(&sibling) {
        Some(sibling)
    } else {
        on_path(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_should_come_from_the_embedded_go_mod() {
        assert!(KUBE_VERSION.starts_with("v1.36."), "{}", *KUBE_VERSION);
        assert!(ETCD_VERSION.starts_with("v3.6."), "{}", *ETCD_VERSION);
        assert_eq!(*JAEGER_VERSION, "v1.76.0", "upstream KWOK v0.8's Jaeger");
        assert_eq!(*KECTL_VERSION, "v0.0.10", "upstream KWOK v0.8's kectl");
        // Upstream KWOK v0.8 defaults to 0.8.1, which the module proxy does not serve.
        assert_eq!(*METRICS_SERVER_VERSION, "v0.8.0");
    }

    #[test]
    fn a_build_past_its_deadline_should_be_stopped_with_its_processes() {
        let cache = tempfile::tempdir().unwrap();
        let finder = Finder::new(cache.path()).deadline(Some(Instant::now()));
        let err = finder.build(&[Binary::Etcd]).unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the deadline passed while building etcd; the build was stopped"
        );
        assert!(!Binary::Etcd.cache_path(cache.path()).exists());
        // Nothing of the build runs on: no process names the cache.
        let needle = cache.path().to_string_lossy().into_owned();
        std::thread::sleep(Duration::from_millis(200));
        let left: Vec<String> = fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&needle))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn explicit_missing_binary_should_be_an_error_naming_it() {
        let finder = Finder::new("/nonexistent-cache");
        let err = finder
            .find(Binary::KubeApiserver, Some(Path::new("/nope/kube-apiserver")))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kube-apiserver binary /nope/kube-apiserver does not exist or is not executable; leave its \
             --kube-apiserver-binary out and kwokctl builds the pinned version (or: bash \
             kwokctl/controlplane/build.sh kube-apiserver)"
        );
    }

    #[test]
    fn upstream_kwok_v0_8_should_pass_as_kwok_but_not_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let fake = |name: &str, says: &str| {
            let path = dir.path().join(name);
            fs::write(&path, format!("#!/bin/sh\necho '{says}'\n")).unwrap();
            let mut perms = fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
            fs::set_permissions(&path, perms).unwrap();
            path
        };
        let upstream = fake("kwok-up", "kwok version v0.8.0 go1.26.8 (linux/amd64)");
        assert!(check_version(Binary::Kwok, &upstream).is_ok());
        let old = fake("kwok-old", "kwok version v0.7.0 go1.24 (linux/amd64)");
        assert!(check_version(Binary::Kwok, &old).is_err());
        assert!(check_version(Binary::KubeApiserver, &upstream).is_err());
    }

    #[test]
    fn explicit_wrong_version_binary_should_be_rejected() {
        let err = check_version(Binary::Etcd, Path::new("/bin/true")).unwrap_err();
        assert!(matches!(err, Error::WrongVersion { .. }), "{err}");
    }
}
