//! Chains of simple jq steps (`path | select(path == literal) | path`) run without jaq.
//!
//! KWOK's stages read conditions with `.status.conditions.[] | select( .type == "Ready" ) |
//! .status`; running that in jaq costs microseconds (the conditions are converted into jaq
//! values), walking it here costs nanoseconds.

use serde_json::Value;

use super::{
    QueryError,
    path::{Path, Visitor},
};

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A plain path.
    Path(Path),
    /// `select(path == literal)` (`equal`) or `select(path != literal)`, where `path` yields
    /// exactly one output and `literal` is a string, number, boolean or `null`.
    Select { path: Path, literal: Value, equal: bool },
}

/// Steps joined by `|`: each output of one step is the input of the next.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Pipeline {
    steps: Vec<Step>,
}

impl Pipeline {
    /// Reads the longest run of simple steps at the start of `expr`; returns them with the jq
    /// text left after them (`None` when the whole expression was read).
    ///
    /// # Implementation
    /// `expr` is cut at every `|` outside strings and brackets. `|` binds loosest in jq, and
    /// every step read so far is a complete term, so each cut is a real pipe: `A | B | C` is
    /// `A | (B | C)`, and the rest (`B | C`) can run on each output of `A`. Expressions with
    /// comments or string interpolation are not cut at all.
    pub(crate) fn parse(expr: &str) -> (Self, Option<&str>) {
        let mut steps = Vec::new();
        for (start, piece) in pipes(expr).unwrap_or_else(|| vec![(0, expr)]) {
            match Step::parse(piece) {
                Some(step) => steps.push(step),
                None => return (Self { steps }, Some(&expr[start..])),
            }
        }
        (Self { steps }, None)
    }

    /// Whether there are no steps (the pipeline is the identity).
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether the pipeline is a single plain path.
    #[cfg(test)]
    pub(crate) fn is_plain_path(&self) -> bool {
        matches!(self.steps.as_slice(), [Step::Path(_)])
    }

    /// The path, if the pipeline is one path with exactly one output.
    pub(crate) fn single_path(&self) -> Option<&Path> {
        match self.steps.as_slice() {
            [Step::Path(p)] if p.is_single() => Some(p),
            _ => None,
        }
    }

    /// Calls `out` on every output on `obj`, in jq order, stopping at the first error.
    pub(crate) fn visit(&self, obj: &Value, out: &mut Visitor<'_>) -> Result<(), QueryError> {
        run(&self.steps, obj, out)
    }
}

fn run(steps: &[Step], value: &Value, out: &mut Visitor<'_>) -> Result<(), QueryError> {
    let Some((first, rest)) = steps.split_first() else {
        return out(value);
    };
    match first {
        Step::Path(p) => p.visit(value, &mut |v| run(rest, v, out)),
        Step::Select { path, literal, equal } => {
            let mut keep = false;
            path.visit(value, &mut |v| {
                keep = jq_equal(v, literal) == *equal;
                Ok(())
            })?;
            if keep { run(rest, value, out) } else { Ok(()) }
        }
    }
}

/// jq's `==` between an output and a scalar literal: numbers compare by value (`1 == 1.0`).
fn jq_equal(v: &Value, literal: &Value) -> bool {
    match (v, literal) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => v == literal,
    }
}

impl Step {
    fn parse(piece: &str) -> Option<Self> {
        let piece = piece.trim();
        if let Some(inner) = piece.strip_prefix("select").map(str::trim_start) {
            return parse_select(inner.strip_prefix('(')?.strip_suffix(')')?);
        }
        match Path::parse(piece)? {
            (path, "") => Some(Self::Path(path)),
            _ => None,
        }
    }
}

/// The inside of `select( path == literal )`.
fn parse_select(inner: &str) -> Option<Step> {
    let (path, rest) = Path::parse(inner)?;
    let rest = rest.trim_start();
    let (equal, literal) = match (rest.strip_prefix("=="), rest.strip_prefix("!=")) {
        (Some(lit), _) => (true, lit),
        (_, Some(lit)) => (false, lit),
        _ => return None,
    };
    let literal: Value = serde_json::from_str(literal.trim()).ok()?;
    let scalar = !matches!(literal, Value::Array(_) | Value::Object(_));
    (scalar && path.is_single()).then_some(Step::Select { path, literal, equal })
}

