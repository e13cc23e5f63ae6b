//! A loopback-only stub of the Kubernetes API, fast enough to show loadgen's own
//! ceiling: it answers what loadgen asks for and nothing more, without storing anything.
//!
//! | request | answer |
//! |---|---|
//! | `GET /version` | a fixed version |
//! | `GET` a list | an empty list (a namespace's `serviceaccounts`: its `default` one) |
//! | `GET …?watch=…` | a watch stream that stays open and sends nothing |
//! | `POST` (create) | 201 with the posted object, or the throttling/failure it was told to play |
//! | `DELETE` | 200 with a success `Status` |
//! | `GET /fake/stats` | [`Stats`] as JSON: what it answered so far |
//!
//! Creates are echoed, not parsed, so that the stub costs little next to the client it
//! measures. A create answered 429 or 503 made nothing, so a client that retries it and
//! counts right ends with exactly as many creates accepted as it meant to make.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    response::Response,
};
use serde::Serialize;
use tokio::net::TcpListener;

/// Largest create body read (a generous pod).
const MAX_BODY: usize = 1 << 20;

/// Errors of the stub.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Only loopback addresses are served.
    #[error("refusing to listen on {0}: the fake apiserver serves loopback only")]
    NotLoopback(SocketAddr),
    /// The listening socket could not be made.
    #[error("failed to listen on {addr}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be written.
    #[error("failed to write kubeconfig {path}")]
    Kubeconfig {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving stopped with an I/O error.
    #[error("failed to serve")]
    Serve(#[source] std::io::Error),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which creates the stub refuses, to exercise a client's retries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Answer every Nth create (counting every POST, retries too) with 429 and
    /// `Retry-After`; 0: never.
    pub throttle_every: u64,
    /// Answer every Nth create not throttled with 503; 0: never.
    pub fail_every: u64,
    /// Seconds in `Retry-After` (header and `details.retryAfterSeconds`).
    pub retry_after_seconds: u32,
}

/// What the stub answered so far.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Every POST.
    pub creates_received: u64,
    /// POSTs answered 201.
    pub created: u64,
    /// POSTs answered 429.
    pub throttled: u64,
    /// POSTs answered 503.
    pub failed: u64,
    /// DELETEs (all answered 200).
    pub deleted: u64,
    /// Lists answered.
    pub lists: u64,
    /// Watches opened.
    pub watches: u64,
}

#[derive(Default)]
struct Counters {
    creates_received: AtomicU64,
    /// POSTs not throttled: every `fail_every`th of them fails.
    not_throttled: AtomicU64,
    created: AtomicU64,
    throttled: AtomicU64,
    failed: AtomicU64,
    deleted: AtomicU64,
    lists: AtomicU64,
    watches: AtomicU64,
}

impl Counters {
    fn stats(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            creates_received: get(&self.creates_received),
            created: get(&self.created),
            throttled: get(&self.throttled),
            failed: get(&self.failed),
            deleted: get(&self.deleted),
            lists: get(&self.lists),
            watches: get(&self.watches),
        }
    }
}

struct Stub {
    faults: Faults,
    counters: Counters,
}

/// A bound, not yet serving, fake apiserver.
pub struct FakeApiserver {
    listener: TcpListener,
    stub: Arc<Stub>,
}

impl FakeApiserver {
    /// Binds `addr`, which must be a loopback address (port 0: any free port).
    pub async fn bind(addr: SocketAddr, faults: Faults) -> Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(Error::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let stub = Arc::new(Stub {
            faults,
            counters: Counters::default(),
        });
        Ok(Self { listener, stub })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Writes a kubeconfig (context `fake`, no credentials) pointing at this stub.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        std::fs::write(path, kubeconfig(self.local_addr())).map_err(|source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// Serves until the process ends.
    pub async fn serve(self) -> Result<()> {
        let app = Router::new().fallback(handle).with_state(self.stub);
        axum::serve(self.listener, app).await.map_err(Error::Serve)
    }
}

/// A kubeconfig for plain HTTP to `addr`.
pub fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
         current-context: fake\n"
    )
}

/// The resource and namespace a request path names, after `/api/v1` or `/apis/G/V`.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
}

fn target(path: &str) -> Option<Target<'_>> {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/apis/")?.splitn(3, '/').nth(2))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["namespaces", ns, resource, rest @ ..] => Some(Target {
            namespace: Some(ns),
            resource,
            name: rest.first().copied(),
        }),
        [resource, rest @ ..] => Some(Target {
            namespace: None,
            resource,
            name: rest.first().copied(),
        }),
        [] => None,
    }
}

