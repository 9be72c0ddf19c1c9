//! The errors a user or script can branch on, each carrying its contract code and exit code.

use std::any::Any;
use std::fmt::Debug;

use thiserror::Error;

use crate::location::{Location, NotAUrl};

/// What a command did or found before its error (its summary, the checks
/// `verify` ran), carried to where the error is printed. An error speaks
/// the contract and does not know how a result is shown, so here it is
/// only something the output module opted in to print.
pub trait Done: Any + Debug + Send + Sync {}

/// Every failure `wallet` reports. The variant decides the machine-readable
/// `code` and the process exit status, so the mapping lives in one place.
#[derive(Debug, Error)]
pub enum WalletError {
    #[error("{0}")]
    Usage(String),

    #[error("no ledger at '{0}' (create one with `wallet init` or `wallet create-user`)")]
    LedgerNotFound(Location),
    #[error("user '{0}' not found")]
    UserNotFound(String),
    /// The server answers, but the database named in the URL does not exist.
    #[error(
        "no database '{database}' on the server of '{ledger}'; create it (`createdb {database}`), then run `wallet init`"
    )]
    DatabaseNotFound { ledger: Location, database: String },
    #[error("transfer {0} not found")]
    TransferNotFound(String),

    #[error("user '{0}' already exists")]
    UserExists(String),
    /// `currency add` of a code the ledger has with another scale: a
    /// currency's scale never changes.
    #[error(
        "currency '{code}' already exists with scale {scale}, not {wanted}; a currency's scale never changes"
    )]
    CurrencyExists {
        code: String,
        scale: i64,
        wanted: u8,
    },
    #[error("{what} already exists at '{ledger}'")]
    LedgerExists {
        ledger: Location,
        what: &'static str,
    },
    #[error("idempotency key '{key}' was already used with a different {field} ({})", match earlier_line {
        Some(line) => format!("by line {line} of this batch"),
        None => format!("transfer {tx_id}"),
    })]
    IdempotencyConflict {
        key: String,
        field: &'static str,
        tx_id: i64,
        /// Set when the earlier use is a line of the same all-or-nothing
        /// batch, whose transfer is never committed.
        earlier_line: Option<u64>,
    },
    #[error("transfer {tx_id} is {status}, not PENDING")]
    NotPending { tx_id: i64, status: String },
    #[error(
        "transfer {tx_id} is {status}, not a live hold (HELD); `wallet get-transfer {tx_id}` shows what became of it"
    )]
    NotHeld { tx_id: i64, status: String },
    #[error("transfer {tx_id} is {status}; only a COMPLETED transfer can be refunded")]
    NotRefundable { tx_id: i64, status: String },
    #[error(
        "transfer {tx_id} is one leg of exchange {first}/{second}; a leg cannot be refunded alone"
    )]
    LegNotRefundable { tx_id: i64, first: i64, second: i64 },
    #[error(
        "a refund of {wanted} would return more than transfer {tx_id} moved: {left} is left to refund"
    )]
    RefundExceedsOriginal {
        tx_id: i64,
        left: String,
        wanted: String,
    },
    #[error("user '{user}' has {available} available, less than the {wanted} to hold")]
    InsufficientFunds {
        user: String,
        available: String,
        wanted: String,
    },
    /// The user is frozen: nothing leaves the account until it is
    /// unfrozen (`action` says what was refused).
    #[error("user '{user}' is frozen: {action}; `wallet unfreeze {user}` lifts it")]
    AccountFrozen { user: String, action: &'static str },
    /// The user was closed for good: it takes no new transfer or change.
    #[error("user '{user}' is closed and takes no {what}")]
    AccountClosed { user: String, what: &'static str },
    /// `close` of a user with money or transfers still on the account.
    #[error("user '{user}' cannot be closed while it has {left}")]
    AccountNotEmpty { user: String, left: String },
    #[error("invalid time '{input}': {why}")]
    InvalidTime { input: String, why: &'static str },

    #[error("invalid amount '{input}': {why}")]
    InvalidAmount { input: String, why: String },
    #[error("invalid user name '{input}': {why}")]
    InvalidName { input: String, why: &'static str },
    #[error("invalid email '{input}': {why}")]
    InvalidEmail { input: String, why: &'static str },
    #[error("the amount would overflow the pending total of {0}; settle the queue first")]
    PendingOverflow(String),
    #[error("source and destination are the same user '{0}'")]
    SameAccount(String),
    #[error("invalid idempotency key '{input}': {why}")]
    InvalidKey { input: String, why: &'static str },
    #[error("invalid memo '{input}': {why}")]
    InvalidMemo { input: String, why: &'static str },
    #[error("invalid currency: {0}")]
    InvalidCurrency(String),
    #[error("invalid batch line: {0}")]
    InvalidLine(String),
    /// A line of a file of recorded chain heads (`verify --heads`) that is
    /// neither a head `--record-head` wrote nor 64 hex digits.
    #[error("invalid head at line {line} of '{file}': {why}")]
    InvalidHead {
        file: String,
        line: u64,
        why: String,
    },
    #[error("{}", batch_failed(*.failed, *.lines, *.queued, *.replayed))]
    BatchFailed {
        failed: u64,
        lines: u64,
        /// New transfers the batch kept (none for an atomic one).
        queued: u64,
        /// Lines that named, by key, a transfer queued before.
        replayed: u64,
    },

    #[error("{}; safe to retry", locked_for(*.0))]
    Busy(u64),
    /// The database server cannot be reached, or the connection to it was
    /// lost before anything was committed: nothing was written.
    #[error("{0}; nothing was written, safe to retry")]
    ServerUnavailable(String),
    /// The server reached takes no writes (a standby, which a failover
    /// may promote): nothing was written.
    #[error("{0}; nothing was written, retry later (a standby may be promoted)")]
    ReadOnly(String),
    /// A command stopped part-way by an error after committing some of its
    /// work: the report of what was done goes to stdout, the error to stderr.
    /// The error's own "nothing was written" no longer holds, so the message
    /// is its cause and then `committed`: what was, and what may be retried.
    #[error("{}; {committed}", error.cause())]
    StoppedPartWay {
        done: Box<dyn Done>,
        error: Box<WalletError>,
        committed: String,
    },

    /// A fault struck at or after the commit point: the change may be in the
    /// ledger, and nothing can tell the caller for sure (or tell it at all).
    #[error("{0}")]
    OutcomeUnknown(String),

    #[error("'{ledger}' is not a wallet ledger: {why}")]
    NotALedger { ledger: Location, why: String },
    #[error(
        "'{ledger}' was written by a newer wallet (schema version {found}, this binary knows up to {known})"
    )]
    SchemaTooNew {
        ledger: Location,
        found: i64,
        known: i64,
    },
    #[error("ledger check failed: {0}")]
    Integrity(String),
    #[error(
        "'{ledger}' has schema version {found}, older than this binary reads (version {latest}); run `wallet migrate` to upgrade it"
    )]
    UpgradeNeeded {
        ledger: Location,
        found: i64,
        latest: i64,
    },
    /// `verify` found broken invariants; the full report goes with the error.
    #[error("ledger check failed: {summary}")]
    VerifyFailed {
        summary: String,
        report: Box<dyn Done>,
    },

    #[error("{0:#}")]
    Io(anyhow::Error),
    /// The server refused this login or role what the command needs: a
    /// lasting refusal, unlike a full disk, so a worker does not retry it.
    #[error("{0}")]
    AccessDenied(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl WalletError {
    /// The stable, snake_case code scripts match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::LedgerNotFound(_) | Self::DatabaseNotFound { .. } => "ledger_not_found",
            Self::UserNotFound(_) => "user_not_found",
            Self::TransferNotFound(_) => "transfer_not_found",
            Self::UserExists(_) => "user_exists",
            Self::LedgerExists { .. } => "ledger_exists",
            Self::CurrencyExists { .. } => "currency_exists",
            Self::IdempotencyConflict { .. } => "idempotency_conflict",
            Self::NotPending { .. } => "not_pending",
            Self::NotHeld { .. } => "not_held",
            Self::NotRefundable { .. } | Self::LegNotRefundable { .. } => "not_refundable",
            Self::RefundExceedsOriginal { .. } => "refund_exceeds_original",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::AccountFrozen { .. } => "account_frozen",
            Self::AccountClosed { .. } => "account_closed",
            Self::AccountNotEmpty { .. } => "account_not_empty",
            Self::InvalidTime { .. } => "invalid_time",
            Self::InvalidAmount { .. } | Self::PendingOverflow(_) => "invalid_amount",
            Self::InvalidName { .. } => "invalid_name",
            Self::InvalidEmail { .. } => "invalid_email",
            Self::SameAccount(_) => "same_account",
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidMemo { .. } => "invalid_memo",
            Self::InvalidCurrency(_) => "invalid_currency",
            Self::InvalidLine(_) => "invalid_line",
            Self::InvalidHead { .. } => "invalid_head",
            Self::BatchFailed { .. } => "batch_failed",
            Self::Busy(_) => "busy",
            Self::ServerUnavailable(_) => "server_unavailable",
            Self::ReadOnly(_) => "read_only",
            Self::StoppedPartWay { error, .. } => error.code(),
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::NotALedger { .. } => "not_a_ledger",
            Self::SchemaTooNew { .. } => "schema_too_new",
            Self::Integrity(_) | Self::VerifyFailed { .. } => "integrity",
            Self::UpgradeNeeded { .. } => "upgrade_needed",
            Self::Io(_) | Self::AccessDenied(_) => "io_error",
            Self::Internal(_) => "internal",
        }
    }

    /// The process exit status for this error, as the contract's table gives it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Io(_) | Self::AccessDenied(_) | Self::Internal(_) => 1,
            Self::Usage(_) => 2,
            Self::LedgerNotFound(_)
            | Self::DatabaseNotFound { .. }
            | Self::UserNotFound(_)
            | Self::TransferNotFound(_) => 3,
            Self::UserExists(_)
            | Self::LedgerExists { .. }
            | Self::CurrencyExists { .. }
            | Self::IdempotencyConflict { .. }
            | Self::NotPending { .. }
            | Self::NotHeld { .. }
            | Self::NotRefundable { .. }
            | Self::LegNotRefundable { .. }
            | Self::RefundExceedsOriginal { .. }
            | Self::InsufficientFunds { .. }
            | Self::AccountFrozen { .. }
            | Self::AccountClosed { .. }
            | Self::AccountNotEmpty { .. } => 4,
            Self::InvalidAmount { .. }
            | Self::PendingOverflow(_)
            | Self::InvalidName { .. }
            | Self::InvalidEmail { .. }
            | Self::SameAccount(_)
            | Self::InvalidKey { .. }
            | Self::InvalidMemo { .. }
            | Self::InvalidCurrency(_)
            | Self::InvalidLine(_)
            | Self::InvalidHead { .. }
            | Self::InvalidTime { .. }
            | Self::BatchFailed { .. } => 5,
            Self::Busy(_) | Self::ServerUnavailable(_) | Self::ReadOnly(_) => 6,
            Self::StoppedPartWay { error, .. } => error.exit_code(),
            Self::NotALedger { .. }
            | Self::SchemaTooNew { .. }
            | Self::UpgradeNeeded { .. }
            | Self::Integrity(_)
            | Self::VerifyFailed { .. } => 7,
            Self::OutcomeUnknown(_) => 8,
        }
    }

    /// What went wrong, without what that means for the ledger where the
    /// message says so ("nothing was written, safe to retry"): a command
    /// that stopped part-way says that itself.
    pub(crate) fn cause(&self) -> String {
        match self {
            Self::ServerUnavailable(cause) | Self::ReadOnly(cause) => cause.clone(),
            Self::Busy(ms) => locked_for(*ms),
            other => other.to_string(),
        }
    }

    /// What goes with this error, printed along with it.
    pub(crate) fn done(&self) -> Option<&dyn Any> {
        match self {
            Self::VerifyFailed { report, .. } => Some(report.as_ref() as &dyn Any),
            Self::StoppedPartWay { done, .. } => Some(done.as_ref() as &dyn Any),
            _ => None,
        }
    }

    /// Whether what goes with this error goes to stdout even in JSON mode,
    /// as the one document there: it says what was committed before the error.
    pub(crate) fn done_is_output(&self) -> bool {
        matches!(self, Self::StoppedPartWay { .. })
    }

    /// A commit that failed: SQLite (or a server) may have made it durable
    /// before the failure was seen. `what` names the change, `advice` says
    /// how to find out or retry safely.
    pub(crate) fn at_commit(what: &str, cause: impl std::fmt::Display, advice: &str) -> Self {
        Self::OutcomeUnknown(format!(
            "{what} may have been written: the commit failed ({cause}); {advice}"
        ))
    }

    /// A change that committed but whose result could not be printed.
    pub(crate) fn unreported(what: &str, cause: impl std::fmt::Display, advice: &str) -> Self {
        Self::OutcomeUnknown(format!(
            "committed {what}, but could not print the result ({cause}); {advice}"
        ))
    }

    pub(crate) fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

pub type Result<T, E = WalletError> = std::result::Result<T, E>;

/// The one line of `batch_failed`: how many lines failed and what became of
/// the rest.
fn batch_failed(failed: u64, lines: u64, queued: u64, replayed: u64) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let head = format!("{failed} of {lines} batch line{} failed", plural(lines));
    match (queued, replayed) {
        (0, 0) => format!("{head}; nothing was queued"),
        (queued, 0) => format!("{head}; {queued} new transfer{} queued", plural(queued)),
        (queued, replayed) => format!(
            "{head}; {queued} new transfer{} queued, {replayed} line{} already queued with the same key",
            plural(queued),
            plural(replayed)
        ),
    }
}

