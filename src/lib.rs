//! `wallet`: a command-line wallet and ledger that keeps its books in one SQLite file.

pub mod cli;
pub mod commands;
pub mod domain;
pub mod error;
mod head_file;
pub(crate) mod input;
pub mod ledger;
mod location;
pub mod money;
pub(crate) mod output;
pub(crate) mod text;
pub(crate) mod time;

use std::ffi::OsString;
use std::io;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::error::WalletError;
use crate::output::{OutputMode, Report};

/// Runs `wallet` with these arguments and returns the process exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let wants_json = args
        .iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json");
    if let Some(err) = empty_environment(&args) {
        output::print_error(&err, wants_json);
        return err.exit_code();
    }
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            // Help a reader stopped early (`| head`) is fine; help lost to a
            // full disk is not.
            return match err.print() {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    output::print_error(&WalletError::Io(e.into()), wants_json);
                    1
                }
                _ => 0,
            };
        }
        // `wallet` alone: the overview is more use than a one-line complaint.
        Err(err)
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand && !wants_json =>
        {
            let _ = err.print();
            return 2;
        }
        Err(err) => {
            if let Some(refused) = value_led_by_a_dash(&err, &args) {
                output::print_error(&refused, wants_json);
                return refused.exit_code();
            }
            let rendered = err.to_string();
            let message = one_line(&rendered, err.kind().as_str().unwrap_or("invalid usage"));
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
    // Stdout on `/dev/null`, however it was opened, is an answer the
    // caller chose to drop; a stdout closed with `>&-` is `/dev/null` too
    // by the time `main` runs (Rust's runtime reopens it), so both run the
    // command as any other stdout would.
    match commands::run(cli) {
        Ok(report) => match output::print_report(&report, mode) {
            Ok(()) => 0,
            Err(err) => output_failed(&report, err, mode.json),
        },
        Err(err) => {
            // What was done before the error is the command's output; a
            // person also sees the report that explains an error (the
            // checks `verify` ran), which in JSON travels inside the error.
            if let Some(report) =
                output::report_of(&err).filter(|_| err.done_is_output() || !mode.json)
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

/// A user name or email that begins with `-` (`create-user -bob`) reaches
/// clap as an unknown flag; it is a bad value like any other, refused by the
/// rule for its kind.
fn value_led_by_a_dash(err: &clap::Error, args: &[OsString]) -> Option<WalletError> {
    use clap::error::ContextKind;
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let reported = err.get(ContextKind::InvalidArg)?.to_string();
    if reported.starts_with("--") {
        return None;
    }
    let words: Vec<&str> = args.iter().skip(1).filter_map(|arg| arg.to_str()).collect();
    let command = words.iter().position(|word| {
        [
            "create-user",
            "get-user",
            "history",
            "deposit",
            "withdraw",
            "transfer",
        ]
        .contains(word)
    })?;
    // The value of an option (`--limit -1`) is that option's to judge.
    let value = words[command..]
        .windows(2)
        .find(|pair| {
            !pair[0].starts_with('-')
                && pair[1].starts_with(reported.as_str())
                && !pair[1].starts_with("--")
        })
        .map(|pair| pair[1])?;
    if value.contains('@') {
        domain::Email::parse(value).err()
    } else {
        domain::UserName::parse(value).err()
    }
}

/// Parses the command line: against the subcommand it names alone when it
/// can, against the whole definition otherwise.
fn parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    match parse_as_named(args) {
        Some(cli) => Ok(cli),
        None => parse_whole(args),
    }
}

fn parse_whole(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut matches = without_empty_variables(Cli::command()).try_get_matches_from(args)?;
    Cli::from_arg_matches_mut(&mut matches)
}

/// A variable of ours that is empty (and was overridden by its flag, see
/// [`empty_environment`]) is not read: clap would take it for a missing
/// value.
fn without_empty_variables(mut command: clap::Command) -> clap::Command {
    for (var, id) in [("WALLET_DB", "db"), ("WALLET_LOCK_TIMEOUT", "lock_timeout")] {
        if std::env::var_os(var).is_some_and(|value| value.is_empty()) {
            command = command.mut_arg(id, |arg| arg.env(None));
        }
    }
    command
}

/// Parses the command line against a root that holds only the subcommand
/// it names. Before it parses, clap copies the four global options into
/// each of the root's thirty subcommands, which cost a command about a
/// tenth of a `get-user`'s instructions. `None` leaves the command line to
/// the whole definition: when no subcommand is named plainly, and on any
/// error, help or version, which are then worded as the whole definition
/// words them. A command line that parses here parses there alike: the
/// root's options and the subcommand are the same, and no other subcommand
/// takes part in parsing one that is named in full.
fn parse_as_named(args: &[OsString]) -> Option<Cli> {
    use clap::{Args, Subcommand};
    let name = named_subcommand(args)?;
    let every = cli::Command::augment_subcommands(clap::Command::new("wallet"));
    let named = every.find_subcommand(name)?.clone();
    // The version flag is every subcommand's too: without it, a `-V` where
    // an amount may begin with a dash would be taken for the amount.
    let root = cli::GlobalArgs::augment_args(clap::Command::new("wallet"))
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommand(named)
        .subcommand_required(true)
        .infer_subcommands(false);
    let mut matches = without_empty_variables(root)
        .try_get_matches_from(args)
        .ok()?;
    Cli::from_arg_matches_mut(&mut matches).ok()
}

/// The first word of the command line past the root's own options, when
/// every word before it is one of them.
fn named_subcommand(args: &[OsString]) -> Option<&str> {
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        match word.to_str()? {
            "--db" | "--lock-timeout" => {
                words.next()?;
            }
            "--json" | "--quiet" | "-q" => {}
            option if option.starts_with("--db=") || option.starts_with("--lock-timeout=") => {}
            option if option.starts_with('-') => return None,
            name => return Some(name),
        }
    }
    None
}

/// A variable of ours exported but empty would reach clap as an empty
/// value and be blamed on the flag; name the variable instead, unless the
/// flag was given and the variable does not count.
fn empty_environment(args: &[OsString]) -> Option<WalletError> {
    let given = |flag: &str| {
        args.iter()
            .skip(1)
            .take_while(|arg| *arg != "--")
            .filter_map(|arg| arg.to_str())
            .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
    };
    [
        ("WALLET_DB", "--db"),
        ("WALLET_LOCK_TIMEOUT", "--lock-timeout"),
    ]
    .into_iter()
    .find(|(var, flag)| std::env::var_os(var).is_some_and(|value| value.is_empty()) && !given(flag))
    .map(|(var, flag)| {
        WalletError::Usage(format!(
            "the environment variable {var} is set but empty; unset it or give {flag}"
        ))
    })
}

/// clap's message on one line: its `error: ` prefix and usage block left
/// out, but every line before the usage kept (the missing argument's name,
/// the valid values, the flag it conflicts with).
fn one_line(rendered: &str, fallback: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(|line| line.trim().trim_start_matches("error: "))
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    if parts.is_empty() {
        fallback.to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        std::iter::once("wallet")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn a_command_line_parsed_as_named_is_parsed_alike_by_the_whole_definition() {
        let named = [
            "get-user alice",
            "--db x.db get-user alice --json",
            "--db=x.db -q --json transfer alice bob 1.50 --id k1 --memo rent",
            "--lock-timeout 0 transfer --batch - --atomic",
            "--lock-timeout=10 deposit alice 5 --db other.db",
            "--db settle settle --limit 3",
            "--json --json history alice --limit 100 -q",
            "currency add BTC --scale 8",
            "users",
            "verify",
            "balances --json",
        ];
        for line in named {
            let args = words(line);
            let fast =
                parse_as_named(&args).unwrap_or_else(|| panic!("{line}: not parsed as named"));
            let whole = parse_whole(&args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{line}");
        }
    }

    /// Words that may follow a subcommand: the root's options, options of
    /// subcommands, and values, some of which look like options.
    const WORDS: &[&str] = &[
        "--db",
        "--db=x.db",
        "x.db",
        "--json",
        "-q",
        "--quiet",
        "--lock-timeout",
        "--lock-timeout=5",
        "5",
        "-1",
        "1.50",
        "-V",
        "--version",
        "-h",
        "--help",
        "-Vq",
        "-qV",
        "--",
        "-",
        "alice",
        "bob",
        "a@example.com",
        "USD",
        "add",
        "--no-such",
        "help",
    ];

    /// The command lines of every subcommand's examples (each `wallet …`
    /// line of its help), split into words, and the options its own
    /// arguments answer to.
    fn examples_and_options() -> Vec<(Vec<String>, Vec<String>)> {
        fn walk(command: &clap::Command, out: &mut Vec<(Vec<String>, Vec<String>)>) {
            let mut options: Vec<String> = Vec::new();
            for arg in command.get_arguments() {
                options.extend(arg.get_long().map(|long| format!("--{long}")));
                options.extend(arg.get_short().map(|short| format!("-{short}")));
            }
            let help = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            for example in help
                .lines()
                .filter_map(|l| l.trim().strip_prefix("wallet "))
            {
                let words = example.split_whitespace().map(str::to_string).collect();
                out.push((words, options.clone()));
            }
            for sub in command.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut root = Cli::command();
        root.build();
        let mut out = Vec::new();
        for sub in root.get_subcommands() {
            walk(sub, &mut out);
        }
        out
    }

    /// A command line: a subcommand's example with words put in at random
    /// places (its own options, the root's, values that look like options),
    /// or now and then a soup of words.
    fn command_line() -> impl proptest::strategy::Strategy<Value = Vec<String>> {
        use proptest::prelude::*;
        let examples = examples_and_options();
        assert!(examples.len() > 30, "every subcommand has examples");
        let shaped = proptest::sample::select(examples).prop_flat_map(|(example, options)| {
            let mut pool: Vec<String> = options;
            pool.extend(WORDS.iter().map(|w| w.to_string()));
            let word = prop_oneof![
                8 => proptest::sample::select(pool),
                1 => "\\PC{0,6}",
            ];
            proptest::collection::vec((any::<proptest::sample::Index>(), word), 0..3).prop_map(
                move |inserted| {
                    let mut line = example.clone();
                    for (at, word) in inserted {
                        line.insert(at.index(line.len() + 1), word);
                    }
                    line
                },
            )
        });
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .chain(WORDS.iter().map(|w| w.to_string()))
            .collect();
        let soup = proptest::collection::vec(proptest::sample::select(names), 0..7);
        prop_oneof![4 => shaped, 1 => soup]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]

        /// Whatever a command line holds, parsing it as named either leaves
        /// it to the whole definition or gives what the whole definition
        /// gives.
        #[test]
        fn any_command_line_parsed_as_named_is_parsed_alike(
            line in command_line()
        ) {
            let args: Vec<OsString> = std::iter::once("wallet".to_string())
                .chain(line)
                .map(OsString::from)
                .collect();
            if let Some(fast) = parse_as_named(&args) {
                let whole = parse_whole(&args);
                proptest::prop_assert!(whole.is_ok(), "{args:?}: {:?}", whole.err().map(|e| e.kind()));
                proptest::prop_assert_eq!(format!("{fast:?}"), format!("{:?}", whole.unwrap()));
            }
        }
    }

    #[test]
    fn help_versions_errors_and_unplain_lines_are_left_to_the_whole_definition() {
        for line in [
            "",
            "help",
            "help transfer",
            "transfer --help",
            "transfer -h",
            "transfer --version",
            "deposit alice --version",
            "transfer alice bob -V",
            "withdraw alice -Vq",
            "--json hold alice --help",
            "-V",
            "--db",
            "-qj get-user alice",
            "transfer alice",
            "get-usr alice",
            "get-user alice --no-such-flag",
            "currency",
            "-- get-user alice",
        ] {
            assert!(parse_as_named(&words(line)).is_none(), "{line}");
        }
    }
}
