//! Users: creating them and reading their maintained balances.

use postgres::types::Type;
use postgres::{Client, Row};

use super::NOW_MS;
use super::commit;
use super::error::PgResult;
use super::guard::Guard;
use crate::domain::{Email, UserName};
use crate::error::WalletError;
use crate::ledger::model::Instant;
use crate::ledger::model::TxId;
use crate::ledger::model::{BalanceAt, CurrencyFigures, PointInTime, Policy, UserRecord};
use crate::ledger::rules;
use crate::money::{Currency, CurrencyId};

/// `held`, then what holds past their expiry, even those `settle` has not
/// marked yet, reserve in it: [`user_from_row`] leaves that out.
fn select_user() -> String {
    format!(
        "SELECT a.id, a.name, a.email, a.balance, a.pending_in, a.pending_out, a.held,
                (SELECT coalesce(sum(h.hold_amount), 0)::bigint FROM transfers h
                  WHERE h.src = a.id AND h.currency = 0 AND {past_expiry}),
                a.overdraft, a.frozen, a.closed
         FROM accounts a WHERE lower(a.name) = lower($1)",
        past_expiry = rules::past_expiry_sql("h.", NOW_MS)
    )
}

/// Adds a user with a zero balance. Names are unique regardless of case,
/// a closed user's included: the unique index on `lower(name)` decides
/// between two processes adding the same name at once. An `overdraft`
/// above zero is the user's first policy change, made as it is created.
pub(super) fn create_user(
    client: &mut Client,
    guard: &mut Guard,
    currency: &Currency,
    name: &UserName,
    email: &Email,
    overdraft: i64,
) -> PgResult<UserRecord> {
    guard.begin(client, &super::policies::WRITES, &["transfers"])?;
    let inserted = client.query_opt(
        &format!(
            "INSERT INTO accounts (name, email, created_at) VALUES ($1, $2, {NOW_MS})
             ON CONFLICT ((lower(name))) DO NOTHING
             RETURNING id, name, email, balance, pending_in, pending_out, held, 0::bigint,
                       overdraft, frozen, closed, created_at"
        ),
        &[&name.as_str(), &email.as_str()],
    )?;
    let Some(row) = inserted else {
        let existing =
            find_user(client, name.as_str())?.map_or_else(|| name.to_string(), |user| user.name);
        return Err(WalletError::UserExists(existing).into());
    };
    let mut user = user_from_row(&row);
    if let Some(change) = rules::policy::at_creation(overdraft) {
        user.policy = rules::policy::change_user(&user, change, currency)?;
        super::policies::record_change(client, user.id, user.policy, change, None, row.get(11))?;
    }
    commit(
        client,
        guard,
        &format!("user '{}'", user.name),
        "`wallet get-user` shows whether it exists",
    )?;
    Ok(user)
}

/// Adds many users with zero balances in one transaction: all or none.
pub(super) fn create_users(
    client: &mut Client,
    guard: &mut Guard,
    users: &[(UserName, Email)],
) -> PgResult<()> {
    guard.begin(client, &["accounts"], &["transfers"])?;
    let names: Vec<&str> = users.iter().map(|(name, _)| name.as_str()).collect();
    let emails: Vec<&str> = users.iter().map(|(_, email)| email.as_str()).collect();
    let inserted = client.query(
        &format!(
            "INSERT INTO accounts (name, email, created_at)
             SELECT n, e, {NOW_MS} FROM unnest($1::text[], $2::text[]) AS u(n, e)
             ON CONFLICT ((lower(name))) DO NOTHING
             RETURNING lower(name)"
        ),
        &[&names, &emails],
    )?;
    if inserted.len() != users.len() {
        let added: Vec<String> = inserted.iter().map(|row| row.get(0)).collect();
        let taken = users
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| !added.contains(&name.to_ascii_lowercase()))
            .unwrap_or_default();
        return Err(WalletError::UserExists(taken.to_string()).into());
    }
    commit(
        client,
        guard,
        &format!("{} new users", users.len()),
        "`wallet get-user` shows whether they exist",
    )
}

