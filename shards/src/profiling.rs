//! `/debug/pprof/*`: what upstream's `enableProfilingHandler` serves with Go's pprof, for
//! a Rust process. Off by default; only loopback clients are answered.
//!
//! - `/debug/pprof/profile?seconds=N` (default 30): a CPU profile sampled at
//!   [`FREQUENCY_HZ`] for N seconds, gzip'd pprof protobuf, as Go sends it, so
//!   `go tool pprof http://…/debug/pprof/profile` reads it.
//! - `/debug/pprof/heap`: memory statistics as text (see [`heap`]); not a pprof heap
//!   profile, which needs an allocator that records call stacks.
//!
//! # Implementation
//! Nothing runs until a profile is asked for: the sampler (a `SIGPROF` timer, the pprof
//! crate's) exists only for the request's N seconds, on a blocking thread.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, RawQuery, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
/// Samples per second of a CPU profile (Go's default rate).
pub const FREQUENCY_HZ: i32 = 100;

/// The longest profile one request may ask for: a forgotten `seconds=86400` would
/// otherwise keep the sampler (and a blocking thread) busy for a day.
const MAX_SECONDS: u64 = 600;

/// The peer of a connection, for the loopback check (`ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it presented a client certificate that `--client-ca-file` signed.
    pub client_verified: bool,
    /// Whether it speaks HTTPS (else plain HTTP, on the same port).
    pub tls: bool,
}

/// The `/debug/pprof/` routes: served when `enabled`, refused with upstream's 405 and
/// message otherwise.
pub fn routes<S: Clone + Send + Sync + 'static>(enabled: bool) -> Router<S> {
    if !enabled {
        let refuse = || async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "profiling endpoint is disabled.\n",
            )
        };
        return Router::new()
            .route("/debug/pprof", get(refuse))
            .route("/debug/pprof/", get(refuse))
            .route("/debug/pprof/{*rest}", get(refuse));
    }
    Router::new()
        .route("/debug/pprof/", get(index))
        .route("/debug/pprof/profile", get(profile))
        .route("/debug/pprof/heap", get(heap))
        .layer(middleware::from_fn(loopback_only))
}

/// Profiles show the process's code and memory: only a client on this host gets them.
async fn loopback_only(request: Request, next: Next) -> Response {
    match request.extensions().get::<ConnectInfo<Peer>>() {
        Some(ConnectInfo(Peer { addr, .. })) if addr.ip().to_canonical().is_loopback() => {
            next.run(request).await
        }
        _ => (
            StatusCode::FORBIDDEN,
            "profiling is served to loopback clients only\n",
        )
            .into_response(),
    }
}

async fn index() -> &'static str {
    "kwok profiling:\n\
     /debug/pprof/profile?seconds=N  CPU profile, gzip'd pprof protobuf (go tool pprof reads it)\n\
     /debug/pprof/heap               memory statistics, text\n"
}

/// `seconds=N` of a query string: 30 when absent, as Go's handler.
fn seconds(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("seconds="));
    match value.map(str::parse::<u64>) {
        None => Ok(30),
        Some(Ok(n)) if (1..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!("seconds must be 1 to {MAX_SECONDS}, not {value:?}\n")),
    }
}

async fn profile(RawQuery(query): RawQuery) -> Response {
    let seconds = match seconds(query.as_deref()) {
        Ok(n) => n,
        Err(text) => return (StatusCode::BAD_REQUEST, text).into_response(),
    };
    let sampled = tokio::task::spawn_blocking(move || cpu_profile(Duration::from_secs(seconds))).await;
    match sampled {
        Ok(Ok(body)) => (
            [
                ("content-type", "application/octet-stream"),
                ("content-disposition", "attachment; filename=\"profile\""),
            ],
            body,
        )
            .into_response(),
        Ok(Err(err)) => {
            let text = format!("could not take a CPU profile: {err:#}\n");
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}

/// Samples this process for `duration`; the gzip'd pprof protobuf.
///
/// # Errors
/// Another profile is being taken (the sampler is process-wide), or encoding failed.
pub fn cpu_profile(duration: Duration) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;

    use pprof::protos::Message as _;

    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY_HZ)
        // Unwinding through these from a signal handler can deadlock (pprof's advice).
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()?;
    std::thread::sleep(duration);
    let profile = guard.report().build()?.pprof()?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&profile.encode_to_vec())?;
    Ok(gzip.finish()?)
}

