//! How kwok proves to the apiserver who it is: a bearer token, or a client certificate.
//!
//! The apiserver verifies a client certificate's chain on every request (it keeps no
//! cache of verified chains: kubernetes/kubernetes#90533), a check of the CA's
//! signature for each Lease renewal and status write kwok sends (the CA's key is RSA for
//! that reason, `pki::rsa_key`). A token from `--token-auth-file` is
//! looked up in a map. Measured with 5,000 idle nodes (a Lease PUT per node every 10 s)
//! while the CA's key was ECDSA: the apiserver spent 6 % less CPU per renewal with the
//! token (`perf/results/2026-12-06-kwok-auth/`); with the RSA CA a chain verifies in
//! about half the time.
//!
//! [`KwokAuth::Token`] (the default) writes one random token for kwok's user and groups
//! (those of its certificate, [`KwokPriority::groups`]) into the apiserver's token file
//! and kwok's kubeconfig, so RBAC and API Priority and Fairness see the same identity
//! either way. [`KwokAuth::Cert`] is upstream kwokctl's set-up, for side-by-side runs.
//! kwok's certificate is issued in both cases (it is one of the cluster's clients).

use std::{fmt, fs, io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::priority::{KWOK_USER, KwokPriority};

/// How kwok authenticates to the apiserver (`--kwok-auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KwokAuth {
    /// A bearer token from the apiserver's `--token-auth-file`.
    #[default]
    Token,
    /// A client certificate signed by the cluster CA, as upstream kwokctl.
    Cert,
}

impl KwokAuth {
    /// Every value.
    const ALL: [Self; 2] = [Self::Token, Self::Cert];

    /// Every value, as the flag spells them.
    pub const NAMES: [&str; 2] = [Self::ALL[0].as_str(), Self::ALL[1].as_str()];

    /// The value as the flag (and `kwok.yaml`) spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Cert => "cert",
        }
    }

    /// The value `raw` names (as the flag spells it).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw.trim())
    }
}

impl fmt::Display for KwokAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Random bytes in a token: as many as a ServiceAccount token's signature carries.
const TOKEN_BYTES: usize = 32;

/// A new random token (URL-safe base64, so it needs no quoting in the CSV file).
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The line of the apiserver's `--token-auth-file` for kwok: `token,user,uid,"groups"`.
pub fn token_line(token: &str, priority: KwokPriority) -> String {
    format!(
        "{token},{KWOK_USER},{KWOK_USER},\"{}\"\n",
        priority.groups().join(",")
    )
}

/// Writes kwok's token for `priority`'s groups to `path`, readable by its owner only
/// (the token is as good as kwok's cluster-admin binding), and returns the token.
pub fn write_token_file(path: &Path, priority: KwokPriority) -> std::io::Result<String> {
    let token = new_token();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(token_line(&token, priority).as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_should_parse_back_to_its_value() {
        for name in KwokAuth::NAMES {
            assert_eq!(KwokAuth::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(KwokAuth::parse("bearer"), None);
        assert_eq!(KwokAuth::default(), KwokAuth::Token);
    }

    #[test]
    fn the_token_line_should_carry_kwoks_user_and_the_groups_of_its_priority() {
        let token = new_token();
        assert_eq!(token.len(), 43, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(token, new_token());
        assert_eq!(
            token_line("t", KwokPriority::NodeHigh),
            "t,kwok-controller,kwok-controller,\"system:monitoring\"\n"
        );
        assert_eq!(
            token_line("t", KwokPriority::Exempt),
            "t,kwok-controller,kwok-controller,\"system:masters\"\n"
        );
    }

    #[test]
    fn the_token_file_should_be_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-auth.csv");
        let token = write_token_file(&path, KwokPriority::NodeHigh).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            token_line(&token, KwokPriority::NodeHigh)
        );
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
