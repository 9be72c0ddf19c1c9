//! Integration tests: the built `wallet` binary against real ledger files.
//! One test binary, so the suite links once.

mod common;
mod core;
mod throughput;
