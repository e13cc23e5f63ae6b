//! The stages of one resource kind and the choice among those that match an object.

use rand::Rng;
use serde_json::Value;

use crate::{stage::Stage, weight};

/// Matching stages above this count spill to the heap; typical sets match one or two.
const INLINE_MATCHES: usize = 16;

/// Every stage for one kind, in load order.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    stages: Vec<Stage>,
}

impl Lifecycle {
    /// A lifecycle of `stages` (all for the same kind).
    pub fn new(stages: Vec<Stage>) -> Self {
        Self { stages }
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Every stage whose selector matches `obj`, in load order.
    pub fn matching<'a>(&'a self, obj: &'a Value) -> impl Iterator<Item = &'a Stage> + 'a {
        self.stages.iter().filter(move |s| s.matches(obj))
    }

    /// The matching stages that can be chosen for `obj` (upstream's
    /// `ListAllPossible`: a weight-0 match beside a positive weight never is).
    pub fn possible<'a>(&'a self, obj: &'a Value) -> Vec<&'a Stage> {
        let matched: Vec<&Stage> = self.matching(obj).collect();
        let weights: Vec<Option<i64>> = matched.iter().map(|s| s.weight(obj)).collect();
        weight::possible(&weights)
            .into_iter()
            .map(|i| matched[i])
            .collect()
    }

    /// The stage that applies to `obj`: one of the matching stages, drawn by weight
    /// with `rng`. No allocation while at most [`INLINE_MATCHES`] stages match.
    pub fn select(&self, obj: &Value, rng: &mut impl Rng) -> Option<&Stage> {
        let mut idx = [0usize; INLINE_MATCHES];
        let mut weights = [None; INLINE_MATCHES];
        let mut n = 0;
        for (i, stage) in self.stages.iter().enumerate() {
            if !stage.matches(obj) {
                continue;
            }
            if n == INLINE_MATCHES {
                return self.select_many(obj, rng);
            }
            idx[n] = i;
            n += 1;
        }
        if n <= 1 {
            return (n == 1).then(|| &self.stages[idx[0]]);
        }
        for (w, i) in weights.iter_mut().zip(&idx[..n]) {
            *w = self.stages[*i].weight(obj);
        }
        weight::choose(&weights[..n], rng).map(|k| &self.stages[idx[k]])
    }

    fn select_many(&self, obj: &Value, rng: &mut impl Rng) -> Option<&Stage> {
        let matched: Vec<&Stage> = self.stages.iter().filter(|s| s.matches(obj)).collect();
        let weights: Vec<Option<i64>> = matched.iter().map(|s| s.weight(obj)).collect();
        weight::choose(&weights, rng).map(|k| matched[k])
    }
}

/// The lifecycles of every kind named by a set of stages.
#[derive(Debug, Clone, Default)]
pub struct Lifecycles {
    by_kind: Vec<(crate::stage::spec::ResourceRef, Lifecycle)>,
}

impl Lifecycles {
    /// Groups compiled `stages` by the kind they apply to, keeping load order.
    pub fn new(stages: impl IntoIterator<Item = Stage>) -> Self {
        let mut by_kind: Vec<(crate::stage::spec::ResourceRef, Lifecycle)> = Vec::new();
        for stage in stages {
            match by_kind.iter_mut().find(|(r, _)| r == stage.resource()) {
                Some((_, l)) => l.stages.push(stage),
                None => by_kind.push((stage.resource().clone(), Lifecycle::new(vec![stage]))),
            }
        }
        Self { by_kind }
    }

    /// Compiles every Stage of `docs`; the first bad stage is the error.
    pub fn compile(docs: &crate::stage::load::Documents) -> Result<Self, crate::error::LoadError> {
        let stages = docs
            .stages
            .iter()
            .map(|(doc, src)| Stage::compile(doc, src))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(stages))
    }

    /// The lifecycle of objects of `kind` (any API group with that kind when `api_group` is `None`).
    pub fn for_kind(&self, api_group: Option<&str>, kind: &str) -> Option<&Lifecycle> {
        self.by_kind
            .iter()
            .find(|(r, _)| r.kind == kind && api_group.is_none_or(|g| g == r.api_group))
            .map(|(_, l)| l)
    }

    /// Every kind with stages, and its lifecycle.
    pub fn kinds(&self) -> impl Iterator<Item = (&crate::stage::spec::ResourceRef, &Lifecycle)> {
        self.by_kind.iter().map(|(r, l)| (r, l))
    }
}
