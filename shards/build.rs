//! Names the commit kwok is built from in `kwok --version` (`KWOK_SOURCE_COMMIT`), so
//! a benchmark's summary says which code ran, not which checkout ran it.

use std::process::Command;

/// The folders and files kwok is built from, relative to the workspace root.
const SOURCES: [&str; 6] = [
    "engine",
    "kubelet",
    "members",
    "shards",
    "Cargo.toml",
    "Cargo.lock",
];

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg("..")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        None => "commit unknown".to_owned(),
        Some(head) => {
            // No index refresh: writing the index would make the next build run this again.
            let mut status = vec![
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
            ];
            status.extend(SOURCES);
            match git(&status) {
                Some(changes) if !changes.is_empty() => format!("{head} + uncommitted changes"),
                _ => head,
            }
        }
    };
    println!("cargo:rustc-env=KWOK_SOURCE_COMMIT={commit}");
    // Again when HEAD moves (a commit, a checkout) or a source changes.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{branch}");
        }
    }
    for source in SOURCES {
        println!("cargo:rerun-if-changed=../{source}");
    }
}
