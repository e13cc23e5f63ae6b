//! `kwokctl get clusters|kubeconfig|components`.

use std::fs;

use anyhow::{Context as _, Result};

use crate::{
    flags::GetCommand,
    paths::Workdir,
    runtime::{BinaryRuntime, Status},
};

pub(super) fn run(workdir: &Workdir, name: &str, what: GetCommand) -> Result<()> {
    match what {
        GetCommand::Clusters => {
            for name in cluster_names(workdir)? {
                println!("{name}");
            }
        }
        GetCommand::Kubeconfig => {
            let (dir, _) = super::existing(workdir, name)?;
            let path = dir.kubeconfig();
            print!(
                "{}",
                fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?
            );
        }
        GetCommand::Artifacts => super::artifacts::run(workdir, name)?,
        GetCommand::Components => {
            let (dir, config) = super::existing(workdir, name)?;
            println!("{:<26}{:<10}{:<10}PORT", "NAME", "PID", "STATUS");
            for c in &config.components {
                let (pid, status) = match BinaryRuntime.status(&dir, &c.name) {
                    Status::Running(pid) => (pid.to_string(), "Running"),
                    Status::Stopped => ("-".into(), "Stopped"),
                };
                println!("{:<26}{pid:<10}{status:<10}{}", c.name, c.port);
            }
        }
    }
    Ok(())
}

/// Names of the clusters in the work dir, sorted.
pub(super) fn cluster_names(workdir: &Workdir) -> Result<Vec<String>> {
    let dir = workdir.clusters();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}
