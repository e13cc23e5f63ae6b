//! HTTP `CONNECT`, so that the apiserver (its egress selection `cluster`) and
//! metrics-server (`HTTPS_PROXY`) reach every fake node through kwok whatever address
//! the node advertises: a template's `192.0.2.x`, a snapshot's real IPs.
//!
//! A tunnel to a loopback address goes there (the cluster's own components, e.g.
//! metrics-server behind its APIService); any other address is a fake node's, and its
//! tunnel ends at this server, whose kubelet API serves every node. Like the rest of
//! the server but health checks, it takes only clients with a verified certificate when
//! `--client-ca-file` is given.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where a tunnel to `authority` (`host:port`) goes, given this server's address.
pub fn destination(authority: &str, own: SocketAddr) -> Option<String> {
    let (host, port) = authority.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    Some(if loopback {
        authority.to_owned()
    } else {
        // A server bound to every address is reached on loopback.
        let ip = if own.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            own.ip()
        };
        SocketAddr::new(ip, own.port()).to_string()
    })
}

/// Answers a `CONNECT` (anything else: 404, as an unknown path), then carries bytes both
/// ways between the client and the destination until either closes.
pub async fn handle(mut request: Request, own: SocketAddr) -> Response {
    if request.method() != Method::CONNECT {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    let authority = request
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let Some(target) = destination(&authority, own) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("CONNECT needs host:port, got {authority:?}\n"),
        )
            .into_response();
    };
    let mut upstream = match TcpStream::connect(&target).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!(%authority, %target, %err, "CONNECT target unreachable");
            return (
                StatusCode::BAD_GATEWAY,
                format!("failed to dial {target} for {authority}: {err}\n"),
            )
                .into_response();
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
            }
            Err(err) => tracing::debug!(%err, "CONNECT client did not take the tunnel"),
        }
    });
    Response::new(Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_should_go_where_they_say_and_others_to_this_server() {
        let own: SocketAddr = "0.0.0.0:10247".parse().unwrap();
        assert_eq!(destination("127.0.0.1:4443", own).unwrap(), "127.0.0.1:4443");
        assert_eq!(destination("localhost:4443", own).unwrap(), "localhost:4443");
        assert_eq!(destination("[::1]:4443", own).unwrap(), "[::1]:4443");
        assert_eq!(destination("192.0.2.7:10250", own).unwrap(), "127.0.0.1:10247");
        assert_eq!(
            destination("[2001:db8::1]:10250", own).unwrap(),
            "127.0.0.1:10247"
        );
        let bound: SocketAddr = "10.1.2.3:9000".parse().unwrap();
        assert_eq!(destination("node-1:10250", bound).unwrap(), "10.1.2.3:9000");
        assert!(destination("no-port", own).is_none());
    }
}
