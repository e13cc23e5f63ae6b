//! Finding the component binaries: an explicit path, then the cache, then `PATH`;
//! otherwise the Kubernetes and etcd release binaries are downloaded where the network
//! allows, and anything else is built from Go modules: the pinned ones embedded in
//! kwokctl, or wrappers generated for another Kubernetes version.

use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    download, go_modules,
    kube_version::Versions,
    path_error::{PathError, on},
    pinned::{
        ETCD_VERSION, JAEGER_SOURCES, JAEGER_VERSION, KECTL_VERSION, KUBE_VERSION, KWOK_VERSION,
        METRICS_SERVER_SOURCES, METRICS_SERVER_VERSION, SOURCES,
    },
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
    /// A release binary came but failed its checks (or its checksum could not be had).
    #[error("downloading {component} {version}: {source}")]
    Download {
        /// Component name.
        component: String,
        /// The version asked for.
        version: String,
        /// What went wrong.
        #[source]
        source: Box<download::Error>,
    },
    /// The wrapper module of another version could not be made (an unserved version).
    #[error(transparent)]
    Module(#[from] go_modules::Error),
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] PathError),
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

/// Where release binaries are downloaded from: upstream kwokctl's `kubeBinaryPrefix`
/// and `etcdBinaryPrefix`. `None` is upstream's release site for the version; an
/// empty prefix downloads nothing (binaries are built from Go modules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Downloads {
    /// Folder of `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`,
    /// `kubectl`, each beside its `.sha256`.
    pub kube_prefix: Option<String>,
    /// Folder of etcd's release tarball `etcd-<version>-linux-<arch>.tar.gz` and `SHA256SUMS`.
    pub etcd_prefix: Option<String>,
}

/// Upstream's Kubernetes release site: `<site>/<version>/bin/linux/<arch>/<component>`.
pub const KUBE_RELEASE_SITE: &str = "https://dl.k8s.io/release";
/// Upstream's etcd release site: `<site>/<version>/etcd-<version>-linux-<arch>.tar.gz`.
pub const ETCD_RELEASE_SITE: &str = "https://github.com/etcd-io/etcd/releases/download";

/// Go's name of this machine's architecture, as release file names use it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl Downloads {
    /// The prefixes `KWOK_KUBE_BINARY_PREFIX` and `KWOK_ETCD_BINARY_PREFIX` give.
    pub fn from_env() -> Self {
        Self {
            kube_prefix: std::env::var("KWOK_KUBE_BINARY_PREFIX").ok(),
            etcd_prefix: std::env::var("KWOK_ETCD_BINARY_PREFIX").ok(),
        }
    }

    fn prefix(given: &Option<String>, default: impl FnOnce() -> String) -> Option<String> {
        match given.as_deref().map(str::trim) {
            Some("") => None,
            Some(prefix) => Some(prefix.trim_end_matches('/').to_owned()),
            None => Some(default()),
        }
    }

    /// What to download for `binary` at `version`, if anything.
    fn source(&self, binary: Binary, version: &str) -> Option<Source> {
        match binary {
            Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl => {
                let prefix = Self::prefix(&self.etcd_prefix, || format!("{ETCD_RELEASE_SITE}/{version}"))?;
                Some(Source::Tarball {
                    url: format!("{prefix}/etcd-{version}-linux-{}.tar.gz", go_arch()),
                    member: binary,
                })
            }
            Binary::KubeApiserver
            | Binary::KubeControllerManager
            | Binary::KubeScheduler
            | Binary::Kubectl => {
                let prefix = Self::prefix(&self.kube_prefix, || {
                    format!("{KUBE_RELEASE_SITE}/{version}/bin/linux/{}", go_arch())
                })?;
                Some(Source::File {
                    url: format!("{prefix}/{}", binary.name()),
                })
            }
            _ => None,
        }
    }
}

