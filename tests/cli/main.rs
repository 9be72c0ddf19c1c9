//! Integration tests: the built `wallet` binary against real ledger files.
//! One test binary, so the suite links once.

mod argv;
mod bad_input;
mod bank;
mod common;
mod core;
mod faults;
mod inputs;
mod scripting;
mod tamper;
mod throughput;
mod verify;
