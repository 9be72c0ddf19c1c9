//! The command line as clap sees it: flags, subcommands and their help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ledger::Status;

const ABOUT: &str =
    "A wallet and ledger that keeps its books in a SQLite file or a PostgreSQL database.";

const LONG_ABOUT: &str = "A wallet and ledger that keeps its books in one SQLite file, \
or in a schema of a PostgreSQL database that many machines share.

Transfers, deposits and withdrawals are queued as PENDING and applied by \
`settle`, each exactly once. Amounts are exact decimals in the ledger's \
currency; a balance never goes below zero, or below minus the user's \
overdraft limit when one is set.

Exit status: 0 success; 1 I/O or internal error; 2 usage error; 3 not found; \
4 conflict; 5 invalid input; 6 busy or the server unreachable: retry (nothing \
changed, but for what a settle or batch that stopped part-way printed and \
named); 7 the ledger is \
damaged, foreign, newer, or older than a read can use (`wallet verify`, \
`wallet migrate`): stop; 8 outcome unknown, the change may have been written: \
look it up (`get-transfer`), or retry with the same --id, which is exact.";

const AFTER_HELP: &str = "Examples:
  wallet create-user alice alice@example.com
  wallet deposit alice 100.00
  wallet transfer alice bob 25.50 --id order-42
  wallet settle
  wallet --json get-user alice | jq -r .balance";

/// A count of things to take, from 1 to `MAX`: every `--limit` (and every
/// size) reads its value this way, so they accept and refuse alike.
fn count<const MAX: u64>(text: &str) -> Result<u64, String> {
    number::<1, MAX>(text)
}

/// A whole number from `MIN` to `MAX`, refused in words a person reads.
fn number<const MIN: u64, const MAX: u64>(text: &str) -> Result<u64, String> {
    let n: u64 = text
        .parse()
        .map_err(|_| format!("write a whole number from {MIN} to {MAX}"))?;
    match n {
        n if n < MIN => Err(format!("must be at least {MIN}")),
        n if n > MAX => Err(format!("must be at most {MAX}")),
        n => Ok(n),
    }
}

/// A transfer id: a whole number from 1.
fn tx_id(text: &str) -> Result<i64, String> {
    let n = number::<1, { i64::MAX as u64 }>(text)
        .map_err(|_| "a transfer id is a whole number from 1".to_string())?;
    Ok(n as i64)
}

#[derive(Debug, Parser)]
#[command(
    name = "wallet",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    infer_subcommands = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger,
    /// default wallet)
    #[arg(
        long,
        global = true,
        env = "WALLET_DB",
        // A PostgreSQL URL in the variable may carry a password.
        hide_env_values = true,
        default_value = "wallet.db",
        value_name = "PATH",
        overrides_with = "db"
    )]
    pub db: PathBuf,

    /// Print machine-readable JSON on stdout (errors as JSON on stderr)
    #[arg(long, global = true, overrides_with = "json")]
    pub json: bool,

    /// Print nothing on success but the data asked for
    #[arg(short, long, global = true, overrides_with = "quiet")]
    pub quiet: bool,

    /// How long to wait for another process's lock before failing with `busy`
    #[arg(
        long,
        global = true,
        env = "WALLET_LOCK_TIMEOUT",
        default_value_t = 5000,
        value_name = "MS",
        overrides_with = "lock_timeout",
        allow_negative_numbers = true,
        value_parser = number::<0, 2_147_483_647>
    )]
    pub lock_timeout: u64,
}

// Each subcommand's arguments are built only when it runs (or when help,
// completions or the man page ask for them): building all of them cost
// every command a tenth of a `get-user`. (Not a doc comment: clap would
// take it for the root's about.)
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create an empty ledger
    #[command(after_help = "Examples:
  wallet init
  wallet --db books.db init --currency USD --scale 2")]
    Init(InitArgs),

    /// Add a currency to the ledger: `currency add CODE --scale N`
    #[command(
        long_about = "Add a currency to the ledger.

The ledger starts with the currency `init` named, its default; `currency add \
CODE --scale N` adds another, with N decimal places. A currency's scale never \
changes: the same code and scale again answers the currency as it is \
(\"replayed\": true), the same code with another scale fails with \
`currency_exists` (exit 4). `wallet currencies` lists them.",
        after_help = "Examples:
  wallet currency add BTC --scale 8
  wallet --json currency add USD --scale 2"
    )]
    Currency(CurrencyArgs),

    /// List the ledger's currencies, the default first
    #[command(
        long_about = "List the ledger's currencies in the order they were added, the default \
(the one `init` named) first, each with its code, its scale (decimal places) \
and whether it is the default.",
        after_help = "Examples:
  wallet currencies
  wallet --json currencies | jq -r '.[].code'"
    )]
    Currencies,

    /// Add a user with a zero balance
    #[command(
        long_about = "Add a user with a zero balance.

