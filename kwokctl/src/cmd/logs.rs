//! `kwokctl logs COMPONENT [--follow]`.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use tokio::{
    fs::File,
    io::{self, AsyncReadExt, AsyncWriteExt},
};

use crate::{paths::Workdir, runtime::LogSource};

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

pub(super) async fn run(workdir: &Workdir, name: &str, component: &str, follow: bool) -> Result<()> {
    let (dir, config) = super::existing(workdir, name)?;
    if component == "audit" {
        if config.options.kube_audit_policy.is_none() {
            bail!("cluster {name:?} has no audit log: create it with --kube-audit-policy FILE");
        }
        return print_file(&dir.audit_log(), follow).await;
    }
    let component = config.running(name, component)?.instance();
    let runtime = crate::runtime::of(&config.options.runtime)?;
    match runtime.log_source(&dir, &component, follow) {
        LogSource::File(path) => print_file(&path, follow).await,
        LogSource::Command(mut command) => {
            let status = command
                .status()
                .with_context(|| format!("failed to run {}", runtime.name()))?;
            if !status.success() {
                bail!(
                    "{} could not print the log of {component} ({status})",
                    runtime.name()
                );
            }
            Ok(())
        }
    }
}

/// Prints `path`, and with `follow` what is appended to it after.
async fn print_file(path: &Path, follow: bool) -> Result<()> {
    let mut file = File::open(path)
        .await
        .with_context(|| format!("failed to open {}", path.display()))?;
    let mut stdout = io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n > 0 {
            stdout.write_all(&buf[..n]).await?;
            continue;
        }
        stdout.flush().await?;
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}
