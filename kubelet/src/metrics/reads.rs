//! Which fields of `node`, `pod` and `container` the loaded expressions read, found in
//! their syntax trees, so that a scrape converts only those fields to CEL values.
//!
//! A whole pod as CEL values is about 19 KiB, and the scrape keeps each pod's values
//! between scrapes (converting costs more than evaluating): 1.9 GiB at 100,000 pods,
//! where upstream's metrics files read a pod's name, namespace, annotations and
//! creation time only.
//!
//! The analysis errs towards reading more: a variable used whole (passed to a
//! function, compared, iterated) reads everything, and a field path reads its whole
//! subtree.

use std::collections::BTreeMap;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr as Ast, LiteralValue, operators};
use serde_json::{Map, Value};

/// A tree of field names read from an object; `all` reads the whole subtree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Fields {
    all: bool,
    children: BTreeMap<String, Fields>,
}

impl Fields {
    /// Marks `path` read, with everything under it.
    fn add(&mut self, path: &[&str]) {
        let mut at = self;
        for field in path {
            if at.all {
                return;
            }
            at = at.children.entry((*field).to_owned()).or_default();
        }
        at.all = true;
        at.children.clear();
    }

    fn merge(&mut self, other: &Fields) {
        if self.all {
            return;
        }
        if other.all {
            self.all = true;
            self.children.clear();
            return;
        }
        for (field, theirs) in &other.children {
            self.children.entry(field.clone()).or_default().merge(theirs);
        }
    }

    /// The part of `json` these fields read: an object keeps only the read keys; a
    /// value that is not an object where the tree goes on is kept whole.
    pub(crate) fn prune(&self, json: &Value) -> Value {
        match json {
            Value::Object(map) if !self.all => Value::Object(
                self.children
                    .iter()
                    .filter_map(|(field, sub)| map.get(field).map(|v| (field.clone(), sub.prune(v))))
                    .collect::<Map<String, Value>>(),
            ),
            _ => json.clone(),
        }
    }
}

/// The variables an expression can read, in [`Scope::json`](super::expr::Scope) order.
const VARIABLES: [&str; 3] = ["node", "pod", "container"];

/// What expressions read of each variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Reads {
    /// `node`, `pod`, `container`.
    vars: [Fields; 3],
}

impl Reads {
    /// What the expression `ast` reads.
    pub(crate) fn of(ast: &IdedExpr) -> Self {
        let mut reads = Self::default();
        reads.visit(&ast.expr);
        reads
    }

    /// Adds what `other` reads.
    pub(crate) fn merge(&mut self, other: &Reads) {
        for (mine, theirs) in self.vars.iter_mut().zip(&other.vars) {
            mine.merge(theirs);
        }
    }

    pub(crate) fn node(&self) -> &Fields {
        &self.vars[0]
    }

    pub(crate) fn pod(&self) -> &Fields {
        &self.vars[1]
    }

    pub(crate) fn container(&self) -> &Fields {
        &self.vars[2]
    }

    fn visit(&mut self, expr: &Ast) {
        if let Some((var, path)) = field_chain(expr) {
            self.vars[var].add(&path);
            return;
        }
        match expr {
            Ast::Call(call) => {
                let (subject, rest) = match &call.target {
                    Some(target) => (Some(&target.expr), &call.args[..]),
                    None => match call.args.split_first() {
                        Some((first, rest)) => (Some(&first.expr), rest),
                        None => (None, &call.args[..]),
                    },
                };
                let bare = subject.and_then(variable);
                match (call.func_name.as_str(), bare) {
                    // kwok's functions that find the object by which variable it is.
                    (
                        "Usage" | "CumulativeUsage" | "StartedContainersTotal" | "startedContainersTotal",
                        Some(_),
                    ) => rest.iter().for_each(|a| self.visit(&a.expr)),
                    ("SinceSecond", Some(var)) => {
                        self.vars[var].add(&["metadata", "creationTimestamp"]);
                        rest.iter().for_each(|a| self.visit(&a.expr));
                    }
                    _ => {
                        if let Some(target) = &call.target {
                            self.visit(&target.expr);
                        }
                        call.args.iter().for_each(|a| self.visit(&a.expr));
                    }
                }
            }
            Ast::Select(select) => self.visit(&select.operand.expr),
            Ast::Comprehension(c) => {
                for e in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.visit(&e.expr);
                }
            }
            Ast::List(list) => list.elements.iter().for_each(|e| self.visit(&e.expr)),
            Ast::Map(map) => map.entries.iter().for_each(|e| self.visit_entry(&e.expr)),
            Ast::Struct(s) => s.entries.iter().for_each(|e| self.visit_entry(&e.expr)),
            // A bare variable is caught by `field_chain`; other names read nothing.
            Ast::Ident(_) | Ast::Literal(_) | Ast::Unspecified => {}
        }
    }

    fn visit_entry(&mut self, entry: &EntryExpr) {
        match entry {
            EntryExpr::MapEntry(e) => {
                self.visit(&e.key.expr);
                self.visit(&e.value.expr);
            }
            EntryExpr::StructField(f) => self.visit(&f.value.expr),
        }
    }
}

