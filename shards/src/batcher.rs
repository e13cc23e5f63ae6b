//! The write path: effects due for one object are merged into as few requests as
//! possible and sent under a shared QPS limit, with retries on 429/5xx.
//!
//! # Merge rule
//! Consecutive patches to the same subresource with the same merge-style type
//! (merge or strategic) are deep-merged into one body: both types are "overlay"
//! patches, so applying the merged body equals applying them in order, except for
//! `null` deletions followed by re-additions, which keep their last value.
//!
//! # Partial failure
//! A stage's effects are one transition, sent in order ([`Writer::execute`]):
//! - A stage that failed to render never gets here: it has no effects, only a
//!   [`RenderError`](kwok_engine::error::RenderError), whose docs give what the shard
//!   does with it (a full IP pool: try again later; a template error: when the object
//!   changes). A JSON patch the writer cannot send (checked again here, though the
//!   engine already refuses one) fails the stage whole ([`Outcome::Failed`]) before
//!   anything is sent, and it is tried again later, backing off.
//! - Once sending, the first conflict ([`Outcome::Conflict`]), refusal or exhausted
//!   retries ([`Outcome::Failed`]), or missing object ([`Outcome::Gone`]) stops the
//!   rest. What was already sent stays (the apiserver has no transactions); the shard
//!   matches the object again (conflict) or retries the stage from the object's
//!   newest state (failure), so the effects left out are sent then if still due.
//!
//! # Which object
//! Writes go out by name, so each carries the uid of the object it was rendered for, as
//! the kubelet's pod status patches do: merge and strategic patches set
//! `metadata.uid`, JSON patches (finalizers too) start with a `test` of
//! `/metadata/uid`, a delete sends `Preconditions { uid }`. A write that reaches an
//! object re-created under the same name then fails instead of changing it, and ends
//! as [`Outcome::Gone`]: the object it was for is gone, whatever the apiserver called
//! the refusal (409 for a delete precondition, 422 for a changed uid or a failed
//! `test`), checked by reading the object. (`apply` steps, which may name other objects
//! and create them, carry none.)

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    core::{ApiResource, Request, Resource},
};
use kwok_engine::{
    effect::{ApplyType, Body, Effect},
    patch::PatchType,
};
use rand::Rng;
use serde_json::Value;
use tracing::warn;

use crate::{lease::WriteFence, metrics::Metrics, object::JsonObject};

/// Attempts per request before it counts as failed.
const MAX_ATTEMPTS: u32 = 6;
/// First retry delay; doubles per attempt, with jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// Merges `effects` in place by the rule above; returns how many were merged away.
pub fn coalesce(effects: &mut Vec<Effect>) -> usize {
    let before = effects.len();
    let mut out: Vec<Effect> = Vec::with_capacity(effects.len());
    for effect in effects.drain(..) {
        if let (
            Some(Effect::Patch {
                subresource: s1,
                ty: t1,
                body: b1,
                impersonate: i1,
            }),
            Effect::Patch {
                subresource: s2,
                ty: t2,
                body: b2,
                impersonate: i2,
            },
        ) = (out.last_mut(), &effect)
            && s1 == s2
            && t1 == t2
            && i1 == i2
            && *t1 != PatchType::Json
        {
            let mut merged = std::mem::replace(b1, Body::Value(Value::Null)).into_value();
            deep_merge(&mut merged, b2.to_value().into_owned());
            *b1 = Body::Value(merged);
            continue;
        }
        out.push(effect);
    }
    *effects = out;
    before - effects.len()
}

fn deep_merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// Where effects go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The object's API resource.
    pub resource: ApiResource,
    /// Namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The object as last seen, cut to its metadata (`{"metadata": …}`): all that events
    /// and finalizer patches read.
    pub object: Value,
    /// Checked before each request (retries too): none goes out once another kwok may
    /// have taken the object's node over.
    pub fence: WriteFence,
}

/// What became of an object's effects: exactly one of four ends.
#[derive(Debug)]
pub enum Outcome {
    /// Every effect went out; the object as the last write that returned it left it
    /// (`None`: no write returned the object, e.g. only events were sent).
    Written(Option<Box<JsonObject>>),
    /// A write hit a conflict, so the cached object was stale: the rest was not sent.
    /// Holds the object read afresh (`None` if that read failed).
    Conflict(Option<Box<JsonObject>>),
    /// The object is gone: deleted by a `delete` effect, or not found.
    Gone,
    /// A write failed for good (refused, retries used up) or the stage failed to
    /// render: the rest was not sent; try the stage again later.
    Failed,
    /// The write's fence closed before a request went out (another kwok may hold the
    /// node now): the rest was not sent.
    Fenced,
}

