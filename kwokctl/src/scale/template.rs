//! Built-in templates of the kinds `kwokctl scale` makes: fake nodes that the kwok
//! controller manages, and pods that only fit on them.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::ApiResource;
use serde_json::{Value, json};

use kwok_engine::{
    host::{FixedHost, ScaleTarget},
    template::Template as GoTemplate,
};

use super::{Error, KwokctlResource, Param, Result, SCALE_LABEL};

/// A kind with a built-in template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `v1/Node`.
    Node,
    /// `v1/Pod`.
    Pod,
}

impl Kind {
    /// The built-in kind a user typed: singular, plural or kubectl's short name.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind.to_ascii_lowercase().as_str() {
            "node" | "nodes" | "no" => Some(Kind::Node),
            "pod" | "pods" | "po" => Some(Kind::Pod),
            _ => None,
        }
    }

    /// The singular lower-case name, also the default name prefix.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Pod => "pod",
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self == Kind::Pod
    }

    /// The API resource, for dynamic requests.
    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Node => ApiResource::erase::<Node>(&()),
            Kind::Pod => ApiResource::erase::<Pod>(&()),
        }
    }

    /// Upstream kwokctl's template parameters of the kind, with their defaults: a
    /// `--param` that assigns below one of these keys sets a parameter, not a field.
    fn parameters(self) -> Value {
        match self {
            Kind::Node => json!({
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"},
                "capacity": {},
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
                // Node n gets the n-th next subnet and address of each (upstream's).
                "podCIDRs": ["10.0.0.0/24", "fd00::/64"],
                "nodeIPs": ["192.0.2.1", "2001:db8::1"],
            }),
            Kind::Pod => json!({"nodeName": "", "hostNetwork": false}),
        }
    }

    fn base(self, parameters: &Value) -> Value {
        match self {
            Kind::Node => Value::Null,
            Kind::Pod => pod(parameters),
        }
    }
}

/// A template with the `--param`s applied, ready to stamp out objects.
#[derive(Debug, Clone)]
pub struct Template {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// One object for all: a built-in kind's, or a discovered kind's minimal one.
    Fixed { object: Value },
    /// A Go template rendered per object with its parameters (a `KwokctlResource`'s, or
    /// the built-in node's), then the `--param`s that set fields of the object.
    Go {
        template: GoTemplate,
        parameters: Value,
        after: Vec<Param>,
    },
}

impl Template {
    /// The built-in template of `kind` with `params` applied in order: first those that
    /// set upstream's template parameters (`.allocatable.cpu="4"` on a node), then the
    /// rest on the object itself (`.metadata.labels.zone="a"`).
    pub fn new(kind: Kind, params: &[Param]) -> Result<Self> {
        let mut parameters = kind.parameters();
        let (of_parameters, of_object): (Vec<&Param>, Vec<&Param>) = params
            .iter()
            .partition(|p| p.first_key().is_some_and(|k| parameters.get(k).is_some()));
        for param in of_parameters {
            parameters = param.apply(parameters)?;
        }
        if kind == Kind::Node {
            let template = GoTemplate::parse_scale(NODE_TEMPLATE).expect("the built-in node template parses");
            return Ok(Self {
                source: Source::Go {
                    template,
                    parameters,
                    after: of_object.into_iter().cloned().collect(),
                },
            });
        }
        let object = kind.base(&parameters);
        Self::fixed(object, of_object.into_iter())
    }

    /// The minimal object of a kind that has no template (`apiVersion`, `kind`), with
    /// `params` applied to it.
    pub fn minimal(api_version: &str, kind: &str, params: &[Param]) -> Result<Self> {
        let object = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
        Self::fixed(object, params.iter())
    }

