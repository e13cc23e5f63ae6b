//! `kwokctl scale` of any kind: a served kind found by discovery (a minimal object),
//! and a kind defined by a `KwokctlResource` in a `--config` file (its Go template).

use std::fs;

use crate::{
    util::Kwokctl,
    wait::{assert_one_line, names},
};

const SETTINGS: &str = r#"apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlResource
metadata:
  name: settings
parameters:
  color: blue
  cidr: 10.5.0.0/24
template: |-
  apiVersion: v1
  kind: ConfigMap
  metadata:
    name: {{ Name }}
    namespace: {{ or Namespace "team" }}
  data:
    color: {{ .color }}
    index: {{ Quote Index }}
    subnet: {{ AddCIDR .cidr Index }}
"#;

fn jsonpath(kwokctl: &Kwokctl, c: &str, args: &[&str], path: &str) -> String {
    let mut all = vec!["--name", c, "kubectl", "get"];
    all.extend_from_slice(args);
    let path = format!("jsonpath={path}");
    all.extend_from_slice(&["-o", &path]);
    kwokctl.ok(&all)
}

#[test]
fn scale_should_make_any_served_kind_and_kwokctl_resources() {
    let kwokctl = Kwokctl::new();
    let c = "kinds";
    kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        c,
        "--components",
        "etcd,kube-apiserver",
    ]);

    // A kind found by discovery: a minimal object plus the --params.
    let out = kwokctl.ok(&[
        "--name",
        c,
        "scale",
        "configmap",
        "cm",
        "--replicas",
        "5",
        "--param",
        ".data.k = \"v\"",
    ]);
    assert!(
        out.contains("Scaled configmap \"cm\" to 5 (5 created, 0 deleted)"),
        "{out}"
    );
    let out = kwokctl.ok(&["--name", c, "scale", "cm", "cm", "--replicas", "2"]);
    assert!(out.contains("(0 created, 3 deleted)"), "{out}");
    let labelled = names(
        &kwokctl,
        c,
        &[
            "configmaps",
            "-n",
            "default",
            "-l",
            "kwok.x-k8s.io/kwokctl-scale=cm",
        ],
    );
    assert_eq!(labelled, ["cm-000000", "cm-000001"]);
    let all: Vec<String> = names(&kwokctl, c, &["configmaps", "-n", "default"])
        .into_iter()
        .filter(|n| n.starts_with("cm-"))
        .collect();
    assert_eq!(all, ["cm-000000", "cm-000001"], "the newest three were deleted");
    assert_eq!(jsonpath(&kwokctl, c, &["cm", "cm-000001"], "{.data.k}"), "v");
    // Group-qualified names reach the same resource.
    kwokctl.ok(&["--name", c, "scale", "configmaps.", "cm", "--replicas", "1"]);
    assert_eq!(
        names(
            &kwokctl,
            c,
            &[
                "configmaps",
                "-n",
                "default",
                "-l",
                "kwok.x-k8s.io/kwokctl-scale=cm"
            ]
        ),
        ["cm-000000"]
    );

    // A KwokctlResource: its template, its namespace, the --param on its parameters.
    let config = kwokctl.workdir().with_file_name("settings.yaml");
    fs::write(&config, SETTINGS).unwrap();
    let config = config.to_str().unwrap();
    kwokctl.ok(&["--name", c, "kubectl", "create", "namespace", "team"]);
    let out = kwokctl.ok(&[
        "--name",
        c,
        "--config",
        config,
        "scale",
        "settings",
        "--replicas",
        "3",
        "--param",
        ".color = \"red\"",
    ]);
    assert!(
        out.contains("Scaled configmap \"settings\" to 3 (3 created"),
        "{out}"
    );
    let made = names(
        &kwokctl,
        c,
        &["cm", "-n", "team", "-l", "kwok.x-k8s.io/kwokctl-scale=settings"],
    );
    assert_eq!(made, ["settings-000000", "settings-000001", "settings-000002"]);
    assert_eq!(
        jsonpath(
            &kwokctl,
            c,
            &["cm", "settings-000002", "-n", "team"],
            "{.data.color} {.data.index} {.data.subnet}"
        ),
        "red 2 10.5.2.0/24"
    );

    // Bad input: one line each, nothing made.
    let before = names(&kwokctl, c, &["cm", "-A"]);
    let err = kwokctl.err(&["--name", c, "scale", "nosuch", "--replicas", "3"]);
    assert!(
        err.contains("unknown kind \"nosuch\" for scale: no KwokctlResource of that name"),
        "{err}"
    );
    assert_one_line(&err);
    let err = kwokctl.err(&["--name", c, "scale", "deployments.apps", "d", "--replicas", "2"]);
    assert!(
        err.contains("the apiserver refuses the deployment template"),
        "{err}"
    );
    assert_one_line(&err);
    let bad = kwokctl.workdir().with_file_name("bad.yaml");
    fs::write(&bad, SETTINGS.replace("{{ .color }}", "{{ Colour }}")).unwrap();
    let err = kwokctl.err(&[
        "--name",
        c,
        "--config",
        bad.to_str().unwrap(),
        "scale",
        "settings",
    ]);
    assert!(
        err.contains(
            "bad.yaml:1: KwokctlResource \"settings\": template: line 7: function \"Colour\" not defined"
        ),
        "{err}"
    );
    assert_one_line(&err);
    assert_eq!(
        names(&kwokctl, c, &["cm", "-A"]),
        before,
        "bad input changed nothing"
    );
    assert!(names(&kwokctl, c, &["deployments", "-A"]).is_empty());
}