Names are unique regardless of case, and a closed user's name stays taken. \
With --overdraft AMOUNT the user's balance may go down to -AMOUNT; the limit \
is recorded as the user's first policy change (0 means none).",
        after_help = "Examples:
  wallet create-user alice alice@example.com
  wallet create-user shop shop@example.com --overdraft 500.00"
    )]
    CreateUser(CreateUserArgs),

    /// Show a user's balance and pending totals, now or at a point of the past
    #[command(
        long_about = "Show a user's balance, available money, pending totals and held money.

`available` is balance + overdraft - pending_out - held: what the user can \
still commit without a transfer failing. `overdraft`, `frozen` and `closed` \
are the user's policy. With --at TIME it shows instead the balance then: \
what every transfer settled at or before TIME had left (a date means the end \
of that day, UTC), and the policy in force then; with --at-tx TX_ID the \
balance right after that transfer was applied to the user, and the policy in \
force when it was. Both are read from an index, however long the history.",
        after_help = "Examples:
  wallet get-user alice
  wallet --json get-user alice | jq -r .available
  wallet get-user alice --at 2026-11-25
  wallet get-user alice --at 2026-11-25T12:00:00Z
  wallet get-user alice --at-tx 42"
    )]
    GetUser(GetUserArgs),

    /// Queue money coming in to a user from outside the ledger
    #[command(after_help = "Example:
  wallet deposit alice 100.00 --memo \"salary\"")]
    Deposit(ExternalArgs),

    /// Queue money going out of a user to outside the ledger
    #[command(after_help = "Example:
  wallet withdraw alice 20 --id atm-2026-11-25")]
    Withdraw(ExternalArgs),

    /// Queue a transfer between two users, or many from a JSON Lines file
    #[command(
        long_about = "Queue a transfer between two users, or many from a JSON Lines file.

With --batch FILE (`-` reads stdin) each line is one transfer: \
{\"src\":\"alice\",\"dst\":\"bob\",\"amount\":\"10.00\",\"id\":\"key\",\"memo\":\"text\"}; \
`id` and `memo` are optional and a null `src` or `dst` is the outside world \
(a deposit or a withdrawal). For each non-blank line one JSON line is \
printed, in order, once its transfer is committed: \
{\"line\":N,\"tx_id\":…,\"status\":\"PENDING\"} or {\"line\":N,\"error\":{…}}. \
Good lines are queued and bad ones reported (exit 5 if any failed); with \
--atomic a single bad line queues nothing. With --format csv the file is CSV \
with a header row (src,dst,amount and optionally id,memo, each named once), \
every record with as many fields as the header and numbered by the file line \
it starts on; with --dry-run every line is checked against the ledger and \
nothing is written (on PostgreSQL the tx_ids it prints are used up: a later \
real run takes others).",
        after_help = "Examples:
  wallet transfer alice bob 25.50
  wallet transfer alice bob 25.50 --id order-42 --memo \"dinner\"
  wallet transfer --batch transfers.jsonl
  jq -c '.[]' payroll.json | wallet transfer --batch - --atomic
  wallet transfer --batch payroll.csv --format csv --dry-run"
    )]
    Transfer(TransferArgs),

    /// Queue an exchange: two transfers in two currencies, decided as one
    #[command(
        long_about = "Queue an exchange between two currencies through a desk: NAME pays AMOUNT CODE to DESK and DESK pays the --for amount back to NAME in the other currency, as two PENDING transfers (the legs) that settle decides together.

The desk (--via) is a user like any other, with its own balances, overdraft limits and policy: it provides the liquidity. Both legs complete, or both fail with the reason of the leg that could not be paid (NAME short of AMOUNT, the desk short of the --for amount, or either frozen); neither is ever applied alone. A pair is decided when both legs are next in their sources' tx_id order. Each amount is read at its own currency's scale; the two currencies must differ.

