//! Integration tests: the built `wallet` binary against real ledger files.
//! One test binary, so the suite links once.

/// The engine this binary runs the suite on.
pub const ENGINE: common::Engine = common::Engine::Sqlite;

/// Tests of what only a ledger file has (its bytes, its header, SQLite's
/// own locks and pages): compiled here, left out of the PostgreSQL suite.
macro_rules! sqlite_only {
    ($($item:item)*) => { $($item)* };
}

mod argv;
mod bad_input;
mod bank;
mod bank_holds;
mod books;
mod chain;
mod common;
mod core;
mod faults;
mod files;
mod holds;
mod inputs;
#[allow(dead_code)]
mod pgserver;
mod pipes;
mod power_loss;
mod scripting;
mod tamper;
mod throughput;
mod verify;
