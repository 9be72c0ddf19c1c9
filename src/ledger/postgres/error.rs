//! The server's errors, sorted into the contract's classes. Nothing outside
//! this engine sees a `postgres::Error`.

use postgres::error::SqlState;

use crate::error::WalletError;
use crate::location::Location;

/// What can go wrong inside the engine: the server's error, or one of the
/// contract's that the engine raised itself.
#[derive(Debug)]
pub(crate) enum PgFault {
    Pg(postgres::Error),
    Wallet(WalletError),
}

impl From<postgres::Error> for PgFault {
    fn from(err: postgres::Error) -> Self {
        Self::Pg(err)
    }
}

impl From<WalletError> for PgFault {
    fn from(err: WalletError) -> Self {
        Self::Wallet(err)
    }
}

pub(super) type PgResult<T> = Result<T, PgFault>;

impl PgFault {
    /// A serialization failure or deadlock: the server rolled the
    /// transaction back, and running it again is the documented cure.
    pub(crate) fn is_retryable(&self) -> bool {
        // A commit the guard refused because the schema changed meanwhile
        // is run again too: its new start compares the whole catalog.
        matches!(self, Self::Pg(err) if schema_changed(err))
            || matches!(self.sqlstate(), Some(s) if *s == SqlState::T_R_SERIALIZATION_FAILURE || *s == SqlState::T_R_DEADLOCK_DETECTED)
    }

    /// A sum that left the range of `bigint`.
    pub(crate) fn is_out_of_range(&self) -> bool {
        matches!(self.sqlstate(), Some(s) if *s == SqlState::NUMERIC_VALUE_OUT_OF_RANGE)
    }

    /// A lock waited on past `lock_timeout`.
    pub(crate) fn is_busy(&self) -> bool {
        match self {
            Self::Pg(_) => matches!(self.sqlstate(), Some(s) if *s == SqlState::LOCK_NOT_AVAILABLE),
            Self::Wallet(err) => matches!(err, WalletError::Busy(_)),
        }
    }

    fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Self::Pg(err) => err.code(),
            Self::Wallet(_) => None,
        }
    }
}

/// What a contract error about this ledger must name.
#[derive(Debug, Clone)]
pub(super) struct ErrorContext {
    pub shown: Location,
    pub lock_timeout_ms: u64,
}

impl ErrorContext {
    /// The contract's error for a fault on this ledger.
    pub(super) fn lift(&self, fault: PgFault) -> WalletError {
        let err = match fault {
            PgFault::Wallet(err) => return err,
            PgFault::Pg(err) => err,
        };
        let Some(db) = err.as_db_error() else {
            return lost(&err, &self.shown);
        };
        let code = db.code();
        let message = db.message();
        if schema_changed(&err) {
            WalletError::NotALedger {
                ledger: self.shown.clone(),
                why: "its schema kept changing while this command wrote (nothing of what it was writing then was kept); run `wallet verify`".into(),
            }
        } else if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED {
            // A lock waited on past `lock_timeout`, or a statement past a
            // `statement_timeout` set on the role: both rolled back.
            WalletError::Busy(self.lock_timeout_ms)
        } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            // Retried inside the command; one that persists past the
            // retries is contention, as a lock time-out is.
            WalletError::Busy(self.lock_timeout_ms)
        } else if code.code().starts_with("57P") || *code == SqlState::TOO_MANY_CONNECTIONS {
            unavailable(&self.shown, message)
        } else if code.code().starts_with("23") || *code == SqlState::NUMERIC_VALUE_OUT_OF_RANGE {
            // Every write checks what the constraints check, so a
            // constraint that fires means the figures were already wrong.
            WalletError::Integrity(format!(
                "the ledger's figures break its own rules ({message}); run `wallet verify`"
            ))
        } else if *code == SqlState::UNDEFINED_TABLE
            || *code == SqlState::UNDEFINED_COLUMN
            || *code == SqlState::UNDEFINED_FUNCTION
        {
            WalletError::Integrity(format!(
                "the ledger's schema lacks what this wallet needs ({message}); run `wallet verify`"
            ))
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            WalletError::AccessDenied(format!(
                "the server refused this role access to '{}': {message}",
                self.shown
            ))
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            WalletError::ReadOnly(format!(
                "the server of '{}' takes no writes (a standby?): {message}",
                self.shown
            ))
        } else if *code == SqlState::DISK_FULL || code.code().starts_with("58") {
            WalletError::Io(anyhow::anyhow!(
                "the server of '{}' failed: {message}",
                self.shown
            ))
        } else {
            WalletError::Internal(anyhow::anyhow!("{code:?}: {message}"))
        }
    }
}