Prints the first leg's tx_id and the second's (pair_tx_id), both PENDING; with -q, the two ids on one line. The pair shares the --id key: a retry with the same fields returns both ids. Cancelling either leg cancels both, and a leg cannot be refunded alone.",
        after_help = "Examples:
  wallet exchange alice 1000.00 PHP --for 0.00030000 BTC --via desk
  wallet exchange alice 0.001 BTC --for 3300.00 PHP --via desk --id swap-7
  wallet -q exchange alice 50 USD --for 2800.00 PHP --via desk"
    )]
    Exchange(ExchangeArgs),

    /// Apply pending transfers, oldest first
    #[command(
        long_about = "Apply pending transfers, oldest first.

Each transfer becomes COMPLETED, or FAILED with reason insufficient_funds when \
its source cannot cover it. Each is applied exactly once, even with several \
settles running at once or one killed and run again.

With --watch it keeps running as a worker: it drains the queue, sleeps \
--interval milliseconds whenever the queue is empty, and on SIGINT or SIGTERM \
finishes the batch in hand, prints its summary and exits 0. Each batch is one \
transaction, so even SIGKILL loses or doubles nothing.

Order: one settle process decides transfers in tx_id order, so the same queue \
always has the same outcomes. On a PostgreSQL ledger any number of settle \
processes, on any number of machines, and the --workers of each, share the \
queue: each source account's transfers are still decided oldest first, one \
batch after another, but a credit from another account may land before or \
after a debit that a single worker would have decided in the other order. A \
ledger file has one writer at a time, so there one worker does the work. An exchange is decided when both its legs are next in their sources' tx_id order, both in one batch.",
        after_help = "Examples:
  wallet settle
  wallet settle --limit 100
  wallet settle --watch --interval 500
  wallet --db postgres://ledger@db.internal/books settle --watch --workers 4"
    )]
    Settle(SettleArgs),

    /// Show one transfer
    #[command(after_help = "Examples:
  wallet get-transfer 42
  wallet get-transfer --id order-42")]
    GetTransfer(GetTransferArgs),

    /// List a user's transfers, newest first
    #[command(after_help = "Examples:
  wallet history alice --limit 10
  wallet --json history alice --status FAILED | jq -r '.[].tx_id'")]
    History(HistoryArgs),

    /// Cancel a transfer that is still PENDING
    #[command(
        long_about = "Cancel a transfer that is still PENDING: it becomes CANCELLED and what it \
reserved is free again. Either leg of an exchange cancels both legs, in one \
transaction, and only while both are PENDING.",
        after_help = "Example:
  wallet cancel 42"
    )]
    Cancel(CancelArgs),

    /// List the users with their balances, a page at a time
    #[command(
        long_about = "List the users, by name regardless of case, with balance, available, \
pending and held money and their policy (overdraft limit, frozen, closed), a \
page at a time: --after NAME (the last name of the previous page) reads on.",
        after_help = "Examples:
  wallet users
  wallet users --limit 100 --after mallory
  wallet --json users | jq -r '.[] | \"\\(.name) \\(.balance)\"'"
    )]
    Users(UsersArgs),

    /// A trial balance: every account's balance, which sum to zero
    #[command(
        long_about = "A trial balance: each user's balance, the external account's (the \
negative of the money that came in net of what went out), and their total, \
which is zero by construction, for every currency of the ledger: a table \
per currency (every user in the default currency, in another the users \
with a balance in it). The JSON keeps the default currency's book at the \
top level (--currency CODE puts another there) and every currency's under \
`currencies`, by code. With --at TIME, the balances then: what every \
transfer settled at or before TIME had left.",
        after_help = "Examples:
  wallet balances
  wallet balances --at 2026-11-30
  wallet balances --currency BTC
  wallet --json balances | jq -r .total
  wallet --json balances | jq -r '.currencies.BTC.total'"
    )]
    Balances(BalancesArgs),

    /// Stream every transfer as JSON Lines, CSV or an hledger journal
    #[command(
        long_about = "Stream every transfer, oldest first, in constant memory: as JSON Lines \
(each line the object `get-transfer --json` prints), as CSV with a header row \
of the same fields (RFC 4180 quoting; the outside world and every absent \
value an empty field), or as an hledger journal (`*` COMPLETED, `!` \
PENDING, the tx_id as the code, memos and keys kept exactly; FAILED, CANCELLED and holds as comment lines; one account per \
user, assets:wallet:NAME, and equity:external for the outside world; each \
policy change a comment line in time order, such as `; 2026-12-03 change 3: \
alice overdraft limit 50.00 — memo`). JSON Lines and CSV hold transfers only. \
--since and --until bound the time each transfer was created, and each \
policy change made (inclusive).",
        after_help = "Examples:
  wallet export > transfers.jsonl
  wallet export --format csv --status COMPLETED > completed.csv
  wallet export --format hledger > wallet.journal && hledger -f wallet.journal bal -C
  wallet export --since 2026-11-01 --until 2026-11-30"
    )]
    Export(ExportArgs),

    /// Print the change feed as JSON Lines: holds, decisions, policy changes
    #[command(
        long_about = "Print the change feed, one JSON object a line, in the order the \
events committed: a hold placed, captured, released or expired \
(hold_placed, hold_captured, hold_released, hold_expired), a transfer decided \
by settle or cancelled (transfer_decided), an account's policy changed \
(policy_changed). Each object has an event_id to deduplicate by, its kind, \
when it happened (at), the tx_id or change_id it is about, and a cursor.