/// The variable `expr` names, if it is one bare.
fn variable(expr: &Ast) -> Option<usize> {
    match expr {
        Ast::Ident(name) => VARIABLES.iter().position(|v| v == name),
        _ => None,
    }
}

/// `pod.a.b`, `has(pod.a.b)`, `pod.a["b"]` as (variable, fields); a bare variable
/// as (variable, no fields). Anything else, including an index that is not a string
/// literal, is not a chain (its operand is then visited on its own).
fn field_chain(expr: &Ast) -> Option<(usize, Vec<&str>)> {
    match expr {
        Ast::Ident(_) => variable(expr).map(|v| (v, Vec::new())),
        Ast::Select(select) => {
            let (var, mut path) = field_chain(&select.operand.expr)?;
            path.push(&select.field);
            Some((var, path))
        }
        Ast::Call(call)
            if call.target.is_none()
                && (call.func_name == operators::INDEX || call.func_name == operators::OPT_INDEX) =>
        {
            let [operand, key] = &call.args[..] else {
                return None;
            };
            let Ast::Literal(LiteralValue::String(key)) = &key.expr else {
                return None;
            };
            let (var, mut path) = field_chain(&operand.expr)?;
            path.push(key.inner());
            Some((var, path))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Program;
    use serde_json::json;

    fn reads(source: &str) -> Reads {
        Reads::of(Program::compile(source).unwrap().expression())
    }

    fn fields(paths: &[&[&str]]) -> Fields {
        let mut f = Fields::default();
        for p in paths {
            f.add(p);
        }
        f
    }

    #[test]
    fn field_paths_should_read_their_subtrees_only() {
        let cases: &[(&str, usize, &[&[&str]])] = &[
            ("pod.metadata.name", 1, &[&["metadata", "name"]]),
            ("container.name", 2, &[&["name"]]),
            (
                r#""k" in pod.metadata.annotations ? Quantity(pod.metadata.annotations["k"]) : 1.0"#,
                1,
                &[&["metadata", "annotations"]],
            ),
            ("has(pod.status.podIP)", 1, &[&["status", "podIP"]]),
            ("pod.SinceSecond()", 1, &[&["metadata", "creationTimestamp"]]),
            ("SinceSecond(node)", 0, &[&["metadata", "creationTimestamp"]]),
            (
                "pod.spec.containers.map(c, c.name).size() + pod.metadata.labels['a'].size()",
                1,
                &[&["spec", "containers"], &["metadata", "labels", "a"]],
            ),
        ];
        for (source, var, paths) in cases {
            let mut want = Reads::default();
            want.vars[*var] = fields(paths);
            assert_eq!(reads(source), want, "{source}");
        }
    }

    #[test]
    fn usage_functions_should_read_nothing_of_their_object() {
        for source in [
            r#"pod.Usage("memory", container.name)"#,
            r#"pod.CumulativeUsage("cpu")"#,
            r#"node.Usage("memory")"#,
            "StartedContainersTotal(node)",
        ] {
            let r = reads(source);
            assert_eq!(r.node(), &Fields::default(), "{source}");
            assert_eq!(r.pod(), &Fields::default(), "{source}");
        }
        assert_eq!(
            reads(r#"pod.Usage("cpu", container.name)"#).container(),
            &fields(&[&["name"]])
        );
    }

    #[test]
    fn a_variable_used_whole_should_read_everything() {
        for source in [
            "pod == pod",
            "size(pod)",
            "pod[pod.metadata.name]",
            "[node][0].metadata",
        ] {
            let r = reads(source);
            assert!(r.pod().all || r.node().all, "{source}: {r:?}");
        }
    }

    #[test]
    fn prune_should_keep_read_fields_and_whole_subtrees() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c"}], "nodeName": "x"},
            "status": {"phase": "Running"}
        });
        let f = fields(&[
            &["metadata", "name"],
            &["metadata", "labels", "a"],
            &["spec", "containers"],
        ]);
        assert_eq!(
            f.prune(&pod),
            json!({
                "metadata": {"name": "p", "labels": {"a": "1"}},
                "spec": {"containers": [{"name": "c"}]}
            })
        );
        assert_eq!(fields(&[&[]]).prune(&pod), pod);
        assert_eq!(Fields::default().prune(&pod), json!({}));
        // A longer path reads nothing more once its prefix is read whole, either way round.
        assert_eq!(fields(&[&["spec"], &["spec", "nodeName"]]), fields(&[&["spec"]]));
        assert_eq!(fields(&[&["spec", "nodeName"], &["spec"]]), fields(&[&["spec"]]));
    }
}
