//! The kubelet API of the managed nodes, as the apiserver and metrics-server call it:
//! `/containerLogs`, `/exec`, `/attach`, `/portForward` (rules from `kwok_kubelet::debugging`,
//! streams from `kwok_kubelet::stream`), the Metric endpoints (`/metrics/nodes/{node}/…`)
//! and Prometheus' HTTP service discovery (`/discovery/prometheus`).
//!
//! Nothing here runs on a shard: a request asks the node's shard for the node and its
//! pods ([`Lookup`]) and does the rest on its own task. With no rule and no Metric the
//! routes answer with upstream's errors and cost the controller nothing.
//!
//! The rules may change while kwok runs (`--enable-crds`): a request takes a snapshot
//! of the set it needs ([`LiveRules`]) when it starts and keeps it to its end.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Path, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use futures::StreamExt as _;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use kwok_kubelet::{
    debugging::{
        DebuggingRules, exec,
        forward::forward,
        logs::{LogOptions, write_logs},
    },
    metrics::{CONTENT_TYPE, Cumulative},
    stream::{
        negotiate::Negotiated,
        portforward,
        remotecommand::{self, CommandStreams, ExecOptions, ExitStatus},
    },
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::{rule_watch::LiveRules, shard::query::Lookup};

/// Bytes of log text buffered between the file reader and the response.
const LOG_BUF_SIZE: usize = 64 * 1024;

/// What the kubelet API serves from: the rules, the Metrics and usages, and the shards.
pub struct KubeletApi {
    rules: LiveRules,
    lookup: Lookup,
    /// Cumulative usage per shard (a node's scrapes always use its shard's), so that
    /// scrapes of nodes of different shards never wait for each other.
    cumulative: Vec<Mutex<Cumulative>>,
}

impl KubeletApi {
    /// The API over `lookup`'s shards.
    pub fn new(rules: LiveRules, lookup: Lookup) -> Self {
        let cumulative = (0..lookup.shards())
            .map(|_| Mutex::new(Cumulative::new()))
            .collect();
        Self {
            rules,
            lookup,
            cumulative,
        }
    }

    /// The routes, for the server to merge.
    pub fn routes<S>(self: Arc<Self>) -> Router<S> {
        Router::new()
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                get(container_logs),
            )
            .route("/exec/{namespace}/{pod}/{container}", any(exec_handler))
            .route("/exec/{namespace}/{pod}/{uid}/{container}", any(exec_with_uid))
            .route("/attach/{namespace}/{pod}/{container}", any(attach_handler))
            .route(
                "/attach/{namespace}/{pod}/{uid}/{container}",
                any(attach_with_uid),
            )
            .route("/portForward/{namespace}/{pod}", any(port_forward))
            .route("/portForward/{namespace}/{pod}/{uid}", any(port_forward_with_uid))
            .route("/metrics/{*path}", get(metric))
            .route("/discovery/prometheus", get(discovery))
            .with_state(self)
    }
}

type Api = State<Arc<KubeletApi>>;

fn bad_request(message: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// `kubectl logs`' options from the kubelet's query (`PodLogOptions`, plus `tail`).
fn log_options(query: &str) -> Result<(LogOptions, bool), String> {
    let mut opts = LogOptions::default();
    let mut previous = false;
    let flag = |v: &str| v == "true" || v == "1";
    let mut since_seconds = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("invalid {key} {value:?}: {e}"))
        };
        match &*key {
            "follow" => opts.follow = flag(&value),
            "previous" => previous = flag(&value),
            "timestamps" => opts.timestamps = flag(&value),
            "tailLines" => opts.tail_lines = Some(number()?),
            "tail" if value != "all" => opts.tail_lines = Some(number()?),
            "limitBytes" => opts.limit_bytes = Some(number()?),
            "sinceSeconds" => since_seconds = Some(number()?),
            "sinceTime" => {
                opts.since = Some(
                    value
                        .parse()
                        .map_err(|e| format!("invalid sinceTime {value:?}: {e}"))?,
                );
            }
            _ => {}
        }
    }
    if let Some(seconds) = since_seconds {
        let since =
            Timestamp::now() - jiff::SignedDuration::from_secs(seconds.try_into().unwrap_or(i64::MAX));
        // The later of the two, as the kubelet takes it.
        opts.since = Some(opts.since.map_or(since, |t| t.max(since)));
    }
    Ok((opts, previous))
}

async fn container_logs(
    State(api): Api,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let (opts, previous) = match log_options(request.uri().query().unwrap_or_default()) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    let rules = api.rules.debugging();
    let rule = match rules
        .logs
        .find(&namespace, &pod, &container, &format!("container {container:?}"))
    {
        Ok(rule) => rule,
        Err(err) => return bad_request(err),
    };
    let file = if previous {
        &rule.previous_logs_file
    } else {
        &rule.logs_file
    };
    let Some(path) = file.clone() else {
        let which = if previous { "previousLogsFile" } else { "logsFile" };
        return bad_request(format!(
            "the logs rule for container {container:?} of pod {namespace}/{pod} has no {which}"
        ));
    };
    if let Err(err) = tokio::fs::metadata(&path).await {
        return bad_request(format!("failed to read logs file {}: {err}", path.display()));
    }
    let follow = opts.follow && rule.follow.unwrap_or(true);
    let opts = LogOptions { follow, ..opts };
    stream_body(path, opts)
}

