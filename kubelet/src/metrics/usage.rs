//! The usage rules: `ResourceUsage` (one pod, by name) and `ClusterResourceUsage`
//! (pods by namespace and name), compiled once, and which rule a container follows.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use kwok_engine::stage::load::Source;

use super::expr::{Expr, Scope};
use super::reads::Reads;
use super::spec::{self, ClusterResourceUsageSpec, ObjectSelector, QuantityText, ResourceUsageSpec};
use super::{LoadError, UsageError};

/// The `ResourceUsage` and `ClusterResourceUsage` rules in force.
///
/// # Implementation
/// A container's rule is found as upstream finds it: the `ResourceUsage` named as its
/// pod (in the pod's namespace) if there is one, and nothing else then; otherwise the
/// first `ClusterResourceUsage`, in load order, whose selector matches the pod and that
/// has an entry for the container. Within a rule, the first entry that lists the
/// container wins, else the first entry that lists no container.
#[derive(Debug, Default, Clone)]
pub struct Usages {
    /// `ResourceUsage`s by (namespace, name): the pod they are for.
    by_pod: HashMap<(String, String), Rule>,
    /// `ClusterResourceUsage`s in load (or arrival) order, with their name.
    cluster: Vec<(String, ObjectSelector, Rule)>,
    /// What the rules' expressions read, together. A rule added or replaced merges
    /// into it and a removal computes it again, so a replaced rule's old fields are
    /// still converted until something is removed: more than needed, never less.
    reads: Reads,
}

/// The `usages` of one object.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    entries: Vec<Entry>,
}

/// One entry of `usages`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Empty: every container.
    containers: Vec<String>,
    /// Resource name and how its usage is found, in resource-name order.
    pub(crate) usage: Vec<(Arc<str>, Amount)>,
}

/// How a resource's usage is found.
#[derive(Debug, Clone)]
pub(crate) enum Amount {
    Fixed(f64),
    Expression(Expr),
}

impl Amount {
    /// The usage for the container in `scope`.
    pub(crate) fn eval(&self, scope: &Scope<'_>) -> Result<f64, String> {
        match self {
            Amount::Fixed(v) => Ok(*v),
            Amount::Expression(e) => e.eval_f64(scope),
        }
    }
}

impl Usages {
    /// The `ResourceUsage` and `ClusterResourceUsage` documents among `documents`
    /// (others are skipped), compiled; the first bad one is the error.
    pub fn from_documents(documents: &[(Value, Source)]) -> Result<Self, LoadError> {
        let mut usages = Self::default();
        for (value, source) in documents {
            if matches!(
                spec::kind_of(value),
                Some("ResourceUsage" | "ClusterResourceUsage")
            ) {
                usages.add(value, source)?;
            }
        }
        Ok(usages)
    }

    /// Adds (or replaces, by name) one `ResourceUsage` or `ClusterResourceUsage`, e.g.
    /// as a watch of the cluster's CRDs delivers it. A ResourceUsage without a namespace
    /// is in `default`, as kubectl would put it.
    pub fn add(&mut self, value: &Value, source: &Source) -> Result<(), LoadError> {
        match spec::kind_of(value) {
            Some("ResourceUsage") => {
                let doc = spec::parse::<ResourceUsageSpec>(value, source)?;
                let rule = Rule::compile(&doc.spec.usages, value, source)?;
                rule.merge_reads(&mut self.reads);
                let namespace = doc.metadata.namespace.unwrap_or_else(|| "default".into());
                self.by_pod.insert((namespace, doc.metadata.name), rule);
            }
            Some("ClusterResourceUsage") => {
                let doc = spec::parse::<ClusterResourceUsageSpec>(value, source)?;
                let rule = Rule::compile(&doc.spec.usages, value, source)?;
                rule.merge_reads(&mut self.reads);
                let entry = (doc.metadata.name, doc.spec.selector.unwrap_or_default(), rule);
                match self.cluster.iter_mut().find(|(name, ..)| *name == entry.0) {
                    Some(old) => *old = entry,
                    None => self.cluster.push(entry),
                }
            }
            other => {
                let reason = format!("kind {other:?} is not ResourceUsage or ClusterResourceUsage");
                return Err(LoadError::field(source, value, "kind".into(), reason));
            }
        }
        Ok(())
    }

