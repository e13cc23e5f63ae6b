//! The cluster's PKI, generated in process: a CA, serving and client certificates
//! signed by it, and the service-account signing key pair.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use crate::{component::Component, priority::KwokPriority};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// Errors while generating or writing the PKI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or certificate could not be generated.
    #[error("failed to generate {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA's RSA key could not be generated or encoded.
    #[error("failed to generate {what}: {source}")]
    Rsa {
        /// Which key.
        what: String,
        /// The rsa crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A PEM file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// More groups than a certificate here can carry.
    #[error(
        "--group {groups}: a client certificate carries one group (rcgen writes one organization per subject)"
    )]
    Groups {
        /// The groups asked for, comma-separated.
        groups: String,
    },
    /// A PEM file holds no usable key.
    #[error("failed to parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result of PKI operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Certificates stay valid for ten years: clusters are for tests, not for rotation drills.
const VALIDITY: Duration = Duration::days(3650);

/// The first address of the default service range (10.96.0.0/12): the `kubernetes` Service.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// A client identity: the certificate's common name (user) and organizations (groups).
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    /// File stem under `pki/`, e.g. `admin` gives `admin.crt` and `admin.key`.
    pub file: &'a str,
    /// User name (CN).
    pub user: &'a str,
    /// Groups (O).
    pub groups: &'a [&'a str],
}

/// The admin kubeconfig's user (upstream's default for `get kubeconfig --user`).
pub const ADMIN_USER: &str = "kwok-admin";
/// The admin kubeconfig's group.
pub const ADMIN_GROUP: &str = "system:masters";

/// Client identities kwokctl issues besides kwok's ([`clients`]). The control-plane
/// ones use the user names the apiserver's bootstrap RBAC policy already grants their
/// permissions to.
pub const CLIENTS: &[ClientIdentity<'static>] = &[
    ClientIdentity {
        file: "admin",
        user: ADMIN_USER,
        groups: &[ADMIN_GROUP],
    },
    ClientIdentity {
        file: Component::KubeControllerManager.as_str(),
        user: "system:kube-controller-manager",
        groups: &[],
    },
    ClientIdentity {
        file: Component::KubeScheduler.as_str(),
        user: "system:kube-scheduler",
        groups: &[],
    },
    // The bootstrap policy lets system:monitoring read /metrics and nothing else.
    ClientIdentity {
        file: Component::Prometheus.as_str(),
        user: "kwok-prometheus",
        groups: &[crate::priority::MONITORING_GROUP],
    },
    // How kube-apiserver proves itself to kwok's kubelet API (logs, exec, port-forward,
    // the node proxy); kwok lets in any certificate of the cluster CA.
    ClientIdentity {
        file: KUBELET_CLIENT,
        user: KUBELET_CLIENT,
        groups: &["system:masters"],
    },
    // metrics-server, to the apiserver and to kwok's kubelet API: what it may do is the
    // RBAC of its manifests (components::metrics_server), bound to this user.
    ClientIdentity {
        file: Component::MetricsServer.as_str(),
        user: METRICS_SERVER_USER,
        groups: &[],
    },
];

/// Every client identity kwokctl issues: [`CLIENTS`] and kwok's, whose groups follow
/// `--kwok-priority` ([`KwokPriority::groups`]).
pub fn clients(kwok: KwokPriority) -> impl Iterator<Item = ClientIdentity<'static>> {
    CLIENTS.iter().copied().chain(std::iter::once(ClientIdentity {
        file: Component::KwokController.as_str(),
        user: crate::priority::KWOK_USER,
        groups: kwok.groups(),
    }))
}

/// File stem and user of kube-apiserver's client certificate for the kubelet API.
pub const KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// The user of metrics-server's client certificate.
pub const METRICS_SERVER_USER: &str = "kwok-metrics-server";

/// The common name of the front proxy's client certificate: the one name the
/// apiserver's `--requestheader-allowed-names` lets assert a user to aggregated API
/// servers (metrics-server).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// DNS names the shared serving certificate carries besides localhost: the
/// `kubernetes` Service, and the Services of aggregated API servers, whose name the
/// apiserver checks when it proxies to them (`<service>.<namespace>.svc`).
const SERVING_DNS_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "metrics-server.kube-system.svc",
];

/// Paths of the PEM files under a cluster's `pki/` folder.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    dir: PathBuf,
}

