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
//! `dry_run`, `urls`, `bank_server`, and `failover` on a primary and its
//! standby from `tests/engines/pgcluster.rs`).

// Shared with the story and the differential test, each using a part;
// first, so that every file below sees `for_each_engine!`.
#[allow(dead_code)]
#[macro_use]
#[path = "../engines/mod.rs"]
mod engines;

/// A `#[test]` per engine for each listed test function of the file: for
/// every engine of `engines::ALL`, a module of its name holding the tests
/// of `both` and of the file's list for that engine (`sqlite: […]`,
/// `postgres: […]`, each optional), each running the function with its
/// engine set for [`common::Sandbox::new`]. The engines' names come from
/// `for_each_engine!`, so a new engine runs every file's `both` tests.
macro_rules! engine_tests {
    (
        both: [$($both:ident),* $(,)?]
        $(, $listed:ident: [$($only:ident),* $(,)?])* $(,)?
    ) => {
        for_each_engine!(engine_tests!(@on [$($both),*] [$($listed: [$($only),*]),*] $));
    };
    // `$d` is a `$`, passed in so that the macro made here can take lists.
    (
        $engine:ident @on [$($both:ident),*]
        [$($listed:ident: [$($only:ident),*]),*] $d:tt
    ) => {
        /// The file's tests on the engine of this name.
        mod $engine {
            /// The tests of a list named after this engine; other lists, none.
            #[allow(unused_macros)]
            macro_rules! this_engine_only {
                ($engine: [$d($d name:ident),*]) => {
                    $d(
                        #[test]
                        fn $d name() {
                            crate::common::run_on(stringify!($engine), super::$d name);
                        }
                    )*
                };
                ($d other:ident: [$d($d name:ident),*]) => {};
            }
            $(
                #[test]
                fn $both() {
                    crate::common::run_on(stringify!($engine), super::$both);
                }
            )*
            $(this_engine_only!($listed: [$($only),*]);)*
        }
    };
}

mod argv;
mod bad_input;
mod bank;
mod bank_holds;
mod bank_model;
mod bank_server;
mod books;
mod books_currencies;
mod chain;
mod common;
mod core;
mod crash;
mod currencies;
mod derived;
mod dry_run;
mod engine;
mod events;
mod exchange;
mod exchange_workers;
mod failover;
mod faults;
mod files;
mod heads;
mod holds;
mod inputs;
mod insider;
mod old_links;
mod overdraft;
mod per_currency;
mod pipes;
mod planted;
mod policies;
mod policy_model;
mod power_loss;
mod scripting;
mod sealed_currencies;
mod sealed_policies;
mod tamper;
mod throughput;
mod urls;
mod verify;
mod verify_pairs;

// The PostgreSQL-only tests start servers of their own.
use engines::pgserver;
