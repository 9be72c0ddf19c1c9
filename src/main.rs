//! The `wallet` binary: everything happens in the library's `run`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(wallet::run(std::env::args_os()))
}
