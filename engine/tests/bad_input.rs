//! Bad Stage input: each class of mistake is one line naming the file, the line, the
//! stage, the field and the reason; a template that fails for one object fails its
//! stage with a [`RenderError`] naming the stage, field and cause, never a panic.

mod common;

use common::now;
use kwok_engine::{
    effect::{Body, Effect},
    error::{LoadError, RenderCause, RenderError},
    host::{FixedHost, Host, PoolExhausted},
    lifecycle::Lifecycles,
    stage::load::Documents,
};
use serde_json::json;

/// A file whose first document is a `KwokConfiguration` (lines 1–3) and whose second,
/// starting on line 5, is a Pod stage `my-stage` with `spec_tail` appended under `spec:`.
/// Lines of the stage: 5 apiVersion … 9 spec, 10 resourceRef … 12 kind: Pod, 13 the tail.
fn stage_yaml(spec_tail: &str) -> String {
    format!(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {{}}\n---\n\
         apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: my-stage\n\
         spec:\n  resourceRef:\n    apiGroup: v1\n    kind: Pod\n{spec_tail}"
    )
}

/// The one-line error of loading and compiling `text` as `stages.yaml`.
fn error(text: &str) -> String {
    let mut docs = Documents::default();
    let err: LoadError = match docs.parse("stages.yaml", text) {
        Err(e) => e,
        Ok(()) => Lifecycles::compile(&docs).expect_err("the stage is refused"),
    };
    let line = err.to_string();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    line
}

/// The error of a stage with `spec_tail`.
fn spec_error(spec_tail: &str) -> String {
    error(&stage_yaml(spec_tail))
}

#[test]
fn stage_yaml_without_a_mistake_should_load() {
    let mut docs = Documents::default();
    docs.parse("stages.yaml", &stage_yaml("  selector: {}\n"))
        .unwrap();
    Lifecycles::compile(&docs).unwrap();
    assert_eq!(docs.others.len(), 1, "the KwokConfiguration");
}

// ===== refused while parsing: the exact line of the field =====

#[test]
fn unknown_field_should_name_its_line_and_path() {
    assert_eq!(
        spec_error("  selector:\n    matchLabelz: {}\n"),
        "stages.yaml:14: stage \"my-stage\": spec.selector.matchLabelz: unknown field `matchLabelz`, \
         expected one of `matchLabels`, `matchAnnotations`, `matchExpressions`"
    );
}

#[test]
fn wrong_type_should_name_its_line_and_path() {
    assert_eq!(
        spec_error("  selector: {}\n  weight: heavy\n"),
        "stages.yaml:14: stage \"my-stage\": spec.weight: invalid type: string \"heavy\", expected i64"
    );
}

#[test]
fn invalid_yaml_should_be_a_one_line_syntax_error_with_its_line() {
    assert_eq!(
        spec_error("  selector: [\n"),
        "stages.yaml:13: unclosed bracket '['"
    );
}

// ===== refused while compiling: the line the stage document starts on =====

#[test]
fn bad_jq_in_a_selector_should_name_the_expression() {
    assert_eq!(
        spec_error(
            "  selector:\n    matchExpressions:\n    - key: '.status.phase'\n      operator: Exists\n    - key: '.status.phase | ('\n      operator: Exists\n"
        ),
        "stages.yaml:5: stage \"my-stage\": spec.selector.matchExpressions[1].key: \
         expected closing parenthesis, found end of input"
    );
}

#[test]
fn bad_jq_in_duration_from_should_name_the_expression() {
    assert_eq!(
        spec_error(
            "  selector: {}\n  delay:\n    durationFrom:\n      expressionFrom: '.metadata.annotations[\"x\"'\n"
        ),
        "stages.yaml:5: stage \"my-stage\": spec.delay.durationFrom.expressionFrom: \
         expected closing bracket, found end of input"
    );
}

