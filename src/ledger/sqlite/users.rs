//! Users: creating them and reading their maintained balances.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::{SqlResult, commit};
use crate::domain::{Email, UserName};
use crate::error::WalletError;
use crate::ledger::clock;
use crate::ledger::model::UserRecord;

const SELECT_USER: &str = "SELECT id, name, email, balance, pending_in, pending_out
     FROM accounts WHERE name = ?1 COLLATE NOCASE";

/// Adds a user with a zero balance. Names are unique regardless of case.
pub(super) fn create_user(
    conn: &mut Connection,
    name: &UserName,
    email: &Email,
) -> SqlResult<UserRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(existing) = find_user(&tx, name.as_str())? {
        return Err(WalletError::UserExists(existing.name).into());
    }
    tx.execute(
        "INSERT INTO accounts (name, email, created_at) VALUES (?1, ?2, ?3)",
        params![name.as_str(), email.as_str(), clock::now_ms()],
    )?;
    let user = find_user(&tx, name.as_str())?
        .ok_or_else(|| WalletError::internal(anyhow::anyhow!("inserted user vanished")))?;
    commit(
        tx,
        &format!("user '{}'", user.name),
        "`wallet get-user` shows whether it exists",
    )?;
    Ok(user)
}

/// Adds many users with zero balances in one transaction: all or none.
pub(super) fn create_users(conn: &mut Connection, users: &[(UserName, Email)]) -> SqlResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = clock::now_ms();
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO accounts (name, email, created_at) VALUES (?1, ?2, ?3)")?;
        for (name, email) in users {
            if let Some(existing) = find_user(&tx, name.as_str())? {
                return Err(WalletError::UserExists(existing.name).into());
            }
            insert.execute(params![name.as_str(), email.as_str(), now])?;
        }
    }
    commit(
        tx,
        &format!("{} new users", users.len()),
        "`wallet get-user` shows whether they exist",
    )?;
    Ok(())
}

/// Looks a user up by name, regardless of case.
pub(super) fn user(conn: &Connection, name: &UserName) -> SqlResult<UserRecord> {
    let mut stmt = conn.prepare_cached(SELECT_USER)?;
    Ok(stmt
        .query_row([name.as_str()], user_from_row)
        .optional()?
        .ok_or_else(|| WalletError::UserNotFound(name.to_string()))?)
}

fn find_user(tx: &Transaction<'_>, name: &str) -> SqlResult<Option<UserRecord>> {
    let mut stmt = tx.prepare_cached(SELECT_USER)?;
    Ok(stmt.query_row([name], user_from_row).optional()?)
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        balance: row.get(3)?,
        pending_in: row.get(4)?,
        pending_out: row.get(5)?,
    })
}
