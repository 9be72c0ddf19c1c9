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
    // (see `cli::Command`). The root's help subcommand and flags, and the
    // help subcommands of commands with subcommands, are left for
    // `visible` to make again, as clap makes them when nothing is deferred.
    let mut root = Cli::command();
    root.build();
    let mut visible = remade(&root, "wallet")
        .version(env!("CARGO_PKG_VERSION"))
        .hide(false);
    for sub in root
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        visible = visible.subcommand(if sub.has_subcommands() {
            // Made, like every name here, once per generated script.
            let own = sub.get_subcommands().filter(|own| own.get_name() != "help");
            remade(sub, String::from(sub.get_name()).leak()).subcommands(own.cloned())
        } else {
            sub.clone()
        });
    }
    with_value_hints(visible)
}

/// A built command made again without its subcommands and what building
/// added, so that `visible`, building it, copies the subcommands it is then
/// given into the help tree (`wallet help currency add`) before it gives
/// it a help subcommand of its own, as clap does when nothing is deferred.
fn remade(built: &Command, name: &'static str) -> Command {
    let mut command = Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .hide(built.is_hide_set())
        .aliases(
            built
                .get_all_aliases()
                .map(|a| -> &'static str { String::from(a).leak() }),
        )
        .groups(built.get_groups().cloned());
    let texts = [
        (
            built.get_about(),
            Command::about as fn(Command, clap::builder::StyledStr) -> Command,
        ),
        (built.get_long_about(), Command::long_about),
        (built.get_before_help(), Command::before_help),
        (built.get_before_long_help(), Command::before_long_help),
        (built.get_after_help(), Command::after_help),
        (built.get_after_long_help(), Command::after_long_help),
    ];
    for (text, set) in texts {
        if let Some(text) = text {
            command = set(command, text.clone());
        }
    }
    for arg in built
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
    {
        command = command.arg(arg.clone());
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
