//! Where a ledger lives, decided once from `--db` before anything is opened.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::shown_path;

/// The ledger a process works on. Every engine is chosen from this value,
/// once, when the ledger is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`). Kept
    /// whole for connecting, shown only with its password hidden.
    Server(String),
}

impl Location {
    /// Reads a `--db` value: a PostgreSQL URL, or else a file path.
    pub fn parse(db: &Path) -> Self {
        match db.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Self::Server(url.to_string())
            }
            _ => Self::File(db.to_path_buf()),
        }
    }
}

impl fmt::Display for Location {
    /// As errors and messages show it: one line, control characters
    /// escaped, and a password in a URL replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => f.write_str(&shown_path(path)),
            Location::Server(url) => f.write_str(&shown_path(Path::new(&redacted(url)))),
        }
    }
}

/// A connection URL with the password of its user part hidden:
/// `postgres://ann:secret@host/db` shows as `postgres://ann:***@host/db`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        let shown = |url: &str| Location::parse(Path::new(url)).to_string();
        assert_eq!(
            shown("postgres://ann:s3cr%40t@db.example:5432/books?sslmode=require"),
            "postgres://ann:***@db.example:5432/books?sslmode=require"
        );
        assert_eq!(
            shown("postgresql://ann@host/db"),
            "postgresql://ann@host/db"
        );
        assert_eq!(
            shown("postgresql:///db?host=/tmp"),
            "postgresql:///db?host=/tmp"
        );
        assert_eq!(shown("wallet.db"), "wallet.db");
        assert!(matches!(
            Location::parse(Path::new("postgres://h/db")),
            Location::Server(_)
        ));
    }
}
