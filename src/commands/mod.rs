//! One module per subcommand, each with a `run` that returns a [`Report`].

mod balances;
mod cancel;
mod capture;
mod change_policy;
mod close;
mod completions;
mod create_user;
mod currencies;
mod currency;
mod deposit;
mod events;
mod exchange;
mod export;
mod freeze;
mod get_transfer;
mod get_user;
mod history;
mod hold;
mod init;
mod man;
mod migrate;
mod overdraft;
mod queue;
mod refund;
mod release;
mod settle;
mod signals;
mod transfer;
mod transfer_batch;
mod unfreeze;
mod users;
mod verify;
mod withdraw;

use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::ledger::{Ledger, Location, OpenOptions};
use crate::money::Currency;
use crate::output::Report;

/// What every command needs besides its own arguments.
pub struct Context {
    pub db: Location,
    pub open_options: OpenOptions,
    /// Whether long work may draw a progress bar on stderr.
    pub show_progress: bool,
    /// Whether to leave out the closing summary a stream prints on stderr
    /// (`--quiet`, and `--json` where stderr is kept for errors).
    pub quiet_summary: bool,
    /// Whether errors and warnings go to stderr as JSON (`--json`).
    pub json_errors: bool,
}

impl Context {
    /// Opens the ledger, which must exist, to write to it; an older schema
    /// is upgraded first.
    pub(crate) fn open(&self) -> Result<Ledger> {
        Ledger::open(&self.db, &self.open_options)
    }

    /// Opens the ledger, which must exist, only to read it: nothing in it
    /// changes, and an older schema is `upgrade_needed`.
    pub(crate) fn open_to_read(&self) -> Result<Ledger> {
        Ledger::open_to_read(&self.db, &self.open_options)
    }

    /// Opens the ledger, creating an empty one with the default currency.
    pub(crate) fn open_or_create(&self) -> Result<Ledger> {
        Ledger::open_or_create(&self.db, &Currency::default(), &self.open_options)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Report> {
    let context = Context {
        db: Location::parse(&cli.global.db)?,
        open_options: OpenOptions {
            lock_timeout: Duration::from_millis(cli.global.lock_timeout),
        },
        show_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()) && !cli.global.quiet,
        quiet_summary: cli.global.quiet || cli.global.json,
        json_errors: cli.global.json,
    };
    match cli.command {
        Command::Init(args) => init::run(&context, args),
        Command::Currency(args) => currency::run(&context, args),
        Command::Currencies => currencies::run(&context),
        Command::CreateUser(args) => create_user::run(&context, args),
        Command::GetUser(args) => get_user::run(&context, args),
        Command::Deposit(args) => deposit::run(&context, args),
        Command::Withdraw(args) => withdraw::run(&context, args),
        Command::Transfer(args) => transfer::run(&context, args),
        Command::Settle(args) => settle::run(&context, args),
        Command::GetTransfer(args) => get_transfer::run(&context, args),
        Command::History(args) => history::run(&context, args),
        Command::Cancel(args) => cancel::run(&context, args),
        Command::Users(args) => users::run(&context, args),
        Command::Balances(args) => balances::run(&context, args),
        Command::Export(args) => export::run(&context, args),
        Command::Events(args) => events::run(&context, args),
        Command::Hold(args) => hold::run(&context, args),
        Command::Exchange(args) => exchange::run(&context, args),
        Command::Capture(args) => capture::run(&context, args),
        Command::Release(args) => release::run(&context, args),
        Command::Refund(args) => refund::run(&context, args),
        Command::Overdraft(args) => overdraft::run(&context, args),
        Command::Freeze(args) => freeze::run(&context, args),
        Command::Unfreeze(args) => unfreeze::run(&context, args),
        Command::Close(args) => close::run(&context, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::Verify(args) => verify::run(&context, args),
        Command::Migrate => migrate::run(&context),
    }
}
