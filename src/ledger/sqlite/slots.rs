//! Where a balance's figures live: the ledger's default currency in the
//! `accounts` row, every other currency in a `balances (account, currency)`
//! row made on first use. One-currency ledgers never read `balances`.

use rusqlite::{OptionalExtension, Transaction, params};

use super::error::SqlResult;
use crate::ledger::model::BalanceKey;
use crate::money::CurrencyId;

/// Whether the figures are the `accounts` columns.
pub(super) fn in_accounts(key: BalanceKey) -> bool {
    key.currency == CurrencyId::DEFAULT
}

/// Makes the `balances` row of a non-default balance at zero if it has
/// none yet; the caller holds the write lock.
pub(super) fn ensure(tx: &Transaction<'_>, key: BalanceKey, now: i64) -> SqlResult<()> {
    if !in_accounts(key) {
        tx.prepare_cached(
            "INSERT INTO balances (account, currency, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, currency) DO NOTHING",
        )?
        .execute(params![key.account, key.currency, now])?;
    }
    Ok(())
}

/// Runs one statement against the balance's row: `on_accounts` takes the
/// account as `?1`, `on_balances` the same parameters and the currency
/// last.
pub(super) fn execute(
    tx: &Transaction<'_>,
    key: BalanceKey,
    on_accounts: &str,
    on_balances: &str,
    rest: &[&dyn rusqlite::ToSql],
) -> SqlResult<usize> {
    let mut bound: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rest.len() + 2);
    bound.push(&key.account);
    bound.extend_from_slice(rest);
    if in_accounts(key) {
        Ok(tx.prepare_cached(on_accounts)?.execute(bound.as_slice())?)
    } else {
        bound.push(&key.currency);
        Ok(tx.prepare_cached(on_balances)?.execute(bound.as_slice())?)
    }
}

/// Reads one row of the balance's figures, as `execute` binds them; `None`
/// when a non-default balance has no row yet.
pub(super) fn query_row<T>(
    tx: &Transaction<'_>,
    key: BalanceKey,
    on_accounts: &str,
    on_balances: &str,
    rest: &[&dyn rusqlite::ToSql],
    read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> SqlResult<Option<T>> {
    let mut bound: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rest.len() + 2);
    bound.push(&key.account);
    bound.extend_from_slice(rest);
    if in_accounts(key) {
        Ok(tx
            .prepare_cached(on_accounts)?
            .query_row(bound.as_slice(), read)
            .optional()?)
    } else {
        bound.push(&key.currency);
        Ok(tx
            .prepare_cached(on_balances)?
            .query_row(bound.as_slice(), read)
            .optional()?)
    }
}
