//! One scrape's usage table: every container's current and cumulative usage of each
//! resource its rule names, and the node's sums, computed before the metrics read them.

use std::sync::Arc;

use cel::common::types::Type;
use cel::common::value::{StaticVal, Val};
use jiff::Timestamp;
use serde_json::Value;

use super::UsageError;
use super::cumulative::Cumulative;
use super::expr::Figure;
use super::scrape::{Scrape, ScrapePod};
use super::usage::Usages;

static TABLE_TYPE: Type = Type::new_unspecified_type("kwok.UsageTable");

/// Resource, current usage, cumulative usage.
type Figures = Vec<(Arc<str>, f64, f64)>;

/// The usage figures of one scrape.
///
/// # Implementation
/// Computed eagerly for every resource a container's rule names (two for upstream's
/// rules), which is what the metrics ask for in practice; a resource no rule names
/// reads 0, as upstream's. The functions `Usage` and `CumulativeUsage` reach the table
/// through a hidden variable of the evaluation scope.
#[derive(Debug, Clone)]
pub(crate) struct UsageTable {
    node_name: String,
    /// Per pod of the scrape, per container in `spec.containers` order.
    pods: Vec<Vec<(String, Figures)>>,
    node: Figures,
    started: f64,
}

impl UsageTable {
    /// Evaluates every container's usage, advances the integrals in `state`, and
    /// records usage errors (whose figures read 0, as upstream's) in `errors`.
    pub(crate) fn build(
        scrape: &Scrape<'_>,
        usages: &Usages,
        state: &mut Cumulative,
        now: Timestamp,
        errors: &mut Vec<UsageError>,
    ) -> Self {
        let node_state = state.node(scrape.node_name);
        let mut pods = Vec::with_capacity(scrape.pods.len());
        for pod in &scrape.pods {
            let pod_state = node_state.pod(pod.namespace, pod.name, pod.json);
            let containers = (0..pod.containers.len())
                .map(|c| {
                    let name = pod.containers[c].0;
                    let figures = current(usages, scrape, pod, c, errors)
                        .into_iter()
                        .map(|(r, v)| {
                            let total = pod_state.advance(name, &r, v, now);
                            (r, v, total)
                        })
                        .collect();
                    (name.to_owned(), figures)
                })
                .collect();
            pods.push(containers);
        }
        let node = sums(&pods)
            .into_iter()
            .map(|(r, v)| {
                let total = node_state.advance(&r, v, now);
                (r, v, total)
            })
            .collect();
        node_state.sweep();
        Self {
            node_name: scrape.node_name.to_owned(),
            pods,
            node,
            started: node_state.started_total() as f64,
        }
    }

    /// The node's figure of `resource` (sum over its containers, or its own integral).
    pub(crate) fn node(&self, resource: &str, figure: Figure) -> f64 {
        pick(&self.node, resource, figure)
    }

    /// A pod's figure of `resource`: one container's, or the sum over its containers.
    pub(crate) fn pod(&self, pod: usize, resource: &str, container: Option<&str>, figure: Figure) -> f64 {
        let Some(containers) = self.pods.get(pod) else {
            return 0.0;
        };
        containers
            .iter()
            .filter(|(name, _)| container.is_none_or(|c| c == name))
            .map(|(_, figures)| pick(figures, resource, figure))
            .sum()
    }

    /// The scraped node's name.
    pub(crate) fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Containers started on the node (as far as kwok has seen).
    pub(crate) fn started_containers(&self) -> f64 {
        self.started
    }
}

fn pick(figures: &Figures, resource: &str, figure: Figure) -> f64 {
    figures
        .iter()
        .find(|(r, ..)| &**r == resource)
        .map_or(0.0, |(_, now, total)| match figure {
            Figure::Current => *now,
            Figure::Cumulative => *total,
        })
}

/// Per resource, the sum of every container's current usage.
fn sums(pods: &[Vec<(String, Figures)>]) -> Vec<(Arc<str>, f64)> {
    let mut out: Vec<(Arc<str>, f64)> = Vec::new();
    for (r, v, _) in pods.iter().flatten().flat_map(|(_, f)| f) {
        match out.iter_mut().find(|(name, _)| name == r) {
            Some((_, sum)) => *sum += v,
            None => out.push((r.clone(), *v)),
        }
    }
    out
}

/// The current usage of each resource of container `c`'s rule.
fn current(
    usages: &Usages,
    scrape: &Scrape<'_>,
    pod: &ScrapePod<'_>,
    c: usize,
    errors: &mut Vec<UsageError>,
) -> Vec<(Arc<str>, f64)> {
    let container = pod.containers[c].0;
    let entry = match usages.find(pod.namespace, pod.name, container) {
        Ok(entry) => entry,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    let scope = scrape.scope(Some(pod), Some(c), None);
    entry
        .usage
        .iter()
        .map(|(resource, amount)| {
            let value = amount.eval(&scope).unwrap_or_else(|reason| {
                errors.push(UsageError::Eval {
                    namespace: pod.namespace.to_owned(),
                    pod: pod.name.to_owned(),
                    container: container.to_owned(),
                    resource: resource.to_string(),
                    reason,
                });
                0.0
            });
            (resource.clone(), value)
        })
        .collect()
}

impl Usages {
    /// The current usage of `resource` by `container` of `pod` on `node` at `now`, as
    /// the rules give it (0 when the rule names no such resource).
    pub fn container_usage(
        &self,
        node: &Value,
        pod: &Value,
        container: &str,
        resource: &str,
        now: Timestamp,
    ) -> Result<f64, UsageError> {
        let scrape = Scrape::new(node, &[pod], self.reads(), now, &mut Cumulative::new());
        let pod = &scrape.pods[0];
        let c = pod
            .containers
            .iter()
            .position(|(name, _)| *name == container)
            .ok_or_else(|| UsageError::NoContainer {
                namespace: pod.namespace.to_owned(),
                pod: pod.name.to_owned(),
                container: container.to_owned(),
            })?;
        let mut errors = Vec::new();
        let figures = current(self, &scrape, pod, c, &mut errors);
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        Ok(figures
            .iter()
            .find(|(r, _)| &**r == resource)
            .map_or(0.0, |(_, v)| *v))
    }
}

impl Val for UsageTable {
    fn get_type(&self) -> &Type {
        &TABLE_TYPE
    }
    fn cel_type() -> &'static Type {
        &TABLE_TYPE
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for UsageTable {}
