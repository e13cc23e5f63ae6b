//! `kwokctl scale KIND [NAME] --replicas N`: creates or deletes labelled objects until
//! exactly N exist, many requests in flight, paced by a rate limiter.

use std::{
    io::IsTerminal as _,
    num::NonZeroU32,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use futures::{StreamExt as _, stream};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
};
use serde_json::Value;

use crate::{
    client,
    component::Component,
    flags::ScaleArgs,
    paths::Workdir,
    scale::{
        self, Kind, Param, SCALE_LABEL, Template,
        lookup::{self, Served},
    },
    userconfig::UserConfig,
};

/// Attempts per object when the apiserver answers 429 or 5xx.
const ATTEMPTS: u32 = 5;
/// How long the dry run waits for a fresh namespace to settle, and its step.
const SETTLE_WAIT: Duration = Duration::from_secs(15);
const SETTLE_STEP: Duration = Duration::from_millis(250);
/// Page size when listing the existing objects.
const LIST_PAGE: u32 = 5000;

pub(super) async fn run(
    workdir: &Workdir,
    name: &str,
    config_files: &[PathBuf],
    args: ScaleArgs,
    dry_run: bool,
) -> Result<()> {
    let user = UserConfig::load(config_files, &workdir.default_config())?;
    let params = args
        .params
        .iter()
        .map(|p| Param::compile(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (dir, _) = super::existing(workdir, name)?;
    super::running::ensure(&dir, name, Component::KubeApiserver)?;
    let client = client::from_kubeconfig(&dir.kubeconfig()).await?;
    let target = resolve(&client, &user, &args, &params).await?;
    let prefix = args.prefix.clone().unwrap_or_else(|| args.kind.clone());
    scale::check_prefix(&prefix)?;
    let ar = target.resource.api_resource();
    let namespace = target.namespace;
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            if namespaces.get_opt(ns).await?.is_none() {
                bail!("namespace {ns:?} does not exist in cluster {name:?}");
            }
            Api::namespaced_with(client, ns, &ar)
        }
        None => Api::all_with(client, &ar),
    };
    let template = target.template;
    let what = target.resource.singular_name();
    let existing = list_names(&api, &prefix).await?;
    let plan = scale::plan(&existing, &prefix, args.replicas, args.serial_length);
    let stamp = |object: &str| {
        let index = object
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        template
            .render(object, &prefix, namespace.as_deref(), index)
            .map_err(anyhow::Error::from)
            .and_then(to_dynamic)
    };
    // Every object is rendered before the first is made: a template that fails for
    // one serial changes nothing.
    let objects = plan.create.iter().map(|n| stamp(n)).collect::<Result<Vec<_>>>()?;
    if let Some(first) = objects.first() {
        // A server-side dry run catches what the apiserver refuses (a bad --param value)
        // before the first object exists.
        server_dry_run(&api, first)
            .await
            .map_err(|e| anyhow::anyhow!("the apiserver refuses the {what} template: {}", reason(&e)))?;
    }
    if dry_run {
        println!(
            "# Scale {what} {prefix:?} to {}: create {}, delete {}",
            args.replicas,
            plan.create.len(),
            plan.delete.len()
        );
        for n in &plan.create {
            println!("# create {n}");
        }
        for n in &plan.delete {
            println!("# delete {n}");
        }
        if let Some(first) = objects.first() {
            println!("# {what} example:\n{}", serde_saphyr::to_string(first)?);
        }
        return Ok(());
    }
    let started = Instant::now();
    let runner = Runner::new(&args, plan.create.len() + plan.delete.len());
    runner
        .each(
            objects.iter(),
            |o| o.metadata.name.as_deref().unwrap_or_default(),
            |o| create(&api, o),
        )
        .await
        .with_context(|| format!("failed to create {what}s"))?;
    runner
        .each(plan.delete.iter(), String::as_str, |n| delete(&api, n))
        .await
        .with_context(|| format!("failed to delete {what}s"))?;
    runner.bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let done = plan.create.len() + plan.delete.len();
    println!(
        "Scaled {what} {prefix:?} to {} ({} created, {} deleted) in {secs:.2}s ({:.0}/s)",
        args.replicas,
        plan.create.len(),
        plan.delete.len(),
        done as f64 / secs.max(1e-9),
    );
    Ok(())
}

