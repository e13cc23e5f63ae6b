//! `kwokctl export logs DIR`: copies a cluster's logs (and its configuration) out.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;

use crate::paths::Workdir;

/// `export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Copies every log of the cluster (components and audit) and its kwok.yaml into DIR.
    Logs {
        /// Destination folder (created if missing).
        dir: PathBuf,
    },
}

pub(super) fn run(workdir: &Workdir, name: &str, what: ExportCommand) -> Result<()> {
    let ExportCommand::Logs { dir: dest } = what;
    let (dir, _) = super::existing(workdir, name)?;
    fs::create_dir_all(&dest).with_context(|| format!("failed to create {}", dest.display()))?;
    let mut copied = 0;
    let logs = dir.logs();
    let entries = fs::read_dir(&logs).with_context(|| format!("failed to list {}", logs.display()))?;
    let mut sources: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    sources.push(dir.config());
    sources.sort();
    for source in sources.iter().filter(|p| p.is_file()) {
        let target = dest.join(source.file_name().expect("a file has a name"));
        fs::copy(source, &target)
            .with_context(|| format!("failed to copy {} to {}", source.display(), target.display()))?;
        copied += 1;
    }
    println!(
        "Exported {copied} files of cluster {name:?} to {}",
        dest.display()
    );
    Ok(())
}