/// A release file that holds a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The binary itself, its SHA-256 in `<url>.sha256`.
    File { url: String },
    /// A gzipped tarball holding it (and, for etcd, its siblings), its SHA-256 in the
    /// folder's `SHA256SUMS`.
    Tarball { url: String, member: Binary },
}

impl Source {
    /// A `--*-binary` URL: a tarball's member as upstream writes it (`<tar>#etcd`), a
    /// tarball (`.tar.gz`, member named after the component), or the binary.
    fn from_url(binary: Binary, url: &str) -> Self {
        match url.split_once('#') {
            Some((tar, _)) => Self::Tarball {
                url: tar.into(),
                member: binary,
            },
            None if url.ends_with(".tar.gz") || url.ends_with(".tgz") => Self::Tarball {
                url: url.into(),
                member: binary,
            },
            None => Self::File { url: url.into() },
        }
    }

    fn url(&self) -> &str {
        match self {
            Source::File { url } | Source::Tarball { url, .. } => url,
        }
    }
}

/// Finds binaries for one kwokctl invocation.
#[derive(Debug, Clone)]
pub struct Finder {
    cache: PathBuf,
    /// When a build must be stopped, if ever.
    deadline: Option<Instant>,
    /// The Kubernetes and etcd versions binaries are found for.
    versions: Versions,
    /// Where release binaries come from.
    downloads: Downloads,
    /// Release folders that could not be reached in this invocation, with why: the
    /// other binaries there are built without trying again.
    unreachable: Arc<Mutex<Vec<(String, String)>>>,
}

/// How often a running build is checked against the deadline.
const BUILD_POLL: Duration = Duration::from_millis(200);

impl Finder {
    /// A finder over the cache at `cache`, for the pinned versions, downloading from
    /// upstream's release sites.
    pub fn new(cache: impl Into<PathBuf>) -> Self {
        Self {
            cache: cache.into(),
            deadline: None,
            versions: Versions::pinned(),
            downloads: Downloads::default(),
            unreachable: Arc::default(),
        }
    }

    /// Stops a build still running at `deadline` (with its `go` processes) and fails
    /// with [`Error::Deadline`].
    #[must_use]
    pub fn deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Finds the Kubernetes and etcd binaries of `versions`.
    #[must_use]
    pub fn versions(mut self, versions: Versions) -> Self {
        self.versions = versions;
        self
    }

    /// Downloads release binaries from `downloads`.
    #[must_use]
    pub fn downloads(mut self, downloads: Downloads) -> Self {
        self.downloads = downloads;
        self
    }

    /// The cache folder.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// The version of `binary` this finder looks for.
    pub fn version_of(&self, binary: Binary) -> &str {
        match binary {
            Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl => &self.versions.etcd,
            Binary::KubeApiserver
            | Binary::KubeControllerManager
            | Binary::KubeScheduler
            | Binary::Kubectl => &self.versions.kube,
            other => other.version(),
        }
    }

    /// Where the cache keeps `binary` at the version this finder looks for.
    pub fn cache_path(&self, binary: Binary) -> PathBuf {
        let name = binary.name();
        self.cache.join(name).join(self.version_of(binary)).join(name)
    }

    /// Resolves `binary`: `explicit` if given (it must exist and have the version
    /// looked for; a URL counts once its download is cached), else the cache, else
    /// `PATH` (only at that version), else `None`: the caller downloads or builds what
    /// is missing with [`Finder::find_or_build`].
    pub fn find(&self, binary: Binary, explicit: Option<&Path>) -> Result<Option<PathBuf>> {
        let cached = self.cache_path(binary);
        if let Some(path) = explicit {
            if url_of(path).is_some() {
                return Ok(is_executable(&cached).then_some(cached));
            }
            if !is_executable(path) {
                return Err(Error::Missing {
                    component: binary.name().into(),
                    path: path.into(),
                });
            }
            check_version(binary, path, self.version_of(binary))?;
            return Ok(Some(path.into()));
        }
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
        Ok(on_path(binary.name()).filter(|p| check_version(binary, p, self.version_of(binary)).is_ok()))
    }

