//! Reports over the whole ledger: the users a page at a time, the trial
//! balance, and every transfer streamed for export.

use rusqlite::{Connection, params};

use super::error::SqlResult;
use super::users;
use crate::domain::UserName;
use crate::error::Result;
use crate::ledger::clock;
use crate::ledger::model::Instant;
use crate::ledger::model::{
    EXTERNAL_ACCOUNT, ExportFilter, Exported, PointInTime, TrialBalance, UserBalance, UserRecord,
};
use crate::money::CurrencyId;

/// Up to `limit` users after `after`, by name regardless of case, from
/// the index on names.
pub(super) fn users(
    conn: &Connection,
    after: Option<&UserName>,
    limit: u32,
) -> SqlResult<Vec<UserRecord>> {
    let mut found: Vec<UserRecord> = conn
        .prepare_cached(
            "SELECT id, name, email, balance, pending_in, pending_out, held,
                    overdraft, frozen, closed
             FROM accounts INDEXED BY accounts_by_name
             WHERE name IS NOT NULL AND name > ?1 COLLATE NOCASE
             ORDER BY name COLLATE NOCASE LIMIT ?2",
        )?
        .query_map(
            params![after.map_or("", UserName::as_str), limit],
            users::user_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    for user in &mut found {
        users::leave_out_expired(conn, user)?;
        users::other_currencies(conn, user)?;
    }
    Ok(found)
}

/// Every account's balance in every currency, from one read transaction:
/// the default currency's from `accounts`, each other's from `balances`.
pub(super) fn trial_balance(
    conn: &mut Connection,
    at: Option<i64>,
) -> SqlResult<Vec<TrialBalance>> {
    let tx = conn.transaction()?;
    let mut ids: Vec<Vec<i64>> = vec![Vec::new()];
    let mut books = vec![TrialBalance::default()];
    {
        let mut stmt = tx.prepare_cached(
            "SELECT id, name, balance, closed FROM accounts ORDER BY name COLLATE NOCASE, id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (id, name, balance): (i64, Option<String>, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            match name {
                None if id == EXTERNAL_ACCOUNT => books[0].external = balance,
                None => {}
                Some(name) => {
                    books[0].users.push(UserBalance {
                        name,
                        balance,
                        closed: row.get(3)?,
                    });
                    ids[0].push(id);
                }
            }
        }
    }
    {
        // Each currency's external row is made with the currency, so every
        // currency of the ledger has a book here.
        let mut stmt = tx.prepare_cached(
            "SELECT b.currency, b.account, a.name, b.balance, a.closed
             FROM balances b JOIN accounts a ON a.id = b.account
             ORDER BY b.currency, a.name COLLATE NOCASE, b.account",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let currency = CurrencyId(row.get(0)?);
            if books.last().is_none_or(|book| book.currency != currency) {
                books.push(TrialBalance {
                    currency,
                    ..TrialBalance::default()
                });
                ids.push(Vec::new());
            }
            let (id, name, balance): (i64, Option<String>, i64) =
                (row.get(1)?, row.get(2)?, row.get(3)?);
            let (book, book_ids) = (
                books.last_mut().expect("pushed above"),
                ids.last_mut().expect("pushed above"),
            );
            match name {
                None if id == EXTERNAL_ACCOUNT => book.external = balance,
                None => {}
                Some(name) => {
                    book.users.push(UserBalance {
                        name,
                        balance,
                        closed: row.get(4)?,
                    });
                    book_ids.push(id);
                }
            }
        }
    }
    if let Some(at) = at {
        // Money only moves between accounts: the outside's balance then
        // is the negative of what the users held.
        for (book, ids) in books.iter_mut().zip(ids) {
            let mut total: i64 = 0;
            for (user, id) in book.users.iter_mut().zip(ids) {
                let then = users::balance_of(
                    &tx,
                    id,
                    user.name.clone(),
                    PointInTime::Time(Instant::new(at)),
                    book.currency,
                )?;
                user.balance = then.balance;
                user.closed = then.policy.closed;
                total = total.saturating_add(user.balance);
            }
            book.external = total.saturating_neg();
        }
    }
    Ok(books)
}

/// Every transfer created within the filter's bounds, oldest first, with
/// its refunds, after the policy changes made within them if the filter
/// asks for them: from one read transaction's snapshot.
pub(super) fn export(
    conn: &Connection,
    filter: &ExportFilter,
    each: &mut dyn FnMut(Exported) -> Result<bool>,
) -> SqlResult<()> {
    let now = clock::now_ms();
    let since = filter.since.map_or(i64::MIN, Instant::get);
    let until = filter.until.map_or(i64::MAX, Instant::get);
    let snapshot = conn.unchecked_transaction()?;
    if filter.changes {
        for change in super::policies::changes_between(&snapshot, since, until)? {
            if !each(Exported::Change(change))? {
                return Ok(());
            }
        }
    }
    let mut stmt = snapshot.prepare(&format!(
        "{} WHERE t.created_at >= ?1 AND t.created_at <= ?2 ORDER BY t.tx_id",
        super::transfers::select_transfer("NULL")
    ))?;
    let mut rows = stmt.query(params![since, until])?;
    while let Some(row) = rows.next()? {
        let record = super::transfers::transfer_from_row(row)?.seen_at(Instant::new(now));
        if filter.keeps(&record) && !each(Exported::Transfer(record))? {
            break;
        }
    }
    Ok(())
}
