//! Which served resource a kind typed on the command line names, the way kubectl
//! reads it: plural, singular, short name or Kind, optionally `.group`-qualified.

use kube::core::ApiResource;

/// A resource the cluster serves and can create, as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// API group (`""` for core).
    pub group: String,
    /// Version (the group's preferred one).
    pub version: String,
    /// Kind (`ConfigMap`).
    pub kind: String,
    /// Plural resource name (`configmaps`).
    pub plural: String,
    /// Singular name (`configmap`; discovery may leave it empty).
    pub singular: String,
    /// Short names (`cm`).
    pub short_names: Vec<String>,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl Served {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource for dynamic requests.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// The lower-case singular name, for messages.
    pub fn singular_name(&self) -> String {
        if self.singular.is_empty() {
            self.kind.to_ascii_lowercase()
        } else {
            self.singular.clone()
        }
    }

    fn is_called(&self, name: &str) -> bool {
        name == self.plural
            || name == self.singular
            || name == self.kind.to_ascii_lowercase()
            || self.short_names.iter().any(|s| s == name)
    }
}

/// The resource `typed` names: `name` in any group (the core group first, then
/// discovery order), or `name.group` in that group only.
pub fn find<'a>(served: &'a [Served], typed: &str) -> Option<&'a Served> {
    let typed = typed.trim().to_ascii_lowercase();
    let unqualified = served.iter().filter(|s| s.is_called(&typed));
    if let Some(found) = unqualified
        .clone()
        .find(|s| s.group.is_empty())
        .or(unqualified.clone().next())
    {
        return Some(found);
    }
    let (name, group) = typed.split_once('.')?;
    served.iter().find(|s| s.group == group && s.is_called(name))
}

/// The resource of objects with `api_version` and `kind`.
pub fn by_type<'a>(served: &'a [Served], api_version: &str, kind: &str) -> Option<&'a Served> {
    served
        .iter()
        .find(|s| s.api_version() == api_version && s.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(group: &str, kind: &str, plural: &str, short: &[&str]) -> Served {
        Served {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced: true,
        }
    }

    fn all() -> Vec<Served> {
        vec![
            served("example.com", "Event", "events", &[]),
            served("", "ConfigMap", "configmaps", &["cm"]),
            served("", "Event", "events", &["ev"]),
            served("apps", "Deployment", "deployments", &["deploy"]),
        ]
    }

    #[test]
    fn find_should_accept_every_kubectl_spelling() {
        let all = all();
        for typed in ["configmap", "configmaps", "cm", "ConfigMap", "configmaps."] {
            // `configmaps.` names the core group, whose name is empty.
            assert_eq!(
                find(&all, typed).map(|s| s.plural.as_str()),
                Some("configmaps"),
                "{typed}"
            );
        }
        for typed in ["deployment", "deploy", "deployments.apps", "deployment.apps"] {
            assert_eq!(
                find(&all, typed).map(|s| s.kind.as_str()),
                Some("Deployment"),
                "{typed}"
            );
        }
        assert!(find(&all, "deployments.batch").is_none());
        assert!(find(&all, "widget").is_none());
    }

    #[test]
    fn find_should_prefer_the_core_group_unless_qualified() {
        let all = all();
        assert_eq!(find(&all, "events").unwrap().group, "");
        assert_eq!(find(&all, "events.example.com").unwrap().group, "example.com");
    }

    #[test]
    fn by_type_should_match_api_version_and_kind() {
        let all = all();
        assert_eq!(
            by_type(&all, "apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert_eq!(by_type(&all, "v1", "ConfigMap").unwrap().plural, "configmaps");
        assert!(by_type(&all, "apps/v2", "Deployment").is_none());
    }
}