#[test]
fn bad_template_syntax_should_name_the_status_template() {
    assert_eq!(
        spec_error(
            "  selector: {}\n  next:\n    statusTemplate: |\n      phase: Running\n      {{ if .status }}\n"
        ),
        "stages.yaml:5: stage \"my-stage\": spec.next.statusTemplate: line 2: \
         unexpected EOF: missing {{end}} for {{if}}"
    );
}

#[test]
fn unknown_template_function_should_name_the_function() {
    assert_eq!(
        spec_error("  selector: {}\n  next:\n    statusTemplate: '{{ NoSuchFunc .status }}'\n"),
        "stages.yaml:5: stage \"my-stage\": spec.next.statusTemplate: line 1: \
         function \"NoSuchFunc\" not defined"
    );
}

#[test]
fn negative_delay_should_be_refused() {
    assert_eq!(
        spec_error("  selector: {}\n  delay:\n    durationMilliseconds: -5\n"),
        "stages.yaml:5: stage \"my-stage\": spec.delay.durationMilliseconds: must not be negative, got -5"
    );
    assert_eq!(
        spec_error("  selector: {}\n  delay:\n    jitterDurationMilliseconds: -1\n"),
        "stages.yaml:5: stage \"my-stage\": spec.delay.jitterDurationMilliseconds: must not be negative, got -1"
    );
}

#[test]
fn unknown_operator_should_list_the_supported_ones() {
    assert_eq!(
        spec_error(
            "  selector:\n    matchExpressions:\n    - key: '.status.phase'\n      operator: Within\n      values: [Running]\n"
        ),
        "stages.yaml:5: stage \"my-stage\": spec.selector.matchExpressions[0].operator: \
         operator \"Within\" is not supported (use In, NotIn, Exists or DoesNotExist)"
    );
}

#[test]
fn in_without_values_should_be_refused() {
    assert_eq!(
        spec_error("  selector:\n    matchExpressions:\n    - key: '.status.phase'\n      operator: In\n"),
        "stages.yaml:5: stage \"my-stage\": spec.selector.matchExpressions[0].values: \
         must not be empty for operator In"
    );
}

#[test]
fn unknown_patch_type_should_list_the_known_ones() {
    assert_eq!(
        spec_error("  selector: {}\n  steps:\n  - patch:\n      type: xml\n      template: 'a: b'\n"),
        "stages.yaml:5: stage \"my-stage\": spec.steps[0].patch.type: \
         unknown patch type \"xml\" (json, merge or strategic)"
    );
    assert_eq!(
        spec_error("  selector: {}\n  next:\n    patches:\n    - type: yaml\n      template: 'a: b'\n"),
        "stages.yaml:5: stage \"my-stage\": spec.next.patches[0].type: \
         unknown patch type \"yaml\" (json, merge or strategic)"
    );
}

/// Upstream's rules, not mistakes: `steps` win over `next`; a step with several
/// actions runs them all, event first; `delete: false` does nothing.
#[test]
fn steps_beside_next_and_several_actions_per_step_should_load_as_upstream() {
    let text = stage_yaml(
        "  selector: {}\n  next:\n    statusTemplate: 'phase: X'\n  steps:\n  \
         - delete: true\n    event:\n      type: Normal\n      reason: Gone\n  - delete: false\n",
    );
    let mut docs = Documents::default();
    docs.parse("stages.yaml", &text).unwrap();
    let lifecycles = Lifecycles::compile(&docs).unwrap();
    let stage = &lifecycles.for_kind(None, "Pod").unwrap().stages()[0];
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}});
    let effects = stage.render(&pod, &mut FixedHost::new(now())).unwrap();
    assert!(
        matches!(effects.as_slice(), [Effect::Event { reason, .. }, Effect::Delete] if reason == "Gone"),
        "{effects:?}"
    );
}

#[test]
fn an_empty_step_and_an_unknown_apply_type_should_be_refused() {
    assert_eq!(
        spec_error("  selector: {}\n  steps:\n  - {}\n"),
        "stages.yaml:5: stage \"my-stage\": spec.steps[0]: \
         a step sets none of patch, event, finalizers, delete, apply"
    );
    assert_eq!(
        spec_error("  selector: {}\n  steps:\n  - apply:\n      type: json\n      template: 'x: 1'\n"),
        "stages.yaml:5: stage \"my-stage\": spec.steps[0].apply.type: \
         unknown apply type \"json\" (apply, merge or strategic)"
    );
}

