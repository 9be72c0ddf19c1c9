//! The CLI suite on PostgreSQL: the same test code as `tests/cli`, run
//! against a server the harness starts (`tests/cli/pgserver.rs`), one
//! schema per test, plus what only a server has (`engine`, `bank`).
//!
//! Every command runs on both engines. What this suite leaves out is
//! marked `sqlite_only!` where it is written: tests of a ledger file's
//! bytes, its SQLite header, SQLite's locks, and faults injected into
//! file system calls; `tamper.rs`, `faults.rs` and the SQLite bank test
//! are such files as a whole.

/// The engine this binary runs the suite on.
pub const ENGINE: common::Engine = common::Engine::Postgres;

macro_rules! sqlite_only {
    ($($item:item)*) => {};
}

#[path = "../cli/argv.rs"]
mod argv;
#[path = "../cli/bad_input.rs"]
mod bad_input;
mod bank;
#[path = "../cli/bank_holds.rs"]
mod bank_holds;
#[path = "../cli/books.rs"]
mod books;
#[path = "../cli/chain.rs"]
mod chain;
#[path = "../cli/common.rs"]
mod common;
#[path = "../cli/core.rs"]
mod core;
mod crash;
mod dry_run;
mod engine;
#[path = "../cli/holds.rs"]
mod holds;
#[path = "../cli/inputs.rs"]
mod inputs;
#[path = "../cli/pgserver.rs"]
mod pgserver;
#[path = "../cli/pipes.rs"]
mod pipes;
#[path = "../cli/scripting.rs"]
mod scripting;
mod urls;
#[path = "../cli/verify.rs"]
mod verify;