/// A chunked body fed by a task reading `path`; the task ends with the response (a
/// client gone while a followed file is idle would otherwise keep it).
fn stream_body(path: PathBuf, opts: LogOptions) -> Response {
    let (mut writer, reader) = tokio::io::duplex(LOG_BUF_SIZE);
    let task = tokio::spawn(async move {
        if let Err(err) = write_logs(&path, &opts, &mut writer).await {
            tracing::debug!(%err, "logs stream ended");
        }
        let _ = writer.shutdown().await;
    });
    let guard = tokio_util::task::AbortOnDropHandle::new(task);
    let body = tokio_util::io::ReaderStream::new(reader).map(move |chunk| {
        let _ = &guard;
        chunk
    });
    ([(header::CONTENT_TYPE, "text/plain")], Body::from_stream(body)).into_response()
}

/// Negotiates an exec/attach/port-forward upgrade and hands the connection to `serve`
/// once the client has it: the 101 goes back at once, the rest runs on its own task.
fn upgrade<F, Fut>(mut request: Request, negotiate: Negotiate, serve: F) -> Response
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>, Negotiated) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let negotiated = match negotiate(request.headers()) {
        Ok(n) => n,
        Err(refused) => return refused.into_response().map(Body::from),
    };
    let response = negotiated.response.clone().map(|()| Body::empty());
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded), negotiated).await,
            Err(err) => tracing::debug!(%err, "the client did not take the upgrade"),
        }
    });
    response
}

/// `remotecommand::negotiate` or `portforward::negotiate`.
type Negotiate = fn(&HeaderMap) -> Result<Negotiated, kwok_kubelet::stream::negotiate::UpgradeError>;