    fn fixed<'p>(mut object: Value, params: impl Iterator<Item = &'p Param>) -> Result<Self> {
        for param in params {
            object = param.apply(object)?;
        }
        Ok(Self {
            source: Source::Fixed { object },
        })
    }

    /// A `KwokctlResource`'s template, every `--param` applied to its parameters (as
    /// upstream kwokctl does).
    pub fn resource(resource: &KwokctlResource, params: &[Param]) -> Result<Self> {
        let mut parameters = resource.parameters.clone();
        if parameters.is_null() {
            parameters = json!({});
        }
        for param in params {
            parameters = param.apply(parameters)?;
        }
        Ok(Self {
            source: Source::Go {
                template: resource.compile()?,
                parameters,
                after: Vec::new(),
            },
        })
    }

    /// The object called `name` (serial `index`), labelled with its `prefix`, in
    /// `namespace` when its kind is namespaced.
    pub fn render(&self, name: &str, prefix: &str, namespace: Option<&str>, index: u64) -> Result<Value> {
        let mut object = self.raw(name, namespace, index)?;
        let meta = &mut object["metadata"];
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["name"] = json!(name);
        meta["labels"][SCALE_LABEL] = json!(prefix);
        match namespace {
            Some(ns) => meta["namespace"] = json!(ns),
            None => {
                if let Some(m) = meta.as_object_mut() {
                    m.remove("namespace");
                }
            }
        }
        Ok(object)
    }

    /// The object as the template makes it, before kwokctl names and labels it.
    fn raw(&self, name: &str, namespace: Option<&str>, index: u64) -> Result<Value> {
        Ok(match &self.source {
            Source::Fixed { object } => object.clone(),
            Source::Go {
                template,
                parameters,
                after,
            } => {
                let target = ScaleTarget {
                    name: name.to_owned(),
                    namespace: namespace.unwrap_or_default().to_owned(),
                    index: i64::try_from(index).unwrap_or(i64::MAX),
                };
                let mut host = FixedHost::new(jiff::Timestamp::now()).with_scale_target(target);
                let object = template
                    .render_value(parameters, &mut host)
                    .map_err(|e| Error::Render(e.to_string()))?;
                if !object.is_object() {
                    return Err(Error::Render(format!("it renders {object}, not an object")));
                }
                let mut object = object;
                for param in after {
                    object = param.apply(object)?;
                }
                object
            }
        })
    }

    /// The (apiVersion, kind) the template makes, and the namespace it puts its first
    /// object in when asked for none (upstream's fallback when `-n` is not given).
    pub fn type_of(&self, prefix: &str) -> Result<(String, String, Option<String>)> {
        let first = self.raw(&super::object_name(prefix, 0, 6), None, 0)?;
        let field = |f: &Value| f.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        match (field(&first["apiVersion"]), field(&first["kind"])) {
            (Some(api_version), Some(kind)) => {
                Ok((api_version, kind, field(&first["metadata"]["namespace"])))
            }
            _ => Err(Error::Render(
                "the object it renders has no apiVersion or kind".into(),
            )),
        }
    }
}

/// The built-in node, as upstream KWOK's `node` KwokctlResource makes it: annotated as
/// fake (no taint, so any pod may land there), the `n`-th next podCIDR and InternalIP
/// of each family for node `n`, a realistic machine's capacity (the allocatable amount
/// unless a `capacity` parameter says otherwise).
const NODE_TEMPLATE: &str = r#"
{{ $index := Index }}
{{ $allocatable := .allocatable }}
{{ $capacity := or .capacity dict }}
apiVersion: v1
kind: Node
metadata:
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
    metrics.k8s.io/resource-metrics-path: {{ printf "/metrics/nodes/%s/metrics/resource" Name | Quote }}
  labels:
    type: kwok
    kubernetes.io/hostname: {{ Name | Quote }}
    kubernetes.io/os: {{ .nodeInfo.operatingSystem | Quote }}
    kubernetes.io/arch: {{ .nodeInfo.architecture | Quote }}
    beta.kubernetes.io/os: {{ .nodeInfo.operatingSystem | Quote }}
    beta.kubernetes.io/arch: {{ .nodeInfo.architecture | Quote }}
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
spec:
  {{ with .podCIDRs }}
  podCIDR: {{ AddCIDR (index . 0) $index | Quote }}
  podCIDRs:
  {{ range . }}
  - {{ AddCIDR . $index | Quote }}
  {{ end }}
  {{ end }}
status:
  addresses:
  {{ range .nodeIPs }}
  - type: InternalIP
    address: {{ AddIP . $index | Quote }}
  {{ end }}
  allocatable: {{ $allocatable | toJson }}
  capacity:
  {{ range $key, $value := $allocatable }}
    {{ $key | Quote }}: {{ or (index $capacity $key) $value | Quote }}
  {{ end }}
  {{ range $key, $value := $capacity }}
  {{ if not (hasKey $allocatable $key) }}
    {{ $key | Quote }}: {{ $value | Quote }}
  {{ end }}
  {{ end }}
  nodeInfo:
    kubeletVersion: fake
    kubeProxyVersion: fake
    containerRuntimeVersion: fake
    kernelVersion: fake
    osImage: fake
    bootID: ""
    machineID: ""
    systemUUID: ""
  {{ range $key, $value := .nodeInfo }}
    {{ $key | Quote }}: {{ $value | Quote }}
  {{ end }}
  phase: Running
"#;

