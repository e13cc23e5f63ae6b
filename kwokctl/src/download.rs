//! Release binaries fetched over HTTP(S), as upstream kwokctl does where the network
//! allows, each checked against its published SHA-256 before anything is kept:
//! Kubernetes' `<prefix>/<component>` beside `<component>.sha256`, etcd's release
//! tarball beside the release's `SHA256SUMS`.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use sha2::{Digest as _, Sha256};

use crate::path_error::{PathError, on};

/// How long a connection may take to open: a machine without a route to the release
/// site falls back to building at once rather than after minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a transfer may stall.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors while downloading.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be fetched (no route, no such host, not found, …): the
    /// caller may build instead.
    #[error("{url}: {reason}")]
    Unavailable {
        /// What was asked for.
        url: String,
        /// Why it did not come.
        reason: String,
    },
    /// The published checksum could not be had or read: the file is not kept.
    #[error("{url} is not verified, so not kept: its checksum {checksum_url}: {reason}")]
    NoChecksum {
        /// The file.
        url: String,
        /// Where its checksum should be.
        checksum_url: String,
        /// Why it could not be used.
        reason: String,
    },
    /// The file's SHA-256 is not the published one: it is not kept.
    #[error(
        "{url} does not match its published SHA-256 ({checksum_url}: {expected}, got {found}); nothing was kept"
    )]
    Mismatch {
        /// The file.
        url: String,
        /// Where its checksum came from.
        checksum_url: String,
        /// The published digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// A tarball lacks a member asked for.
    #[error("{url} has no file {member}")]
    NoMember {
        /// The tarball.
        url: String,
        /// The member's file name.
        member: String,
    },
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] PathError),
}

impl Error {
    /// Whether the file simply could not be had, so building it instead is right; a
    /// file that came but failed its check is an error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// Result of a download.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a file's published SHA-256 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// `<url>.sha256`, holding the hex digest (Kubernetes' release layout).
    Sidecar,
    /// `SHA256SUMS` in the same folder, a `<digest>  <file name>` line per file
    /// (etcd's release layout).
    Sums,
}

impl Checksum {
    /// The checksum file's URL for `url`.
    pub fn url(self, url: &str) -> String {
        match self {
            Checksum::Sidecar => format!("{url}.sha256"),
            Checksum::Sums => match url.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/SHA256SUMS"),
                None => "SHA256SUMS".into(),
            },
        }
    }

    /// The digest for `url` in the checksum file's `text`.
    fn digest_in(self, url: &str, text: &str) -> Option<String> {
        let digest = match self {
            Checksum::Sidecar => text.split_whitespace().next(),
            Checksum::Sums => {
                let name = file_name(url);
                text.lines().find_map(|line| {
                    let mut words = line.split_whitespace();
                    let digest = words.next()?;
                    (words.next()?.trim_start_matches('*') == name).then_some(digest)
                })
            }
        }?;
        let digest = digest.to_ascii_lowercase();
        (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digest)
    }
}

/// The last path segment of `url`, without a query.
pub fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `text` names an HTTP(S) URL rather than a path.
pub fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// Downloads `url` to `dest` once its SHA-256 matches the published one (`checksum`);
/// on any failure `dest` does not exist. Runs its own small runtime on a thread of
/// its own, so it may be called from async code as well.
pub fn fetch_verified(url: &str, checksum: Checksum, dest: &Path) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(on("start a runtime to download", dest))?;
            runtime.block_on(fetch(url, checksum, dest))
        })
        .join()
        .expect("the download thread does not panic")
    })
}