impl PkiPaths {
    /// The PKI living in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Serving certificate shared by every TLS endpoint on loopback.
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("serving.crt")
    }

    /// Serving key.
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("serving.key")
    }

    /// Service-account signing key (private).
    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    /// Service-account verification key (public).
    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// The front-proxy CA: a CA of its own, as Kubernetes asks, so that no ordinary
    /// client certificate can assert another user to an aggregated API server.
    pub fn front_proxy_ca_cert(&self) -> PathBuf {
        self.dir.join("front-proxy-ca.crt")
    }

    /// The front-proxy CA's key.
    pub fn front_proxy_ca_key(&self) -> PathBuf {
        self.dir.join("front-proxy-ca.key")
    }

    /// The apiserver's client certificate towards aggregated API servers (signed by the
    /// front-proxy CA, common name [`FRONT_PROXY_CLIENT`]).
    pub fn front_proxy_client_cert(&self) -> PathBuf {
        self.dir.join("front-proxy-client.crt")
    }

    /// The front-proxy client's key.
    pub fn front_proxy_client_key(&self) -> PathBuf {
        self.dir.join("front-proxy-client.key")
    }

    /// The apiserver's `--token-auth-file`: kwok's token (`--kwok-auth token`).
    pub fn token_auth_file(&self) -> PathBuf {
        self.dir.join("token-auth.csv")
    }

    /// Client certificate of `file` (see [`ClientIdentity::file`]).
    pub fn client_cert(&self, file: impl AsRef<str>) -> PathBuf {
        let file = file.as_ref();
        self.dir.join(format!("{file}.crt"))
    }

    /// Client key of `file`.
    pub fn client_key(&self, file: impl AsRef<str>) -> PathBuf {
        let file = file.as_ref();
        self.dir.join(format!("{file}.key"))
    }
}

/// Generates the whole PKI into `paths.dir()` (which must exist), kwok's certificate
/// for `kwok`'s priority.
pub fn generate(paths: &PkiPaths, kwok: KwokPriority) -> Result<()> {
    let ca_key = rsa_key("CA key")?;
    let ca = CertifiedIssuer::self_signed(ca_params(CA_NAME), ca_key).map_err(gen_err("CA certificate"))?;
    write(&paths.ca_cert(), &ca.pem())?;
    write(&paths.ca_key(), &ca.key().serialize_pem())?;

    let serving_key = key("serving key")?;
    let serving = serving_params()
        .signed_by(&serving_key, &ca)
        .map_err(gen_err("serving certificate"))?;
    write(&paths.serving_cert(), &serving.pem())?;
    write(&paths.serving_key(), &serving_key.serialize_pem())?;

    for client in clients(kwok) {
        let client_key = key(client.file)?;
        let cert = client_params(&client)
            .signed_by(&client_key, &ca)
            .map_err(gen_err(client.file))?;
        write(&paths.client_cert(client.file), &cert.pem())?;
        write(&paths.client_key(client.file), &client_key.serialize_pem())?;
    }

    generate_front_proxy(paths)?;
    let sa = key("service-account key")?;
    write(&paths.sa_key(), &sa.serialize_pem())?;
    write(&paths.sa_pub(), &sa.public_key_pem())?;
    Ok(())
}

/// The front-proxy CA and its one client, the apiserver's aggregation layer.
fn generate_front_proxy(paths: &PkiPaths) -> Result<()> {
    let ca_key = key("front-proxy CA key")?;
    let ca = CertifiedIssuer::self_signed(ca_params(FRONT_PROXY_CA_NAME), ca_key)
        .map_err(gen_err("front-proxy CA certificate"))?;
    write(&paths.front_proxy_ca_cert(), &ca.pem())?;
    write(&paths.front_proxy_ca_key(), &ca.key().serialize_pem())?;
    let client_key = key(FRONT_PROXY_CLIENT)?;
    let client = client_params(&ClientIdentity {
        file: FRONT_PROXY_CLIENT,
        user: FRONT_PROXY_CLIENT,
        groups: &[],
    })
    .signed_by(&client_key, &ca)
    .map_err(gen_err(FRONT_PROXY_CLIENT))?;
    write(&paths.front_proxy_client_cert(), &client.pem())?;
    write(&paths.front_proxy_client_key(), &client_key.serialize_pem())
}

/// The cluster CA's common name.
const CA_NAME: &str = "kwok-ca";
/// The front-proxy CA's common name.
const FRONT_PROXY_CA_NAME: &str = "kwok-front-proxy-ca";

/// Signs a new client certificate for `user` in `groups` with the cluster's CA (in
/// `paths`); returns the certificate and its key as PEM.
pub fn sign_client(paths: &PkiPaths, user: &str, groups: &[&str]) -> Result<(String, String)> {
    // rcgen keeps one value per attribute type: a second organization would silently
    // replace the first, and the apiserver would see fewer groups than asked for.
    if groups.len() > 1 {
        return Err(Error::Groups {
            groups: groups.join(","),
        });
    }
    let read = |path: PathBuf| {
        fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })
    };
    let ca_key_path = paths.ca_key();
    let ca_key = KeyPair::from_pem(&read(ca_key_path.clone())?).map_err(|source| Error::Parse {
        path: ca_key_path,
        source,
    })?;
    // The CA's subject and usages come from `ca_params`, so the issuer is rebuilt from
    // them and the key rather than parsed from the certificate.
    let ca = Issuer::new(ca_params(CA_NAME), ca_key);
    let client_key = key(user)?;
    let cert = client_params(&ClientIdentity {
        file: "",
        user,
        groups,
    })
    .signed_by(&client_key, &ca)
    .map_err(gen_err(user))?;
    Ok((cert.pem(), client_key.serialize_pem()))
}

