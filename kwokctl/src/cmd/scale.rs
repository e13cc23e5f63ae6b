//! `kwokctl scale KIND [NAME] --replicas N`: creates or deletes labelled objects until
//! exactly N exist, many requests in flight, paced by a rate limiter.

use std::{
    io::IsTerminal as _,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use futures::{StreamExt as _, stream};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
};
use serde_json::Value;

use crate::{
    client,
    flags::ScaleArgs,
    paths::Workdir,
    scale::{self, Kind, Param, SCALE_LABEL, Template},
};

/// Attempts per object when the apiserver answers 429 or 5xx.
const ATTEMPTS: u32 = 5;
/// How long the dry run waits for a fresh namespace to settle, and its step.
const SETTLE_WAIT: Duration = Duration::from_secs(15);
const SETTLE_STEP: Duration = Duration::from_millis(250);
/// Page size when listing the existing objects.
const LIST_PAGE: u32 = 5000;

pub(super) async fn run(workdir: &Workdir, name: &str, args: ScaleArgs) -> Result<()> {
    let kind = Kind::parse(&args.kind)?;
    let prefix = args.prefix.clone().unwrap_or_else(|| kind.name().to_owned());
    scale::check_prefix(&prefix)?;
    let params = args
        .params
        .iter()
        .map(|p| Param::compile(p))
        .collect::<Result<Vec<_>, _>>()?;
    let template = Template::new(kind, &params)?;
    let (dir, _) = super::existing(workdir, name)?;
    super::running::ensure(&dir, name, "kube-apiserver")?;
    let client = client::from_kubeconfig(&dir.kubeconfig()).await?;
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = if kind.namespaced() {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces.get_opt(&args.namespace).await?.is_none() {
            bail!(
                "namespace {:?} does not exist in cluster {name:?}",
                args.namespace
            );
        }
        Api::namespaced_with(client, &args.namespace, &ar)
    } else {
        Api::all_with(client, &ar)
    };
    let existing = list_names(&api, &prefix).await?;
    let plan = scale::plan(&existing, &prefix, args.replicas, args.serial_length);
    if let Some(first) = plan.create.first() {
        // A server-side dry run catches what the apiserver refuses (a bad --param value)
        // before the first object exists.
        let object = to_dynamic(template.render(first, &prefix, &args.namespace))?;
        dry_run(&api, &object).await.map_err(|e| {
            anyhow::anyhow!(
                "the apiserver refuses the {} template: {}",
                kind.name(),
                reason(&e)
            )
        })?;
    }
    let started = Instant::now();
    let runner = Runner::new(&args, plan.create.len() + plan.delete.len());
    runner
        .each(plan.create.iter(), |n| {
            create(&api, &template, n, &prefix, &args.namespace)
        })
        .await
        .with_context(|| format!("failed to create {}s", kind.name()))?;
    runner
        .each(plan.delete.iter(), |n| delete(&api, n))
        .await
        .with_context(|| format!("failed to delete {}s", kind.name()))?;
    runner.bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let done = plan.create.len() + plan.delete.len();
    println!(
        "Scaled {} {prefix:?} to {} ({} created, {} deleted) in {secs:.2}s ({:.0}/s)",
        kind.name(),
        args.replicas,
        plan.create.len(),
        plan.delete.len(),
        done as f64 / secs.max(1e-9),
    );
    Ok(())
}

/// Names of the live objects labelled with `prefix` (those already being deleted are gone).
async fn list_names(api: &Api<DynamicObject>, prefix: &str) -> Result<Vec<String>> {
    let mut params = ListParams::default()
        .labels(&format!("{SCALE_LABEL}={prefix}"))
        .limit(LIST_PAGE);
    let mut names = Vec::new();
    loop {
        let page = api
            .list_metadata(&params)
            .await
            .context("failed to list existing objects")?;
        names.extend(
            page.items
                .into_iter()
                .filter(|o| o.metadata.deletion_timestamp.is_none())
                .filter_map(|o| o.metadata.name),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(names),
        }
    }
}

/// Creates `object` without persisting it, waiting out what a fresh namespace lacks
/// for a moment (its default service account).
async fn dry_run(api: &Api<DynamicObject>, object: &DynamicObject) -> Result<(), kube::Error> {
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut waited = Duration::ZERO;
    loop {
        match api.create(&params, object).await {
            Err(e) if waited < SETTLE_WAIT && retryable(&e) => {
                tokio::time::sleep(SETTLE_STEP).await;
                waited += SETTLE_STEP;
            }
            other => return other.map(drop),
        }
    }
}

fn to_dynamic(object: Value) -> Result<DynamicObject> {
    serde_json::from_value(object).context("the template is not a Kubernetes object")
}

async fn create(
    api: &Api<DynamicObject>,
    template: &Template,
    name: &str,
    prefix: &str,
    namespace: &str,
) -> Result<(), kube::Error> {
    let object = to_dynamic(template.render(name, prefix, namespace)).expect("checked by the dry run");
    match api.create(&PostParams::default(), &object).await {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other.map(drop),
    }
}

async fn delete(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

/// The apiserver's message, without kube's wrapping.
fn reason(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn retryable(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => {
            s.code == 429 || s.code >= 500 || (s.code == 403 && s.message.contains("service account"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs one request per name, `concurrency` at a time, at most `qps` per second,
/// advancing one progress bar.
struct Runner {
    limiter: Option<DefaultDirectRateLimiter>,
    concurrency: usize,
    bar: ProgressBar,
}

impl Runner {
    fn new(args: &ScaleArgs, total: usize) -> Self {
        // A bar on a pipe or a CI log is noise: only a terminal gets one.
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(total as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} in {elapsed}, eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self {
            limiter: NonZeroU32::new(args.qps).map(|qps| RateLimiter::direct(Quota::per_second(qps))),
            concurrency: usize::from(args.concurrency),
            bar,
        }
    }

    /// Calls `op` for every name; fails after all ran if any failed for good.
    async fn each<'a, F, Fut>(&self, names: impl Iterator<Item = &'a String>, op: F) -> Result<()>
    where
        F: Fn(&'a str) -> Fut,
        Fut: Future<Output = Result<(), kube::Error>>,
    {
        let results: Vec<(&str, Result<(), kube::Error>)> = stream::iter(names)
            .map(|name| async {
                let result = self.attempt(|| op(name)).await;
                self.bar.inc(1);
                (name.as_str(), result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let failed: Vec<_> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| (n, e)))
            .collect();
        if let Some((name, err)) = failed.first() {
            bail!(
                "{} of {} failed; {name}: {}",
                failed.len(),
                results.len(),
                reason(err)
            );
        }
        Ok(())
    }

    async fn attempt<Fut>(&self, op: impl Fn() -> Fut) -> Result<(), kube::Error>
    where
        Fut: Future<Output = Result<(), kube::Error>>,
    {
        let mut backoff = Duration::from_millis(100);
        for _ in 1..ATTEMPTS {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            match op().await {
                Err(e) if retryable(&e) => tokio::time::sleep(backoff).await,
                other => return other,
            }
            backoff *= 2;
        }
        op().await
    }
}