#[test]
fn wrong_api_version_should_be_refused() {
    let text = stage_yaml("  selector: {}\n").replace("kwok.x-k8s.io/v1alpha1", "kwok.x-k8s.io/v1");
    assert_eq!(
        error(&text),
        "stages.yaml:5: stage \"my-stage\": apiVersion: must be kwok.x-k8s.io/v1alpha1, got \"kwok.x-k8s.io/v1\""
    );
}

#[test]
fn the_first_bad_stage_of_several_files_should_be_reported_with_its_own_file() {
    let mut docs = Documents::default();
    docs.parse("a.yaml", &stage_yaml("  selector: {}\n")).unwrap();
    docs.parse("b.yaml", &stage_yaml("  delay:\n    durationMilliseconds: -1\n"))
        .unwrap();
    let err = Lifecycles::compile(&docs).unwrap_err().to_string();
    assert_eq!(
        err,
        "b.yaml:5: stage \"my-stage\": spec.delay.durationMilliseconds: must not be negative, got -1"
    );
}

// ===== failing at render time =====

fn render_with(
    template: &str,
    obj: &serde_json::Value,
    host: &mut dyn Host,
) -> Result<Vec<Effect>, RenderError> {
    let text = stage_yaml(&format!(
        "  selector: {{}}\n  next:\n    event:\n      type: Normal\n      reason: Tested\n      message: tested\n    statusTemplate: '{}'\n",
        template.replace('\'', "''")
    ));
    let lcs = common::compile_text("stages.yaml", &text);
    let stage = &lcs.for_kind(None, "Pod").unwrap().stages()[0];
    stage.render(obj, host)
}

fn render(template: &str, obj: &serde_json::Value) -> Result<Vec<Effect>, RenderError> {
    render_with(template, obj, &mut FixedHost::new(now()))
}

#[test]
fn a_template_that_fails_for_one_object_should_fail_the_whole_stage_naming_stage_and_field() {
    let template = "ready: {{ index .spec.containers 1 }}";
    let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let one = json!({"spec": {"containers": [{"name": "a"}]}});
    assert!(matches!(
        render(template, &two).unwrap()[..],
        [Effect::Event { .. }, Effect::Patch { .. }]
    ));
    let err = render(template, &one).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage \"my-stage\": spec.next.statusTemplate: line 1: error calling index: \
         index out of range: 1 (length 1)",
        "the event before the failed step is not sent either"
    );
    assert!(matches!(err.cause, RenderCause::Template(_)), "{err:?}");
    assert!(!err.is_temporary(), "fails the same way until the object changes");
}

#[test]
fn a_status_patch_the_merge_refuses_should_fail_at_render_even_when_it_surely_changes_the_pod() {
    // `phase` alone would change the pod, so the patch could go out as text unchecked;
    // its condition lacks the merge key `type`, and merging it into the pod's conditions
    // fails (as in the apiserver): that stays a render error.
    let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}});
    // (Flow style: the helper puts the template on one line.)
    let good = "{phase: Running, conditions: [{type: Ready, status: \"True\"}]}";
    let rendered = render(good, &pod).unwrap();
    let [_, Effect::Patch { body, .. }] = &rendered[..] else {
        panic!("{rendered:?}")
    };
    assert!(
        matches!(body, Body::Json(_)),
        "a patch that surely changes the pod is text"
    );
    assert_eq!(
        *body,
        json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    );
    let ready = json!({"metadata": {"name": "p"},
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}});
    let err = render("{phase: Running, conditions: [{status: \"True\"}]}", &ready).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not contain declared merge key \"type\""),
        "{err}"
    );
    assert!(matches!(err.cause, RenderCause::Patch(_)), "{err:?}");
}

/// A host whose pod IP pools are full.
struct FullPools(FixedHost);

