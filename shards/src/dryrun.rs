//! `kwok stage run`: shows what Stages do to one object, without a cluster.

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use kwok_engine::{
    delay::Range,
    effect::Effect,
    host::FixedHost,
    lifecycle::{Lifecycle, Lifecycles},
    listing,
    simulate::{self, End},
};
use rand::{SeedableRng, rngs::StdRng};

use crate::flags::{Output, RunArgs};
use serde_json::Value;

/// The clock of upstream's stage tests.
const GOLDEN_NOW: &str = "2006-01-02T15:04:05Z";

/// Runs the dry run and returns the report text.
pub fn run(args: &RunArgs) -> Result<String> {
    let lifecycles = load_stages(&args.config)?;
    let text = std::fs::read_to_string(&args.object)
        .with_context(|| format!("failed to read --object {}", args.object.display()))?;
    let obj: Value = serde_saphyr::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            args.object.display(),
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let Some(kind) = obj.get("kind").and_then(Value::as_str).map(str::to_owned) else {
        bail!("{}: the object has no kind", args.object.display());
    };
    let Some(lifecycle) = lifecycles.for_kind(None, &kind) else {
        bail!("no stage applies to kind {kind:?}");
    };
    let golden_now = || GOLDEN_NOW.parse().expect("a valid time");
    let now = args
        .now
        .or_else(|| args.golden.then(golden_now))
        .or_else(|| creation_time(&obj))
        .unwrap_or_else(Timestamp::now);
    let mut host = FixedHost::new(now);
    let mut rng = StdRng::seed_from_u64(args.seed);
    if args.all {
        if args.output == Output::Text {
            return list_matching(lifecycle, &obj, &mut host);
        }
        let (mut host, defaults) = match args.golden {
            true => (host.with_placeholders(), listing::Defaults::UpstreamTests),
            false => (host, listing::Defaults::Controller),
        };
        let list = listing::list(lifecycle, &obj, now, &mut host, defaults)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.object.display()))?;
        return Ok(match args.output {
            Output::Json => format!("{}\n", serde_json::to_string_pretty(&list)?),
            _ => kwok_engine::template::to_go_yaml(&list),
        });
    }
    let (steps, end) = simulate::run(lifecycle, &kind, obj, now, args.steps, &mut host, &mut rng);
    let text = report(&steps, &end);
    // A stage that fails to render is a broken Stage: say so by the exit code too.
    if let End::Failed(error) = &end {
        print!("{text}");
        bail!("{}: {error}", args.object.display());
    }
    Ok(text)
}

fn load_stages(paths: &[PathBuf]) -> Result<Lifecycles> {
    crate::settings::load_stages(crate::settings::read_documents(paths)?, false)
}

fn creation_time(obj: &Value) -> Option<Timestamp> {
    obj.pointer("/metadata/creationTimestamp")?.as_str()?.parse().ok()
}

fn report(steps: &[simulate::Step], end: &End) -> String {
    let mut out = String::new();
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "# step {}: stage {:?} after {} (at {})",
            i + 1,
            step.stage,
            human(step.delay),
            step.at
        );
        for effect in &step.effects {
            let _ = writeln!(out, "#   {}", describe(effect));
        }
        match &step.object {
            Some(obj) => out.push_str(&yaml(obj)),
            None => out.push_str("# (deleted)\n"),
        }
        out.push_str("---\n");
    }
    let why = match end {
        End::NoMatch => "no stage matches",
        End::Deleted => "the object was deleted",
        End::Limit => "the step limit was reached",
        End::Failed(_) => "the next stage failed to render",
    };
    let _ = writeln!(out, "# stopped after {} step(s): {why}", steps.len());
    out
}

