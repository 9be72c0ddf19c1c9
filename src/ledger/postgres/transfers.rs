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
            t.currency,
            t.pair_tx_id
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
/// Either leg of an exchange cancels both: both rows are locked in `tx_id`
/// order, the order settlement locks them in, so the two never deadlock.
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
    // A leg's pair is fixed when the two are written, so the unlocked read
    // of it inside the statement names the row to lock.
    let rows = client.query(
        &format!(
            "SELECT tx_id, src, dst, amount, status, expires_at, {NOW_MS}, currency, pair_tx_id
               FROM transfers
              WHERE tx_id = ANY(ARRAY[$1, (SELECT pair_tx_id FROM transfers WHERE tx_id = $1)])
              ORDER BY tx_id FOR UPDATE"
        ),
        &[&tx_id],
    )?;
    let leg_of = |row: &Row| Leg {
        src: row.get(1),
        dst: row.get(2),
        amount: row.get(3),
        currency: row.get(7),
    };
    let asked = rows
        .iter()
        .find(|row| row.get::<_, i64>(0) == tx_id)
        .ok_or_else(|| WalletError::TransferNotFound(tx_id.to_string()))?;
    // An expired hold is named EXPIRED, as every reader names it.
    let stored: String = asked.get(4);
    let status = rules::stored_status(&stored)?.as_of(asked.get(5), asked.get(6));
    let mut legs = vec![leg_of(asked)];
    let mut cancelled = vec![tx_id];
    match asked.get::<_, Option<i64>>(8) {
        None => rules::check_cancellable(tx_id, status.as_str())?,
        Some(pair) => {
            let other = rows.iter().find(|row| row.get::<_, i64>(0) == pair);
            let other_status: Option<String> = other.map(|row| row.get(4));
            rules::check_pair_cancellable(
                (tx_id, status.as_str()),
                other_status.as_deref().map(|stored| (pair, stored)),
            )?;
            legs.extend(other.map(leg_of));
            cancelled.push(pair);
        }
    }
    // One instant for both legs, as settlement stamps a pair: the clock
    // read with the rows, not the clock per row updated.
    let now: i64 = asked.get(6);
    let marked = client.execute(
        &super::events::recorded(
            EventKind::TransferDecided,
            "UPDATE transfers SET status = 'CANCELLED', settled_at = $2
              WHERE tx_id = ANY($1) AND status = 'PENDING'
             RETURNING tx_id, settled_at AS at",
        ),
        &[&cancelled, &now],
    )?;
    if marked != cancelled.len() as u64 {
        return Err(WalletError::internal(anyhow::anyhow!(
            "{marked} transfers cancelled where {} were locked PENDING",
            cancelled.len()
        ))
        .into());
    }
    // Users first, in id order as every writer locks them; the external
    // account last, by a relative update.
    let mut users: Vec<i64> = legs
        .iter()
        .flat_map(|leg| [leg.src, leg.dst])
        .filter(|id| *id != EXTERNAL_ACCOUNT)
        .collect();
    users.sort_unstable();
    users.dedup();
    let locked = client.query(
        "SELECT id, pending_out, pending_in FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&users],
    )?;
    // The legs of an exchange move two currencies, so no two legs here
    // release the same sums, and each reads them as they were locked.
    for leg in &legs {
        release(client, leg, &users, &locked)?;
    }
    let record = transfer(client, TransferRef::Id(TxId::new(tx_id)))?;
    let what = match cancelled.as_slice() {
        [pair_a, pair_b] => format!(
            "the cancel of exchange {}/{}",
            pair_a.min(pair_b),
            pair_a.max(pair_b)
        ),
        _ => format!("the cancel of transfer {tx_id}"),
    };
    commit(
        client,
        guard,
        &what,
        "`wallet get-transfer` shows its status",
    )?;
    Ok(record)
}

/// A transfer being cancelled: what its pending sums hold.
struct Leg {
    src: i64,
    dst: i64,
    amount: i64,
    currency: i16,
}

/// Gives back what `leg` holds pending: its users' sums (their accounts
/// `locked` by the caller, whose rows are the default currency's) and the
/// external account's by a relative update.
fn release(client: &mut Client, leg: &Leg, users: &[i64], locked: &[Row]) -> PgResult<()> {
    let Leg {
        src,
        dst,
        amount,
        currency,
    } = *leg;
    let parties: Vec<i64> = users
        .iter()
        .copied()
        .filter(|id| *id == src || *id == dst)
        .collect();
    // In another currency the sums are the users' `balances` rows, which
    // the accounts' locks taken by the caller guard.
    let rows = if currency == 0 {
        locked
            .iter()
            .filter(|row| parties.contains(&row.get::<_, i64>(0)))
            .cloned()
            .collect()
    } else {
        client.query(
            "SELECT account, pending_out, pending_in FROM balances
              WHERE account = ANY($1) AND currency = $2 ORDER BY account",
            &[&parties, &currency],
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
    Ok(())
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
        pair_tx_id: row.get::<_, Option<i64>>(18).map(TxId::new),
    })
}
