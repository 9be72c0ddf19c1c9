//! The errors a user or script can branch on, each carrying its contract code and exit code.

use std::path::PathBuf;

use thiserror::Error;

/// Every failure `wallet` reports. The variant decides the machine-readable
/// `code` and the process exit status, so the mapping lives in one place.
#[derive(Debug, Error)]
pub enum WalletError {
    #[error("{0}")]
    Usage(String),

    #[error("no ledger at '{}' (create one with `wallet init` or `wallet create-user`)", .0.display())]
    LedgerNotFound(PathBuf),
    #[error("user '{0}' not found")]
    UserNotFound(String),
    #[error("transfer {0} not found")]
    TransferNotFound(String),

    #[error("user '{0}' already exists")]
    UserExists(String),
    #[error("a ledger already exists at '{}'", .0.display())]
    LedgerExists(PathBuf),
    #[error("idempotency key '{key}' was already used with a different {field} (transfer {tx_id})")]
    IdempotencyConflict {
        key: String,
        field: &'static str,
        tx_id: i64,
    },
    #[error("transfer {tx_id} is {status}, not PENDING")]
    NotPending { tx_id: i64, status: String },

    #[error("invalid amount '{input}': {why}")]
    InvalidAmount { input: String, why: String },
    #[error("invalid user name '{input}': {why}")]
    InvalidName { input: String, why: &'static str },
    #[error("invalid email '{input}': {why}")]
    InvalidEmail { input: String, why: &'static str },
    #[error("source and destination are the same user '{0}'")]
    SameAccount(String),
    #[error("invalid idempotency key: {0}")]
    InvalidKey(&'static str),
    #[error("invalid memo: {0}")]
    InvalidMemo(&'static str),
    #[error("invalid currency: {0}")]
    InvalidCurrency(String),
    #[error("invalid batch line: {0}")]
    InvalidLine(String),
    #[error("{failed} of {lines} batch lines failed; {}", if *.committed { "the others were queued" } else { "nothing was queued" })]
    BatchFailed {
        failed: u64,
        lines: u64,
        committed: bool,
    },

    #[error("the ledger is locked by another process (waited {0} ms); safe to retry")]
    Busy(u64),

    #[error("'{}' is not a wallet ledger: {why}", path.display())]
    NotALedger { path: PathBuf, why: String },
    #[error("'{}' was written by a newer wallet (schema version {found}, this binary knows up to {known})", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("ledger check failed: {0}")]
    Integrity(String),

    #[error("{0:#}")]
    Io(anyhow::Error),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl WalletError {
    /// The stable, snake_case code scripts match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::LedgerNotFound(_) => "ledger_not_found",
            Self::UserNotFound(_) => "user_not_found",
            Self::TransferNotFound(_) => "transfer_not_found",
            Self::UserExists(_) => "user_exists",
            Self::LedgerExists(_) => "ledger_exists",
            Self::IdempotencyConflict { .. } => "idempotency_conflict",
            Self::NotPending { .. } => "not_pending",
            Self::InvalidAmount { .. } => "invalid_amount",
            Self::InvalidName { .. } => "invalid_name",
            Self::InvalidEmail { .. } => "invalid_email",
            Self::SameAccount(_) => "same_account",
            Self::InvalidKey(_) => "invalid_key",
            Self::InvalidMemo(_) => "invalid_memo",
            Self::InvalidCurrency(_) => "invalid_currency",
            Self::InvalidLine(_) => "invalid_line",
            Self::BatchFailed { .. } => "batch_failed",
            Self::Busy(_) => "busy",
            Self::NotALedger { .. } => "not_a_ledger",
            Self::SchemaTooNew { .. } => "schema_too_new",
            Self::Integrity(_) => "integrity",
            Self::Io(_) => "io_error",
            Self::Internal(_) => "internal",
        }
    }

    /// The process exit status for this error, as the contract's table gives it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Io(_) | Self::Internal(_) => 1,
            Self::Usage(_) => 2,
            Self::LedgerNotFound(_) | Self::UserNotFound(_) | Self::TransferNotFound(_) => 3,
            Self::UserExists(_)
            | Self::LedgerExists(_)
            | Self::IdempotencyConflict { .. }
            | Self::NotPending { .. } => 4,
            Self::InvalidAmount { .. }
            | Self::InvalidName { .. }
            | Self::InvalidEmail { .. }
            | Self::SameAccount(_)
            | Self::InvalidKey(_)
            | Self::InvalidMemo(_)
            | Self::InvalidCurrency(_)
            | Self::InvalidLine(_)
            | Self::BatchFailed { .. } => 5,
            Self::Busy(_) => 6,
            Self::NotALedger { .. } | Self::SchemaTooNew { .. } | Self::Integrity(_) => 7,
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

pub type Result<T, E = WalletError> = std::result::Result<T, E>;

/// SQLite reports lock time-outs, foreign files and I/O failures through one
/// error type; sort them into the contract's classes here so callers can use `?`.
impl From<rusqlite::Error> for WalletError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy(0),
            Some(ErrorCode::NotADatabase) => Self::NotALedger {
                path: PathBuf::new(),
                why: "the file is not an SQLite database".into(),
            },
            Some(ErrorCode::DatabaseCorrupt) => {
                Self::Integrity(format!("the database file is damaged: {err}"))
            }
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed,
            ) => Self::Io(anyhow::Error::new(err).context("ledger I/O failed")),
            _ => Self::Internal(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_the_contract_exit_code() {
        assert_eq!(WalletError::UserNotFound("a".into()).exit_code(), 3);
        assert_eq!(WalletError::Busy(5).exit_code(), 6);
        assert_eq!(WalletError::InvalidKey("x").exit_code(), 5);
        assert_eq!(WalletError::Integrity("x".into()).exit_code(), 7);
        assert_eq!(WalletError::Usage("x".into()).code(), "usage");
    }
}
