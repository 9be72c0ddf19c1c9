//! Reports over the whole ledger: the users a page at a time, the trial
//! balance, and every transfer streamed for export.

use postgres::Client;

use super::NOW_MS;
use super::error::PgResult;
use super::transfers::transfer_from_row;
use crate::domain::UserName;
use crate::error::Result;
use crate::ledger::model::Instant;
use crate::ledger::model::{
    EXTERNAL_ACCOUNT, ExportFilter, Exported, TrialBalance, UserBalance, UserRecord,
};
use crate::ledger::rules;
use crate::money::CurrencyId;

/// Rows fetched at a time while exporting: memory stays flat at any size.
const EXPORT_FETCH: i32 = 1_000;

/// Up to `limit` users after `after`, by name regardless of case, from
/// the index on `lower(name)`.
pub(super) fn users(
    client: &mut Client,
    after: Option<&UserName>,
    limit: u32,
) -> PgResult<Vec<UserRecord>> {
    let rows = client.query(
        &format!(
            "SELECT a.id, a.name, a.email, a.balance, a.pending_in, a.pending_out, a.held,
                    (SELECT coalesce(sum(h.hold_amount), 0)::bigint FROM transfers h
                      WHERE h.src = a.id AND h.currency = 0 AND {past_expiry}),
                    a.overdraft, a.frozen, a.closed
             FROM accounts a
             WHERE a.name IS NOT NULL AND lower(a.name) > lower($1)
             ORDER BY lower(a.name) LIMIT $2",
            past_expiry = rules::past_expiry_sql("h.", NOW_MS)
        ),
        &[&after.map_or("", UserName::as_str), &i64::from(limit)],
    )?;
    let mut users: Vec<UserRecord> = rows.iter().map(super::users::user_from_row).collect();
    super::users::add_other_currencies(client, &mut users)?;
    Ok(users)
}

/// Every account's balance in every currency from one snapshot (the
/// default currency's from `accounts`, each other's from `balances`); at
/// an instant, each user's from the index of applied transfers by account
/// and time.
pub(super) fn trial_balance(client: &mut Client, at: Option<i64>) -> PgResult<Vec<TrialBalance>> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()?;
    let mut books = vec![TrialBalance::default()];
    let mut ids: Vec<Vec<i64>> = vec![Vec::new()];
    let rows = tx.query(
        "SELECT currency, id, name, balance, closed FROM (
            SELECT 0::smallint AS currency, id, name, balance, closed FROM accounts
            UNION ALL
            SELECT b.currency, b.account, a.name, b.balance, a.closed
              FROM balances b JOIN accounts a ON a.id = b.account) every
         ORDER BY currency, lower(name), id",
        &[],
    )?;
    for row in &rows {
        // Each currency's external row is made with the currency, so every
        // currency of the ledger has a book here.
        let currency = CurrencyId(row.get(0));
        if books.last().is_none_or(|book| book.currency != currency) {
            books.push(TrialBalance {
                currency,
                ..TrialBalance::default()
            });
            ids.push(Vec::new());
        }
        let (id, name, balance): (i64, Option<String>, i64) = (row.get(1), row.get(2), row.get(3));
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
                    closed: row.get(4),
                });
                book_ids.push(id);
            }
        }
    }
    if let Some(at) = at {
        for (book, ids) in books.iter_mut().zip(ids) {
            let mut total: i64 = 0;
            for (user, id) in book.users.iter_mut().zip(ids) {
                user.closed = super::policies::policy_at(&mut tx, id, at, book.currency)?.closed;
                let then = tx.query_opt(
                    "SELECT balance FROM (
                        (SELECT src_balance AS balance, settled_at, settle_batch, tx_id
                           FROM transfers
                          WHERE src = $1 AND status = 'COMPLETED' AND settled_at <= $2
                            AND currency = $3
                          ORDER BY settled_at DESC, settle_batch DESC, tx_id DESC LIMIT 1)
                        UNION ALL
                        (SELECT dst_balance, settled_at, settle_batch, tx_id FROM transfers
                          WHERE dst = $1 AND status = 'COMPLETED' AND settled_at <= $2
                            AND currency = $3
                          ORDER BY settled_at DESC, settle_batch DESC, tx_id DESC LIMIT 1)) last
                     ORDER BY settled_at DESC, settle_batch DESC, tx_id DESC LIMIT 1",
                    &[&id, &at, &book.currency.0],
                )?;
                user.balance = then.map_or(0, |row| row.get(0));
                total = total.saturating_add(user.balance);
            }
            book.external = total.saturating_neg();
        }
    }
    tx.commit()?;
    Ok(books)
}

/// Every transfer created within the filter's bounds, oldest first, with
/// its refunds, after the policy changes made within them if the filter
/// asks for them, through a portal in one read-only snapshot.
pub(super) fn export(
    client: &mut Client,
    filter: &ExportFilter,
    each: &mut dyn FnMut(Exported) -> Result<bool>,
) -> PgResult<()> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()?;
    let since = filter.since.map_or(i64::MIN, Instant::get);
    let until = filter.until.map_or(i64::MAX, Instant::get);
    if filter.changes {
        for change in super::policies::changes_between(&mut tx, since, until)? {
            if !each(Exported::Change(change))? {
                tx.commit()?;
                return Ok(());
            }
        }
    }
    let portal = tx.bind(
        &format!(
            "{} WHERE t.created_at >= $1 AND t.created_at <= $2 ORDER BY t.tx_id",
            super::transfers::select_transfer("NULL::bigint")
        ),
        &[&since, &until],
    )?;
    'fetch: loop {
        let rows = tx.query_portal(&portal, EXPORT_FETCH)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let record = transfer_from_row(row)?;
            if filter.keeps(&record) && !each(Exported::Transfer(record))? {
                break 'fetch;
            }
        }
    }
    tx.commit()?;
    Ok(())
}
