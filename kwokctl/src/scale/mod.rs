//! `kwokctl scale`: which objects to create and delete so that exactly N carry a
//! scale label, the templates they are made from (built-in, `KwokctlResource`, or a
//! discovered kind's minimal object), and which served resource a typed kind names.
//! Pure; `cmd/scale.rs` does the I/O.

pub mod lookup;
mod param;
mod resource;
mod template;

use std::collections::BTreeSet;

pub use param::Param;
pub use resource::{KwokctlResource, RESOURCE_KIND, ResourceMetadata};
pub use template::{Kind, Template};

/// The label on every object `kwokctl scale` makes; its value is the name prefix.
pub const SCALE_LABEL: &str = "kwok.x-k8s.io/kwokctl-scale";

/// Errors of `kwokctl scale` input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No KwokctlResource, built-in template or served resource has this name.
    #[error(
        "unknown kind {0:?} for scale: no KwokctlResource of that name in the config files, and the cluster serves no such resource"
    )]
    UnknownKind(String),
    /// A KwokctlResource's template does not parse.
    #[error("KwokctlResource {name:?}: template: {reason}")]
    Template {
        /// The resource's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The template failed for an object.
    #[error("the template does not render: {0}")]
    Render(String),
    /// A `--param` is not valid jq.
    #[error("invalid --param {code:?}: {message}")]
    Param {
        /// The parameter as given.
        code: String,
        /// Why.
        message: String,
    },
    /// The prefix cannot start a valid object name.
    #[error("invalid name {0:?} for scale: use lower-case letters, digits, '-' and '.'")]
    Prefix(String),
}

/// Result of scale input checks.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to do to reach the wanted count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Names to create, in ascending order.
    pub create: Vec<String>,
    /// Names to delete, newest (highest serial) first.
    pub delete: Vec<String>,
}

/// The name of the object with serial `index`: `prefix-000042`.
pub fn object_name(prefix: &str, index: u64, serial_length: u8) -> String {
    format!("{prefix}-{index:0width$}", width = usize::from(serial_length))
}

/// Plans from the names that carry the scale label now: the wanted set is serials
/// `0..replicas`; anything else with the label goes, highest serial first, so
/// scaling down removes the newest objects.
pub fn plan(existing: &[String], prefix: &str, replicas: u32, serial_length: u8) -> Plan {
    let wanted: BTreeSet<String> = (0..u64::from(replicas))
        .map(|i| object_name(prefix, i, serial_length))
        .collect();
    let have: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
    let create = wanted
        .iter()
        .filter(|n| !have.contains(n.as_str()))
        .cloned()
        .collect();
    let mut delete: Vec<String> = existing
        .iter()
        .filter(|n| !wanted.contains(*n))
        .cloned()
        .collect();
    // Serials have a fixed width, so the name order is the serial order.
    delete.sort_by(|a, b| b.cmp(a));
    delete.dedup();
    Plan { create, delete }
}

/// Checks that `prefix-000000` is a valid object name (a DNS subdomain).
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 240
        && prefix.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Prefix(prefix.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| object_name(prefix, i, 6)).collect()
    }

    #[test]
    fn object_name_should_pad_the_serial() {
        assert_eq!(object_name("node", 7, 6), "node-000007");
        assert_eq!(object_name("n", 1234567, 6), "n-1234567");
    }

    #[test]
    fn plan_should_create_the_missing_serials_only() {
        let plan = plan(&names("n", 0..3), "n", 5, 6);
        assert_eq!(plan.create, names("n", 3..5));
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn plan_should_delete_the_newest_first_when_scaling_down() {
        let plan = plan(&names("n", 0..5), "n", 2, 6);
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete, ["n-000004", "n-000003", "n-000002"]);
    }

    #[test]
    fn plan_should_fill_gaps_and_drop_strays_to_reach_exactly_n() {
        let existing = vec![
            "n-000000".into(),
            "n-000002".into(),
            "n-000009".into(),
            "other".into(),
        ];
        let plan = plan(&existing, "n", 3, 6);
        assert_eq!(plan.create, ["n-000001"]);
        assert_eq!(plan.delete, ["other", "n-000009"]);
    }

    #[test]
    fn check_prefix_should_accept_dns_subdomains_only() {
        assert!(check_prefix("node").is_ok());
        assert!(check_prefix("a.b-1").is_ok());
        for bad in ["", "-a", "A", "a_b", "a/b"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