    /// Removes a `ResourceUsage` (`namespace` given) or a `ClusterResourceUsage`
    /// (`namespace` None); whether it was there.
    pub fn remove(&mut self, namespace: Option<&str>, name: &str) -> bool {
        let removed = match namespace {
            Some(ns) => self.by_pod.remove(&(ns.to_owned(), name.to_owned())).is_some(),
            None => {
                let before = self.cluster.len();
                self.cluster.retain(|(n, ..)| n != name);
                self.cluster.len() != before
            }
        };
        if removed {
            self.reads = Reads::default();
            let rules = self.by_pod.values().chain(self.cluster.iter().map(|(_, _, r)| r));
            rules.for_each(|r| r.merge_reads(&mut self.reads));
        }
        removed
    }

    /// What the rules' expressions read of `node`, `pod` and `container`.
    pub(crate) fn reads(&self) -> &Reads {
        &self.reads
    }

    /// Whether no rule is loaded (every usage is then 0).
    pub fn is_empty(&self) -> bool {
        self.by_pod.is_empty() && self.cluster.is_empty()
    }

    /// The entry the container follows.
    pub(crate) fn find(&self, namespace: &str, pod: &str, container: &str) -> Result<&Entry, UsageError> {
        let not_found = || UsageError::NotFound {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        };
        if let Some(rule) = self.by_pod.get(&(namespace.to_owned(), pod.to_owned())) {
            return rule.find(container).ok_or_else(not_found);
        }
        self.cluster
            .iter()
            .filter(|(_, selector, _)| selects(selector, namespace, pod))
            .find_map(|(_, _, rule)| rule.find(container))
            .ok_or_else(not_found)
    }
}

/// Upstream's `ObjectSelector.Match`: an empty list matches everything.
fn selects(selector: &ObjectSelector, namespace: &str, name: &str) -> bool {
    let any_or = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    any_or(&selector.match_namespaces, namespace) && any_or(&selector.match_names, name)
}

impl Rule {
    fn compile(usages: &[spec::UsageContainers], value: &Value, source: &Source) -> Result<Self, LoadError> {
        let entries = usages
            .iter()
            .enumerate()
            .map(|(i, u)| Entry::compile(u, &format!("spec.usages[{i}]"), value, source))
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    fn merge_reads(&self, reads: &mut Reads) {
        for entry in &self.entries {
            for (_, amount) in &entry.usage {
                if let Amount::Expression(e) = amount {
                    reads.merge(e.reads());
                }
            }
        }
    }

    /// Upstream's `findUsageInUsages`.
    fn find(&self, container: &str) -> Option<&Entry> {
        let named = self
            .entries
            .iter()
            .find(|e| e.containers.iter().any(|c| c == container));
        named.or_else(|| self.entries.iter().find(|e| e.containers.is_empty()))
    }
}

impl Entry {
    fn compile(
        usage: &spec::UsageContainers,
        at: &str,
        value: &Value,
        source: &Source,
    ) -> Result<Self, LoadError> {
        let fail = |field: String, reason: String| LoadError::field(source, value, field, reason);
        let mut out = Vec::with_capacity(usage.usage.len());
        for (resource, v) in &usage.usage {
            let field = format!("{at}.usage.{resource}");
            let amount = match (&v.value, &v.expression) {
                (Some(q), None) => Amount::Fixed(fixed(q).map_err(|r| fail(format!("{field}.value"), r))?),
                (None, Some(e)) => {
                    Amount::Expression(Expr::compile(e).map_err(|r| fail(format!("{field}.expression"), r))?)
                }
                (Some(_), Some(_)) => return Err(fail(field, "set value or expression, not both".into())),
                (None, None) => return Err(fail(field, "set value or expression".into())),
            };
            out.push((Arc::from(resource.as_str()), amount));
        }
        Ok(Self {
            containers: usage.containers.clone(),
            usage: out,
        })
    }
}

fn fixed(q: &QuantityText) -> Result<f64, String> {
    match q {
        QuantityText::Number(n) => Ok(*n),
        QuantityText::Text(t) => {
            kwok_engine::quantity::parse(t).ok_or_else(|| format!("{t:?} is not a quantity"))
        }
    }
}