/// What `scale KIND` makes: the resource, its template, and the namespace (for
/// namespaced kinds).
struct Target {
    resource: Served,
    template: Template,
    namespace: Option<String>,
}

/// Finds the template of `args.kind`: a KwokctlResource of that name, else the built-in
/// node or pod, else a served resource of that name with a minimal object.
async fn resolve(client: &Client, user: &UserConfig, args: &ScaleArgs, params: &[Param]) -> Result<Target> {
    let served = discover(client).await?;
    let namespace_for = |resource: &Served, from_template: Option<String>| {
        resource.namespaced.then(|| {
            args.namespace
                .clone()
                .or(from_template)
                .unwrap_or_else(|| "default".into())
        })
    };
    if let Some(krc) = user.resource(&args.kind) {
        let template = Template::resource(krc, params)?;
        let (api_version, kind, from_template) = template.type_of(&args.kind)?;
        let resource = lookup::by_type(&served, &api_version, &kind).cloned().with_context(|| {
            format!(
                "KwokctlResource {:?} makes {kind} objects of {api_version}, which the cluster does not serve",
                krc.name()
            )
        })?;
        let namespace = namespace_for(&resource, from_template);
        return Ok(Target {
            resource,
            template,
            namespace,
        });
    }
    if let Some(kind) = Kind::parse(&args.kind) {
        let ar = kind.api_resource();
        let resource = lookup::by_type(&served, &ar.api_version, &ar.kind)
            .cloned()
            .with_context(|| format!("the cluster does not serve {}", ar.plural))?;
        let namespace = namespace_for(&resource, None);
        return Ok(Target {
            resource,
            template: Template::new(kind, params)?,
            namespace,
        });
    }
    let resource = lookup::find(&served, &args.kind)
        .cloned()
        .ok_or_else(|| scale::Error::UnknownKind(args.kind.clone()))?;
    let template = Template::minimal(&resource.api_version(), &resource.kind, params)?;
    let namespace = namespace_for(&resource, None);
    Ok(Target {
        resource,
        template,
        namespace,
    })
}

/// Every resource the cluster serves that can be created, in its group's preferred
/// version (core first, then the server's group order).
async fn discover(client: &Client) -> Result<Vec<Served>> {
    let failed = || "failed to discover the cluster's resources";
    let mut lists = Vec::new();
    let core = client.list_core_api_versions().await.with_context(failed)?;
    for version in &core.versions {
        lists.push(
            client
                .list_core_api_resources(version)
                .await
                .with_context(failed)?,
        );
    }
    for group in client.list_api_groups().await.with_context(failed)?.groups {
        let Some(version) = group
            .preferred_version
            .or_else(|| group.versions.into_iter().next())
        else {
            continue;
        };
        lists.push(
            client
                .list_api_group_resources(&version.group_version)
                .await
                .with_context(failed)?,
        );
    }
    let mut served = Vec::new();
    for list in lists {
        let (group, version) = match list.group_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), list.group_version.clone()),
        };
        for r in list.resources {
            if r.name.contains('/') || !r.verbs.iter().any(|v| v == "create") {
                continue;
            }
            served.push(Served {
                group: group.clone(),
                version: version.clone(),
                kind: r.kind,
                plural: r.name,
                singular: r.singular_name,
                short_names: r.short_names.unwrap_or_default(),
                namespaced: r.namespaced,
            });
        }
    }
    Ok(served)
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
async fn server_dry_run(api: &Api<DynamicObject>, object: &DynamicObject) -> Result<(), kube::Error> {
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

async fn create(api: &Api<DynamicObject>, object: &DynamicObject) -> Result<(), kube::Error> {
    match api.create(&PostParams::default(), object).await {
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

    /// Calls `op` for every item (named by `name_of` in errors); fails after all ran if
    /// any failed for good.
    async fn each<'a, T: 'a, F, Fut>(
        &self,
        items: impl Iterator<Item = &'a T>,
        name_of: impl Fn(&'a T) -> &'a str,
        op: F,
    ) -> Result<()>
    where
        F: Fn(&'a T) -> Fut,
        Fut: Future<Output = Result<(), kube::Error>>,
    {
        let (op, name_of) = (&op, &name_of);
        let results: Vec<(&str, Result<(), kube::Error>)> = stream::iter(items)
            .map(|item| async move {
                let result = self.attempt(|| op(item)).await;
                self.bar.inc(1);
                (name_of(item), result)
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
