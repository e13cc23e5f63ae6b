//! The components kwokctl runs, by name: one enum wherever code names one (specs, log,
//! pid and container names, `kwokctl logs`, ports, patches).
//!
//! The user-visible names are upstream kwokctl's (`kube-apiserver`, `kwok-controller`,
//! …); [`Component::as_str`] is the only place that spells them.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::binaries::Binary;

/// A component of a cluster.
///
/// The variants are in start order: etcd, then kube-apiserver, then the rest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Component {
    /// etcd, the store.
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// This project's `kwok` controller.
    KwokController,
    /// Prometheus, scraping every component (`--prometheus-port`).
    Prometheus,
    /// Jaeger all-in-one, receiving traces (`--jaeger-port`).
    Jaeger,
    /// metrics-server (`--enable metrics-server`).
    MetricsServer,
}

impl Component {
    /// Every component kwokctl can run, in start order.
    pub const ALL: [Component; 8] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::KwokController,
        Component::Prometheus,
        Component::Jaeger,
        Component::MetricsServer,
    ];

    /// The components a cluster runs unless told otherwise.
    pub const DEFAULT: [Component; 5] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::KwokController,
    ];

    /// Components a cluster cannot do without.
    pub const REQUIRED: [Component; 2] = [Component::Etcd, Component::KubeApiserver];

    /// Upstream kwokctl's name: what users type and what files, logs and containers are
    /// called.
    pub const fn as_str(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::KwokController => "kwok-controller",
            Component::Prometheus => "prometheus",
            Component::Jaeger => "jaeger",
            Component::MetricsServer => "metrics-server",
        }
    }

    /// The binary it runs; none for Prometheus (Debian's, found on `PATH`).
    pub const fn binary(self) -> Option<Binary> {
        match self {
            Component::Etcd => Some(Binary::Etcd),
            Component::KubeApiserver => Some(Binary::KubeApiserver),
            Component::KubeControllerManager => Some(Binary::KubeControllerManager),
            Component::KubeScheduler => Some(Binary::KubeScheduler),
            Component::KwokController => Some(Binary::Kwok),
            Component::Prometheus => None,
            Component::Jaeger => Some(Binary::Jaeger),
            Component::MetricsServer => Some(Binary::MetricsServer),
        }
    }

    /// The component that runs `binary`, if one does.
    pub fn of_binary(binary: Binary) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.binary() == Some(binary))
    }

    /// The names of every component, comma-separated, for messages.
    pub fn known() -> String {
        Component::ALL.map(Component::as_str).join(", ")
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Debug-printed as its quoted name, as the strings it replaces were: messages that say
/// `component {:?}` read `component "etcd"`.
impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl AsRef<str> for Component {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for Component {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Component> for &'static str {
    fn from(c: Component) -> Self {
        c.as_str()
    }
}

/// A name that is no component of kwokctl-rs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownComponent {
    /// Not a component at all.
    #[error("unknown component {0:?} (known: {known})", known = Component::known())]
    Unknown(String),
    /// A component upstream kwokctl runs and kwokctl-rs does not yet.
    #[error(
        "component {0:?} of upstream kwokctl is not supported by kwokctl-rs yet (known: {known})",
        known = Component::known()
    )]
    NotYet(String),
}

/// Components upstream kwokctl can run that kwokctl-rs does not yet.
const UPSTREAM_ONLY: &[&str] = &[
    "dashboard",
    "dashboard-metrics-scraper",
    "kube-scheduler-plugins",
    "kueue",
    "kueueviz",
    "jobset",
    "lws",
    "descheduler",
    "kubectl-proxy",
];

impl FromStr for Component {
    type Err = UnknownComponent;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match Component::ALL.into_iter().find(|c| c.as_str() == name) {
            Some(c) => Ok(c),
            None if UPSTREAM_ONLY.contains(&name) => Err(UnknownComponent::NotYet(name.into())),
            None => Err(UnknownComponent::Unknown(name.into())),
        }
    }
}

impl TryFrom<String> for Component {
    type Error = UnknownComponent;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_should_parse_back_from_its_name() {
        for c in Component::ALL {
            assert_eq!(c.as_str().parse::<Component>(), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(format!("{c:?}"), format!("{:?}", c.as_str()));
        }
    }

    #[test]
    fn an_unknown_name_should_be_one_line_naming_it_and_the_known_ones() {
        let err = "kubelet".parse::<Component>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown component \"kubelet\" (known: etcd, kube-apiserver, kube-controller-manager, \
             kube-scheduler, kwok-controller, prometheus, jaeger, metrics-server)"
        );
        let err = "kueue".parse::<Component>().unwrap_err().to_string();
        assert!(
            err.starts_with("component \"kueue\" of upstream kwokctl is not supported"),
            "{err}"
        );
    }

    #[test]
    fn serde_should_use_the_upstream_names() {
        let yaml = serde_saphyr::to_string(&Component::KwokController).unwrap();
        assert_eq!(yaml.trim(), "kwok-controller");
        let c: Component = serde_saphyr::from_str("metrics-server").unwrap();
        assert_eq!(c, Component::MetricsServer);
        assert!(serde_saphyr::from_str::<Component>("kubelet").is_err());
    }

    #[test]
    fn binaries_should_map_back_to_their_component() {
        for c in Component::ALL {
            if let Some(binary) = c.binary() {
                assert_eq!(Component::of_binary(binary), Some(c));
            }
        }
        assert_eq!(Component::of_binary(Binary::Kubectl), None);
    }
}
