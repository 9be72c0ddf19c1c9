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

impl Location {
    /// Transfers per settle transaction when `--batch-size` is not given.
    pub fn default_settle_batch(&self) -> usize {
        match self {
            Location::File(_) => super::model::DEFAULT_BATCH_SIZE,
            Location::Server(_) => super::model::DEFAULT_SERVER_BATCH_SIZE,
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

/// A connection URL with every password hidden, in the user part and in a
/// `password=` parameter: `postgres://ann:secret@host/db` shows as
/// `postgres://ann:***@host/db`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{user}{hidden}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                        format!("{name}=***")
                    }
                    _ => param.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
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
        assert_eq!(
            shown("postgres:///db?user=ann&password=s3cret&schema=x"),
            "postgres:///db?user=ann&password=***&schema=x"
        );
        assert_eq!(shown("wallet.db"), "wallet.db");
        assert!(matches!(
            Location::parse(Path::new("postgres://h/db")),
            Location::Server(_)
        ));
    }
}