--after CURSOR prints only the events after that one: a consumer that keeps \
the cursor of the last event it processed misses none and repeats none, \
across restarts and, on PostgreSQL, across concurrent settle workers. A \
cursor is an opaque string; give it back as printed.

With --follow it keeps running: once the feed is printed it waits, and \
prints each new event as it commits, until SIGINT or SIGTERM, which end it \
with exit 0 after the line in hand. --limit N stops after N events, with or \
without --follow. A reader that goes away (`| head -1`) ends it quietly, \
exit 0. The output is JSON Lines with or without --json.",
        after_help = "Examples:
  wallet events
  wallet events --after 1042 --limit 100
  wallet events --follow --after \"$(cat feed.cursor)\" | ./consume"
    )]
    Events(EventsArgs),

    /// Reserve money for a later transfer: a hold, captured or released later
    #[command(
        long_about = "Reserve money for a later transfer: a hold.

The hold is placed only if SRC's available money covers AMOUNT; from then on \
`available` excludes it and no other transfer can spend it, but nothing \
moves. `wallet capture` turns it into a PENDING transfer (all of it or \
part), `wallet release` voids it, and past --expires-in/--expires-at it \
stops reserving money and can no longer be captured (status EXPIRED). Prints \
the hold's tx_id with status HELD.

A retry with the same --id replays the hold only if it asks the same expiry: \
the same --expires-at instant, or the same --expires-in duration (counted from \
when the hold was placed, so `60m` replays `1h`); any other is an \
idempotency_conflict.",
        after_help = "Examples:
  wallet hold alice shop 30.00 --expires-in 7d --id order-42
  wallet capture 42 25.00
  wallet release 42"
    )]
    Hold(HoldArgs),

    /// Turn a live hold into a PENDING transfer of all of it or part
    #[command(
        long_about = "Turn a live hold into a PENDING transfer, with the same tx_id.

Without AMOUNT all of the hold is captured; with it that much, and the rest \
is released. `settle` applies it in tx_id order and never fails it for \
funds: the money was reserved. A hold that is no longer live (captured, \
released or expired) fails with `not_held` (exit 4); `wallet get-transfer` \
shows which came first.",
        after_help = "Examples:
  wallet capture 42
  wallet capture 42 12.50"
    )]
    Capture(CaptureArgs),

    /// Void a live hold: its money is available again
    #[command(after_help = "Example:
  wallet release 42")]
    Release(ReleaseArgs),

    /// Queue a refund of a COMPLETED transfer, all of it or part
    #[command(
        long_about = "Queue a refund of a COMPLETED transfer: a transfer back from its \
destination to its source, linked to it (refund_of), for all of it or AMOUNT.

The refunds of one transfer never add up to more than it: checked when queued \
(counting refunds still PENDING) and again when settled. A deposit's refund \
is a withdrawal, a withdrawal's a deposit. `get-transfer` of the original \
shows `refunded` (the sum of its COMPLETED refunds) and `refunds` (their ids). \
A leg of an exchange cannot be refunded alone (not_refundable).",
        after_help = "Examples:
  wallet refund 42
  wallet refund 42 5.00 --id refund-42-a --memo \"damaged item\""
    )]
    Refund(RefundArgs),

    /// Set a user's overdraft limit: how far below zero its balance may go
    #[command(
        long_about = "Set a user's overdraft limit: how far below zero its balance may go.

