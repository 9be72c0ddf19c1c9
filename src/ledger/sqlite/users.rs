//! Users: creating them and reading their maintained balances.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::error::{SqlResult, commit};
use crate::domain::{Email, UserName};
use crate::error::WalletError;
use crate::ledger::clock;
use crate::ledger::model::Instant;
use crate::ledger::model::TxId;
use crate::ledger::model::{BalanceAt, CurrencyFigures, PointInTime, Policy, UserRecord};
use crate::ledger::rules;
use crate::money::{Currency, CurrencyId};

const SELECT_USER: &str = "SELECT id, name, email, balance, pending_in, pending_out, held,
            overdraft, frozen, closed
     FROM accounts WHERE name = ?1 COLLATE NOCASE";

/// What holds past their expiry, not yet marked, still reserve in `held`:
/// readers leave it out ([`rules::held_as_of`]), so a hold stops reserving
/// money at its expiry.
fn expired_held() -> String {
    format!(
        "SELECT coalesce(sum(hold_amount), 0) FROM transfers INDEXED BY transfers_held_by_expiry
     WHERE src = ?1 AND currency = ?3 AND {}",
        rules::past_expiry_sql("", "?2")
    )
}

/// Adds a user with a zero balance. Names are unique regardless of case,
/// a closed user's included. An `overdraft` above zero is the user's first
/// policy change, made as it is created.
pub(super) fn create_user(
    conn: &mut Connection,
    currency: &Currency,
    name: &UserName,
    email: &Email,
    overdraft: i64,
) -> SqlResult<UserRecord> {
    let tx = super::guard::begin_write(conn)?;
    if let Some(existing) = find_user(&tx, name.as_str())? {
        return Err(WalletError::UserExists(existing.name).into());
    }
    let now = clock::now_ms();
    tx.execute(
        "INSERT INTO accounts (name, email, created_at) VALUES (?1, ?2, ?3)",
        params![name.as_str(), email.as_str(), now],
    )?;
    let mut user = find_user(&tx, name.as_str())?
        .ok_or_else(|| WalletError::internal(anyhow::anyhow!("inserted user vanished")))?;
    if let Some(change) = rules::policy::at_creation(overdraft) {
        user.policy = rules::policy::change_user(&user, change, currency)?;
        super::policies::record_change(&tx, user.id, user.policy, change, None, now)?;
    }
    commit(
        tx,
        &format!("user '{}'", user.name),
        "`wallet get-user` shows whether it exists",
    )?;
    Ok(user)
}

/// Adds many users with zero balances in one transaction: all or none.
pub(super) fn create_users(conn: &mut Connection, users: &[(UserName, Email)]) -> SqlResult<()> {
    let tx = super::guard::begin_write(conn)?;
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
    leave_out_expired(conn, &mut user)?;
    other_currencies(conn, &mut user)?;
    Ok(user)
}

/// Takes out of `held` the holds past their expiry that `settle` has not
/// marked yet.
pub(super) fn leave_out_expired(conn: &Connection, user: &mut UserRecord) -> SqlResult<()> {
    if user.held > 0 {
        let expired: i64 = conn.prepare_cached(&expired_held())?.query_row(
            params![user.id, clock::now_ms(), CurrencyId::DEFAULT],
            |row| row.get(0),
        )?;
        user.held = rules::held_as_of(user.held, expired);
    }
    Ok(())
}

/// Reads the user's figures in every other currency it has touched, each
/// `held` less its holds past their expiry, as for the default currency.
pub(super) fn other_currencies(conn: &Connection, user: &mut UserRecord) -> SqlResult<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT currency, balance, pending_in, pending_out, held, overdraft FROM balances
         WHERE account = ?1 ORDER BY currency",
    )?;
    let rows = stmt.query_map([user.id], |row| {
        Ok(CurrencyFigures {
            currency: CurrencyId(row.get(0)?),
            balance: row.get(1)?,
            pending_in: row.get(2)?,
            pending_out: row.get(3)?,
            held: row.get(4)?,
            overdraft: row.get(5)?,
        })
    })?;
    for figures in rows {
        let mut figures = figures?;
        if figures.held > 0 {
            let expired: i64 = conn
                .prepare_cached(&expired_held())?
                .query_row(params![user.id, clock::now_ms(), figures.currency], |row| {
                    row.get(0)
                })?;
            figures.held = rules::held_as_of(figures.held, expired);
        }
        user.others.push(figures);
    }
    Ok(())
}

/// A user's balance in `currency` at a point of the past, from the index
/// of postings by time or by transfer: one B-tree descent, however long the
/// history.
pub(super) fn balance_at(
    conn: &Connection,
    name: &UserName,
    at: PointInTime,
    currency: CurrencyId,
) -> SqlResult<BalanceAt> {
    let user = user(conn, name)?;
    balance_of(conn, user.id, user.name, at, currency)
}