async fn handle(State(stub): State<Arc<Stub>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let watch = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.starts_with("watch=") && kv != "watch=false" && kv != "watch=0")
    });
    let c = &stub.counters;
    match *req.method() {
        Method::POST => create(&stub, req).await,
        Method::DELETE => {
            c.deleted.fetch_add(1, Ordering::Relaxed);
            json(StatusCode::OK, status_json(200, "Success", "", 0))
        }
        Method::GET if path == "/version" => json(StatusCode::OK, VERSION.into()),
        Method::GET if path == "/fake/stats" => json(
            StatusCode::OK,
            serde_json::to_string(&c.stats()).expect("stats serialize"),
        ),
        Method::GET if watch => {
            c.watches.fetch_add(1, Ordering::Relaxed);
            let quiet = futures::stream::pending::<Result<Bytes, Infallible>>();
            response(StatusCode::OK, Body::from_stream(quiet))
        }
        Method::GET => match target(&path) {
            Some(t) if t.name.is_none() => {
                c.lists.fetch_add(1, Ordering::Relaxed);
                json(StatusCode::OK, list(&t))
            }
            _ => json(StatusCode::NOT_FOUND, status_json(404, "Failure", "NotFound", 0)),
        },
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            status_json(405, "Failure", "MethodNotAllowed", 0),
        ),
    }
}

/// Echoes the posted object with 201, unless this create is one to throttle or fail.
async fn create(stub: &Stub, req: Request) -> Response {
    let (c, f) = (&stub.counters, &stub.faults);
    let n = c.creates_received.fetch_add(1, Ordering::Relaxed) + 1;
    if f.throttle_every > 0 && n % f.throttle_every == 0 {
        c.throttled.fetch_add(1, Ordering::Relaxed);
        let secs = f.retry_after_seconds;
        let mut r = json(
            StatusCode::TOO_MANY_REQUESTS,
            status_json(429, "Failure", "TooManyRequests", secs),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, secs.to_string().parse().expect("digits"));
        return r;
    }
    let m = c.not_throttled.fetch_add(1, Ordering::Relaxed) + 1;
    if f.fail_every > 0 && m % f.fail_every == 0 {
        c.failed.fetch_add(1, Ordering::Relaxed);
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            status_json(503, "Failure", "ServiceUnavailable", 0),
        );
    }
    match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(body) => {
            c.created.fetch_add(1, Ordering::Relaxed);
            response(StatusCode::CREATED, Body::from(body))
        }
        Err(_) => json(
            StatusCode::BAD_REQUEST,
            status_json(400, "Failure", "BadRequest", 0),
        ),
    }
}

const VERSION: &str = r#"{"major":"1","minor":"36","gitVersion":"v1.36.5-fake","gitCommit":"fake","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.26","compiler":"gc","platform":"linux/amd64"}"#;

/// An empty list, except a namespace's `default` ServiceAccount, which loadgen waits for.
fn list(t: &Target<'_>) -> String {
    let items = match (t.resource, t.namespace) {
        ("serviceaccounts", Some(ns)) => format!(
            r#"{{"apiVersion":"v1","kind":"ServiceAccount","metadata":{{"name":"default","namespace":"{ns}","resourceVersion":"1"}}}}"#
        ),
        _ => String::new(),
    };
    format!(r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"1"}},"items":[{items}]}}"#)
}

fn status_json(code: u16, status: &str, reason: &str, retry_after: u32) -> String {
    let details = match retry_after {
        0 => String::new(),
        s => format!(r#","details":{{"retryAfterSeconds":{s}}}"#),
    };
    format!(
        r#"{{"apiVersion":"v1","kind":"Status","metadata":{{}},"status":"{status}","reason":"{reason}","message":"fake apiserver: {reason}","code":{code}{details}}}"#
    )
}

fn json(code: StatusCode, body: String) -> Response {
    response(code, Body::from(body))
}

fn response(code: StatusCode, body: Body) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("static response parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_should_split_cluster_and_namespaced_paths() {
        let t = |p| target(p).unwrap();
        assert_eq!(
            t("/api/v1/nodes"),
            Target {
                namespace: None,
                resource: "nodes",
                name: None
            }
        );
        assert_eq!(t("/api/v1/namespaces/ns-1").name, Some("ns-1"));
        assert_eq!(
            t("/api/v1/namespaces/a/pods/p"),
            Target {
                namespace: Some("a"),
                resource: "pods",
                name: Some("p")
            }
        );
        assert_eq!(
            t("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases").resource,
            "leases"
        );
        assert_eq!(target("/healthz"), None);
    }

    #[test]
    fn lists_should_parse_as_json_with_a_resource_version() {
        let sa: serde_json::Value =
            serde_json::from_str(&list(&target("/api/v1/namespaces/x/serviceaccounts").unwrap())).unwrap();
        assert_eq!(sa["items"][0]["metadata"]["namespace"], "x");
        let nodes: serde_json::Value =
            serde_json::from_str(&list(&target("/api/v1/nodes").unwrap())).unwrap();
        assert_eq!(nodes["items"], serde_json::json!([]));
        let s: serde_json::Value =
            serde_json::from_str(&status_json(429, "Failure", "TooManyRequests", 2)).unwrap();
        assert_eq!(s["details"]["retryAfterSeconds"], 2);
    }

    #[tokio::test]
    async fn non_loopback_addresses_should_be_refused() {
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(
            FakeApiserver::bind(addr, Faults::default()).await,
            Err(Error::NotLoopback(_))
        ));
    }
}