`available` counts the limit (balance + overdraft - pending_out - held), and \
settle and holds decide against it. An AMOUNT of 0 removes the limit. A limit \
lowered below what is already drawn is taken, but new debits then fail until \
the balance is back within it. Every change is recorded with its time (`get-user \
--at` shows the limit in force then) and printed as \
{\"change_id\",\"user\",\"change\",\"overdraft\",\"memo\",\"at\"}. A closed \
user takes no change (`account_closed`, exit 4).",
        after_help = "Examples:
  wallet overdraft shop 500.00 --memo \"credit line approved\"
  wallet overdraft shop 0"
    )]
    Overdraft(OverdraftArgs),

    /// Freeze a user: no money leaves the account until it is unfrozen
    #[command(
        long_about = "Freeze a user: no money leaves the account until it is unfrozen.

While frozen, transfers from the user fail at settle with reason \
`account_frozen`, new holds from it and captures of its holds are refused; \
transfers to it are still accepted, and queueing still works. The change is \
recorded (`change_id`, time, memo) even when the user was frozen already.",
        after_help = "Example:
  wallet freeze alice --memo \"under review, ticket 4411\""
    )]
    Freeze(PolicyArgs),

    /// Unfreeze a user: money may leave the account again
    #[command(after_help = "Example:
  wallet unfreeze alice --memo \"review closed\"")]
    Unfreeze(PolicyArgs),

    /// Close a user for good: only an empty account, never reopened
    #[command(
        long_about = "Close a user for good.

Only an empty account closes: a balance, money pending in or out, or money \
held fails with `account_not_empty` (exit 4), saying what is left. A closed \
user takes no new transfer and no policy change, cannot be reopened, keeps \
its history, and its name stays taken.",
        after_help = "Example:
  wallet close alice --memo \"customer request\""
    )]
    Close(PolicyArgs),

    /// Print a shell completion script
    #[command(
        long_about = "Print a shell completion script on stdout.

The same scripts are kept in the source tree under completions/; the guide's \
section on shell completions (docs/guide.md) says where each shell looks for \
them.",
        after_help = "Examples:
  wallet completions bash > ~/.local/share/bash-completion/completions/wallet
  wallet completions zsh > ~/.zfunc/_wallet
  wallet completions fish > ~/.config/fish/completions/wallet.fish"
    )]
    Completions(CompletionsArgs),

    /// Print a manual page (roff) for wallet or one of its commands
    #[command(
        hide = true,
        after_help = "Examples:
  wallet man | man -l -
  wallet man transfer > wallet-transfer.1"
    )]
    Man(ManArgs),

    /// Check every ledger invariant and report each check
    #[command(
        long_about = "Check every ledger invariant and report each check by name.

Recomputes every balance and pending total from the transfers, checks that \
the balances of each currency sum to zero and none is negative, that each \
transfer's fields agree with its status, that the two legs of each exchange \
link to each other and were decided alike (`pairs`), and that the file and \
its schema are sound. Exits 0 \
when all hold; otherwise exits 7 with code `integrity`, naming each user and \
transfer concerned. Reads only; safe to run while other commands write.

The check `chain` recomputes the hash chain that `settle` seals over \
decided transfers: a transfer edited, deleted or inserted (its currency and \
the other leg of its exchange included), or a currency's code or scale \
changed, breaks the first link that covers it. --head \
prints the chain's head hash and position; --expect-head HASH fails unless \
the chain still extends a head recorded earlier.

Whoever can write the ledger can also delete its newest links and let the \
next `settle` seal edited books again: plain `verify` then passes. Only a \
head kept outside the ledger catches that. --record-head FILE appends \
today's head to FILE (one JSON line: hash, link, last_tx, recorded_at) once \
every check passed; --heads FILE fails unless the chain still extends every \
head recorded in FILE. Keep FILE on another machine or append-only storage.",
        after_help = "Examples:
  wallet verify
  wallet verify --quick
  wallet --json verify --head | jq -r .head.hash
  wallet verify --expect-head 3f9a…  (a head recorded earlier)
  wallet settle && wallet verify --record-head /backup/wallet-heads.jsonl
  wallet --db restored.db verify --heads /backup/wallet-heads.jsonl
  wallet --json verify | jq -r '.checks[] | \"\\(.name) \\(.ok)\"'"
    )]
    Verify(VerifyArgs),

    /// Upgrade the ledger's schema to the version this binary writes
    #[command(
        long_about = "Upgrade the ledger's schema to the version this binary writes.

