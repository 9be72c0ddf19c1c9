//! `wallet`: a command-line wallet and ledger that keeps its books in one SQLite file.

pub mod cli;
pub mod commands;
pub mod domain;
pub mod error;
pub mod ledger;
pub mod money;
pub mod output;
pub mod report;
pub mod views;

use std::ffi::OsString;
use std::io;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::Cli;
use crate::error::WalletError;
use crate::output::OutputMode;
use crate::report::Report;

/// Runs `wallet` with these arguments and returns the process exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let wants_json = args
        .iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return 0;
        }
        // `wallet` alone: the overview is more use than a one-line complaint.
        Err(err)
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand && !wants_json =>
        {
            let _ = err.print();
            return 2;
        }
        Err(err) => {
            let rendered = err.to_string();
            let message = first_line(&rendered, err.kind().as_str().unwrap_or("invalid usage"));
            let message = if wants_json {
                message
            } else {
                format!("{message} (see --help)")
            };
            output::print_error(&WalletError::Usage(message), wants_json);
            return 2;
        }
    };
    let mode = OutputMode {
        json: cli.global.json,
        quiet: cli.global.quiet,
    };
    match commands::run(cli) {
        Ok(report) => match output::print_report(&report, mode) {
            Ok(()) => 0,
            Err(err) => output_failed(&report, err, mode.json),
        },
        Err(err) => {
            // What was done before the error is the command's output; a
            // person also sees the report that explains an error (the
            // checks `verify` ran), which in JSON travels inside the error.
            if let Some(report) = err
                .report()
                .filter(|_| err.report_is_output() || !mode.json)
                && let Err(output) = output::print_report(report, mode)
            {
                return output_failed(report, output, mode.json);
            }
            output::print_error(&err, mode.json);
            err.exit_code()
        }
    }
}

/// A report that could not be printed. After a commit that is an unknown
/// outcome to the caller, a closed pipe included; a command that only read
/// exits quietly when its reader went away (`| head`).
fn output_failed(report: &Report, err: io::Error, json: bool) -> u8 {
    let error = match report.change() {
        Some(what) => WalletError::unreported(what, &err, report.advice()),
        None if err.kind() == io::ErrorKind::BrokenPipe => return 0,
        None => WalletError::Io(err.into()),
    };
    output::print_error(&error, json);
    error.exit_code()
}

/// clap's message without its `error: ` prefix and usage block.
fn first_line(rendered: &str, fallback: &str) -> String {
    rendered
        .lines()
        .next()
        .map(|line| line.trim_start_matches("error: ").to_string())
        .filter(|line| !line.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}