/// A pod that only fits on fake nodes (it selects their label), bound to `nodeName`
/// when that parameter is set (what upstream's benchmarks pass).
fn pod(p: &Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app": "fake-pod"}},
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "containers": [{
                "name": "container",
                "image": "fake-image",
                "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
            }],
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
        },
    });
    if let Some(node) = p["nodeName"].as_str().filter(|n| !n.is_empty()) {
        pod["spec"]["nodeName"] = json!(node);
    }
    if p["hostNetwork"].as_bool() == Some(true) {
        pod["spec"]["hostNetwork"] = json!(true);
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_accept_kubectl_spellings_of_the_built_in_kinds_only() {
        for s in ["node", "Nodes", "no"] {
            assert_eq!(Kind::parse(s), Some(Kind::Node));
        }
        assert_eq!(Kind::parse("po"), Some(Kind::Pod));
        assert_eq!(Kind::parse("deployment"), None);
    }

    #[test]
    fn render_should_name_label_and_place_the_object() {
        let pod = Template::new(Kind::Pod, &[])
            .unwrap()
            .render("p-000001", "p", Some("ns"), 1)
            .unwrap();
        assert_eq!(pod["metadata"]["name"], "p-000001");
        assert_eq!(pod["metadata"]["namespace"], "ns");
        assert_eq!(pod["metadata"]["labels"][SCALE_LABEL], "p");
        let node = Template::new(Kind::Node, &[])
            .unwrap()
            .render("n-000000", "n", None, 0)
            .unwrap();
        assert!(node["metadata"].get("namespace").is_none());
        assert_eq!(node["metadata"]["annotations"]["kwok.x-k8s.io/node"], "fake");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "n-000000");
    }

    /// Upstream's node: no taint, node `n` gets the `n`-th next podCIDR and InternalIP
    /// of each family, and the resource-metrics path annotation.
    #[test]
    fn node_n_should_get_its_own_cidrs_and_addresses_and_no_taint() {
        let template = Template::new(Kind::Node, &[]).unwrap();
        let node = template.render("node-000003", "node", None, 3).unwrap();
        assert!(node["spec"].get("taints").is_none(), "{node}");
        assert_eq!(node["spec"]["podCIDR"], "10.0.3.0/24");
        assert_eq!(
            node["spec"]["podCIDRs"],
            json!(["10.0.3.0/24", "fd00:0:0:3::/64"])
        );
        let addresses: Vec<&str> = node["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["address"].as_str().unwrap())
            .collect();
        assert_eq!(addresses, ["192.0.2.4", "2001:db8::4"]);
        assert_eq!(
            node["metadata"]["annotations"]["metrics.k8s.io/resource-metrics-path"],
            "/metrics/nodes/node-000003/metrics/resource"
        );
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "fake");
        assert_eq!(node["status"]["nodeInfo"]["operatingSystem"], "linux");
    }

    #[test]
    fn a_pod_should_be_bound_by_the_node_name_parameter() {
        let params = [Param::compile(r#".nodeName = "node-000001""#).unwrap()];
        let pod = Template::new(Kind::Pod, &params)
            .unwrap()
            .render("p-0", "p", Some("default"), 0)
            .unwrap();
        assert_eq!(pod["spec"]["nodeName"], "node-000001");
        assert!(pod.get("nodeName").is_none(), "a parameter, not a field");
    }

    #[test]
    fn upstream_parameters_should_shape_the_node() {
        let params = [
            Param::compile(r#".allocatable.cpu = "4000m""#).unwrap(),
            Param::compile(r#".capacity.cpu = "8""#).unwrap(),
            Param::compile(r#".nodeInfo.architecture = "arm64""#).unwrap(),
        ];
        let node = Template::new(Kind::Node, &params)
            .unwrap()
            .render("n-0", "n", None, 0)
            .unwrap();
        assert_eq!(node["status"]["allocatable"]["cpu"], "4000m");
        assert_eq!(node["status"]["capacity"]["cpu"], "8");
        assert_eq!(node["status"]["capacity"]["memory"], "256Gi");
        assert_eq!(node["status"]["nodeInfo"]["architecture"], "arm64");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "arm64");
        assert!(node.get("allocatable").is_none(), "a parameter, not a field");
    }

    #[test]
    fn template_should_apply_params_in_order() {
        let params = [
            Param::compile(r#".status.allocatable.cpu = "64""#).unwrap(),
            Param::compile(r#".metadata.labels.zone = "a""#).unwrap(),
        ];
        let node = Template::new(Kind::Node, &params)
            .unwrap()
            .render("n-0", "n", None, 0)
            .unwrap();
        assert_eq!(node["status"]["allocatable"]["cpu"], "64");
        assert_eq!(node["metadata"]["labels"]["zone"], "a");
        assert_eq!(node["metadata"]["labels"]["type"], "kwok");
    }
}
