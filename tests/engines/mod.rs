//! The engines the tests run on, one module each, behind [`TestEngine`]:
//! what a test needs of an engine that the `wallet` binary does not give
//! (a fresh ledger, SQL run beside the binary, a lock held by another
//! writer, the ledger's contents to compare). [`ALL`] lists them; a test
//! binary includes this directory once, with `#[path]`.
//!
//! Adding an engine to the tests is a module here, its line in [`ALL`] and
//! its name in [`for_each_engine!`]: the CLI suite, the story and the
//! differential test then run on it. A CLI test file lists tests only it
//! has as `NAME: [...]`.

pub(crate) mod pgcluster;
pub(crate) mod pgserver;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::path::{Path, PathBuf};

/// One engine, as the tests see it.
pub(crate) trait TestEngine: Sync {
    /// Its name, as a test's path names it (`cli::core::sqlite::…`).
    fn name(&self) -> &'static str;

    /// Whether its tests can run here; when they cannot, says why on
    /// stderr so that the skip is seen. Under `CI=true` an engine is never
    /// skipped: a missing server fails the test instead.
    fn available(&self) -> bool;

    /// A ledger of its own, not yet created: `wallet init` (or any first
    /// write) creates it. `dir` is the test's temp dir, where the commands
    /// run, and lives as long as the ledger.
    fn new_ledger(&self, dir: &Path) -> Box<dyn TestLedger>;

    /// The checks of `verify`'s report that look at this engine's own
    /// storage, which other engines do not have: left out when answers of
    /// different engines are compared.
    fn storage_checks(&self) -> &'static [&'static str];
}

/// One ledger of one engine, for a test to reach beside the binary.
pub(crate) trait TestLedger: Send + Sync {
    /// The ledger as `--db` names it: a file's path, or a server's URL.
    fn db(&self) -> PathBuf;

    /// Whether the ledger exists yet.
    fn exists(&self) -> bool;

    /// Runs SQL on the ledger the way another program would, to damage or
    /// tamper with it; panics if it fails.
    fn tamper(&self, sql: &str);

    /// Marks the ledger as written by a wallet with schema `version`.
    fn set_schema_version(&self, version: i64);

    /// The first row of a query, each column as text (the query is
    /// written to return text).
    fn query_text(&self, sql: &str) -> Vec<Option<String>>;

    /// Holds the ledger's write lock, as another writer in the middle of a
    /// transaction would, until the guard is dropped.
    fn hold_write_lock(&self) -> HeldLock;

    /// The engine's SQL shell on the ledger, taking SQL on stdin.
    fn sql_shell(&self) -> std::process::Command;

    /// The shell running one statement given as an argument, printing a
    /// row a line, `|` between columns.
    fn sql_shell_running(&self, sql: &str) -> std::process::Command;

    /// Everything the ledger holds, to compare before and after a command
    /// that must change nothing.
    fn ledger_bytes(&self) -> Vec<u8>;

    /// The ledger as its engine's own type, for tests of that engine alone.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A lock held by another connection; released (rolled back) when dropped.
pub(crate) struct HeldLock(#[allow(dead_code)] pub Box<dyn std::any::Any>);

/// Calls `$callback!(NAME …)` once per engine of [`ALL`]: the one list of
/// engine names that macros read (a test binary includes this directory
/// with `#[macro_use]`, before the modules that use it).
#[allow(unused_macros)]
macro_rules! for_each_engine {
    ($callback:ident! ($($args:tt)*)) => {
        $callback!(sqlite $($args)*);
        $callback!(postgres $($args)*);
    };
}

/// Every engine, the first being the one the differential test compares
/// the others with.
pub(crate) static ALL: &[&dyn TestEngine] = &[&sqlite::Sqlite, &postgres::Postgres];

/// The engine called `name` in [`ALL`].
pub(crate) fn named(name: &str) -> &'static dyn TestEngine {
    ALL.iter()
        .copied()
        .find(|engine| engine.name() == name)
        .unwrap_or_else(|| panic!("no engine called {name} in engines::ALL"))
}

/// The bytes of a file, none if it does not exist.
pub(crate) fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}
