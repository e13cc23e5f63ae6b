//! End-to-end tests: templates parsed, rendered with [`FixedHost`] and read back as JSON.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Error, Template};
use crate::host::FixedHost;

const NOW: &str = "2024-05-06T07:08:09.12345Z";

fn host() -> FixedHost {
    FixedHost::new(NOW.parse::<Timestamp>().unwrap())
}

fn render(src: &str, data: &Value) -> String {
    let mut out = String::new();
    Template::parse(src)
        .unwrap()
        .render(data, &mut host(), &mut out)
        .unwrap();
    out
}

fn render_err(src: &str, data: &Value) -> String {
    let mut out = String::new();
    Template::parse(src)
        .unwrap()
        .render(data, &mut host(), &mut out)
        .unwrap_err()
        .to_string()
}

#[test]
fn template_should_be_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone>() {}
    assert_traits::<Template>();
}

#[test]
fn fields_variables_and_parentheses_should_resolve() {
    let data = json!({"a": {"b": {"c": "x"}}, "n": 3});
    assert_eq!(
        render(
            "{{ .a.b.c }} {{ $v := .a }}{{ $v.b.c }} {{ $.n }} {{ (.a.b).c }}",
            &data
        ),
        "x x 3 x"
    );
    assert_eq!(render("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", &data), "2");
}

#[test]
fn missing_keys_nil_and_zero_values_should_behave_as_go_recorded() {
    // Recorded once from Go 1.26's text/template (a program of the standard library
    // only, executing each template against the same `encoding/json`-decoded data).
    let recorded: Value =
        serde_json::from_str(include_str!("testdata/gotpl_go.json")).expect("fixture parses");
    let data = &recorded["data"];
    for case in recorded["cases"].as_array().expect("cases") {
        let (name, src) = (&case["name"], case["template"].as_str().unwrap());
        let mut out = String::new();
        let got = Template::parse(src).unwrap().render(data, &mut host(), &mut out);
        match case.get("error").and_then(Value::as_str) {
            // Go says `executing "t" at <.a.x>: reason`; we say `line 1: reason`.
            Some(err) => {
                let want = err.rsplit(">: ").next().unwrap();
                let got = got.expect_err(&format!("{name}: want error {want:?}, got {out:?}"));
                let got = got.to_string();
                let got = got.split_once(": ").map_or(got.as_str(), |(_, r)| r);
                // Go's reflect internals leak into some messages; those need only fail.
                if !want.contains("reflect:") {
                    assert_eq!(got, want, "{name}");
                }
            }
            None => {
                got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(out, case["output"].as_str().unwrap(), "{name}");
            }
        }
    }
}

#[test]
fn values_should_print_like_go_fmt() {
    let data = json!({"i": 3, "f": 1.5, "l": ["a", 1], "m": {"b": 2, "a": true}});
    assert_eq!(
        render("{{ .i }} {{ .f }} {{ .l }} {{ .m }} {{ 2.0 }} {{ 1e21 }}", &data),
        "3 1.5 [a 1] map[a:true b:2] 2 1e+21"
    );
}

#[test]
fn literals_should_cover_go_syntax() {
    let out = render(
        r#"{{ "a\tb" }}|{{ `raw\n` }}|{{ 0x10 }}|{{ 'a' }}|{{ true }}|{{ -1.5 }}"#,
        &json!({}),
    );
    assert_eq!(out, "a\tb|raw\\n|16|97|true|-1.5");
}

#[test]
fn truthiness_should_follow_go() {
    let data = json!({"zero": 0, "empty": "", "list": [], "map": {}, "f": false, "s": "x", "one": 1});
    let src = "{{ range $k, $v := . }}{{ $k }}={{ if $v }}T{{ else }}F{{ end }} {{ end }}";
    assert_eq!(render(src, &data), "empty=F f=F list=F map=F one=T s=T zero=F ");
    assert_eq!(render("{{ if .missing }}T{{ else }}F{{ end }}", &data), "F");
}

#[test]
fn if_else_if_chains_should_pick_the_first_true_arm() {
    let src = "{{ if eq .x 1 }}one{{ else if eq .x 2 }}two{{ else }}many{{ end }}";
    assert_eq!(render(src, &json!({"x": 2})), "two");
    assert_eq!(render(src, &json!({"x": 5})), "many");
}

#[test]
fn with_should_set_dot_and_else_should_keep_it() {
    let src = "{{ with .a }}{{ . }}{{ else with .b }}b={{ . }}{{ else }}none{{ end }}";
    assert_eq!(render(src, &json!({"a": "x"})), "x");
    assert_eq!(render(src, &json!({"b": 2})), "b=2");
    assert_eq!(render(src, &json!({})), "none");
}

#[test]
fn range_over_map_should_visit_keys_in_sorted_order() {
    let data = json!({"m": {"b": 2, "a": 1, "c": 3}});
    assert_eq!(
        render("{{ range $k, $v := .m }}{{ $k }}{{ $v }}{{ end }}", &data),
        "a1b2c3"
    );
}

