//! rusqlite's errors, sorted into the contract's classes where the engine
//! knows what the contract needs to say: the ledger's path and the lock
//! time-out. Nothing outside this engine sees a `rusqlite::Error`.

use std::path::{Path, PathBuf};

use crate::error::WalletError;
use crate::location::Location;
use crate::text::shown_path;

/// What can go wrong inside the engine: SQLite's own error, or one of the
/// contract's that the engine raised itself (a refused line, a missing user).
#[derive(Debug)]
pub(super) enum Fault {
    Sql(rusqlite::Error),
    Wallet(WalletError),
}

impl From<rusqlite::Error> for Fault {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sql(err)
    }
}

impl From<WalletError> for Fault {
    fn from(err: WalletError) -> Self {
        Self::Wallet(err)
    }
}

impl Fault {
    /// Whether this says the ledger is damaged: what SQLite finds wrong
    /// with its pages, and stored values or figures the wallet never writes.
    pub(super) fn is_damage(&self) -> bool {
        match self {
            Self::Sql(err) => {
                matches!(
                    err,
                    rusqlite::Error::FromSqlConversionFailure(..)
                        | rusqlite::Error::InvalidColumnType(..)
                        | rusqlite::Error::IntegralValueOutOfRange(..)
                ) || matches!(
                    err.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                )
            }
            Self::Wallet(err) => matches!(
                err,
                WalletError::Integrity(_) | WalletError::NotALedger { .. }
            ),
        }
    }

    /// Whether another process held the lock past the time-out.
    pub(super) fn is_busy(&self) -> bool {
        match self {
            Self::Sql(err) => matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Self::Wallet(err) => matches!(err, WalletError::Busy(_)),
        }
    }
}

pub(super) type SqlResult<T> = Result<T, Fault>;

/// Commits `tx`. A commit that fails may still have been made durable (the
/// commit record can reach the log before a failed `fsync` is seen, and
/// recovery then replays it), so its failure is `outcome_unknown`, naming
/// the change and how to find out.
pub(super) fn commit(tx: rusqlite::Transaction<'_>, what: &str, advice: &str) -> SqlResult<()> {
    tx.commit()
        .map_err(|e| Fault::Wallet(WalletError::at_commit(what, e, advice)))
}

/// What a contract error about this ledger must name.
#[derive(Debug, Clone)]
pub(super) struct ErrorContext {
    pub(super) path: PathBuf,
    pub(super) lock_timeout_ms: u64,
}

impl ErrorContext {
    /// The ledger, as errors about it name it.
    pub(super) fn ledger(&self) -> Location {
        Location::File(self.path.clone())
    }

    /// The contract's error for a fault on this ledger.
    pub(super) fn lift(&self, fault: Fault) -> WalletError {
        use rusqlite::ErrorCode;
        let err = match fault {
            Fault::Wallet(err) => return err,
            Fault::Sql(err) => err,
        };
        if let rusqlite::Error::QueryReturnedNoRows = err {
            // Every row read without `.optional()` is one every ledger has.
            return WalletError::Integrity(
                "a row every ledger has is missing (its currency or the external account); run `wallet verify`".into(),
            );
        }
        if let rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) = err
        {
            // The schema's types and CHECKs admit only what we write.
            return WalletError::Integrity(format!(
                "a stored value has a form the wallet never writes ({err}); run `wallet verify`"
            ));
        }
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                WalletError::Busy(self.lock_timeout_ms)
            }
            Some(ErrorCode::NotADatabase) => WalletError::NotALedger {
                ledger: self.ledger(),
                why: "the file is not an SQLite database".into(),
            },
            Some(ErrorCode::DatabaseCorrupt) => {
                WalletError::Integrity(format!("the database file is damaged: {err}"))
            }
            // Every write checks what the schema's constraints check, so a
            // constraint that fires means figures on file were already wrong.
            Some(ErrorCode::ConstraintViolation) => WalletError::Integrity(format!(
                "the ledger's figures break its own rules ({err}); run `wallet verify`"
            )),
            Some(ErrorCode::ReadOnly) => WalletError::Io(anyhow::anyhow!(
                "cannot write the ledger '{}': it, its directory, or its -wal or -shm file is read-only for this user",
                crate::text::shown_path(&self.path)
            )),
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed,
            ) => WalletError::Io(anyhow::anyhow!(
                "ledger I/O failed on '{}': {}",
                crate::text::shown_path(&self.path),
                sqlite_message(&err)
            )),
            _ => WalletError::Internal(err.into()),
        }
    }
}

pub(super) fn error_context(
    path: &Path,
    options: &crate::ledger::store::OpenOptions,
) -> ErrorContext {
    ErrorContext {
        path: path.to_path_buf(),
        lock_timeout_ms: u64::try_from(options.lock_timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

/// SQLite's own words for a failure, without rusqlite's code prefix.
fn sqlite_message(err: &rusqlite::Error) -> String {
    match err {
        rusqlite::Error::SqliteFailure(_, Some(message)) if !message.is_empty() => message.clone(),
        rusqlite::Error::SqliteFailure(code, _) => code.to_string(),
        other => other.to_string(),
    }
}

/// An I/O failure on a file of the ledger, naming the file.
pub(super) fn io_error(err: impl Into<anyhow::Error>, what: &str, path: &Path) -> WalletError {
    WalletError::Io(err.into().context(format!("{what} '{}'", shown_path(path))))
}

pub(super) fn not_a_ledger(path: &Path, why: &str) -> WalletError {
    WalletError::NotALedger {
        ledger: Location::File(path.to_path_buf()),
        why: why.to_string(),
    }
}
