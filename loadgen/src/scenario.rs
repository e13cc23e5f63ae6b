//! What to create, how fast, and for how long: a [`Scenario`], from a YAML file or flags.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

/// Errors reading or checking a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("failed to read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a scenario (unknown field, wrong type, bad YAML).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("scenario: {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result of scenario handling.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How pods are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PodKind {
    /// Pods created one by one by loadgen.
    Bare,
    /// Deployments whose ReplicaSets create the pods (needs kube-controller-manager).
    Deployment,
    /// Jobs whose pods run to completion (needs kube-controller-manager).
    Job,
}

/// How far loadgen takes each pod before it counts the pods phase done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PodsUntil {
    /// Running with every container ready: the kubelet side's (kwok's) work included.
    #[default]
    Running,
    /// Bound to a node by the scheduler, and deleted at once (grace period 0) with
    /// nothing asked of a kubelet: the control plane's work that no kwok can take away,
    /// for kwok without pod stages.
    Scheduled,
}

/// A taint put on every fake node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// One load scenario. Every field has a default, so `{}` is a valid (tiny) scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Scenario {
    /// Scenario name, shown in the report.
    pub name: String,
    /// Fake nodes to create.
    pub nodes: u32,
    /// Pods to create (for Deployments and Jobs: the sum of their replicas).
    pub pods: u32,
    /// How pods are made.
    pub pod_kind: PodKind,
    /// Namespaces the pods are spread over (round robin).
    pub namespaces: u32,
    /// Pods per Deployment or Job.
    pub pods_per_workload: u32,
    /// Target creates (and deletes) per second.
    pub rate: u32,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Node capacity (`cpu`, `memory`, `pods`, …); allocatable is the same.
    pub node_capacity: BTreeMap<String, String>,
    /// Extra node labels (besides `type=kwok`).
    pub node_labels: BTreeMap<String, String>,
    /// Node taints (the kwok convention `kwok.x-k8s.io/node=fake:NoSchedule` by default;
    /// pods tolerate every taint listed here).
    pub node_taints: Vec<Taint>,
    /// Churn rate: pods deleted and recreated per second after the pods are running.
    pub churn_rate: u32,
    /// How long churn lasts.
    #[serde(with = "humantime_serde_compat")]
    pub churn_duration: Duration,
    /// How long to wait for nodes Ready / pods Running / deletes gone in each phase.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Idle time after everything is running (e.g. to soak leases).
    #[serde(with = "humantime_serde_compat")]
    pub hold: Duration,
    /// Send node and pod creates as server-side dry runs (nothing is stored, nothing
    /// waited for): measures how fast loadgen and the apiserver's front half go.
    pub dry_run: bool,
    /// A DeviceClass: when set, every pod claims one device of it through Dynamic
    /// Resource Allocation (a ResourceClaimTemplate per namespace), and the report
    /// checks from the claims that no device was allocated twice.
    pub device_class: Option<String>,
    /// Bare pods are created bound to the nodes (`spec.nodeName`, round robin): the
    /// scheduler is left out, for runs that measure the kubelet side alone (on 2 cores
    /// it takes a core for ~30 pods/s at 10,000 nodes).
    pub bind_pods: bool,
    /// How far pods are taken: `running` (the default) or `scheduled`.
    pub pods_until: PodsUntil,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "custom".into(),
            nodes: 10,
            pods: 100,
            pod_kind: PodKind::Bare,
            namespaces: 1,
            pods_per_workload: 10,
            rate: 1000,
            concurrency: 256,
            node_capacity: [("cpu", "32"), ("memory", "256Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            node_labels: BTreeMap::new(),
            node_taints: vec![Taint {
                key: "kwok.x-k8s.io/node".into(),
                value: "fake".into(),
                effect: "NoSchedule".into(),
            }],
            churn_rate: 0,
            churn_duration: Duration::ZERO,
            timeout: Duration::from_secs(300),
            hold: Duration::ZERO,
            dry_run: false,
            device_class: None,
            bind_pods: false,
            pods_until: PodsUntil::Running,
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks scenario YAML; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let scenario: Self = serde_saphyr::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_owned(),
            message: one_line(&e.to_string()),
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<()> {
        let positive = |field, v: u32| {
            if v == 0 {
                Err(Error::Invalid {
                    field,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("rate", self.rate)?;
        positive("concurrency", self.concurrency)?;
        positive("namespaces", self.namespaces)?;
        positive("podsPerWorkload", self.pods_per_workload)?;
        if self.pods > 0 && self.nodes == 0 {
            return Err(Error::Invalid {
                field: "nodes",
                reason: "pods need at least one node".into(),
            });
        }
        if self.bind_pods && self.pod_kind != PodKind::Bare {
            return Err(Error::Invalid {
                field: "bindPods",
                reason: "only bare pods can be created bound to a node".into(),
            });
        }
        if self.pods_until == PodsUntil::Scheduled {
            let refused = [
                (
                    self.pod_kind != PodKind::Bare,
                    "only bare pods (controllers' pods wait for their kubelet)",
                ),
                (
                    self.bind_pods,
                    "not with bindPods (the scheduler is what it measures)",
                ),
                (self.churn_rate > 0, "not with churn (it replaces running pods)"),
            ];
            if let Some((_, reason)) = refused.into_iter().find(|(refused, _)| *refused) {
                return Err(Error::Invalid {
                    field: "podsUntil",
                    reason: format!("scheduled: {reason}"),
                });
            }
        }
        if self.churn_rate > 0 && self.churn_duration.is_zero() {
            return Err(Error::Invalid {
                field: "churnDuration",
                reason: "churnRate is set but churnDuration is 0".into(),
            });
        }
        for t in &self.node_taints {
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
                return Err(Error::Invalid {
                    field: "nodeTaints",
                    reason: format!(
                        "effect {:?} is not NoSchedule, PreferNoSchedule or NoExecute",
                        t.effect
                    ),
                });
            }
        }
        Ok(())
    }
}

/// YAML errors span lines (a snippet of the file); a one-line error keeps the first.
fn one_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().trim().to_owned()
}

/// Durations as Go-style strings (`10s`, `5m`), like kwok's own files.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| D::Error::custom(format!("duration {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_should_be_the_default_scenario() {
        assert_eq!(Scenario::parse("s.yaml", "{}").unwrap(), Scenario::default());
    }

    #[test]
    fn fields_should_be_camel_case_with_go_durations() {
        let s = Scenario::parse(
            "s.yaml",
            "nodes: 20\npods: 200\npodKind: deployment\nchurnRate: 5\nchurnDuration: 10s\n",
        )
        .unwrap();
        assert_eq!((s.nodes, s.pods, s.pod_kind), (20, 200, PodKind::Deployment));
        assert_eq!(s.churn_duration, Duration::from_secs(10));
    }

    #[test]
    fn unknown_field_should_be_one_line_error_with_file_and_line() {
        let err = Scenario::parse("s.yaml", "nodes: 1\npodz: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.yaml: "), "{err}");
        assert!(err.contains("podz"), "{err}");
        assert!(err.contains('2'), "no line number: {err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn bad_values_should_be_rejected_with_the_field_name() {
        let err = Scenario::parse("s.yaml", "rate: 0\n").unwrap_err().to_string();
        assert_eq!(err, "scenario: rate: must be at least 1");
        let err = Scenario::parse("s.yaml", "churnRate: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("churnDuration"), "{err}");
        let err = Scenario::parse("s.yaml", "podsUntil: scheduled\nbindPods: true\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("scenario: podsUntil: scheduled: not with bindPods"),
            "{err}"
        );
        let err = Scenario::parse(
            "s.yaml",
            "podsUntil: scheduled\nchurnRate: 1\nchurnDuration: 1s\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not with churn"), "{err}");
        let s = Scenario::parse("s.yaml", "podsUntil: scheduled\n").unwrap();
        assert_eq!(s.pods_until, PodsUntil::Scheduled);
        let err = Scenario::parse("s.yaml", "churnDuration: soon\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.yaml: ") && err.contains("soon"), "{err}");
    }
}
