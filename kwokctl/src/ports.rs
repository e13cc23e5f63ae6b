//! Loopback ports: pick free ones, and refuse ones in use with a clear message.

use std::{
    net::{Ipv4Addr, TcpListener},
    ops::Range,
};

use rand::Rng as _;

/// Free ports are picked from here up to the kernel's ephemeral range: a port picked,
/// then let go just before its component binds it, cannot meanwhile become the local
/// port of an outgoing connection (the kernel takes those from the ephemeral range, and
/// many run beside a cluster: its own components' clients, other clusters, tests).
const PICK_FROM: u16 = 20000;
/// Random tries in that range before falling back to any port the kernel gives.
const PICK_TRIES: usize = 256;

/// The range free ports are picked from, when the ephemeral range leaves room below it.
fn pick_range() -> Option<Range<u16>> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (low > PICK_FROM + 1000).then_some(PICK_FROM..low)
}

/// A port that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something already listens on the port.
    #[error("port {port} for {what} is already in use on 127.0.0.1")]
    InUse {
        /// The port.
        port: u16,
        /// Which flag or component wanted it.
        what: String,
    },
    /// The same port was asked for twice.
    #[error("port {port} is given to both {first} and {second}")]
    Duplicate {
        /// The port.
        port: u16,
        /// First user.
        first: String,
        /// Second user.
        second: String,
    },
    /// The OS gave no free port.
    #[error("failed to find a free port on 127.0.0.1: {0}")]
    NoneFree(#[source] std::io::Error),
}

/// Result of port checks.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Resolves ports: a requested (`Some`) port must be free; `None` gets a free one.
/// Every port in the answer is distinct.
#[derive(Debug, Default)]
pub struct Allocator {
    taken: Vec<(u16, String)>,
    // Held until the allocator drops so the OS does not hand the same port out twice.
    held: Vec<TcpListener>,
}

impl Allocator {
    /// Resolves the port for `what`.
    pub fn port(&mut self, what: &str, requested: Option<u16>) -> Result<u16> {
        let port = match requested {
            // 0 asks for any free port, as with bind(2).
            Some(port) if port != 0 => {
                self.check_unique(port, what)?;
                ensure_free(port, what)?;
                port
            }
            _ => self.free_port()?,
        };
        self.taken.push((port, what.to_owned()));
        Ok(port)
    }

    fn check_unique(&self, port: u16, what: &str) -> Result<()> {
        match self.taken.iter().find(|(p, _)| *p == port) {
            Some((_, first)) => Err(Error::Duplicate {
                port,
                first: first.clone(),
                second: what.to_owned(),
            }),
            None => Ok(()),
        }
    }

    fn free_port(&mut self) -> Result<u16> {
        if let Some(range) = pick_range() {
            let mut rng = rand::rng();
            for _ in 0..PICK_TRIES {
                let port = rng.random_range(range.clone());
                if self.taken.iter().any(|(p, _)| *p == port) {
                    continue;
                }
                if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                    self.held.push(listener);
                    return Ok(port);
                }
            }
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::NoneFree)?;
        let port = listener.local_addr().map_err(Error::NoneFree)?.port();
        self.held.push(listener);
        Ok(port)
    }
}

/// Fails if something listens on `port` on loopback.
pub fn ensure_free(port: u16, what: &str) -> Result<()> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::InUse {
            port,
            what: what.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_should_refuse_a_port_in_use() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        let err = Allocator::default()
            .port("--kube-apiserver-port", Some(port))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("port {port} for --kube-apiserver-port is already in use on 127.0.0.1")
        );
    }

    #[test]
    fn allocator_should_hand_out_distinct_free_ports() {
        let mut alloc = Allocator::default();
        let ports: Vec<u16> = (0..6)
            .map(|i| alloc.port(&i.to_string(), None).unwrap())
            .collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        if let Some(range) = pick_range() {
            assert!(
                ports.iter().all(|p| range.contains(p)),
                "{ports:?} outside {range:?}"
            );
        }
    }
}
