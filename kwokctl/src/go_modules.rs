//! Wrapper modules for versions other than the pinned ones, generated on demand: a
//! `go.mod` that requires `k8s.io/kubernetes` (or etcd's server, etcdctl and etcdutl)
//! at that version, resolved by `go mod tidy` through the Go module proxy.
//!
//! `k8s.io/kubernetes` refers to its staging modules (`k8s.io/api`, …) as `v0.0.0`
//! with `replace` lines into its own tree, which a dependent module does not see; the
//! wrapper replaces each of them, as listed by that version's own go.mod, by its
//! published `v0.MINOR.PATCH`, as the pinned wrapper in `kwokctl/controlplane/` does.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    kube_version::staging_version,
    path_error::{PathError, on},
    pinned::KUBE_VERSION,
};

/// The module path of Kubernetes.
const KUBERNETES: &str = "k8s.io/kubernetes";

/// The commands the Kubernetes wrapper builds (as the embedded `tools.go`).
pub const KUBE_TOOLS_GO: &str = include_str!("../controlplane/kubernetes/tools.go");
/// etcd's `main` and `tools.go`, version-independent.
pub const ETCD_MAIN_GO: &str = include_str!("../controlplane/etcd/cmd/etcd/main.go");
/// etcdctl's and etcdutl's imports, version-independent.
pub const ETCD_TOOLS_GO: &str = include_str!("../controlplane/etcd/tools.go");

/// Marks a wrapper whose `go mod tidy` finished.
const COMPLETE: &str = ".complete";

/// Errors while generating a wrapper module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The proxy does not serve this Kubernetes version.
    #[error("Kubernetes {version} is not served by the Go module proxy; available: {}", available.join(", "))]
    NotServed {
        /// The version asked for.
        version: String,
        /// The releases the proxy lists, and the pinned one.
        available: Vec<String>,
    },
    /// The proxy could not be asked at all.
    #[error("cannot check Kubernetes {version} with the Go module proxy: {reason}")]
    Unreachable {
        /// The version asked for.
        version: String,
        /// go's last line of error output.
        reason: String,
    },
    /// A `go` command failed.
    #[error("`go {args}` failed in {dir}: {reason}")]
    Go {
        /// Its arguments.
        args: String,
        /// Where it ran.
        dir: PathBuf,
        /// go's last line of error output.
        reason: String,
    },
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] PathError),
}

/// Result of wrapper generation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `go` with the environment every call here needs: the local toolchain only, no
/// workspace file, no flags of the caller's (`-mod=readonly` would stop `tidy`).
fn go(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .output()
        .map_err(on("run go (Go 1.26 builds the control plane) in", dir))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(Error::Go {
        args: args.join(" "),
        dir: dir.into(),
        reason: last_line(&out.stderr),
    })
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

/// The Kubernetes releases the proxy lists (no pre-releases), oldest first, with the
/// pinned one among them.
pub fn served_kube_versions(dir: &Path) -> Result<Vec<String>> {
    let text = go(dir, &["list", "-m", "-versions", KUBERNETES])?;
    let mut versions: Vec<String> = text
        .split_whitespace()
        .skip(1)
        .filter(|v| !v.contains('-'))
        .map(str::to_owned)
        .collect();
    if !versions.contains(&KUBE_VERSION) {
        versions.push(KUBE_VERSION.clone());
    }
    versions.sort_by_key(|v| release_key(v));
    Ok(versions)
}

fn release_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

/// Checks the proxy serves Kubernetes `version`; an unserved version is
/// [`Error::NotServed`].
pub fn check_kube_served(version: &str) -> Result<()> {
    kubernetes_go_mod(version).map(drop)
}

/// Checks the proxy serves Kubernetes `version` and returns its go.mod's text. The
/// query runs outside any module (the temp folder), so it writes nothing.
fn kubernetes_go_mod(version: &str) -> Result<String> {
    let dir = &std::env::temp_dir();
    let query = format!("{KUBERNETES}@{version}");
    match go(dir, &["list", "-m", "-f", "{{.GoMod}}", &query]) {
        Ok(path) => {
            let path = PathBuf::from(path.trim());
            Ok(fs::read_to_string(&path).map_err(on("read", &path))?)
        }
        Err(Error::Go { reason, .. }) => match served_kube_versions(dir) {
            Ok(available) => Err(Error::NotServed {
                version: version.into(),
                available,
            }),
            Err(_) => Err(Error::Unreachable {
                version: version.into(),
                reason,
            }),
        },
        Err(other) => Err(other),
    }
}

/// The wrapper module's go.mod for Kubernetes `version`, from that version's own
/// go.mod (`upstream`): its `go` and `godebug` lines, and a `replace` for each staging
/// module it replaces into its tree.
pub fn kube_go_mod(version: &str, upstream: &str) -> String {
    let staging = staging_version(version);
    let mut go_line = "go 1.26.0".to_owned();
    let mut godebug = Vec::new();
    let mut replaces = Vec::new();
    for line in upstream.lines().map(str::trim) {
        if line.starts_with("go ") {
            go_line = line.to_owned();
        } else if line.starts_with("godebug ") {
            godebug.push(line.to_owned());
        } else if let Some((module, target)) = line.trim_start_matches("replace ").split_once("=>")
            && target.trim().starts_with("./staging/")
        {
            replaces.push(format!("\t{0} => {0} {staging}", module.trim()));
        }
    }
    let mut text = format!(
        "// Generated by kwokctl: Kubernetes {version} with its staging modules at {staging}.\n\
         module kwok-rs/controlplane/kubernetes\n\n{go_line}\n"
    );
    for line in godebug {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&format!("\nrequire {KUBERNETES} {version}\n\nreplace (\n"));
    for line in replaces {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(")\n");
    text
}

/// The wrapper module's go.mod for etcd `version`.
pub fn etcd_go_mod(version: &str) -> String {
    format!(
        "// Generated by kwokctl: etcd {version}.\n\
         module kwok-rs/controlplane/etcd\n\ngo 1.26.0\n\nrequire (\n\
         \tgo.etcd.io/etcd/etcdctl/v3 {version}\n\
         \tgo.etcd.io/etcd/etcdutl/v3 {version}\n\
         \tgo.etcd.io/etcd/server/v3 {version}\n)\n"
    )
}

/// Whether `dir` holds a finished wrapper.
pub fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE).exists()
}

