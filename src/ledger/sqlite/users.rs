//! Users: creating them and reading their maintained balances.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::{SqlResult, commit};
use crate::domain::{Email, UserName};
use crate::error::WalletError;
use crate::ledger::clock;
use crate::ledger::model::{BalanceAt, PointInTime, UserRecord};

const SELECT_USER: &str = "SELECT id, name, email, balance, pending_in, pending_out, held
     FROM accounts WHERE name = ?1 COLLATE NOCASE";

/// The part of `held` that expired holds not yet marked still count:
/// readers leave it out, so a hold stops reserving money at its expiry.
const EXPIRED_HELD: &str =
    "SELECT coalesce(sum(amount), 0) FROM transfers INDEXED BY transfers_held_by_src
     WHERE src = ?1 AND status = 'HELD' AND expires_at <= ?2";

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

/// Looks a user up by name, regardless of case, with `held` as of now.
pub(super) fn user(conn: &Connection, name: &UserName) -> SqlResult<UserRecord> {
    let mut stmt = conn.prepare_cached(SELECT_USER)?;
    let mut user = stmt
        .query_row([name.as_str()], user_from_row)
        .optional()?
        .ok_or_else(|| WalletError::UserNotFound(name.to_string()))?;
    if user.held > 0 {
        let expired: i64 = conn
            .prepare_cached(EXPIRED_HELD)?
            .query_row(params![user.id, clock::now_ms()], |row| row.get(0))?;
        user.held -= expired;
    }
    Ok(user)
}

/// A user's balance at a point of the past, from the index of postings by
/// time or by transfer: one B-tree descent, however long the history.
pub(super) fn balance_at(
    conn: &Connection,
    name: &UserName,
    at: PointInTime,
) -> SqlResult<BalanceAt> {
    let user = user(conn, name)?;
    let found: Option<(i64, Option<i64>, Option<i64>)> = match at {
        PointInTime::Time(ms) => conn
            .prepare_cached(
                "SELECT tx_id, balance_after, settled_at FROM postings INDEXED BY postings_by_time
                 WHERE account = ?1 AND settled_at <= ?2 AND balance_after IS NOT NULL
                 ORDER BY settled_at DESC, tx_id DESC LIMIT 1",
            )?
            .query_row(params![user.id, ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?,
        PointInTime::Transfer(tx_id) => {
            let found = conn
                .prepare_cached(
                    "SELECT tx_id, balance_after, settled_at FROM postings
                     WHERE account = ?1 AND tx_id = ?2",
                )?
                .query_row(params![user.id, tx_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            match found {
                Some((_, Some(_), _)) => found,
                _ => return Err(crate::ledger::rules::not_applied_to(tx_id, &user.name).into()),
            }
        }
    };
    Ok(match found {
        Some((tx_id, Some(balance), settled_at)) => BalanceAt {
            name: user.name,
            balance,
            tx_id: Some(tx_id),
            settled_at,
        },
        _ => BalanceAt {
            name: user.name,
            balance: 0,
            tx_id: None,
            settled_at: None,
        },
    })
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
        held: row.get(6)?,
    })
}
