//! `kwokctl port-forward COMPONENT LOCAL[:PORT]`: a TCP forwarder from a local port to a
//! component's port, until interrupted.

use anyhow::{Context as _, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::{component::Component, flags::PortForwardArgs, paths::Workdir};

pub(super) async fn run(workdir: &Workdir, name: &str, args: PortForwardArgs, dry_run: bool) -> Result<()> {
    let (_, config) = super::existing(workdir, name)?;
    let component = config.running(name, &args.component)?;
    let (local, remote) = parse_ports(&args.ports, component.port)?;
    let remote = match remote {
        Remote::Number(n) => n,
        Remote::Name(port) => port_named(&config, component, port)?,
    };
    if dry_run {
        println!(
            "# forward 127.0.0.1:{local} to {}:127.0.0.1:{remote}",
            component.instance()
        );
        return Ok(());
    }
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .with_context(|| format!("failed to listen on 127.0.0.1:{local}"))?;
    let bound = listener.local_addr()?;
    println!(
        "Forwarding from {bound} -> {}:127.0.0.1:{remote}",
        component.instance()
    );
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

/// The target of `LOCAL:PORT`.
#[derive(Debug, PartialEq, Eq)]
enum Remote<'a> {
    Number(u16),
    Name(&'a str),
}

/// `LOCAL:PORT` or `LOCAL` (PORT is then `default`).
fn parse_ports(spec: &str, default: u16) -> Result<(u16, Remote<'_>)> {
    let bad =
        || anyhow::anyhow!("ports {spec:?}: want LOCAL:PORT or LOCAL, e.g. 8080:{default} or 8080:http");
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (l, Some(r)),
        None => (spec, None),
    };
    let local = local.parse().map_err(|_| bad())?;
    let remote = match remote {
        None => Remote::Number(default),
        Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => {
            Remote::Number(r.parse().map_err(|_| bad())?)
        }
        Some("") => return Err(bad()),
        Some(name) => Remote::Name(name),
    };
    Ok((local, remote))
}

/// The port upstream's components name `name` (each TCP port has a name there).
fn port_named(
    config: &crate::config::ClusterConfig,
    component: &crate::components::ComponentSpec,
    name: &str,
) -> Result<u16> {
    let main = match component.name {
        Component::KubeApiserver | Component::KubeControllerManager | Component::KubeScheduler => "https",
        _ => "http",
    };
    let mut ports = vec![(main, component.port)];
    if component.name == Component::Etcd {
        ports.push(("peer-http", config.options.etcd_peer_port));
    }
    if let Some(otlp) = config
        .options
        .jaeger_otlp_grpc_port
        .filter(|_| component.name == Component::Jaeger)
    {
        ports.push(("otlp-grpc", otlp));
    }
    match ports.iter().find(|(n, _)| *n == name) {
        Some((_, port)) => Ok(*port),
        None => {
            let names: Vec<&str> = ports.iter().map(|(n, _)| *n).collect();
            bail!(
                "component {:?} has no port named {name:?} (it has: {})",
                component.name,
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ports_should_take_local_and_optional_remote() {
        assert_eq!(parse_ports("8080:2379", 1).unwrap(), (8080, Remote::Number(2379)));
        assert_eq!(parse_ports("0", 2379).unwrap(), (0, Remote::Number(2379)));
        assert_eq!(parse_ports("0:https", 1).unwrap(), (0, Remote::Name("https")));
        assert!(parse_ports("a:b", 1).is_err());
        assert!(parse_ports("1:", 1).is_err());
        assert!(parse_ports("1:9x", 1).is_err());
    }
}