/// A user's balance right after a transfer applied to them, or after the
/// last one settled by an instant, each from an index: applied transfers
/// by account and time, in the order the account saw them
/// (`settled_at`, then `settle_batch`, then `tx_id`).
pub(super) fn balance_at(
    client: &mut Client,
    name: &UserName,
    at: PointInTime,
    currency: CurrencyId,
) -> PgResult<BalanceAt> {
    let user = user(client, name)?;
    let found: Option<(i64, i64, i64)> = match at {
        PointInTime::Transfer(tx_id) => {
            let row = client.query_opt(
                "SELECT tx_id, CASE WHEN src = $2 THEN src_balance ELSE dst_balance END, settled_at
                   FROM transfers
                  WHERE tx_id = $1 AND (src = $2 OR dst = $2) AND status = 'COMPLETED'
                    AND currency = $3",
                &[&tx_id, &user.id, &currency.0],
            )?;
            match row {
                Some(row) => Some((row.get(0), row.get(1), row.get(2))),
                None => {
                    return Err(crate::ledger::rules::not_applied_to(tx_id, &user.name).into());
                }
            }
        }
        PointInTime::Time(ms) => client
            .query_opt(
                "SELECT tx_id, balance, settled_at FROM (
                    (SELECT tx_id, src_balance AS balance, settled_at, settle_batch FROM transfers
                      WHERE src = $1 AND status = 'COMPLETED' AND settled_at <= $2
                        AND currency = $3
                      ORDER BY settled_at DESC, settle_batch DESC, tx_id DESC LIMIT 1)
                    UNION ALL
                    (SELECT tx_id, dst_balance, settled_at, settle_batch FROM transfers
                      WHERE dst = $1 AND status = 'COMPLETED' AND settled_at <= $2
                        AND currency = $3
                      ORDER BY settled_at DESC, settle_batch DESC, tx_id DESC LIMIT 1)) last
                 ORDER BY settled_at DESC, settle_batch DESC, tx_id DESC LIMIT 1",
                &[&user.id, &ms, &currency.0],
            )?
            .map(|row| (row.get(0), row.get(1), row.get(2))),
    };
    // A transfer's point is the instant it was applied.
    let instant = match (at, found) {
        (PointInTime::Time(ms), _) => ms.get(),
        (PointInTime::Transfer(_), Some((_, _, settled_at))) => settled_at,
        (PointInTime::Transfer(_), None) => i64::MAX,
    };
    let policy = super::policies::policy_at(client, user.id, instant, currency)?;
    Ok(match found {
        Some((tx_id, balance, settled_at)) => BalanceAt {
            name: user.name,
            balance,
            tx_id: Some(TxId::new(tx_id)),
            settled_at: Some(Instant::new(settled_at)),
            policy,
        },
        None => BalanceAt {
            name: user.name,
            balance: 0,
            tx_id: None,
            settled_at: None,
            policy,
        },
    })
}

/// Looks a user up by name, regardless of case.
pub(super) fn user(client: &mut Client, name: &UserName) -> PgResult<UserRecord> {
    let mut user = find_user(client, name.as_str())?
        .ok_or_else(|| WalletError::UserNotFound(name.to_string()))?;
    add_other_currencies(client, std::slice::from_mut(&mut user))?;
    Ok(user)
}

/// Reads the users' figures in every other currency they have touched,
/// by one query, each `held` as of now, as for the default currency.
pub(super) fn add_other_currencies(client: &mut Client, users: &mut [UserRecord]) -> PgResult<()> {
    let ids: Vec<i64> = users.iter().map(|user| user.id).collect();
    let rows = client.query_typed(
        &format!(
            "SELECT b.account, b.currency, b.balance, b.pending_in, b.pending_out, b.held,
                    b.overdraft,
                    (SELECT coalesce(sum(h.hold_amount), 0)::bigint FROM transfers h
                      WHERE h.src = b.account AND h.currency = b.currency AND {past_expiry})
               FROM balances b WHERE b.account = ANY($1) ORDER BY b.account, b.currency",
            past_expiry = rules::past_expiry_sql("h.", NOW_MS)
        ),
        &[(&ids, Type::INT8_ARRAY)],
    )?;
    for row in &rows {
        let account: i64 = row.get(0);
        if let Some(user) = users.iter_mut().find(|user| user.id == account) {
            user.others.push(CurrencyFigures {
                currency: CurrencyId(row.get::<_, i16>(1)),
                balance: row.get(2),
                pending_in: row.get(3),
                pending_out: row.get(4),
                held: rules::held_as_of(row.get(5), row.get(7)),
                overdraft: row.get(6),
            });
        }
    }
    Ok(())
}

pub(super) fn find_user(client: &mut Client, name: &str) -> PgResult<Option<UserRecord>> {
    // Typed, so that it is parsed and run in one round trip.
    let rows = client.query_typed(&select_user(), &[(&name, Type::TEXT)])?;
    Ok(rows.first().map(user_from_row))
}

/// A user as read with `held` and the expired part of it (see
/// [`select_user`]), held as of now by [`rules::held_as_of`].
pub(super) fn user_from_row(row: &Row) -> UserRecord {
    UserRecord {
        id: row.get(0),
        name: row.get(1),
        email: row.get(2),
        balance: row.get(3),
        pending_in: row.get(4),
        pending_out: row.get(5),
        held: rules::held_as_of(row.get(6), row.get(7)),
        policy: Policy {
            overdraft: row.get(8),
            frozen: row.get(9),
            closed: row.get(10),
        },
        others: Vec::new(),
    }
}