Commands that write upgrade an older ledger themselves; commands that only \
read never change the file, and on a ledger older than they read they fail \
with `upgrade_needed` (exit 7). `migrate` upgrades explicitly, in one \
transaction, and says from which version to which; on a ledger already up \
to date it changes nothing.",
        after_help = "Examples:
  wallet migrate
  wallet --json migrate | jq -r .to"
    )]
    Migrate,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print the hash chain's head (its hash and position) after checking it
    #[arg(long)]
    pub head: bool,

    /// Fail unless the hash chain still extends this head (a hash printed by
    /// --head earlier): nothing sealed before it was rewritten
    #[arg(long, value_name = "HASH")]
    pub expect_head: Option<String>,

    /// Once every check passes, append the chain's head to FILE as one JSON
    /// line (created if missing); nothing when nothing is sealed yet or FILE
    /// ends with this head already
    #[arg(long, value_name = "FILE")]
    pub record_head: Option<PathBuf>,

    /// Fail unless the hash chain still extends every head recorded in FILE
    /// (lines --record-head wrote, or bare hashes --head printed)
    #[arg(long, value_name = "FILE")]
    pub heads: Option<PathBuf>,

    /// Check the file's pages with SQLite's quick_check instead of the full
    /// integrity_check (which also compares every index with its table)
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Currency code shown with every amount
    #[arg(long, default_value = "PHP", value_name = "CODE")]
    pub currency: String,

    /// Decimal places of the currency
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub scale: u8,
}

#[derive(Debug, Args)]
pub struct CurrencyArgs {
    #[command(subcommand)]
    pub command: CurrencyCommand,
}

#[derive(Debug, Subcommand)]
pub enum CurrencyCommand {
    /// Add a currency with its scale; the same code and scale again replays
    #[command(
        long_about = "Add a currency with its scale (decimal places).

Prints {\"status\":\"created\",\"code\",\"scale\",\"replayed\"}; with -q only \
the code. The same code and scale again answers the currency as it is, with \
\"replayed\": true; the same code with another scale fails with \
`currency_exists` (exit 4), as a scale never changes. A code is 2-8 ASCII \
letters or digits starting with a letter, in any case (kept upper-cased); \
anything else is `invalid_currency` (exit 5).",
        after_help = "Examples:
  wallet currency add BTC --scale 8
  wallet -q currency add usd --scale 2"
    )]
    Add(CurrencyAddArgs),
}

#[derive(Debug, Args)]
pub struct CurrencyAddArgs {
    /// Currency code: 2-8 ASCII letters or digits starting with a letter
    pub code: String,

    /// Decimal places of the currency
    #[arg(long, value_name = "N")]
    pub scale: u8,
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// User name: 1-32 ASCII letters, digits, '.', '_', '-'
    pub name: String,
    /// Email address
    pub email: String,

    /// How far below zero the balance may go, e.g. 500.00 (0: none)
    #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
    pub overdraft: Option<String>,
}

#[derive(Debug, Args)]
pub struct OverdraftArgs {
    /// User name (any case)
    pub name: String,
    /// The new limit, e.g. 500 or 500.00; 0 removes it
    #[arg(allow_hyphen_values = true)]
    pub amount: String,

    /// The currency of the limit, by code (default: the ledger's default currency)
    #[arg(long, value_name = "CODE", allow_hyphen_values = true)]
    pub currency: Option<String>,

    /// A note recorded with the change
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub memo: Option<String>,
}

// The arguments of `freeze`, `unfreeze` and `close`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// User name (any case)
    pub name: String,

    /// A note recorded with the change
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub memo: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetUserArgs {
    /// User name (any case)
    pub name: String,

    /// The balance at this instant: RFC 3339, or a date (the end of that day, UTC)
    #[arg(long, value_name = "TIME", conflicts_with = "at_tx")]
    pub at: Option<String>,

    /// The balance right after this transfer was applied to the user, in its currency unless --currency names one
    #[arg(long, value_name = "TX_ID", allow_negative_numbers = true, value_parser = tx_id)]
    pub at_tx: Option<i64>,

    /// Show this currency's figures at the top level (default: the ledger's default currency)
    #[arg(long, value_name = "CODE", allow_hyphen_values = true)]
    pub currency: Option<String>,
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Show at most N users
    #[arg(long, default_value_t = 100, value_name = "N", allow_negative_numbers = true,
          value_parser = count::<100_000>)]
    pub limit: u64,

    /// Only users whose name comes after NAME (the last name of the previous page)
    #[arg(long, value_name = "NAME")]
    pub after: Option<String>,
}

