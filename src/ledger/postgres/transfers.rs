//! Transfers: reading them by id or key, cancelling, and history pages.

use postgres::{Client, Row};

use super::error::PgResult;
use super::guard::Guard;
use super::users;
use super::{NOW_MS, commit};
use crate::domain::UserName;
use crate::error::WalletError;
use crate::ledger::events::EventKind;
use crate::ledger::model::Instant;
use crate::ledger::model::TxId;
use crate::ledger::model::{
    EXTERNAL_ACCOUNT, HistoryQuery, Refund, Status, TransferRecord, TransferRef,
};
use crate::ledger::rules;

/// A transfer as stored, with the balance after it of the user
/// `balance_of` names, its refunds (each as `tx_id:amount:status`, and the
/// sum of those paid, [`rules::refund_paid`]), and the server's clock, by which
/// [`transfer_from_row`] reports a hold past its expiry as EXPIRED.
pub(super) fn select_transfer(balance_of: &str) -> String {
    format!(
        "SELECT t.tx_id, s.name, d.name, t.amount, t.memo,
            t.status, t.reason, t.idem_key, t.created_at, t.settled_at, t.hold_amount, t.expires_at,
            t.refund_of,
            CASE WHEN t.status = 'COMPLETED' THEN
                CASE WHEN t.src = {balance_of} THEN t.src_balance WHEN t.dst = {balance_of} THEN t.dst_balance END
            END,
            (SELECT coalesce(array_agg(r.tx_id || ':' || r.amount || ':' || r.status ORDER BY r.tx_id),
                             '{{}}') FROM transfers r
              WHERE r.refund_of = t.tx_id),
            (SELECT coalesce(sum(r.amount), 0)::bigint FROM transfers r
              WHERE r.refund_of = t.tx_id AND r.status IN ({paid})),
            {NOW_MS},
            t.currency
         FROM transfers t
         JOIN accounts s ON s.id = t.src
         JOIN accounts d ON d.id = t.dst",
        paid = rules::refund_paid_statuses_sql()
    )
}

pub(super) fn transfer(client: &mut Client, which: TransferRef<'_>) -> PgResult<TransferRecord> {
    let select = select_transfer("NULL");
    let row = match which {
        TransferRef::Id(tx_id) => {
            client.query_opt(&format!("{select} WHERE t.tx_id = $1"), &[&tx_id])?
        }
        TransferRef::Key(key) => {
            client.query_opt(&format!("{select} WHERE t.idem_key = $1"), &[&key.as_str()])?
        }
    };
    let Some(row) = row else {
        return Err(WalletError::TransferNotFound(match which {
            TransferRef::Id(tx_id) => tx_id.to_string(),
            TransferRef::Key(key) => format!("with key '{}'", key.as_str()),
        })
        .into());
    };
    transfer_from_row(&row)
}