    /// Like [`Finder::find`], getting the Go-built binaries that are missing: the
    /// Kubernetes and etcd ones are downloaded from their release site (or
    /// `explicit`'s URL) where that can be reached, else built from Go modules.
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
        let note = self.try_download(binary, explicit)?;
        if is_executable(&self.cache_path(binary)) {
            return Ok(self.cache_path(binary));
        }
        self.build_noting(&[binary], note.as_deref())?;
        Ok(self.cache_path(binary))
    }

    /// Downloads, else builds, every binary of `binaries` missing from the cache
    /// (`kwokctl install`).
    pub fn install(&self, binaries: &[Binary]) -> Result<()> {
        let mut missing = Vec::new();
        let mut notes = Vec::new();
        for &binary in binaries {
            if is_executable(&self.cache_path(binary)) {
                continue;
            }
            if let Some(note) = self.try_download(binary, None)? {
                notes.push(note);
            }
            if !is_executable(&self.cache_path(binary)) {
                missing.push(binary);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        notes.dedup();
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        self.build_noting(&missing, note.as_deref())
    }

    /// Refuses a Kubernetes version the Go module proxy does not serve, before anything
    /// is downloaded or built for it. Nothing is asked for the pinned version or one
    /// whose binaries are cached, and a proxy that cannot be asked (no Go, no network)
    /// is left for the download or build to meet.
    pub fn check_served(&self) -> Result<()> {
        if self.versions.is_pinned_kube() || is_executable(&self.cache_path(Binary::KubeApiserver)) {
            return Ok(());
        }
        match go_modules::check_kube_served(&self.versions.kube) {
            Err(err @ go_modules::Error::NotServed { .. }) => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// [`Finder::find_or_build`], or in a dry run the path it would use, building nothing.
    pub fn locate(&self, binary: Binary, explicit: Option<&Path>, dry_run: bool) -> Result<PathBuf> {
        if dry_run {
            let found = self.find(binary, explicit)?;
            return Ok(found.unwrap_or_else(|| self.cache_path(binary)));
        }
        self.find_or_build(binary, explicit)
    }

    /// Downloads `binary` into the cache if it has a release source. `Ok(None)`: it is
    /// cached now, or has no source; `Ok(Some(why))`: it could not be had and is to be
    /// built. A file that came but failed its checks is an error.
    fn try_download(&self, binary: Binary, explicit: Option<&Path>) -> Result<Option<String>> {
        let version = self.version_of(binary).to_owned();
        let source = match explicit.and_then(url_of) {
            Some(url) => Some(Source::from_url(binary, url)),
            None => self.downloads.source(binary, &version),
        };
        let Some(source) = source else {
            return Ok(None);
        };
        let folder = source.url().rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        let known = self
            .unreachable
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|(f, _)| *f == folder)
            .map(|(_, why)| why.clone());
        if let Some(why) = known {
            return Ok(Some(why));
        }
        let _lock = self.lock()?;
        if is_executable(&self.cache_path(binary)) {
            return Ok(None);
        }
        match self.download(binary, &source) {
            Ok(()) => Ok(None),
            Err(Error::Download { source: err, .. }) if err.is_unavailable() => {
                let why = format!("cannot download {} {version} ({err})", binary.name());
                self.unreachable
                    .lock()
                    .expect("not poisoned")
                    .push((folder, why.clone()));
                Ok(Some(why))
            }
            Err(err) => Err(err),
        }
    }

    /// Fetches `source`, checks it, and puts `binary` (and a tarball's sibling
    /// binaries of the same version) into the cache.
    fn download(&self, binary: Binary, source: &Source) -> Result<()> {
        let version = self.version_of(binary).to_owned();
        let fail = |source| Error::Download {
            component: binary.name().into(),
            version: version.clone(),
            source: Box::new(source),
        };
        let dest = self.cache_path(binary);
        let result = self.fetch_into_cache(binary, source, &dest, fail);
        if result.is_err() {
            // Nothing of a refused download stays, not even its empty folders.
            if let Some(version_dir) = dest.parent() {
                let _ = fs::remove_dir(version_dir);
                let _ = version_dir.parent().map(fs::remove_dir);
            }
        }
        result
    }

    fn fetch_into_cache(
        &self,
        binary: Binary,
        source: &Source,
        dest: &Path,
        fail: impl Fn(download::Error) -> Error,
    ) -> Result<()> {
        let version = self.version_of(binary).to_owned();
        match source {
            Source::File { url } => {
                download::fetch_verified(url, download::Checksum::Sidecar, dest).map_err(&fail)?;
                use std::os::unix::fs::PermissionsExt as _;
                fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(on("chmod", dest))?;
            }
            Source::Tarball { url, member } => {
                let tarball = self.cache.join(".downloads").join(download::file_name(url));
                download::fetch_verified(url, download::Checksum::Sums, &tarball).map_err(&fail)?;
                // etcd's tarball holds etcdctl and etcdutl too: all are kept.
                let mut members = vec![(member.name(), self.cache_path(*member))];
                if matches!(member, Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl) {
                    for sibling in [Binary::Etcd, Binary::Etcdctl, Binary::Etcdutl] {
                        if sibling != *member {
                            members.push((sibling.name(), self.cache_path(sibling)));
                        }
                    }
                }
                let (wanted, siblings) = members.split_at(1);
                let extracted = download::extract(&tarball, url, wanted);
                let _ = download::extract(&tarball, url, siblings);
                let _ = fs::remove_file(&tarball);
                extracted.map_err(&fail)?;
            }
        }
        // A release of another version is not kept under this one's name.
        if let Err(err) = check_version(binary, dest, &version) {
            let _ = fs::remove_file(dest);
            return Err(err);
        }
        Ok(())
    }

    /// Builds `binaries` into the cache from the Go modules of this finder's versions
    /// (the embedded ones, or wrappers generated for other versions); what is cached
    /// is skipped. Progress (what is built, elapsed time) goes to stderr.
    pub fn build(&self, binaries: &[Binary]) -> Result<()> {
        self.build_noting(binaries, None)
    }

    /// The cache's lock: one download or build at a time per cache, as kwokctl runs
    /// started together (tests, scripts) would otherwise write the same files at once.
    /// A waiter then finds the binaries there. The lock goes with the file handle.
    fn lock(&self) -> Result<fs::File> {
        fs::create_dir_all(&self.cache).map_err(on("create", &self.cache))?;
        let lock_path = self.cache.join(".build.lock");
        let lock = fs::File::create(&lock_path).map_err(on("create", &lock_path))?;
        lock.lock().map_err(on("lock", &lock_path))?;
        Ok(lock)
    }

    /// [`Finder::build`], saying first in one line why a download did not do (`note`).
    fn build_noting(&self, binaries: &[Binary], note: Option<&str>) -> Result<()> {
        let _lock = self.lock()?;
        let src = self.sources(binaries)?;
        if let Some(note) = note {
            eprintln!("kwokctl: {note}; building from Go modules instead");
        }
        let names: Vec<&str> = binaries.iter().map(|b| b.name()).collect();
        let run_err = |source| on("run", &src.join("build.sh"))(source);
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

    /// Writes the Go modules for `binaries` to `cache/src/<versions>/` and returns that
    /// folder: the embedded ones, and for a Kubernetes or etcd version other than the
    /// pinned one a wrapper generated for it (resolved through the Go module proxy;
    /// a version it does not serve is refused before anything is written).
    fn sources(&self, binaries: &[Binary]) -> Result<PathBuf> {
        let v = &self.versions;
        let dir = self
            .cache
            .join("src")
            .join(format!("kubernetes-{}-etcd-{}", v.kube, v.etcd));
        let needs_kube = binaries.iter().any(|b| {
            matches!(
                b,
                Binary::KubeApiserver
                    | Binary::KubeControllerManager
                    | Binary::KubeScheduler
                    | Binary::Kubectl
            )
        });
        let needs_etcd = binaries
            .iter()
            .any(|b| matches!(b, Binary::Etcd | Binary::Etcdctl | Binary::Etcdutl));
        if needs_kube && !v.is_pinned_kube() {
            go_modules::write_kube_module(&dir.join("kubernetes"), &v.kube)?;
        }
        if needs_etcd && !v.is_pinned_etcd() {
            go_modules::write_etcd_module(&dir.join("etcd"), &v.etcd)?;
        }
        for (rel, text) in SOURCES
            .iter()
            .chain(&JAEGER_SOURCES)
            .chain(&METRICS_SERVER_SOURCES)
        {
            if (rel.starts_with("kubernetes/") && !v.is_pinned_kube())
                || (rel.starts_with("etcd/") && !v.is_pinned_etcd())
            {
                continue;
            }
            let path = dir.join(rel);
            let parent = path.parent().expect("embedded sources are in folders");
            fs::create_dir_all(parent).map_err(on("create", parent))?;
            fs::write(&path, text).map_err(on("write", &path))?;
        }
        Ok(dir)
    }
}

/// `path` as a URL, when it is one (`--kube-apiserver-binary https://…`).
fn url_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| download::is_url(s))
}

/// How upstream KWOK v0.8's `kwok --version` starts.
const UPSTREAM_KWOK_VERSION_PREFIX: &str = "kwok version v0.8.";

/// Runs `path` with its version flag and checks `expected` is in the output.
pub fn check_version(binary: Binary, path: &Path, expected: &str) -> Result<()> {
    // A binary just written may be "busy" for a moment: a process forked meanwhile by
    // another thread holds its write descriptor until it execs (a known Linux race,
    // seen in the unit tests). Tried again a few times before it counts as an error.
    let mut tries = 0;
    let output = loop {
        match Command::new(path).args(binary.version_args()).output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => {
                break result.map_err(on("run", path))?;
            }
        }
    };
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    // etcd prints "3.6.16" without the leading v. Upstream KWOK v0.8's kwok takes the
    // flags kwokctl passes, so it may stand in for ours (perf/ compares the two).
    let upstream_kwok = binary == Binary::Kwok && text.starts_with(UPSTREAM_KWOK_VERSION_PREFIX);
    if output.status.success() && (says_version(&text, expected) || upstream_kwok) {
        return Ok(());
    }
    Err(Error::WrongVersion {
        component: binary.name().into(),
        path: path.into(),
        expected: expected.into(),
        found: text.lines().next().unwrap_or("nothing").trim().into(),
    })
}