#[derive(Debug, Args)]
pub struct BalancesArgs {
    /// The balances at this instant: RFC 3339, or a date (the end of that day, UTC)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Show this currency's book at the top level, and only its table (default: every currency, the default at the top level)
    #[arg(long, value_name = "CODE", allow_hyphen_values = true)]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    Hledger,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The format to write
    #[arg(long, value_enum, default_value = "jsonl", ignore_case = true)]
    pub format: ExportFormat,

    /// Only transfers created at or after TIME (RFC 3339, or a date: its start, UTC)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only transfers created at or before TIME (RFC 3339, or a date: its end, UTC)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only transfers with this status (repeat for several)
    #[arg(long, value_enum, ignore_case = true, value_name = "S")]
    pub status: Vec<StatusArg>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only the events after this cursor (the \"cursor\" of an event printed before)
    #[arg(long, value_name = "CURSOR", allow_hyphen_values = true)]
    pub after: Option<String>,

    /// Keep running: print new events as they commit, until SIGINT or SIGTERM
    #[arg(long)]
    pub follow: bool,

    /// Print at most N events, then exit
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = count::<1_000_000_000_000>)]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// User whose money is reserved
    pub src: String,
    /// User who receives it when the hold is captured
    pub dst: String,
    /// Amount, e.g. 100 or 100.50
    #[arg(allow_hyphen_values = true)]
    pub amount: String,

    /// Expire this long after it is placed: 90s, 30m, 12h, 7d
    #[arg(
        long,
        value_name = "DURATION",
        conflicts_with = "expires_at",
        allow_hyphen_values = true
    )]
    pub expires_in: Option<String>,

    /// Expire at this instant (RFC 3339, or a date: the end of that day, UTC)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub expires_at: Option<String>,

    /// The currency of the amount, by code (default: the ledger's default currency)
    #[arg(long, value_name = "CODE", allow_hyphen_values = true)]
    pub currency: Option<String>,

    #[command(flatten)]
    pub queue: QueueArgs,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The hold's tx_id
    #[arg(allow_negative_numbers = true, value_parser = tx_id)]
    pub tx_id: i64,
    /// How much to capture; all of the hold if absent
    #[arg(allow_hyphen_values = true)]
    pub amount: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The hold's tx_id
    #[arg(allow_negative_numbers = true, value_parser = tx_id)]
    pub tx_id: i64,
}

#[derive(Debug, Args)]
pub struct RefundArgs {
    /// The COMPLETED transfer to refund
    #[arg(allow_negative_numbers = true, value_parser = tx_id)]
    pub tx_id: i64,
    /// How much to refund; all of the transfer if absent
    #[arg(allow_hyphen_values = true)]
    pub amount: Option<String>,
    #[command(flatten)]
    pub queue: QueueArgs,
}

// Options every queued transfer takes.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Idempotency key: a retry with the same key and fields returns the first transfer
    #[arg(long = "id", value_name = "KEY", allow_hyphen_values = true)]
    pub key: Option<String>,

    /// A note stored with the transfer
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub memo: Option<String>,
}

// The arguments of `deposit` and `withdraw`: one user and the external account.
#[derive(Debug, Args)]
pub struct ExternalArgs {
    /// User name (any case)
    pub name: String,
    /// Amount, e.g. 100 or 100.50
    #[arg(allow_hyphen_values = true)]
    pub amount: String,
    /// The currency of the amount, by code (default: the ledger's default currency)
    #[arg(long, value_name = "CODE", allow_hyphen_values = true)]
    pub currency: Option<String>,
    #[command(flatten)]
    pub queue: QueueArgs,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// User sending the money
    #[arg(required_unless_present = "batch")]
    pub src: Option<String>,
    /// User receiving the money
    #[arg(required_unless_present = "batch")]
    pub dst: Option<String>,
    /// Amount, e.g. 100 or 100.50
    #[arg(allow_hyphen_values = true, required_unless_present = "batch")]
    pub amount: Option<String>,
    /// The currency of the amount, by code (default: the ledger's default currency)
    #[arg(long, value_name = "CODE", allow_hyphen_values = true)]
    pub currency: Option<String>,
    #[command(flatten)]
    pub queue: QueueArgs,

    /// Queue every transfer in FILE (`-` for stdin), one JSON object per line
    #[arg(long, value_name = "FILE", conflicts_with_all = ["src", "dst", "amount", "key", "memo", "currency"])]
    pub batch: Option<PathBuf>,

    /// With --batch: queue all lines or, if any line fails, none
    #[arg(long)]
    pub atomic: bool,