/// The `command` parameters of an exec query, in order.
fn commands(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn exec_with_uid(
    api: Api,
    Path((namespace, pod, _uid, container)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    exec_handler(api, Path((namespace, pod, container)), request).await
}

async fn exec_handler(
    State(api): Api,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let query = request.uri().query().unwrap_or_default().to_owned();
    let options = match ExecOptions::from_query(&query) {
        Ok(o) => o,
        Err(err) => return bad_request(err),
    };
    let command = commands(&query);
    upgrade(
        request,
        remotecommand::negotiate,
        move |io, negotiated| async move {
            let Some(streams) = accept(io, &negotiated, options).await else {
                return;
            };
            let CommandStreams {
                stdin,
                stdout,
                stderr,
                status,
                tty,
                ..
            } = streams;
            let rules: Arc<DebuggingRules> = api.rules.debugging();
            let exit =
                match rules
                    .execs
                    .find(&namespace, &pod, &container, &format!("container {container:?}"))
                {
                    Err(err) => ExitStatus::Error(err.to_string()),
                    Ok(target) => match exec::run(
                        target,
                        &command,
                        exec::Streams {
                            stdin,
                            stdout,
                            stderr,
                            tty,
                        },
                    )
                    .await
                    {
                        Ok(Some(0)) => ExitStatus::Success,
                        Ok(Some(code)) => ExitStatus::Code(u8::try_from(code).unwrap_or(u8::MAX)),
                        Ok(None) => ExitStatus::Error(format!("command {command:?} was killed by a signal")),
                        Err(err) => ExitStatus::Error(err.to_string()),
                    },
                };
            let _ = status.finish(exit).await;
        },
    )
}

async fn accept(
    io: TokioIo<hyper::upgrade::Upgraded>,
    negotiated: &Negotiated,
    options: ExecOptions,
) -> Option<CommandStreams> {
    match remotecommand::accept(
        io,
        negotiated,
        options,
        remotecommand::DEFAULT_STREAM_CREATION_TIMEOUT,
    )
    .await
    {
        Ok(streams) => Some(streams),
        Err(err) => {
            tracing::debug!(%err, "the client did not open its streams");
            None
        }
    }
}

async fn attach_with_uid(
    api: Api,
    Path((namespace, pod, _uid, container)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    attach_handler(api, Path((namespace, pod, container)), request).await
}

async fn attach_handler(
    State(api): Api,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let options = match ExecOptions::from_query(request.uri().query().unwrap_or_default()) {
        Ok(o) => o,
        Err(err) => return bad_request(err),
    };
    upgrade(
        request,
        remotecommand::negotiate,
        move |io, negotiated| async move {
            let Some(streams) = accept(io, &negotiated, options).await else {
                return;
            };
            let rules = api.rules.debugging();
            let found =
                rules
                    .attaches
                    .find(&namespace, &pod, &container, &format!("container {container:?}"));
            let file = found.map_err(|e| e.to_string()).and_then(|rule| {
                rule.logs_file
                    .clone()
                    .ok_or_else(|| format!("the attach rule for container {container:?} has no logsFile"))
            });
            let CommandStreams {
                stdin,
                stdout,
                status,
                ..
            } = streams;
            let exit = match (file, stdout) {
                (Err(message), _) => ExitStatus::Error(message),
                (Ok(_), None) => ExitStatus::Success,
                (Ok(path), Some(mut stdout)) => {
                    // Only what is appended from now on, as upstream's attach (tail 0).
                    let opts = LogOptions {
                        follow: true,
                        tail_lines: Some(0),
                        ..LogOptions::default()
                    };
                    // The session ends when the client closes its input or goes away.
                    let closed = async move {
                        match stdin {
                            Some(mut stdin) => {
                                let _ = tokio::io::copy(&mut stdin, &mut tokio::io::sink()).await;
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        result = write_logs(&path, &opts, &mut stdout) => match result {
                            Err(err @ kwok_kubelet::debugging::logs::Error::Read { .. }) => {
                                ExitStatus::Error(err.to_string())
                            }
                            _ => ExitStatus::Success,
                        },
                        () = closed => ExitStatus::Success,
                    }
                }
            };
            let _ = status.finish(exit).await;
        },
    )
}

async fn port_forward_with_uid(
    api: Api,
    Path((namespace, pod, _uid)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    port_forward(api, Path((namespace, pod)), request).await
}

async fn port_forward(
    State(api): Api,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
    let websocket = kwok_kubelet::stream::negotiate::is_websocket(request.headers());
    let ports = if websocket {
        match portforward::ports_from_query(request.uri().query().unwrap_or_default()) {
            Ok(ports) => ports,
            Err(err) => return bad_request(err),
        }
    } else {
        Vec::new()
    };
    upgrade(
        request,
        portforward::negotiate,
        move |io, negotiated| async move {
            let mut forwards = portforward::accept(
                io,
                &negotiated,
                &ports,
                portforward::DEFAULT_STREAM_CREATION_TIMEOUT,
            )
            .await;
            let mut tasks = tokio::task::JoinSet::new();
            while let Some(forwarded) = forwards.next().await {
                let (api, namespace, pod) = (api.clone(), namespace.clone(), pod.clone());
                tasks.spawn(async move {
                    let port = forwarded.port;
                    let rules = api.rules.debugging();
                    let result = match rules
                        .forwards
                        .find(&namespace, &pod, &port, &format!("port {port}"))
                    {
                        Err(err) => Err(err.to_string()),
                        Ok(rule) => forward(rule, forwarded.stream).await.map_err(|e| e.to_string()),
                    };
                    if let Err(message) = result {
                        tracing::debug!(%namespace, %pod, port, %message, "port-forward failed");
                        let _ = forwarded.error.report(&message).await;
                    }
                });
            }
            // The session is over: its connections with it.
            tasks.abort_all();
        },
    )
}

async fn metric(State(api): Api, request: Request) -> Response {
    let path = request.uri().path();
    let metrics = api.rules.metrics();
    let Some((metric, node_name)) = metrics.route(path) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let text = match api.lookup.node(node_name).await {
        // Upstream answers a node it does not know with an empty page.
        None => String::new(),
        Some(view) => {
            let pods: Vec<&Value> = view.pods.iter().collect();
            let shard = api.lookup.shard_of(node_name);
            let usages = api.rules.usages();
            let rendered = {
                let mut cumulative = api.cumulative[shard].lock().unwrap_or_else(|e| e.into_inner());
                metric.render(&view.node, &pods, &usages, &mut cumulative, Timestamp::now())
            };
            for err in &rendered.errors {
                tracing::warn!(node = node_name, metric = metric.name(), %err, "metric not rendered");
            }
            rendered.text
        }
    };
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Upstream's HTTP service discovery: one target group per node and Metric (or per
/// Metric whose path names no node), all at this server's address.
async fn discovery(
    State(api): Api,
    ConnectInfo(peer): ConnectInfo<crate::profiling::Peer>,
    headers: HeaderMap,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The scheme the question came in, as upstream answers.
    let scheme = if peer.tls { "https" } else { "http" };
    let mut nodes = None;
    let mut groups = Vec::new();
    let metrics = api.rules.metrics();
    for metric in metrics.iter() {
        let group = |path: String| {
            json!({
                "targets": [host],
                "labels": {"metrics_name": metric.name(), "__scheme__": scheme, "__metrics_path__": path},
            })
        };
        if metric.path().contains("{nodeName}") {
            if nodes.is_none() {
                nodes = Some(api.lookup.names().await);
            }
            for node in nodes.iter().flatten() {
                groups.push(group(metric.path().replace("{nodeName}", node)));
            }
        } else {
            groups.push(group(metric.path().to_owned()));
        }
    }
    let body = Value::Array(groups).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
