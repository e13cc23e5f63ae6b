//! Shell words for dry runs: what kwokctl would run or write, printed so it can be
//! pasted into a POSIX shell.

use std::path::Path;

/// Single-quotes `arg` for a POSIX shell when it holds anything but safe characters.
pub fn quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_=./:,@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.into()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// [`quote`] of a path.
pub fn path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_should_leave_safe_words_and_single_quote_the_rest() {
        assert_eq!(quote("--a=b/c:1"), "--a=b/c:1");
        assert_eq!(quote("my dir"), "'my dir'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
