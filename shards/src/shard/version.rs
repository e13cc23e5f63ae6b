//! The order of two resourceVersions of one object.
//!
//! Every apiserver we run stores objects in etcd, whose resourceVersions are decimal
//! revision numbers, so they are compared as numbers: as text, "99" would sort after
//! "100" and an old write response could overwrite newer watch state once the version
//! gains a digit. The API contract calls them opaque, so anything that is not a decimal
//! integer has an [`Order::Unknown`] order, which callers treat conservatively (keep
//! what they have and wait for the watch, which delivers an object's versions in order).

/// How resourceVersion `rv` stands to the one cached, `than`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `rv` is a later version, or nothing was cached (`than` is empty).
    Newer,
    /// The same version.
    Same,
    /// `rv` is an earlier version.
    Older,
    /// Not comparable (not decimal integers).
    Unknown,
}

/// The order of `rv` relative to `than`.
pub fn order(rv: &str, than: &str) -> Order {
    if rv == than {
        return Order::Same;
    }
    if than.is_empty() {
        return Order::Newer;
    }
    match (decimal(rv), decimal(than)) {
        (Some(rv), Some(than)) => match rv.cmp(&than) {
            std::cmp::Ordering::Greater => Order::Newer,
            // "007" and "7": the same revision written differently.
            std::cmp::Ordering::Equal => Order::Same,
            std::cmp::Ordering::Less => Order::Older,
        },
        _ => Order::Unknown,
    }
}

/// `s` as a decimal integer: digits only (no sign, no spaces), as etcd writes revisions.
fn decimal(s: &str) -> Option<u128> {
    match !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse().ok(),
        false => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See: issue 24 (a write's answer at "99" was taken as newer than a watch event at "100").
    #[test]
    fn versions_should_compare_as_decimal_numbers() {
        let cases = [
            ("100", "99", Order::Newer),
            ("99", "100", Order::Older),
            ("100", "100", Order::Same),
            ("1000000", "999999", Order::Newer),
            ("9", "10", Order::Older),
            ("007", "7", Order::Same),
            // Beyond u64: still numbers.
            ("18446744073709551616", "18446744073709551615", Order::Newer),
            // Nothing cached: anything is news.
            ("7", "", Order::Newer),
            ("", "", Order::Same),
            // Not decimal integers: no order is assumed.
            ("", "7", Order::Unknown),
            ("abc", "7", Order::Unknown),
            ("7", "abc", Order::Unknown),
            ("+8", "7", Order::Unknown),
            ("-1", "7", Order::Unknown),
            (" 8", "7", Order::Unknown),
            ("1e3", "7", Order::Unknown),
        ];
        for (rv, than, want) in cases {
            assert_eq!(order(rv, than), want, "order({rv:?}, {than:?})");
        }
    }
}
