//! Upstream KWOK v0.8's Go module, the reference the compatibility tests compare with.
//! It is downloaded at test time into the Go module cache (nothing of it is kept in
//! this repository). The tests of several crates include this file with `#[path]`, so
//! all of them fetch the same version the same way.

use std::{path::PathBuf, process::Command};

const MODULE: &str = "sigs.k8s.io/kwok@v0.8.0";

/// The module's folder in the Go module cache, downloaded if absent.
pub fn dir() -> PathBuf {
    let out = Command::new("go")
        .args(["mod", "download", "-json", MODULE])
        .env("GOFLAGS", "-mod=mod")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("`go mod download {MODULE}` could not run (is Go installed?): {e}"));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`go mod download {MODULE}` failed: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    PathBuf::from(info["Dir"].as_str().expect("the module's Dir"))
}
