//! `wallet completions`: a shell completion script generated from the command line's definition.

use clap_complete::Generator;
use serde::Serialize;

use crate::cli::CompletionsArgs;
use crate::error::Result;
use crate::output::{Human, Report, completion_script};

#[derive(Serialize)]
struct Completions {
    shell: String,
    file_name: String,
    script: String,
}

pub(super) fn run(args: CompletionsArgs) -> Result<Report> {
    let script = completion_script::script(args.shell);
    Ok(Report::new(
        Completions {
            shell: args.shell.to_string(),
            file_name: args.shell.file_name("wallet"),
            script: script.clone(),
        },
        Human::Text(script),
    ))
}
