//! Integration tests: the built `wallet` binary against real ledgers, one
//! test binary for every engine (`tests/engines`), so the suite compiles
//! and links once.
//!
//! A test is a plain `fn` in its file, listed at the file's end in
//! `engine_tests!`, which makes a `#[test]` of it per engine it runs on:
//! `FILE::sqlite::NAME` on a ledger file in a temp dir and
//! `FILE::postgres::NAME` in a schema of its own on the server the harness
//! starts (`tests/engines/pgserver.rs`), so `cargo test --test cli
//! postgres` runs the server's half. The list `both` runs on each engine; `sqlite` holds what
//! only a ledger file has (its bytes, its header, SQLite's own locks and
//! pages, faults injected into file system calls: `tamper`, `faults`,
//! `files`, `power_loss`, `throughput` and the SQLite `bank` test as
//! whole files); `postgres` what only a server has (`engine`, `crash`,
//! `dry_run`, `urls`, `bank_server`).

/// A `#[test]` per engine for each listed test function of the file: for
/// each engine list (`sqlite: […]`, `postgres: […]`, named as in
/// `engines::ALL`), a module of that name holding the tests of `both` and
/// of that list, each running the function with its engine set for
/// [`common::Sandbox::new`]. The macro names no engine: an engine runs a
/// file's tests where the file lists it.
macro_rules! engine_tests {
    (
        both: $both:tt
        $(, $engine:ident: [$($only:ident),* $(,)?])* $(,)?
    ) => {
        $(engine_tests!(@on $engine $both [$($only),*]);)*
    };
    (@on $engine:ident [$($both:ident),* $(,)?] [$($only:ident),*]) => {
        /// The file's tests on the engine of this name.
        mod $engine {
            $(
                #[test]
                fn $both() {
                    crate::common::run_on(stringify!($engine), super::$both);
                }
            )*
            $(
                #[test]
                fn $only() {
                    crate::common::run_on(stringify!($engine), super::$only);
                }
            )*
        }
    };
}

mod argv;
mod bad_input;
mod bank;
mod bank_holds;
mod bank_server;
mod books;
mod chain;
mod common;
mod core;
mod crash;
mod dry_run;
mod engine;
// Shared with the story and the differential test, each using a part.
#[allow(dead_code)]
#[path = "../engines/mod.rs"]
mod engines;
mod faults;
mod files;
mod holds;
mod inputs;
mod pipes;
mod power_loss;
mod scripting;
mod tamper;
mod throughput;
mod urls;
mod verify;

// The PostgreSQL-only tests start servers of their own.
use engines::pgserver;
