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
}

impl Location {
    /// Reads a `--db` value.
    pub fn parse(db: &Path) -> Self {
        Self::File(db.to_path_buf())
    }
}

impl fmt::Display for Location {
    /// As errors and messages show it: one line, control characters escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => f.write_str(&shown_path(path)),
        }
    }
}