    /// With --batch: lines per transaction, default 100000 (ignored with --atomic)
    #[arg(long, value_name = "N",
          allow_negative_numbers = true, value_parser = count::<10_000_000>)]
    pub chunk_size: Option<u64>,

    /// With --batch: the input's format, JSON Lines or CSV with a header row
    /// (src,dst,amount and optionally id,memo,currency)
    #[arg(
        long,
        value_enum,
        default_value = "jsonl",
        ignore_case = true,
        requires = "batch"
    )]
    pub format: BatchFormat,

    /// With --batch: check every line against the ledger and print what would
    /// be queued, writing nothing (a later real run may take other tx_ids)
    #[arg(long, requires = "batch")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExchangeArgs {
    /// User paying the first amount
    pub name: String,
    /// Amount NAME pays, e.g. 1000.00
    #[arg(allow_hyphen_values = true)]
    pub amount: String,
    /// The currency NAME pays in, by code
    pub code: String,
    /// What the desk pays back: AMOUNT CODE, in another currency
    #[arg(long = "for", num_args = 2, value_names = ["AMOUNT", "CODE"],
          required = true, allow_hyphen_values = true)]
    pub counter: Vec<String>,
    /// The user that provides the liquidity: it receives the first amount
    /// and pays the second
    #[arg(long, value_name = "DESK", required = true)]
    pub via: String,
    #[command(flatten)]
    pub queue: QueueArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BatchFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct SettleArgs {
    /// Settle at most N transfers (N + 1 when the cap falls between an
    /// exchange's two legs, which settle together)
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = count::<1_000_000_000_000>)]
    pub limit: Option<u64>,

    /// Transfers applied per transaction [default: 200000 on a ledger file,
    /// 1000 on PostgreSQL]
    #[arg(long, value_name = "N",
          allow_negative_numbers = true, value_parser = count::<1_000_000>)]
    pub batch_size: Option<u64>,

    /// Keep running: settle transfers as they are queued, until SIGINT or SIGTERM
    #[arg(long, conflicts_with = "limit")]
    pub watch: bool,

    /// With --watch: how long to sleep when the queue is empty
    #[arg(long, default_value_t = 200, value_name = "MS", requires = "watch",
          allow_negative_numbers = true, value_parser = count::<3_600_000>)]
    pub interval: u64,

    /// Settle with N workers, each on its own connection (PostgreSQL; a
    /// ledger file uses one)
    #[arg(long, default_value_t = 1, value_name = "N",
          allow_negative_numbers = true, value_parser = count::<64>)]
    pub workers: u64,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct GetTransferArgs {
    /// Transfer id
    #[arg(group = "which", allow_negative_numbers = true, value_parser = tx_id)]
    pub tx_id: Option<i64>,

    /// Look the transfer up by its idempotency key instead
    #[arg(
        long = "id",
        value_name = "KEY",
        group = "which",
        allow_hyphen_values = true
    )]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// User name (any case)
    pub name: String,

    /// Show at most N transfers
    #[arg(long, default_value_t = 50, value_name = "N", allow_negative_numbers = true,
          value_parser = count::<100_000>)]
    pub limit: u64,

    /// Only transfers with this status
    #[arg(long, value_enum, ignore_case = true, value_name = "S")]
    pub status: Option<StatusArg>,

    /// Only transfers older than this id (the last tx_id of the previous page)
    #[arg(long, value_name = "TX_ID", allow_negative_numbers = true, value_parser = tx_id)]
    pub before: Option<i64>,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Transfer id
    #[arg(allow_negative_numbers = true, value_parser = tx_id)]
    pub tx_id: i64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command to print the page of, e.g. transfer, or currency add; the main page if absent
    #[arg(value_name = "COMMAND", num_args = 0..)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusArg {
    Pending,
    Completed,
    Failed,
    Cancelled,
    Held,
    Released,
    Expired,
}

impl From<StatusArg> for Status {
    fn from(arg: StatusArg) -> Self {
        match arg {
            StatusArg::Pending => Status::Pending,
            StatusArg::Completed => Status::Completed,
            StatusArg::Failed => Status::Failed,
            StatusArg::Cancelled => Status::Cancelled,
            StatusArg::Held => Status::Held,
            StatusArg::Released => Status::Released,
            StatusArg::Expired => Status::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_help_ends_with_an_example() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            let after = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                after.contains("wallet "),
                "{} has no example",
                sub.get_name()
            );
        }
    }
}