/// Whether a version output names `expected`, with or without its leading `v`, and
/// not as part of a longer number ("1.35.8" is not in "1.35.80").
fn says_version(text: &str, expected: &str) -> bool {
    let bare = expected.trim_start_matches('v');
    text.match_indices(bare).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + bare.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.') && !after.is_some_and(|c| c.is_ascii_digit())
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
        assert!(!finder.cache_path(Binary::Etcd).exists());
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
        assert!(check_version(Binary::Kwok, &upstream, KWOK_VERSION).is_ok());
        let old = fake("kwok-old", "kwok version v0.7.0 go1.24 (linux/amd64)");
        assert!(check_version(Binary::Kwok, &old, KWOK_VERSION).is_err());
        assert!(check_version(Binary::KubeApiserver, &upstream, &KUBE_VERSION).is_err());
        let k8s = fake("kube-apiserver", "Kubernetes v1.35.80");
        assert!(check_version(Binary::KubeApiserver, &k8s, "v1.35.8").is_err());
        assert!(check_version(Binary::KubeApiserver, &k8s, "v1.35.80").is_ok());
    }

    #[test]
    fn explicit_wrong_version_binary_should_be_rejected() {
        let err = check_version(Binary::Etcd, Path::new("/bin/true"), &ETCD_VERSION).unwrap_err();
        assert!(matches!(err, Error::WrongVersion { .. }), "{err}");
    }

    /// A loopback HTTP server answering `files` by path (404 otherwise); its base URL.
    fn serve(files: Vec<(String, Vec<u8>)>) -> String {
        use axum::{
            http::{StatusCode, Uri},
            response::IntoResponse as _,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let files: Arc<std::collections::HashMap<String, Vec<u8>>> = Arc::new(files.into_iter().collect());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(move |uri: Uri| {
                    let files = files.clone();
                    async move {
                        match files.get(uri.path()) {
                            Some(body) => (StatusCode::OK, body.clone()).into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        format!("http://{addr}")
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn says(text: &str) -> Vec<u8> {
        format!("#!/bin/sh\necho '{text}'\n").into_bytes()
    }

    /// Every file under `dir`, relative.
    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    const KUBE_PATH: &str = "/release/v1.35.8/bin/linux/amd64";

    fn finder_for(cache: &Path, kube_prefix: String, etcd_prefix: String) -> Finder {
        Finder::new(cache)
            .versions(Versions::for_kube(Some("v1.35.8")).unwrap())
            .downloads(Downloads {
                kube_prefix: Some(kube_prefix),
                etcd_prefix: Some(etcd_prefix),
            })
    }

    #[test]
    fn kubernetes_release_binaries_should_be_downloaded_checked_and_cached() {
        let apiserver = says("Kubernetes v1.35.8");
        let scheduler = says("Kubernetes v1.35.8 (scheduler)");
        let base = serve(vec![
            (format!("{KUBE_PATH}/kube-apiserver"), apiserver.clone()),
            (
                format!("{KUBE_PATH}/kube-apiserver.sha256"),
                sha256_hex(&apiserver).into_bytes(),
            ),
            ("/elsewhere/kube-scheduler".into(), scheduler.clone()),
            (
                "/elsewhere/kube-scheduler.sha256".into(),
                format!("{}  kube-scheduler\n", sha256_hex(&scheduler)).into_bytes(),
            ),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let finder = finder_for(cache.path(), format!("{base}{KUBE_PATH}/"), String::new());
        let path = finder.find_or_build(Binary::KubeApiserver, None).unwrap();
        assert_eq!(path, cache.path().join("kube-apiserver/v1.35.8/kube-apiserver"));
        assert_eq!(fs::read(&path).unwrap(), apiserver);
        assert!(is_executable(&path));
        // A per-component URL (`--kube-scheduler-binary URL`) is checked and cached too.
        let url = PathBuf::from(format!("{base}/elsewhere/kube-scheduler"));
        let path = finder.find_or_build(Binary::KubeScheduler, Some(&url)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), scheduler);
        assert_eq!(
            finder.find(Binary::KubeScheduler, Some(&url)).unwrap(),
            Some(path)
        );
        assert_eq!(
            files_under(cache.path()),
            [
                ".build.lock",
                "kube-apiserver/v1.35.8/kube-apiserver",
                "kube-scheduler/v1.35.8/kube-scheduler"
            ]
        );
    }

    #[test]
    fn a_download_with_a_wrong_or_missing_checksum_should_be_refused_with_nothing_cached() {
        let apiserver = says("Kubernetes v1.35.8");
        let base = serve(vec![
            (format!("{KUBE_PATH}/kube-apiserver"), apiserver.clone()),
            (
                format!("{KUBE_PATH}/kube-apiserver.sha256"),
                sha256_hex(b"something else").into_bytes(),
            ),
            (format!("{KUBE_PATH}/kube-scheduler"), apiserver.clone()),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let finder = finder_for(cache.path(), format!("{base}{KUBE_PATH}"), String::new());
        let err = finder
            .find_or_build(Binary::KubeApiserver, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "downloading kube-apiserver v1.35.8: {base}{KUBE_PATH}/kube-apiserver does not match its \
                 published SHA-256 ({base}{KUBE_PATH}/kube-apiserver.sha256: {}, got {}); nothing was kept",
                sha256_hex(b"something else"),
                sha256_hex(&apiserver)
            )
        );
        let err = finder
            .find_or_build(Binary::KubeScheduler, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "downloading kube-scheduler v1.35.8: {base}{KUBE_PATH}/kube-scheduler is not verified, so not kept: \
                 its checksum {base}{KUBE_PATH}/kube-scheduler.sha256: HTTP 404"
            )),
            "{err}"
        );
        assert_eq!(files_under(cache.path()), [".build.lock"]);
    }

    fn etcd_tarball(version: &str, members: &[&str]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for name in members {
            let body = says(&format!("{name} Version: {}", version.trim_start_matches('v')));
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            let path = format!("etcd-{version}-linux-{}/{name}", go_arch());
            tar.append_data(&mut header, path, body.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn etcd_should_come_from_its_release_tarball_checked_against_sha256sums() {
        let name = format!("etcd-v3.6.10-linux-{}.tar.gz", go_arch());
        let good = etcd_tarball("v3.6.10", &["etcd", "etcdctl", "etcdutl"]);
        let sums = format!(
            "{}  other.tar.gz\n{}  {name}\n",
            sha256_hex(b"x"),
            sha256_hex(&good)
        );
        let base = serve(vec![
            (format!("/good/v3.6.10/{name}"), good),
            ("/good/v3.6.10/SHA256SUMS".into(), sums.into_bytes()),
            (format!("/bad/v3.6.10/{name}"), etcd_tarball("v3.6.10", &["etcd"])),
            (
                "/bad/v3.6.10/SHA256SUMS".into(),
                format!("{}  {name}\n", sha256_hex(b"x")).into_bytes(),
            ),
        ]);
        let bad_cache = tempfile::tempdir().unwrap();
        let finder = finder_for(bad_cache.path(), String::new(), format!("{base}/bad/v3.6.10"));
        let err = finder.find_or_build(Binary::Etcd, None).unwrap_err().to_string();
        assert!(err.contains("does not match its published SHA-256"), "{err}");
        assert_eq!(files_under(bad_cache.path()), [".build.lock"]);

        let cache = tempfile::tempdir().unwrap();
        let finder = finder_for(cache.path(), String::new(), format!("{base}/good/v3.6.10"));
        let etcd = finder.find_or_build(Binary::Etcd, None).unwrap();
        assert_eq!(etcd, cache.path().join("etcd/v3.6.10/etcd"));
        // Its siblings came with it; the tarball is not kept.
        assert_eq!(
            files_under(cache.path()),
            [
                ".build.lock",
                "etcd/v3.6.10/etcd",
                "etcdctl/v3.6.10/etcdctl",
                "etcdutl/v3.6.10/etcdutl"
            ]
        );
        assert!(finder.find(Binary::Etcdutl, None).unwrap().is_some());
    }

    #[test]
    fn an_unreachable_release_site_should_fall_back_to_building() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let cache = tempfile::tempdir().unwrap();
        // The pinned version, and a build stopped at once: what matters is that the
        // download's failure led to a build rather than an error.
        let finder = Finder::new(cache.path())
            .downloads(Downloads {
                kube_prefix: Some(format!("http://127.0.0.1:{port}/release")),
                etcd_prefix: Some(String::new()),
            })
            .deadline(Some(Instant::now()));
        let err = finder.find_or_build(Binary::KubeScheduler, None).unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err}");
        assert!(!finder.cache_path(Binary::KubeScheduler).exists());
    }
}
