//! Label/annotation selector strings (`a=b,c!=d,e in (f,g),!h`), as the `--manage-*`
//! and `--disregard-*` flags take them, parsed into kube's `Selector`.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Expression, Selector, SelectorExt};

/// A selector string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid selector {input:?}: {reason}")]
pub struct Error {
    /// The whole selector.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses `input`; an empty string selects nothing (`None`).
pub fn parse(input: &str) -> Result<Option<Selector>, Error> {
    let err = |reason: &str| Error {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if input.trim().is_empty() {
        return Ok(None);
    }
    let mut expressions = Vec::new();
    for term in split_terms(input) {
        expressions.push(term_expression(term.trim()).map_err(|r| err(&r))?);
    }
    Ok(Some(expressions.into_iter().collect()))
}

/// Whether `selector` matches `map` (labels or annotations).
pub fn matches(selector: &Selector, map: &BTreeMap<String, String>) -> bool {
    selector.matches(map)
}

/// Splits at commas outside parentheses.
fn split_terms(input: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&input[start..]);
    terms
}

fn term_expression(term: &str) -> Result<Expression, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key.trim().to_owned()));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Expression::NotEqual(
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Expression::Equal(key.trim().to_owned(), value.trim().to_owned()));
    }
    for (op, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = term.split_once(op) {
            let set = values_of(values)?;
            let key = key.trim().to_owned();
            return Ok(if negate {
                Expression::NotIn(key, set)
            } else {
                Expression::In(key, set)
            });
        }
    }
    if term.is_empty() || term.contains(char::is_whitespace) {
        return Err(format!("cannot parse term {term:?}"));
    }
    Ok(Expression::Exists(term.to_owned()))
}

fn values_of(values: &str) -> Result<BTreeSet<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("values {values:?} must be in parentheses"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parse_should_support_equality_set_and_existence_terms() {
        let s = parse("kwok.x-k8s.io/node=fake,tier in (a, b),!skip,zone")
            .unwrap()
            .unwrap();
        assert!(matches(
            &s,
            &map(&[("kwok.x-k8s.io/node", "fake"), ("tier", "a"), ("zone", "z")])
        ));
        assert!(!matches(
            &s,
            &map(&[("kwok.x-k8s.io/node", "fake"), ("tier", "c"), ("zone", "z")])
        ));
        assert!(!matches(
            &s,
            &map(&[
                ("kwok.x-k8s.io/node", "fake"),
                ("tier", "a"),
                ("zone", "z"),
                ("skip", "")
            ])
        ));
    }

    #[test]
    fn empty_selector_should_select_nothing() {
        assert!(parse("  ").unwrap().is_none());
    }

    #[test]
    fn bad_terms_should_name_the_selector() {
        let err = parse("a in b").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid selector \"a in b\": values \"b\" must be in parentheses"
        );
    }
}