/// (apiVersion, kind) of an object an `apply` step names.
type KindKey = (String, String);

/// Sends effects to the apiserver.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    /// The connection settings, to make clients that impersonate a Stage's user.
    config: Option<kube::Config>,
    /// One client per impersonated user, made on first use.
    impersonating: Arc<std::sync::Mutex<std::collections::HashMap<String, Client>>>,
    /// The API resources `apply` steps name, found by discovery on first use:
    /// (apiVersion, kind) → (resource, namespaced).
    kinds: Arc<std::sync::Mutex<std::collections::HashMap<KindKey, (ApiResource, bool)>>>,
    limiter: Arc<DefaultDirectRateLimiter>,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// A writer limited to `qps` with `burst`.
    pub fn new(client: Client, qps: f64, burst: u32, metrics: Arc<Metrics>) -> Self {
        let per_second = std::num::NonZeroU32::new(qps.max(1.0) as u32).expect("at least 1");
        let burst = std::num::NonZeroU32::new(burst.max(1)).expect("at least 1");
        let limiter = Arc::new(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(burst),
        ));
        Self {
            client,
            config: None,
            impersonating: Arc::default(),
            kinds: Arc::default(),
            limiter,
            metrics,
        }
    }

    /// Lets effects impersonate users (`statusPatchAs`, `impersonation`): their
    /// clients are made from `config` with `Impersonate-User` set.
    pub fn with_config(mut self, config: kube::Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The client acting as `user` (our own identity for `None`).
    fn client_as(&self, user: Option<&str>) -> Result<Client, Failure> {
        let (Some(user), Some(config)) = (user, &self.config) else {
            return Ok(self.client.clone());
        };
        let mut clients = self.impersonating.lock().expect("not poisoned");
        if let Some(client) = clients.get(user) {
            return Ok(client.clone());
        }
        let mut config = config.clone();
        config.auth_info.impersonate = Some(user.to_owned());
        // Impersonated writes (rare) send no traceparent; their spans are still kwok's.
        let client = crate::client::build(&config, false).map_err(|e| {
            warn!(user, error = %e, "failed to make an impersonating client");
            Failure::Other
        })?;
        clients.insert(user.to_owned(), client.clone());
        Ok(client)
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends `effects` for `target` in order; stops at the first conflict, failure or
    /// when the object is found gone (see [`Outcome`]).
    pub async fn execute(&self, target: &Target, effects: &[Effect]) -> Outcome {
        // A stage goes out whole or not at all (module docs).
        if let Some(error) = effects.iter().find_map(malformed_json_patch) {
            warn!(object = %target.name, %error, "stage has a malformed JSON patch; trying again later");
            return Outcome::Failed;
        }
        let api = self.api(target, self.client.clone());
        let uid = target.uid();
        let (mut last, mut deleted) = (None, false);
        for effect in effects {
            let result = match effect {
                Effect::Patch {
                    subresource,
                    ty,
                    body,
                    impersonate,
                } => match self.client_as(impersonate.as_deref()) {
                    Ok(client) => match patch_body(*ty, body, uid) {
                        Ok(bytes) => {
                            self.patch(target, &client, subresource.as_deref(), *ty, bytes)
                                .await
                        }
                        Err(_) => Err(Failure::Other),
                    },
                    Err(failure) => Err(failure),
                },
                Effect::Apply {
                    subresource,
                    ty,
                    body,
                    impersonate,
                } => match self.client_as(impersonate.as_deref()) {
                    Ok(client) => {
                        self.apply(target, client, subresource.as_deref(), *ty, body)
                            .await
                    }
                    Err(failure) => Err(failure),
                },
                Effect::Finalizers { .. } => match effect.finalizers_json_patch(&target.object) {
                    Some(ops) => match json_patch_bytes(&with_uid_test(ops, uid)) {
                        Ok(bytes) => {
                            self.patch(target, &self.client, None, PatchType::Json, bytes)
                                .await
                        }
                        Err(_) => Err(Failure::Other),
                    },
                    None => Ok(None),
                },
                Effect::Delete => self.delete(target).await.map(|()| None),
                Effect::Event {
                    type_,
                    reason,
                    message,
                } => {
                    self.event(target, type_, reason, message).await;
                    Ok(None)
                }
            };
            match result {
                Ok(Some(obj)) => last = Some(Box::new(obj)),
                Ok(None) => deleted |= matches!(effect, Effect::Delete),
                Err(failure @ (Failure::Conflict | Failure::Invalid(_))) => {
                    // The cached object is stale, or another object holds the name now:
                    // read it to tell which.
                    let fresh = self
                        .send(&WriteFence::default(), "get", || async {
                            api.get(&target.name).await.map(Some)
                        })
                        .await;
                    let outcome = after_refusal(failure, fresh, uid);
                    if matches!(outcome, Outcome::Failed) {
                        self.metrics.request_failures.inc();
                    }
                    return outcome;
                }
                Err(Failure::NotFound) => return Outcome::Gone,
                Err(Failure::Fenced) => return Outcome::Fenced,
                Err(Failure::Other) => return Outcome::Failed,
            }
        }
        match deleted {
            true => Outcome::Gone,
            false => Outcome::Written(last),
        }
    }

    /// Upstream's `apply` step: create the object `body` names (the namespace defaults
    /// to the source object's), or patch it with `ty` when it exists; with a
    /// subresource, only patch. Only a response for the source object itself replaces
    /// the cached one.
    async fn apply(
        &self,
        target: &Target,
        client: Client,
        subresource: Option<&str>,
        ty: ApplyType,
        body: &Value,
    ) -> Result<Option<JsonObject>, Failure> {
        let field = |path: &str| {
            body.pointer(path)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(api_version), Some(kind), Some(name)) =
            (field("/apiVersion"), field("/kind"), field("/metadata/name"))
        else {
            warn!(object = %target.name, "apply step: the template must give apiVersion, kind and metadata.name");
            return Err(Failure::Other);
        };
        let (resource, namespaced) = self.resource_of(client.clone(), api_version, kind).await?;
        let mut body = body.clone();
        let namespace = namespaced.then(|| {
            field("/metadata/namespace")
                .map(str::to_owned)
                .or_else(|| target.namespace.clone())
                .unwrap_or_else(|| "default".into())
        });
        if let Some(ns) = &namespace {
            body["metadata"]["namespace"] = Value::String(ns.clone());
        }
        let api: Api<JsonObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client, ns, &resource),
            None => Api::all_with(client, &resource),
        };
        let (params, patch) = match ty {
            ApplyType::Apply => (PatchParams::apply("kwok").force(), Patch::Apply(&body)),
            ApplyType::Merge => (PatchParams::default(), Patch::Merge(&body)),
            ApplyType::Strategic => (PatchParams::default(), Patch::Strategic(&body)),
        };
        let result = match subresource {
            Some(sub) => {
                self.send(&target.fence, "apply", || {
                    patch_at(&api, name, Some(sub), &params, &patch)
                })
                .await
            }
            None => {
                let obj = JsonObject::new(&body);
                let created = self
                    .send(&target.fence, "create", || async {
                        api.create(&PostParams::default(), &obj).await.map(Some)
                    })
                    .await;
                match created {
                    // AlreadyExists.
                    Err(Failure::Conflict) => {
                        self.send(&target.fence, "apply", || {
                            patch_at(&api, name, None, &params, &patch)
                        })
                        .await
                    }
                    other => other,
                }
            }
        };
        let same = resource.kind == target.resource.kind
            && resource.group == target.resource.group
            && name == target.name
            && namespace == target.namespace;
        result.map(|obj| obj.filter(|_| same))
    }

    /// The API resource of `api_version`/`kind`, and whether it is namespaced.
    async fn resource_of(
        &self,
        client: Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), Failure> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(found) = self.kinds.lock().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&client, &gvk).await.map_err(|e| {
            warn!(api_version, kind, error = %e, "apply step: unknown kind");
            Failure::Other
        })?;
        let found = (resource, caps.scope == kube::discovery::Scope::Namespaced);
        self.kinds
            .lock()
            .expect("not poisoned")
            .insert(key, found.clone());
        Ok(found)
    }

    fn api(&self, target: &Target, client: Client) -> Api<JsonObject> {
        match &target.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &target.resource),
            None => Api::all_with(client, &target.resource),
        }
    }

    /// Sends `body`, a patch of type `ty` already written as JSON, to `target` (or its
    /// subresource `sub`) as `client`.
    async fn patch(
        &self,
        target: &Target,
        client: &Client,
        sub: Option<&str>,
        ty: PatchType,
        body: Vec<u8>,
    ) -> Result<Option<JsonObject>, Failure> {
        let url = JsonObject::url_path(&target.resource, target.namespace.as_deref());
        self.send(&target.fence, "patch", || async {
            let request = patch_request(&url, &target.name, sub, ty, body.clone())?;
            // Decoded without managedFields, as the watch's objects are: the response
            // replaces the cached object.
            client.request::<JsonObject>(request).await.map(Some)
        })
        .await
    }

    /// Deletes the object at once. The response (the object's last state) is read but
    /// not decoded: nothing uses it, and decoding it was a sixth of kwok's CPU while
    /// `small`'s pods were deleted (kube's `Api::delete` decodes it twice).
    async fn delete(&self, target: &Target) -> Result<(), Failure> {
        let params = delete_params(target.uid());
        let url = JsonObject::url_path(&target.resource, target.namespace.as_deref());
        self.send(&target.fence, "delete", || async {
            let mut request = Request::new(&url)
                .delete(&target.name, &params)
                .map_err(kube::Error::BuildRequest)?;
            // kube's name for the verb, which its metrics and traces read.
            request.extensions_mut().insert("delete");
            self.client.request_text(request).await.map(|_| None)
        })
        .await
        .map(|_| ())
    }

    async fn event(&self, target: &Target, type_: &str, reason: &str, message: &str) {
        let meta = &target.object["metadata"];
        let namespace = target.namespace.clone().unwrap_or_else(|| "default".into());
        let now = jiff::Timestamp::now().to_string();
        let event = serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "generateName": format!("{}.", target.name), "namespace": namespace },
            "involvedObject": {
                "apiVersion": target.resource.api_version, "kind": target.resource.kind,
                "name": target.name, "namespace": target.namespace, "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
            },
            "type": type_, "reason": reason, "message": message,
            "source": { "component": "kwok" }, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let ar = ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&());
        let api: Api<JsonObject> = Api::namespaced_with(self.client.clone(), &namespace, &ar);
        let obj = JsonObject::new(&event);
        let _ = self
            .send(&target.fence, "create", || async {
                api.create(&PostParams::default(), &obj).await.map(|_| None)
            })
            .await;
    }

    /// Runs `call` under the rate limit, retrying throttling and server errors, while
    /// `fence` is open: it is checked right before each attempt goes out (after the
    /// rate limit's and the retries' waits).
    async fn send<F, Fut>(
        &self,
        fence: &WriteFence,
        verb: &str,
        call: F,
    ) -> Result<Option<JsonObject>, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<JsonObject>, kube::Error>>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            self.limiter.until_ready().await;
            if !fence.is_open(tokio::time::Instant::now()) {
                self.metrics.fenced_writes.inc();
                return Err(Failure::Fenced);
            }
            // A child of the stage's span; disabled (and free) without --tracing-endpoint.
            let span = tracing::info_span!(
                target: crate::otel::TARGET,
                "write",
                otel.name = verb,
                attempt,
                http.response.status_code = tracing::field::Empty,
            );
            let start = Instant::now();
            let result = tracing::Instrument::instrument(call(), span.clone()).await;
            let seconds = start.elapsed().as_secs_f64();
            let code = match &result {
                Ok(_) => "200".to_owned(),
                Err(kube::Error::Api(status)) => status.code.to_string(),
                Err(_) => "error".to_owned(),
            };
            span.record("http.response.status_code", code.as_str());
            self.metrics.request(verb, &code, seconds);
            match result {
                Ok(v) => return Ok(v),
                Err(kube::Error::Api(s)) if s.code == 409 => return Err(Failure::Conflict),
                Err(kube::Error::Api(s)) if s.code == 404 => return Err(Failure::NotFound),
                // Possibly our uid precondition; the caller looks (not counted as a
                // failure, not logged, until it has).
                Err(kube::Error::Api(s)) if s.code == 422 && verb != "create" => {
                    return Err(Failure::Invalid(s.message));
                }
                Err(kube::Error::Api(s)) if s.code != 429 && s.code < 500 => {
                    warn!(verb, code = s.code, message = %s.message, "request refused");
                    self.metrics.request_failures.inc();
                    return Err(Failure::Other);
                }
                Err(e) if attempt + 1 == MAX_ATTEMPTS => {
                    warn!(verb, error = %e, attempts = MAX_ATTEMPTS, "request failed for good");
                    self.metrics.request_failures.inc();
                    return Err(Failure::Other);
                }
                // The writer is I/O code: it reads the thread's random source here and
                // hands it to the pure schedule.
                Err(_) => {
                    let wait = backoff(attempt, &mut rand::rng());
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(Failure::Other)
    }
}