/// Why a command gave up on the lock, without what that means for the ledger.
fn locked_for(ms: u64) -> String {
    format!("the ledger is locked by another process (waited {ms} ms)")
}

impl From<NotAUrl> for WalletError {
    fn from(not_a_url: NotAUrl) -> Self {
        WalletError::Usage(not_a_url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Settled;

    impl Done for Settled {}

    #[test]
    fn every_class_has_the_contract_exit_code() {
        assert_eq!(WalletError::UserNotFound("a".into()).exit_code(), 3);
        assert_eq!(WalletError::Busy(5).exit_code(), 6);
        assert_eq!(
            WalletError::InvalidKey {
                input: "k".into(),
                why: "x"
            }
            .exit_code(),
            5
        );
        assert_eq!(WalletError::Integrity("x".into()).exit_code(), 7);
        assert_eq!(WalletError::Usage("x".into()).code(), "usage");
        let unknown = WalletError::at_commit("transfer 3", "disk I/O error", "see get-transfer 3");
        assert_eq!(
            (unknown.code(), unknown.exit_code()),
            ("outcome_unknown", 8)
        );
        let partial = WalletError::StoppedPartWay {
            done: Box::new(Settled),
            error: Box::new(WalletError::Busy(7)),
            committed: "3 transfers were settled before it".into(),
        };
        assert_eq!((partial.code(), partial.exit_code()), ("busy", 6));
        assert_eq!(
            partial.to_string(),
            "the ledger is locked by another process (waited 7 ms); 3 transfers were settled before it"
        );
    }
}