#[test]
fn range_should_bind_index_and_element_and_run_else_when_empty() {
    let data = json!({"l": ["x", "y"], "e": []});
    assert_eq!(
        render("{{ range $i, $v := .l }}{{ $i }}:{{ $v }},{{ end }}", &data),
        "0:x,1:y,"
    );
    assert_eq!(
        render("{{ range .l }}{{ . }}{{ $ | len }}{{ end }}", &data),
        "x2y2"
    );
    assert_eq!(render("{{ range .e }}x{{ else }}empty{{ end }}", &data), "empty");
    assert_eq!(
        render("{{ range .missing }}x{{ else }}none{{ end }}", &data),
        "none"
    );
    assert_eq!(render("{{ range 3 }}{{ . }}{{ end }}", &data), "012");
}

#[test]
fn break_and_continue_should_control_the_innermost_range() {
    let data = json!({"l": [1, 2, 3, 4]});
    let src = "{{ range .l }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}";
    assert_eq!(render(src, &data), "13");
}

#[test]
fn trim_markers_and_comments_should_remove_whitespace() {
    assert_eq!(
        render("a  \n {{- /* note */ -}} \n b {{- 1 }}", &json!({})),
        "ab1"
    );
}

#[test]
fn define_template_and_block_should_render_with_the_given_dot() {
    let src = r#"{{ define "t" }}[{{ .x }}{{ $ }}]{{ end }}{{ template "t" .a }}{{ block "b" . }}B{{ .a.x }}{{ end }}"#;
    assert_eq!(render(src, &json!({"a": {"x": 1}})), "[1map[x:1]]B1");
    assert_eq!(
        render_err(r#"{{ template "nope" }}"#, &json!({})),
        "line 1: no such template \"nope\""
    );
}

#[test]
fn pipelines_should_pass_the_value_as_the_last_argument() {
    let data = json!({"s": "abc"});
    assert_eq!(render(r#"{{ .s | printf "%s-%s" "x" }}"#, &data), "x-abc");
    assert_eq!(render(r#"{{ .s | upper | trimPrefix "A" }}"#, &data), "BC");
    assert_eq!(
        render_err("{{ .s | not 1 }}", &data),
        "line 1: wrong number of args for not: want 1 got 2"
    );
}

#[test]
fn and_or_should_short_circuit_and_return_the_deciding_value() {
    let data = json!({"a": "x"});
    assert_eq!(
        render(
            "{{ or .missing .a }}|{{ and .a 0 }}|{{ and 1 .a }}|{{ or 0 \"\" }}",
            &data
        ),
        "x|0|x|"
    );
    assert_eq!(render("{{ or .a (index .missing 1) }}", &data), "x");
}

#[test]
fn comparison_builtins_should_compare_basic_kinds() {
    let data = json!({"n": 2, "f": 2.5});
    let out = render(
        "{{ eq .n 1 2 }} {{ ne .n 2 }} {{ lt .n .f }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1 2 }}",
        &data,
    );
    assert_eq!(out, "true false true true true false");
    assert_eq!(
        render_err("{{ lt .n \"x\" }}", &data),
        "line 1: error calling lt: incompatible types for comparison"
    );
}

#[test]
fn collection_builtins_should_follow_go() {
    let data = json!({"l": [1, 2, 3], "m": {"k": ["v"]}, "s": "héllo"});
    let out = render(
        "{{ len .l }} {{ len .s }} {{ index .m \"k\" 0 }} {{ slice .l 1 }} {{ slice .s 0 1 }} {{ index .m \"x\" }}",
        &data,
    );
    assert_eq!(out, "3 6 v [2 3] h <no value>");
    assert_eq!(
        render_err("{{ index .l 3 }}", &data),
        "line 1: error calling index: index out of range: 3 (length 3)"
    );
}

#[test]
fn print_functions_and_escapers_should_follow_go() {
    let out = render(
        r#"{{ print "a" 1 2 }}|{{ println 1 "b" }}|{{ printf "%05.1f|%-3d|%q" 3.14159 7 "x" }}|{{ html "<b>" }}|{{ js "it's" }}|{{ urlquery "a b" }}"#,
        &json!({}),
    );
    assert_eq!(out, "a1 2|1 b\n|003.1|7  |\"x\"|&lt;b&gt;|it\\'s|a+b");
}

#[test]
fn sprig_defaults_and_strings_should_follow_sprig() {
    let data = json!({"s": " Hi ", "e": "", "l": ["a", "b"]});
    let src = r#"{{ default "d" .e }} {{ .e | default "p" }} {{ empty .e }} {{ coalesce .e .missing "c" }} {{ ternary "y" "n" true }} {{ quote "q" }} {{ squote "q" }} {{ trim .s | lower }} {{ join "," .l }} {{ replace "a" "b" "aa" }} {{ contains "el" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "x" "hello" }} {{ toString 5 }} {{ splitList "," "a,b" }}"#;
    assert_eq!(
        render(src, &data),
        r#"d p true c y "q" 'q' hi a,b bb true true false 5 [a b]"#
    );
}

#[test]
fn sprig_math_should_use_integers_and_casts() {
    let src = r#"{{ add 1 2 "3" }} {{ sub 5 2 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 9 3 }} {{ min 4 2 }} {{ int "42" }} {{ int64 2.9 }} {{ float64 "1.5" }} {{ atoi "x" }} {{ add1 1 }}"#;
    assert_eq!(render(src, &json!({})), "6 3 24 3 1 9 2 42 2 1.5 0 2");
    assert_eq!(
        render_err("{{ div 1 0 }}", &json!({})),
        "line 1: error calling div: integer divide by zero"
    );
}

#[test]
fn sprig_dicts_and_lists_should_build_values() {
    let src = r#"{{ $d := dict "a" 1 "b" "x" }}{{ $_ := set $d "c" true }}{{ toJson $d }} {{ hasKey $d "c" }} {{ get $d "b" }} {{ keys $d }} {{ $l := list 1 "two" }}{{ toJson (append $l 3) }} {{ first $l }} {{ last $l }} {{ (dict "k" "v").k }}"#;
    assert_eq!(
        render(src, &json!({})),
        r#"{"a":1,"b":"x","c":true} true x [a b c] [1,"two",3] 1 two v"#
    );
}

#[test]
fn to_json_and_from_json_should_round_trip() {
    let data = json!({"m": {"b": [1, null], "a": "<"}});
    assert_eq!(
        render("{{ toJson .m }} {{ (fromJson \"{\\\"x\\\": 2}\").x }}", &data),
        r#"{"a":"\u003c","b":[1,null]} 2"#
    );
}

#[test]
fn kwok_functions_should_use_the_host() {
    let src = "{{ Now }} {{ StartTime }} {{ Version }} {{ NodeIP }} {{ NodeName }} {{ NodePort }} {{ NodeIPWith \"n\" }} {{ NodeIPsWith \"n\" }} {{ PodIPWith \"n\" false \"u1\" \"p\" \"ns\" }} {{ PodIPsWith \"n\" true \"u2\" \"p\" \"ns\" }} {{ PodIPWith \"n\" false \"u1\" \"p\" \"ns\" }}";
    let want = format!(
        "{NOW} {NOW} kwok-v0.8.0 196.168.0.1 kwok-node 10250 196.168.0.1 [196.168.0.1] 10.0.0.1 [196.168.0.1] 10.0.0.1"
    );
    assert_eq!(render(src, &json!({})), want);
    assert_eq!(
        render_err("{{ NodeIPWith .missing }}", &json!({})),
        "line 1: error calling NodeIPWith: invalid value; expected string"
    );
}

#[test]
fn kwok_quote_and_yaml_should_produce_valid_yaml_scalars() {
    let data = json!({"n": 5, "s": "a\"b", "m": {"b": ["x"], "a": "True"}});
    assert_eq!(
        render("{{ .n | Quote }} {{ Quote .s }} {{ .missing | Quote }}", &data),
        r#""5" "a\"b" "null""#
    );
    assert_eq!(
        render("m:{{ YAML .m 1 }}", &data),
        "m:\n  a: \"True\"\n  b:\n  - x\n  "
    );
    let t = Template::parse("m: {{ YAML .m 1 }}").unwrap();
    assert_eq!(
        t.render_value(&data, &mut host()).unwrap(),
        json!({"m": {"a": "True", "b": ["x"]}})
    );
}

#[test]
fn set_on_a_variable_should_update_it_in_place() {
    let src = r#"{{ $d := dict }}{{ range $i, $v := list "a" "b" }}{{ $_ := set $d $v $i }}{{ end }}{{ toJson $d }}"#;
    assert_eq!(render(src, &json!({})), r#"{"a":0,"b":1}"#);
}

#[test]
fn parse_errors_should_carry_the_line_and_a_short_reason() {
    let cases = [
        (
            "a\n\n{{ } }}",
            Error::Parse {
                line: 3,
                reason: "unexpected \"}\" in operand".into(),
            },
        ),
        (
            "{{ Foo }}",
            Error::Parse {
                line: 1,
                reason: "function \"Foo\" not defined".into(),
            },
        ),
        (
            "x\n{{ .a",
            Error::Parse {
                line: 2,
                reason: "unclosed action".into(),
            },
        ),
        (
            "{{ range .a }}\n",
            Error::Parse {
                line: 1,
                reason: "unexpected EOF: missing {{end}} for {{range}}".into(),
            },
        ),
        (
            "{{ .a .b }}",
            Error::Parse {
                line: 1,
                reason: "can't give argument to non-function".into(),
            },
        ),
    ];
    for (src, want) in cases {
        assert_eq!(Template::parse(src).unwrap_err(), want, "{src:?}");
    }
}

#[test]
fn render_errors_should_never_panic_whatever_the_data() {
    let src = "{{ index . 1 }}{{ slice . 5 }}{{ len . }}{{ .a.b }}{{ add . . }}{{ printf \"%d\" . }}";
    for data in [
        json!(null),
        json!(1),
        json!("s"),
        json!([1]),
        json!({"a": 1}),
        json!(true),
    ] {
        let mut out = String::new();
        let _ = Template::parse(src).unwrap().render(&data, &mut host(), &mut out);
    }
}

#[test]
fn huge_sizes_should_fail_instead_of_exhausting_memory() {
    let e = render_err("{{ repeat 1000000000000 \"ab\" }}", &json!({}));
    assert_eq!(e, "line 1: error calling repeat: repeat count causes overflow");
    assert!(render_err("{{ YAML . 100000000000 }}", &json!({})).contains("indent"));
    assert!(
        Template::parse("a: { #")
            .unwrap()
            .render_value(&json!({}), &mut host())
            .is_err()
    );
}

#[test]
fn render_value_should_type_yaml_scalars_and_treat_empty_output_as_null() {
    let t = Template::parse("a: {{ .x }}\nb: \"True\"\nc: True\nd: yes\ne: 1.5\nf: null").unwrap();
    let want = json!({"a": 1, "b": "True", "c": true, "d": "yes", "e": 1.5, "f": null});
    assert_eq!(t.render_value(&json!({"x": 1}), &mut host()).unwrap(), want);
    assert_eq!(
        Template::parse("  {{/* */}}\n")
            .unwrap()
            .render_value(&json!({}), &mut host())
            .unwrap(),
        Value::Null
    );
}

pub(crate) const POD_READY: &str = r#"{{ $now := Now }}

conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}

containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}

initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  {{ if eq .restartPolicy "Always" }}
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
  {{ else }}
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
  {{ end }}
{{ end }}

hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"#;

pub(crate) const NODE_INITIALIZE: &str = r#"{{ $now := Now }}
{{ $lastTransitionTime := or .creationTimestamp $now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $lastTransitionTime | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type  | Quote}}
{{ end }}

addresses:
{{ with .status.addresses }}
{{ YAML . 1 }}
{{ else }}
{{ with NodeIP }}
- address: {{ . | Quote }}
  type: InternalIP
{{ end }}
{{ with NodeName }}
- address: {{ . | Quote }}
  type: Hostname
{{ end }}
{{ end }}

{{ with NodePort }}
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ . }}
{{ end }}

allocatable:
{{ with .status.allocatable }}
{{ YAML . 1 }}
{{ else }}
  cpu: 1k
  memory: 1Ti
  pods: 1M
{{ end }}
capacity:
{{ with .status.capacity }}
{{ YAML . 1 }}
{{ else }}
  cpu: 1k
  memory: 1Ti
  pods: 1M
{{ end }}
{{ with .status.nodeInfo }}
nodeInfo:
  architecture: {{ with .architecture }} {{ . }} {{ else }} "amd64" {{ end }}
  bootID: {{ with .bootID }} {{ . }} {{ else }} "" {{ end }}
  containerRuntimeVersion: {{ with .containerRuntimeVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  kernelVersion: {{ with .kernelVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  kubeProxyVersion: {{ with .kubeProxyVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  kubeletVersion: {{ with .kubeletVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  machineID: {{ with .machineID }} {{ . }} {{ else }} "" {{ end }}
  operatingSystem: {{ with .operatingSystem }} {{ . }} {{ else }} "linux" {{ end }}
  osImage: {{ with .osImage }} {{ . }} {{ else }} "" {{ end }}
  systemUUID: {{ with .systemUUID }} {{ . }} {{ else }} "" {{ end }}
{{ end }}
phase: Running
"#;

#[test]
fn pod_ready_should_render_the_running_status() {
    let pod = json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1"},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}],
            "initContainers": [{"name": "i", "image": "init", "restartPolicy": "Always"}, {"name": "j", "image": "init2"}],
            "readinessGates": [{"conditionType": "example.com/gate"}]
        }
    });
    let running = json!({"running": {"startedAt": NOW}});
    let cond = |ty: &str| json!({"lastTransitionTime": NOW, "status": "True", "type": ty});
    let want = json!({
        "conditions": [cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("example.com/gate")],
        "containerStatuses": [
            {"image": "nginx", "name": "a", "ready": true, "restartCount": 0, "state": running},
            {"image": "busybox", "name": "b", "ready": true, "restartCount": 0, "state": running},
        ],
        "initContainerStatuses": [
            {"image": "init", "name": "i", "ready": true, "restartCount": 0, "started": true, "state": running},
            {"image": "init2", "name": "j", "ready": true, "restartCount": 0, "state": {"terminated": {
                "exitCode": 0, "finishedAt": NOW, "reason": "Completed", "startedAt": NOW}}},
        ],
        "hostIP": "196.168.0.1",
        "podIP": "10.0.0.1",
        "phase": "Running",
        "startTime": NOW,
    });
    let t = Template::parse(POD_READY).unwrap();
    assert_eq!(t.render_value(&pod, &mut host()).unwrap(), want);
}

#[test]
fn node_initialize_should_render_a_ready_node() {
    let node = json!({
        "metadata": {"name": "node-1"},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {"architecture": "arm64", "kubeletVersion": "fake"}
        }
    });
    let cond = |ty: &str, status: &str, reason: &str, message: &str| json!({"lastHeartbeatTime": NOW, "lastTransitionTime": NOW, "message": message, "reason": reason, "status": status, "type": ty});
    let want = json!({
        "conditions": [
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route"),
        ],
        "addresses": [{"address": "196.168.0.1", "type": "InternalIP"}, {"address": "kwok-node", "type": "Hostname"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        "nodeInfo": {
            "architecture": "arm64", "bootID": "", "containerRuntimeVersion": "kwok-kwok-v0.8.0",
            "kernelVersion": "kwok-kwok-v0.8.0", "kubeProxyVersion": "kwok-kwok-v0.8.0", "kubeletVersion": "fake",
            "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""
        },
        "phase": "Running",
    });
    let t = Template::parse(NODE_INITIALIZE).unwrap();
    assert_eq!(t.render_value(&node, &mut host()).unwrap(), want);
}

#[test]
fn scale_functions_should_exist_only_in_scale_templates() {
    for src in ["{{ Name }}", "{{ Index }}", "{{ AddIP \"10.0.0.1\" 1 }}"] {
        let err = Template::parse(src).unwrap_err().to_string();
        assert!(err.ends_with("not defined"), "{src}: {err}");
        assert!(Template::parse_scale(src).is_ok(), "{src}");
    }
}

#[test]
fn scale_templates_should_render_the_target_and_offsets() {
    use crate::host::ScaleTarget;
    let target = ScaleTarget {
        name: "n-000003".into(),
        namespace: "ns".into(),
        index: 3,
    };
    let mut host = host().with_scale_target(target);
    let t = Template::parse_scale(
        "{{ Name }} {{ Namespace }} {{ Index }} {{ AddCIDR .cidr Index }} {{ AddIP .ip Index }} {{ AddCIDR \"fd00::/120\" 2 }}",
    )
    .unwrap();
    let mut out = String::new();
    t.render(
        &json!({"cidr": "10.0.0.1/24", "ip": "10.0.0.254"}),
        &mut host,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, "n-000003 ns 3 10.0.3.1/24 10.0.1.1 fd00::200/120");
    // Outside kwokctl scale there is no object to name: a render error, not a panic.
    let err = {
        let mut out = String::new();
        t.render(&json!({}), &mut FixedHost::new(Timestamp::UNIX_EPOCH), &mut out)
            .unwrap_err()
            .to_string()
    };
    assert!(err.contains("only kwokctl scale templates"), "{err}");
    let bad = Template::parse_scale("{{ AddCIDR \"10.0.0.1\" 1 }}").unwrap();
    let err = bad
        .render(&json!({}), &mut host, &mut String::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid CIDR address: 10.0.0.1"), "{err}");
    let over = Template::parse_scale("{{ AddIP \"255.255.255.255\" 1 }}").unwrap();
    assert!(over.render(&json!({}), &mut host, &mut String::new()).is_err());
}

// ===== sprig v3 families (outputs recorded from sprig v3.3.0 where they agree) =====

#[test]
fn sprig_encodings_regexes_and_sequences_should_print_as_in_sprig() {
    let cases = [
        (r#"{{ "hello" | b64enc }}"#, "aGVsbG8="),
        (
            r#"{{ "aGVsbG8=" | b64dec }} {{ "hello" | b32enc | b32dec }}"#,
            "hello hello",
        ),
        (
            r#"{{ "aGV$bG8=" | b64dec }}"#,
            "illegal base64 data at input byte 3",
        ),
        (r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}"#, "-W-xxW-"),
        (r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}"#, "---"),
        (
            r#"{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}"#,
            "-${1}-${1}-",
        ),
        (r#"{{ regexFindAll "[2,4,6,8]" "123456789" -1 }}"#, "[2 4 6 8]"),
        (r#"{{ regexFind "[a-zA-Z][1-9]" "abcd1234" }}"#, "d1"),
        (
            r#"{{ regexMatch "^[a-z]+$" "abc" }} {{ regexMatch "[" "abc" }}"#,
            "true false",
        ),
        (r#"{{ regexSplit "z+" "pizza" -1 }}"#, "[pi a]"),
        (r#"{{ regexQuoteMeta "1.2.3[x]" }}"#, r"1\.2\.3\[x\]"),
        (
            "{{ until 3 }} {{ untilStep 3 6 2 }} {{ until -3 }}",
            "[0 1 2] [3 5] [0 -1 -2]",
        ),
        ("{{ range $i := until 3 }}{{ $i }},{{ end }}", "0,1,2,"),
        (
            "{{ seq 5 }}|{{ seq 10 -2 0 }}|{{ seq 0 -2 10 }}",
            "1 2 3 4 5|10 8 6 4 2 0|",
        ),
        (
            r#"{{ semverCompare ">=1.2, <2" "1.5" }} {{ semverCompare "^1.2" "2.0.0" }}"#,
            "true false",
        ),
        (
            r#"{{ semverCompare "~1.2" "1.2.9" }} {{ semverCompare ">=1.2.3" "1.2.4-beta" }}"#,
            "true false",
        ),
        (r#"{{ semverCompare "<1 || >=3" "3.1.0" }}"#, "true"),
        (
            r#"{{ (semver "v1.2.3-alpha.1+build").Major }} {{ (semver "v1.2").Original }}"#,
            "1 v1.2",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, &json!({})), want, "{src}");
    }
}

#[test]
fn sprig_dates_should_read_the_host_clock_and_go_layouts() {
    let data = json!({"created": "2024-05-06T06:08:08Z"});
    let cases = [
        ("{{ now }}", "2024-05-06T07:08:09.12345Z"),
        (r#"{{ date "2006-01-02" now }}"#, "2024-05-06"),
        (
            r#"{{ now | date "Jan 2, 2006 at 3:04pm (MST)" }}"#,
            "May 6, 2024 at 7:08am (UTC)",
        ),
        (
            r#"{{ toDate "2006-01-02" "2017-12-31" | date "02/01/2006" }}"#,
            "31/12/2017",
        ),
        (r#"{{ toDate "2006-01-02" "bad" }}"#, "0001-01-01T00:00:00Z"),
        (
            r#"{{ toDate "2006-01-02T15:04:05Z07:00" "2017-12-31T10:11:12+02:00" | unixEpoch }}"#,
            "1514707872",
        ),
        (r#"{{ now | dateModify "-1.5h" | htmlDate }}"#, "2024-05-06"),
        (
            r#"{{ dateInZone "2006-01-02 15:04 MST" 1700000000 "UTC" }}"#,
            "2023-11-14 22:13 UTC",
        ),
        (
            "{{ .created | ago }} {{ duration \"95\" }} {{ durationRound \"400h\" }}",
            "1h0m1s 1m35s 16d",
        ),
        ("{{ now | toJson }}", r#""2024-05-06T07:08:09.12345Z""#),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, &data), want, "{src}");
    }
    assert_eq!(
        render_err(r#"{{ mustToDate "2006-01-02" "2017-13-31" }}"#, &data),
        "line 1: error calling mustToDate: parsing time \"2017-13-31\": month out of range"
    );
}

#[test]
fn sprig_random_functions_should_draw_from_the_host() {
    let out = render(
        "{{ randAlphaNum 8 }} {{ randNumeric 4 }} {{ randInt 10 20 }} {{ uuidv4 }}",
        &json!({}),
    );
    // FixedHost's sequence is seeded: the same template renders the same text.
    assert_eq!(
        out,
        render(
            "{{ randAlphaNum 8 }} {{ randNumeric 4 }} {{ randInt 10 20 }} {{ uuidv4 }}",
            &json!({})
        )
    );
    let parts: Vec<&str> = out.split(' ').collect();
    assert!(
        parts[0].len() == 8 && parts[0].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{out}"
    );
    assert!(
        parts[1].len() == 4 && parts[1].bytes().all(|b| b.is_ascii_digit()),
        "{out}"
    );
    assert!((10..20).contains(&parts[2].parse::<i64>().unwrap()), "{out}");
    assert_eq!(parts[3].len(), 36, "{out}");
    assert_eq!(
        render_err("{{ randInt 5 5 }}", &json!({})),
        "line 1: error calling randInt: invalid argument to Intn"
    );
}

#[test]
fn functions_sprig_lacks_should_stay_parse_errors() {
    for src in ["{{ uuidv7 }}", "{{ regexp \"a\" }}", "{{ dateAdd now }}"] {
        let err = Template::parse(src).unwrap_err().to_string();
        assert!(err.ends_with("not defined"), "{src}: {err}");
    }
}

/// `render_value` (straight to tokens for planned templates) against printing the YAML
/// and reading it back, which is what it must equal.
fn assert_same_as_text_path(src: &str, data: &Value) {
    let template = Template::parse(src).unwrap_or_else(|e| panic!("{e}: {src}"));
    let direct = template.render_value(data, &mut host());
    let mut text = String::new();
    let via_text = template
        .render(data, &mut host(), &mut text)
        .and_then(|()| super::yaml::to_json(&text));
    // The document a patch is written from, as the JSON text a stage sends.
    let node = template
        .render_node(data, &mut host(), |node| {
            let mut json = String::new();
            node.write_json(&mut json);
            json
        })
        .map(|json| serde_json::from_str::<Value>(&json).expect("reads back"));
    assert_eq!(
        node.as_ref().map_err(ToString::to_string),
        direct.as_ref().map_err(ToString::to_string),
        "as a node\ntemplate:\n{src}\ndata: {data}"
    );
    // As JSON text: a map's key order counts too (`Value`'s equality ignores it).
    let as_text = |v: Result<Value, super::Error>| v.map(|v| v.to_string()).map_err(|e| e.to_string());
    assert_eq!(
        as_text(direct),
        as_text(via_text),
        "template:\n{src}\ndata: {data}\nprinted:\n{text}"
    );
}

/// Every `statusTemplate` and `template` string in a catalog set.
fn catalog_templates() -> Vec<String> {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("statusTemplate" | "template", Value::String(s)) => out.push(s.clone()),
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(l) => l.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for set in crate::catalog::SETS {
        let text = crate::catalog::set(set).unwrap();
        for doc in text.split("\n---\n") {
            let doc: Value = serde_saphyr::from_str(doc).unwrap();
            collect(&doc, &mut out);
        }
    }
    out
}

#[test]
fn render_value_should_match_the_text_path_for_every_catalog_template() {
    let containers = json!([{"name": "app", "image": "busybox"}, {"name": "side", "image": "nginx:1"}]);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1",
                     "creationTimestamp": "2024-05-06T07:00:00Z",
                     "labels": {"app": "x"}, "annotations": {"a": "1"},
                     "ownerReferences": [{"kind": "Job", "name": "j"}]},
        "spec": {"nodeName": "node-0", "containers": containers,
                 "initContainers": [{"name": "init", "image": "i"},
                                    {"name": "sidecar", "image": "s", "restartPolicy": "Always"}],
                 "readinessGates": [{"conditionType": "example.com/gate"}]},
        "status": {"phase": "Pending", "startTime": "2024-05-06T07:00:01Z",
                   "conditions": [{"type": "PodScheduled", "status": "True"}]}
    });
    let bare_pod = json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c"}]}});
    let host_network = json!({"metadata": {"name": "h", "namespace": "kube-system", "uid": "u-2"},
                              "spec": {"nodeName": "node-1", "hostNetwork": true, "containers": containers}});
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-0", "creationTimestamp": "2024-05-06T07:00:00Z",
                     "labels": {"kubernetes.io/arch": "arm64", "type": "kwok"},
                     "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {"podCIDR": "10.0.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]}
    });
    let filled_node = json!({
        "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.1.2.3"}],
                   "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "nvidia.com/gpu": "8"},
                   "nodeInfo": {"architecture": "amd64", "kubeletVersion": "v1.30.0"},
                   "conditions": [{"type": "Ready", "status": "False", "reason": "x: y"}]}
    });
    let objects = [
        pod,
        bare_pod,
        host_network,
        node,
        filled_node,
        json!({}),
        json!(null),
    ];
    let templates = catalog_templates();
    assert!(templates.len() > 20, "found {} templates", templates.len());
    for src in &templates {
        for data in &objects {
            assert_same_as_text_path(src, data);
        }
    }
}

#[test]
fn render_value_should_match_the_text_path_for_lines_tokens_cannot_tell() {
    let data = json!({
        "a": "x", "colon": "k: v", "hash": "#c", "empty": "", "dash": "- i", "space": " s",
        "quoted": "\"q\"", "n": 5, "f": 1.5, "t": true, "nil": null, "map": {"b": [1, 2], "c": "d"},
        "list": ["p", "q"], "multi": "l1\nl2", "odd": "tab\there \u{2028} é \u{7f} \u{1} <&>",
        "pipe": "|", "key": "dyn", "doc": "--- a", "dots": "... b", "pct": "%p",
        "flat": {"cpu": "32", "memory": "256Gi", "on": "off", "e": "1e3", "inf": ".inf", "k: v": "[x]"},
        "empty_map": {}
    });
    let templates = [
        "name: pre-{{ .a }}-post\n",
        "{{ .key }}: v\nother: {{ .a }}\n",
        "a: {{ if .t }}1{{ else }}2{{ end }}\nb: {{ if .nil }}x{{ end }}\n",
        "items:\n{{ YAML .map 1 }}\nafter: 1\n",
        "items:\n{{ YAML .list 0 }}",
        "items:\n{{ YAML .flat 1 }}\nafter: 1\n",
        "items: {{ YAML .flat 1 }}\nafter: 1\n",
        "- items:\n{{ YAML .flat 2 }}{{ .a }}\n",
        "items:\n{{ with .flat }}\n{{ YAML . 1 }}\n{{ else }}\n  none: 1\n{{ end }}\nafter: 1\n",
        "items:\n  {{ YAML .flat 1 }}\n",
        "items:\n{{ YAML .empty_map 1 }}\n",
        "m:\n  {{ range $k, $v := .map }}{{ $k }}: {{ $v | Quote }}\n  {{ end }}\n",
        "s: |\n  {{ .a }}\n  more\nt: 1\n",
        "s: |\n  {{ .multi }}\n",
        "c: {{ .colon }}\nh: {{ .hash }}\ne: {{ .empty }}\nd: {{ .dash }}\nsp: {{ .space }}\nq: {{ .quoted }}\n",
        "n: {{ .n }}\nf: {{ .f }}\nt: {{ .t }}\nnil: {{ .nil }}\nmissing: {{ .nope }}\nmap: {{ .map }}\n",
        "qn: {{ .n | Quote }}\nqm: {{ .map | Quote }}\nqnil: {{ .nil | Quote }}\nqodd: {{ .odd | Quote }}\n",
        "odd: {{ .odd }}\npipe: {{ .pipe }}\nmulti: {{ .multi }}\n",
        "{{- range .list }}\n- {{ . }}\n{{- end }}\n",
        "{{ .a }}",
        "{{ .n }}",
        "",
        "   \n\n",
        "two: {{ .a }} {{ .a }}\nnext: {{ .a }}  # comment\n",
        "{{ define \"row\" }}- name: {{ .name | Quote }}\n{{ end }}rows:\n{{ template \"row\" dict \"name\" .a }}{{ template \"row\" dict \"name\" .n }}",
        "- - {{ .a }}\n  - {{ .n }}\n- k: {{ .t }}\n  l:\n  - 1\n",
        "a:\n  b: {{ .a }}\n   c: {{ .a }}\n",
        "--- {{ .a }}\n",
        "a: {{ .a }}\n\tb: 1\n",
        "k: [{{ .a }}]\n",
        "k: {}\nl: []\nm: {{ \"{}\" }}\n",
        "{{ .doc }}\n",
        "{{ .dots }}\n",
        "{{ .pct }}\n",
        "a: {{ .doc }}\nb: {{ .dots }}\nc: {{ .pct }}\n",
    ];
    for src in templates {
        assert_same_as_text_path(src, &data);
    }
}

/// Random templates built from the pieces Stage templates are made of (indentation,
/// dashes, keys, quoted and printed values, `if`/`range` around lines and inside them,
/// comments, block scalars): the direct path must read each as the text path does.
#[test]
fn render_value_should_match_the_text_path_for_random_templates() {
    use rand::{Rng, SeedableRng, rngs::SmallRng, seq::IndexedRandom};
    const ITERATIONS: usize = 3000;
    let data = json!({
        "s": "x", "n": 5, "t": true, "nil": null, "colon": "a: b", "hash": "#h", "e": "",
        "multi": "m1\nm2", "list": ["p", "q"], "map": {"k": "v", "l": [1]}, "sp": " s ",
        "dash": "- d", "num": "10", "quote": "'q'",
        "flat": {"cpu": "32", "memory": "256Gi", "b": "true", "c": "x: y", "d": "#", "n": "null",
                 "f": "1.5", "t": "~", "s": " s", "q": "'q'", "k: v": "-", "h": "0x10", "y": "yes"}
    });
    let values = [
        "{{ .s }}",
        "{{ .n }}",
        "{{ .t }}",
        "{{ .nil }}",
        "{{ .colon }}",
        "{{ .hash }}",
        "{{ .e }}",
        "{{ .multi }}",
        "{{ .map }}",
        "{{ .sp }}",
        "{{ .dash }}",
        "{{ .num }}",
        "{{ .quote }}",
        "{{ .s | Quote }}",
        "{{ .n | Quote }}",
        "{{ .map | Quote }}",
        "{{ .multi | Quote }}",
        "{{ .missing }}",
        "{{ YAML .map 1 }}",
        "{{ YAML .list 0 }}",
        "{{ YAML .flat 1 }}",
        "{{ YAML .flat 2 }}",
        "{{ YAML .flat }}",
        "plain",
        "\"lit\"",
        "{}",
        "[]",
        "|",
        "1.5",
        "~",
        "{{ .s }}-{{ .n }}",
    ];
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..ITERATIONS {
        let mut src = String::new();
        for _ in 0..rng.random_range(1..8) {
            let indent = " ".repeat(2 * rng.random_range(0..3));
            let mut line = indent.clone();
            for _ in 0..rng.random_range(0..3) {
                line.push_str("- ");
            }
            if rng.random_bool(0.7) {
                line.push_str(["a", "b", "c", "{{ .s }}"].choose(&mut rng).unwrap());
                line.push_str(": ");
            }
            if rng.random_bool(0.8) {
                line.push_str(values.choose(&mut rng).unwrap());
            }
            if rng.random_bool(0.1) {
                line.push_str(" # note");
            }
            match rng.random_range(0..10) {
                0 => src.push_str(&format!(
                    "{indent}{{{{ if .t }}}}\n{line}\n{indent}{{{{ end }}}}\n"
                )),
                1 => src.push_str(&format!("{{{{ range .list }}}}\n{line}\n{{{{ end }}}}\n")),
                2 => src.push_str(&format!("{line}{{{{ if .nil }}}} x{{{{ end }}}}\n")),
                3 => src.push_str(&format!("{{{{- if .t }}}}\n{line}\n{{{{- end }}}}\n")),
                4 => src.push_str(&format!("{line}\n\n")),
                _ => src.push_str(&format!("{line}\n")),
            }
        }
        assert_same_as_text_path(&src, &data);
    }
}