/// The balance of account `id` (named `name`) in `currency` at a point of
/// the past: each transfer records the balance it left in its own currency.
pub(super) fn balance_of(
    conn: &Connection,
    id: i64,
    name: String,
    at: PointInTime,
    currency: CurrencyId,
) -> SqlResult<BalanceAt> {
    let user = IdName { id, name };
    let found: Option<i64> = match at {
        PointInTime::Time(ms) => last_applied_by(conn, user.id, ms.get(), currency)?,
        PointInTime::Transfer(tx_id) => {
            let applied: Option<Option<i64>> = conn
                .prepare_cached(
                    "SELECT p.balance_after FROM postings p JOIN transfers t ON t.tx_id = p.tx_id
                     WHERE p.account = ?1 AND p.tx_id = ?2 AND t.currency = ?3",
                )?
                .query_row(params![user.id, tx_id, currency], |r| r.get(0))
                .optional()?;
            match applied {
                Some(Some(_)) => Some(tx_id.get()),
                _ => return Err(crate::ledger::rules::not_applied_to(tx_id, &user.name).into()),
            }
        }
    };
    let found: Option<(i64, Option<i64>, Option<i64>)> = match found {
        Some(tx_id) => Some(
            conn.prepare_cached(
                "SELECT p.tx_id, p.balance_after, t.settled_at FROM postings p
                 JOIN transfers t ON t.tx_id = p.tx_id WHERE p.account = ?1 AND p.tx_id = ?2",
            )?
            .query_row(params![user.id, tx_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?,
        ),
        None => None,
    };
    let mut then = match found {
        Some((tx_id, Some(balance), settled_at)) => BalanceAt {
            name: user.name,
            balance,
            tx_id: Some(TxId::new(tx_id)),
            settled_at: settled_at.map(Instant::new),
            policy: Policy::default(),
        },
        _ => BalanceAt {
            name: user.name,
            balance: 0,
            tx_id: None,
            settled_at: None,
            policy: Policy::default(),
        },
    };
    // A transfer's point is the instant it was applied.
    let instant = match at {
        PointInTime::Time(ms) => ms.get(),
        PointInTime::Transfer(_) => then.settled_at.map_or(i64::MAX, Instant::get),
    };
    then.policy = super::policies::policy_at(conn, user.id, instant, currency)?;
    Ok(then)
}

/// The last transfer applied to `account` in a settle batch that ran at or
/// before `at`, in the order the account saw them: by batch, then `tx_id`.
///
/// `settle_log` names the last such batch and the largest `tx_id` decided
/// by then; the account's postings up to that id, newest first, give the
/// candidate (skipping those that moved no money, and late ones decided in
/// a later batch); a hold captured late is looked up apart, by batch, and
/// the later of the two wins. A few index descents, however long the
/// history.
fn last_applied_by(
    conn: &Connection,
    account: i64,
    at: i64,
    currency: CurrencyId,
) -> SqlResult<Option<i64>> {
    let Some((batch, max_tx)): Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT batch, max_tx FROM settle_log INDEXED BY settle_log_by_time
             WHERE settled_at <= ?1 ORDER BY settled_at DESC, batch DESC LIMIT 1",
        )?
        .query_row([at], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let mut candidate: Option<(i64, i64)> = None;
    {
        let mut stmt = conn.prepare_cached(
            "SELECT p.tx_id, p.balance_after IS NOT NULL AND t.currency = ?3, l.batch
             FROM postings p
             JOIN transfers t ON t.tx_id = p.tx_id
             LEFT JOIN late_applied l ON l.account = p.account AND l.tx_id = p.tx_id
             WHERE p.account = ?1 AND p.tx_id <= ?2 ORDER BY p.tx_id DESC",
        )?;
        let mut rows = stmt.query(params![account, max_tx, currency])?;
        while let Some(row) = rows.next()? {
            let (tx_id, applied, late): (i64, bool, Option<i64>) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            if !applied || late.is_some_and(|b| b > batch) {
                continue;
            }
            let own_batch = match late {
                Some(b) => b,
                None => conn
                    .prepare_cached(
                        "SELECT batch FROM settle_log INDEXED BY settle_log_by_tx
                         WHERE max_tx >= ?1 ORDER BY max_tx, batch LIMIT 1",
                    )?
                    .query_row([tx_id], |r| r.get(0))?,
            };
            candidate = Some((own_batch, tx_id));
            break;
        }
    }
    let late: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT l.batch, l.tx_id FROM late_applied l INDEXED BY late_applied_by_batch
             JOIN transfers t ON t.tx_id = l.tx_id
             WHERE l.account = ?1 AND l.batch <= ?2 AND t.currency = ?3
             ORDER BY l.batch DESC, l.tx_id DESC LIMIT 1",
        )?
        .query_row(params![account, batch, currency], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(candidate.max(late).map(|(_, tx_id)| tx_id))
}

struct IdName {
    id: i64,
    name: String,
}

fn find_user(tx: &Transaction<'_>, name: &str) -> SqlResult<Option<UserRecord>> {
    let mut stmt = tx.prepare_cached(SELECT_USER)?;
    Ok(stmt.query_row([name], user_from_row).optional()?)
}

pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        balance: row.get(3)?,
        pending_in: row.get(4)?,
        pending_out: row.get(5)?,
        held: row.get(6)?,
        policy: Policy {
            overdraft: row.get(7)?,
            frozen: row.get(8)?,
            closed: row.get(9)?,
        },
        others: Vec::new(),
    })
}
