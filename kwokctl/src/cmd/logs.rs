//! `kwokctl logs COMPONENT [--follow]`.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::{
    fs::File,
    io::{self, AsyncReadExt, AsyncWriteExt},
};

use crate::paths::Workdir;

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

pub(super) async fn run(workdir: &Workdir, name: &str, component: &str, follow: bool) -> Result<()> {
    let (dir, config) = super::existing(workdir, name)?;
    if component == "audit" {
        if config.options.kube_audit_policy.is_none() {
            bail!("cluster {name:?} has no audit log: create it with --kube-audit-policy FILE");
        }
    } else if config.component(component).is_none() {
        let names: Vec<&str> = config.components.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "cluster {name:?} has no component {component:?} (it has: {})",
            names.join(", ")
        );
    }
    let path = if component == "audit" {
        dir.audit_log()
    } else {
        dir.log(component)
    };
    let mut file = File::open(&path)
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
