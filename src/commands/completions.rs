//! `wallet completions`: a shell completion script generated from the command line's definition.

use clap::CommandFactory;
use clap_complete::{Generator, Shell};
use serde::Serialize;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;
use crate::report::{Human, Report};

#[derive(Serialize)]
struct Completions {
    shell: String,
    file_name: String,
    script: String,
}

pub fn run(args: CompletionsArgs) -> Result<Report> {
    let script = script(args.shell);
    Ok(Report::new(
        Completions {
            shell: args.shell.to_string(),
            file_name: args.shell.file_name("wallet"),
            script: script.clone(),
        },
        Human::Text(script),
    ))
}

/// The completion script for `shell`, as committed under `completions/`.
pub fn script(shell: Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "wallet", &mut buf);
    String::from_utf8(buf).expect("clap_complete writes UTF-8")
}
