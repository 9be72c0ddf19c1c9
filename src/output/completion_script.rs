//! Shell completion scripts, generated from the command line's definition
//! with hidden commands left out and each value's kind told apart.

use clap::{Command, CommandFactory, ValueHint};
use clap_complete::Shell;

use crate::cli::Cli;

/// The completion script for `shell`, as committed under `completions/`.
pub(crate) fn script(shell: Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut completed_command(), "wallet", &mut buf);
    String::from_utf8(buf).expect("clap_complete writes UTF-8")
}

/// The command line as completion offers it: hidden commands left out, and
/// every value told apart, so that only the two flags that take a file
/// (`--db`, `--batch`) complete file names; statuses and shells complete
/// from their lists.
fn completed_command() -> Command {
    // Built first: each subcommand's arguments are deferred until then
    // (see `cli::Command`). What building adds (the help and version flags,
    // the help subcommands) is left for `visible` to make again.
    let mut root = Cli::command();
    root.build();
    let mut visible = Command::new("wallet")
        .about(root.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"));
    for arg in root.get_arguments().filter(|arg| !added_by_building(arg)) {
        visible = visible.arg(arg.clone());
    }
    for sub in root
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        visible = visible.subcommand(if sub.has_subcommands() {
            unbuilt(sub)
        } else {
            sub.clone()
        });
    }
    with_value_hints(visible)
}

fn added_by_building(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

/// A built command with subcommands of its own, made again without what
/// building added: `visible` copies its help tree (`wallet help currency
/// …`) before it builds its subcommands, so a subcommand's own help
/// subcommand, which that tree does not accept, stays out of it.
fn unbuilt(built: &Command) -> Command {
    let mut command = Command::new(built.get_name().to_string())
        .version(env!("CARGO_PKG_VERSION"))
        .hide(built.is_hide_set());
    if let Some(about) = built.get_about() {
        command = command.about(about.clone());
    }
    for arg in built.get_arguments().filter(|arg| !added_by_building(arg)) {
        command = command.arg(arg.clone());
    }
    for sub in built
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        command = command.subcommand(sub.clone());
    }
    command
}

fn with_value_hints(command: Command) -> Command {
    command
        .mut_args(|arg| {
            let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values())
                || !arg.is_positional() && arg.get_action().takes_values();
            if !takes_value || arg.get_value_hint() != ValueHint::Unknown {
                return arg;
            }
            let hint = match arg.get_id().as_str() {
                "db" | "batch" => ValueHint::FilePath,
                _ => ValueHint::Other,
            };
            arg.value_hint(hint)
        })
        .mut_subcommands(with_value_hints)
}