impl Host for FullPools {
    fn now(&self) -> jiff::Timestamp {
        self.0.now()
    }
    fn start_time(&self) -> jiff::Timestamp {
        self.0.start_time()
    }
    fn version(&self) -> &str {
        self.0.version()
    }
    fn node_name(&self) -> &str {
        self.0.node_name()
    }
    fn node_ip(&self) -> &str {
        self.0.node_ip()
    }
    fn node_port(&self) -> u16 {
        self.0.node_port()
    }
    fn pod_ip(&mut self) -> Result<String, PoolExhausted> {
        Err(PoolExhausted {
            pool: "--cidr 10.0.0.1/30".into(),
        })
    }
    fn node_ip_with(&self, node_name: &str) -> String {
        self.0.node_ip_with(node_name)
    }
    fn pod_ip_with(&mut self, _: &str, _: &str, _: &str, _: &str) -> Result<String, PoolExhausted> {
        self.pod_ip()
    }
}

#[test]
fn a_full_ip_pool_should_be_a_temporary_failure_a_caller_can_match() {
    let mut host = FullPools(FixedHost::new(now()));
    let obj = json!({"metadata": {"uid": "u"}, "spec": {"nodeName": "n"}});
    for (template, func) in [
        ("podIP: {{ PodIP }}", "PodIP"),
        (
            "\n\npodIP: {{ PodIPWith .spec.nodeName false .metadata.uid \"p\" \"ns\" }}",
            "PodIPWith",
        ),
        (
            "{{ with .spec }}podIPs: {{ PodIPsWith .nodeName false \"u\" \"p\" \"ns\" | toJson }}{{ end }}",
            "PodIPsWith",
        ),
    ] {
        let err = render_with(template, &obj, &mut host).unwrap_err();
        let RenderCause::PoolExhausted {
            func: got, exhausted, ..
        } = &err.cause
        else {
            panic!("{template}: {err:?}");
        };
        assert_eq!((*got, exhausted.pool.as_str()), (func, "--cidr 10.0.0.1/30"));
        assert!(err.is_temporary());
    }
    assert_eq!(
        render_with(
            "\n\npodIP: {{ PodIPWith .spec.nodeName false .metadata.uid \"p\" \"ns\" }}",
            &obj,
            &mut host
        )
        .unwrap_err()
        .to_string(),
        // (YAML folds the two line breaks of the quoted template into one.)
        "stage \"my-stage\": spec.next.statusTemplate: line 2: error calling PodIPWith: \
         no free IP above --cidr 10.0.0.1/30"
    );
}

#[test]
fn a_json_patch_that_does_not_apply_should_be_a_patch_failure_naming_its_template() {
    let text = stage_yaml(
        "  selector: {}\n  next:\n    patches:\n    - type: json\n      template: '[{\"op\": \"test\", \"path\": \"/x\", \"value\": 1}]'\n",
    );
    let lcs = common::compile_text("stages.yaml", &text);
    let stage = &lcs.for_kind(None, "Pod").unwrap().stages()[0];
    let err = stage
        .render(&json!({"x": 2}), &mut FixedHost::new(now()))
        .unwrap_err();
    assert!(matches!(err.cause, RenderCause::Patch(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("stage \"my-stage\": spec.next.patches[0].template: failed to apply JSON patch: "),
        "{err}"
    );
}

#[test]
fn render_errors_should_be_one_line_for_every_kind_of_failure() {
    let obj = json!({"metadata": {"labels": {"a": "b"}}, "spec": {}, "status": {"phase": "Running"}});
    for template in [
        "phase: {{ .status.phase.foo }}",
        "n: {{ len .spec.nodeName }}",
        "a: {{ div 1 0 }}",
        "a: {{ index .metadata.labels 3 }}",
        "{{ printf \"%s\" }}: [",
        "a: [\n  b: }",
    ] {
        let message = render(template, &obj).unwrap_err().to_string();
        assert!(
            message.starts_with("stage \"my-stage\": spec.next.statusTemplate: "),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{template}: {message}");
    }
}
