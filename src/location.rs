//! Where a ledger lives, decided once from `--db` before anything is opened.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::text::shown_path;

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
    /// Reads a `--db` value: a PostgreSQL URL, or else a file path. A
    /// value that starts like a PostgreSQL URL but is not one (`postgres:`
    /// without `//`, a leading space) is refused rather than taken for a
    /// file name, which would put the URL's password in a file's name; the
    /// scheme's case does not matter.
    pub fn parse(db: &Path) -> Result<Self, NotAUrl> {
        let Some(text) = db.to_str() else {
            return Ok(Self::File(db.to_path_buf()));
        };
        let lower = text.trim_start().to_ascii_lowercase();
        for scheme in ["postgresql://", "postgres://"] {
            if lower.starts_with(scheme) && !text.starts_with(char::is_whitespace) {
                return Ok(Self::Server(format!("{scheme}{}", &text[scheme.len()..])));
            }
        }
        if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
            let scheme = if lower.starts_with("postgresql:") {
                "postgresql"
            } else {
                "postgres"
            };
            return Err(NotAUrl { scheme });
        }
        Ok(Self::File(db.to_path_buf()))
    }
}

/// A `--db` value that starts like a PostgreSQL URL but is not one; the
/// contract's error for it (a usage error) is made in `error.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAUrl {
    /// The scheme it seems to mean: `postgres` or `postgresql`.
    pub scheme: &'static str,
}

impl fmt::Display for NotAUrl {
    /// Names only the scheme: the rest may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value for '--db': it starts like a PostgreSQL URL but is not one; write {}://USER@HOST/DATABASE (the rest is not shown, as it may hold a password)",
            self.scheme
        )
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

/// A connection URL with every password hidden: in the user part
/// (`postgres://ann:secret@host/db` shows as `postgres://ann:***@host/db`),
/// and in any parameter whose name, percent-decoded, says `password`, well
/// formed (`password=`, `pass%77ord=`, `sslpassword=`, shown as `NAME=***`)
/// or not (`password%3Dsecret`, shown as `***`).
pub(super) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The driver takes everything up to the first `@` for the user and
    // password, even a `/` or `?` in the password, so the same is hidden.
    let rest = match rest.split_once('@') {
        Some((user_info, after)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{after}"),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    // Parameters from the first `?` on, wherever it is: a user part without
    // a password may hold one too.
    let rest = match rest.split_once('?') {
        Some((head, query)) => {
            let params: Vec<String> = query.split('&').map(hidden_param).collect();
            format!("{head}?{}", params.join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// One `name=value` parameter as messages show it.
fn hidden_param(param: &str) -> String {
    let name = param.split_once('=').map_or(param, |(name, _)| name);
    if is_malformed_password(param) {
        // `password%3Dsecret`: the value is inside the name.
        "***".to_string()
    } else if names_a_password(&percent_decoded(name)) {
        format!("{name}=***")
    } else {
        param.to_string()
    }
}

/// Whether `param` is a password parameter whose value hides in its name
/// (`password%3Dsecret`, or `password` with no `=`), which no driver reads
/// as meant and no message may show.
pub(super) fn is_malformed_password(param: &str) -> bool {
    let name = param.split_once('=').map_or(param, |(name, _)| name);
    let decoded = percent_decoded(name);
    names_a_password(&decoded) && (decoded.contains('=') || !param.contains('='))
}

/// Whether a parameter's decoded name is, or hides, a password's.
fn names_a_password(decoded_name: &str) -> bool {
    decoded_name.to_ascii_lowercase().contains("password")
}

/// `text` with every `postgres://` or `postgresql://` URL in it shown as
/// [`redacted`]: for messages that quote a command line (a misplaced URL
/// is echoed by a usage error).
pub fn hide_passwords_in(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = ["postgres://", "postgresql://"]
        .iter()
        .filter_map(|scheme| lower[at..].find(scheme))
        .min()
    {
        let start = at + found;
        // Up to the next blank only: a quote may be part of the password.
        let end = text[start..]
            .find(char::is_whitespace)
            .map_or(text.len(), |n| start + n);
        out.push_str(&text[at..start]);
        out.push_str(&redacted(&text[start..end]));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// `%xx` escapes decoded; anything else kept as it is.
pub(super) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        let shown = |url: &str| Location::parse(Path::new(url)).unwrap().to_string();
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
            Ok(Location::Server(_))
        ));
        assert!(matches!(
            Location::parse(Path::new("POSTGRESQL://h/db")),
            Ok(Location::Server(url)) if url == "postgresql://h/db"
        ));
        for near in [
            "postgresql:postgres:s3cret@localhost",
            "postgres:/h/db",
            " postgres://u:s3cret@h/db",
        ] {
            let err =
                crate::error::WalletError::from(Location::parse(Path::new(near)).unwrap_err());
            assert_eq!(err.code(), "usage");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        assert_eq!(
            shown("postgres:///db?pass%77ord=s3cret"),
            "postgres:///db?pass%77ord=***"
        );
        assert_eq!(
            shown("postgres://ann:ab/cd?e@127.0.0.1:1/books"),
            "postgres://ann:***@127.0.0.1:1/books"
        );
        for (url, hidden) in [
            (
                "postgres:///db?password%3Ds3cret&x=1",
                "postgres:///db?***&x=1",
            ),
            ("postgres:///db?password%3ds3cret=1", "postgres:///db?***"),
            (
                "postgres:///db?sslpassword=s3cret",
                "postgres:///db?sslpassword=***",
            ),
            (
                "postgres:///db?PassWord=s3cret",
                "postgres:///db?PassWord=***",
            ),
            (
                "postgres://h/db?user=a&password=s@cret",
                "postgres://h/db?user=a&password=***",
            ),
        ] {
            assert_eq!(shown(url), hidden);
        }
        assert_eq!(
            hide_passwords_in("unexpected argument 'postgres://a:s3cret@h/db' found"),
            "unexpected argument 'postgres://a:***@h/db' found"
        );
    }
}
