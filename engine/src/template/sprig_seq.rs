//! Sprig's number sequences: `until`, `untilStep` (lists) and `seq` (GNU `seq` as text).

use std::rc::Rc;

use serde_json::Value;

use super::{
    sprig::want_int,
    value::{FnResult, Val},
};

/// The longest sequence a template may build; beyond it the call fails instead of
/// exhausting memory.
const MAX_LEN: u64 = 1 << 20;

/// `start, start+step, …` while short of `stop`: counting up when `start < stop` and
/// `step > 0`, down when `start > stop` and `step < 0`, else nothing.
fn steps(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, String> {
    let ascending = start < stop;
    if step == 0 || (step > 0) != ascending || start == stop {
        return Ok(Vec::new());
    }
    let len = stop.abs_diff(start).div_ceil(step.unsigned_abs());
    if len > MAX_LEN {
        return Err(format!("a sequence of {len} numbers is longer than {MAX_LEN}"));
    }
    Ok((0..len as i64).map(|i| start + i * step).collect())
}

fn list<'a>(numbers: Vec<i64>) -> Val<'a> {
    Val::Owned(Rc::new(Value::Array(
        numbers.into_iter().map(Value::from).collect(),
    )))
}

/// `until n`: `0 … n-1`, or `0 … n+1` counting down for a negative `n`.
pub fn until<'a>(n: &Val<'a>) -> FnResult<'a> {
    let n = want_int(n)?;
    steps(0, n, if n < 0 { -1 } else { 1 }).map(list)
}

/// `untilStep start stop step`.
pub fn until_step<'a>(a: &[Val<'a>]) -> FnResult<'a> {
    steps(want_int(&a[0])?, want_int(&a[1])?, want_int(&a[2])?).map(list)
}

/// `seq last`, `seq first last`, `seq first step last`: the numbers, `last` included,
/// joined by spaces; counting down when `last < first`. One number means `1 … last`;
/// any other count of arguments, or a step pointing away from `last`, gives `""`.
pub fn seq<'a>(a: &[Val<'a>]) -> FnResult<'a> {
    let n: Vec<i64> = a.iter().map(want_int).collect::<Result<_, _>>()?;
    let direction = |first: i64, last: i64| if last < first { -1 } else { 1 };
    // `last` included: stop one past it.
    let stop = |first: i64, last: i64| last.saturating_add(direction(first, last));
    let numbers = match n[..] {
        [last] => steps(1, stop(1, last), direction(1, last))?,
        [first, last] => steps(first, stop(first, last), direction(first, last))?,
        [first, step, last] if last < first && step > 0 => Vec::new(),
        [first, step, last] => steps(first, stop(first, last), step)?,
        _ => Vec::new(),
    };
    let text: Vec<String> = numbers.iter().map(i64::to_string).collect();
    Ok(Val::text(text.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Vec<Val<'static>> {
        v.iter().map(|i| Val::Int(*i)).collect()
    }

    #[test]
    fn until_step_should_count_toward_stop_only() {
        let cases: [(&[i64], Value); 4] = [
            (&[3, 6, 2], serde_json::json!([3, 5])),
            (&[6, 3, -1], serde_json::json!([6, 5, 4])),
            (&[6, 3, 1], serde_json::json!([])),
            (&[0, 3, 0], serde_json::json!([])),
        ];
        for (args, want) in cases {
            assert_eq!(until_step(&ints(args)).unwrap().to_value(), want, "{args:?}");
        }
        assert_eq!(
            until(&Val::Int(-3)).unwrap().to_value(),
            serde_json::json!([0, -1, -2])
        );
    }

    #[test]
    fn seq_should_match_sprig_outputs() {
        // Recorded from sprig v3.3.0.
        let cases: [(&[i64], &str); 10] = [
            (&[5], "1 2 3 4 5"),
            (&[-3], "1 0 -1 -2 -3"),
            (&[0, 2], "0 1 2"),
            (&[2, -2], "2 1 0 -1 -2"),
            (&[0, 2, 10], "0 2 4 6 8 10"),
            (&[0, -2, 10], ""),
            (&[10, -2, 0], "10 8 6 4 2 0"),
            (&[10, 2, 0], ""),
            (&[], ""),
            (&[1, 2, 3, 4], ""),
        ];
        for (args, want) in cases {
            assert_eq!(seq(&ints(args)).unwrap().as_str(), Some(want), "{args:?}");
        }
    }

    #[test]
    fn a_huge_sequence_should_fail_instead_of_allocating() {
        assert!(until(&Val::Int(i64::MAX)).is_err());
    }
}
