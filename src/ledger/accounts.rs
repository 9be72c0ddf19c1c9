//! Users: creating them and reading their maintained balances.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::{Ledger, clock};
use crate::domain::{Email, UserName};
use crate::error::{Result, WalletError};

/// A user as stored, with the balance settlement maintains and the sums of
/// the transfers still waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub balance: i64,
    pub pending_in: i64,
    pub pending_out: i64,
}

impl UserRecord {
    /// What the user can still commit without a transfer failing; negative
    /// when queued transfers already exceed the balance.
    pub fn available(&self) -> i64 {
        self.balance - self.pending_out
    }
}

const SELECT_USER: &str = "SELECT id, name, email, balance, pending_in, pending_out
     FROM accounts WHERE name = ?1 COLLATE NOCASE";

impl Ledger {
    /// Adds a user with a zero balance. Names are unique regardless of case.
    pub fn create_user(&mut self, name: &UserName, email: &Email) -> Result<UserRecord> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = find_user(&tx, name.as_str())? {
            return Err(WalletError::UserExists(existing.name));
        }
        tx.execute(
            "INSERT INTO accounts (name, email, created_at) VALUES (?1, ?2, ?3)",
            params![name.as_str(), email.as_str(), clock::now_ms()],
        )?;
        let user = find_user(&tx, name.as_str())?
            .ok_or_else(|| WalletError::internal(anyhow::anyhow!("inserted user vanished")))?;
        tx.commit()?;
        Ok(user)
    }

    /// Adds many users with zero balances in one transaction: all or none.
    pub fn create_users(&mut self, users: &[(UserName, Email)]) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = clock::now_ms();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO accounts (name, email, created_at) VALUES (?1, ?2, ?3)",
            )?;
            for (name, email) in users {
                if let Some(existing) = find_user(&tx, name.as_str())? {
                    return Err(WalletError::UserExists(existing.name));
                }
                insert.execute(params![name.as_str(), email.as_str(), now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Looks a user up by name, regardless of case.
    pub fn user(&self, name: &UserName) -> Result<UserRecord> {
        let mut stmt = self.conn().prepare_cached(SELECT_USER)?;
        stmt.query_row([name.as_str()], user_from_row)
            .optional()?
            .ok_or_else(|| WalletError::UserNotFound(name.to_string()))
    }
}

fn find_user(tx: &Transaction<'_>, name: &str) -> Result<Option<UserRecord>> {
    let mut stmt = tx.prepare_cached(SELECT_USER)?;
    Ok(stmt.query_row([name], user_from_row).optional()?)
}

/// The id of the user named `name` (any case), inside a write transaction.
pub(super) fn user_id(tx: &Transaction<'_>, name: &UserName) -> Result<i64> {
    let mut stmt = tx.prepare_cached("SELECT id FROM accounts WHERE name = ?1 COLLATE NOCASE")?;
    stmt.query_row([name.as_str()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| WalletError::UserNotFound(name.to_string()))
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
