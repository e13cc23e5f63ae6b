//! How a request finds its rule, as upstream resolves it: the namespaced rule named
//! after the pod first (and only it, when there is one), then every cluster rule whose
//! selector takes the pod, in order; within a rule, the first entry naming the
//! container (or port), else the first entry naming none.
//!
//! The order of cluster rules is the order they were added in: load order for
//! `--config` documents, as upstream's. For objects from the cluster upstream reads its
//! informer's store, a Go map, so its order is unspecified; kwok adds the first list's
//! objects by name and later ones as they arrive (a changed rule keeps its place).

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
    /// By (namespace, pod name); at most one per pod.
    namespaced: Vec<((String, String), Vec<T>)>,
    /// In resolution order; names are unique (the object's name).
    cluster: Vec<ClusterRule<T>>,
}

/// A cluster rule: the object's name, the pods it takes, its entries.
#[derive(Debug, Clone)]
struct ClusterRule<T> {
    name: String,
    /// `None`: every pod.
    selector: Option<ObjectSelector>,
    entries: Vec<T>,
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

    /// Removes the rule for pod `namespace/name`; whether there was one.
    pub fn remove_namespaced(&mut self, namespace: &str, name: &str) -> bool {
        let before = self.namespaced.len();
        self.namespaced
            .retain(|((ns, n), _)| (ns.as_str(), n.as_str()) != (namespace, name));
        self.namespaced.len() != before
    }

    /// Adds the cluster rule `name` (`None` selector: every pod) after the others, or
    /// replaces the one of that name in its place.
    pub fn add_cluster(&mut self, name: &str, selector: Option<ObjectSelector>, entries: Vec<T>) {
        let rule = ClusterRule {
            name: name.to_owned(),
            selector,
            entries,
        };
        match self.cluster.iter_mut().find(|r| r.name == name) {
            Some(old) => *old = rule,
            None => self.cluster.push(rule),
        }
        debug_assert!(
            self.cluster.iter().filter(|r| r.name == name).count() == 1,
            "cluster rule {name:?} twice"
        );
    }

    /// Removes the cluster rule `name`; whether there was one.
    pub fn remove_cluster(&mut self, name: &str) -> bool {
        let before = self.cluster.len();
        self.cluster.retain(|r| r.name != name);
        self.cluster.len() != before
    }

    /// The cluster rules' names, in resolution order.
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.cluster.iter().map(|r| r.name.as_str())
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
            .filter(|r| r.selector.as_ref().is_none_or(|s| s.matches(namespace, name)))
            .find_map(|r| pick(&r.entries, key))
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
        rules.add_cluster("a", None, vec![E(&[], 1), E(&["c"], 2)]);
        assert_eq!(rules.find("ns", "p", "c", "c").unwrap().1, 2);
        assert_eq!(rules.find("ns", "p", "other", "c").unwrap().1, 1);
    }

    #[test]
    fn the_pods_own_rule_should_be_the_only_one_read() {
        let mut rules = Rules::default();
        rules.add_cluster("a", None, vec![E(&[], 1)]);
        rules.add_namespaced("ns", "p", vec![E(&["c"], 2)]);
        assert_eq!(rules.find("ns", "p", "c", "c").unwrap().1, 2);
        let err = rules.find("ns", "p", "d", "container \"d\"").unwrap_err();
        assert!(err.0.contains("container \"d\" in pod \"ns/p\""), "{err}");
        assert_eq!(rules.find("ns", "q", "d", "d").unwrap().1, 1);
    }

    #[test]
    fn cluster_rules_should_be_read_in_order_through_their_selectors() {
        let mut rules = Rules::default();
        rules.add_cluster("ns-a", selector(&["a"], &[]), vec![E(&[], 1)]);
        rules.add_cluster("pod-p", selector(&[], &["p"]), vec![E(&["x"], 2)]);
        rules.add_cluster("all", None, vec![E(&[], 3)]);
        assert_eq!(rules.find("a", "p", "x", "x").unwrap().1, 1);
        assert_eq!(rules.find("b", "p", "x", "x").unwrap().1, 2);
        assert_eq!(rules.find("b", "p", "y", "y").unwrap().1, 3);
        assert_eq!(rules.find("b", "q", "x", "x").unwrap().1, 3);
        assert!(Rules::<E>::default().find("a", "p", "x", "x").is_err());
    }

    #[test]
    fn a_removed_namespaced_rule_should_give_way_to_the_cluster_rules() {
        let mut rules = Rules::default();
        rules.add_cluster("all", None, vec![E(&[], 1)]);
        rules.add_namespaced("ns", "p", vec![E(&["c"], 2)]);
        assert!(rules.find("ns", "p", "d", "d").is_err());
        assert!(!rules.remove_namespaced("ns", "q"));
        assert!(!rules.remove_namespaced("other", "p"));
        assert!(rules.remove_namespaced("ns", "p"));
        assert_eq!(rules.find("ns", "p", "d", "d").unwrap().1, 1);
        assert!(!rules.remove_namespaced("ns", "p"));
    }

    #[test]
    fn cluster_rules_should_be_replaced_in_place_and_removed_by_name() {
        let mut rules = Rules::default();
        rules.add_cluster("b", selector(&["a"], &[]), vec![E(&[], 1)]);
        rules.add_cluster("a", None, vec![E(&[], 2)]);
        assert_eq!(rules.find("a", "p", "x", "x").unwrap().1, 1);
        // A new version of "b" keeps its place ahead of "a".
        rules.add_cluster("b", selector(&["a"], &[]), vec![E(&[], 3)]);
        assert_eq!(rules.cluster_names().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(rules.find("a", "p", "x", "x").unwrap().1, 3);
        assert!(rules.remove_cluster("b"));
        assert!(!rules.remove_cluster("b"));
        assert_eq!(rules.find("a", "p", "x", "x").unwrap().1, 2);
        assert!(rules.remove_cluster("a"));
        assert!(rules.is_empty());
        assert!(rules.find("a", "p", "x", "x").is_err());
    }
}
