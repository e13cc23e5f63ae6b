//! Which Kubernetes and etcd versions a cluster runs: the pinned pair by default, or
//! any Kubernetes release (`--kube-version`) with the etcd upstream kwokctl pairs it with.

use crate::pinned::{ETCD_VERSION, KUBE_VERSION};

/// A version that is not a Kubernetes release number.
#[derive(Debug, thiserror::Error)]
#[error("--kube-version {0:?}: not a Kubernetes release (vMAJOR.MINOR.PATCH, e.g. v1.35.8)")]
pub struct Malformed(pub String);

/// The Kubernetes and etcd versions of one cluster (both with their leading `v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// Kubernetes, e.g. `v1.36.5`.
    pub kube: String,
    /// etcd, e.g. `v3.6.16`.
    pub etcd: String,
}

impl Default for Versions {
    fn default() -> Self {
        Self::pinned()
    }
}

impl Versions {
    /// The pinned pair, whose wrapper modules are embedded in kwokctl.
    pub fn pinned() -> Self {
        Self {
            kube: KUBE_VERSION.clone(),
            etcd: ETCD_VERSION.clone(),
        }
    }

    /// The pair for Kubernetes `kube` (`1.35.8` or `v1.35.8`; `None` or empty: the
    /// pinned one). etcd is the pinned one beside the pinned Kubernetes, otherwise the
    /// one upstream kwokctl v0.8 picks for that minor version.
    pub fn for_kube(kube: Option<&str>) -> Result<Self, Malformed> {
        let Some(kube) = kube.map(str::trim).filter(|k| !k.is_empty()) else {
            return Ok(Self::pinned());
        };
        let kube = normalize(kube)?;
        if kube == *KUBE_VERSION {
            return Ok(Self::pinned());
        }
        let minor = minor_of(&kube).ok_or_else(|| Malformed(kube.clone()))?;
        Ok(Self {
            etcd: format!("v{}", etcd_for_minor(minor)),
            kube,
        })
    }

    /// Whether these are the embedded, pinned versions.
    pub fn is_pinned_kube(&self) -> bool {
        self.kube == *KUBE_VERSION
    }

    /// Whether etcd is the embedded, pinned version.
    pub fn is_pinned_etcd(&self) -> bool {
        self.etcd == *ETCD_VERSION
    }
}

/// `1.35.8` → `v1.35.8`; refuses anything but `vMAJOR.MINOR.PATCH` with an optional
/// pre-release (`v1.38.0-beta.0`).
pub fn normalize(version: &str) -> Result<String, Malformed> {
    let bare = version.strip_prefix('v').unwrap_or(version);
    let (release, pre) = match bare.split_once('-') {
        Some((r, p)) => (r, Some(p)),
        None => (bare, None),
    };
    let numbers: Vec<&str> = release.split('.').collect();
    let numeric = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pre_ok =
        pre.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    if numbers.len() != 3 || !numbers.iter().all(numeric) || numbers[0] != "1" || !pre_ok {
        return Err(Malformed(version.into()));
    }
    Ok(format!("v{bare}"))
}

/// The minor version of `v1.MINOR.PATCH`.
pub fn minor_of(version: &str) -> Option<u32> {
    version.trim_start_matches('v').split('.').nth(1)?.parse().ok()
}

/// The staging modules' version for Kubernetes `version`: `v1.35.8` → `v0.35.8`.
pub fn staging_version(version: &str) -> String {
    let rest = version.trim_start_matches('v');
    let rest = rest.split_once('.').map_or(rest, |(_, r)| r);
    format!("v0.{rest}")
}

/// The etcd release upstream kwokctl v0.8 runs beside Kubernetes 1.`minor` (kubeadm's
/// pairing, as upstream lists it: `pkg/kwokctl/components/etcd_version.go`); minors
/// past either end of its list take the nearest end.
pub fn etcd_for_minor(minor: u32) -> &'static str {
    match minor {
        0..=8 => "3.0.17",
        9..=10 => "3.1.12",
        11 => "3.2.18",
        12..=13 => "3.2.24",
        14..=15 => "3.3.10",
        16 => "3.3.17",
        17..=18 => "3.4.3",
        19..=21 => "3.4.13",
        22..=28 => "3.5.12",
        29..=30 => "3.5.21",
        31..=33 => "3.5.24",
        _ => "3.6.10",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_should_default_to_the_pinned_pair() {
        assert_eq!(Versions::for_kube(None).unwrap(), Versions::pinned());
        assert_eq!(Versions::for_kube(Some("")).unwrap(), Versions::pinned());
        let pinned = KUBE_VERSION.trim_start_matches('v').to_owned();
        assert_eq!(Versions::for_kube(Some(&pinned)).unwrap(), Versions::pinned());
    }

    #[test]
    fn other_versions_should_get_upstreams_etcd() {
        let v = Versions::for_kube(Some("1.35.8")).unwrap();
        assert_eq!(v.kube, "v1.35.8");
        assert_eq!(v.etcd, "v3.6.10");
        assert_eq!(Versions::for_kube(Some("v1.37.2")).unwrap().etcd, "v3.6.10");
        assert_eq!(Versions::for_kube(Some("v1.33.0")).unwrap().etcd, "v3.5.24");
        assert_eq!(Versions::for_kube(Some("v1.29.1")).unwrap().etcd, "v3.5.21");
        assert_eq!(Versions::for_kube(Some("v1.7.0")).unwrap().etcd, "v3.0.17");
    }

    #[test]
    fn malformed_versions_should_be_refused_naming_the_flag() {
        for bad in ["latest", "v1.35", "1.35.x", "v2.0.0", "v1.35.8-", "v1.35.8-rc/1"] {
            let err = Versions::for_kube(Some(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "--kube-version {bad:?}: not a Kubernetes release (vMAJOR.MINOR.PATCH, e.g. v1.35.8)"
                )
            );
        }
        assert_eq!(normalize("v1.38.0-beta.0").unwrap(), "v1.38.0-beta.0");
    }

    #[test]
    fn staging_modules_should_be_v0_of_the_same_minor_and_patch() {
        assert_eq!(staging_version("v1.35.8"), "v0.35.8");
        assert_eq!(staging_version("v1.38.0-beta.0"), "v0.38.0-beta.0");
    }
}
