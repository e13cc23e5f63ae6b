//! The I/O error kwokctl reports on a file or folder: what it was doing, where, and the
//! cause, in one line (`failed to write /tmp/c/kwok.yaml: Permission denied (os error 13)`).
//! Each module's error wraps it as its `Io` variant.

use std::path::{Path, PathBuf};

/// An I/O error on a named path.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {}: {source}", path.display())]
pub struct PathError {
    /// What was being done ("read", "create", "run go … in").
    pub action: &'static str,
    /// The path.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// The `map_err` adapter for an I/O error while doing `action` on `path`:
/// `fs::write(path, text).map_err(on("write", path))?`.
pub fn on(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PathError + use<> {
    let path = path.to_path_buf();
    move |source| PathError { action, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_where_and_why_in_one_line() {
        let err =
            std::fs::read("/nonexistent/kwok.yaml").map_err(on("read", Path::new("/nonexistent/kwok.yaml")));
        let text = err.unwrap_err().to_string();
        assert!(
            text.starts_with("failed to read /nonexistent/kwok.yaml: "),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }
}