fn list_matching(lifecycle: &Lifecycle, obj: &Value, host: &mut FixedHost) -> Result<String> {
    let mut out = String::new();
    let mut any = false;
    for stage in lifecycle.possible(obj) {
        any = true;
        let weight = stage.weight(obj).map_or("none".into(), |w| w.to_string());
        let delay = match stage.delay_range(obj, host.now) {
            None => "none".into(),
            Some(Range::Exactly(d)) => format!("{d:#}"),
            Some(Range::Between(from, to)) => format!("{from:#} to {to:#}"),
        };
        let _ = writeln!(out, "stage {:?} weight {weight} delay {delay}", stage.name());
        for effect in stage.render(obj, host)? {
            let _ = writeln!(out, "  - {}", describe(&effect));
            let body = match &effect {
                Effect::Patch { body, .. } => Some(body.to_value()),
                Effect::Apply { body, .. } => Some(std::borrow::Cow::Borrowed(body)),
                _ => None,
            };
            if let Some(body) = body {
                for line in yaml(&body).lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        if stage.immediate_next_stage() {
            out.push_str("  - immediately match again\n");
        }
    }
    if !any {
        out.push_str("no stage matches\n");
    }
    Ok(out)
}

fn describe(effect: &Effect) -> String {
    match effect {
        Effect::Event {
            type_,
            reason,
            message,
        } => format!("event {type_} {reason}: {message}"),
        Effect::Finalizers { add, remove } => format!("finalizers add {add:?} remove {remove:?}"),
        Effect::Patch {
            subresource,
            ty,
            impersonate,
            ..
        } => format!(
            "patch {} ({ty:?}){}",
            subresource.as_deref().unwrap_or("object"),
            impersonate
                .as_deref()
                .map(|u| format!(" as {u}"))
                .unwrap_or_default()
        ),
        Effect::Apply { subresource, ty, .. } => format!(
            "apply {} ({})",
            subresource.as_deref().unwrap_or("object"),
            ty.content_type()
        ),
        Effect::Delete => "delete".into(),
    }
}

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
}

fn human(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: default\n  uid: u-1\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n  ownerReferences:\n  - {apiVersion: batch/v1, kind: Job, name: j, uid: j-1}\nspec:\n  nodeName: node-1\n  restartPolicy: Never\n  containers:\n  - {name: c, image: x}\n";

    fn args(dir: &tempfile::TempDir, object: &str, all: bool) -> RunArgs {
        let path = dir.path().join("obj.yaml");
        std::fs::write(&path, object).unwrap();
        RunArgs {
            config: vec![],
            object: path,
            now: None,
            seed: 1,
            steps: 10,
            all,
            output: Output::Text,
            golden: false,
        }
    }

    #[test]
    fn run_should_take_a_job_pod_through_the_default_stages_to_succeeded() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&args(&dir, POD, false)).unwrap();
        assert!(out.contains("# step 1: stage \"pod-ready\""), "{out}");
        assert!(out.contains("# step 2: stage \"pod-complete\""), "{out}");
        assert!(out.contains("phase: Succeeded"), "{out}");
        assert!(out.trim_end().ends_with("no stage matches"), "{out}");
    }

    #[test]
    fn all_should_list_matching_stages_with_weight_and_rendered_patch() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&args(&dir, POD, true)).unwrap();
        assert!(out.starts_with("stage \"pod-ready\" weight "), "{out}");
        assert!(out.contains("patch status (Strategic)"), "{out}");
        assert!(out.contains("phase: Running"), "{out}");
    }

    #[test]
    fn all_as_json_should_give_upstreams_listing_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(&dir, POD, true);
        a.output = Output::Json;
        let out: Value = serde_json::from_str(&run(&a).unwrap()).unwrap();
        assert_eq!(out["kind"], "Pod");
        assert_eq!(out["namespace"], "default");
        let stage = &out["stages"][0];
        assert_eq!(stage["stage"], "pod-ready", "{out}");
        assert_eq!(stage["next"][0]["kind"], "patch", "{out}");
        assert_eq!(stage["next"][0]["subresource"], "status", "{out}");
        assert_eq!(
            stage["next"][0]["type"], "application/strategic-merge-patch+json",
            "the controller's default for a Pod without --golden"
        );
        a.golden = true;
        let golden: Value = serde_json::from_str(&run(&a).unwrap()).unwrap();
        let data = &golden["stages"][0]["next"][0]["data"]["status"];
        assert_eq!(data["startTime"], "<Now>", "{golden}");
    }

    #[test]
    fn a_bad_stage_file_should_be_one_line_naming_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let stages = dir.path().join("s.yaml");
        let bad = "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: s}\nspec:\n  resourceRef: {kind: Pod}\n  selector: {}\n  delay: {durationMilliseconds: -5}\n";
        std::fs::write(&stages, bad).unwrap();
        let mut a = args(&dir, POD, false);
        a.config = vec![stages.clone()];
        let err = format!("{:#}", run(&a).unwrap_err());
        let expected = format!(
            "{}:1: stage \"s\": spec.delay.durationMilliseconds: must not be negative, got -5",
            stages.display()
        );
        assert_eq!(err, expected);
    }

    #[test]
    fn a_stage_that_fails_to_render_should_be_one_line_naming_stage_field_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let stages = dir.path().join("s.yaml");
        let bad = "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: s}\nspec:\n  resourceRef: {kind: Pod}\n  selector: {}\n  next:\n    statusTemplate: 'x: {{ index .spec.containers 3 }}'\n";
        std::fs::write(&stages, bad).unwrap();
        for all in [false, true] {
            let mut a = args(&dir, POD, all);
            a.config = vec![stages.clone()];
            let err = format!("{:#}", run(&a).unwrap_err());
            assert!(
                err.ends_with(
                    "stage \"s\": spec.next.statusTemplate: line 1: error calling index: \
                     index out of range: 3 (length 1)"
                ),
                "{err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}