/// Why a write did not succeed.
#[derive(Debug)]
enum Failure {
    /// 409: a precondition failed or the object changed under us.
    Conflict,
    /// 404.
    NotFound,
    /// 422: refused as invalid, which a uid precondition also gives; the message.
    Invalid(String),
    /// Anything else, after retries.
    Other,
    /// The write's fence closed before it went out.
    Fenced,
}

/// What a write refused with `failure` (a conflict or as invalid) means, given a read
/// of the object afterwards (`fresh`): another object under the name, or none, means
/// the one the write was for (of uid `uid`) is gone; else the write conflicted with a
/// newer state of it (matched again on the read) or was invalid (tried again later).
fn after_refusal(failure: Failure, fresh: Result<Option<JsonObject>, Failure>, uid: &str) -> Outcome {
    let fresh = match fresh {
        Ok(Some(obj)) if uid.is_empty() || obj.metadata.uid.as_deref() == Some(uid) => Some(obj),
        Ok(Some(_)) | Err(Failure::NotFound) => return Outcome::Gone,
        Ok(None) | Err(_) => None,
    };
    match failure {
        Failure::Invalid(message) => {
            warn!(code = 422, %message, "request refused");
            Outcome::Failed
        }
        _ => Outcome::Conflict(fresh.map(Box::new)),
    }
}

