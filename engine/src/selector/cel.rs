//! CEL selector expressions (`cel: {expression}`), with `self` bound to the object.

use std::sync::Arc;

use cel::{Context, Program};
use serde_json::Value;

/// A compiled CEL expression that must evaluate to `true` for the object to match.
///
/// # Implementation
/// The program is parsed once and shared behind an `Arc`. Each evaluation converts the whole
/// object into CEL values and builds a fresh standard context, which costs microseconds for
/// a pod: prefer jq requirements on hot stages.
#[derive(Clone)]
pub(crate) struct Cel {
    program: Arc<Program>,
}

impl std::fmt::Debug for Cel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cel").finish_non_exhaustive()
    }
}

impl Cel {
    /// Parses `expression`; the error is the parser's message on one line.
    pub(crate) fn compile(expression: &str) -> Result<Self, String> {
        let program = Program::compile(expression).map_err(|e| one_line(&e.to_string()))?;
        Ok(Self {
            program: Arc::new(program),
        })
    }

    /// Whether the expression is `true` on `obj`; any other result or an error is `false`.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let Ok(object) = cel::to_value(obj) else {
            return false;
        };
        let mut ctx = Context::default();
        ctx.add_variable_from_value("self", object);
        matches!(self.program.execute(&ctx), Ok(cel::Value::Bool(true)))
    }
}

fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "status": {"phase": "Running", "restarts": 2}})
    }

    #[test]
    fn cel_should_match_when_the_expression_is_true() {
        let cel =
            Cel::compile(r#"self.status.phase == "Running" && self.metadata.labels.app == "web""#).unwrap();
        assert!(cel.matches(&pod()));
        assert!(Cel::compile("self.status.restarts > 1").unwrap().matches(&pod()));
        assert!(
            Cel::compile(r#"has(self.status.phase) && !has(self.metadata.deletionTimestamp)"#)
                .unwrap()
                .matches(&pod())
        );
    }

    #[test]
    fn cel_should_not_match_when_the_expression_is_false() {
        assert!(
            !Cel::compile(r#"self.status.phase == "Pending""#)
                .unwrap()
                .matches(&pod())
        );
    }

    #[test]
    fn cel_should_not_match_a_non_boolean_result() {
        assert!(!Cel::compile("self.status.phase").unwrap().matches(&pod()));
        assert!(!Cel::compile("1").unwrap().matches(&pod()));
    }

    #[test]
    fn cel_should_not_match_when_evaluation_fails() {
        assert!(!Cel::compile("self.status.missing == 1").unwrap().matches(&pod()));
        assert!(!Cel::compile("unknown_var").unwrap().matches(&pod()));
    }

    #[test]
    fn compile_should_report_syntax_errors_on_one_line() {
        let e = Cel::compile("self.status ==").unwrap_err();
        assert!(!e.is_empty() && !e.contains('\n'), "{e}");
    }

    #[test]
    fn cel_should_be_shareable_between_threads() {
        fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
        assert_send_sync_clone::<Cel>();
    }
}