/// An error while connecting to the ledger `shown` in `database`: the
/// server may be down, the database absent, the login refused.
pub(super) fn lift_connect(err: postgres::Error, shown: &Location, database: String) -> PgFault {
    let Some(db) = err.as_db_error() else {
        let text = error_chain(&err);
        if text.contains("authentication") || text.contains("password missing") {
            return PgFault::Wallet(WalletError::AccessDenied(format!(
                "cannot log in to '{}': {text} (the server asks for a password: give it in the URL, PGPASSWORD or ~/.pgpass)",
                shown
            )));
        }
        if text.contains("TLS") || text.contains("tls") || text.contains("certificate") {
            // A setting that cannot work with this server: retrying won't help.
            return PgFault::Wallet(WalletError::Io(anyhow::anyhow!(
                "cannot connect to '{}' as its sslmode asks: {text}",
                shown
            )));
        }
        return PgFault::Wallet(lost(&err, shown));
    };
    let code = db.code();
    let wallet = if *code == SqlState::INVALID_CATALOG_NAME {
        WalletError::DatabaseNotFound {
            ledger: shown.clone(),
            database,
        }
    } else if code.code().starts_with("28") || *code == SqlState::INSUFFICIENT_PRIVILEGE {
        WalletError::AccessDenied(format!("cannot log in to '{}': {}", shown, db.message()))
    } else if code.code().starts_with("57P")
        || code.code().starts_with("08")
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        unavailable(shown, db.message())
    } else {
        WalletError::Io(anyhow::anyhow!(
            "cannot connect to '{}': {}",
            shown,
            db.message()
        ))
    };
    PgFault::Wallet(wallet)
}

/// A connection that could not be made, or broke: transient by nature.
/// Anything else without the server's own error (a value of a type this
/// binary does not read) is a defect or damage, not a reason to retry.
fn lost(err: &postgres::Error, shown: &Location) -> WalletError {
    if is_connection_failure(err) {
        unavailable(shown, &error_chain(err))
    } else {
        WalletError::Internal(anyhow::anyhow!("{}", error_chain(err)))
    }
}

/// Whether the error is about the connection itself: closed, broken, timed
/// out, or never made.
pub(super) fn is_connection_failure(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    let text = err.to_string();
    text.starts_with("error communicating")
        || text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.starts_with("error performing TLS")
}

fn unavailable(shown: &Location, why: &str) -> WalletError {
    WalletError::ServerUnavailable(format!(
        "the PostgreSQL server of '{}' is unreachable or went away ({why})",
        shown
    ))
}

/// The error and its causes on one line.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a commit refused because the schema changed while the transaction
/// ran says; the transaction is run again, and its start compares the
/// whole catalog.
pub(super) const SCHEMA_CHANGED: &str =
    "the schema of the ledger changed while this transaction ran:";

/// Whether a commit failed because the schema changed meanwhile.
fn schema_changed(err: &postgres::Error) -> bool {
    err.code() == Some(&postgres::error::SqlState::INVALID_TEXT_REPRESENTATION)
        && err
            .as_db_error()
            .is_some_and(|db| db.message().contains(SCHEMA_CHANGED))
}
