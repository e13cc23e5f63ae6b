//! `kwokctl port-forward COMPONENT LOCAL[:PORT]`: a TCP forwarder from a local port to a
//! component's port, until interrupted.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::paths::Workdir;

/// `port-forward` arguments.
#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// The component (e.g. kube-apiserver, etcd, prometheus).
    pub component: String,
    /// LOCAL:PORT, or LOCAL to forward to the component's own port; LOCAL 0 picks a free port.
    #[arg(value_name = "LOCAL:PORT")]
    pub ports: String,
}

pub(super) async fn run(workdir: &Workdir, name: &str, args: PortForwardArgs) -> Result<()> {
    let (_, config) = super::existing(workdir, name)?;
    let Some(component) = config.component(&args.component) else {
        let names: Vec<&str> = config.components.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "cluster {name:?} has no component {:?} (it has: {})",
            args.component,
            names.join(", ")
        );
    };
    let (local, remote) = parse_ports(&args.ports, component.port)?;
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .with_context(|| format!("failed to listen on 127.0.0.1:{local}"))?;
    let bound = listener.local_addr()?;
    println!("Forwarding from {bound} -> {}:127.0.0.1:{remote}", component.name);
    loop {
        let (inbound, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = forward(inbound, remote).await {
                warn!(%peer, "forwarding ended: {e}");
            }
        });
    }
}

async fn forward(mut inbound: TcpStream, remote: u16) -> std::io::Result<()> {
    let mut outbound = TcpStream::connect(("127.0.0.1", remote)).await?;
    let (up, down) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    info!(up, down, "connection closed");
    Ok(())
}

/// `LOCAL:PORT` or `LOCAL` (PORT is then `default`).
fn parse_ports(spec: &str, default: u16) -> Result<(u16, u16)> {
    let bad = || anyhow::anyhow!("ports {spec:?}: want LOCAL:PORT or LOCAL, e.g. 8080:{default}");
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (l, Some(r)),
        None => (spec, None),
    };
    let local = local.parse().map_err(|_| bad())?;
    let remote = match remote {
        Some(r) => r.parse().map_err(|_| bad())?,
        None => default,
    };
    Ok((local, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ports_should_take_local_and_optional_remote() {
        assert_eq!(parse_ports("8080:2379", 1).unwrap(), (8080, 2379));
        assert_eq!(parse_ports("0", 2379).unwrap(), (0, 2379));
        assert!(parse_ports("a:b", 1).is_err());
    }
}
