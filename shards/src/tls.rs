//! HTTPS for the controller's server: `--tls-cert-file` and `--tls-private-key-file`
//! (upstream's flags) and `--client-ca-file` (the kubelet's: client certificates signed
//! by it are verified; requests other than health checks then need one), loaded and
//! checked before anything starts.
//!
//! As upstream's server, one port speaks both: a connection whose first byte opens a TLS
//! handshake gets HTTPS (with a self-signed certificate when no --tls-cert-file is given,
//! so that an apiserver, which always calls a kubelet over TLS, reaches the kubelet API),
//! any other plain HTTP.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::either::Either;

/// Handshakes finished but not yet taken by the server; a full queue holds back the
/// accept loop (and so new connections wait in the kernel's backlog).
const HANDSHAKES_BUF_SIZE: usize = 64;

/// A client that has not finished its handshake by then is dropped, so a silent peer
/// holds no task for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of loading the certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One of the two flags came without the other.
    #[error("{given} {path} needs {missing} too: give both or neither")]
    Half {
        /// The flag given.
        given: &'static str,
        /// Its file.
        path: PathBuf,
        /// The flag missing.
        missing: &'static str,
    },
    /// A file cannot be read or holds no usable PEM.
    #[error("failed to load {flag} {path}: {reason}")]
    Load {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No self-signed certificate could be made.
    #[error("failed to make a self-signed serving certificate: {0}")]
    SelfSigned(String),
    /// The certificate and key do not make a server configuration (e.g. they do not match).
    #[error("failed to use --tls-cert-file {cert} with --tls-private-key-file {key}: {source}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls says.
        #[source]
        source: rustls::Error,
    },
}

/// The server's TLS configuration: the given certificate and key, or a self-signed
/// certificate for `localhost` and loopback when neither is given (upstream serves a
/// test certificate then). With `client_ca`, clients may present a certificate, which
/// must then chain to that CA (those without one still connect: health checks need
/// none; the server decides per request).
///
/// # Errors
/// One flag without the other, an unreadable file, a file without a certificate or key
/// in PEM, or a key that does not match the certificate.
pub fn load(cert: Option<&Path>, key: Option<&Path>, client_ca: Option<&Path>) -> Result<TlsAcceptor, Error> {
    let (chain, private) = match (cert, key) {
        (None, None) => self_signed()?,
        (Some(path), None) => return Err(half("--tls-cert-file", path, "--tls-private-key-file")),
        (None, Some(path)) => return Err(half("--tls-private-key-file", path, "--tls-cert-file")),
        (Some(cert), Some(key)) => read_pair(cert, key)?,
    };
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|source| match (cert, key) {
            (Some(cert), Some(key)) => Error::Config {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            },
            _ => Error::SelfSigned(source.to_string()),
        })?;
    // HTTP/1.1 only: the kubelet API's streams upgrade the connection (SPDY, WebSocket).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read_pair(cert: &Path, key: &Path) -> Result<Pair, Error> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| load_error("--tls-cert-file", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(load_error("--tls-cert-file", cert, "no CERTIFICATE block".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| load_error("--tls-private-key-file", key, e.to_string()))?;
    Ok((chain, private))
}

/// A certificate of its own for `localhost` and the loopback addresses.
fn self_signed() -> Result<Pair, Error> {
    let err = |e: rcgen::Error| Error::SelfSigned(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let cert = rcgen::CertificateParams::new(names)
        .map_err(err)?
        .self_signed(&key)
        .map_err(err)?;
    let private =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| Error::SelfSigned(e.to_string()))?;
    Ok((vec![cert.der().clone()], private))
}

fn client_verifier(ca: &Path) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, Error> {
    let err = |reason: String| load_error("--client-ca-file", ca, reason);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| err(e.to_string()))? {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no CERTIFICATE block".into()));
    }
    rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| err(e.to_string()))
}

/// A connection of the shared port: HTTPS or plain HTTP.
pub type Conn = Either<TlsStream<TcpStream>, TcpStream>;