async fn fetch(url: &str, checksum: Checksum, dest: &Path) -> Result<()> {
    // reqwest's TLS takes the process's crypto provider (ring, as kube's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let unavailable = |reason: String| Error::Unavailable {
        url: url.into(),
        reason,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("kwokctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| unavailable(error_chain(&e)))?;
    let part = dest.with_file_name(format!(
        ".{}.part",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(on("create", parent))?;
    }
    let result = async {
        let mut response = get(&client, url).await.map_err(unavailable)?;
        let mut file = fs::File::create(&part).map_err(on("create", &part))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(error_chain(&e.without_url())))?
        {
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(on("write", &part))?;
        }
        file.sync_all().map_err(on("write", &part))?;
        let found = hex(&hasher.finalize());
        let checksum_url = checksum.url(url);
        let no_checksum = |reason: String| Error::NoChecksum {
            url: url.into(),
            checksum_url: checksum_url.clone(),
            reason,
        };
        let text = get(&client, &checksum_url)
            .await
            .map_err(no_checksum)?
            .text()
            .await
            .map_err(|e| no_checksum(error_chain(&e)))?;
        let expected = checksum
            .digest_in(url, &text)
            .ok_or_else(|| no_checksum(format!("no SHA-256 for {} in it", file_name(url))))?;
        if expected != found {
            return Err(Error::Mismatch {
                url: url.into(),
                checksum_url,
                expected,
                found,
            });
        }
        Ok(fs::rename(&part, dest).map_err(on("rename", &part))?)
    }
    .await;
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

/// A GET answered 200, or why not.
async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, String> {
    // The URL is said once, by the caller.
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| error_chain(&e.without_url()))?;
    match response.status() {
        reqwest::StatusCode::OK => Ok(response),
        status => Err(format!("HTTP {status}")),
    }
}

/// An error with its causes, on one line ("error sending request: dns error: …").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the files named `members` (by file name, at any depth) out of the gzipped
/// tarball at `tarball` to their destinations, each executable; a member missing
/// leaves none of them.
pub fn extract(tarball: &Path, url: &str, members: &[(&str, PathBuf)]) -> Result<()> {
    let file = fs::File::open(tarball).map_err(on("open", tarball))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut written: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for entry in archive.entries().map_err(on("read", tarball))? {
            let mut entry = entry.map_err(on("read", tarball))?;
            let path = entry.path().map_err(on("read", tarball))?.into_owned();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some((_, dest)) = members.iter().find(|(m, _)| *m == name) else {
                continue;
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let part = dest.with_file_name(format!(".{name}.part"));
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(on("create", parent))?;
            }
            let mut out = fs::File::create(&part).map_err(on("create", &part))?;
            std::io::copy(&mut entry, &mut out).map_err(on("write", &part))?;
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&part, fs::Permissions::from_mode(0o755)).map_err(on("chmod", &part))?;
            written.push((part, dest.clone()));
        }
        for (member, _) in members {
            if !written.iter().any(|(_, d)| file_name_of(d) == *member) {
                return Err(Error::NoMember {
                    url: url.into(),
                    member: (*member).into(),
                });
            }
        }
        for (part, dest) in &written {
            fs::rename(part, dest).map_err(on("rename", part))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (part, _) in &written {
            let _ = fs::remove_file(part);
        }
    }
    result
}

fn file_name_of(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_files_should_be_read_as_the_release_sites_write_them() {
        let digest = "a".repeat(64);
        assert_eq!(
            Checksum::Sidecar.digest_in("https://x/kubectl", &format!("{digest}\n")),
            Some(digest.clone())
        );
        let sums = format!(
            "{}  etcd-v3.6.10-linux-arm64.tar.gz\n{digest}  etcd-v3.6.10-linux-amd64.tar.gz\n",
            "b".repeat(64)
        );
        assert_eq!(
            Checksum::Sums.digest_in("https://x/v3.6.10/etcd-v3.6.10-linux-amd64.tar.gz", &sums),
            Some(digest)
        );
        assert_eq!(Checksum::Sums.digest_in("https://x/other.tar.gz", &sums), None);
        assert_eq!(Checksum::Sidecar.digest_in("https://x/k", "not a digest"), None);
        assert_eq!(
            Checksum::Sums.url("https://x/v3.6.10/etcd.tar.gz"),
            "https://x/v3.6.10/SHA256SUMS"
        );
        assert_eq!(
            Checksum::Sidecar.url("https://x/kubectl"),
            "https://x/kubectl.sha256"
        );
    }
}