/// Writes the Kubernetes `version` wrapper to `dir` and resolves it (`go mod tidy`),
/// unless a finished one is there. Nothing is written for a version the proxy does
/// not serve.
pub fn write_kube_module(dir: &Path, version: &str) -> Result<()> {
    if is_complete(dir) {
        return Ok(());
    }
    let upstream = kubernetes_go_mod(version)?;
    write_module(
        dir,
        &[
            ("go.mod", kube_go_mod(version, &upstream)),
            ("tools.go", KUBE_TOOLS_GO.into()),
        ],
    )
}

/// Writes the etcd `version` wrapper to `dir` and resolves it, unless a finished one
/// is there.
pub fn write_etcd_module(dir: &Path, version: &str) -> Result<()> {
    if is_complete(dir) {
        return Ok(());
    }
    write_module(
        dir,
        &[
            ("go.mod", etcd_go_mod(version)),
            ("tools.go", ETCD_TOOLS_GO.into()),
            ("cmd/etcd/main.go", ETCD_MAIN_GO.into()),
        ],
    )
}

fn create_dir(dir: &Path) -> Result<()> {
    Ok(fs::create_dir_all(dir).map_err(on("create", dir))?)
}

/// Writes `files` into a fresh `dir`, runs `go mod tidy`, then marks it complete; a
/// failure removes the folder again.
fn write_module(dir: &Path, files: &[(&str, String)]) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    let result = (|| {
        for (rel, text) in files {
            let path = dir.join(rel);
            create_dir(path.parent().unwrap_or(dir))?;
            fs::write(&path, text).map_err(on("write", &path))?;
        }
        go(dir, &["mod", "tidy"])?;
        let marker = dir.join(COMPLETE);
        Ok(fs::write(&marker, "").map_err(on("write", &marker))?)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(dir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = "module k8s.io/kubernetes\n\ngo 1.25.0\n\ngodebug default=go1.25\n\n\
        require (\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\
        \tk8s.io/api => ./staging/src/k8s.io/api\n\
        \tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\
        \tgithub.com/x/y => github.com/x/y v1.0.0\n)\n";

    #[test]
    fn kube_wrapper_should_replace_each_staging_module_by_its_v0_release() {
        let text = kube_go_mod("v1.35.8", UPSTREAM);
        assert!(text.contains("\ngo 1.25.0\n"), "{text}");
        assert!(text.contains("\ngodebug default=go1.25\n"), "{text}");
        assert!(text.contains("\nrequire k8s.io/kubernetes v1.35.8\n"), "{text}");
        assert!(text.contains("\tk8s.io/api => k8s.io/api v0.35.8\n"), "{text}");
        assert!(
            text.contains("\tk8s.io/client-go => k8s.io/client-go v0.35.8\n"),
            "{text}"
        );
        assert!(!text.contains("github.com/x/y"), "only staging modules: {text}");
    }

    /// The version path, resolved for real through the Go module proxy without a build:
    /// the wrapper for a second Kubernetes release resolves every package of the four
    /// commands, with the staging modules at that release's `v0` version.
    #[test]
    fn a_second_kubernetes_version_should_resolve_through_the_proxy() {
        let version = "v1.35.8";
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kubernetes");
        write_kube_module(&dir, version).unwrap();
        assert!(is_complete(&dir));
        let go_mod = fs::read_to_string(dir.join("go.mod")).unwrap();
        let replaces: Vec<&str> = go_mod.lines().filter(|l| l.contains("=> k8s.io/")).collect();
        assert!(replaces.len() >= 30, "{go_mod}");
        assert!(replaces.iter().all(|l| l.ends_with(" v0.35.8")), "{go_mod}");
        let api = go(&dir, &["list", "-m", "-f", "{{.Version}}", "k8s.io/api"]).unwrap();
        assert_eq!(api.trim(), "v0.35.8");
        let deps = go(
            &dir,
            &[
                "list",
                "-deps",
                "-f",
                "{{.ImportPath}}",
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
                "k8s.io/kubernetes/cmd/kubectl",
            ],
        )
        .unwrap();
        assert!(deps.lines().count() > 1000, "{} packages", deps.lines().count());
        assert!(deps.lines().any(|l| l == "k8s.io/apiserver/pkg/server"));
    }

    #[test]
    fn an_unserved_version_should_be_one_line_naming_the_served_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kubernetes");
        let err = write_kube_module(&dir, "v1.99.0").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::NotServed { .. }), "{text}");
        assert!(
            text.starts_with("Kubernetes v1.99.0 is not served by the Go module proxy; available: "),
            "{text}"
        );
        assert!(text.contains(&*KUBE_VERSION), "the pinned one is named: {text}");
        assert!(
            text.matches(", v1.").count() >= 3,
            "the served ones are named: {text}"
        );
        assert!(!text.contains('\n'), "{text}");
        assert!(!dir.exists(), "nothing written for it");
    }

    #[test]
    fn etcd_wrapper_should_pin_all_three_modules() {
        let text = etcd_go_mod("v3.6.10");
        assert_eq!(text.matches(" v3.6.10\n").count(), 3, "{text}");
    }
}