/// `expr` cut at each top-level `|` (not `|=`), with the byte offset of each piece; `None` if
/// the text has a comment, a string interpolation or unbalanced brackets.
fn pipes(expr: &str) -> Option<Vec<(usize, &str)>> {
    let bytes = expr.as_bytes();
    let (mut pieces, mut start, mut depth, mut i) = (Vec::new(), 0, 0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i)?,
            b'#' => return None,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.checked_sub(1)?,
            b'|' if depth == 0 && bytes.get(i + 1) != Some(&b'=') => {
                pieces.push((start, &expr[start..i]));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    pieces.push((start, &expr[start..]));
    (depth == 0).then_some(pieces)
}

/// The index of the quote closing the string opened at `open`; `None` on interpolation or an
/// unterminated string.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some(i),
            b'\\' if bytes.get(i + 1) == Some(&b'(') => return None,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(s: &str) -> Path {
        Path::parse(s).unwrap().0
    }

    fn outputs(expr: &str, obj: &Value) -> Result<Vec<Value>, QueryError> {
        let (pipeline, rest) = Pipeline::parse(expr);
        assert_eq!(rest, None, "{expr}");
        let mut out = Vec::new();
        pipeline.visit(obj, &mut |v| {
            out.push(v.clone());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn parse_should_read_paths_and_selects() {
        let (p, rest) = Pipeline::parse(r#".status.conditions.[] | select( .type == "Ready" ) | .status"#);
        assert_eq!(rest, None);
        let want = [
            Step::Path(path(".status.conditions.[]")),
            Step::Select {
                path: path(".type"),
                literal: json!("Ready"),
                equal: true,
            },
            Step::Path(path(".status")),
        ];
        assert_eq!(p.steps, want);
    }

    #[test]
    fn parse_should_leave_the_rest_after_the_first_complex_step() {
        let expr = r#".spec.containers[] | .ports // [] | length"#;
        let (p, rest) = Pipeline::parse(expr);
        assert_eq!(p.steps, [Step::Path(path(".spec.containers[]"))]);
        assert_eq!(rest, Some(" .ports // [] | length"));
    }

    #[test]
    fn parse_should_not_cut_inside_strings_brackets_or_updates() {
        for expr in [
            "[.a | .b]",
            ".a |= 1",
            r#".a | "\(.b | .c)""#,
            "if .a then .b | .c else .d end",
            ".a as $x | $x",
            "# comment\n.a",
            "select(.a[] == 1)",
            "select(.a == [1])",
            "select(.a)",
        ] {
            let (p, rest) = Pipeline::parse(expr);
            assert!(rest.is_some(), "{expr} gave {p:?}");
        }
    }

    #[test]
    fn parse_should_read_a_pipe_inside_a_string_as_text() {
        let (p, rest) = Pipeline::parse(r#"select(.a == "x|y")"#);
        assert_eq!(rest, None);
        assert_eq!(
            p.steps,
            [Step::Select {
                path: path(".a"),
                literal: json!("x|y"),
                equal: true
            }]
        );
    }

    #[test]
    fn select_should_keep_inputs_whose_path_equals_the_literal() {
        let obj = json!({"c": [{"t": "A", "s": 1}, {"t": "B", "s": 2.0}, {"s": 3}]});
        assert_eq!(
            outputs(r#".c[] | select(.t == "B") | .s"#, &obj),
            Ok(vec![json!(2.0)])
        );
        assert_eq!(
            outputs(r#".c[] | select(.t != "B") | .s"#, &obj),
            Ok(vec![json!(1), json!(3)])
        );
        assert_eq!(outputs(".c[] | select(.s == 2) | .t", &obj), Ok(vec![json!("B")]));
        assert_eq!(
            outputs(".c[] | select(.t == null) | .s", &obj),
            Ok(vec![json!(3)])
        );
    }

    #[test]
    fn select_should_fail_when_its_path_fails() {
        let obj = json!({"c": [{"t": "A"}, "text"]});
        assert_eq!(outputs(r#".c[] | select(.t == "A")"#, &obj), Err(QueryError));
    }
}