impl Target {
    /// The uid of the object the effects are for (empty if unknown).
    fn uid(&self) -> &str {
        self.object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Deletes at once, and only the object of `uid` (none if empty).
fn delete_params(uid: &str) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// `ops` (a JSON patch) starting with a `test` that the object is still `uid` (none if
/// empty, or if `ops` is not a list: then it is refused as it is).
fn with_uid_test(mut ops: Value, uid: &str) -> Value {
    if let (false, Some(list)) = (uid.is_empty(), ops.as_array_mut()) {
        list.insert(
            0,
            serde_json::json!({"op": "test", "path": "/metadata/uid", "value": uid}),
        );
    }
    ops
}

/// The PATCH request of type `ty` for `name` (or its subresource `sub`) under `url`, with
/// `body` (already JSON) as it is: kube writes the URL, query and content type.
fn patch_request(
    url: &str,
    name: &str,
    sub: Option<&str>,
    ty: PatchType,
    body: Vec<u8>,
) -> Result<http::Request<Vec<u8>>, kube::Error> {
    let shape: Patch<()> = match ty {
        PatchType::Json => Patch::Json(json_patch::Patch(Vec::new())),
        PatchType::Merge => Patch::Merge(()),
        PatchType::Strategic => Patch::Strategic(()),
    };
    let (request, params) = (Request::new(url), PatchParams::default());
    let mut request = match sub {
        None => request.patch(name, &params, &shape),
        Some(sub) => request.patch_subresource(sub, name, &params, &shape),
    }
    .map_err(kube::Error::BuildRequest)?;
    *request.body_mut() = body;
    // kube's name for the verb, which its metrics and traces read.
    request.extensions_mut().insert("patch");
    Ok(request)
}

/// The request body of a patch effect: `body` as JSON, carrying `uid` (module docs).
/// A body the stage wrote as text gets `"metadata":{"uid":…}` written before its fields,
/// unless it has a `metadata` to merge into (then it is read as a value); it is not read.
pub fn patch_body(ty: PatchType, body: &Body, uid: &str) -> Result<Vec<u8>, serde_json::Error> {
    match (ty, body) {
        (PatchType::Json, _) => json_patch_bytes(&with_uid_test(body.to_value().into_owned(), uid)),
        (_, Body::Json(text)) if uid.is_empty() => Ok(text.as_str().as_bytes().to_vec()),
        (_, Body::Json(text)) if !text.has_metadata() => Ok(uid_first(text.as_str(), uid)),
        _ => serde_json::to_vec(&with_uid(body.to_value().into_owned(), uid)),
    }
}

/// `object`, the text of a JSON object, with `"metadata":{"uid":…}` as its first field.
fn uid_first(object: &str, uid: &str) -> Vec<u8> {
    let fields = object.strip_prefix('{').unwrap_or(object);
    let mut out = Vec::with_capacity(object.len() + uid.len() + 32);
    out.extend_from_slice(br#"{"metadata":{"uid":"#);
    // A uid is a UUID; written by serde_json all the same, in case it is not.
    let _ = serde_json::to_writer(&mut out, uid);
    out.extend_from_slice(b"}");
    if fields != "}" {
        out.push(b',');
    }
    out.extend_from_slice(fields.as_bytes());
    out
}

/// A merge or strategic patch `body` that sets `metadata.uid`, so the apiserver refuses
/// it on another object of the name (none if `uid` is empty or `body` not a map).
fn with_uid(mut body: Value, uid: &str) -> Value {
    if let (false, Some(map)) = (uid.is_empty(), body.as_object_mut()) {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("uid".into(), Value::String(uid.to_owned()));
        }
    }
    body
}

/// The wait before retry `attempt + 1`: [`BASE_BACKOFF`] doubled per attempt (up to
/// 64×), plus up to half again drawn from `rng`, so retries of many writers spread out.
fn backoff(attempt: u32, rng: &mut impl Rng) -> Duration {
    let base = BASE_BACKOFF * 2u32.pow(attempt.min(6));
    base + Duration::from_millis(rng.random_range(0..=base.as_millis() as u64 / 2))
}

/// `ops` as a JSON patch; an error if it is not one (never an empty patch in its place).
fn json_patch(ops: &Value) -> Result<json_patch::Patch, serde_json::Error> {
    serde_json::from_value::<json_patch::Patch>(ops.clone())
}

/// `ops` as the body of a JSON patch request (an error if it is not one).
fn json_patch_bytes(ops: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&json_patch(ops)?)
}

/// Why `effect`'s JSON patch body is not a JSON patch, if it has one that is not.
fn malformed_json_patch(effect: &Effect) -> Option<serde_json::Error> {
    match effect {
        Effect::Patch {
            ty: PatchType::Json,
            body,
            ..
        } => json_patch(&body.to_value()).err(),
        _ => None,
    }
}

async fn patch_at(
    api: &Api<JsonObject>,
    name: &str,
    sub: Option<&str>,
    params: &PatchParams,
    patch: &Patch<impl serde::Serialize + std::fmt::Debug>,
) -> Result<Option<JsonObject>, kube::Error> {
    let obj = match sub {
        None => api.patch(name, params, patch).await?,
        Some(sub) => api.patch_subresource(sub, name, params, patch).await?,
    };
    // Decoded without managedFields, as the watch's objects are: the response replaces
    // the cached object.
    Ok(Some(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kwok_engine::effect::JsonText;
    use serde_json::json;

    fn status_patch(body: Value) -> Effect {
        Effect::Patch {
            subresource: Some("status".into()),
            ty: PatchType::Strategic,
            body: body.into(),
            impersonate: None,
        }
    }

    /// `v` as a body of JSON text, as stages write theirs.
    fn text(v: &Value) -> Body {
        Body::Json(JsonText::from_value(v).expect("an object"))
    }

    /// The request body for `body` of type `ty` with uid `uid`, read back.
    fn sent(ty: PatchType, body: &Body, uid: &str) -> Value {
        serde_json::from_slice(&patch_body(ty, body, uid).expect("a body")).expect("JSON")
    }

    #[test]
    fn writes_should_carry_the_uid_of_the_object_they_were_rendered_for() {
        let body = json!({"status": {"phase": "Running"}});
        let with = json!({"metadata": {"uid": "u1"}, "status": {"phase": "Running"}});
        for ty in [PatchType::Merge, PatchType::Strategic] {
            for body in [Body::Value(body.clone()), text(&body)] {
                assert_eq!(sent(ty, &body, "u1"), with, "{ty:?} {body:?}");
                assert_eq!(sent(ty, &body, ""), json!({"status": {"phase": "Running"}}));
            }
        }
        // Text is written around, not read: the uid goes first, the rest as it was.
        let bytes = patch_body(PatchType::Strategic, &text(&body), "u1").unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"metadata":{"uid":"u1"},"status":{"phase":"Running"}}"#
        );
        // Text with a `metadata` of its own: merged into it, as a value.
        let labelled = json!({"metadata": {"labels": {"a": "b"}}, "spec": {}});
        assert_eq!(
            sent(PatchType::Merge, &text(&labelled), "u1"),
            json!({"metadata": {"labels": {"a": "b"}, "uid": "u1"}, "spec": {}})
        );
        assert_eq!(
            sent(PatchType::Merge, &text(&json!({})), "u1"),
            json!({"metadata": {"uid": "u1"}})
        );
        let ops = json!([{"op": "remove", "path": "/metadata/finalizers/0"}]);
        assert_eq!(
            sent(PatchType::Json, &ops.into(), "u1"),
            json!([
                {"op": "test", "path": "/metadata/uid", "value": "u1"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ])
        );
        // kube writes the URL, query and content type; the body is the one given.
        let request = patch_request(
            "/api/v1/namespaces/default/pods",
            "p",
            Some("status"),
            PatchType::Strategic,
            b"{}".to_vec(),
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(request.uri(), "/api/v1/namespaces/default/pods/p/status?");
        assert_eq!(
            request.headers()[http::header::CONTENT_TYPE],
            "application/strategic-merge-patch+json"
        );
        assert_eq!(request.body(), b"{}");
        let request = patch_request("/api/v1/nodes", "n", None, PatchType::Json, b"[]".to_vec()).unwrap();
        assert_eq!(request.uri(), "/api/v1/nodes/n?");
        assert_eq!(
            request.headers()[http::header::CONTENT_TYPE],
            "application/json-patch+json"
        );
        let finalizers = Effect::Finalizers {
            add: vec![],
            remove: vec!["f".into()],
        };
        let object = json!({"metadata": {"uid": "u1", "finalizers": ["f"]}});
        let ops = with_uid_test(finalizers.finalizers_json_patch(&object).unwrap(), "u1");
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/uid", "value": "u1"})
        );
        assert_eq!(
            delete_params("u1").preconditions,
            Some(Preconditions {
                uid: Some("u1".into()),
                resource_version: None
            })
        );
        assert_eq!(delete_params("u1").grace_period_seconds, Some(0));
        // An object of unknown uid (none cached) is written without a precondition.
        assert_eq!(delete_params("").preconditions, None);
        assert_eq!(with_uid(body.clone(), ""), body);
    }

    #[test]
    fn a_write_refused_by_another_object_of_the_name_should_end_as_gone_not_retried() {
        let obj = |uid: &str| {
            Ok(Some(JsonObject::new(
                &json!({"metadata": {"name": "p", "uid": uid, "resourceVersion": "9"}}),
            )))
        };
        let invalid = || Failure::Invalid("metadata.uid: field is immutable".into());
        // Re-created under the name: whatever the refusal, the object written for is gone.
        assert!(matches!(
            after_refusal(Failure::Conflict, obj("u2"), "u1"),
            Outcome::Gone
        ));
        assert!(matches!(after_refusal(invalid(), obj("u2"), "u1"), Outcome::Gone));
        assert!(matches!(
            after_refusal(Failure::Conflict, Err(Failure::NotFound), "u1"),
            Outcome::Gone
        ));
        // The same object: a conflict matches its fresh state again; invalid is a failure.
        assert!(matches!(
            after_refusal(Failure::Conflict, obj("u1"), "u1"),
            Outcome::Conflict(Some(_))
        ));
        assert!(matches!(
            after_refusal(invalid(), obj("u1"), "u1"),
            Outcome::Failed
        ));
        // The read failed: nothing known, as before.
        assert!(matches!(
            after_refusal(Failure::Conflict, Err(Failure::Other), "u1"),
            Outcome::Conflict(None)
        ));
        assert!(matches!(
            after_refusal(invalid(), Err(Failure::Other), "u1"),
            Outcome::Failed
        ));
    }

    #[test]
    fn backoff_should_double_per_attempt_with_up_to_half_again_of_jitter() {
        use rand::{SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(3);
        for (attempt, base_ms) in [(0, 100), (1, 200), (2, 400), (6, 6_400), (9, 6_400)] {
            for _ in 0..100 {
                let wait = backoff(attempt, &mut rng).as_millis() as u64;
                assert!(
                    (base_ms..=base_ms * 3 / 2).contains(&wait),
                    "attempt {attempt}: {wait} ms"
                );
            }
        }
    }

    #[test]
    fn a_malformed_json_patch_should_be_an_error_not_an_empty_patch() {
        let json = |body| Effect::Patch {
            subresource: None,
            ty: PatchType::Json,
            body,
            impersonate: None,
        };
        let good = json(json!([{"op": "remove", "path": "/metadata/finalizers/0"}]).into());
        assert!(malformed_json_patch(&good).is_none());
        assert_eq!(sent(PatchType::Json, &json!([]).into(), ""), json!([]));
        for bad in [
            json!({"op": "remove"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!("x"),
        ] {
            assert!(malformed_json_patch(&json(bad.clone().into())).is_some(), "{bad}");
            assert!(
                patch_body(PatchType::Json, &bad.clone().into(), "u").is_err(),
                "{bad}"
            );
        }
        assert!(
            malformed_json_patch(&status_patch(json!({"op": "remove"}))).is_none(),
            "not a JSON patch"
        );
    }

    #[test]
    fn coalesce_should_merge_consecutive_patches_to_the_same_subresource() {
        let mut effects = vec![
            status_patch(json!({"status": {"phase": "Running", "podIP": "10.0.0.1"}})),
            status_patch(json!({"status": {"phase": "Succeeded"}})),
            Effect::Delete,
        ];
        assert_eq!(coalesce(&mut effects), 1);
        assert_eq!(
            effects[0],
            status_patch(json!({"status": {"phase": "Succeeded", "podIP": "10.0.0.1"}}))
        );
        assert_eq!(effects[1], Effect::Delete);
    }

    #[test]
    fn coalesce_should_keep_json_patches_and_other_subresources_apart() {
        let json = Effect::Patch {
            subresource: None,
            ty: PatchType::Json,
            body: json!([]).into(),
            impersonate: None,
        };
        let mut effects = vec![
            json.clone(),
            json.clone(),
            status_patch(json!({})),
            Effect::Delete,
        ];
        assert_eq!(coalesce(&mut effects), 0);
        assert_eq!(effects.len(), 4);
    }
}

/// The write fence, checked at the last moment: against a stand-in apiserver that
/// counts the requests it gets.
#[cfg(test)]
mod fence_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::lease::Fence;

    /// A writer whose every request is counted in `calls` and answered with a pod.
    fn writer(calls: Arc<AtomicUsize>, metrics: Arc<Metrics>) -> Writer {
        let service = tower::service_fn(move |_request: http::Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "2"},
                "status": {"phase": "Running"},
            });
            async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(
                    pod.to_string().into_bytes(),
                )))
            }
        });
        Writer::new(Client::new(service, "default"), 100.0, 100, metrics)
    }

    fn target(fence: &Fence) -> Target {
        Target {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
            namespace: Some("ns".into()),
            name: "p".into(),
            object: json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}),
            fence: WriteFence {
                node: Some(fence.clone()),
                member: None,
            },
        }
    }

    #[tokio::test]
    async fn a_write_should_go_out_only_while_its_fence_is_open() {
        let calls = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(Metrics::unregistered());
        let writer = writer(calls.clone(), metrics.clone());
        let effects = [Effect::Patch {
            subresource: Some("status".into()),
            ty: PatchType::Merge,
            body: json!({"status": {"phase": "Running"}}).into(),
            impersonate: None,
        }];
        let fence = Fence::closed();
        let outcome = writer.execute(&target(&fence), &effects).await;
        assert!(matches!(outcome, Outcome::Fenced), "{outcome:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing went out");
        assert_eq!(metrics.fenced_writes.get(), 1);

        fence.open_until(tokio::time::Instant::now() + Duration::from_secs(10));
        let outcome = writer.execute(&target(&fence), &effects).await;
        assert!(matches!(outcome, Outcome::Written(Some(_))), "{outcome:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
