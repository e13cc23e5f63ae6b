//! `KwokctlResource` (`config.kwok.x-k8s.io/v1alpha1`): a template for `kwokctl scale`
//! from a `--config` file, as upstream kwokctl v0.8 reads it. The template is Go
//! `text/template` text rendered by the engine with the parameters as dot.

use kwok_engine::template::Template as GoTemplate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, Result};

/// The kind of the document.
pub const RESOURCE_KIND: &str = "KwokctlResource";

/// A template for `kwokctl scale NAME`, where NAME is its `metadata.name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KwokctlResource {
    /// `config.kwok.x-k8s.io/v1alpha1`.
    pub api_version: String,
    /// `KwokctlResource`.
    pub kind: String,
    /// Its name is what `kwokctl scale` is given.
    pub metadata: ResourceMetadata,
    /// Dot of the template; each `--param` is applied to it first.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    /// Go template text that prints one object as YAML; `Name`, `Namespace`, `Index`,
    /// `AddCIDR` and `AddIP` name and place it.
    #[serde(default)]
    pub template: String,
}

/// The metadata of a [`KwokctlResource`]; fields other than the name are kept as given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceMetadata {
    /// The name `kwokctl scale` matches.
    pub name: String,
    /// Labels, annotations and the like: accepted, unused.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

impl KwokctlResource {
    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Compiles the template (functions resolved, as Go does at parse time).
    pub fn compile(&self) -> Result<GoTemplate> {
        if self.template.trim().is_empty() {
            return Err(Error::Template {
                name: self.name().to_owned(),
                reason: "it is empty".into(),
            });
        }
        GoTemplate::parse_scale(&self.template).map_err(|e| Error::Template {
            name: self.name().to_owned(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scale::{Param, Template};

    const WIDGET: &str = "apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlResource
metadata:
  name: widget
parameters:
  size: small
  cidr: 10.1.0.0/24
template: |-
  apiVersion: example.com/v1
  kind: Widget
  metadata:
    name: {{ Name }}
    namespace: {{ or Namespace \"default\" }}
    labels:
      size: {{ .size }}
  spec:
    cidr: {{ AddCIDR .cidr Index }}
";

    fn widget() -> KwokctlResource {
        serde_saphyr::from_str(WIDGET).unwrap()
    }

    #[test]
    fn resource_template_should_render_each_object_with_params_on_the_parameters() {
        let params = [Param::compile(r#".size = "large""#).unwrap()];
        let t = Template::resource(&widget(), &params).unwrap();
        let w = t.render("w-000002", "w", Some("ns"), 2).unwrap();
        assert_eq!(
            w,
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w-000002", "namespace": "ns",
                    "labels": {"size": "large", "kwok.x-k8s.io/kwokctl-scale": "w"}},
                "spec": {"cidr": "10.1.2.0/24"}})
        );
        assert_eq!(
            t.type_of("w").unwrap(),
            (
                "example.com/v1".to_owned(),
                "Widget".to_owned(),
                Some("default".to_owned())
            )
        );
    }

    #[test]
    fn a_bad_template_should_be_an_error_naming_the_resource() {
        let mut r = widget();
        r.template = "kind: {{ Nosuch }}".into();
        assert_eq!(
            r.compile().unwrap_err().to_string(),
            "KwokctlResource \"widget\": template: line 1: function \"Nosuch\" not defined"
        );
        r.template = "just text".into();
        let err = Template::resource(&r, &[])
            .unwrap()
            .render("w-0", "w", None, 0)
            .unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
    }
}