/// Memory statistics as text.
///
/// kwok's allocator is mimalloc (v2), whose own statistics are reached through its C
/// API only; this workspace forbids `unsafe`, so these are the kernel's counters of the
/// process (`/proc/self/status`, `/proc/self/smaps_rollup`): `RssAnon`/`Anonymous` is
/// the heap mimalloc holds from the system (including pages it keeps free for reuse),
/// `VmHWM` the peak resident size.
async fn heap() -> Response {
    let status = tokio::fs::read_to_string("/proc/self/status")
        .await
        .unwrap_or_default();
    let rollup = tokio::fs::read_to_string("/proc/self/smaps_rollup")
        .await
        .unwrap_or_default();
    let mut text = format!(
        "# kwok memory statistics (text, not a pprof heap profile)\n\
         # allocator: {}\n\
         # source: the kernel's counters of this process (/proc/self/status, /proc/self/smaps_rollup);\n\
         # the heap is the anonymous memory (RssAnon, Anonymous), including pages the allocator keeps for reuse\n",
        allocator()
    );
    let wanted = [
        "VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "VmData", "Threads",
    ];
    pick(&mut text, &status, &wanted);
    pick(
        &mut text,
        &rollup,
        &["Rss", "Pss", "Private_Dirty", "Anonymous", "AnonHugePages"],
    );
    ([("content-type", "text/plain; charset=utf-8")], text).into_response()
}

/// Appends the lines of `source` whose key is in `keys`, in `source`'s order.
fn pick(out: &mut String, source: &str, keys: &[&str]) {
    for line in source.lines() {
        let key = line.split(':').next().unwrap_or_default();
        if keys.contains(&key) {
            out.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
            out.push('\n');
        }
    }
}

fn allocator() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc v2 (its own counters need its C API, which this build does not call)"
    } else {
        "the system allocator (glibc malloc)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_should_keep_only_the_named_keys() {
        let mut out = String::new();
        pick(
            &mut out,
            "VmRSS:\t  1234 kB\nVmSwap:\t0 kB\nRssAnon:\t 10 kB\n",
            &["RssAnon", "VmRSS"],
        );
        assert_eq!(out, "VmRSS: 1234 kB\nRssAnon: 10 kB\n");
    }

    #[test]
    fn seconds_should_default_to_30_and_refuse_nonsense() {
        assert_eq!(seconds(None), Ok(30));
        assert_eq!(seconds(Some("debug=1&seconds=2")), Ok(2));
        assert!(seconds(Some("seconds=0")).is_err());
        assert!(seconds(Some("seconds=x")).is_err());
        assert!(seconds(Some("seconds=601")).is_err());
    }

    async fn status(enabled: bool, peer: &str, path: &str) -> StatusCode {
        use tower::ServiceExt as _;
        let mut request = Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(Peer {
            addr: peer.parse().unwrap(),
            client_verified: false,
            tls: false,
        }));
        routes::<()>(enabled).oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn profiling_should_answer_loopback_clients_only_and_be_refused_when_off() {
        assert_eq!(status(true, "127.0.0.1:5", "/debug/pprof/").await, StatusCode::OK);
        assert_eq!(status(true, "[::1]:5", "/debug/pprof/heap").await, StatusCode::OK);
        assert_eq!(
            status(true, "10.0.0.7:5", "/debug/pprof/heap").await,
            StatusCode::FORBIDDEN
        );
        for path in ["/debug/pprof", "/debug/pprof/", "/debug/pprof/profile"] {
            let refused = status(false, "127.0.0.1:5", path).await;
            assert_eq!(refused, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        }
    }

    #[test]
    fn a_cpu_profile_should_be_gzip() {
        let body = cpu_profile(Duration::from_millis(200)).unwrap();
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
    }
}
