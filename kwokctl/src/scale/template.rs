//! Built-in templates of the kinds `kwokctl scale` makes: fake nodes that the kwok
//! controller manages, and pods that only fit on them.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::ApiResource;
use serde_json::{Value, json};

use kwok_engine::{
    host::{FixedHost, ScaleHost, ScaleTarget},
    template::Template as GoTemplate,
};

use super::{Error, KwokctlResource, Param, Result, SCALE_LABEL};

/// The annotation and taint key marking a fake node (upstream KWOK's).
const FAKE_NODE_KEY: &str = "kwok.x-k8s.io/node";

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
            }),
            Kind::Pod => json!({}),
        }
    }

    fn base(self, parameters: &Value) -> Value {
        match self {
            Kind::Node => node(parameters),
            Kind::Pod => pod(),
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
    Fixed { object: Value, node: bool },
    /// A `KwokctlResource`'s Go template, rendered per object with its parameters.
    Go { template: GoTemplate, parameters: Value },
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
        let object = kind.base(&parameters);
        Self::fixed(object, of_object.into_iter(), kind == Kind::Node)
    }

    /// The minimal object of a kind that has no template (`apiVersion`, `kind`), with
    /// `params` applied to it.
    pub fn minimal(api_version: &str, kind: &str, params: &[Param]) -> Result<Self> {
        let object = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
        Self::fixed(object, params.iter(), false)
    }

    fn fixed<'p>(mut object: Value, params: impl Iterator<Item = &'p Param>, node: bool) -> Result<Self> {
        for param in params {
            object = param.apply(object)?;
        }
        Ok(Self {
            source: Source::Fixed { object, node },
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
        if matches!(self.source, Source::Fixed { node: true, .. }) {
            meta["labels"]["kubernetes.io/hostname"] = json!(name);
        }
        Ok(object)
    }

    /// The object as the template makes it, before kwokctl names and labels it.
    fn raw(&self, name: &str, namespace: Option<&str>, index: u64) -> Result<Value> {
        Ok(match &self.source {
            Source::Fixed { object, .. } => object.clone(),
            Source::Go { template, parameters } => {
                let target = ScaleTarget {
                    name: name.to_owned(),
                    namespace: namespace.unwrap_or_default().to_owned(),
                    index: i64::try_from(index).unwrap_or(i64::MAX),
                };
                let host = ScaleHost::new(FixedHost::new(jiff::Timestamp::now()), target);
                let object = template
                    .render_value(parameters, &host)
                    .map_err(|e| Error::Render(e.to_string()))?;
                if !object.is_object() {
                    return Err(Error::Render(format!("it renders {object}, not an object")));
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

/// A fake node as upstream KWOK's scale template makes it: annotated and tainted so only
/// pods that tolerate it land there, with a realistic machine's capacity. Capacity is
/// the allocatable amount unless a parameter says otherwise.
fn node(p: &Value) -> Value {
    let allocatable = p["allocatable"].clone();
    let mut capacity = allocatable.clone();
    if let (Some(c), Some(extra)) = (capacity.as_object_mut(), p["capacity"].as_object()) {
        c.extend(extra.clone());
    }
    let (arch, os) = (&p["nodeInfo"]["architecture"], &p["nodeInfo"]["operatingSystem"]);
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {FAKE_NODE_KEY: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/os": os,
                "kubernetes.io/arch": arch,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {
            "taints": [{"key": FAKE_NODE_KEY, "value": "fake", "effect": "NoSchedule"}],
        },
        "status": {
            "allocatable": allocatable,
            "capacity": capacity,
            "nodeInfo": {
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "fake",
                "kernelVersion": "fake",
                "osImage": "fake",
                "bootID": "", "machineID": "", "systemUUID": "",
            },
            "phase": "Running",
        },
    });
    if let (Some(info), Some(given)) = (
        node["status"]["nodeInfo"].as_object_mut(),
        p["nodeInfo"].as_object(),
    ) {
        info.extend(given.clone());
    }
    node
}

/// A pod that only fits on fake nodes: selects their label, tolerates their taint.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app": "fake-pod"}},
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "tolerations": [{"key": FAKE_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "container",
                "image": "fake-image",
                "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
            }],
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
        },
    })
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
        assert_eq!(node["metadata"]["annotations"][FAKE_NODE_KEY], "fake");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "n-000000");
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
