//! How a request finds its rule, as upstream resolves it: the namespaced rule named
//! after the pod first (and only it, when there is one), then every cluster rule whose
//! selector takes the pod, in order; within a rule, the first entry naming the
//! container (or port), else the first entry naming none.

use serde::Deserialize;

/// Upstream's `ObjectSelector`: empty lists take everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectSelector {
    /// Namespaces taken (all when empty).
    #[serde(default)]
    pub match_namespaces: Vec<String>,
    /// Object names taken (all when empty).
    #[serde(default)]
    pub match_names: Vec<String>,
}

impl ObjectSelector {
    /// Whether the object `namespace/name` is taken.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        (self.match_namespaces.is_empty() || self.match_namespaces.iter().any(|n| n == namespace))
            && (self.match_names.is_empty() || self.match_names.iter().any(|n| n == name))
    }
}

/// An entry of a rule, found by a key (a container name, a port).
pub trait Entry {
    /// What entries are found by.
    type Key: ?Sized;
    /// `None` when the entry names no key (it is then the rule's default);
    /// else whether it names `key`.
    fn names(&self, key: &Self::Key) -> Option<bool>;
}

/// The rules of one kind: namespaced ones by pod, cluster ones by selector.
#[derive(Debug, Clone)]
pub struct Rules<T> {
    namespaced: Vec<((String, String), Vec<T>)>,
    cluster: Vec<(Option<ObjectSelector>, Vec<T>)>,
}

impl<T> Default for Rules<T> {
    fn default() -> Self {
        Self {
            namespaced: Vec::new(),
            cluster: Vec::new(),
        }
    }
}

/// No rule gives an entry for the request; the message is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

impl<T: Entry> Rules<T> {
    /// Adds the rule for pod `namespace/name` (a later one for the same pod replaces it).
    pub fn add_namespaced(&mut self, namespace: &str, name: &str, entries: Vec<T>) {
        let key = (namespace.to_owned(), name.to_owned());
        self.namespaced.retain(|(k, _)| *k != key);
        self.namespaced.push((key, entries));
    }

    /// Adds a cluster rule (`None` selector: every pod).
    pub fn add_cluster(&mut self, selector: Option<ObjectSelector>, entries: Vec<T>) {
        self.cluster.push((selector, entries));
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.namespaced.is_empty() && self.cluster.is_empty()
    }

    /// The entry for `key` of pod `namespace/name`; `what` names the key in errors
    /// (e.g. `container "c"`).
    pub fn find(&self, namespace: &str, name: &str, key: &T::Key, what: &str) -> Result<&T, NotFound> {
        let pod = format!("{namespace}/{name}");
        if let Some((_, entries)) = self
            .namespaced
            .iter()
            .find(|((ns, n), _)| ns == namespace && n == name)
        {
            return pick(entries, key).ok_or_else(|| {
                NotFound(format!(
                    "no rule for {what} in pod {pod:?} (its own rule names none)"
                ))
            });
        }
        self.cluster
            .iter()
            .filter(|(selector, _)| selector.as_ref().is_none_or(|s| s.matches(namespace, name)))
            .find_map(|(_, entries)| pick(entries, key))
            .ok_or_else(|| NotFound(format!("no rule for {what} in pod {pod:?}")))
    }
}

fn pick<'a, T: Entry>(entries: &'a [T], key: &T::Key) -> Option<&'a T> {
    let mut default = None;
    for entry in entries {
        match entry.names(key) {
            Some(true) => return Some(entry),
            None if default.is_none() => default = Some(entry),
            _ => {}
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct E(&'static [&'static str], u8);

    impl Entry for E {
        type Key = str;
        fn names(&self, key: &str) -> Option<bool> {
            (!self.0.is_empty()).then(|| self.0.contains(&key))
        }
    }

    fn selector(namespaces: &[&str], names: &[&str]) -> Option<ObjectSelector> {
        Some(ObjectSelector {
            match_namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            match_names: names.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn a_named_container_should_win_over_the_default_whatever_the_order() {
        let mut rules = Rules::default();
        rules.add_cluster(None, vec![E(&[], 1), E(&["c"], 2)]);
        assert_eq!(rules.find("ns", "p", "c", "c").unwrap().1, 2);
        assert_eq!(rules.find("ns", "p", "other", "c").unwrap().1, 1);
    }

    #[test]
    fn the_pods_own_rule_should_be_the_only_one_read() {
        let mut rules = Rules::default();
        rules.add_cluster(None, vec![E(&[], 1)]);
        rules.add_namespaced("ns", "p", vec![E(&["c"], 2)]);
        assert_eq!(rules.find("ns", "p", "c", "c").unwrap().1, 2);
        let err = rules.find("ns", "p", "d", "container \"d\"").unwrap_err();
        assert!(err.0.contains("container \"d\" in pod \"ns/p\""), "{err}");
        assert_eq!(rules.find("ns", "q", "d", "d").unwrap().1, 1);
    }

    #[test]
    fn cluster_rules_should_be_read_in_order_through_their_selectors() {
        let mut rules = Rules::default();
        rules.add_cluster(selector(&["a"], &[]), vec![E(&[], 1)]);
        rules.add_cluster(selector(&[], &["p"]), vec![E(&["x"], 2)]);
        rules.add_cluster(None, vec![E(&[], 3)]);
        assert_eq!(rules.find("a", "p", "x", "x").unwrap().1, 1);
        assert_eq!(rules.find("b", "p", "x", "x").unwrap().1, 2);
        assert_eq!(rules.find("b", "p", "y", "y").unwrap().1, 3);
        assert_eq!(rules.find("b", "q", "x", "x").unwrap().1, 3);
        assert!(Rules::<E>::default().find("a", "p", "x", "x").is_err());
    }
}
