//! `Metric` documents compiled: their path, and each family's expressions.

use serde_json::Value;

use kwok_engine::stage::load::Source;

use super::LoadError;
use super::expr::Expr;
use super::reads::Reads;
use super::spec::{self, Dimension, MetricConfig, MetricKind, MetricSpec};

/// The `Metric` documents in force, each served at its own path.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    metrics: Vec<Metric>,
}

/// One `Metric`: a path (e.g. `/metrics/nodes/{nodeName}/metrics/resource`) and the
/// metric families rendered there for a node.
#[derive(Debug, Clone)]
pub struct Metric {
    name: String,
    path: String,
    segments: Vec<Segment>,
    pub(crate) families: Vec<Family>,
    /// What the families' expressions read, together.
    pub(crate) reads: Reads,
}

/// A path segment: literal text, or a `{parameter}`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter(String),
}

/// One metric family of a `Metric`, its expressions compiled.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: MetricKind,
    pub(crate) dimension: Dimension,
    /// Sorted by name, as Prometheus writes them.
    pub(crate) labels: Vec<(String, Expr)>,
    /// For gauges and counters.
    pub(crate) value: Option<Expr>,
    /// For histograms: upper bound, count expression, whether the bucket is written.
    pub(crate) buckets: Vec<Bucket>,
}

/// A histogram bucket: upper bound, count expression, whether it is hidden.
pub(crate) type Bucket = (f64, Expr, bool);

/// A family's compile error: the field's path and the reason.
type Failure = (String, String);

/// Upstream serves metrics under this prefix only.
const ROOT: &str = "/metrics";

impl Metrics {
    /// The `Metric` documents among `documents` (others are skipped), compiled; the
    /// first bad one is the error.
    pub fn from_documents(documents: &[(Value, Source)]) -> Result<Self, LoadError> {
        let mut metrics = Self::default();
        for (value, source) in documents {
            if spec::kind_of(value) == Some("Metric") {
                metrics.add(value, source)?;
            }
        }
        Ok(metrics)
    }

    /// Adds (or replaces, by name) one `Metric`. Two Metrics may not share a path.
    pub fn add(&mut self, value: &Value, source: &Source) -> Result<(), LoadError> {
        let metric = Metric::compile(value, source)?;
        if let Some(other) = self
            .metrics
            .iter()
            .find(|m| m.path == metric.path && m.name != metric.name)
        {
            let reason = format!("{:?} is already the path of Metric {:?}", metric.path, other.name);
            return Err(LoadError::field(source, value, "spec.path".into(), reason));
        }
        match self.metrics.iter_mut().find(|m| m.name == metric.name) {
            Some(old) => *old = metric,
            None => self.metrics.push(metric),
        }
        Ok(())
    }

    /// Removes the `Metric` named `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.metrics.len();
        self.metrics.retain(|m| m.name != name);
        self.metrics.len() != before
    }

    /// The Metrics, in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Metric> {
        self.metrics.iter()
    }

    /// The Metric served at the request path `path` and the node it asks about.
    pub fn route<'m, 'p>(&'m self, path: &'p str) -> Option<(&'m Metric, &'p str)>
    where
        'm: 'p,
    {
        self.metrics
            .iter()
            .find_map(|m| m.node_of(path).map(|node| (m, node)))
    }
}

impl Metric {
    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path template, e.g. `/metrics/nodes/{nodeName}/metrics/resource`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The node `path` asks about if it matches this Metric's template: the
    /// `{nodeName}` segment, or, as upstream, the Metric's own name when the template
    /// has none.
    pub fn node_of<'a>(&'a self, path: &'a str) -> Option<&'a str> {
        let mut node = None;
        let mut parts = path.trim_end_matches('/').split('/');
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Parameter(_) if part.is_empty() => return None,
                Segment::Parameter(p) if p == "nodeName" => node = Some(part),
                Segment::Parameter(_) => {}
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(node.unwrap_or(&self.name))
    }

    fn compile(value: &Value, source: &Source) -> Result<Self, LoadError> {
        let doc = spec::parse::<MetricSpec>(value, source)?;
        let fail = |field: String, reason: String| LoadError::field(source, value, field, reason);
        let path = doc.spec.path;
        if path != ROOT && !path.starts_with("/metrics/") {
            return Err(fail(
                "spec.path".into(),
                format!("{path:?} does not start with {ROOT:?}"),
            ));
        }
        let families = doc
            .spec
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| Family::compile(m, &format!("spec.metrics[{i}]")).map_err(|(f, r)| fail(f, r)))
            .collect::<Result<Vec<Family>, _>>()?;
        let mut reads = Reads::default();
        for family in &families {
            let exprs = family.labels.iter().map(|(_, e)| e);
            let exprs = exprs
                .chain(&family.value)
                .chain(family.buckets.iter().map(|(_, e, _)| e));
            exprs.for_each(|e| reads.merge(e.reads()));
        }
        Ok(Self {
            name: doc.metadata.name,
            segments: segments(&path),
            path,
            families,
            reads,
        })
    }
}

fn segments(path: &str) -> Vec<Segment> {
    path.trim_end_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) => Segment::Parameter(p.to_owned()),
            None => Segment::Literal(s.to_owned()),
        })
        .collect()
}

impl Family {
    /// The error is (field path, reason).
    fn compile(m: &MetricConfig, at: &str) -> Result<Self, Failure> {
        let expr = |field: String, src: &str| Expr::compile(src).map_err(|r| (field, r));
        if !valid_name(&m.name, true) {
            return Err((
                format!("{at}.name"),
                format!("{:?} is not a Prometheus metric name", m.name),
            ));
        }
        let mut labels = Vec::with_capacity(m.labels.len());
        for (i, l) in m.labels.iter().enumerate() {
            let field = format!("{at}.labels[{i}]");
            if !valid_name(&l.name, false) || l.name.starts_with("__") || l.name == "le" {
                return Err((
                    format!("{field}.name"),
                    format!("{:?} is not a usable label name", l.name),
                ));
            }
            if labels.iter().any(|(n, _)| n == &l.name) {
                return Err((format!("{field}.name"), format!("label {:?} is repeated", l.name)));
            }
            labels.push((l.name.clone(), expr(format!("{field}.value"), &l.value)?));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let (value, buckets) = match m.kind {
            MetricKind::Histogram => (None, Self::buckets(m, at)?),
            _ => (Some(expr(format!("{at}.value"), &m.value)?), Vec::new()),
        };
        Ok(Self {
            name: m.name.clone(),
            help: m.help.clone(),
            kind: m.kind,
            dimension: m.dimension,
            labels,
            value,
            buckets,
        })
    }

    fn buckets(m: &MetricConfig, at: &str) -> Result<Vec<Bucket>, Failure> {
        if m.buckets.is_empty() {
            return Err((format!("{at}.buckets"), "a histogram needs buckets".into()));
        }
        let mut out = Vec::with_capacity(m.buckets.len());
        for (i, b) in m.buckets.iter().enumerate() {
            let e = Expr::compile(&b.value).map_err(|r| (format!("{at}.buckets[{i}].value"), r))?;
            out.push((b.le, e, b.hidden));
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(out)
    }
}

/// Prometheus' metric (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or label (no `:`) name syntax.
fn valid_name(name: &str, colon: bool) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    name.chars().next().is_some_and(|c| ok(c) && !c.is_ascii_digit()) && name.chars().all(ok)
}
