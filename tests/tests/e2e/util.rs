//! Shared fixtures: a `kwokctl` bound to a throw-away work dir, and process checks.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use tempfile::TempDir;

/// The folder of the built binaries: the test executable lives in `<target>/<profile>/deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// The shared binary cache.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KWOK_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".kwok/cache"))
}

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A kwokctl whose clusters and kubeconfig live in a temp dir removed on drop
/// (after deleting whatever clusters are left, so a failing test leaves no process).
pub struct Kwokctl {
    home: TempDir,
}

impl Kwokctl {
    pub fn new() -> Self {
        let bin = bin_dir().join("kwokctl");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --workspace --bins` first",
            bin.display()
        );
        Self {
            home: tempfile::Builder::new()
                .prefix("kwok-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The work dir (`KWOK_WORKDIR`).
    pub fn workdir(&self) -> PathBuf {
        self.home.path().join("kwok")
    }

    /// The user kubeconfig (`KUBECONFIG`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("kubeconfig")
    }

    /// The folder of cluster `name`.
    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.workdir().join("clusters").join(name)
    }

    /// Runs kwokctl with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin_dir().join("kwokctl"))
            .args(args)
            .env("KWOK_WORKDIR", self.workdir())
            .env("KWOK_CACHE_DIR", cache_dir())
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KWOK_NAME")
            .output()
            .expect("run kwokctl")
    }

    /// Runs kwokctl and returns stdout, panicking with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kwokctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kwokctl expecting failure; returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kwokctl {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Live processes whose command line mentions this work dir.
    pub fn processes(&self) -> Vec<u32> {
        processes_mentioning(&self.workdir())
    }
}

impl Drop for Kwokctl {
    fn drop(&mut self) {
        if self.workdir().join("clusters").exists() {
            let _ = self.run(&["delete", "cluster", "--all"]);
        }
    }
}

/// Live (non-zombie) processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_owned))
        })
        .is_none_or(|state| state == "Z" || state == "X")
}