/// The first byte of a TLS handshake record (content type 22).
const TLS_HANDSHAKE: u8 = 0x16;

/// Whether the client of `conn` presented a certificate the verifier accepted (never
/// over plain HTTP).
pub fn client_verified(conn: &Conn) -> bool {
    match conn {
        Either::Left(tls) => tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty()),
        Either::Right(_) => false,
    }
}

/// HTTPS or plain HTTP, told apart by the first byte the client sends.
async fn open(stream: TcpStream, acceptor: TlsAcceptor) -> std::io::Result<Conn> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 1 && first[0] == TLS_HANDSHAKE {
        Ok(Either::Left(acceptor.accept(stream).await?))
    } else {
        Ok(Either::Right(stream))
    }
}

fn half(given: &'static str, path: &Path, missing: &'static str) -> Error {
    Error::Half {
        given,
        path: path.to_owned(),
        missing,
    }
}

fn load_error(flag: &'static str, path: &Path, reason: String) -> Error {
    Error::Load {
        flag,
        path: path.to_owned(),
        reason,
    }
}

/// A listener whose connections are TLS streams or plain ones: a task accepts and spawns
/// a handshake per connection, so one slow client never holds up another.
pub struct TlsListener {
    handshaken: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp`.
    pub fn new(tcp: tokio::net::TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, handshaken) = mpsc::channel(HANDSHAKES_BUF_SIZE);
        let accept_task = tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(Self {
            handshaken,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(Conn, SocketAddr)>,
) {
    loop {
        // A slot in the queue is taken before accepting, so handshakes in flight plus
        // finished ones never exceed the queue's size; past that, connections wait in
        // the kernel's backlog.
        let Ok(slot) = tx.clone().reserve_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // As axum's own loop: out of descriptors and the like pass; back off.
                tracing::warn!(%err, "failed to accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(stream, acceptor)).await {
                Ok(Ok(tls)) => {
                    slot.send((tls, peer));
                }
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept task ends only when aborted by our own drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn load_err(cert: Option<&Path>, key: Option<&Path>) -> Error {
        load(cert, key, None).err().expect("an error")
    }

    #[test]
    fn neither_flag_should_mean_a_self_signed_certificate() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(load(None, None, None).is_ok());
    }

    #[test]
    fn a_matching_pair_should_load() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path());
        assert!(load(Some(&c), Some(&k), None).is_ok());
        assert!(load(Some(&c), Some(&k), Some(&c)).is_ok());
        // No certificate given: a self-signed one, with or without client checks.
        assert!(load(None, None, Some(&c)).is_ok());
        let err = load(Some(&c), Some(&k), Some(&k)).err().unwrap().to_string();
        assert!(err.starts_with("failed to load --client-ca-file "), "{err}");
    }

    #[test]
    fn one_flag_without_the_other_should_name_both() {
        let err = load_err(Some(Path::new("/x.crt")), None).to_string();
        assert_eq!(
            err,
            "--tls-cert-file /x.crt needs --tls-private-key-file too: give both or neither"
        );
        let err = load_err(None, Some(Path::new("/x.key"))).to_string();
        assert!(
            err.starts_with("--tls-private-key-file /x.key needs --tls-cert-file"),
            "{err}"
        );
    }

    #[test]
    fn bad_files_should_name_flag_and_file() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path());
        let missing = dir.path().join("missing.crt");
        let err = load_err(Some(&missing), Some(&k)).to_string();
        assert!(
            err.starts_with(&format!("failed to load --tls-cert-file {}", missing.display())),
            "{err}"
        );
        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "not pem").unwrap();
        let err = load_err(Some(&c), Some(&junk)).to_string();
        assert!(
            err.starts_with(&format!(
                "failed to load --tls-private-key-file {}",
                junk.display()
            )),
            "{err}"
        );
        let (other, _) = pair(&{
            let d = dir.path().join("other");
            std::fs::create_dir(&d).unwrap();
            d
        });
        let err = load_err(Some(&other), Some(&k)).to_string();
        assert!(err.starts_with("failed to use --tls-cert-file"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