fn key(what: &str) -> Result<KeyPair> {
    KeyPair::generate().map_err(gen_err(what))
}

/// The cluster CA's key. The apiserver checks the CA's signature on a client
/// certificate for every request it authenticates by one (no cache of verified chains),
/// and Go verifies a chain whose CA key is RSA-2048 in about half the time of one whose
/// CA key is ECDSA P-256 (50 against 94 µs on this project's VM,
/// `perf/tools/x509-verify`). Upstream's kwokctl uses RSA too. The other keys stay
/// ECDSA: they sign only TLS handshakes, and are quick to make.
fn rsa_key(what: &str) -> Result<KeyPair> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let rsa_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Rsa {
        what: what.to_owned(),
        source,
    };
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| rsa_err(e.into()))?;
    let der = key.to_pkcs8_der().map_err(|e| rsa_err(e.into()))?;
    KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
        .map_err(gen_err(what))
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |source| Error::Generate {
        what: what.to_owned(),
        source,
    }
}

fn write(path: &Path, pem: &str) -> Result<()> {
    fs::write(path, pem).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

fn base_params(common_name: &str, organizations: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    // Back-date a little so a freshly started component never sees "not yet valid".
    params.not_before = now - Duration::hours(1);
    params.not_after = now + VALIDITY;
    params
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = base_params(common_name, &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn serving_params() -> CertificateParams {
    let mut params = base_params("kwok-serving", &[]);
    params.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V4(KUBERNETES_SERVICE_IP)),
    ];
    for dns in SERVING_DNS_NAMES {
        params.subject_alt_names.push(SanType::DnsName(
            dns.try_into().expect("static DNS names are valid"),
        ));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn client_params(client: &ClientIdentity<'_>) -> CertificateParams {
    let mut params = base_params(client.user, client.groups);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_should_write_every_pem_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        generate(&paths, KwokPriority::NodeHigh).unwrap();
        let mut files = vec![
            paths.ca_cert(),
            paths.ca_key(),
            paths.serving_cert(),
            paths.serving_key(),
        ];
        files.extend([paths.sa_key(), paths.sa_pub()]);
        files.extend([
            paths.front_proxy_ca_cert(),
            paths.front_proxy_ca_key(),
            paths.front_proxy_client_cert(),
            paths.front_proxy_client_key(),
        ]);
        for client in clients(KwokPriority::NodeHigh) {
            files.push(paths.client_cert(client.file));
            files.push(paths.client_key(client.file));
        }
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{} is not PEM", file.display());
        }
        assert!(fs::read_to_string(paths.sa_pub()).unwrap().contains("PUBLIC KEY"));
    }

    #[test]
    fn the_ca_key_should_be_rsa_and_sign_clients_issued_later() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        generate(&paths, KwokPriority::NodeHigh).unwrap();
        let ca_key = KeyPair::from_pem(&fs::read_to_string(paths.ca_key()).unwrap()).unwrap();
        assert_eq!(ca_key.algorithm(), &rcgen::PKCS_RSA_SHA256);
        let serving = KeyPair::from_pem(&fs::read_to_string(paths.serving_key()).unwrap()).unwrap();
        assert_eq!(serving.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let (cert, key) = sign_client(&paths, "someone", &["some-group"]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.contains("PRIVATE KEY"), "{key}");
    }

    fn names(client: &ClientIdentity<'_>) -> Vec<(DnType, rcgen::DnValue)> {
        client_params(client)
            .distinguished_name
            .iter()
            .map(|(t, v)| (t.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn kwoks_certificate_should_carry_the_masters_group_only_when_exempt_and_monitoring_else() {
        let kwok = |p| clients(p).find(|c| c.file == "kwok-controller").unwrap();
        let node_high = names(&kwok(KwokPriority::NodeHigh));
        assert!(node_high.contains(&(DnType::CommonName, "kwok-controller".into())));
        assert!(
            node_high.contains(&(DnType::OrganizationName, "system:monitoring".into())),
            "{node_high:?}"
        );
        assert!(!node_high.contains(&(DnType::OrganizationName, "system:masters".into())));
        let exempt = names(&kwok(KwokPriority::Exempt));
        assert!(
            exempt.contains(&(DnType::OrganizationName, "system:masters".into())),
            "{exempt:?}"
        );
    }

    #[test]
    fn admin_certificate_should_carry_the_masters_group() {
        let dn = names(&CLIENTS[0]);
        assert!(dn.contains(&(DnType::CommonName, "kwok-admin".into())));
        assert!(dn.contains(&(DnType::OrganizationName, "system:masters".into())));
    }
}
