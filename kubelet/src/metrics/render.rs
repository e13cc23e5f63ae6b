//! Rendering a `Metric` for one node: evaluate each family per node, pod or container,
//! then write the families as upstream's Prometheus registry would gather them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::cumulative::Cumulative;
use super::expr::Scope;
use super::metric::{Family, Metric};
use super::scrape::Scrape;
use super::spec::{Dimension, MetricKind};
use super::table::UsageTable;
use super::text;
use super::usage::Usages;
use super::{RenderError, UsageError};

/// The outcome of one scrape.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The exposition text (see [`CONTENT_TYPE`](super::CONTENT_TYPE)).
    pub text: String,
    /// What went wrong: a family that failed is left out (as upstream leaves it out
    /// of its registry); a container usage that failed reads 0. Worth a log line each.
    pub errors: Vec<RenderError>,
}

/// One sample's value.
#[derive(Debug)]
enum Reading {
    Scalar(f64),
    /// Per stored bucket (hidden ones too): upper bound and count.
    Histogram(Vec<(f64, u64)>),
}

/// The samples of one family, keyed by label values in label-name order: Prometheus'
/// gatherer writes them in that order, and a repeated label set is one sample (the
/// last value), as upstream's get-or-register does.
type Samples = BTreeMap<Vec<String>, Reading>;

impl Metric {
    /// Renders this Metric for `node` and its `pods` (objects as the apiserver returns
    /// them) at `now`, advancing the integrals of `state`.
    ///
    /// # Implementation
    /// The node, the pods and their containers are converted to CEL values once (the
    /// fields the Metric's and the usage rules' expressions read), and
    /// every container's usage is evaluated once, before any family is: each family
    /// then costs its compiled expressions' evaluation per sample.
    pub fn render(
        &self,
        node: &Value,
        pods: &[&Value],
        usages: &Usages,
        state: &mut Cumulative,
        now: Timestamp,
    ) -> Rendered {
        let mut reads = self.reads.clone();
        reads.merge(usages.reads());
        let scrape = Scrape::new(node, pods, &reads, now, state);
        let mut usage_errors = Vec::new();
        let table = UsageTable::build(&scrape, usages, state, now, &mut usage_errors);
        let mut errors: Vec<RenderError> = usage_errors.into_iter().map(RenderError::from).collect();
        let mut gathered: BTreeMap<&str, (&Family, Samples)> = BTreeMap::new();
        for family in &self.families {
            match samples(family, &scrape, &table) {
                Ok(samples) => gathered
                    .entry(&family.name)
                    .or_insert_with(|| (family, Samples::new()))
                    .1
                    .extend(samples),
                Err(e) => errors.push(e),
            }
        }
        let mut out = String::with_capacity(4096);
        for (family, samples) in gathered.values() {
            write_family(&mut out, family, samples);
        }
        Rendered { text: out, errors }
    }
}

impl From<UsageError> for RenderError {
    fn from(e: UsageError) -> Self {
        RenderError::Usage(e)
    }
}

/// Every sample of `family` on the scrape.
fn samples(family: &Family, scrape: &Scrape<'_>, table: &UsageTable) -> Result<Samples, RenderError> {
    let mut out = Samples::new();
    let mut add = |scope: Scope<'_>| -> Result<(), RenderError> {
        let (labels, reading) = sample(family, &scope)?;
        out.insert(labels, reading);
        Ok(())
    };
    match family.dimension {
        Dimension::Node => add(scrape.scope(None, None, Some(table)))?,
        Dimension::Pod => {
            for pod in &scrape.pods {
                add(scrape.scope(Some(pod), None, Some(table)))?;
            }
        }
        Dimension::Container => {
            for pod in &scrape.pods {
                for c in 0..pod.containers.len() {
                    add(scrape.scope(Some(pod), Some(c), Some(table)))?;
                }
            }
        }
    }
    Ok(out)
}

/// One sample: its label values and reading.
fn sample(family: &Family, scope: &Scope<'_>) -> Result<(Vec<String>, Reading), RenderError> {
    let fail = |what: String| {
        move |reason| RenderError::Eval {
            metric: family.name.clone(),
            what,
            reason,
        }
    };
    let labels = family
        .labels
        .iter()
        .map(|(name, e)| e.eval_string(scope).map_err(fail(format!("label {name:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let reading = match &family.value {
        Some(e) => Reading::Scalar(e.eval_f64(scope).map_err(fail("value".into()))?),
        None => {
            let buckets = family.buckets.iter().map(|(le, e, _)| {
                let v = e.eval_f64(scope).map_err(fail(format!("bucket le={le}")))?;
                // Go's uint64(v), with a negative count as none.
                Ok((*le, v.max(0.0) as u64))
            });
            Reading::Histogram(buckets.collect::<Result<_, RenderError>>()?)
        }
    };
    Ok((labels, reading))
}

fn write_family(out: &mut String, family: &Family, samples: &Samples) {
    if samples.is_empty() {
        return;
    }
    let kind = match family.kind {
        MetricKind::Gauge => "gauge",
        MetricKind::Counter => "counter",
        MetricKind::Histogram => "histogram",
    };
    text::header(out, &family.name, &family.help, kind);
    for (values, reading) in samples {
        let labels: Vec<(&str, &str)> = family
            .labels
            .iter()
            .map(|(n, _)| n.as_str())
            .zip(values.iter().map(String::as_str))
            .collect();
        match reading {
            Reading::Scalar(v) => text::sample(out, &family.name, "", &labels, None, *v),
            Reading::Histogram(stored) => write_histogram(out, family, &labels, stored),
        }
    }
}

/// Each written bucket counts the stored counts at or below its bound, `+Inf` all of
/// them; the sum is Σ bound × count, as upstream's histogram computes it.
fn write_histogram(out: &mut String, family: &Family, labels: &[(&str, &str)], stored: &[(f64, u64)]) {
    let count: u64 = stored.iter().map(|(_, c)| c).sum();
    let sum: f64 = stored.iter().map(|(le, c)| le * *c as f64).sum();
    for (bound, _, hidden) in &family.buckets {
        if *hidden || bound.is_infinite() {
            continue;
        }
        let cumulative: u64 = stored.iter().filter(|(le, _)| le <= bound).map(|(_, c)| c).sum();
        text::sample(
            out,
            &family.name,
            "_bucket",
            labels,
            Some(*bound),
            cumulative as f64,
        );
    }
    text::sample(
        out,
        &family.name,
        "_bucket",
        labels,
        Some(f64::INFINITY),
        count as f64,
    );
    text::sample(out, &family.name, "_sum", labels, None, sum);
    text::sample(out, &family.name, "_count", labels, None, count as f64);
}
