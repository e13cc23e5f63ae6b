//! `kwokctl export logs DIR`: copies a cluster's logs (and its configuration) out.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{
    config::ClusterConfig,
    flags::ExportCommand,
    paths::{ClusterDir, Workdir},
    runtime::{LogSource, Runtime},
};
use anyhow::{Context as _, Result, bail};

pub(super) fn run(workdir: &Workdir, name: &str, what: ExportCommand) -> Result<()> {
    let ExportCommand::Logs { dir: dest } = what;
    let (dir, config) = super::existing(workdir, name)?;
    let runtime = crate::runtime::of(&config.options.runtime)?;
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
    // A container runtime's component logs are the engine's, not files.
    for c in &config.components {
        let target = dest.join(format!("{}.log", c.instance()));
        if write_engine_log(runtime.as_ref(), &dir, &c.instance(), &target)? {
            copied += 1;
        }
    }
    println!(
        "Exported {copied} files of cluster {name:?} to {}",
        dest.display()
    );
    Ok(())
}

/// Writes component `name`'s log, when the engine keeps it, to `target` (stdout and
/// stderr interleaved as the engine prints them); whether there was such a log.
fn write_engine_log(runtime: &dyn Runtime, dir: &ClusterDir, name: &str, target: &Path) -> Result<bool> {
    let LogSource::Command(mut command) = runtime.log_source(dir, name, false) else {
        return Ok(false);
    };
    let file = fs::File::create(target).with_context(|| format!("failed to create {}", target.display()))?;
    let status = command
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("failed to read the log of {name}"))?;
    if !status.success() {
        bail!(
            "failed to read the log of {name} from {} ({status}); see {}",
            runtime.name(),
            target.display()
        );
    }
    Ok(true)
}

/// Copies the engine's logs of `config`'s components into the cluster's `logs/`
/// folder, best effort: a failed create keeps them there after its containers go.
pub(super) fn save_logs(runtime: &dyn Runtime, dir: &ClusterDir, config: &ClusterConfig) {
    for c in &config.components {
        let _ = write_engine_log(runtime, dir, &c.instance(), &dir.log(c.instance()));
    }
}