/// Cancels a PENDING transfer under the row lock settlement takes to claim
/// it, so one of the two wins cleanly: a settle that claimed it first makes
/// this `not_pending`, and a settle after this finds it gone from the queue.
pub(super) fn cancel(
    client: &mut Client,
    guard: &mut Guard,
    tx_id: i64,
) -> PgResult<TransferRecord> {
    guard.begin(
        client,
        &["transfers", "accounts", "balances", "events"],
        &[],
    )?;
    let row = client
        .query_opt(
            &format!(
                "SELECT src, dst, amount, status, expires_at, {NOW_MS}, currency
                   FROM transfers WHERE tx_id = $1 FOR UPDATE"
            ),
            &[&tx_id],
        )?
        .ok_or_else(|| WalletError::TransferNotFound(tx_id.to_string()))?;
    let (src, dst, amount, stored): (i64, i64, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let currency: i16 = row.get(6);
    // An expired hold is named EXPIRED, as every reader names it.
    let status = rules::stored_status(&stored)?.as_of(row.get(4), row.get(5));
    rules::check_cancellable(tx_id, status.as_str())?;
    client.execute(
        &super::events::recorded(
            EventKind::TransferDecided,
            &format!(
                "UPDATE transfers SET status = 'CANCELLED', settled_at = {NOW_MS}
                 WHERE tx_id = $1 AND status = 'PENDING'
                 RETURNING tx_id, settled_at AS at"
            ),
        ),
        &[&tx_id],
    )?;
    // Users first, in id order as every writer locks them; the external
    // account last, by a relative update.
    let users: Vec<i64> = [src, dst]
        .into_iter()
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    let locked = client.query(
        "SELECT id, pending_out, pending_in FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&users],
    )?;
    // In another currency the sums are the users' `balances` rows, which
    // the accounts' locks just taken guard.
    let rows = if currency == 0 {
        locked
    } else {
        client.query(
            "SELECT account, pending_out, pending_in FROM balances
              WHERE account = ANY($1) AND currency = $2 ORDER BY account",
            &[&users, &currency],
        )?
    };
    for row in rows {
        let (id, out, r#in): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let (out, r#in) = if id == src {
            (rules::release_pending(id, out, amount)?, r#in)
        } else {
            (out, rules::release_pending(id, r#in, amount)?)
        };
        if currency == 0 {
            client.execute(
                "UPDATE accounts SET pending_out = $2, pending_in = $3 WHERE id = $1",
                &[&id, &out, &r#in],
            )?;
        } else {
            client.execute(
                "UPDATE balances SET pending_out = $2, pending_in = $3
                  WHERE account = $1 AND currency = $4",
                &[&id, &out, &r#in, &currency],
            )?;
        }
    }
    if src == EXTERNAL_ACCOUNT || dst == EXTERNAL_ACCOUNT {
        let (out, r#in) = if src == EXTERNAL_ACCOUNT {
            (amount, 0)
        } else {
            (0, amount)
        };
        if currency == 0 {
            client.execute(
                "UPDATE accounts SET pending_out = pending_out - $1, pending_in = pending_in - $2 WHERE id = 0",
                &[&out, &r#in],
            )?;
        } else {
            client.execute(
                "UPDATE balances SET pending_out = pending_out - $1, pending_in = pending_in - $2
                  WHERE account = 0 AND currency = $3",
                &[&out, &r#in, &currency],
            )?;
        }
    }
    let record = transfer(client, TransferRef::Id(TxId::new(tx_id)))?;
    commit(
        client,
        guard,
        &format!("the cancel of transfer {tx_id}"),
        "`wallet get-transfer` shows its status",
    )?;
    Ok(record)
}

/// A user's transfers, newest first: each side read newest first from its
/// index, at most `limit` rows each, and the two short lists merged, so a
/// page costs the same however long the history.
pub(super) fn history(
    client: &mut Client,
    name: &UserName,
    query: &HistoryQuery,
) -> PgResult<Vec<TransferRecord>> {
    let user = users::user(client, name)?;
    let before = query.before.map_or(i64::MAX, TxId::get);
    let limit = i64::from(query.limit);
    let filter = match query.status {
        None => String::new(),
        Some(Status::Failed | Status::Cancelled) => {
            " AND status = $4 AND status IN ('FAILED', 'CANCELLED')".to_string()
        }
        Some(Status::Held) => {
            format!(
                " AND status = $4 AND {}",
                rules::before_expiry_sql("", NOW_MS)
            )
        }
        Some(Status::Expired) => {
            format!(
                " AND (status = $4 OR ({}))",
                rules::past_expiry_sql("", NOW_MS)
            )
        }
        Some(_) => " AND status = $4".to_string(),
    };
    let select = select_transfer("$1");
    let sql = format!(
        "{select} WHERE t.tx_id IN (
             (SELECT tx_id FROM transfers WHERE src = $1{filter} AND tx_id < $2
              ORDER BY tx_id DESC LIMIT $3)
             UNION ALL
             (SELECT tx_id FROM transfers WHERE dst = $1{filter} AND tx_id < $2
              ORDER BY tx_id DESC LIMIT $3))
         ORDER BY t.tx_id DESC LIMIT $3"
    );
    let rows = match query.status {
        Some(status) => client.query(&sql, &[&user.id, &before, &limit, &status.as_str()])?,
        None => client.query(&sql, &[&user.id, &before, &limit])?,
    };
    rows.iter().map(transfer_from_row).collect()
}

pub(super) fn transfer_from_row(row: &Row) -> PgResult<TransferRecord> {
    let status: String = row.get(5);
    let expires_at: Option<Instant> = row.get(11);
    Ok(TransferRecord {
        tx_id: row.get(0),
        src: row.get(1),
        dst: row.get(2),
        amount: row.get(3),
        memo: row.get(4),
        status: rules::stored_status(&status)?.as_of(expires_at, row.get(16)),
        reason: row.get(6),
        idempotency_key: row.get(7),
        created_at: row.get(8),
        settled_at: row.get(9),
        hold_amount: row.get(10),
        expires_at,
        refund_of: row.get(12),
        refunds: {
            let listed: Vec<String> = row.get(14);
            Refund::parse_all(listed.iter().map(String::as_str)).ok_or_else(|| {
                WalletError::Integrity(format!(
                    "transfer {} has unreadable refunds {listed:?}",
                    row.get::<_, i64>(0)
                ))
            })?
        },
        refunded: row.get(15),
        balance_after: row.get(13),
        currency: crate::money::CurrencyId(row.get::<_, i16>(17)),
        pair_tx_id: None,
    })
}
